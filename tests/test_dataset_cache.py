"""A second run of the same pairs reuses TRL's tokenized rows and reference log-probs (pairs_cache.py)."""

from __future__ import annotations

import pytest
from conftest import set_switches
from dpo_tutor.engine.config import TrainConfig
from dpo_tutor.engine.events import read_events
from dpo_tutor.engine.train import pairs_cache


def tiny_config(**changes) -> TrainConfig:
    base = TrainConfig(model="tiny", max_steps=3, batch_size=4, grad_accum=1, max_length=64, eval_steps=0,
                       save_steps=0, seed=0)
    return base.replace(**changes)


@pytest.fixture
def reference_passes(monkeypatch):
    """How many batches TRL's reference pass scored (counted at TRL's own method)."""
    from trl import DPOTrainer

    calls = []
    original = DPOTrainer.compute_ref_log_probs

    def counted(self, model, inputs):
        calls.append(inputs["input_ids"].shape[0])
        return original(self, model, inputs)

    monkeypatch.setattr(DPOTrainer, "compute_ref_log_probs", counted)
    return calls


def train(run_dir, config):
    from dpo_tutor.engine.train.run import run_training

    result = run_training(config, run_dir)
    assert result.state == "finished"
    return [(e["metrics"]["loss"], e["metrics"]["grad_norm"], e["metrics"]["rewards/margins"])
            for e in read_events(run_dir) if e["type"] == "step"]


def test_a_second_run_of_the_same_pairs_skips_the_reference_pass_and_learns_the_same(tmp_path, reference_passes):
    first = train(tmp_path / "a", tiny_config())
    scored = len(reference_passes)
    assert scored > 0
    second = train(tmp_path / "b", tiny_config(seed=0))
    assert len(reference_passes) == scored  # nothing scored again
    assert second == first  # the cached log-probs are the ones computed


def test_other_rows_or_settings_score_the_reference_again(tmp_path, reference_passes):
    train(tmp_path / "a", tiny_config())
    scored = len(reference_passes)
    train(tmp_path / "b", tiny_config(max_length=48))  # other truncation: other rows
    assert len(reference_passes) > scored


def test_cache_off_keeps_datasets_in_memory(tmp_path, monkeypatch, reference_passes):
    monkeypatch.setenv(pairs_cache.CAP_ENV, "off")
    assert pairs_cache.location() is None
    train(tmp_path / "a", tiny_config())
    scored = len(reference_passes)
    train(tmp_path / "b", tiny_config())
    assert len(reference_passes) == 2 * scored


def test_the_frozen_fingerprint_sees_frozen_weights_only():
    import torch

    layer = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    layer[1].requires_grad_(False)
    before = pairs_cache.frozen_fingerprint(layer)
    with torch.no_grad():
        layer[0].weight.add_(1.0)  # trained part (an adapter's role): not the reference
    assert pairs_cache.frozen_fingerprint(layer) == before
    with torch.no_grad():
        layer[1].weight[1, 2] += 1e-3
    assert pairs_cache.frozen_fingerprint(layer) != before


def test_a_large_tensor_is_sampled_not_copied_whole():
    import torch

    big = torch.nn.Linear(200, 100)  # 20,000 values > SAMPLE
    big.requires_grad_(False)
    before = pairs_cache.frozen_fingerprint(big)
    with torch.no_grad():
        big.weight.mul_(1.5)
    assert pairs_cache.frozen_fingerprint(big) != before


def test_a_tensor_of_more_than_2_to_the_24_values_is_sampled_to_its_last_value():
    import torch

    module = torch.nn.Module()
    module.register_buffer("big", torch.zeros(2**24 + 3, dtype=torch.int8))  # float positions would overrun
    before = pairs_cache.frozen_fingerprint(module)
    module.big[-1] = 1  # the last value is always in the sample
    assert pairs_cache.frozen_fingerprint(module) != before


def test_an_unwritable_cache_folder_falls_back_to_memory(tmp_path, monkeypatch, reference_passes):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    set_switches(monkeypatch, dataset_cache_dir=blocker / "datasets")  # cannot be made
    train(tmp_path / "a", tiny_config())
    assert reference_passes


# ---- keeping the cache in bounds --------------------------------------------------------------------
def fake_entry(folder, name: str, megabytes: float, used: float):
    """An entry as datasets lays it out (<builder>/<config>/0.0.0/*.arrow), last used at `used`."""
    import os

    entry = folder / "generator" / name
    (entry / "0.0.0").mkdir(parents=True)
    data = entry / "0.0.0" / "generator-train.arrow"
    data.write_bytes(b"\0" * int(megabytes * 2**20))
    lock = folder / f"_cache_generator_{name}_0.0.0.lock"
    lock.write_text("")
    for path in (data, entry / "0.0.0", entry):
        os.utime(path, (used, used))
    return entry, lock


def test_prune_removes_the_least_recently_used_entries_until_the_cap_fits(tmp_path):
    now = 1_000_000.0
    hour = pairs_cache.IN_USE_S
    oldest, oldest_lock = fake_entry(tmp_path, "default-aaa", 3, now - 30 * hour)
    middle, _ = fake_entry(tmp_path, "default-bbb", 3, now - 20 * hour)
    newest, _ = fake_entry(tmp_path, "default-ccc", 3, now - 10 * hour)
    removed = pairs_cache.prune(tmp_path, cap=7 * 2**20, now=now)  # 9 MB held, 7 allowed: one goes
    assert removed == [oldest]
    assert not oldest.exists() and not oldest_lock.exists()
    assert middle.exists() and newest.exists()
    assert pairs_cache.prune(tmp_path, cap=7 * 2**20, now=now) == []  # fits now


def test_prune_never_removes_an_entry_used_within_the_hour(tmp_path):
    now = 1_000_000.0
    busy, _ = fake_entry(tmp_path, "default-busy", 5, now - 60)
    stale, _ = fake_entry(tmp_path, "default-stale", 1, now - 2 * pairs_cache.IN_USE_S)
    assert pairs_cache.prune(tmp_path, cap=0, now=now) == [stale]
    assert busy.exists()


def test_the_cap_reads_the_environment(monkeypatch):
    monkeypatch.setenv(pairs_cache.CAP_ENV, "0.5")
    assert pairs_cache.cap_bytes() == 2**29
    monkeypatch.setenv(pairs_cache.CAP_ENV, "lots")  # not a number: the default, with a warning
    assert pairs_cache.cap_bytes() == int(pairs_cache.DEFAULT_CAP_GB * 2**30)


def age(entry, seconds: float) -> None:
    import os
    import time

    then = time.time() - seconds
    for path in [entry, *entry.rglob("*")]:
        os.utime(path, (then, then))


def test_a_run_marks_the_entry_it_reuses_and_prunes_a_stale_one(tmp_path, monkeypatch, reference_passes):
    folder = tmp_path / "cache"
    set_switches(monkeypatch, dataset_cache_dir=folder)
    first = train(tmp_path / "a", tiny_config())
    (entry,) = (folder / "generator").iterdir()  # this run's pairs (no eval slice)
    scored = len(reference_passes)
    age(entry, 48 * 3600)  # last used two days ago...
    stale, _ = fake_entry(folder, "default-stale", 2, time_ago(72 * 3600))  # ...and an older one
    monkeypatch.setenv(pairs_cache.CAP_ENV, "0")  # nothing fits: everything not in use goes
    second = train(tmp_path / "b", tiny_config())
    assert not stale.exists()
    assert entry.exists()  # the run reusing it marked it used first
    assert len(reference_passes) == scored and second == first  # and found its reference log-probs


def time_ago(seconds: float) -> float:
    import time

    return time.time() - seconds


# ---- the reference pass says how far it is ---------------------------------------------------------
def reference_phases(run_dir):
    return [(e["done"], e["total"], e["message"]) for e in read_events(run_dir)
            if e["type"] == "phase" and "total" in e]


def test_the_reference_pass_reports_its_progress_and_a_cache_hit(tmp_path, monkeypatch):
    from dpo_tutor.engine.train import trainer

    monkeypatch.setattr(trainer, "REF_PROGRESS_S", 0.0)  # every batch (the tiny model is quick)
    train(tmp_path / "a", tiny_config(batch_size=2, max_pairs=8))
    first = reference_phases(tmp_path / "a")
    assert first[0][:2] == (0, 8) and first[-1] == (8, 8, "scored the reference model on the 8 train pairs")
    done = [d for d, _, _ in first]
    assert done == sorted(done) and len(set(done)) >= 3  # batch by batch (the pass scores 4 pairs at a time)
    train(tmp_path / "b", tiny_config(batch_size=2, max_pairs=8))
    assert reference_phases(tmp_path / "b")[-1][2].endswith("found in the cache: no reference pass")


def test_a_phase_with_progress_is_folded_into_the_summary():
    from dpo_tutor.engine.events import RunSummary

    summary = RunSummary()
    summary.apply({"type": "phase", "phase": "loading_model", "message": "scoring", "done": 96, "total": 1280})
    assert summary.phase_progress == (96, 1280)
    summary.apply({"type": "phase", "phase": "training", "message": "40 steps"})
    assert summary.phase_progress is None
