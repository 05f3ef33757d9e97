"""The typed training configuration.

A TOML file, CLI flags and the UI's form all produce a `TrainConfig`; `validate()` explains problems
in sentences a person understands (errors stop a run, warnings are shown and the run goes on).
The defaults are the recipe the sweep chose by what the model does, not by its loss (RECIPES.md):
one epoch of the HH-RLHF mix (harmless 2 : helpful 1) at lr 5e-4: the answers stay fluent and helpful.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

from .errors import ConfigError

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"

# TRL 1.15's DPOConfig.loss_type values.
LOSS_TYPES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
    "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
BACKENDS = ("auto", "unsloth", "hf")
OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "adamw_8bit")
COMPILE_MODES = ("auto", "on", "off")
CUDA_GRAPH_MODES = ("auto", "off")

# One line for each field, shown by --help and by the Train screen's form.
HELP: dict[str, str] = {
    "model": "hub id, local model folder, .gguf file, or 'tiny' (a random model for tests)",
    "data": "preference data: a file or hub id (hf:owner/name/data_dir), or several to mix; empty: HH-RLHF "
    "harmless + helpful halves 2:1 (hub, local copies or the sample)",
    "data_weights": "one weight per data source, e.g. 1,1: each source's share of the pairs (equal when empty)",
    "data_format": "force a format (hh, shp, oasst, trl, mapping); detected when empty",
    "columns": "column mapping for other data, e.g. prompt=question,chosen=good,rejected=bad",
    "max_pairs": "use at most this many training pairs (0 = all)",
    "heldout_fraction": "share of prompts held out for evaluation (grouped by prompt)",
    "beta": "how strongly DPO keeps the policy near the reference (higher = closer); 0.1 is typical",
    "loss_type": "TRL's DPO loss variant; 'sigmoid' is the paper's loss, 'ipo' and 'robust' bound it",
    "label_smoothing": "share of pairs assumed mislabelled, for the 'robust' loss (0 to below 0.5)",
    "nll_weight": "weight of an extra NLL term on the chosen answers (TRL's 'sft' loss; RPO); 0 = none",
    "learning_rate": "optimizer step size; a LoRA on a 135M model wants ~5e-4",
    "lr_scheduler": "how the learning rate changes over the run",
    "warmup_ratio": "share of steps spent warming the learning rate up",
    "epochs": "passes over the training pairs (ignored when max_steps > 0)",
    "max_steps": "stop after this many optimizer steps (0 = use epochs)",
    "batch_size": "pairs per device per micro-batch",
    "grad_accum": "micro-batches accumulated per optimizer step",
    "max_length": "tokens kept of prompt + answer; longer pairs are truncated",
    "lora_r": "LoRA rank (adapter size)",
    "lora_alpha": "LoRA scaling numerator (alpha / r scales the update)",
    "lora_dropout": "dropout inside the LoRA adapters",
    "target_modules": "which linear layers get adapters ('all-linear' or a comma list)",
    "seed": "random seed for data order and initialisation",
    "precision": "number format: auto (bf16 on GPU, fp32 on CPU), bf16, fp16, fp32",
    "gradient_checkpointing": "recompute activations to save memory (slower)",
    "precompute_ref": "score the reference model once before training instead of every step (faster)",
    "group_by_length": "batch pairs of similar length together (less padding, faster)",
    "compile": "torch.compile each decoder layer (hf backend): off, on, or auto (on with a CUDA GPU when the run "
    "is long enough to pay for it: ~41k pairs at 135M, ~17k at 360M, ~12k from 1B); 1.4-1.7x faster steps "
    "after ~25-50 s of compiling",
    "cuda_graphs": "replay each training step as a recorded CUDA graph (hf backend): auto (on with a CUDA GPU "
    "where the setup allows) or off",
    "optim": "optimizer: adamw_torch, adamw_torch_fused or adamw_8bit (bitsandbytes, GPU)",
    "eval_steps": "evaluate on a held-out slice every N steps (0 = never)",
    "eval_pairs": "pairs in the held-out slice evaluated during training",
    "save_steps": "save a checkpoint every N steps (0 = only at the end)",
    "backend": "auto (one CUDA GPU: hf with recorded CUDA-graph steps when the recipe allows, else unsloth "
    "when installed; hf everywhere else), unsloth, or hf",
    "merge": "also save a 16-bit merged model loadable by transformers",
    "trust_remote_code": "allow a model's own Python code to run (off unless you trust it)",
    "allow_pickle": "allow pickle-based weight files (.bin); safetensors only otherwise",
}


@dataclass
class TrainConfig:
    model: str = DEFAULT_MODEL
    data: str | list[str] = ""  # one source, or several mixed by data_weights (engine/data/mix.py)
    data_weights: list[float] = field(default_factory=list)
    data_format: str = ""
    columns: dict[str, str] = field(default_factory=dict)
    max_pairs: int = 0
    heldout_fraction: float = 0.1
    beta: float = 0.1
    loss_type: str = "sigmoid"
    label_smoothing: float = 0.0
    nll_weight: float = 0.0
    learning_rate: float = 5e-4
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.05
    epochs: float = 1.0
    max_steps: int = 0
    batch_size: int = 32
    grad_accum: int = 1
    max_length: int = 512
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    target_modules: str = "all-linear"
    seed: int = 42
    precision: str = "auto"
    gradient_checkpointing: bool = True
    precompute_ref: bool = True
    group_by_length: bool = True
    compile: str = "auto"
    cuda_graphs: str = "auto"
    optim: str = "adamw_torch"
    eval_steps: int = 25
    eval_pairs: int = 64
    save_steps: int = 50
    backend: str = "auto"
    merge: bool = False
    trust_remote_code: bool = False
    allow_pickle: bool = False

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "config") -> TrainConfig:
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            name = key.replace("-", "_")
            if name not in known:
                raise ConfigError(
                    f"unknown setting '{key}'", where=where, remedy=f"known: {', '.join(known)}"
                )
            values[name] = _coerce(name, value, known[name], where)
        if isinstance(values.get("data"), list) and len(values["data"]) == 1:
            values["data"] = values["data"][0]  # a mix of one is that source
        return cls(**values)

    @classmethod
    def from_toml(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("config file not found", where=str(path)) from None
        except IsADirectoryError:
            raise ConfigError("is a folder, not a TOML config file", where=str(path)) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}", where=str(path)) from None
        except UnicodeDecodeError:
            raise ConfigError("not a UTF-8 text file", where=str(path)) from None
        except OSError as exc:
            raise ConfigError(f"cannot read the config file: {exc.strerror or exc}", where=str(path)) from None
        # Accept either a flat table or one under [train].
        if "train" in data and isinstance(data["train"], dict):
            data = data["train"]
        return cls.from_dict(data, where=str(path))

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        lines = ["# dpo-tutor training configuration", "[train]"]
        for key, value in self.to_dict().items():
            if isinstance(value, dict) or (key == "data_weights" and not value):
                continue
            lines.append(f"{key} = {_toml_value(value)}")
        if self.columns:
            lines.append("")
            lines.append("[train.columns]")
            for key, value in self.columns.items():
                lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"

    # ---- derived -------------------------------------------------------------------------------
    @property
    def data_sources(self) -> list[str]:
        """The data sources named: [] for the default data, one, or several to mix."""
        if isinstance(self.data, (list, tuple)):
            return [str(d) for d in self.data if str(d).strip()]
        return [self.data] if self.data.strip() else []

    def describe_data(self) -> str:
        """The data in a few words, before it is read: 'a.jsonl.gz', 'a x1 + b x3', or the default."""
        sources = self.data_sources
        if not sources:
            from .data.mix import DEFAULT_WEIGHTS

            weights = self.data_weights or list(DEFAULT_WEIGHTS)
            return "the default data (HH-RLHF harmless-base + helpful-base " + ":".join(f"{w:g}" for w in weights) + ")"
        if len(sources) == 1:
            return sources[0]
        from .data.mix import Source, unique_names

        weights = self.data_weights or [1.0] * len(sources)
        names = unique_names([Source(s) for s in sources])  # short names, as the mixed pairs carry them
        return " + ".join(f"{n} x{w:g}" for n, w in zip(names, weights, strict=False))

    @property
    def effective_batch(self) -> int:
        return self.batch_size * self.grad_accum

    def planned_steps(self, n_train_pairs: int) -> int:
        if self.max_steps > 0:
            return self.max_steps
        per_epoch = max(1, math.ceil(n_train_pairs / self.effective_batch))
        return max(1, math.ceil(per_epoch * self.epochs))

    # ---- validation ----------------------------------------------------------------------------
    def validate(self, n_train_pairs: int | None = None) -> tuple[list[str], list[str]]:
        """Return (errors, warnings), each a list of sentences."""
        errors: list[str] = []
        warnings: list[str] = []
        if not self.model.strip():
            errors.append("model must name a hub id, a folder, a .gguf file or 'tiny'.")
        if not self.beta > 0:
            errors.append(f"beta must be > 0 (got {self.beta}); 0.1 is a typical start.")
        elif self.beta > 5:
            warnings.append(f"beta {self.beta} is very large: the policy will barely move from the reference.")
        if self.loss_type not in LOSS_TYPES:
            errors.append(f"loss_type '{self.loss_type}' is not one of TRL's: {', '.join(LOSS_TYPES)}.")
        if not 0.0 <= self.label_smoothing < 0.5:
            errors.append(f"label_smoothing must be at least 0 and below 0.5 (got {self.label_smoothing}).")
        elif self.label_smoothing and self.loss_type not in ("robust", "exo_pair", "aot", "aot_unpaired"):
            warnings.append(f"label_smoothing is ignored by the '{self.loss_type}' loss.")
        if self.loss_type == "exo_pair" and self.label_smoothing == 0:
            errors.append("the 'exo_pair' loss needs label_smoothing > 0 (its paper suggests 0.001).")
        if self.nll_weight < 0:
            errors.append(f"nll_weight must be 0 or more (got {self.nll_weight}).")
        if self.loss_type == "sft" and self.nll_weight:
            errors.append("loss_type 'sft' already is the NLL loss: leave nll_weight at 0.")
        if not self.learning_rate > 0:
            errors.append(f"learning_rate must be > 0 (got {self.learning_rate}).")
        elif not 1e-7 <= self.learning_rate <= 1e-2:
            warnings.append(
                f"learning_rate {self.learning_rate:g} is outside 1e-7..1e-2: "
                "expect no learning (too low) or a diverging loss (too high)."
            )
        if self.lr_scheduler not in SCHEDULERS:
            errors.append(f"lr_scheduler must be one of {', '.join(SCHEDULERS)}.")
        if not 0 <= self.warmup_ratio < 1:
            errors.append("warmup_ratio must lie in [0, 1).")
        if self.batch_size < 1:
            errors.append(f"batch_size must be at least 1 (got {self.batch_size}).")
        if self.grad_accum < 1:
            errors.append(f"grad_accum must be at least 1 (got {self.grad_accum}).")
        if self.max_steps < 0:
            errors.append("max_steps must be >= 0 (0 means: use epochs).")
        if self.max_steps == 0 and not self.epochs > 0:
            errors.append("epochs must be > 0 when max_steps is 0.")
        if self.max_length < 16:
            errors.append(f"max_length must be at least 16 tokens (got {self.max_length}).")
        if self.lora_r < 1:
            errors.append("lora_r must be at least 1.")
        if self.lora_alpha <= 0:
            errors.append("lora_alpha must be > 0.")
        if not 0 <= self.lora_dropout < 1:
            errors.append("lora_dropout must lie in [0, 1).")
        if not 0 < self.heldout_fraction < 0.9:
            errors.append("heldout_fraction must lie between 0 and 0.9.")
        if self.max_pairs < 0:
            errors.append("max_pairs must be >= 0 (0 means all).")
        if self.precision not in PRECISIONS:
            errors.append(f"precision must be one of {', '.join(PRECISIONS)}.")
        if self.optim not in OPTIMIZERS:
            errors.append(f"optim must be one of {', '.join(OPTIMIZERS)}.")
        if self.compile not in COMPILE_MODES:
            errors.append(f"compile must be one of {', '.join(COMPILE_MODES)}.")
        if self.cuda_graphs not in CUDA_GRAPH_MODES:
            errors.append(f"cuda_graphs must be one of {', '.join(CUDA_GRAPH_MODES)}.")
        if self.backend not in BACKENDS:
            errors.append(f"backend must be one of {', '.join(BACKENDS)}.")
        for name in ("eval_steps", "save_steps", "eval_pairs"):
            if getattr(self, name) < 0:
                errors.append(f"{name} must be >= 0.")
        errors += self._data_errors()
        if self.columns:
            missing = {"prompt", "chosen", "rejected"} - set(self.columns)
            if missing - {"prompt"}:
                errors.append(f"columns must map chosen and rejected (missing: {', '.join(sorted(missing))}).")
        if n_train_pairs is not None and not errors and n_train_pairs > 0 and self.max_steps > 0:
            epochs = self.max_steps * self.effective_batch / n_train_pairs
            if epochs > 1:
                warnings.append(
                    f"{self.max_steps} steps x batch {self.batch_size} x accumulation {self.grad_accum} "
                    f"= {self.max_steps * self.effective_batch} pairs is {epochs:.1f} epochs of "
                    f"{n_train_pairs} training pairs."
                )
        return errors, warnings

    def _data_errors(self) -> list[str]:
        """Sentences about the data sources and their weights (each starts with the setting's name)."""
        errors: list[str] = []
        sources = self.data_sources
        n = len(sources) if sources else 2  # the default mix: harmless-base, helpful-base
        if self.data_weights and len(self.data_weights) != n:
            what = f"{n} data sources" if sources else "the 2 halves of the default data (harmless, helpful)"
            if len(sources) == 1:
                what = "1 data source"
            count = f"{len(self.data_weights)} weight" + ("s" if len(self.data_weights) != 1 else "")
            errors.append(f"data_weights has {count} for {what}: give one weight per source.")
        for w in self.data_weights:
            if not (math.isfinite(w) and w > 0):
                errors.append(f"data_weights must all be above 0 (got {w:g}); leave a source out instead of "
                              "giving it weight 0.")
                break
        if len(sources) > 1:
            from .data.sources import is_hub_id

            for source in sources:
                if not is_hub_id(source) and not Path(source).expanduser().is_file():
                    errors.append(f"data names a file that is not there: {source}.")
            if len(set(sources)) != len(sources):
                errors.append("data names the same source twice; give it a larger weight instead.")
        return errors

    def check(self, n_train_pairs: int | None = None) -> list[str]:
        """Raise ConfigError with every error; return the warnings."""
        errors, warnings = self.validate(n_train_pairs)
        if errors:
            raise ConfigError(" ".join(errors))
        return warnings


def _coerce(name: str, value: Any, f: dataclasses.Field, where: str) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if kind == "bool":
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "str":
            if not isinstance(value, (str, int, float)):
                raise ValueError(value)
            return str(value)
        if kind == "str | list[str]":  # data: one source or several
            if isinstance(value, str):
                return value
            if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                return [v for v in value if v.strip()]
            raise ValueError(value)
        if kind == "list[float]":  # data_weights: [1, 1] or "1,1"
            if isinstance(value, str):
                return parse_weights(value, where=where)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return [float(value)]
            if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) for v in value):
                raise ValueError(value)
            return [float(v) for v in value]
        if kind.startswith("dict"):
            if isinstance(value, str):
                try:
                    return parse_columns(value)
                except ConfigError as exc:  # blame the file, not the --columns flag
                    raise ConfigError(f"'{name}': {exc.message}", where=where) from None
            if not isinstance(value, dict):
                raise ValueError(value)
            return {str(k): str(v) for k, v in value.items()}
    except (TypeError, ValueError):
        raise ConfigError(f"'{name}' expects {kind}, got {value!r}", where=where) from None
    return value


def parse_weights(text: str, *, where: str = "--data-weights") -> list[float]:
    """`1,1` or `1:3` -> [1.0, 1.0]."""
    weights: list[float] = []
    for part in filter(None, (p.strip() for p in text.replace(":", ",").split(","))):
        try:
            weights.append(float(part))
        except ValueError:
            raise ConfigError(f"'{part}' is not a number: weights are numbers like 1,1 or 2,1", where=where) from None
    return weights


def parse_columns(text: str) -> dict[str, str]:
    """`prompt=question,chosen=good,rejected=bad` -> {"prompt": "question", ...}."""
    mapping: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise ConfigError(f"column mapping '{part}' is not of the form role=column", where="--columns")
        role, column = (s.strip() for s in part.split("=", 1))
        if role not in ("prompt", "chosen", "rejected"):
            raise ConfigError(f"'{role}' is not prompt, chosen or rejected", where="--columns")
        mapping[role] = column
    return mapping


def _toml_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
