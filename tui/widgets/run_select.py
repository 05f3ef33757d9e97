"""The run picker the Evaluate and Chat screens share: runs that have a trained adapter, newest first."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Select


def runs_with_adapters(runs_dir: Path) -> list[tuple[str, str]]:
    """(label, path) of runs that have a saved adapter, newest first."""
    from dpo_tutor.engine.runs import list_runs

    try:
        runs = list_runs(runs_dir)
    except Exception:  # noqa: BLE001 - an unreadable runs folder is shown as empty, not a crash
        return []
    return [(f"{r.path.name} ({r.state})", str(r.path)) for r in runs if r.has_adapter]


def refill_run_select(select: Select, runs_dir: Path) -> bool:
    """Refill the picker, keeping the chosen run when it is still there; False when there is none."""
    options = runs_with_adapters(runs_dir)
    current = select.value
    select.set_options(options)
    if current in [path for _, path in options]:
        select.value = current
    return bool(options)


def no_runs_message(runs_dir: Path) -> str:
    return f"No run with a trained adapter in {runs_dir}: train one first (3)."
