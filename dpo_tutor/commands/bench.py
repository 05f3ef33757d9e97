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
CUDA graph shape; the table says over how many steps, and calls a rate from fewer than 6 unreliable
(larger models record a shape in most early steps: give them 30 --steps). Every pipeline starts cold,
with its own empty dataset cache (set the switch DPO_TUTOR_SWITCHES=dataset_cache_dir=FOLDER to share
one). Pipelines that need CUDA or Unsloth are skipped (with the reason) where those are missing. The
pipelines live in dpo_tutor.benchmarks.bench."""


SHAPE_HELP = """\
--shape NAME trains a real model's architecture with random weights instead of --model (no download):
the numbers of its config.json on the hub, written once into a cached folder. Speed and memory do not
depend on the weights' values, so the pipelines' pairs/s and peak memory are those of the real model;
their loss, margin and accuracy mean nothing. The tokenizer is SmolLM2's, so a pair has the same tokens
at every size. The 7-8B shapes load a 4-bit NF4 base (QLoRA, as Unsloth's notebooks) unless --bits 16."""

DEFAULT_PIPELINES = ("trl-defaults", "unsloth-notebook", "ours-hf", "ours-hf-eager", "ours-unsloth", "low-memory",
                     "low-memory-unsloth")
EXTRA_PIPELINES = ("ours-hf-compiled", "trl-tuned", "ours-hf-graph-compiled")  # asked for by name only


def add_parser(sub: argparse._SubParsersAction) -> None:
    from dpo_tutor.engine.model_shapes import SHAPES

    p = sub.add_parser("bench", help="benchmark DPO training pipelines", description=f"{DESCRIPTION}\n\n{SHAPE_HELP}",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model to train (default: tiny, for a quick CPU check)")
    p.add_argument("--shape", choices=list(SHAPES), metavar="NAME",
                   help="a real architecture with random weights instead of --model: " + ", ".join(SHAPES))
    p.add_argument("--bits", type=int, choices=(4, 16), default=None,
                   help="with --shape: the base's precision, 16 (bf16, LoRA) or 4 (NF4, QLoRA; needs CUDA and "
                   "bitsandbytes); default 4 for the 7-8B shapes, 16 for the others")
    p.add_argument("--tokenizer", default="", metavar="MODEL",
                   help="with --shape: the model whose tokenizer to use (default SmolLM2-135M-Instruct, resolved as "
                   "--model is; offline, give its .gguf file)")
    p.add_argument("--data", default="", help="preference data (default: the bundled sample)")
    p.add_argument("--steps", type=int, default=12, help="optimizer steps per pipeline (default 12)")
    p.add_argument("--max-length", type=int, default=512,
                   help="tokens kept of prompt + answer, for every pipeline (default 512)")
    p.add_argument("--max-pairs", type=int, default=0,
                   help="training pairs used (0 = all; with fewer than steps x 32, pairs repeat)")
    p.add_argument("--pipelines", default=",".join(DEFAULT_PIPELINES), metavar="LIST",
                   help="comma-separated, from: " + ", ".join(DEFAULT_PIPELINES)
                   + f", {', '.join(EXTRA_PIPELINES)} (default: all but the last {len(EXTRA_PIPELINES)})")
    p.add_argument("--out", default="", help="folder for the pipelines' runs (default: a temporary folder)")
    p.add_argument("--json", action="store_true", help="print the results as JSON too")


def progress_text(line: str) -> str:
    """A pipeline's progress line without the raw result dict the bench appends to it (the table below
    says it all, and --json prints the results whole)."""
    head, brace, rest = line.partition(" {")
    return head if brace and line.rstrip().endswith("}") else line


def model_of(args: argparse.Namespace) -> tuple[str, str]:
    """(the model spec every pipeline trains, a line saying what it is: '' for a plain --model)."""
    from dpo_tutor.engine.errors import UserError
    from dpo_tutor.engine.model_shapes import parse_shape_spec, shape_spec

    if not args.shape:
        if args.bits or args.tokenizer:
            raise UserError("--bits and --tokenizer go with --shape", remedy="add --shape NAME, or leave them out")
        return args.model or "tiny", ""
    if args.model:
        raise UserError("give --model or --shape, not both", where="--shape")
    spec = shape_spec(args.shape, bits=args.bits, tokenizer=args.tokenizer)
    return spec, f"model: {spec}: {parse_shape_spec(spec).describe()}"


def run(args: argparse.Namespace) -> int:
    import json
    import tempfile
    from pathlib import Path

    from dpo_tutor.benchmarks.bench import format_startup_table, format_table, run_bench
    from dpo_tutor.engine.errors import UserError

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="dpo-bench-"))
    try:
        model, about = model_of(args)
        if about:
            print(about, file=sys.stderr, flush=True)
        results = run_bench(
            model=model, data=args.data, steps=args.steps, max_length=args.max_length,
            max_pairs=args.max_pairs, pipelines=[p.strip() for p in args.pipelines.split(",") if p.strip()],
            out_dir=out, progress=lambda line: print(progress_text(line), file=sys.stderr, flush=True),
        )
    except UserError as exc:
        print(f"dpo-tutor bench: {exc.one_line()}", file=sys.stderr)
        return 2
    if about:
        print(about + "\n")
    print(format_table(results))
    startup = format_startup_table(results)
    if startup:
        print("\nseconds to the first logged step, by part (each pipeline starts with an empty dataset cache):")
        print(startup)
    if args.json:
        print(json.dumps([r.__dict__ for r in results], default=str))
    return 0 if all(r.state in ("finished", "skipped") for r in results) else 1
