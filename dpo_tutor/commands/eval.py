"""`dpo-tutor eval`: evaluate a run before and after, write report.md and report.json."""

from __future__ import annotations

import argparse
import sys

from ..engine.generation import STRATEGIES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a run before and after, write report.md and report.json",
        description="Evaluate a run's base model and its aligned model (base + the run's LoRA) on the run's "
        "held-out pairs: preference accuracy and margins two ways, generations on probe prompts, and "
        "reward-hacking checks. Writes report.md and report.json into the run folder.",
    )
    p.add_argument("run", metavar="RUN", help="a run folder, or a run name under the runs folder")
    p.add_argument("--json", action="store_true", help="print report.json's content to stdout")
    p.add_argument("--pairs", type=int, default=200, metavar="N", help="held-out pairs to score (0 = all; default 200)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="pairs per forward pass (default 8)")
    p.add_argument("--max-new-tokens", type=int, default=128, metavar="N",
                   help="length limit of each generated answer (default 128)")
    p.add_argument("--probes", type=int, default=3, metavar="N",
                   help="held-out prompts added to the three probe prompts (default 3)")
    p.add_argument("--no-generations", action="store_true",
                   help="skip generations and the refusal check (faster)")
    p.add_argument("--strategy", choices=STRATEGIES, default="auto",
                   help="how both sides generate (see `dpo-tutor chat --help`)")
    p.add_argument("--seed", type=int, default=0, help="seed for the pair sample and sampled answers")
    p.add_argument("--runs-dir", metavar="DIR", default=argparse.SUPPRESS,
                   help="where runs live (default: $DPO_TUTOR_RUNS_DIR or ./runs)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    from dpo_tutor.engine.errors import UserError
    from dpo_tutor.engine.evaluate import EvalOptions, evaluate_run
    from dpo_tutor.engine.report import build_report, write_report
    from dpo_tutor.engine.runs import resolve_run

    last = {"stage": None}

    def progress(stage: str, done: int, total: int) -> None:
        if args.quiet:
            return
        if stage != last["stage"] or done == total:
            print(f"  {stage} {done}/{total}", file=sys.stderr)
            last["stage"] = stage

    try:
        run_dir = resolve_run(args.run, getattr(args, "runs_dir", None))
        options = EvalOptions(
            pairs=args.pairs, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
            heldout_probes=args.probes, generations=not args.no_generations, strategy=args.strategy,
            seed=args.seed,
        )
        result = evaluate_run(run_dir, options, progress)
        report = build_report(run_dir, result)
        json_path, md_path = write_report(run_dir, report)
    except UserError as e:
        print(f"dpo-tutor eval: {e.one_line()}", file=sys.stderr)
        return 2
    if args.json:
        sys.stdout.write(json_path.read_text(encoding="utf-8"))
        return 0
    print(summary_lines(report))
    print(f"wrote {md_path} and {json_path}")
    return 0


def summary_lines(report: dict) -> str:
    from dpo_tutor.engine.report import before_after_rows

    table = report["before_after"]
    lines = [f"verdict: {report['verdict']['line']}"] if report.get("verdict") else []
    lines.append(f"{table['scored']} held-out pairs, beta {table['beta']:g}")
    width = max(len(r[0]) for r in before_after_rows(table))
    lines.append(f"{'':<{width}}  {'base (before)':<36} aligned (after)")
    for measure, base, aligned, _ in before_after_rows(table):
        lines.append(f"{measure:<{width}}  {base:<36} {aligned}")
    lines.append("ties count as ties, not as wrong: " + table["tie_note"].split(". ")[0] + ".")
    lines.append("checks:")
    for c in report["checks"]:
        lines.append(f"  [{c['status'].upper():<4}] {c['title']}: {c['value_text']} (lesson: {c['lesson']})")
    return "\n".join(lines)
