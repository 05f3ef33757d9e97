"""The run picker the Evaluate and Chat screens share: runs with a trained adapter (newest first), then
the recordings shipped with the package (`recorded_runs()`: a new recording folder appears by itself).

A recording has no adapter: Evaluate shows its saved report, Chat its saved answers (no model loaded).
"""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Select

RECORDED_PREFIX = "recorded: "


def runs_with_adapters(runs_dir: Path) -> list[tuple[str, str]]:
    """(label, path) of runs that have a saved adapter, newest first."""
    from dpo_tutor.engine.runs import list_runs

    try:
        runs = list_runs(runs_dir)
    except OSError:  # an unreadable runs folder is shown as empty, not a crash
        return []
    return [(f"{r.path.name} ({r.state})", str(r.path)) for r in runs if r.has_adapter]


def recordings_with_reports() -> list[tuple[str, str]]:
    """(label, path) of the shipped recordings that carry a report (report.json)."""
    from dpo_tutor.engine.recorded.loader import recorded_runs
    from dpo_tutor.engine.report import REPORT_JSON

    return [(f"{RECORDED_PREFIX}{p.name} (saved report, no model)", str(p))
            for p in recorded_runs() if (p / REPORT_JSON).is_file()]


def is_recording(path: str | Path | None) -> bool:
    from dpo_tutor.engine.recorded.loader import recorded_runs

    return path is not None and Path(path) in recorded_runs()


def run_options(runs_dir: Path) -> list[tuple[str, str]]:
    return runs_with_adapters(runs_dir) + recordings_with_reports()


def just_trained(app) -> str | None:
    """The run the Train area last trained or followed in this session, if it has an adapter now."""
    watcher = getattr(app, "run_watcher", None)
    state = getattr(watcher, "state", None)
    if state is None or state.is_replay:
        return None
    from dpo_tutor.engine.runs import run_info

    return str(state.path) if run_info(state.path).has_adapter else None


def preferred_run(app, options: list[tuple[str, str]]) -> str | None:
    """What to pick for the learner: the run just trained, else the newest run, else a recording."""
    paths = [path for _, path in options]
    trained = just_trained(app)
    if trained in paths:
        return trained
    return paths[0] if paths else None


def refill_run_select(select: Select, runs_dir: Path) -> list[tuple[str, str]]:
    """Refill the picker, keeping the chosen run when it is still there; returns the options."""
    options = run_options(runs_dir)
    current = select.value
    select.set_options(options)
    if current in [path for _, path in options]:
        select.value = current
    return options


def no_runs_message(runs_dir: Path) -> str:
    return f"No run with a trained adapter in {runs_dir}: train one first (3)."
