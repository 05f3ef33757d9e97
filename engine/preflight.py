"""What a run can check before it exists: settings, data and model files, without torch.

`preflight(config)` is called by `dpo-tutor train` before it makes a run folder or imports torch, so
that a bad config, a malformed data file or a refused model file costs a fraction of a second, gives
one line naming the file (and line or field) and leaves nothing behind:

- the settings (`TrainConfig.validate`), each problem blamed on the config file or the flag it came from;
- the model source (`resolve_model`) and its files: weights load from safetensors only unless
  `allow_pickle` is set, and a model that brings its own Python code (`auto_map` naming classes that
  transformers does not ship) is refused unless `trust_remote_code` is set;
- the data: every row is read and normalised exactly as the run will read it (`load_triplets`).

Nothing here imports torch, transformers or TRL.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from .config import TrainConfig
from .errors import ConfigError, ModelError

# Weight files that are Python pickles (loading one can run code); safetensors files cannot.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
# The CLI flag of a setting where it is not simply --<name-with-dashes>.
_FLAG_OF = {"learning_rate": "--lr", "data_format": "--format"}


@dataclass
class Preflight:
    """What the checks found: warnings to show, and the data as the run will read it."""

    warnings: list[str] = field(default_factory=list)
    data: Any = None  # data.load.LoadResult
    model: Any = None  # models.ModelSource


def flag_of(name: str) -> str:
    return _FLAG_OF.get(name, "--" + name.replace("_", "-"))


def preflight(
    config: TrainConfig,
    *,
    config_file: str | os.PathLike[str] | None = None,
    flag_fields: Iterable[str] = (),
    check_data: bool = True,
) -> Preflight:
    """Check settings, model and data; raise one `UserError` line or return warnings (and the data)."""
    warnings = check_config(config, config_file=config_file, flag_fields=flag_fields)
    from .models import resolve_model

    source = resolve_model(config.model)
    check_model_files(source, allow_pickle=config.allow_pickle, trust_remote_code=config.trust_remote_code)
    result = Preflight(warnings=warnings, model=source)
    if check_data:
        result.data = load_run_data(config)
    return result


# ---- settings ---------------------------------------------------------------------------------------


def check_config(
    config: TrainConfig,
    *,
    config_file: str | os.PathLike[str] | None = None,
    flag_fields: Iterable[str] = (),
) -> list[str]:
    """`config.check()`, with the error blamed on the flag or the config file that set the value."""
    errors, warnings = config.validate()
    if not errors:
        return warnings
    where = blame(field_of(errors[0]), config_file=config_file, flag_fields=flag_fields)
    raise ConfigError(" ".join(errors), where=where)


def field_of(sentence: str) -> str | None:
    """The setting a validation sentence is about (each one starts with the setting's name)."""
    head = sentence.split(" ", 1)[0].strip("'\".,:;")
    return head if head in TrainConfig.field_names() else None


def blame(
    name: str | None, *, config_file: str | os.PathLike[str] | None = None, flag_fields: Iterable[str] = ()
) -> str | None:
    """Where a setting's value came from: its flag, else the config file that has it, else None."""
    if name is None:
        return str(config_file) if config_file else None
    if name in set(flag_fields):
        return flag_of(name)
    if config_file and name in file_keys(config_file):
        return str(config_file)
    return None


def file_keys(config_file: str | os.PathLike[str]) -> set[str]:
    """The settings a TOML config file names (flat, or under [train])."""
    try:
        data = tomllib.loads(Path(config_file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return set()
    if isinstance(data.get("train"), dict):
        data = data["train"]
    return {str(key).replace("-", "_") for key in data}


# ---- model files ------------------------------------------------------------------------------------


def check_model_files(source: Any, *, allow_pickle: bool = False, trust_remote_code: bool = False) -> None:
    """Refuse a local model folder whose weights are pickles only, or whose code would have to run."""
    if getattr(source, "kind", None) != "folder":
        return
    folder = Path(source.location)
    names = [p.name for p in folder.iterdir() if p.is_file()]
    safetensors = [n for n in names if n.endswith(".safetensors")]
    pickles = sorted(n for n in names if n.endswith(PICKLE_SUFFIXES) and not n.startswith("training_args"))
    if not safetensors and pickles and not allow_pickle:
        raise ModelError(
            f"its weights are pickle files only ({', '.join(pickles[:3])}), which can run code when loaded; "
            "dpo-tutor loads safetensors",
            where=str(source.spec),
            remedy="convert them to safetensors, or pass --allow-pickle only if you trust where they came from",
        )
    if not safetensors and not pickles:
        raise ModelError(
            "no weights in this folder (expected *.safetensors)",
            where=str(source.spec),
            remedy="give a folder written by save_pretrained, a hub id, a .gguf file or 'tiny'",
        )
    if trust_remote_code:
        return
    custom = remote_code_classes(folder)
    if custom:
        raise ModelError(
            f"this model brings its own Python code ({', '.join(custom[:2])}), which runs only when allowed",
            where=str(source.spec),
            remedy="pass --trust-remote-code only if you trust its author",
        )


def remote_code_classes(folder: Path) -> list[str]:
    """The `auto_map` classes a model's config.json asks to run, for a model type transformers lacks.

    (transformers uses its own code for a type it ships and ignores `auto_map` then.)
    """
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    auto_map = config.get("auto_map") if isinstance(config, dict) else None
    if not isinstance(auto_map, dict):
        return []
    if str(config.get("model_type", "")).replace("-", "_") in shipped_model_types():
        return []
    out = []
    for value in auto_map.values():
        for ref in value if isinstance(value, list) else [value]:
            if isinstance(ref, str) and ref:
                out.append(ref)
    return out


def shipped_model_types() -> set[str]:
    """Model types transformers has its own code for (its `models/` folders), found without importing it."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("transformers")
    except (ImportError, ValueError):
        return set()
    found: set[str] = set()
    for root in (spec.submodule_search_locations or []) if spec else []:
        models = Path(root) / "models"
        if models.is_dir():
            found.update(p.name for p in models.iterdir() if p.is_dir() and not p.name.startswith("_"))
    return found


# ---- writing the run --------------------------------------------------------------------------------

# What a full disk, a quota, a file-size limit or a read-only / forbidden folder raise.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM})
_OS_ERROR_CODE = re.compile(r"os error (\d+)")


def is_write_error(exc: BaseException) -> bool:
    """Whether a failure is the disk refusing a write, however the library that wrote wrapped it.

    Python raises OSError; safetensors (Rust) raises SafetensorError("... I/O error: No space left on
    device (os error 28)"); torch.save raises RuntimeError("... PytorchStreamWriter failed writing file").
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in WRITE_ERRNOS:
            return True
        text = str(current)
        code = _OS_ERROR_CODE.search(text)
        if code and int(code.group(1)) in WRITE_ERRNOS and "i/o error" in text.lower():
            return True
        if isinstance(current, RuntimeError) and ("failed writing file" in text or "file write failed" in text):
            return True
        current = current.__cause__ or current.__context__
    return False


# ---- data -------------------------------------------------------------------------------------------


def data_max_rows(config: TrainConfig) -> int | None:
    """How many rows a run reads (as engine/train/pairs.py does): a margin over max_pairs, or all."""
    if config.max_pairs <= 0:
        return None
    return math.ceil(config.max_pairs / (1 - config.heldout_fraction) * 1.3) + config.eval_pairs + 16


def load_run_data(config: TrainConfig):
    """Read the run's data as the run will (a `DataError` line for anything malformed)."""
    from .data.load import load_triplets

    return load_triplets(
        config.data or None,
        format=config.data_format or None,
        columns=config.columns or None,
        max_rows=data_max_rows(config),
    )
