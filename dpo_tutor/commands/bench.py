"""`dpo-tutor bench`: train the same pairs under several pipelines and print a table (benchmarks/bench.py)."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Train the same pairs with the same hyperparameters and number of optimizer steps under several
pipelines (plain TRL with its defaults, Unsloth as its notebooks configure it, and ours), each in its
own process, and print pairs/s, tokens/s, time to the first step, peak GPU memory and the end-of-run
loss, margin and accuracy, with the ratio to plain TRL, then where each pipeline's time to the first
step went (imports, data, model, tokenizing, reference pass, trainer, first step). pairs/s is the
steady state: the pairs of the steps over the time they took, leaving out steps that recorded a new
CUDA graph shape. Every pipeline starts cold, with its own empty dataset cache (set the switch
DPO_TUTOR_SWITCHES=dataset_cache_dir=FOLDER to share one). Pipelines that need CUDA or Unsloth are
skipped (with the reason) where those are missing. The pipelines live in dpo_tutor.benchmarks.bench."""


DEFAULT_PIPELINES = ("trl-defaults", "unsloth-notebook", "ours-hf", "ours-hf-eager", "ours-unsloth", "low-memory",
                     "low-memory-unsloth")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark DPO training pipelines", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny", help="model to train (default: tiny, for a quick CPU check)")
    p.add_argument("--data", default="", help="preference data (default: the bundled sample)")
    p.add_argument("--steps", type=int, default=12, help="optimizer steps per pipeline (default 12)")
    p.add_argument("--max-length", type=int, default=512,
                   help="tokens kept of prompt + answer, for every pipeline (default 512)")
    p.add_argument("--max-pairs", type=int, default=0,
                   help="training pairs used (0 = all; with fewer than steps x 32, pairs repeat)")
    p.add_argument("--pipelines", default=",".join(DEFAULT_PIPELINES), metavar="LIST",
                   help="comma-separated, from: " + ", ".join(DEFAULT_PIPELINES)
                   + ", ours-hf-compiled (default: all but ours-hf-compiled)")
    p.add_argument("--out", default="", help="folder for the pipelines' runs (default: a temporary folder)")
    p.add_argument("--json", action="store_true", help="print the results as JSON too")


def progress_text(line: str) -> str:
    """A pipeline's progress line without the raw result dict the bench appends to it (the table below
    says it all, and --json prints the results whole)."""
    head, brace, rest = line.partition(" {")
    return head if brace and line.rstrip().endswith("}") else line


def run(args: argparse.Namespace) -> int:
    import json
    import tempfile
    from pathlib import Path

    from dpo_tutor.benchmarks.bench import format_startup_table, format_table, run_bench
    from dpo_tutor.engine.errors import UserError

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="dpo-bench-"))
    try:
        results = run_bench(
            model=args.model, data=args.data, steps=args.steps, max_length=args.max_length,
            max_pairs=args.max_pairs, pipelines=[p.strip() for p in args.pipelines.split(",") if p.strip()],
            out_dir=out, progress=lambda line: print(progress_text(line), file=sys.stderr, flush=True),
        )
    except UserError as exc:
        print(f"dpo-tutor bench: {exc.one_line()}", file=sys.stderr)
        return 2
    print(format_table(results))
    startup = format_startup_table(results)
    if startup:
        print("\nseconds to the first logged step, by part (each pipeline starts with an empty dataset cache):")
        print(startup)
    if args.json:
        print(json.dumps([r.__dict__ for r in results], default=str))
    return 0 if all(r.state in ("finished", "skipped") for r in results) else 1
