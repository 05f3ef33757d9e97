"""Mixing preference sources by weight, and the default data (HH-RLHF harmless-base + helpful-base 2:1).

The real halves are read in place from ../shared/data (CI has it beside the clone); nothing here touches the
network: the hub is either declared offline or its probe and `datasets.load_dataset` are replaced.
"""

from __future__ import annotations

import socket
import time
from collections import Counter

import pytest
from conftest import SHARED_DATA, lift_sample_default, shared_file
from dpo_tutor.engine.config import TrainConfig
from dpo_tutor.engine.data import mix
from dpo_tutor.engine.data.split import prompt_key, split_for_run
from dpo_tutor.engine.errors import ConfigError, DataError

HARMLESS = ("hh-rlhf", "harmless-base-test.jsonl.gz")
HELPFUL = ("hh-rlhf-helpful-steamshp", "anthropic_helpful_test.jsonl.gz")


@pytest.fixture
def halves() -> list[str]:
    return [str(shared_file(*HARMLESS)), str(shared_file(*HELPFUL))]


@pytest.fixture
def offline_default(monkeypatch, halves):
    """The default data as a machine without network resolves it: the hub declared offline, the copies in
    $DPO_TUTOR_DATA_DIR."""
    lift_sample_default(monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DPO_TUTOR_DATA_DIR", str(SHARED_DATA))

    def no_network(*args, **kwargs):
        raise AssertionError("a test tried the network")

    monkeypatch.setattr(socket, "create_connection", no_network)


def used(result) -> dict[str, int]:
    return {u.name: u.used for u in result.mix}


# ---- the default mix ---------------------------------------------------------------------------------


def test_default_data_is_both_hh_halves_two_to_one_from_the_local_copies(offline_default):
    result, train, heldout = split_for_run(TrainConfig())
    assert result.note.startswith("data: HH-RLHF harmless-base + helpful-base 2:1 from the local copies in")
    # 2,312 harmless rows less 9 unusable; 2,344 helpful rows less 6: harmless, at twice the weight, sets the size
    assert {u.name: (u.rows_read, u.usable, u.used) for u in result.mix} == {
        "hh-rlhf/harmless-base": (2312, 2303, 2303), "hh-rlhf/helpful-base": (2344, 2338, 1151)}
    assert result.format == "hh+shp" and len(result.triplets) == 3454
    assert Counter(t.source for t in result.triplets) == {"hh-rlhf/harmless-base": 2303, "hh-rlhf/helpful-base": 1151}
    assert (len(train), len(heldout)) == (3109, 345)
    assert Counter(t.source for t in heldout) == {"hh-rlhf/harmless-base": 230, "hh-rlhf/helpful-base": 115}
    assert result.report.rows_read == 4656 and result.report.dropped["left out by the weights"] == 1187


def test_train_and_heldout_share_no_prompt_and_cover_every_pair(offline_default):
    result, train, heldout = split_for_run(TrainConfig())
    assert not {prompt_key(t) for t in train} & {prompt_key(t) for t in heldout}
    assert len(train) + len(heldout) == len(result.triplets)


def test_the_mixed_list_interleaves_sources_so_a_max_pairs_cut_keeps_both(offline_default):
    result, train, heldout = split_for_run(TrainConfig(max_pairs=40, eval_pairs=16))
    counts = Counter(t.source for t in train)
    assert len(train) == 40 and abs(counts["hh-rlhf/harmless-base"] - 2 * counts["hh-rlhf/helpful-base"]) <= 6
    assert len(Counter(t.source for t in heldout)) == 2
    assert Counter(t.source for t in result.triplets[:9]) == {"hh-rlhf/harmless-base": 6, "hh-rlhf/helpful-base": 3}


def test_evaluation_rebuilds_the_same_heldout_pairs_from_the_saved_config(offline_default, tmp_path):
    from dpo_tutor.engine.evaluate import load_heldout

    config = TrainConfig(seed=7, heldout_fraction=0.2)
    _, _, heldout = split_for_run(config)
    (tmp_path / "config.toml").write_text(config.to_toml(), encoding="utf-8")
    again, info = load_heldout(TrainConfig.from_toml(tmp_path / "config.toml"))
    assert again == heldout and info["heldout"] == len(heldout)
    assert info["source"].startswith("hh-rlhf/harmless-base x2 (2,303 pairs) + hh-rlhf/helpful-base x1 (1,151 pairs)")
    assert {m["name"]: m["heldout"] for m in info["mix"]} == {"hh-rlhf/harmless-base": 461, "hh-rlhf/helpful-base": 230}


# ---- weights -----------------------------------------------------------------------------------------


def test_weights_set_each_sources_share_without_repeating_a_pair(halves):
    result = mix.load_mix([mix.Source(halves[0], weight=1), mix.Source(halves[1], weight=3)])
    # helpful (2,338 usable) is used whole; harmless gives a third of that
    assert used(result) == {"hh-rlhf/harmless-base": 779, "hh-rlhf/helpful-base": 2338}
    keys = {(prompt_key(t), t.chosen, t.rejected) for t in result.triplets}
    assert len(keys) == len(result.triplets) == 779 + 2338
    assert result.source == "hh-rlhf/harmless-base x1 (779 pairs) + hh-rlhf/helpful-base x3 (2,338 pairs)"


def test_the_subsample_is_seeded_and_the_load_deterministic(halves):
    sources = [mix.Source(halves[0], weight=2), mix.Source(halves[1], weight=1)]
    a, b = mix.load_mix(sources, seed=1), mix.load_mix(sources, seed=1)
    other = mix.load_mix(sources, seed=2)
    assert a.triplets == b.triplets
    assert a.triplets != other.triplets and used(a) == used(other)


def test_a_config_mix_trains_on_the_weighted_pairs_with_both_halves_held_out(halves):
    result, train, heldout = split_for_run(TrainConfig(data=halves, data_weights=[3.0, 1.0]))
    assert used(result) == {"hh-rlhf/harmless-base": 2303, "hh-rlhf/helpful-base": 767}
    counts = Counter(t.source for t in heldout)
    assert counts == {"hh-rlhf/harmless-base": 230, "hh-rlhf/helpful-base": 77}
    assert not {prompt_key(t) for t in train} & {prompt_key(t) for t in heldout}


def test_a_preflight_reading_is_mixed_again_at_the_configs_weights(halves):
    from dpo_tutor.engine.data.load import load_triplets
    from dpo_tutor.engine.data.split import load_for_run

    config = TrainConfig(data=halves, data_weights=[1.0, 2.0])
    preloaded = load_triplets(halves)  # what engine/preflight.py reads: the sources at equal weights
    assert used(preloaded) == {"hh-rlhf/harmless-base": 2303, "hh-rlhf/helpful-base": 2303}
    assert load_for_run(config, preloaded).triplets == load_for_run(config).triplets


def test_names_are_short_stable_and_unique():
    sources = [mix.Source("hf:Anthropic/hh-rlhf/harmless-base"), mix.Source("data/prefs.jsonl.gz"),
               mix.Source("other/prefs.jsonl"), mix.Source("owner/name")]
    assert mix.unique_names(sources) == ["hh-rlhf/harmless-base", "prefs", "prefs-2", "name"]
    assert sources[0].hub == ("Anthropic/hh-rlhf", "harmless-base")


def test_a_single_source_splits_exactly_as_before(halves):
    from dpo_tutor.engine.data.load import load_triplets
    from dpo_tutor.engine.data.split import train_heldout_split

    result, train, heldout = split_for_run(TrainConfig(data=halves[0], seed=3))
    assert result.mix is None
    assert (train, heldout) == train_heldout_split(load_triplets(halves[0]).triplets, 0.1, 3)


# ---- config, TOML, CLI ---------------------------------------------------------------------------------


def test_a_mix_round_trips_through_toml(tmp_path):
    config = TrainConfig(data=["a.jsonl.gz", "hf:Anthropic/hh-rlhf/helpful-base"], data_weights=[1.0, 2.5])
    text = config.to_toml()
    assert 'data = ["a.jsonl.gz", "hf:Anthropic/hh-rlhf/helpful-base"]' in text and "data_weights = [1.0, 2.5]" in text
    (tmp_path / "mix.toml").write_text(text, encoding="utf-8")
    assert TrainConfig.from_toml(tmp_path / "mix.toml") == config
    single = TrainConfig(data="a.jsonl")
    assert "data_weights" not in single.to_toml()
    (tmp_path / "one.toml").write_text(single.to_toml(), encoding="utf-8")
    assert TrainConfig.from_toml(tmp_path / "one.toml") == single
    assert TrainConfig.from_dict({"data": ["a.jsonl"], "data_weights": "2,1"}).data == "a.jsonl"
    assert TrainConfig.from_dict({"data_weights": "1:3"}).data_weights == [1.0, 3.0]


def test_cli_flags_build_a_mix_and_rebuild_the_same_argv(halves):
    import argparse

    from dpo_tutor.cli import build_parser
    from dpo_tutor.commands.train import _argv_from_args, config_from_args

    parser = build_parser()
    argv = ["train", "--data", halves[0], "--data", halves[1], "--data-weights", "1,3"]
    args = parser.parse_args(argv)
    config = config_from_args(args)
    assert config.data == halves and config.data_weights == [1.0, 3.0]
    assert config_from_args(parser.parse_args(["train", *_argv_from_args(args)])) == config
    one = config_from_args(parser.parse_args(["train", "--data", halves[0]]))
    assert one.data == halves[0] and one.data_weights == []
    assert isinstance(args, argparse.Namespace)


@pytest.mark.parametrize(
    ("changes", "sentence"),
    [
        ({"data": ["a.jsonl", "b.jsonl"], "data_weights": [1.0]}, "data_weights has 1 weight for 2 data sources"),
        ({"data_weights": [1.0, 1.0, 1.0]}, "data_weights has 3 weights for the 2 halves of the default data"),
        ({"data": ["{h}", "{p}"], "data_weights": [1.0, -2.0]}, "data_weights must all be above 0 (got -2)"),
        ({"data": ["{h}", "no-such-file.jsonl"]}, "data names a file that is not there: no-such-file.jsonl."),
        ({"data": ["{h}", "{h}"]}, "data names the same source twice"),
    ],
)
def test_mix_settings_are_checked_in_plain_sentences(changes, sentence, halves):
    fill = {"h": halves[0], "p": halves[1]}
    if isinstance(changes.get("data"), list):
        changes = {**changes, "data": [d.format(**fill) for d in changes["data"]]}
    errors, _ = TrainConfig(**changes).validate()
    assert any(e.startswith(sentence) for e in errors), errors
    with pytest.raises(ConfigError):
        TrainConfig(**changes).check()


def test_the_cli_blames_a_bad_weight_on_its_flag_in_one_line(halves, tmp_path, capsys):
    from dpo_tutor.cli import main

    code = main(["train", "--model", "tiny", "--data", halves[0], "--data", halves[1], "--data-weights", "1,x",
                 "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["dpo-tutor train: --data-weights: 'x' is not a number: weights are numbers like 1,1 or 2,1"]
    code = main(["train", "--model", "tiny", "--data", halves[0], "--data", halves[1], "--data-weights", "1",
                 "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("dpo-tutor train: --data-weights: data_weights has 1 weight")
    assert not (tmp_path / "runs").exists()


def test_a_weight_of_zero_is_refused_by_the_loader_too(halves):
    with pytest.raises(DataError, match="not a number above 0"):
        mix.load_mix([mix.Source(halves[0], weight=0), mix.Source(halves[1])])


# ---- the default's resolution: hub, local copies, sample ------------------------------------------------


def test_offline_flags_skip_the_hub_without_touching_the_network(offline_default):
    assert mix.hub_reachable() is False
    assert mix.resolve_default().origin == "local"


def test_a_probe_that_hangs_is_given_up_quickly(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    def hang(*args, **kwargs):
        time.sleep(2)
        raise OSError("no answer")  # the abandoned probe thread ends quietly

    monkeypatch.setattr(socket, "create_connection", hang)
    started = time.monotonic()
    assert mix.hub_reachable(timeout=0.2) is False
    assert time.monotonic() - started < 1.0


def test_a_reachable_hub_is_asked_for_both_halves_of_hh_rlhf(monkeypatch, offline_default):
    import datasets

    calls = []

    def load_dataset(path, **kwargs):
        calls.append((path, kwargs))
        raise ConnectionError("no network in tests")

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    chosen = mix.resolve_default(hub=True)
    assert chosen.origin == "hub" and chosen.data == ["hf:Anthropic/hh-rlhf/harmless-base",
                                                      "hf:Anthropic/hh-rlhf/helpful-base"]
    result = mix.load_default(hub=True)
    assert calls[0] == ("Anthropic/hh-rlhf", {"name": None, "data_dir": "harmless-base", "split": "train"})
    # the hub failed after its probe passed: the local copies, and the note says both
    assert result.note.startswith("the hub did not give the data (Anthropic/hh-rlhf: cannot load the hub data set")
    assert "from the local copies in" in result.note and len(result.triplets) == 3454


def test_no_hub_and_no_copies_fall_back_to_the_sample_with_one_sentence(monkeypatch, tmp_path, offline_default):
    from dpo_tutor.engine.data.sample import sample_path

    monkeypatch.setenv("DPO_TUTOR_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.chdir(tmp_path)
    result, train, _ = split_for_run(TrainConfig())
    assert result.mix is None and result.source == str(sample_path())
    assert result.note == (
        f"The hub is out of reach and no local HH-RLHF copies were found (looked in {tmp_path / 'empty'}, "
        f"{tmp_path / 'data'}, {tmp_path.parent / 'shared' / 'data'}; set DPO_TUTOR_DATA_DIR): "
        "training on the bundled sample instead.")


def test_a_data_folder_next_to_the_current_directory_is_found(monkeypatch, tmp_path, offline_default):
    monkeypatch.delenv("DPO_TUTOR_DATA_DIR")
    for parts in (HARMLESS, HELPFUL):
        target = tmp_path / "data" / parts[0]
        target.mkdir(parents=True)
        (target / parts[1]).symlink_to(SHARED_DATA.joinpath(*parts))
    assert mix.local_default(tmp_path) == tmp_path / "data"


def test_the_cli_names_the_resolved_mix_in_the_run_config(monkeypatch, offline_default, tmp_path, capsys):
    from dpo_tutor.cli import build_parser
    from dpo_tutor.commands.train import _default_data, config_from_args

    args = build_parser().parse_args(["train", "--model", "tiny"])
    config = _default_data(args, config_from_args(args))
    assert capsys.readouterr().err.startswith("dpo-tutor train: data: HH-RLHF harmless-base + helpful-base 2:1")
    assert config.data == [str(SHARED_DATA.joinpath(*HARMLESS)), str(SHARED_DATA.joinpath(*HELPFUL))]
    assert config.data_weights == [2.0, 1.0] and config_from_args(args) == config


def test_data_mix_command_reports_each_sources_pairs_train_and_heldout(offline_default, capsys):
    import json

    from dpo_tutor.cli import main

    assert main(["data", "mix", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["pairs"], out["train"], out["heldout"]) == (3454, 3109, 345)
    assert [(s["name"], s["used"], s["train"], s["heldout"]) for s in out["sources"]] == [
        ("hh-rlhf/harmless-base", 2303, 2073, 230), ("hh-rlhf/helpful-base", 1151, 1036, 115)]
    assert main(["data", "mix", "--weights", "1,2,3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["dpo-tutor data: data_weights has 3 weights for the 2 halves of the default data (harmless, "
                   "helpful): give one weight per source."]


def test_one_hub_folder_source_is_read_with_its_data_dir(monkeypatch):
    import datasets
    from dpo_tutor.engine.data.load import load_triplets

    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda path, **kw: calls.append((path, kw)) or [
        {"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: go away"}])
    result = load_triplets("hf:Anthropic/hh-rlhf/helpful-base")
    assert calls == [("Anthropic/hh-rlhf", {"name": None, "data_dir": "helpful-base", "split": "train"})]
    assert result.triplets[0].chosen == "hello"
