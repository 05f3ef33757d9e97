"""The bad-input corpus (tests/bad_inputs/): every malformed data file and config gives one clear line.

Each case runs through the real CLI in a subprocess and must exit 2 with exactly one line on stderr
that names the file (and the line or field where that applies) and says what was expected; no
traceback anywhere; no run folder left behind; and, for `train`, the failure comes before torch is
imported (a bad file costs a fraction of a second, not a model load). The corpus is written by
tests/bad_inputs/make_corpus.py; its files are committed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import set_switches
from dpo_tutor.engine.config import TrainConfig
from dpo_tutor.engine.errors import UserError
from dpo_tutor.engine.preflight import preflight

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
DATA = CORPUS / "data"
CONFIG = CORPUS / "config"

# file -> (where: text after the file name that must follow it, e.g. ":7", or "" for the file alone;
#          fragments of what was expected, all of which must appear, case-insensitively)
DATA_CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "array_broken_line3.json": (":3", ("broken json", "at column 18")),
    "jsonl_bad_line7.jsonl": (":7", ("broken json", "at column 45")),
    "latin1.jsonl": (":3", ("not utf-8", "save the file as utf-8")),
    "utf16.jsonl": ("", ("utf-16", "utf-8")),
    "empty.jsonl": ("", ("empty",)),
    "whitespace_only.jsonl": ("", ("whitespace", "json lines")),
    "enormous_row.jsonl.gz": (":1", ("over 32 mib", "one row per line")),
    "csv_missing_columns.csv": (":2", ("not preference data", "answer, question", "prompt+chosen+rejected")),
    "csv_semicolons.csv": (":2", ("not preference data", "--columns")),
    "json_object_not_rows.json": (":1", ("not preference data", "data, version", "prompt+chosen+rejected")),
    "chosen_not_string.jsonl": ("", ("no usable triplets", "not a string")),
    "not_parquet.parquet": ("", ("parquet",)),
    "not_gzip.jsonl.gz": ("", ("not json", "parquet or csv")),
    "truncated.jsonl.gz": ("", ("cannot read", "ended before")),
    "array_of_strings.json": ("[0]", ("expected an object",)),
    "array_object_then_number.json": ("[1]", ("expected an object",)),
    "array_unterminated.json": (":4", ("broken json",)),
    "jsonl_list_line2.jsonl": (":2", ("expected a json object per line",)),
    "missing_rejected.jsonl": (":1", ("not preference data", "chosen, prompt", "prompt+chosen+rejected")),
    "empty_array.json": ("", ("array is empty",)),
    "png_named_jsonl.jsonl": ("", ("not json", "one json object per line")),
    "chosen_equals_rejected.jsonl": ("", ("no usable triplets", "chosen == rejected")),
    "empty_answers.jsonl": ("", ("no usable triplets", "empty side")),
    "null_fields.jsonl": ("", ("no usable triplets", "not a string")),
    "prompt_bad_messages.jsonl": ("", ("no usable triplets",)),
    "hh_no_assistant.jsonl": ("", ("no usable triplets",)),
    "a_folder.jsonl": ("", ("folder", "one .jsonl")),
}

# file -> (extra flags, where the line must point (a file, a flag), fragments of what was expected)
CONFIG_CASES: dict[str, tuple[tuple[str, ...], str, tuple[str, ...]]] = {
    "not_toml.toml": ((), "file", ("not valid toml", "line 1")),
    "latin1.toml": ((), "file", ("utf-8",)),
    "a_folder.toml": ((), "file", ("is a folder", "toml")),
    "unknown_key.toml": ((), "file", ("unknown setting 'betta'", "known:", "beta")),
    "train_not_table.toml": ((), "file", ("unknown setting 'train'",)),
    "negative_beta.toml": ((), "file", ("beta must be > 0", "-0.5")),
    "lr_string.toml": ((), "file", ("'learning_rate' expects float", "'fast'")),
    "lr_list.toml": ((), "file", ("'learning_rate' expects float",)),
    "batch_zero.toml": ((), "file", ("batch_size must be at least 1", "got 0")),
    "max_length_3.toml": ((), "file", ("max_length must be at least 16", "got 3")),
    "unknown_backend.toml": ((), "file", ("backend must be one of", "unsloth", "hf")),
    "columns_wrong_form.toml": ((), "file", ("columns", "role=column")),
    "columns_number.toml": ((), "file", ("'columns' expects",)),
    "columns_no_rejected.toml": ((), "file", ("columns must map chosen and rejected", "rejected")),
    "loss_type_unknown.toml": ((), "file", ("loss_type 'magic'", "sigmoid")),
    "epochs_zero.toml": (("--model", "tiny"), "file", ("epochs must be > 0",)),
    "model_empty.toml": (("--max-steps", "1"), "file", ("model must name",)),
    "merge_maybe.toml": ((), "file", ("'merge' expects bool", "'maybe'")),
    "lora_dropout_big.toml": ((), "file", ("lora_dropout must lie in [0, 1)",)),
    "max_steps_fraction.toml": ((), "file", ("'max_steps' expects int", "1.5")),
    "data_missing_file.toml": ((), "does/not/exist.jsonl", ("no such file", "no source for the sample")),
    "model_missing_folder.toml": (("--max-steps", "1"), "./no/such/model-folder", ("model not found",)),
}
DEFAULT_TRAIN_FLAGS = ("--model", "tiny", "--max-steps", "1")

# The train command runs inside this wrapper so the test can also see whether torch was imported.
_TRAIN_WRAPPER = (
    "import os, sys\n"
    "from dpo_tutor.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "print('TORCH-IMPORTED' if 'torch' in sys.modules else 'TORCH-NOT-IMPORTED')\n"
    "sys.stdout.flush(); sys.stderr.flush(); os._exit(rc)\n"
)


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DPO_TUTOR_CACHE_DIR": str(tmp_path / "cache"),
        "DPO_TUTOR_RUNS_DIR": str(tmp_path / "default-runs"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONWARNINGS": "ignore",
    }


def _run(args: list[str], tmp_path: Path, *, wrapper: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", _TRAIN_WRAPPER, *args] if wrapper else [sys.executable, "-m", "dpo_tutor", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=CORPUS, env=_env(tmp_path))


def _one_line(proc: subprocess.CompletedProcess, prefix: str) -> str:
    """The single stderr line, after the common promises are checked."""
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{proc.stderr[-2000:]}"
    line = lines[0]
    assert line.startswith(prefix), line
    return line


def _assert_expected(line: str, fragments: tuple[str, ...]) -> None:
    for fragment in fragments:
        assert fragment.lower() in line.lower(), f"{fragment!r} missing from: {line}"


def _assert_names_file(line: str, path: Path, where: str) -> None:
    # The file as given on the command line, then the line/row when there is one ("x.jsonl:7: ...").
    assert f"{path}{where}:" in line, f"{path}{where}: missing from: {line}"


def _assert_no_run_folder(runs: Path) -> None:
    left = sorted(p.name for p in runs.iterdir()) if runs.exists() else []
    assert not left, f"run folders left behind: {left}"


def test_the_corpus_is_complete():
    """At least 25 malformed files and configs, every one in a table below and every table entry a file."""
    data_files = sorted(p.name for p in DATA.iterdir())
    config_files = sorted(p.name for p in CONFIG.iterdir())
    assert data_files == sorted(DATA_CASES)
    assert config_files == sorted(CONFIG_CASES)
    assert len(data_files) >= 25 and len(config_files) >= 20


@pytest.mark.parametrize("name", sorted(DATA_CASES))
def test_data_stats_gives_one_clear_line(name, tmp_path):
    where, fragments = DATA_CASES[name]
    path = DATA / name
    proc = _run(["data", "stats", str(path)], tmp_path)
    line = _one_line(proc, "dpo-tutor data: ")
    _assert_names_file(line, path, where)
    _assert_expected(line, fragments)
    assert proc.stdout == ""


@pytest.mark.parametrize("name", sorted(DATA_CASES))
def test_train_refuses_the_data_before_any_run_exists(name, tmp_path):
    """The same check `dpo-tutor train` makes before it creates a run folder (engine call, no torch)."""
    where, fragments = DATA_CASES[name]
    path = DATA / name
    config = TrainConfig(model="tiny", data=str(path), max_steps=1)
    with pytest.raises(UserError) as caught:
        preflight(config)
    line = caught.value.one_line()
    assert "\n" not in line
    _assert_names_file(line, path, where)
    _assert_expected(line, fragments)


# A few data files through the real `train` command: the CLI, the exit code, no run folder, no torch.
TRAIN_DATA_CLI = ("jsonl_bad_line7.jsonl", "latin1.jsonl", "empty.jsonl", "not_parquet.parquet",
                  "csv_missing_columns.csv", "chosen_equals_rejected.jsonl")


@pytest.mark.parametrize("name", TRAIN_DATA_CLI)
def test_train_with_bad_data_gives_one_line_and_leaves_nothing(name, tmp_path):
    where, fragments = DATA_CASES[name]
    path = DATA / name
    runs = tmp_path / "runs"
    proc = _run(["train", "--data", str(path), *DEFAULT_TRAIN_FLAGS, "--runs-dir", str(runs)], tmp_path,
                wrapper=True)
    line = _one_line(proc, "dpo-tutor train: ")
    _assert_names_file(line, path, where)
    _assert_expected(line, fragments)
    assert "TORCH-NOT-IMPORTED" in proc.stdout, "the data was checked only after torch was imported"
    _assert_no_run_folder(runs)


@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
def test_train_with_a_bad_config_gives_one_line_and_leaves_nothing(name, tmp_path):
    extra, where, fragments = CONFIG_CASES[name]
    path = CONFIG / name
    runs = tmp_path / "runs"
    flags = extra or DEFAULT_TRAIN_FLAGS
    proc = _run(["train", "--config", str(path), *flags, "--runs-dir", str(runs)], tmp_path, wrapper=True)
    line = _one_line(proc, "dpo-tutor train: ")
    if where == "file":
        assert f"{path}:" in line, f"the config file is not named: {line}"
    else:
        assert f"{where}:" in line, f"{where} is not named: {line}"
    _assert_expected(line, fragments)
    assert "TORCH-NOT-IMPORTED" in proc.stdout, "the config was checked only after torch was imported"
    _assert_no_run_folder(runs)


# A bad value given as a flag is blamed on the flag, not on a config file.
FLAG_CASES = [
    (("--beta", "-1"), "--beta", "beta must be > 0"),
    (("--batch-size", "0"), "--batch-size", "batch_size must be at least 1"),
    (("--max-length", "3"), "--max-length", "max_length must be at least 16"),
    (("--lr", "0"), "--lr", "learning_rate must be > 0"),
    (("--columns", "prompt"), "--columns", "role=column"),
    (("--model", "./no/such/folder"), "./no/such/folder", "model not found"),
]


@pytest.mark.parametrize("flags,where,fragment", FLAG_CASES, ids=[c[1] for c in FLAG_CASES])
def test_train_with_a_bad_flag_names_the_flag(flags, where, fragment, tmp_path):
    runs = tmp_path / "runs"
    base = ["--max-steps", "1"] if "--model" in flags else list(DEFAULT_TRAIN_FLAGS)
    # a valid config file underneath: the flag, not the file, is wrong
    good = tmp_path / "good.toml"
    good.write_text("[train]\nbeta = 0.2\nbatch_size = 2\n", encoding="utf-8")
    proc = _run(["train", "--config", str(good), *base, *flags, "--runs-dir", str(runs)], tmp_path, wrapper=True)
    line = _one_line(proc, "dpo-tutor train: ")
    assert f"{where}:" in line and str(good) not in line, line
    assert fragment in line, line
    _assert_no_run_folder(runs)


def test_an_error_quoting_a_multi_line_library_message_is_still_one_line():
    from dpo_tutor.engine.errors import ModelError

    error = ModelError("cannot load the model: Couldn't instantiate the tokenizer from one of:\n(1) a file,\n"
                       "(2) a slow tokenizer\n", where="models/x", remedy="give a folder\nwritten by save_pretrained")
    line = error.one_line()
    assert "\n" not in line
    assert line == ("models/x: cannot load the model: Couldn't instantiate the tokenizer from one of: (1) a file, "
                    "(2) a slow tokenizer (give a folder written by save_pretrained)")


def test_a_detached_run_with_bad_data_is_refused_before_anything_starts(tmp_path):
    """`--detach` would leave nobody to read the error: the refusal comes first, in this terminal."""
    path = DATA / "jsonl_bad_line7.jsonl"
    runs = tmp_path / "runs"
    proc = _run(["train", "--data", str(path), *DEFAULT_TRAIN_FLAGS, "--detach", "--runs-dir", str(runs)],
                tmp_path, wrapper=True)
    line = _one_line(proc, "dpo-tutor train: ")
    _assert_names_file(line, path, ":7")
    assert "TORCH-NOT-IMPORTED" in proc.stdout and "running in the background" not in proc.stderr
    _assert_no_run_folder(runs)


def test_train_preset_flag_and_the_cpu_note(tmp_path, capsys, monkeypatch):
    """--preset starts from a Train-screen preset (flags override it); without a GPU a GPU-sized run
    gets a note naming the CPU preset. The --out folder is refused after the note, before any run."""
    import argparse

    from dpo_tutor.cli import main
    from dpo_tutor.commands.train import add_parser, config_from_args

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    config = config_from_args(parser.parse_args(["train", "--preset", "cpu-look", "--max-steps", "3"]))
    assert (config.batch_size, config.max_length, config.max_steps, config.gradient_checkpointing) == (4, 256, 3, False)

    set_switches(monkeypatch, no_cuda=True)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "events.jsonl").write_text("")
    assert main(["train", "--preset", "quick-demo", "--model", "smollm2-gguf", "--out", str(taken)]) == 2
    err = capsys.readouterr().err
    assert "note: No GPU found" in err and "1,280 pairs" in err and "`--preset cpu-look` takes ~2 min" in err
    assert "the --out folder exists and is not empty" in err
    assert main(["train", "--preset", "cpu-look", "--model", "smollm2-gguf", "--out", str(taken)]) == 2
    assert "No GPU found" not in capsys.readouterr().err  # 48 pairs: minutes, no note
    from dpo_tutor.engine.config import TrainConfig

    stopped = tmp_path / "stopped-run"
    stopped.mkdir()
    (stopped / "config.toml").write_text(TrainConfig(model="tiny").to_toml())
    assert main(["train", "--resume", str(stopped), "--preset", "cpu-look"]) == 2
    assert "--preset would change the settings of the run being resumed" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # argparse's own refusal, which lists the presets
        main(["train", "--preset", "nope"])
    assert refused.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err
