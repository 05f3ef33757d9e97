"""`dpo-tutor runs`: list runs with their state and last metrics."""

from __future__ import annotations

import argparse
import json
import sys
import time


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "runs",
        help="list runs with their state and last metrics",
        description="List training runs, newest first, with their state "
        "(new, running, finished, stopped, failed, interrupted) and last metrics.",
    )
    p.add_argument(
        "--runs-dir", metavar="DIR", default=argparse.SUPPRESS,
        help="where runs live (default: $DPO_TUTOR_RUNS_DIR or ./runs)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per run, for scripts")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dpo_tutor.engine.errors import UserError
    from dpo_tutor.engine.runs import default_runs_dir, list_runs

    try:
        value = getattr(args, "runs_dir", None)
        runs_dir = Path(value).expanduser() if value else default_runs_dir()
        runs = list_runs(runs_dir)
    except UserError as e:
        print(f"dpo-tutor runs: {e.one_line()}", file=sys.stderr)
        return 2
    if args.json:
        for info in runs:
            print(json.dumps(as_dict(info)))
        return 0
    if not runs:
        print(f"no runs in {runs_dir}", file=sys.stderr)
        return 0
    print(f"{'RUN':<44} {'STATE':<12} {'STEP':>9} {'LOSS':>7} {'ACC':>5} {'MARGIN':>7}  STARTED")
    for info in runs:
        s = info.summary
        m = s.last_metrics
        step = f"{s.step}/{s.total_steps}" if s.total_steps else str(s.step)
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.created)) if info.created else "-"
        print(
            f"{info.path.name:<44} {info.state:<12} {step:>9} {_num(m.get('loss'), 4):>7} "
            f"{_num(m.get('rewards/accuracies'), 2):>5} {_num(m.get('rewards/margins'), 3):>7}  {started}"
        )
        if info.state == "failed" and s.failure:
            print(f"    failed: {s.failure.get('message')}")
    return 0


def as_dict(info) -> dict:
    s = info.summary
    return {
        "path": str(info.path),
        "name": info.name,
        "state": info.state,
        "created": info.created,
        "step": s.step,
        "total_steps": s.total_steps,
        "backend": s.backend,
        "device": s.device,
        "last_metrics": s.last_metrics,
        "last_eval": s.last_eval,
        "failure": s.failure,
        "adapter": s.adapter,
        "summary": _finished_summary(info.path),
    }


def _finished_summary(path) -> dict | None:
    """The `finished` event's summary (start/end metrics, pairs/s, peak memory, time to first step)."""
    from dpo_tutor.engine.events import read_events

    finished = [e for e in read_events(path) if e.get("type") == "finished"]
    return finished[-1].get("summary") if finished else None


def _num(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
