"""`dpo-tutor bench` keeps working on CPU: the same steps under each pipeline, and a table."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import set_switches, shared_file
from dpo_tutor.benchmarks.bench import PIPELINES, format_table, run_bench, run_pipeline, run_rate, steady_rate


def test_bench_runs_each_pipeline_and_they_learn_the_same(tmp_path, monkeypatch):
    set_switches(monkeypatch, no_cuda=True)
    # 200 real pairs: 3 steps of 32 are full batches in every pipeline (an epoch's short last batch is
    # averaged differently by 8 x 4 accumulation than by one batch of 32).
    data = str(shared_file("hh-rlhf", "harmless-base-test.jsonl.gz"))
    results = run_bench(
        model="tiny", data=data, steps=3, max_length=96, pipelines=["trl-defaults", "ours-hf", "ours-unsloth"],
        out_dir=tmp_path, lr=5e-3, beta=0.5, max_pairs=200,
    )
    by_key = {r.key: r for r in results}
    assert by_key["ours-unsloth"].state == "skipped" and by_key["ours-unsloth"].skipped == "needs CUDA"
    for key in ("trl-defaults", "ours-hf"):
        r = by_key[key]
        assert r.state == "finished", r.error
        assert r.pairs_per_s and r.pairs_per_s > 0 and r.first_step_s and r.first_step_s > 0
    # Same data, seed and hyperparameters. Length grouping changes which pairs share a batch, so the
    # losses of the first steps differ (what grouping does to learning is measured on the GPU over whole
    # runs: BENCHMARKS.md); everything else in our recipe changes how a step is computed, not its result:
    ours = PIPELINES["ours-hf"]
    ungrouped = replace(ours, key="ours-hf-ungrouped",
                        flags=tuple("--no-group-by-length" if f == "--group-by-length" else f for f in ours.flags))
    assert "--no-group-by-length" in ungrouped.flags
    same_batches = run_pipeline(ungrouped, out=tmp_path / "ungrouped", common=[
        "--model", "tiny", "--max-steps", "3", "--max-length", "96", "--lr", "0.005", "--beta", "0.5",
        "--seed", "42", "--eval-steps", "0", "--save-steps", "0", "--data", data, "--max-pairs", "200"])
    assert same_batches.state == "finished", same_batches.error
    assert by_key["trl-defaults"].loss == pytest.approx(same_batches.loss, abs=2e-3)
    assert by_key["ours-hf"].loss != pytest.approx(same_batches.loss, abs=1e-6)  # grouping is on in ours-hf
    table = format_table(results)
    assert table.splitlines()[0].startswith("| pipeline | pairs/s | steady steps | x plain TRL")
    assert "| trl-defaults |" in table and "| 1.00 |" in table and "needs CUDA" in table


def test_steady_rate_skips_the_first_steps_and_one_off_stalls():
    steps = [{"step": i, "time": t} for i, t in [(1, 0.0), (2, 10.0), (3, 11.0), (4, 12.0), (5, 13.0)]]
    assert steady_rate(steps, 32, skip=2) == pytest.approx(32 / 1.0)
    assert run_rate(steps, 32) == pytest.approx(4 * 32 / 13.0)
    stalled = steps + [{"step": 6, "time": 30.0}, {"step": 7, "time": 31.0}]  # a recompile at step 6
    assert steady_rate(stalled, 32, skip=2) == pytest.approx(32.0)
    assert run_rate(stalled, 32) == pytest.approx(6 * 32 / 31.0)


def test_steady_rate_leaves_out_the_steps_that_recorded_a_new_graph_shape():
    # Steps 2 and 3 record a shape (1 s each); the step after a recording is logged early (its log
    # waited for the recording): 0.01 s; then replays of 0.25 s.
    times = [0.0, 1.0, 2.0, 2.01, 2.26, 2.51, 2.76, 3.01]
    recorded = [1, 2, 3, 3, 3, 3, 3, 3]
    steps = [{"step": i + 1, "time": t, "metrics": {"cuda_graph_recordings": r}}
             for i, (t, r) in enumerate(zip(times, recorded, strict=True))]
    assert steady_rate(steps, 32, skip=0) == pytest.approx(32 / 0.25)
    unmarked = [{"step": s["step"], "time": s["time"], "metrics": {}} for s in steps]
    assert steady_rate(unmarked, 32, skip=0) != pytest.approx(32 / 0.25)  # the marks are what leave them out


def test_steady_rate_is_the_time_the_steps_took_not_a_median_gap():
    # Lagged logs: gaps alternate short and long while the steps take 1.45 s for 5 steps.
    times = [0.0, 0.05, 0.5, 0.55, 1.0, 1.45]
    steps = [{"step": i + 1, "time": t, "metrics": {}} for i, t in enumerate(times)]
    assert steady_rate(steps, 32, skip=0) == pytest.approx(5 * 32 / 1.45)


def test_a_rate_from_few_steady_steps_is_called_unreliable():
    # SmolLM2-1.7B's shape on an H200, 12 graphed steps (2026-12-04): 7 of them recorded a new shape, so
    # two lagged gaps (0.502 s and 0.138 s) were all the steady state there was; 30 steps of the same run
    # measured 85 pairs/s over 15 steps, not the 100 those two gave.
    from dpo_tutor.benchmarks.bench import BenchResult, steady_step_count

    gaps = [1.122, 0.184, 0.503, 1.128, 0.477, 0.502, 0.138, 0.971, 0.096, 1.081, 0.548]
    recordings = [1, 2, 2, 3, 4, 4, 4, 4, 5, 5, 6, 7]
    times = [0.0]
    for gap in gaps:
        times.append(times[-1] + gap)
    steps = [{"step": i + 1, "time": t, "metrics": {"cuda_graph_recordings": r}}
             for i, (t, r) in enumerate(zip(times, recordings, strict=True))]
    assert steady_step_count(steps) == 2
    assert steady_rate(steps, 32) == pytest.approx(2 * 32 / (0.502 + 0.138))
    short = BenchResult("ours-hf", "ours", "finished", pairs_per_s=100.0, steady_steps=2)
    long = BenchResult("trl-tuned", "trl", "finished", pairs_per_s=24.5, steady_steps=9)
    rows = format_table([short, long]).splitlines()
    assert "| ours-hf | 100.0 | 2 |" in rows[2] and "pairs/s from 2 steps: unreliable" in rows[2]
    assert "| trl-tuned | 24.5 | 9 |" in rows[3] and "unreliable" not in rows[3]


def test_unknown_pipeline_is_one_clear_error(tmp_path):
    from dpo_tutor.engine.errors import UserError

    with pytest.raises(UserError, match="unknown pipeline"):
        run_bench(model="tiny", data="", steps=1, pipelines=["warp-drive"], out_dir=tmp_path)
    assert "trl-defaults" in PIPELINES


def test_a_used_out_folder_is_refused_before_any_pipeline_runs(tmp_path, monkeypatch):
    # A second bench into the same folder once printed the old run's rates beside a failure, with a
    # negative start-up time: now nothing runs and one line says why.
    from dpo_tutor.benchmarks import bench
    from dpo_tutor.engine.errors import UserError

    (tmp_path / "ours-hf").mkdir()
    (tmp_path / "ours-hf" / "events.jsonl").write_text("{}\n")
    started = []
    monkeypatch.setattr(bench, "run_pipeline", lambda *a, **k: started.append(a))
    with pytest.raises(UserError, match="already holds runs of ours-hf"):
        bench.run_bench(model="tiny", data="", steps=1, pipelines=["trl-defaults", "ours-hf"], out_dir=tmp_path)
    assert started == []
    (tmp_path / "trl-defaults").mkdir()  # an empty folder is fine
    bench.run_bench(model="tiny", data="", steps=1, pipelines=["trl-defaults"], out_dir=tmp_path)
    assert len(started) == 1


def test_the_commands_help_names_every_pipeline_the_engine_knows():
    from dpo_tutor.benchmarks.bench import PIPELINES

    from dpo_tutor.cli import build_parser
    from dpo_tutor.commands.bench import DEFAULT_PIPELINES, EXTRA_PIPELINES

    assert set(DEFAULT_PIPELINES) | set(EXTRA_PIPELINES) == set(PIPELINES)
    bench = build_parser()._subparsers._group_actions[0].choices["bench"]
    help_text = " ".join(bench.format_help().split()).replace("- ", "-")  # argparse wraps at hyphens
    assert all(name in help_text for name in PIPELINES)


def test_each_pipeline_starts_with_its_own_empty_dataset_cache(tmp_path, monkeypatch):
    import os
    import subprocess

    from dpo_tutor.benchmarks import bench

    seen = []

    from dpo_tutor.engine.switches import Switches

    def fake_run(cmd, **kwargs):
        folder = Switches.from_env(kwargs["env"]).dataset_cache_dir
        seen.append(folder)
        os.makedirs(folder)  # what a run leaves there
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.delenv("DPO_TUTOR_SWITCHES", raising=False)
    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    for key in ("trl-defaults", "ours-hf"):
        bench.run_pipeline(PIPELINES[key], out=tmp_path / key, common=[])
    assert len(set(seen)) == 2 and all(str(tmp_path) in s for s in seen)
    assert not any(os.path.exists(s) for s in seen)  # removed after each pipeline
    set_switches(monkeypatch, dataset_cache_dir=tmp_path / "shared")
    bench.run_pipeline(PIPELINES["ours-hf"], out=tmp_path / "again", common=[])
    assert seen[-1] == str(tmp_path / "shared")  # the user's choice is kept


def test_startup_breakdown_names_where_the_first_step_went():
    from dpo_tutor.benchmarks.bench import STARTUP_PARTS, startup_breakdown

    events = [
        {"type": "run_started", "time": 10.0, "process_started": 2.0},
        {"type": "phase", "time": 10.0, "phase": "loading_data", "message": "reading x"},
        {"type": "phase", "time": 10.5, "phase": "loading_model", "message": "model: a GGUF file"},
        {"type": "phase", "time": 11.5, "phase": "loading_model", "message": "preparing the trainer (tokenizing 9 pairs)"},
        {"type": "phase", "time": 13.0, "phase": "loading_model", "message": "scoring 0/9", "done": 0, "total": 9},
        {"type": "phase", "time": 16.0, "phase": "loading_model", "message": "scored 9", "done": 9, "total": 9},
        {"type": "phase", "time": 16.5, "phase": "training", "message": "3 steps"},
        {"type": "step", "time": 18.0, "step": 1},
    ]
    parts = startup_breakdown(events)
    assert list(parts) == list(STARTUP_PARTS)
    assert parts == {"imports": 8.0, "data": 0.5, "model": 1.0, "tokenizing": 1.5, "reference": 3.0,
                     "trainer": 0.5, "first step": 1.5}
    assert sum(parts.values()) == 18.0 - 2.0


def test_the_runs_pairs_per_s_is_taken_over_several_steps(monkeypatch):
    """Recorded steps' logs come one step late, so single gaps alternate short and long (0.05 s / 0.45 s
    here, 0.25 s a step): the rate shown is over the last 8 steps, not the last gap; an evaluation's
    time is not counted."""
    from types import SimpleNamespace

    from dpo_tutor.engine.train import callback as module

    clock = [0.0]
    monkeypatch.setattr(module.time, "perf_counter", lambda: clock[0])
    emitted = []
    cb = module.EventCallback(lambda type, **f: emitted.append((type, f)), pairs_per_step=32,
                              stop=module.StopRequest())
    args = SimpleNamespace(device="cpu", world_size=1)
    state = SimpleNamespace(global_step=0, max_steps=20, is_world_process_zero=True)
    cb.on_train_begin(args, state, None)
    for step in range(1, 12):
        clock[0] += 0.05 if step % 2 else 0.45
        state.global_step = step
        cb.on_log(args, state, None, logs={"loss": 0.6})
    rates = [f["metrics"]["pairs_per_s"] for t, f in emitted if t == "step"]
    assert rates[-1] == pytest.approx(32 / 0.25, rel=0.15) and rates[-2] == pytest.approx(32 / 0.25, rel=0.15)
    clock[0] += 30.0  # an evaluation; its log comes at its end
    cb.on_log(args, state, None, logs={"eval_loss": 0.5})
    clock[0] += 0.25
    state.global_step = 12
    cb.on_log(args, state, None, logs={"loss": 0.6})
    assert emitted[-1][1]["metrics"]["pairs_per_s"] == pytest.approx(32 / 0.25)


def test_tokens_per_s_is_counted_over_the_same_steps_as_pairs_per_s():
    from dpo_tutor.benchmarks.bench import steady_tokens_rate

    # step 3 records a shape (left out with the step after it); 1,000 tokens a step, 0.25 s a step
    times = [0.0, 0.25, 0.5, 2.5, 2.51, 2.76, 3.01, 3.26]
    recorded = [1, 1, 1, 2, 2, 2, 2, 2]
    steps = [{"step": i + 1, "time": t, "metrics": {"cuda_graph_recordings": r, "tokens_seen": 1000 * (i + 1)}}
             for i, (t, r) in enumerate(zip(times, recorded, strict=True))]
    assert steady_rate(steps, 32, skip=0) == pytest.approx(32 / 0.25)
    assert steady_tokens_rate(steps, skip=0) == pytest.approx(1000 / 0.25)
    assert steady_tokens_rate([{**s, "metrics": {}} for s in steps], skip=0) is None  # older logs


def test_a_run_started_by_timed_train_is_measured_from_its_launch(tmp_path):
    """The product keeps no process clock: the bench notes when it started a pipeline's process, and
    timed_train.py notes it beside a run a script started (launched_at.json)."""
    import json

    from dpo_tutor.benchmarks.bench import LAUNCH_FILE, Pipeline, summarize_run
    from dpo_tutor.engine.events import EventWriter

    run = tmp_path / "run"
    with EventWriter(run / "events.jsonl") as log:
        log.emit("run_started", backend="hf")
        for step in (1, 2, 3):
            log.emit("step", step=step, metrics={"loss": 0.6})
        log.emit("finished", step=3, summary={})
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    (run / LAUNCH_FILE).write_text(json.dumps({"launched_at": events[0]["time"] - 4.0}))
    result = summarize_run(run, Pipeline("run", "run", ()))
    assert result.first_step_s == pytest.approx(events[1]["time"] - events[0]["time"] + 4.0)
    assert result.extra["startup"]["imports"] == pytest.approx(4.0, abs=0.01)
