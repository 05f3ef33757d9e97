"""Shared fixtures: where the real data lives, and an isolated runs folder."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_file(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not here: {path} (CI has ../shared beside the clone)")
    return path


@pytest.fixture(autouse=True)
def test_switches(tmp_path, monkeypatch):
    """Two switches (engine/switches.py) every test starts with.

    dataset_cache_dir: each test tokenizes and scores the reference afresh; runs cache both
    (engine/train/pairs_cache.py), and a test that counts reference passes must not find an earlier test's.
    default_data=sample: a run without data trains on the bundled sample, as before the default became the
    HH-RLHF mix (engine/data/mix.py), so tiny runs stay tiny and nothing probes the hub. Tests of the
    default mix lift it with `lift_sample_default(monkeypatch)`."""
    monkeypatch.setenv("DPO_TUTOR_SWITCHES", f"dataset_cache_dir={tmp_path / 'dataset-cache'},default_data=sample")


def lift_sample_default(monkeypatch) -> None:
    """The default data resolves as for a user (hub, local copies, sample), not to the sample outright."""
    set_switches(monkeypatch, default_data="")


def set_switches(monkeypatch, **values) -> None:
    """Turn switches (engine/switches.py) for this test, keeping those set already (the dataset cache)."""
    import os

    from dpo_tutor.engine.switches import ENV, encode

    monkeypatch.setenv(ENV, encode(values, os.environ.get(ENV, "")))


def switches_env(**values) -> dict[str, str]:
    """The DPO_TUTOR_SWITCHES entry of a child process's environment with these switches added."""
    import os

    from dpo_tutor.engine.switches import ENV, encode

    return {ENV: encode(values, os.environ.get(ENV, ""))}


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "runs"
    monkeypatch.setenv("DPO_TUTOR_RUNS_DIR", str(path))
    return path


def steps_of(events: list[dict]) -> list[int]:
    """The step numbers a run's log holds, in order."""
    return [e["step"] for e in events if e["type"] == "step"]


def assert_graceful_stop(run_dir: Path) -> int:
    """The run ended `stopped` by SIGTERM with every step logged once, a complete checkpoint and the
    adapter; returns the step it stopped at."""
    from dpo_tutor.engine.events import read_events

    events = read_events(run_dir)
    stopped = events[-1]
    assert stopped["type"] == "stopped" and stopped["reason"] == "SIGTERM"
    k = stopped["step"]
    assert 3 <= k < 5000 and steps_of(events) == list(range(1, k + 1))
    assert stopped["checkpoint"].endswith(f"checkpoint-{k}")
    assert (run_dir / "checkpoints" / f"checkpoint-{k}" / "trainer_state.json").exists()
    assert (run_dir / "adapter" / "adapter_model.safetensors").exists()
    return k


def record_notifications(app) -> list[tuple[str, str]]:
    """Keep (severity, message) of every notification the app shows, and still show them."""
    notes: list[tuple[str, str]] = []
    show = app.notify

    def notify(message, *, severity="information", **kwargs):
        notes.append((severity, str(message)))
        return show(message, severity=severity, **kwargs)

    app.notify = notify
    return notes


async def start_tiny_run_from_form(pilot, screen, max_steps: int):
    """Fill the Train form for a tiny CPU run (batch 2, 64 tokens), start it with ctrl+r: the app's watcher."""
    from dpo_tutor.tui.run_watcher import watcher_of

    for name, value in {"model": "tiny", "max_steps": str(max_steps), "batch_size": "2", "grad_accum": "1",
                        "max_length": "64"}.items():
        screen.query_one(f"#in-{name}").value = value
    await pilot.pause()
    await pilot.press("ctrl+r")
    await pilot.pause()
    return watcher_of(pilot.app)
