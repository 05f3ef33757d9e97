"""The trainer class our runs use: TRL's DPOTrainer, plus what makes its steps cheaper on the host.

Each addition changes how a step is computed, not what is learned (the tests compare each with TRL's
own step), and each is on only as `TrainerOptions` says (the run's plan):

- length-grouped batches: TRL's tokenized rows carry `prompt_ids` / `chosen_ids` / `rejected_ids`, not
  the `input_ids` transformers' `LengthGroupedSampler` looks for, so we give it each pair's length;
- steps and the reference pass replayed as recorded CUDA graphs (`fast/graphed_step.py`), on packed
  pairs (`fast/packing.py`; a batch of more tokens than the plan's `step_tokens` in parts), their logs
  read one step late (`fast/lagged_log.py`);
- otherwise the loss and reference pass without the padding mask (`fast/padding.py`: exact for TRL's
  right-padded rows);
- evaluation run eagerly when the decoder layers are compiled (no second compile for no-grad mode);
- batched tokenizing and a longest-first reference pass (`fast/fast_prep.py`), scored in eval mode;
- TRL's caches of tokenized rows and reference log-probs keyed so the next run of the same pairs finds
  them (`pairs_cache.py`), and a FLOP count that reuses the parameter count.

Importing this module imports TRL: a run imports it after its backend's `prepare()` (Unsloth patches
TRL when imported, and must come first).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from trl import DPOTrainer
from trl.trainer import dpo_trainer

from .fast import fast_prep, graphed_step, packing, padding
from .fast.compiled_layers import eager
from .fast.fast_prep import pair_lengths
from .fast.lagged_log import LaggedLogs
from .pairs_cache import frozen_fingerprint, rows_fingerprint

__all__ = ["REF_PROGRESS_S", "TrainerOptions", "TunedDPOTrainer", "pair_lengths", "scoring_mode", "trainer_class"]

REF_PROGRESS_S = 2.0  # how often the reference pass reports its progress

log = logging.getLogger("dpo_tutor.train")


@dataclass(frozen=True)
class TrainerOptions:
    """What TunedDPOTrainer adds to TRL's trainer, from the run's plan (plan.py) and switches."""

    group_by_length: bool = False
    compiled: bool = False  # the decoder layers are compiled: evaluate eagerly
    graphed: bool = False  # record steps as CUDA graphs where graphed_step supports the setup
    drop_padding_mask: bool = True  # TRL's right-padded rows without their mask (when not graphed)
    log_lag: bool = True
    graph_reference: bool = True
    graph_roomier: bool = True
    graph_warmup_each: bool = False
    checkpoint_fraction: float = 1.0
    pack: bool = True
    pack_row_tokens: int = 0
    step_tokens: int = 0  # a packed batch of more tokens than this runs as parts (0: whole)
    fast_prep: bool = True
    reference_eval: bool = True
    # Progress of the reference pass, for the UI: called with (dataset name, pairs scored, pairs in all,
    # finished) at its start, every REF_PROGRESS_S while it scores, and at its end (scored 0 of N when
    # finished means TRL found the log-probs in its cache). None: silent.
    ref_progress: Callable[[str, int, int, bool], None] | None = None

    @classmethod
    def for_run(cls, config, plan, ref_progress=None) -> TrainerOptions:
        """The options of a run with this TrainConfig and TrainPlan."""
        s = plan.switches
        return cls(
            group_by_length=config.group_by_length, compiled=plan.compile, graphed=plan.graphs,
            drop_padding_mask=s.drop_padding_mask, log_lag=s.log_lag, graph_reference=s.graph_reference,
            graph_roomier=s.graph_roomier, graph_warmup_each=s.graph_warmup_each,
            checkpoint_fraction=s.checkpoint_fraction, pack=plan.packing, pack_row_tokens=s.pack_row_tokens,
            step_tokens=plan.step_tokens, fast_prep=s.fast_prep, reference_eval=s.reference_eval,
            ref_progress=ref_progress,
        )

    @property
    def plain(self) -> bool:
        """Nothing of ours is asked for: TRL's own class (the bench's baseline)."""
        return not (self.group_by_length or self.compiled or self.drop_padding_mask or self.graphed)


def trainer_class(options: TrainerOptions) -> type:
    """TRL's DPOTrainer (as patched by Unsloth when Unsloth was imported first) when the options ask for
    nothing of ours, else TunedDPOTrainer. Build it with `make_trainer`."""
    return DPOTrainer if options.plain else TunedDPOTrainer


def make_trainer(options: TrainerOptions, **kwargs):
    """The run's trainer: TRL's class or ours (`trainer_class`), built with TRL's keyword arguments."""
    if options.plain:
        return DPOTrainer(**kwargs)
    return TunedDPOTrainer(options=options, **kwargs)


@contextlib.contextmanager
def _model_hash_of_frozen_weights():
    """While TRL's __init__ runs: its hash of the model (the key of its cache of reference log-probs)
    covers only what the reference is, the frozen weights (`frozen_fingerprint`, milliseconds), instead
    of every tensor (a second, and different for each seed's fresh adapter). TRL calls the module-level
    name `hash_module` once in __init__; there is no argument to pass it."""
    original = dpo_trainer.hash_module
    dpo_trainer.hash_module = frozen_fingerprint
    try:
        yield
    finally:
        dpo_trainer.hash_module = original


@dataclass
class _ReferencePass:
    name: str  # TRL's name of the dataset: "train" or "eval"
    total: int  # pairs to score
    scored: int = 0
    reported: float = 0.0  # time.monotonic() of the last report


@contextlib.contextmanager
def scoring_mode(model, enabled: bool = True):
    """The model in eval mode while the reference is scored, then every module back in its own mode.

    Why: the reference is the frozen base model, and eval mode is how a model is scored. It also spares
    Unsloth a compile: Unsloth compiles each decoder block once per grad mode, in training mode only, so
    a reference pass in training mode (TRL's, which leaves the mode as it is) compiled a no-grad graph
    used by nothing else. With no dropout (what the default recipe trains with) the two modes compute
    the same values on the hf backend. enabled False: TRL's way, the mode left as it is.
    """
    if not enabled:
        yield
        return
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


class TunedDPOTrainer(LaggedLogs, DPOTrainer):
    """TRL's DPOTrainer with our cheaper steps (see the module's note); `options` says which."""

    right_padded = None  # the hook, installed at first use (TRL's __init__ already runs the reference pass)
    _flop_parameters: int | None = None
    step_graphs = None  # graphed_step.StepGraphs once `use_graphs()` accepted this trainer
    graphs_note = ""  # why the steps are not graphed, or why graphing stopped
    pending_stats = None  # recorded steps' statistics (device tensors), read at the next log
    split_steps = 0  # micro-batches run as parts (packing.PARTS: more tokens than options.step_tokens)
    _ref_pass: _ReferencePass | None = None  # while a pass runs

    def __init__(self, *args, options: TrainerOptions, **kwargs):
        self.options = options  # before TRL's __init__, which runs the reference pass
        with _model_hash_of_frozen_weights():
            super().__init__(*args, **kwargs)

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        # TRL's tokenization, a thousand rows per tokenizer call instead of one (fast_prep.py)
        if self.options.fast_prep and fast_prep.batched_tokenization_applies(dataset, processing_class, args.world_size):
            return fast_prep.tokenize_pairs(dataset, processing_class, args, dataset_name)
        return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

    def _precompute_ref_logps(self, dataset, name, batch_size):
        # Scored in eval mode (scoring_mode), longest pairs first (batches padded to rows of like
        # length: fast_prep.py), then put back in the rows' own order.
        first = self.options.fast_prep and self.args.world_size == 1
        order = fast_prep.longest_first(dataset) if first else None
        with scoring_mode(self.model, self.options.reference_eval):
            if order is None:
                return self._scored_in_order(dataset, name, batch_size)
            scored = self._scored_in_order(dataset.select(order), name, batch_size)
        return scored.select(fast_prep.inverse(order))

    def _scored_in_order(self, dataset, name, batch_size):
        # Key TRL's cache of reference log-probs on the rows themselves, so the next run of the same
        # pairs finds it (pairs_cache.py).
        o = self.options
        try:
            import trl

            recipe = (f"trl {trl.__version__} max_length {self.args.max_length} {self.args.truncation_mode} "
                      f"bf16 {self.args.bf16} fp16 {self.args.fp16} device {self.accelerator.device.type} "
                      f"graphed {o.graphed} unmasked {o.drop_padding_mask} compiled {o.compiled} "
                      f"class {type(self).__mro__[1].__module__}")
            dataset._fingerprint = rows_fingerprint(dataset, recipe)
        except (AttributeError, KeyError, TypeError, ValueError):
            pass  # TRL's own fingerprint: correct, only not found again by the next run
        self._ref_pass = _ReferencePass(name, len(dataset))
        self._report_ref_pass(force=True)
        try:
            return super()._precompute_ref_logps(dataset, name, batch_size)
        finally:
            self._report_ref_pass(force=True, done=True)
            self._ref_pass = None

    def _report_ref_pass(self, force: bool = False, done: bool = False) -> None:
        progress, current = self.options.ref_progress, self._ref_pass
        if progress is None or current is None:
            return
        now = time.monotonic()
        if force or now - current.reported >= REF_PROGRESS_S:
            current.reported = now
            try:
                progress(current.name, current.scored, current.total, done)
            except Exception:  # noqa: BLE001 - a progress report never costs the run
                pass

    def use_graphs(self) -> bool:
        """Switch to recorded steps when supported; return whether they are on."""
        if self.step_graphs is not None:
            return True  # already made for the reference pass
        if self.graphs_note:
            return False  # decided before (unsupported, or a recording failed)
        reason = graphed_step.unsupported_reason(self)
        if reason is None:
            pad_id = getattr(self, "pad_token_id", None)
            self.step_graphs = graphed_step.StepGraphs(
                self.model, graphed_step.PreferenceLoss.from_trainer(self), int(self.args.max_length or 0),
                pad_id=int(pad_id) if pad_id is not None else 0,
                roomier=self.options.graph_roomier, warm_each=self.options.graph_warmup_each,
                # compiled layers may compile for a new shape, which a recording cannot hold: that
                # shape then runs eagerly once and is recorded the next time
                retry_failed=self.options.compiled,
                checkpoint_fraction=self.options.checkpoint_fraction,
            )
        self.graphs_note = reason or ""
        return self.step_graphs is not None

    def get_train_dataloader(self):
        # Recorded steps train on packed rows (packing.py: each prompt once, answers' tokens only);
        # the collator adds them to TRL's tensors. Evaluation keeps TRL's collator and step.
        if not (self.options.pack and packing.applies(self)):
            return super().get_train_dataloader()
        standard = self.data_collator
        self.data_collator = packing.PackingCollator(
            standard, self.args.max_length, int(standard.pad_token_id),
            self.options.pack_row_tokens, self.options.step_tokens,
        )
        try:
            return super().get_train_dataloader()
        finally:
            self.data_collator = standard

    def training_step(self, model, inputs, num_items_in_batch=None):
        graphs = self.step_graphs
        if graphs is None or not self._graphable(inputs):
            self._flush_log()  # TRL's step adds its metrics now: the lagged step's go first
            inputs = {k: v for k, v in inputs.items() if not k.startswith("pack_")}
            return super().training_step(model, inputs, num_items_in_batch)
        parts = inputs.get(packing.PARTS) or [inputs]
        if self._lagged is not None and not all(graphs.knows(part) for part in parts):
            self._flush_log()  # recording a new shape waits for the GPU: log the last step first
        model.train()
        inputs = self._prepare_inputs(inputs)
        scale = 1.0
        if (not self.model_accepts_loss_kwargs or num_items_in_batch is None) and self.compute_loss_func is None:
            scale = 1.0 / self.current_gradient_accumulation_steps  # as Trainer.training_step scales
        if packing.PARTS in inputs:
            stats = graphs.step_in_parts(inputs[packing.PARTS], scale)
            self.split_steps += 1
        else:
            stats = graphs.step(inputs, scale)
        if graphs.broken:
            self._stop_graphs(graphs)
        # Read at the next log, not now: reading waits for the GPU, and meanwhile the Trainer
        # launches the gradient clipping and the optimizer step.
        self.pending_stats = [*(self.pending_stats or []), stats]
        return stats[0] * scale

    def log(self, logs, start_time=None):
        if self.pending_stats:
            import torch

            for values in torch.stack(self.pending_stats).tolist():  # one wait for the GPU
                graphed_step.record_metrics(self, values)
            self.pending_stats = None
        if self.step_graphs is not None and "loss" in logs:
            # shapes recorded so far: a step that recorded one is a one-off, not the steady state
            logs.setdefault("cuda_graph_recordings", self.step_graphs.recordings["step"])
        return super().log(logs, start_time)

    def _graphable(self, inputs, reference: bool = False) -> bool:
        ids = inputs.get("input_ids")
        refs = {"ref_chosen_logps", "ref_rejected_logps"}
        return (
            ids is not None and ids.dim() == 2 and ids.shape[0] % 2 == 0
            and (reference or refs <= set(inputs))
            and set(inputs) <= {"input_ids", "attention_mask", "completion_mask", packing.PARTS,
                                *graphed_step.PACKED_KEYS} | refs
        )

    def _unmasked(self):
        if not self.options.drop_padding_mask:
            return contextlib.nullcontext()
        if self.right_padded is None:
            self.right_padded = padding.RightPaddedBatches(self.model)
        return self.right_padded.active()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        with self._unmasked():
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def compute_ref_log_probs(self, model, inputs):
        logps = self._reference_log_probs(model, inputs)
        if self._ref_pass is not None and "input_ids" in inputs:
            self._ref_pass.scored += int(inputs["input_ids"].shape[0]) // 2  # chosen and rejected rows
            self._report_ref_pass()
        return logps

    def _reference_log_probs(self, model, inputs):
        # TRL's __init__ runs the reference pass: graphs, when on, are made here first.
        if (self.options.graphed and self.options.graph_reference and self.ref_model is None
                and self._graphable(inputs, reference=True)
                and self.use_graphs()):
            graphs = self.step_graphs
            logps = graphs.reference(self._prepare_inputs(inputs))
            if graphs.broken:
                self._stop_graphs(graphs)
            return logps.chunk(2, dim=0)
        with self._unmasked():
            return super().compute_ref_log_probs(model, inputs)

    def _stop_graphs(self, graphs) -> None:
        self.graphs_note = f"recording failed ({graphs.broken}); TRL's eager steps from here"
        log.warning("CUDA graphs: %s", self.graphs_note)
        self.step_graphs = None

    def floating_point_ops(self, inputs) -> int:
        """transformers' estimate (6 x tokens x non-embedding parameters), the count taken once."""
        if "input_ids" not in inputs or not hasattr(self.model, "num_parameters"):
            return 0
        if self._flop_parameters is None:
            self._flop_parameters = self.model.num_parameters(exclude_embeddings=True)
        return 6 * inputs["input_ids"].numel() * self._flop_parameters

    def _get_train_sampler(self, train_dataset=None):
        if not self.options.group_by_length:
            return super()._get_train_sampler(train_dataset)
        import torch
        from transformers.trainer_pt_utils import LengthGroupedSampler

        dataset = train_dataset if train_dataset is not None else self.train_dataset
        # Seeded: the same run (and a resumed one, which replays the epoch's order to skip what it
        # did) gets the same batches.
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return LengthGroupedSampler(
            self.args.train_batch_size * self.args.gradient_accumulation_steps,
            lengths=pair_lengths(dataset),
            generator=torch.Generator().manual_seed(seed),
        )

    def evaluate(self, *args, **kwargs):
        if not self.options.compiled:
            return super().evaluate(*args, **kwargs)
        with eager():
            return super().evaluate(*args, **kwargs)

