"""Benchmark: one Train-screen preset, run as the form would run it, timed phase by phase.

    python benchmarks/preset_run.py [--preset cpu-look] [--model M] [--data D] [--set key=value ...]

The preset's settings (engine/presets.py) go to `python -m dpo_tutor train --config` in a fresh
process and a scratch folder (its own dataset cache, so the reference pass is not found in a cache);
the table gives seconds from spawning the process to each phase, the seconds per step, and what was
learned (loss, accuracy and margin of the first and last steps). Its numbers back the preset's label.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_preset(key: str, model: str, data: str, changes: dict[str, str], folder: Path) -> tuple[float, list[dict]]:
    from dpo_tutor.engine.config import TrainConfig
    from dpo_tutor.engine.presets import preset

    config = preset(key).apply(TrainConfig(**({"model": model} if model else {}), data=data))
    if changes:
        config = config.replace(**{k: getattr(TrainConfig.from_dict({k: v}), k) for k, v in changes.items()})
    config_file = folder / "config.toml"
    config_file.write_text(config.to_toml())
    env = {**os.environ, "DPO_TUTOR_SWITCHES": f"dataset_cache_dir={folder / 'dataset-cache'}"}
    start = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "dpo_tutor", "train", "--config", str(config_file), "--out", str(folder / "run"),
         "--quiet"], env=env, capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"the run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    events = [json.loads(line) for line in (folder / "run" / "events.jsonl").read_text().splitlines()]
    return start, events


def table(start: float, events: list[dict]) -> list[tuple[str, str]]:
    def first(predicate) -> dict | None:
        return next((e for e in events if predicate(e)), None)

    steps = [e for e in events if e["type"] == "step"]
    started = first(lambda e: e["type"] == "run_started")
    reference = [e for e in events if e["type"] == "phase" and "total" in e]
    training = first(lambda e: e["type"] == "phase" and e.get("phase") == "training")
    finished = first(lambda e: e["type"] == "finished")
    rows = [
        ("run_started (imports, settings)", f"{started['time'] - start:.1f} s"),
        ("reference pass done", f"{reference[-1]['time'] - start:.1f} s" if reference else "-"),
        ("training begins", f"{training['time'] - start:.1f} s" if training else "-"),
        ("first step logged", f"{steps[0]['time'] - start:.1f} s"),
        ("finished (adapter saved)", f"{finished['time'] - start:.1f} s" if finished else "-"),
    ]
    gaps = [b["time"] - a["time"] for a, b in zip(steps, steps[1:], strict=False)]
    if gaps:
        rows.append(("seconds per step (median from step 2)", f"{statistics.median(gaps):.2f} s"))

    def metric(step: dict, name: str) -> str:
        value = step["metrics"].get(name)
        return "-" if value is None else f"{value:.3f}"

    last = steps[-3:]
    for name in ("loss", "rewards/accuracies", "rewards/margins"):
        mean_last = statistics.mean(s["metrics"][name] for s in last if name in s["metrics"])
        rows.append((f"{name}: step 1 -> mean of the last {len(last)}", f"{metric(steps[0], name)} -> {mean_last:.3f}"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-look")
    parser.add_argument("--model", default="", help="default: the preset's (the default model)")
    parser.add_argument("--data", default="", help="default: the bundled sample")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="change one setting")
    args = parser.parse_args(argv)
    changes = dict(item.split("=", 1) for item in args.set)
    folder = Path(tempfile.mkdtemp(prefix="dpo-preset-"))
    try:
        start, events = run_preset(args.preset, args.model, args.data, changes, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    started = next(e for e in events if e["type"] == "run_started")
    print(f"# preset {args.preset}: {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, backend {started.get('backend')} on {started.get('device')}, "
          f"model {started['config'].get('model')}, changes {changes or 'none'}")
    print()
    print("| figure | value |")
    print("| --- | ---: |")
    for name, value in table(start, events):
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
