"""A training run without the imports it never uses: part of the time from `train` to the first step.

Why ours: the imports are the largest part of a run's start-up, and about a third of them go to things
a hf run of a dense model never touches:

- `importlib.metadata.packages_distributions()`, a walk over every installed distribution's file
  list, which transformers and TRL each call when imported: inside `lean()` it is computed once and the
  answer reused.
- Optional packages that transformers and PEFT import as soon as they are installed: scikit-learn
  (transformers' assisted generation), bitsandbytes (PEFT's helpers and LoRA dispatch) and torchao
  (transformers' torchao quantizer, PEFT's dispatch). A hf run of a dense model with a plain optimizer
  uses none of them. For the run's life they read as not installed (`sys.modules[name] = None`:
  `importlib.util.find_spec` answers None and an import raises ImportError, which is how these
  libraries test for them). A run that asks for the 8-bit optimizer keeps bitsandbytes; a checkpoint
  that is quantized, or one whose config cannot be read before loading (a hub model not downloaded
  yet), keeps them all; Unsloth keeps them all (it needs bitsandbytes, and patches the stack itself).

When the run ends (the context closes) a later `import sklearn` in the same process works again; what
the libraries decided meanwhile stays decided (transformers caches its availability checks), so only a
process that trains uses this. The `lean_imports` switch turns it off (switches.py).
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# What a hf run of a dense model never uses, and who imports it when installed.
UNUSED_BY_HF = {
    "sklearn": "transformers' assisted generation (roc_curve)",
    "torchao": "transformers' torchao quantizer, PEFT's LoRA dispatch",
    "bitsandbytes": "PEFT's helpers and LoRA dispatch (kept for the 8-bit optimizer)",
}


@contextlib.contextmanager
def lean(hide: Iterable[str] = (), *, enabled: bool = True) -> Iterator[list[str]]:
    """Inside: `packages_distributions()` computed once, and the packages in `hide` that are installed but
    not imported yet read as not installed. Yields the names hidden."""
    if not enabled:
        yield []
        return
    import importlib.metadata as metadata
    import importlib.util

    original = metadata.packages_distributions
    metadata.packages_distributions = functools.cache(original)
    hidden = [name for name in hide if name not in sys.modules and importlib.util.find_spec(name) is not None]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield hidden
    finally:
        metadata.packages_distributions = original
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def checkpoint_config(source: Any) -> dict | None:
    """The model's config.json as a dict, read without loading anything: {} for the weights we build or
    dequantize ourselves (tiny, GGUF, a bf16 shape), a quantization_config for a 4-bit shape (bitsandbytes
    quantizes it), None when it cannot be read before loading."""
    kind = getattr(source, "kind", "")
    if kind in ("tiny", "gguf"):
        return {}
    if kind == "shape":
        return {"quantization_config": {"load_in_4bit": True}} if source.four_bit else {}
    path: Path | None = None
    if kind == "folder":
        path = Path(source.location) / "config.json"
    elif kind == "hub":
        try:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(source.location, "config.json")
            path = Path(found) if isinstance(found, str) else None
        except Exception:  # noqa: BLE001 - not knowing only means not hiding
            path = None
    if path is None:
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def hidden_for_hf(optim: str, source: Any) -> list[str]:
    """The packages a hf run with this optimizer and model leaves unimported."""
    config = checkpoint_config(source)
    if config is None or "quantization_config" in config:
        return []
    return [name for name in UNUSED_BY_HF if not (name == "bitsandbytes" and "8bit" in optim)]


def import_hf_stack() -> None:
    """Import what a hf training run uses (transformers, PEFT, TRL, datasets) now, inside the run's
    `lean(hidden_for_hf(...))`, rather than wherever the run first needs each."""
    import datasets  # noqa: F401
    import peft.helpers  # noqa: F401 - imports bitsandbytes when it can
    import transformers  # noqa: F401
    from trl import DPOConfig, DPOTrainer  # noqa: F401
