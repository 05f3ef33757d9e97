"""The speed options change how a run computes, not what it learns."""

from __future__ import annotations

import pytest
from conftest import set_switches
from dpo_tutor.engine.config import TrainConfig
from dpo_tutor.engine.events import read_events
from dpo_tutor.engine.train.fast.fast_prep import pair_lengths


def _losses(tmp_path, name, callbacks=(), **changes) -> list[float]:
    from dpo_tutor.engine.train.run import run_training

    settings = dict(
        model="tiny", max_steps=4, batch_size=4, grad_accum=1, max_length=96, learning_rate=5e-3, beta=0.5,
        warmup_ratio=0.0, eval_steps=0, save_steps=0, seed=3, group_by_length=False,
    )
    config = TrainConfig(**{**settings, **changes})
    result = run_training(config, tmp_path / name, callbacks=callbacks)
    assert result.state == "finished"
    return [e["metrics"]["loss"] for e in read_events(tmp_path / name) if e["type"] == "step"]


def test_precomputed_reference_gives_the_same_losses_as_scoring_it_every_step(tmp_path):
    every_step = _losses(tmp_path, "every", precompute_ref=False)
    once = _losses(tmp_path, "once", precompute_ref=True)
    assert len(every_step) == len(once) == 4
    assert every_step == pytest.approx(once, rel=1e-4, abs=1e-5)
    assert every_step[0] == pytest.approx(0.6931, abs=1e-3)  # step 1: policy == reference, a tie


def test_length_grouped_run_trains_and_is_reproducible(tmp_path):
    losses = _losses(tmp_path, "grouped", group_by_length=True)
    assert len(losses) == 4 and all(loss == loss for loss in losses)  # finite, no NaN
    assert _losses(tmp_path, "again", group_by_length=True) == losses  # the grouped order follows the seed


def test_pair_lengths_take_the_longer_answer():
    rows = {"prompt_ids": [[1, 2], [1]], "chosen_ids": [[3], [4, 5, 6]], "rejected_ids": [[7, 8, 9], [0]]}
    assert pair_lengths(rows) == [5, 4]


def test_gradient_checkpointing_gives_the_same_losses(tmp_path):
    kept = _losses(tmp_path, "kept", gradient_checkpointing=False)
    recomputed = _losses(tmp_path, "recomputed", gradient_checkpointing=True)
    assert recomputed == pytest.approx(kept, rel=1e-4, abs=1e-5)


def _compiled_run(tmp_path, name, mode, **changes):
    from dpo_tutor.engine.train.run import run_training

    config = TrainConfig(
        model="tiny", max_steps=4, batch_size=4, grad_accum=1, max_length=96, learning_rate=5e-3, beta=0.5,
        warmup_ratio=0.0, eval_steps=2, eval_pairs=4, save_steps=0, seed=3, compile=mode, **changes,
    )
    assert run_training(config, tmp_path / name).state == "finished"
    return read_events(tmp_path / name)


def _step_losses(events):
    return [e["metrics"]["loss"] for e in events if e["type"] == "step"]


def _eval_losses(events):
    return [e["metrics"]["eval_loss"] for e in events if e["type"] == "eval"]


def test_compiled_layers_learn_the_same_and_evaluate_eagerly(tmp_path, monkeypatch):
    # The same wiring as on a GPU (each decoder layer compiled in place, evaluation under the eager
    # stance, padding to a multiple of 16), through dynamo with the aot_eager backend: no code generation,
    # so it runs in seconds on a CPU. The inductor backend itself: the slow test below and the GPU bench.
    set_switches(monkeypatch, compile_backend="aot_eager")
    eager = _compiled_run(tmp_path, "eager", "off")
    compiled = _compiled_run(tmp_path, "compiled", "on")
    phases = [e for e in compiled if e["type"] == "phase" and e.get("compiled_layers")]
    assert len(phases) == 1 and phases[0]["compiled_layers"] == 2  # the tiny model's two decoder layers
    assert not [e for e in eager if e["type"] == "phase" and e.get("compiled_layers")]
    assert _step_losses(compiled) == pytest.approx(_step_losses(eager), rel=1e-4, abs=1e-5)
    assert len(_eval_losses(compiled)) == 2
    assert _eval_losses(compiled) == pytest.approx(_eval_losses(eager), rel=1e-4, abs=1e-5)


def test_compile_auto_is_off_on_a_cpu_and_for_unsloth_and_waits_for_the_runs_length_on_a_gpu():
    from dpo_tutor.engine.train.plan import compile_decision as decision

    assert decision("auto", backend="hf", cuda=False)[0] is False
    compiled, why = decision("auto", backend="hf", cuda=True)
    assert not compiled and why == "auto: steps compiled only on a run long enough to pay for the compile"
    assert decision("on", backend="hf", cuda=True)[0] is True
    assert decision("on", backend="unsloth", cuda=True)[0] is False
    assert decision("off", backend="hf", cuda=True)[0] is False


@pytest.mark.slow
def test_inductor_compiled_layers_learn_the_same(tmp_path):
    eager = _compiled_run(tmp_path, "eager", "off")
    compiled = _compiled_run(tmp_path, "compiled", "on")
    assert _step_losses(compiled) == pytest.approx(_step_losses(eager), rel=1e-3, abs=1e-4)


def test_the_profile_callback_writes_the_operator_tables(tmp_path):
    from dpo_tutor.benchmarks.profiling import from_spec

    out = tmp_path / "profile.txt"
    _losses(tmp_path, "profiled", callbacks=[from_spec(f"2:2:{out}")])
    text = out.read_text()
    assert text.startswith("steps 2..3: wall ") and "aten::mm" in text and "Self CPU" in text


def test_right_padded_rows_give_the_same_logits_without_the_padding_mask():
    import torch
    from dpo_tutor.engine.models import build_tiny_model
    from dpo_tutor.engine.train.fast.padding import RightPaddedBatches
    from peft import LoraConfig, get_peft_model

    model, _ = build_tiny_model()
    model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    lengths = [9, 5, 2]
    ids = torch.randint(3, 200, (3, 9))
    mask = torch.tensor([[1] * n + [0] * (9 - n) for n in lengths])
    hook = RightPaddedBatches(model)
    assert hook.installed
    with torch.no_grad():
        masked = model(input_ids=ids, attention_mask=mask).logits
        with hook.active():
            unmasked = model(input_ids=ids, attention_mask=mask).logits
        outside = model(input_ids=ids, attention_mask=mask).logits
    assert hook.dropped == 1  # only inside active()
    for row, n in enumerate(lengths):
        assert torch.allclose(unmasked[row, :n], masked[row, :n], atol=1e-5)
    assert not torch.allclose(unmasked[2, 2:], masked[2, 2:], atol=1e-3)  # padding did see something else
    assert torch.equal(outside, masked)
    hook.remove()


def test_dropping_the_padding_mask_gives_the_same_losses(tmp_path, monkeypatch):
    from dpo_tutor.engine.train.fast import padding

    made = []

    class Counting(padding.RightPaddedBatches):
        def __init__(self, model):
            super().__init__(model)
            made.append(self)

    monkeypatch.setattr(padding, "RightPaddedBatches", Counting)
    set_switches(monkeypatch, drop_padding_mask=False)
    kept = _losses(tmp_path, "kept", eval_steps=2, eval_pairs=4)
    assert made == []
    set_switches(monkeypatch, drop_padding_mask=True)
    dropped = _losses(tmp_path, "dropped", eval_steps=2, eval_pairs=4)
    assert len(made) == 1 and made[0].dropped >= 4  # the reference pass and every step ran unmasked
    assert dropped == pytest.approx(kept, rel=1e-4, abs=1e-5)


def test_the_bench_baseline_is_trls_own_trainer_class():
    from dpo_tutor.benchmarks.bench import PIPELINES
    from dpo_tutor.engine.switches import Switches, encode
    from dpo_tutor.engine.train.plan import Machine, decide
    from dpo_tutor.engine.train.trainer import TrainerOptions, TunedDPOTrainer, trainer_class
    from trl import DPOTrainer

    baseline = PIPELINES["trl-defaults"]
    config = TrainConfig(group_by_length=False, compile="off", cuda_graphs="off", precompute_ref=False)
    assert "--no-group-by-length" in baseline.flags and "--no-precompute-ref" in baseline.flags
    switches = Switches.parse(encode(dict(baseline.switches)))
    plan = decide(config, Machine(cuda=True), switches=switches)
    assert trainer_class(TrainerOptions.for_run(config, plan)) is DPOTrainer
    ours = decide(config, Machine(cuda=True))
    assert trainer_class(TrainerOptions.for_run(config, ours)) is TunedDPOTrainer  # ours drops the mask


def test_kernel_families_sum_the_gpu_time_by_what_the_kernels_do():
    from dpo_tutor.benchmarks.profiling import families_table, kernel_families

    kernels = [  # names as the profiler lists them on an H200 (abridged), device ms, launches
        ("nvjet_tst_128x256_64x4_1x2_h_bz_coopA_NTT", 30.0, 100),
        ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize", 10.0, 20),
        ("fmha_cutlassF_bf16_aligned_64x128_rf_sm80(PyTorchMemEffAttention::AttentionKernel)", 8.0, 30),
        ("_chunked_log_prob_fwd_kernel", 1.0, 2),
        ("triton_poi_fused_add_mul_0", 2.0, 60),
        ("void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<c10::BFloat16>>", 6.0, 900),
        ("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<...>", 3.0, 40),
        ("void at::native::reduce_kernel<512, 1, ...>", 4.0, 50),
        ("void at::native::elementwise_kernel<128, 4, at::native::gpu_kernel_impl_nocast<at::native::"
         "BinaryFunctor<float, float, float, at::native::binary_internal::MulFunctor<float>>>>", 2.0, 10),
        ("void at::native::unrolled_elementwise_kernel<at::native::direct_copy_kernel_cuda(...)>", 1.0, 5),
    ]
    families = dict((f, (ms, n)) for f, ms, n in kernel_families(kernels))
    assert families["matmul (cuBLAS, CUTLASS)"] == (40.0, 120)
    assert families["attention"] == (8.0, 30)
    assert families["elementwise"] == (8.0, 910)  # "nocast" in a name does not make it a cast
    assert families["copies, casts and fills"] == (1.0, 5)
    assert families["Triton (TRL's log-prob kernel, compiled layers)"] == (2.0, 60)
    assert families["other"] == (1.0, 2)  # a name no family claims is counted, not lost
    assert kernel_families(kernels)[0][0] == "matmul (cuBLAS, CUTLASS)"  # largest first
    table = families_table(kernels, steps=2)
    assert "| matmul (cuBLAS, CUTLASS) | 20.0 | 60% | 60 |" in table  # 40 of 67 ms
    assert table.splitlines()[-1] == "| all | 33.5 | 100% | 608 |"
