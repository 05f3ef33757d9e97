"""`dpo-tutor data`: inspect preference data (stats, show) and the training mix (mix)."""

from __future__ import annotations

import argparse
import json
import sys

EPILOG = """\
SOURCE is a local file (.jsonl, .jsonl.gz, .json array, .parquet, .csv), a hub id (owner/name, or
hf:<id or folder>), or nothing for the bundled sample. Formats: hh, shp, oasst, oasst-tree, trl,
alpaca, mapping (detected when --format is left out).

examples:
  dpo-tutor data stats ../shared/data/hh-rlhf/harmless-base-test.jsonl.gz
  dpo-tutor data stats prefs.csv --columns prompt=question,chosen=good,rejected=bad --json
  dpo-tutor data show ../shared/data/oasst1/oasst1-en-validation.jsonl.gz --index 3
  dpo-tutor data mix                                  the default training data: HH-RLHF harmless + helpful 2:1
  dpo-tutor data mix a.jsonl.gz b.jsonl.gz --weights 1,3
"""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", nargs="?", default="", metavar="SOURCE",
                   help="file, hub id or hf:<folder>; the bundled sample when left out")
    p.add_argument("--format", metavar="F", help="hh, shp, oasst, oasst-tree, trl, alpaca or mapping")
    p.add_argument("--columns", metavar="MAP", help="column mapping: prompt=question,chosen=good,rejected=bad")
    p.add_argument("--split", default="train", help="split of a hub data set (default: train)")
    p.add_argument("--config", metavar="NAME", help="configuration of a hub data set")
    p.add_argument("--data-dir", metavar="DIR", help="data_dir of a hub data set")
    p.add_argument("--max-rows", type=int, metavar="N", help="read at most N rows")
    p.add_argument("--pairs", choices=("all", "best-vs-each", "best-vs-worst"),
                   help="oasst: which ranked replies become pairs (default: all)")
    p.add_argument("--min-score-ratio", type=float, metavar="R",
                   help="SHP: keep pairs whose score ratio is at least R (its authors suggest 2)")
    p.add_argument("--keep-mismatched", action="store_true",
                   help="hh: keep rows whose two dialogues disagree, split at their common prefix")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect preference data (stats, show, mix)",
                       description="Inspect preference data: its quality report, or one triplet.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    stats = dsub.add_parser("stats", help="the quality report: rows, usable, dropped by reason, lengths, bias",
                            epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(stats)
    stats.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    show = dsub.add_parser("show", help="print one usable triplet",
                           epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(show)
    show.add_argument("--index", type=int, default=0, metavar="N", help="0-based index among usable triplets")
    show.add_argument("--json", action="store_true", help="the triplet as JSON")
    mix = dsub.add_parser("mix", help="sources mixed by weight as a run reads them: pairs used, train / held out",
                          epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    mix.add_argument("sources", nargs="*", metavar="SOURCE",
                     help="files or hub ids (hf:owner/name/data_dir); none: the default data (HH-RLHF halves 2:1)")
    mix.add_argument("--weights", metavar="W,W", help="one weight per source (equal when left out)")
    mix.add_argument("--heldout-fraction", type=float, default=0.1, metavar="F",
                     help="share of each source held out, as a run holds it out (default: 0.1)")
    mix.add_argument("--seed", type=int, default=42, metavar="N", help="the run's seed (default: 42)")
    mix.add_argument("--json", action="store_true", help="one JSON object, for scripts")


def _load_kwargs(args: argparse.Namespace) -> dict:
    from dpo_tutor.engine.config import parse_columns

    options = {}
    if args.pairs:
        options["oasst_pairs"] = args.pairs
    if args.min_score_ratio is not None:
        options["shp_min_ratio"] = args.min_score_ratio
    if args.keep_mismatched:
        options["hh_mismatch"] = "lcp"
    return {
        "format": args.format or None,
        "columns": parse_columns(args.columns) if args.columns else None,
        "split": args.split,
        "config": args.config,
        "data_dir": args.data_dir,
        "max_rows": args.max_rows,
        "options": options or None,
    }


def run(args: argparse.Namespace) -> int:
    from dpo_tutor.engine.errors import UserError

    if not getattr(args, "data_command", None):
        print("dpo-tutor data: say what to do: stats or show (dpo-tutor data --help)", file=sys.stderr)
        return 2
    try:
        if args.data_command == "stats":
            return _stats(args)
        if args.data_command == "mix":
            return _mix(args)
        return _show(args)
    except UserError as e:
        print(f"dpo-tutor data: {e.one_line()}", file=sys.stderr)
        return 2


def _stats(args: argparse.Namespace) -> int:
    from dpo_tutor.engine.data.load import quality_report

    report = quality_report(args.source or None, **_load_kwargs(args))
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        print("\n".join(report.summary_lines()))
    return 0


def _show(args: argparse.Namespace) -> int:
    from dpo_tutor.engine.data.load import load_triplets
    from dpo_tutor.engine.errors import DataError

    result = load_triplets(args.source or None, **_load_kwargs(args))
    n = len(result.triplets)
    if not 0 <= args.index < n:
        raise DataError(f"--index {args.index} is out of range: there are {n:,} usable triplets (0..{n - 1})",
                        where=result.source)
    t = result.triplets[args.index]
    if args.json:
        print(json.dumps(t.to_dict(), ensure_ascii=False))
        return 0
    print(f"# {args.index} of {n:,}  id {t.id}  ({result.format}, {result.source})")
    for m in t.prompt:
        print(f"\n[{m['role']}]\n{m['content']}")
    print(f"\n[chosen]\n{t.chosen}\n\n[rejected]\n{t.rejected}")
    if t.metadata:
        print("\n" + "  ".join(f"{k}={v}" for k, v in t.metadata.items() if k != "output"))
    return 0


def _mix(args: argparse.Namespace) -> int:
    """Read the sources as a run with these settings would, and say what each gives to train and held-out."""
    from collections import Counter

    from dpo_tutor.engine.config import TrainConfig
    from dpo_tutor.engine.data.split import split_for_run

    config = TrainConfig.from_dict({"data": list(args.sources), "data_weights": args.weights or "",
                                    "heldout_fraction": args.heldout_fraction, "seed": args.seed},
                                   where="dpo-tutor data mix")
    errors = [e for e in config.validate()[0] if e.startswith(("data", "heldout"))]
    if errors:
        from dpo_tutor.engine.errors import ConfigError

        raise ConfigError(" ".join(errors))
    result, train, heldout = split_for_run(config)
    in_train, in_heldout = Counter(t.source for t in train), Counter(t.source for t in heldout)
    rows = [dict(u.to_dict(), train=in_train[u.name], heldout=in_heldout[u.name]) for u in result.mix or []]
    if args.json:
        print(json.dumps({"source": result.source, "note": result.note, "format": result.format,
                          "pairs": len(result.triplets), "train": len(train), "heldout": len(heldout),
                          "sources": rows}, ensure_ascii=False))
        return 0
    if result.note:
        print(result.note)
    if rows:
        width = max(len(r["name"]) for r in rows)
        print(f"{'source':<{width}}  weight   usable     used    train  held out")
        for r in rows:
            print(f"{r['name']:<{width}}  {r['weight']:>6g}  {r['usable']:>7,}  {r['used']:>7,}  {r['train']:>7,}"
                  f"  {r['heldout']:>8,}")
    print(f"{len(result.triplets):,} pairs ({result.format}): {len(train):,} train, {len(heldout):,} held out")
    return 0
