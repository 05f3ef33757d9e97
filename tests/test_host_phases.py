"""The benchmarks' host-phase timer (benchmarks/host_phases.py, attached to a run from outside) and the
measurement switches of recorded steps."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import switches_env
from dpo_tutor.benchmarks.host_phases import HostPhases
from dpo_tutor.engine.switches import Switches
from dpo_tutor.engine.train.fast import graphed_step


def test_host_phases_time_the_outermost_call_per_step(tmp_path):
    class Loop:
        def fetch(self):
            return self.inner()

        def inner(self):  # timed too, but inside fetch: counted once, as fetch
            return 1

    phases = HostPhases(str(tmp_path / "phases.md"))
    phases.wrap(Loop, "fetch", "fetch")
    phases.wrap(Loop, "inner", "inner")
    loop = Loop()
    for _ in range(6):
        loop.fetch()
        phases.step_end()
    assert len(phases.steps) == 5  # the first end only starts the clock
    assert all(set(step) == {"fetch", "(whole step)"} for step in phases.steps)
    phases.write()
    table = (tmp_path / "phases.md").read_text()
    assert "| fetch |" in table and "| (whole step) |" in table and "over 3 steps" in table


def test_a_tiny_run_writes_the_host_phase_table_with_dataloader_workers(tmp_path):
    out = tmp_path / "phases.md"
    env = {**os.environ, **switches_env(dataloader_workers=1),
           "DPO_TUTOR_RUNS_DIR": str(tmp_path), "DPO_TUTOR_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "dpo_tutor.benchmarks.measured_train", "--host-phases", str(out), "--",
         "--model", "tiny", "--max-steps", "6", "--batch-size", "4",
         "--max-length", "64", "--eval-steps", "0", "--save-steps", "0", "--out", str(tmp_path / "run"), "--quiet"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = out.read_text()
    for phase in ("next batch (fetch + collate)", "training_step", "optimizer.step", "clip_grad_norm_", "log ("):
        assert phase in table
    assert "over 3 steps" in table  # 6 steps: five periods, the first two left out


@pytest.mark.parametrize(("value", "expected"), [("", 30), ("1", 30), ("0.5", 15), ("0", 0), ("2", 30), ("x", 30)])
def test_checkpointed_layers_follow_the_fraction(value, expected):
    fraction = Switches.parse(f"checkpoint_fraction={value}" if value else "").checkpoint_fraction
    assert graphed_step.checkpointed_layers(30, fraction) == expected


def test_only_the_first_shape_is_warmed_up_unless_asked():
    assert not Switches().graph_warmup_each and not graphed_step.StepGraphs.__dataclass_fields__["warm_each"].default
    assert Switches.parse("graph_warmup_each=1").graph_warmup_each
