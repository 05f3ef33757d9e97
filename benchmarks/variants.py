"""One-change-at-a-time measurements of training pipelines (BENCHMARKS.md's "predictions and results").

Each variant is `dpo-tutor train` with some flags, in its own process (its own import time, first step
and peak memory), on the same pairs, seed and effective batch (32 pairs) as `dpo-tutor bench`; the
table is bench's. `--profile NAME` also writes that variant's torch.profiler tables (steps 20-21).

usage: python benchmarks/variants.py --model $DPO_GGUF --data harmless-base-test.jsonl.gz --steps 64 \\
          --out /tmp/variants 'eager=--backend hf --batch-size 32 --grad-accum 1 --compile off' ...

Leading NAME=value words of a variant's flags are switches (engine/switches.py) for that run only
('masked=drop_padding_mask=0 --backend hf ...'), or environment variables when NAME is no switch. The
variant files of rounds before the switches registry name the environment variables of their time.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dpo_tutor.benchmarks.bench import Pipeline, format_startup_table, format_table, summarize_run
from dpo_tutor.engine.switches import ENV as SWITCHES_ENV
from dpo_tutor.engine.switches import Switches, encode

SWITCH_NAMES = set(Switches.__dataclass_fields__)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="+", help="NAME=FLAGS (flags of dpo-tutor train)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", default="")
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--max-pairs", type=int, default=0, help="use at most this many training pairs (0 = all)")
    ap.add_argument("--out", default="/tmp/variants")
    ap.add_argument("--profile", default="", help="variant name to profile (steps 20-21)")
    ap.add_argument("--json", default="", help="also write the results here")
    args = ap.parse_args()
    common = ["--model", args.model, "--max-steps", str(args.steps), "--max-length", str(args.max_length),
              "--lr", "5e-4", "--beta", "0.1", "--seed", "42", "--eval-steps", "0", "--save-steps", "0"]
    if args.data:
        common += ["--data", args.data]
    if args.max_pairs:
        common += ["--max-pairs", str(args.max_pairs)]
    results = []
    for spec in args.variants:
        name, _, flags = spec.partition("=")
        out = Path(args.out) / name
        env = dict(os.environ)
        switches: dict[str, str] = {}
        words = shlex.split(flags)
        while words and "=" in words[0] and not words[0].startswith("-"):
            key, _, value = words.pop(0).partition("=")
            (switches if key in SWITCH_NAMES else env)[key] = value
        flags = shlex.join(words)
        train = [sys.executable, "-m", "dpo_tutor", "train"]
        if name == args.profile:  # the run handed torch.profiler's callback (measured_train.py)
            profile = f"20:2:{Path(args.out) / (name + '.profile.txt')}"
            train = [sys.executable, "-m", "dpo_tutor.benchmarks.measured_train", "--profile", profile, "--"]
        cmd = [*train, "--out", str(out), "--quiet", *common, *shlex.split(flags)]
        cache = None
        if not Switches.parse(env.get(SWITCHES_ENV, "")).dataset_cache_dir:  # each variant cold, as bench's
            cache = Path(args.out) / f".dataset-cache-{name}"
            shutil.rmtree(cache, ignore_errors=True)
            switches["dataset_cache_dir"] = str(cache)
        env[SWITCHES_ENV] = encode(switches, env.get(SWITCHES_ENV, ""))
        started = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if cache is not None:
            shutil.rmtree(cache, ignore_errors=True)
        result = summarize_run(out, Pipeline(name, flags, tuple(shlex.split(flags))), launched_at=started)
        if proc.returncode != 0 and not result.error:
            lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
            result.error = (lines[-1] if lines else f"exit code {proc.returncode}")[:200]
        result.extra["wall_s"] = round(time.time() - started, 1)
        results.append(result)
        print(f"{name}: {json.dumps(result.__dict__, default=str)}", flush=True)
    print(format_table(results))
    print(format_startup_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in results], default=str, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
