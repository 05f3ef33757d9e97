"""Every format adapter against small fixtures written for these tests, and detection."""

from __future__ import annotations

from pathlib import Path

import pytest
from dpo_tutor.engine.data.load import load_triplets
from dpo_tutor.engine.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures" / "data"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DPO_TUTOR_CACHE_DIR", str(tmp_path / "cache"))


def load(name: str, **kwargs):
    return load_triplets(str(FIXTURES / name), **kwargs)


def test_hh_splits_at_the_last_assistant_turn_and_counts_every_drop():
    r = load("hh.jsonl")
    assert r.format == "hh"
    assert r.report.rows_read == 7
    assert r.report.usable == 2
    assert r.report.dropped == {
        "empty side": 1, "chosen == rejected": 1, "prompts disagree": 1, "not a string": 1, "duplicate": 1,
    }
    first, second = r.triplets
    assert first.prompt == ({"role": "user", "content": "How do I bake a cake?"},)
    assert first.chosen.startswith("Heat the oven") and first.rejected == "Buy one."
    assert [m["role"] for m in second.prompt] == ["user", "assistant", "user"]
    assert second.prompt[-1]["content"] == "What is 2+2?" and second.turns == 2
    assert (second.chosen, second.rejected) == ("4.", "5.")
    assert r.report.examples["empty side"] == ["hh.jsonl:3"]


def test_hh_keeps_mismatched_rows_split_at_the_common_prefix_when_asked():
    r = load("hh.jsonl", options={"hh_mismatch": "lcp"})
    assert r.report.usable == 3
    kept = r.triplets[2]
    assert kept.prompt == ({"role": "user", "content": "Q"},)
    assert kept.chosen.startswith("A reply that says Human: more") and kept.rejected == "Short."


def test_shp_picks_the_labelled_side_and_filters_by_score_ratio():
    r = load("shp.jsonl")
    assert r.format == "shp" and r.report.usable == 3
    by_id = {t.id: t for t in r.triplets}
    assert by_id["p1"].chosen == "Five to ten minutes under foil."
    assert by_id["p2"].chosen.startswith("No: hot water") and by_id["p2"].rejected == "Just soak it for days."
    assert by_id["p2"].metadata["score_ratio"] == 1.5
    assert r.report.labels["labels"] == {"A preferred": 2, "B preferred": 1}
    filtered = load("shp.jsonl", options={"shp_min_ratio": 2.0})
    assert filtered.report.usable == 2
    assert filtered.report.dropped == {"score ratio below minimum": 1}


def test_steamshp_history_becomes_messages():
    r = load("steamshp.jsonl")
    assert r.report.usable == 1
    assert r.report.dropped == {"empty side": 1, "chosen == rejected": 1}
    t = r.triplets[0]
    assert [m["role"] for m in t.prompt] == ["user", "assistant", "user"]
    assert t.prompt[0]["content"] == "What is a good houseplant?" and t.prompt[2]["content"] == "Not much."
    assert t.chosen.startswith("A snake plant")


@pytest.mark.parametrize("mode,pairs", [("all", 4), ("best-vs-each", 3), ("best-vs-worst", 2)])
def test_oasst_flat_rebuilds_trees_into_ranked_pairs(mode, pairs):
    r = load("oasst_flat.jsonl", options={"oasst_pairs": mode})
    assert r.format == "oasst" and r.report.rows_read == 10
    assert r.report.usable == pairs
    assert r.report.dropped["orphan (parent not in file)"] == 1
    assert r.report.dropped["deleted reply"] == 1
    best = r.triplets[0]
    assert best.chosen.startswith("100 C at sea level")
    deep = [t for t in r.triplets if len(t.prompt) == 3]
    assert deep and deep[0].prompt[1]["role"] == "assistant" and deep[0].chosen.startswith("Roughly 70 C")


def test_oasst_unfiltered_keeps_deleted_replies():
    r = load("oasst_flat.jsonl", options={"oasst_filter": False})
    assert r.report.usable == 6


def test_oasst_tree_export_is_flattened_and_deduplicated():
    r = load("oasst_trees.jsonl")
    assert r.format == "oasst-tree"
    assert r.report.usable == 4
    assert r.report.dropped["duplicate tree"] == 1
    flat = load("oasst_flat.jsonl")
    assert {(t.chosen, t.rejected) for t in r.triplets} == {(t.chosen, t.rejected) for t in flat.triplets}


def test_trl_standard_explicit():
    r = load("trl_standard.jsonl")
    assert r.format == "trl" and r.report.usable == 2
    assert r.triplets[0].prompt == ({"role": "user", "content": "The sky is"},)
    assert r.triplets[0].chosen == "blue."


def test_trl_standard_implicit_takes_the_common_prefix():
    r = load("trl_implicit.jsonl")
    assert r.report.usable == 2
    t = r.triplets[0]
    assert t.prompt[0]["content"] == "The sky is" and (t.chosen, t.rejected) == ("blue.", "green.")


def test_trl_conversational_explicit_and_implicit():
    r = load("trl_conversational.jsonl")
    assert [m["role"] for m in r.triplets[0].prompt] == ["system", "user"]
    assert r.triplets[0].chosen == "Blue."
    implicit = load("trl_conversational_implicit.jsonl")
    assert implicit.report.usable == 1 and implicit.report.dropped == {"prompts disagree": 1}
    assert implicit.triplets[0].prompt == ({"role": "user", "content": "What colour is the sky?"},)


def test_alpaca_json_array_joins_instruction_and_input():
    r = load("alpaca.json")
    assert r.format == "alpaca" and r.report.usable == 2
    assert r.report.dropped == {"chosen == rejected": 1}
    assert r.triplets[0].prompt[0]["content"] == "Correct the spelling.\n\nfreind"
    assert r.triplets[1].prompt[0]["content"] == "Name a primary colour."


def test_explicit_column_mapping_on_csv_with_newlines_in_fields():
    r = load("mapped.csv", columns={"prompt": "question", "chosen": "good", "rejected": "bad"})
    assert r.format == "mapping" and r.report.usable == 3
    assert r.triplets[2].prompt[0]["content"] == "Multi\nline question?"
    assert r.triplets[2].chosen == "Yes, fields can hold\nnewlines."


def test_a_mapping_naming_missing_columns_says_what_was_found():
    with pytest.raises(DataError) as e:
        load("mapped.csv", columns={"prompt": "q", "chosen": "good", "rejected": "worse"})
    line = e.value.one_line()
    assert "prompt=q" in line and "rejected=worse" in line and "found bad, good, note, question" in line
    assert "mapped.csv:2" in line


def test_ambiguous_rows_name_the_candidates():
    with pytest.raises(DataError, match=r"ambiguous format.*shp and trl|ambiguous format.*trl and shp"):
        load("ambiguous.jsonl")
    assert load("ambiguous.jsonl", format="shp").format == "shp"


def test_not_preference_data_lists_found_and_expected_fields():
    with pytest.raises(DataError) as e:
        load("not_preference.jsonl")
    assert "not preference data: found fields label, text" in e.value.one_line()
    assert "--columns" in e.value.one_line()


def test_forcing_the_wrong_format_is_a_clear_error():
    with pytest.raises(DataError, match="not shp data"):
        load("hh.jsonl", format="shp")
    with pytest.raises(DataError, match="unknown format 'nope'"):
        load("hh.jsonl", format="nope")


def test_max_rows_reads_only_that_many():
    r = load("hh.jsonl", max_rows=2)
    assert r.report.rows_read == 2 and r.report.usable == 2


def test_parquet_and_gzip_and_json_array_sources(tmp_path):
    import gzip
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(5)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    assert load_triplets(str(tmp_path / "d.parquet")).report.usable == 5
    with open(FIXTURES / "hh.jsonl", "rb") as src, gzip.open(tmp_path / "hh.jsonl.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert load_triplets(str(tmp_path / "hh.jsonl.gz")).report.usable == 2
    # a ".json" file that is really JSON Lines (as in the steamshp repo) is read as such
    shutil.copy(FIXTURES / "shp.jsonl", tmp_path / "test.json")
    assert load_triplets(str(tmp_path / "test.json")).format == "shp"


def test_hub_path_goes_through_datasets_load_dataset_with_data_dir_and_split(tmp_path):
    """No hub here: point `datasets` at a local folder the same way a hub id is loaded."""
    import shutil

    folder = tmp_path / "repo" / "harmless"
    folder.mkdir(parents=True)
    shutil.copy(FIXTURES / "trl_standard.jsonl", folder / "test.jsonl")
    shutil.copy(FIXTURES / "trl_standard.jsonl", folder / "train.jsonl")
    r = load_triplets(f"hf:{tmp_path / 'repo'}", data_dir="harmless", split="test")
    assert r.format == "trl" and r.report.usable == 2
    assert r.triplets[0].id.endswith("[test]#0")


def test_an_unreachable_hub_id_is_one_clear_line(monkeypatch):
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError, match="cannot load the hub data set"):
        load_triplets("hf:nobody-here/no-such-dataset-xyz")
