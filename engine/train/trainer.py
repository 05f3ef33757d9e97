"""The trainer class our runs use: TRL's DPOTrainer, plus length-grouped batches when asked, and
evaluation run eagerly when the decoder layers are compiled (no second compile for no-grad mode).

Length grouping is ours because TRL's tokenized preference rows carry `prompt_ids`, `chosen_ids` and
`rejected_ids` rather than the `input_ids` that transformers' `LengthGroupedSampler` looks for: we give
it the length of the longer side of each pair, so pairs of similar length share a batch and little of
a batch is padding. Everything else (loss, metrics, reference handling) is TRL's own.

Host-side savings on every step (the step of a 135M model is bound by the host, BENCHMARKS.md): on
one CUDA GPU, steps and the reference pass replayed as recorded CUDA graphs (`graphed_step.py`);
otherwise the loss and the reference pass run without the padding mask (`padding.py`: exact for TRL's
right-padded rows); and the FLOP count transformers logs reuses the parameter count instead of
walking every parameter of the model again at each step. Recorded steps' logs are read one step late,
so the GPU always has a step queued (`lagged_log.py`), and train on packed pairs, each prompt computed
once (`packing.py`, through the train dataloader's collator). The start-up passes, tokenizing and the
reference pass, are batched and length-ordered (`fast_prep.py`).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

REF_PROGRESS_S = 2.0  # how often the reference pass reports its progress


def graph_reference() -> bool:
    """Whether the reference pass is replayed as recorded graphs too (DPO_TUTOR_GRAPH_REFERENCE=0: eager,
    a measurement knob)."""
    from .knobs import switched_on

    return switched_on("DPO_TUTOR_GRAPH_REFERENCE")


@dataclass
class _ReferencePass:
    name: str  # TRL's name of the dataset: "train" or "eval"
    total: int  # pairs to score
    scored: int = 0
    reported: float = 0.0  # time.monotonic() of the last report


@contextlib.contextmanager
def scoring_mode(model):
    """The model in eval mode while the reference is scored, then every module back in its own mode.

    Why: the reference is the frozen base model, and eval mode is how a model is scored. It also saves
    Unsloth's first step most of a compile: Unsloth compiles each decoder block once per grad mode, in
    training mode only, so a reference pass in training mode (TRL's, which leaves the mode as it is)
    compiled a no-grad graph used by nothing else: on the H200, with empty compile caches, 64.2 -> 48.2 s
    to Unsloth's first step (BENCHMARKS.md, ninth round). With no dropout (what the default recipe
    trains with) the two modes compute the same values on the hf backend.
    """
    from .knobs import switched_on

    if not switched_on("DPO_TUTOR_REFERENCE_EVAL"):  # "0": TRL's way, the mode left as it is (a measurement knob)
        yield
        return
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def pair_lengths(dataset) -> list[int]:
    """Tokens of prompt + the longer answer, for each tokenized preference row."""
    return [
        len(p) + max(len(c), len(r))
        for p, c, r in zip(dataset["prompt_ids"], dataset["chosen_ids"], dataset["rejected_ids"], strict=True)
    ]


def trainer_class(group_by_length: bool, compiled: bool = False, graphed: bool = False):
    """TRL's DPOTrainer (as patched by Unsloth when Unsloth was imported first), or a subclass of it.

    graphed: train with recorded CUDA graphs where `graphed_step` supports the setup (else TRL's step).
    """
    from trl import DPOTrainer

    from . import padding

    drop_padding_mask = padding.enabled()
    if not group_by_length and not compiled and not drop_padding_mask and not graphed:
        return DPOTrainer  # plain TRL (the bench's baseline)

    from .lagged_log import LaggedLogs

    class TunedDPOTrainer(LaggedLogs, DPOTrainer):
        right_padded = None  # the hook, installed at first use (TRL's __init__ already runs the reference pass)
        _flop_parameters: int | None = None
        step_graphs = None  # graphed_step.StepGraphs once `use_graphs()` accepted this trainer
        graphs_note = ""  # why the steps are not graphed, or why graphing stopped
        pending_stats = None  # recorded steps' statistics (device tensors), read at the next log
        # Progress of the reference pass, for the UI: called with (dataset name, pairs scored, pairs in
        # all) at its start, every REF_PROGRESS_S while it scores, and at its end (scored 0 of N then
        # means TRL found the log-probs in its cache). Set by the driver; None: silent.
        ref_progress = None
        _ref_pass: _ReferencePass | None = None  # while a pass runs

        def __init__(self, *args, **kwargs):
            # TRL keys its cache of reference log-probs on a hash of the model; ours hashes only what
            # the reference is (the frozen weights), in milliseconds instead of ~1 s (dataset_cache.py).
            from trl.trainer import dpo_trainer

            from .dataset_cache import frozen_fingerprint

            trl_hash = dpo_trainer.hash_module
            dpo_trainer.hash_module = frozen_fingerprint
            try:
                super().__init__(*args, **kwargs)
            finally:
                dpo_trainer.hash_module = trl_hash

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            # TRL's tokenization, a thousand rows per tokenizer call instead of one (fast_prep.py)
            from . import fast_prep

            if fast_prep.batched_tokenization_applies(dataset, processing_class, args.world_size):
                return fast_prep.tokenize_pairs(dataset, processing_class, args, dataset_name)
            return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

        def _precompute_ref_logps(self, dataset, name, batch_size):
            # Scored in eval mode (scoring_mode), longest pairs first (batches padded to rows of like
            # length: fast_prep.py), then put back in the rows' own order.
            from . import fast_prep

            order = fast_prep.longest_first(dataset) if self.args.world_size == 1 else None
            with scoring_mode(self.model):
                if order is None:
                    return self._scored_in_order(dataset, name, batch_size)
                scored = self._scored_in_order(dataset.select(order), name, batch_size)
            return scored.select(fast_prep.inverse(order))

        def _scored_in_order(self, dataset, name, batch_size):
            # Key TRL's cache of reference log-probs on the rows themselves, so the next run of the same
            # pairs finds it (dataset_cache.py).
            from .dataset_cache import rows_fingerprint

            try:
                import trl

                recipe = (f"trl {trl.__version__} max_length {self.args.max_length} {self.args.truncation_mode} "
                          f"bf16 {self.args.bf16} fp16 {self.args.fp16} device {self.accelerator.device.type} "
                          f"graphed {graphed} unmasked {drop_padding_mask} compiled {compiled} "
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
            progress, current = type(self).ref_progress, self._ref_pass
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
            from . import graphed_step

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
                )
            self.graphs_note = reason or ""
            return self.step_graphs is not None

        def get_train_dataloader(self):
            # Recorded steps train on packed rows (packing.py: each prompt once, answers' tokens only);
            # the collator adds them to TRL's tensors. Evaluation keeps TRL's collator and step.
            from . import packing

            if not packing.applies(self):
                return super().get_train_dataloader()
            standard = self.data_collator
            self.data_collator = packing.PackingCollator(
                standard, self.args.max_length, int(standard.pad_token_id),
                packing.pack_row_tokens(),
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
            if self._lagged is not None and not graphs.knows(inputs):
                self._flush_log()  # recording a new shape waits for the GPU: log the last step first
            model.train()
            inputs = self._prepare_inputs(inputs)
            scale = 1.0
            if (not self.model_accepts_loss_kwargs or num_items_in_batch is None) and self.compute_loss_func is None:
                scale = 1.0 / self.current_gradient_accumulation_steps  # as Trainer.training_step scales
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

                from . import graphed_step

                for values in torch.stack(self.pending_stats).tolist():  # one wait for the GPU
                    graphed_step.record_metrics(self, values)
                self.pending_stats = None
            if self.step_graphs is not None and "loss" in logs:
                # shapes recorded so far: a step that recorded one is a one-off, not the steady state
                logs.setdefault("cuda_graph_recordings", self.step_graphs.recordings["step"])
            return super().log(logs, start_time)

        def _graphable(self, inputs, reference: bool = False) -> bool:
            from . import graphed_step

            ids = inputs.get("input_ids")
            refs = {"ref_chosen_logps", "ref_rejected_logps"}
            return (
                ids is not None and ids.dim() == 2 and ids.shape[0] % 2 == 0
                and (reference or refs <= set(inputs))
                and set(inputs) <= {"input_ids", "attention_mask", "completion_mask", *graphed_step.PACKED_KEYS} | refs
            )

        def _unmasked(self):
            if not drop_padding_mask:
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
            if (graphed and self.ref_model is None and graph_reference() and self._graphable(inputs, reference=True)
                    and self.use_graphs()):
                graphs = self.step_graphs
                logps = graphs.reference(self._prepare_inputs(inputs))
                if graphs.broken:
                    self._stop_graphs(graphs)
                return logps.chunk(2, dim=0)
            with self._unmasked():
                return super().compute_ref_log_probs(model, inputs)

        def _stop_graphs(self, graphs) -> None:
            import logging

            self.graphs_note = f"recording failed ({graphs.broken}); TRL's eager steps from here"
            logging.getLogger("dpo_tutor.train").warning("CUDA graphs: %s", self.graphs_note)
            self.step_graphs = None

        def floating_point_ops(self, inputs) -> int:
            """transformers' estimate (6 x tokens x non-embedding parameters), the count taken once."""
            if "input_ids" not in inputs or not hasattr(self.model, "num_parameters"):
                return 0
            if self._flop_parameters is None:
                self._flop_parameters = self.model.num_parameters(exclude_embeddings=True)
            return 6 * inputs["input_ids"].numel() * self._flop_parameters

        def _get_train_sampler(self, train_dataset=None):
            if not group_by_length:
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
            if not compiled:
                return super().evaluate(*args, **kwargs)
            from .compile import eager

            with eager():
                return super().evaluate(*args, **kwargs)

    return TunedDPOTrainer
