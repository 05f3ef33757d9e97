"""Every adapter against the real files in ../shared/data, asserting the counts their PROVENANCE.md lists."""

from __future__ import annotations

import pytest
from conftest import shared_file
from dpo_tutor.engine.data.load import load_triplets


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DPO_TUTOR_CACHE_DIR", str(tmp_path / "cache"))


def test_hh_rlhf_harmless_test():
    path = shared_file("hh-rlhf", "harmless-base-test.jsonl.gz")
    r = load_triplets(str(path))
    assert r.format == "hh"
    assert r.report.rows_read == 2312
    assert r.report.dropped == {"empty side": 4, "prompts disagree": 5}
    assert r.report.usable == 2303 == len(r.triplets)
    # the four empty chosen replies sit on 0-based lines 86, 516, 925, 1103 (1-based below)
    assert r.report.examples["empty side"] == [f"harmless-base-test.jsonl.gz:{n}" for n in (87, 517, 926, 1104)]
    assert r.report.examples["prompts disagree"] == [
        f"harmless-base-test.jsonl.gz:{n}" for n in (1255, 1689, 1951, 1953, 2037)
    ]
    # 1 to 18 human turns; the 5 dropped rows take their turns with them
    assert min(r.report.turns) == 1 and max(r.report.turns) == 18 and r.report.turns[18] == 1
    assert sum(r.report.turns.values()) == 2303
    first = r.triplets[0]
    assert first.prompt[0]["role"] == "user" and first.prompt[-1]["role"] == "user"
    assert not first.chosen.startswith(" ")


def test_hh_rlhf_keeps_the_mismatches_when_asked():
    path = shared_file("hh-rlhf", "harmless-base-test.jsonl.gz")
    r = load_triplets(str(path), options={"hh_mismatch": "lcp"})
    assert r.report.usable == 2308 and r.report.dropped == {"empty side": 4}


def test_steamshp_helpful_test():
    path = shared_file("hh-rlhf-helpful-steamshp", "anthropic_helpful_test.jsonl.gz")
    r = load_triplets(str(path))
    assert r.format == "shp"
    assert r.report.rows_read == 2344
    assert r.report.dropped == {"empty side": 4, "chosen == rejected": 2}
    assert r.report.usable == 2338
    assert r.report.labels["labels"] == {"A preferred": 1192, "B preferred": 1152}
    dropped_ids = {t.id for t in r.triplets}
    for post in ("-722", "-2169", "-121", "-741", "-1215", "-2064"):
        assert f"anthropic_helpful_test{post}" not in dropped_ids
    assert all(t.prompt[0]["role"] == "user" for t in r.triplets)


def test_oasst1_validation_en_filtered_all_pairs():
    path = shared_file("oasst1", "oasst1-en-validation.jsonl.gz")
    r = load_triplets(str(path))
    ranks = r.report.labels["ranks"]
    assert r.format == "oasst" and r.report.rows_read == 2022
    assert ranks["parents with >=2 ranked replies"] == 416
    assert ranks["pairs made"] == 1022
    assert ranks["groups with rank gaps"] == 2
    assert r.report.dropped["orphan (parent not in file)"] == 3
    # one sibling pair has identical texts: 1,022 pairs, 1,021 usable
    assert r.report.dropped["chosen == rejected"] == 1
    assert r.report.usable == 1021
    assert all(t.metadata["rank_chosen"] < t.metadata["rank_rejected"] for t in r.triplets)


def test_oasst1_unfiltered_and_pair_modes():
    path = shared_file("oasst1", "oasst1-en-validation.jsonl.gz")
    unfiltered = load_triplets(str(path), options={"oasst_filter": False})
    assert unfiltered.report.labels["ranks"]["pairs made"] == 1026
    assert unfiltered.report.labels["ranks"]["parents with >=2 ranked replies"] == 418
    assert load_triplets(str(path), options={"oasst_pairs": "best-vs-worst"}).report.labels["ranks"][
        "pairs made"] == 416
    assert load_triplets(str(path), options={"oasst_pairs": "best-vs-each"}).report.labels["ranks"][
        "pairs made"] == 711


def test_llms_from_scratch_json_array():
    path = shared_file("llms-from-scratch-dpo", "instruction-data-with-preference.json.gz")
    r = load_triplets(str(path))
    assert r.format == "alpaca"
    assert r.report.rows_read == 1100
    assert r.report.dropped == {"chosen == rejected": 6}
    assert r.report.usable == 1094
    assert r.triplets[0].prompt[0]["content"].endswith("\n\nfreind --> friend")
