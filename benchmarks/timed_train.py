"""`dpo-tutor train` in its own process, with the moment it was started written beside its run: what the
bench does for each pipeline, for runs a script starts itself (gpu_session.sh's default recipe).

    python -m dpo_tutor.benchmarks.timed_train <dpo-tutor train flags, with --out FOLDER>

The run's events then measure imports and start-up from the process's start (bench.summarize_run
reads `launched_at.json` from the folder); the product itself keeps no such clock.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from dpo_tutor.benchmarks.bench import LAUNCH_FILE


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--out" not in argv:
        print("timed_train: give the run folder with --out", file=sys.stderr)
        return 2
    out = Path(argv[argv.index("--out") + 1])
    launched = time.time()
    code = subprocess.call([sys.executable, "-m", "dpo_tutor", "train", *argv])
    if out.is_dir():
        (out / LAUNCH_FILE).write_text(json.dumps({"launched_at": launched}), encoding="utf-8")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
