"""The lean imports (engine/train/backends/lean_imports.py) against none: the tiny model's time to the first step.

    python benchmarks/lean_imports.py [--runs 3] [--model tiny]

After one warm-up of each (the first process after an install also writes the byte-code), each run
is a fresh `dpo-tutor train --max-steps 1 --eval-steps 0` process, alternately with
the `lean_imports` switch off and on; from its events: imports (process start to `run_started`) and
the first logged step (process start to the first `step`), and what the run left out. It only differs
where scikit-learn, torchao or bitsandbytes are installed (with none of them, both columns are the
same code).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dpo_tutor.engine.switches import ENV as SWITCHES_ENV


def one_run(folder: Path, model: str, lean: bool) -> dict:
    env = {**os.environ, SWITCHES_ENV: f"lean_imports={int(lean)}", "DPO_TUTOR_CACHE_DIR": str(folder / "cache")}
    out = folder / "run"
    launched = time.time()  # the process's start, as the bench takes it
    subprocess.run([sys.executable, "-m", "dpo_tutor", "train", "--model", model, "--max-steps", "1", "--eval-steps",
                    "0", "--out", str(out), "--quiet"], env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    started = events[0]
    step = next(e for e in events if e["type"] == "step")
    return {"imports": started["time"] - launched,
            "first_step": step["time"] - launched,
            "left_out": started.get("imports_left_out") or []}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument("--model", default="tiny", help="what `dpo-tutor train --model` takes (default tiny)")
    args = parser.parse_args(argv)
    results: dict[bool, list[dict]] = {False: [], True: []}
    for run in range(args.runs + 1):
        for lean in (False, True):
            with tempfile.TemporaryDirectory(prefix="dpo-lean-") as tmp:
                result = one_run(Path(tmp), args.model, lean)
            if run:  # run 0 is the warm-up
                results[lean].append(result)
    print("| imports | runs | imports s (median, min-max) | first step s (median, min-max) | left out |")
    print("|---|---:|---:|---:|---|")
    for lean in (False, True):
        rows = results[lean]
        cells = []
        for key in ("imports", "first_step"):
            values = [r[key] for r in rows]
            cells.append(f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})")
        left = ", ".join(rows[0]["left_out"]) or "-"
        print(f"| {'lean' if lean else 'all (lean_imports=0)'} | {len(rows)} | {cells[0]} | {cells[1]} | {left} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
