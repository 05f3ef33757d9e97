"""Recorded (CUDA-graph) training steps: our step must train exactly as TRL's step does.

A CPU cannot record CUDA graphs, so here every part but the recording runs: the padding to bucket
lengths, our loss and metrics in place of TRL's `_compute_loss`, gradients accumulated into bound
buffers (with gradient accumulation), the scale, and the trainer's bookkeeping. On a CPU a "replay"
runs the same step eagerly. The recording itself is checked on the GPU (BENCHMARKS.md).
"""

from __future__ import annotations

import pytest
from conftest import set_switches
from dpo_tutor.engine.config import TrainConfig
from dpo_tutor.engine.events import read_events
from dpo_tutor.engine.train.fast import graphed_step

METRICS = ("loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "logps/chosen", "logps/rejected",
           "entropy", "mean_token_accuracy", "logits/chosen", "grad_norm")


def _run(tmp_path, name, **changes):
    from dpo_tutor.engine.train.run import run_training

    settings = dict(
        model="tiny", max_steps=6, batch_size=4, grad_accum=2, max_length=512, learning_rate=5e-3, beta=0.5,
        warmup_ratio=0.0, eval_steps=3, eval_pairs=4, save_steps=0, seed=3, group_by_length=True,
    )
    config = TrainConfig(**{**settings, **changes})
    result = run_training(config, tmp_path / name)
    assert result.state == "finished"
    return list(read_events(tmp_path / name))


def _steps(events):
    return [e["metrics"] for e in events if e["type"] == "step"]


LOSSES = {  # each loss a recorded step computes, as TRL's step computes it
    "sigmoid": {},
    "ipo": {"loss_type": "ipo"},
    "robust": {"loss_type": "robust", "label_smoothing": 0.2},
    "sigmoid+nll": {"nll_weight": 0.5},
}


@pytest.mark.parametrize(("packed", "loss"), [
    (True, "sigmoid"), (False, "sigmoid"),  # the default (packing.py), and TRL's two rows a pair
    (True, "ipo"), (False, "ipo"), (True, "robust"), (True, "sigmoid+nll"), (False, "sigmoid+nll"),
])
def test_graphed_steps_train_exactly_as_trls_steps(tmp_path, monkeypatch, packed, loss):
    recipe = LOSSES[loss]
    plain = _run(tmp_path, "plain", **recipe)
    set_switches(monkeypatch, pack=packed, force_graphs=True)  # force_graphs: as on a CUDA GPU
    monkeypatch.setattr(graphed_step, "BUCKET", 16)  # the bundled sample's pairs are short: several shapes
    recorded = []
    original = graphed_step.StepGraphs.step

    def counting(self, batch, scale):
        recorded.append((tuple(batch["input_ids"].shape), scale, "pack_input_ids" in batch))
        return original(self, batch, scale)

    monkeypatch.setattr(graphed_step.StepGraphs, "step", counting)
    from dpo_tutor.engine.train.fast import lagged_log as trainer_module

    written = []  # (the step a log is of, the step the trainer is at when it is written)
    original_log = trainer_module._LaggedLog.__init__

    def noting(self, *args, **kwargs):
        original_log(self, *args, **kwargs)
        written.append(self)

    monkeypatch.setattr(trainer_module._LaggedLog, "__init__", noting)
    graphed = _run(tmp_path, "graphed", **recipe)

    assert len(recorded) == 12  # 6 steps x 2 accumulated micro-batches, all through our step
    assert {scale for _, scale, _ in recorded} == {0.5}
    assert {was_packed for *_, was_packed in recorded} == {packed}
    phases = [e.get("message", "") for e in graphed if e["type"] == "phase"]
    assert any(m.startswith("CUDA graphs: each step shape") for m in phases)
    finished = [e for e in graphed if e["type"] == "finished"][0]["summary"]["cuda_graphs"]
    recorded, replayed = finished["recorded"], finished["replayed"]
    assert recorded["step"] >= 2 and replayed["step"] >= 1  # several shapes, and shapes seen again
    assert recorded["step"] + replayed["step"] == 12
    # the reference pass too (TRL's two rows a pair, packed or not): 63 training pairs in batches of 8,
    # and the 4 held-out pairs
    assert recorded["reference"] >= 2 and recorded["reference"] + replayed["reference"] == 8 + 1

    a, b = _steps(plain), _steps(graphed)
    assert len(a) == len(b) == 6
    # Logs are read one step late (the GPU keeps a step queued): the same steps, epochs and learning
    # rates, in order, each eval after its step, and every step's log written by the end.
    assert [e.step for e in written] == [1, 2, 3, 4, 5, 6]

    def order(events):
        return [(e["type"], e["step"], e.get("epoch"), e.get("metrics", {}).get("learning_rate"))
                for e in events if e["type"] in ("step", "eval")]

    assert order(graphed) == order(plain)
    # The packed layout sums in another order; IPO's squared loss (and its larger steps) carries that
    # float noise further than the sigmoid's over 6 steps at lr 5e-3: 1e-5 rel at step 1, ~3e-4 at step 3.
    tolerance = 1e-4 if loss == "sigmoid" else 1e-3
    for number, (step_a, step_b) in enumerate(zip(a, b, strict=True), start=1):
        for key in METRICS:
            if key.startswith("rewards/") and number == 1:
                # policy == reference: the rewards are the rounding of log-prob sums of ~-900 (~1e-5)
                # and their sign decides TRL's strict ">" of the accuracy
                if key != "rewards/accuracies":
                    assert abs(step_b[key]) < 1e-4 and abs(step_a[key]) < 1e-4
                continue
            assert step_b[key] == pytest.approx(step_a[key], rel=tolerance, abs=tolerance / 10), (number, key)
    # the weights moved (equal metrics cannot come from two runs that both did nothing)
    assert max(abs(step["rewards/margins"]) for step in a[1:]) > 1e-2
    evals_a = [e["metrics"]["eval_loss"] for e in plain if e["type"] == "eval"]
    evals_b = [e["metrics"]["eval_loss"] for e in graphed if e["type"] == "eval"]
    assert evals_b == pytest.approx(evals_a, rel=tolerance, abs=tolerance / 10) and len(evals_a) == 2


def test_long_batches_run_in_parts_and_train_as_trls_steps(tmp_path, monkeypatch):
    # A packed batch of more tokens than the plan's step_tokens runs as parts of its pairs into the same
    # gradients: what the run learns and logs is TRL's, and the run says how many steps it split.
    plain = _steps(_run(tmp_path, "plain", eval_steps=0))
    set_switches(monkeypatch, force_graphs=True, step_tokens=1024)  # 4 rows of 256 tokens whole, longer in parts
    events = _run(tmp_path, "parts", eval_steps=0)
    phases = [e for e in events if e["type"] == "phase" and e.get("step_tokens")]
    assert len(phases) == 1 and "more than 1,024 tokens runs in parts" in phases[0]["message"]
    assert [e for e in events if e["type"] == "run_started"][0]["plan"]["step_tokens"] == 0  # decided later
    graphs = [e for e in events if e["type"] == "finished"][0]["summary"]["cuda_graphs"]
    assert 0 < graphs["split_steps"] < 12  # of 6 steps x 2 micro-batches: some long, some not (8 in parts)
    parts = _steps(events)
    assert len(parts) == len(plain) == 6
    for number, (step_a, step_b) in enumerate(zip(plain, parts, strict=True), start=1):
        for key in METRICS:
            if key.startswith("rewards/") and number == 1:
                continue  # policy == reference: rounding noise (see the test above)
            assert step_b[key] == pytest.approx(step_a[key], rel=1e-4, abs=1e-5), (number, key)
    assert max(abs(step["rewards/margins"]) for step in plain[1:]) > 1e-2  # the weights moved


def test_recorded_steps_over_compiled_layers_train_as_trls_steps(tmp_path, monkeypatch):
    # --compile on with recorded steps: each decoder layer compiled, steps through our recorded path. On a
    # CPU the compiler is dynamo with aot_eager (no code generation) and a "replay" runs eagerly; the
    # inductor kernels inside real recordings are measured on the GPU (BENCHMARKS.md, issue 23).
    plain = _steps(_run(tmp_path, "plain", max_steps=3, eval_steps=0))
    set_switches(monkeypatch, force_graphs=True, compile_backend="aot_eager")
    events = _run(tmp_path, "compiled", max_steps=3, eval_steps=0, compile="on")
    phases = [e for e in events if e["type"] == "phase" and e.get("compiled_layers")]
    assert len(phases) == 1 and phases[0]["compiled_layers"] == 2
    graphs = [e for e in events if e["type"] == "finished"][0]["summary"]["cuda_graphs"]
    assert graphs["recorded"]["step"] + graphs["replayed"]["step"] == 6  # 3 steps x 2 micro-batches, ours
    compiled = _steps(events)
    assert len(compiled) == len(plain) == 3
    for step_a, step_b in zip(plain, compiled, strict=True):
        assert step_b["loss"] == pytest.approx(step_a["loss"], rel=1e-4, abs=1e-5)
        assert step_b["grad_norm"] == pytest.approx(step_a["grad_norm"], rel=1e-4, abs=1e-5)
    assert abs(compiled[-1]["loss"] - compiled[0]["loss"]) > 1e-4  # it learned something


def test_bucket_lengths():
    assert graphed_step.bucket_length(1, 512) == 64
    assert graphed_step.bucket_length(64, 512) == 64
    assert graphed_step.bucket_length(65, 512) == 128
    assert graphed_step.bucket_length(500, 512) == 512
    assert graphed_step.bucket_length(130, 150) == 150  # never past max_length
    assert graphed_step.bucket_length(600, 512) == 600  # longer than max_length: its own shape


def test_graphs_are_wanted_only_for_hf_on_a_gpu():
    from dpo_tutor.engine.train.plan import graphs_decision

    def wanted(mode, *, backend, cuda, world=1, compile="off"):
        return graphs_decision(TrainConfig(cuda_graphs=mode, compile=compile), backend=backend, cuda=cuda,
                               world=world)[0]

    assert wanted("auto", backend="hf", cuda=True)
    assert wanted("auto", backend="hf", cuda=True, compile="on")  # recorded over the compiled layers
    assert not wanted("off", backend="hf", cuda=True)
    assert not wanted("auto", backend="unsloth", cuda=True)
    assert not wanted("auto", backend="hf", cuda=False)
    assert not wanted("auto", backend="hf", cuda=True, world=2)


def test_recipes_and_models_that_graphs_do_not_cover_keep_trls_step():
    from types import SimpleNamespace

    from dpo_tutor.engine.models import build_tiny_model
    from dpo_tutor.engine.train.plan import recipe_allows_graphs
    from peft import LoraConfig, get_peft_model

    assert recipe_allows_graphs(TrainConfig())
    assert recipe_allows_graphs(TrainConfig(compile="on"))  # compiled layers are recorded too
    for recipe in LOSSES.values():
        assert recipe_allows_graphs(TrainConfig(**recipe)), recipe
    for change in ({"loss_type": "hinge"}, {"precompute_ref": False}, {"lora_dropout": 0.1}, {"cuda_graphs": "off"}):
        assert not recipe_allows_graphs(TrainConfig(**change)), change

    def trainer(**lora):
        model, _ = build_tiny_model()
        model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", **lora))
        model.train()
        return SimpleNamespace(loss_types=["sigmoid"], loss_weights=[1.0], f_divergence_type="reverse_kl",
                               ld_alpha=None, use_weighting=False, aux_loss_enabled=False,
                               precompute_ref_logps=True, args=SimpleNamespace(), model=model)

    assert graphed_step.unsupported_reason(trainer()) is None
    assert graphed_step.unsupported_reason(trainer(use_dora=True)) == "DoRA"
    assert "dropout" in graphed_step.unsupported_reason(trainer(lora_dropout=0.1))
    hinge = trainer()
    hinge.loss_types = ["hinge"]
    assert graphed_step.unsupported_reason(hinge) == (
        "loss ['hinge'] (graphed steps do sigmoid, ipo, robust, optionally + sft)")
    rpo = trainer()
    rpo.loss_types, rpo.loss_weights = ["sigmoid", "sft"], [1.0, 0.5]
    assert graphed_step.unsupported_reason(rpo) is None
    assert graphed_step.PreferenceLoss.from_trainer(SimpleNamespace(
        loss_types=["robust", "sft"], loss_weights=[1.0, 0.3], beta=0.2, label_smoothing=0.1,
    )) == graphed_step.PreferenceLoss("robust", 0.2, 0.1, 0.3)


class _FlakyRecordings(graphed_step.StepGraphs):
    """StepGraphs whose "GPU" is the CPU and whose recordings fail for the shapes in `fail` (as many
    times as listed): the decisions around a recording, without a GPU."""

    def __init__(self, fail, **kwargs):
        import torch

        super().__init__(torch.nn.Linear(2, 2), graphed_step.PreferenceLoss(), 512, **kwargs)
        self.fail = dict(fail)
        self.ran = []  # (length, how): each computation that ran

    def _records_on(self, device):
        return True

    def _warm_up(self, kind, inputs, scale):
        return self._compute(kind, inputs, scale, how="warm-up")

    def _compute(self, kind, inputs, scale, how="eager"):
        self.ran.append((inputs["input_ids"].shape[1], how))
        return how

    def _record(self, key, inputs, scale):
        if self.fail.get(key[2], 0):
            self.fail[key[2]] -= 1
            raise RuntimeError("a new shape compiled while recording")
        self.recorded[key] = graphed_step._Recorded(None, inputs, scale, None)  # a "replay" runs eagerly
        self.recordings["step"] += 1


def _batch(length):
    import torch

    ids = torch.ones((2, length), dtype=torch.long)
    one = torch.zeros(1)
    return {"input_ids": ids, "attention_mask": ids, "completion_mask": ids, "ref_chosen_logps": one,
            "ref_rejected_logps": one}


def test_with_compiled_layers_a_shape_whose_recording_failed_is_warmed_up_and_recorded_next_time():
    graphs = _FlakyRecordings({128: 1, 192: 2}, retry_failed=True)
    for length in (64, 128, 128, 128, 192, 192):
        graphs.step(_batch(length), 1.0)
        assert graphs.broken == "" or length == 192
    assert graphs.ran == [
        (64, "warm-up"),  # the first shape: warmed up, then recorded
        (128, "eager"),  # recorded straight away: failed, so this batch runs eagerly, not the run
        (128, "warm-up"), (128, "eager"),  # next time: warmed up and recorded; then replayed
        (192, "eager"), (192, "warm-up"),  # failed twice: recording stops for the run
    ]
    assert graphs.broken == "RuntimeError: a new shape compiled while recording"
    assert set(graphs.failed) == {("step", 2, 128), ("step", 2, 192)}


def test_without_compiled_layers_the_first_failed_recording_stops_recording():
    graphs = _FlakyRecordings({128: 1})
    graphs.step(_batch(64), 1.0)
    graphs.step(_batch(128), 1.0)
    assert graphs.broken == "RuntimeError: a new shape compiled while recording"
    assert graphs.ran == [(64, "warm-up"), (128, "eager")]
