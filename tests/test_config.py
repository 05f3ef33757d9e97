"""Training configuration: defaults, TOML round trip, flags, and validation a person understands."""

from __future__ import annotations

import pytest
from dpo_tutor.engine.config import TrainConfig, parse_columns
from dpo_tutor.engine.errors import ConfigError


def test_defaults_are_the_recipe():
    c = TrainConfig()
    assert c.model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert (c.learning_rate, c.batch_size, c.grad_accum, c.epochs, c.beta) == (5e-4, 32, 1, 1.0, 0.1)
    assert c.precompute_ref is True and c.group_by_length is True and c.compile == "auto" and c.optim == "adamw_torch"
    assert (c.lora_r, c.lora_alpha, c.target_modules, c.lr_scheduler) == (16, 32, "all-linear", "cosine")
    assert c.gradient_checkpointing is True and c.trust_remote_code is False and c.allow_pickle is False
    assert c.validate() == ([], [])


def test_toml_round_trip(tmp_path):
    c = TrainConfig(model="tiny", beta=0.25, columns={"prompt": "q", "chosen": "a", "rejected": "b"}, merge=True)
    path = tmp_path / "c.toml"
    path.write_text(c.to_toml())
    assert TrainConfig.from_toml(path) == c


@pytest.mark.parametrize(
    "changes,expected",
    [
        ({"beta": 0}, "beta must be > 0"),
        ({"beta": -1}, "beta must be > 0"),
        ({"learning_rate": 0}, "learning_rate must be > 0"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"grad_accum": 0}, "grad_accum must be at least 1"),
        ({"max_length": 8}, "max_length must be at least 16"),
        ({"loss_type": "nope"}, "is not one of TRL's"),
        ({"backend": "gpu"}, "backend must be one of"),
        ({"max_steps": 0, "epochs": 0}, "epochs must be > 0"),
        ({"lora_r": 0}, "lora_r must be at least 1"),
        ({"heldout_fraction": 0.95}, "heldout_fraction"),
    ],
)
def test_errors_are_sentences(changes, expected):
    errors, _ = TrainConfig(**changes).validate()
    assert any(expected in e for e in errors), errors
    with pytest.raises(ConfigError, match=expected.split()[0]):
        TrainConfig(**changes).check()


def test_warnings():
    _, warnings = TrainConfig(learning_rate=0.5).validate()
    assert any("outside 1e-7..1e-2" in w for w in warnings)
    _, warnings = TrainConfig(max_steps=100, batch_size=8, grad_accum=4).validate(n_train_pairs=200)
    assert any("16.0 epochs of 200 training pairs" in w for w in warnings), warnings


def test_toml_problems_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("beta = [1, 2]\n")
    with pytest.raises(ConfigError, match="bad.toml: 'beta' expects float"):
        TrainConfig.from_toml(bad)
    bad.write_text("betta = 0.1\n")
    with pytest.raises(ConfigError, match="unknown setting 'betta'"):
        TrainConfig.from_toml(bad)
    bad.write_text("beta = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        TrainConfig.from_toml(bad)
    with pytest.raises(ConfigError, match="not found"):
        TrainConfig.from_toml(tmp_path / "missing.toml")


def test_parse_columns():
    assert parse_columns("prompt=q, chosen=a,rejected=b") == {"prompt": "q", "chosen": "a", "rejected": "b"}
    with pytest.raises(ConfigError, match="role=column"):
        parse_columns("prompt")


def test_flags_override_the_file(tmp_path):
    from dpo_tutor.cli import build_parser
    from dpo_tutor.commands.train import config_from_args

    path = tmp_path / "c.toml"
    path.write_text("[train]\nmodel = 'tiny'\nbeta = 0.3\nlearning_rate = 1e-4\n")
    args = build_parser().parse_args(
        ["train", "--config", str(path), "--lr", "2e-4", "--max-steps", "7", "--merge", "--columns",
         "prompt=q,chosen=a,rejected=b", "--format", "mapping", "--trust-remote-code"]
    )
    c = config_from_args(args)
    assert (c.model, c.beta, c.learning_rate, c.max_steps, c.merge) == ("tiny", 0.3, 2e-4, 7, True)
    assert c.columns == {"prompt": "q", "chosen": "a", "rejected": "b"} and c.data_format == "mapping"
    assert c.trust_remote_code is True and c.allow_pickle is False


def test_cli_validation_is_one_line_and_leaves_no_run_folder(tmp_path, capsys):
    from dpo_tutor.cli import main

    runs = tmp_path / "runs"
    assert main(["train", "--model", "tiny", "--beta", "0", "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "dpo-tutor train: --beta: beta must be > 0 (got 0.0); 0.1 is a typical start."
    assert not runs.exists() or not any(runs.iterdir())


def test_help_lists_every_flag(capsys):
    from dpo_tutor.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for flag in ("--config", "--model", "--data", "--format", "--columns", "--beta", "--lr", "--max-steps",
                 "--epochs", "--batch-size", "--grad-accum", "--max-length", "--lora-r", "--backend", "--out",
                 "--name", "--seed", "--max-pairs", "--eval-steps", "--save-steps", "--merge", "--detach",
                 "--resume", "--runs-dir", "--trust-remote-code", "--allow-pickle"):
        assert flag in out, flag
    assert "how strongly DPO keeps the policy near the reference" in out


def test_loss_settings_are_validated_in_sentences():
    errors, _ = TrainConfig(loss_type="robust", label_smoothing=0.5).validate()
    assert any("label_smoothing must be at least 0 and below 0.5" in e for e in errors)
    errors, _ = TrainConfig(nll_weight=-1).validate()
    assert any("nll_weight must be 0 or more" in e for e in errors)
    errors, warnings = TrainConfig(loss_type="ipo", label_smoothing=0.1).validate()
    assert not errors and any("ignored by the 'ipo' loss" in w for w in warnings)
    assert TrainConfig(loss_type="robust", label_smoothing=0.1, nll_weight=0.2).validate()[0] == []
    text = TrainConfig(nll_weight=0.2, label_smoothing=0.1).to_toml()
    assert "nll_weight = 0.2" in text and "label_smoothing = 0.1" in text
