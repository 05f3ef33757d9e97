"""The switches that benchmarks and tests turn: one typed registry, read from one environment variable.

A switch changes how a run computes, never what it learns; every default is what the product does.
Benchmarks compare a change against the code without it and tests force a path a CPU would not take,
by setting `DPO_TUTOR_SWITCHES` to `name=value` pairs separated by commas, e.g.
`DPO_TUTOR_SWITCHES="pack=0,reference_batch=128"` (values hold no commas). A run records the switches
set away from their defaults in its plan (run_started). Nothing here imports anything heavy: the UI
asks `no_cuda` at start-up.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

ENV = "DPO_TUTOR_SWITCHES"

log = logging.getLogger("dpo_tutor")


@dataclass(frozen=True)
class Switches:
    """Every switch, with the product's value as its default."""

    # recorded (CUDA-graph) steps and the packed layout (engine/train/fast/)
    log_lag: bool = True  # a recorded step's log is read one step later, once the GPU is past it
    nonblocking_copies: bool = True  # batches go to the GPU without the host waiting for the copy
    graph_reference: bool = True  # the reference pass is replayed as recorded graphs too
    graph_roomier: bool = True  # a packed batch may replay a slightly roomier recorded shape
    graph_warmup_each: bool = False  # every new shape runs eagerly before it is recorded (else only the first)
    checkpoint_fraction: float = 1.0  # share of decoder layers that recompute activations in a recorded step
    pack: bool = True  # recorded steps train on packed pairs (else TRL's two rows a pair)
    pack_row_tokens: int = 0  # rows at least this long hold several pairs (0: one pair a row)
    step_tokens: int = -1  # a packed step of more tokens runs as parts (-1: by model size, plan.py; 0: never)
    # the start-up passes and the eager step
    fast_prep: bool = True  # batched tokenizing and a longest-first reference pass
    reference_eval: bool = True  # the reference is scored with the model in eval mode
    reference_batch: int = 0  # pairs per batch of the reference pass (0: twice the training batch)
    drop_padding_mask: bool = True  # TRL's right-padded rows run without their padding mask
    lean_imports: bool = True  # a hf run leaves out the optional packages it never uses
    dataloader_workers: int = 0  # processes that collate batches beside the training loop
    compile_backend: str = "inductor"  # torch.compile's backend for compiled layers (tests: aot_eager)
    dataset_cache_dir: str = ""  # the tokenized-pairs cache folder ("": in the user cache folder)
    # for tests: these may change what a run does, so no benchmark sets them
    default_data: str = ""  # "sample": a run without data trains on the bundled sample (engine/data may read it)
    no_cuda: bool = False  # act as if there were no CUDA GPU
    force_graphs: bool = False  # run recorded steps even off a CUDA GPU (on a CPU a "replay" runs eagerly)
    inject_oom_at_step: int = 0  # raise a CUDA out-of-memory error at this step (0: never)

    @classmethod
    def parse(cls, text: str) -> Switches:
        """Switches from `name=value,name=value`; an unknown name or a bad value is logged and left at
        its default (a measurement must never stop a run)."""
        kinds = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for part in text.split(","):
            if not part.strip():
                continue
            name, _, raw = part.partition("=")
            name, raw = name.strip(), raw.strip()
            if name not in kinds:
                log.warning("%s: unknown switch %r (known: %s)", ENV, name, ", ".join(kinds))
                continue
            try:
                values[name] = _convert(kinds[name], raw)
            except ValueError:
                log.warning("%s: %s=%r is not a %s: left at its default", ENV, name, raw, kinds[name])
        return cls(**values)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Switches:
        return cls.parse((os.environ if environ is None else environ).get(ENV, ""))

    def changed(self) -> dict[str, Any]:
        """The switches set away from the product's default (what the run_started event records)."""
        default = Switches()
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != getattr(default, f.name)}

    def with_(self, **values: Any) -> Switches:
        return replace(self, **values)


def _convert(kind: str, raw: str) -> Any:
    if kind == "bool":
        if raw.lower() in ("1", "true", "on", "yes", ""):
            return True
        if raw.lower() in ("0", "false", "off", "no"):
            return False
        raise ValueError(raw)
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    return raw


def encode(values: Mapping[str, Any], base: str = "") -> str:
    """`base` (a DPO_TUTOR_SWITCHES value) with `values` added or replaced: what a benchmark sets for a
    process it starts."""
    merged: dict[str, str] = {}
    for part in base.split(","):
        name, sep, raw = part.partition("=")
        if sep and name.strip():
            merged[name.strip()] = raw.strip()
    for name, value in values.items():
        merged[name] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return ",".join(f"{name}={raw}" for name, raw in merged.items())
