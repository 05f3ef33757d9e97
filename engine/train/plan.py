"""How a run will compute, decided once from its TrainConfig and the machine: the TrainPlan.

Every choice a run makes about how to compute (backend, device, precision, compiled layers, steps
recorded as CUDA graphs, packed pairs, collating workers, the reference pass's batch) is made here,
with the reason a person can read, and the run_started event records the whole plan: a run says why it
chose what it chose. What is learned is the config's; the plan only changes how it is computed.

`decide` is pure (the machine's facts are arguments, so tests can ask about any machine);
`plan_run` asks this machine (torch, for the GPU). Importing this module imports nothing heavy: the
train command checks the backend choice before torch is loaded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..config import BACKENDS, TrainConfig
from ..errors import UserError
from ..switches import Switches
from .fast.graphed_step import GRAPHED_LOSSES
from .machine import bf16_supported, cuda_available, unsloth_installed


@dataclass(frozen=True)
class BackendChoice:
    name: str  # unsloth | hf
    reason: str


@dataclass(frozen=True)
class Machine:
    """The facts about this machine a plan depends on."""

    cuda: bool
    unsloth: bool = False
    bf16: bool = True  # the GPU computes in bfloat16 (asked only with CUDA)
    world: int = 1  # processes training together (WORLD_SIZE)


@dataclass(frozen=True)
class TrainPlan:
    """How one run computes. Recorded whole in the run_started event (`to_dict`)."""

    backend: str  # hf | unsloth
    backend_reason: str
    device: str  # cuda | cpu
    world_size: int
    precision: str  # bfloat16 | float16 | float32 (the model's dtype; bf16/fp16 mixed precision with it)
    compile: bool  # decoder layers compiled with torch.compile
    compile_reason: str
    graphs: bool  # steps recorded once as CUDA graphs and replayed (the trainer may still decline the model)
    graphs_reason: str
    packing: bool  # recorded steps train on packed pairs (a pair a row, its prompt once; TRL's collator only)
    gradient_checkpointing: bool
    dataloader_workers: int
    reference_batch: int  # pairs per batch of the reference pass
    nonblocking_copies: bool  # recorded steps' batches copied to the GPU without the host waiting
    switches: Switches = field(default_factory=Switches)
    # a packed recorded step of more tokens (rows x padded row length) runs as parts of its pairs (0: whole);
    # decided once the model's size is known (`step_token_limit`)
    step_tokens: int = 0
    step_tokens_reason: str = ""

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"

    @property
    def bf16(self) -> bool:
        return self.precision == "bfloat16"

    @property
    def fp16(self) -> bool:
        return self.precision == "float16"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["switches"] = self.switches.changed()  # only what differs from the product
        return out

    def torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.precision)


def recipe_allows_graphs(config: TrainConfig) -> bool:
    """Whether the config's recipe is one a recorded step computes (the model is checked later, by the
    trainer): what `auto` weighs when it picks the backend and whether to compile."""
    return (
        config.cuda_graphs == "auto" and config.loss_type in GRAPHED_LOSSES and config.precompute_ref
        and config.lora_dropout == 0
    )


def select_backend(
    requested: str = "auto", *, cuda: bool | None = None, unsloth: bool | None = None, gpus: int = 1,
    graphed_recipe: bool = False,
) -> BackendChoice:
    """The backend for `requested` (auto|unsloth|hf) on one process, or a one-line UserError.

    graphed_recipe: the recipe's steps can be replayed as CUDA graphs on hf. On one CUDA GPU, auto then
    picks hf (faster than Unsloth for such a recipe, and a first step sooner); otherwise Unsloth is the
    fast path on CUDA.
    """
    requested = (requested or "auto").lower()
    if requested not in BACKENDS:
        raise UserError(f"unknown backend '{requested}'", where="--backend", remedy="use auto, unsloth or hf")
    cuda = cuda_available() if cuda is None else cuda
    unsloth = unsloth_installed() if unsloth is None else unsloth
    if requested == "hf":
        return BackendChoice("hf", "asked for hf (transformers + PEFT + TRL)")
    if requested == "unsloth":
        if not cuda:
            raise UserError(
                "--backend unsloth needs an NVIDIA GPU with CUDA, and this machine has none",
                where="backend",
                remedy="use --backend hf (or auto), which trains on CPU too",
            )
        if not unsloth:
            raise UserError(
                "--backend unsloth needs the unsloth package, which is not installed",
                where="backend",
                remedy="pip install 'dpo-tutor[gpu]', or use --backend hf",
            )
        if gpus > 1:
            raise UserError("Unsloth trains on one GPU here", where="backend", remedy="use --backend hf with --gpus")
        return BackendChoice("unsloth", "asked for unsloth (CUDA and Unsloth present)")
    if not cuda:
        return BackendChoice("hf", "auto: no CUDA GPU here, so transformers + PEFT + TRL (hf) on CPU")
    if gpus > 1:
        return BackendChoice("hf", f"auto: {gpus} GPUs requested and Unsloth trains on one, so hf via accelerate")
    if graphed_recipe:
        return BackendChoice(
            "hf", "auto: one CUDA GPU and a recipe recorded CUDA graphs can replay, so hf with graphed steps "
            "(faster than Unsloth for it)"
        )
    if not unsloth:
        return BackendChoice("hf", "auto: CUDA present but Unsloth is not installed, so hf")
    return BackendChoice("unsloth", "auto: CUDA GPU and Unsloth present, so unsloth")


def backend_for_processes(requested: str, world: int, *, cuda: bool | None = None) -> tuple[BackendChoice, str]:
    """The backend for `world` processes, and a one-line note when Unsloth was set aside ('' otherwise).

    Unsloth trains on one GPU: with several processes an explicit `--backend unsloth` falls back to hf
    (said in one line, and in backend_reason) instead of failing.
    """
    requested = (requested or "auto").lower()
    if world > 1 and requested == "unsloth":
        reason = f"asked for unsloth, but Unsloth trains on one GPU: hf through accelerate on {world} processes"
        return BackendChoice("hf", reason), f"--backend unsloth trains on one GPU; using hf for {world} processes"
    choice = select_backend(requested, cuda=cuda, gpus=world)
    note = choice.reason if world > 1 and requested == "auto" and "Unsloth" in choice.reason else ""
    return choice, note


def compile_decision(mode: str, *, backend: str, cuda: bool, graphs: bool = False) -> tuple[bool, str]:
    """(compile?, why) for the config's `compile` setting, before the run's length is known: `on`
    compiles (inside the recorded steps, where they are on), and `auto` on a CUDA GPU with hf waits for
    `long_run_compile`, because the compile (24-50 s) pays back only on long runs. graphs: the recipe's
    steps are replayed as CUDA graphs (said in the reason)."""
    if mode == "off":
        return False, "compile off"
    if backend == "unsloth":
        return False, "Unsloth compiles its own kernels"
    if mode == "on":
        return True, "compile on"
    if not cuda:
        return False, "auto: no CUDA GPU (compiling on a CPU costs more than it saves)"
    steps = "recorded steps" if graphs else "steps"
    return False, f"auto: {steps} compiled only on a run long enough to pay for the compile"


# Pairs a run must train before compiling the decoder layers under recorded steps pays for the compile,
# by model size (parameters up to): the compile's cost (135M: +24 s with inductor's cache warm, +50 s
# cold; 360M +33 s; 1.7B +46 s) over the time it saves a pair (135M: 547 against 330 pairs/s steady;
# 360M 282 against 184; 1.7B 123 against 84), one H200 (BENCHMARKS.md, issue 23), cold cache.
COMPILE_PAYS_AFTER_PAIRS = ((250e6, 41_000), (700e6, 17_500), (float("inf"), 12_500))


def compile_pays_after(parameters: float) -> int:
    """Pairs of training after which compiling a model of this size pays (COMPILE_PAYS_AFTER_PAIRS)."""
    return next(pairs for size, pairs in COMPILE_PAYS_AFTER_PAIRS if parameters <= size)


def long_run_compile(plan: TrainPlan, config: TrainConfig, *, pairs: int, parameters: float,
                     quantized: bool = False) -> TrainPlan:
    """The plan once the run's length and model are known: `compile auto` on a CUDA GPU with hf compiles the
    decoder layers when the run trains enough pairs for the compile to pay (`compile_pays_after`,
    measured with recorded steps; eager steps gain more a step, so the rule is safe for them too); not
    over a 4- or 8-bit base (bitsandbytes' layers break the compiler's graphs)."""
    if config.compile != "auto" or plan.compile or not plan.cuda or plan.backend != "hf":
        return plan
    if quantized:
        return replace(plan, compile_reason="auto: not over a 4- or 8-bit base (its layers break the compiler's graphs)")
    needed = compile_pays_after(parameters)
    size = f"{parameters / 1e6:,.0f}M parameters"
    if pairs < needed:
        return replace(plan, compile_reason=f"auto: {pairs:,} pairs to train; at {size} compiling pays after ~{needed:,}")
    return replace(plan, compile=True, compile_reason=f"auto: {pairs:,} pairs to train, and at {size} compiling pays after ~{needed:,}")


# The most tokens (rows x padded row length) a packed recorded step computes at once, by model size
# (parameters up to); a longer batch runs as parts of its pairs. A step's activations grow with its
# tokens, so a run's longest batches set its peak memory. Measured on one H200 (BENCHMARKS.md, issue 23):
# 135M, 32 rows of 640 tokens peak at 1.84 GiB compiled and 1.74 uncompiled, of 768 tokens at 2.14 and
# 2.04 (~0.074 GiB per 1,000 tokens); 360M, 32 rows of 640 at 3.26 GiB compiled and 16 of 640 at 2.07
# (~0.116 GiB per 1,000). At 1.7B (8.58 GiB, against Unsloth's 8.28) and 8B in 4 bits (21.73) whole steps
# were within the bounds: no limit.
STEP_TOKENS_BY_SIZE = ((250e6, 20_480), (700e6, 16_384), (float("inf"), 0))


def step_token_limit(plan: TrainPlan, config: TrainConfig, *, parameters: float) -> TrainPlan:
    """The plan once the model's size is known: the most tokens a packed recorded step computes at once
    (STEP_TOKENS_BY_SIZE, or the `step_tokens` switch). Parts train the same gradient (each part's mean
    loss weighed by its share of the pairs), except with TRL's "sft" term, whose mean runs over the whole
    batch's chosen tokens: then steps stay whole."""
    if not plan.packing:
        return plan
    if config.nll_weight > 0:
        return replace(plan, step_tokens=0, step_tokens_reason="whole steps: the sft term averages over the whole batch")
    limit = plan.switches.step_tokens
    if limit < 0:
        limit = next(tokens for size, tokens in STEP_TOKENS_BY_SIZE if parameters <= size)
        reason = f"at {parameters / 1e6:,.0f}M parameters" if limit else ""
    else:
        reason = "the step_tokens switch"
    if limit <= 0:
        return replace(plan, step_tokens=0, step_tokens_reason=reason or "whole steps")
    return replace(plan, step_tokens=limit, step_tokens_reason=reason)


def graphs_decision(config: TrainConfig, *, backend: str, cuda: bool, world: int,
                    force: bool = False) -> tuple[bool, str]:
    """(record steps as CUDA graphs?, why): `cuda_graphs` auto, a recipe they compute, one CUDA GPU with
    the hf backend (Unsloth runs its own compiled kernels; with several processes a replay would skip the
    gradient all-reduce DDP hooks into a step).
    force: the test switch that runs them off a GPU. Compiled layers (`--compile on`) are recorded too: a
    shape whose recording fails (it compiled) runs eagerly once and is recorded the next time."""
    if config.cuda_graphs != "auto":
        return False, "cuda_graphs off"
    if not recipe_allows_graphs(config):
        return False, "the recipe is one recorded steps do not compute (TRL's eager step)"
    if world > 1:
        return False, "several processes"
    if backend != "hf":
        return False, "Unsloth runs its own kernels"
    if not cuda and not force:
        return False, "no CUDA GPU"
    return True, "auto: one CUDA GPU, the hf backend and a recipe recorded steps compute"


def precision_for(precision: str, *, cuda: bool, bf16_supported: bool) -> str:
    """The model's dtype name: fp32 on a CPU; on a GPU as asked, auto preferring bf16."""
    if not cuda or precision == "fp32":
        return "float32"
    if precision == "fp16":
        return "float16"
    if precision == "bf16" or bf16_supported:
        return "bfloat16"
    return "float16"


def decide(config: TrainConfig, machine: Machine, *, tiny: bool = False, switches: Switches | None = None,
           backend: BackendChoice | None = None) -> TrainPlan:
    """The plan for `config` on `machine`; a one-line UserError for a setup this machine cannot run.

    backend: already chosen (the backend's own choice is `select_backend`'s, made here when None).
    """
    switches = switches or Switches()
    world = machine.world
    graphable = world == 1 and recipe_allows_graphs(config)
    if backend is None:
        if world > 1:
            backend, _note = backend_for_processes(config.backend, world, cuda=machine.cuda)
        else:
            backend = select_backend(config.backend, cuda=machine.cuda, unsloth=machine.unsloth,
                                     graphed_recipe=graphable)
    if tiny and backend.name == "unsloth":
        if config.backend != "auto":
            raise UserError("the tiny test model trains with the hf backend", where="backend",
                            remedy="use --backend hf or auto")
        backend = BackendChoice("hf", "auto: the tiny test model trains with hf")
    if config.optim == "adamw_8bit" and not machine.cuda:
        raise UserError("the 8-bit optimizer needs a CUDA GPU", where="optim", remedy="use adamw_torch")
    compiled, compile_reason = compile_decision(config.compile, backend=backend.name, cuda=machine.cuda,
                                                graphs=graphable)
    graphs, graphs_reason = graphs_decision(config, backend=backend.name, cuda=machine.cuda,
                                            world=world, force=switches.force_graphs)
    return TrainPlan(
        backend=backend.name,
        backend_reason=backend.reason,
        device="cuda" if machine.cuda else "cpu",
        world_size=world,
        precision=precision_for(config.precision, cuda=machine.cuda, bf16_supported=machine.bf16),
        compile=compiled,
        compile_reason=compile_reason,
        graphs=graphs,
        graphs_reason=graphs_reason,
        packing=graphs and switches.pack,
        gradient_checkpointing=config.gradient_checkpointing and backend.name == "hf",
        dataloader_workers=max(0, switches.dataloader_workers),
        reference_batch=switches.reference_batch if switches.reference_batch > 0 else config.batch_size * 2,
        nonblocking_copies=graphs and switches.nonblocking_copies,
        switches=switches,
    )


def this_machine(world: int) -> Machine:
    """This machine's facts (imports torch)."""
    cuda = cuda_available()
    return Machine(cuda=cuda, unsloth=unsloth_installed(), bf16=cuda and bf16_supported(), world=world)


def plan_run(config: TrainConfig, *, world: int, tiny: bool, switches: Switches | None = None) -> TrainPlan:
    """The plan for `config` on this machine (imports torch; the backend's own imports come after)."""
    return decide(config, this_machine(world), tiny=tiny, switches=switches or Switches.from_env())
