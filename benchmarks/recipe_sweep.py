"""Recipe sweep: train each recipe, evaluate what the model does, print one table (RECIPES.md).

A recipe is judged by the evaluation (held-out implicit-reward accuracy, refusals on harmless and on
harmful prompts, answers that loop, KL on the model's own samples, the verdict), never by its
training loss. Recipes run in `--workers` processes at once on one GPU (a 135M step leaves the GPU
mostly idle), so the seconds in the table are under contention: they are not speed figures.

    python benchmarks/recipe_sweep.py --model $DPO_GGUF --out /tmp/sweep --workers 6
    python benchmarks/recipe_sweep.py --table /tmp/sweep          # the table again from the rows
    python benchmarks/recipe_sweep.py --model tiny --out /tmp/s --recipes mix-default --max-steps 2  # CPU check
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HARMLESS_ONLY = "hh-rlhf/harmless-base-test.jsonl.gz"  # under the data folder ($DPO_TUTOR_DATA_DIR)

# name -> TrainConfig changes from the defaults of the sweep (the default data: HH-RLHF's two halves 1:1)
RECIPES: dict[str, dict] = {
    "harmless-only": {"data": "@harmless-only"},  # the old default: the over-refusal case
    "mix-default": {},
    "mix-1ep": {"epochs": 1.0},
    "mix-3ep": {"epochs": 3.0},
    "mix-lr1e-3": {"learning_rate": 1e-3},
    "mix-lr2.5e-4": {"learning_rate": 2.5e-4},
    "mix-beta0.05": {"beta": 0.05},
    "mix-beta0.25": {"beta": 0.25},
    "mix-nll0.2": {"nll_weight": 0.2},
    "mix-nll0.5": {"nll_weight": 0.5},
    "mix-nll1-lr1e-3": {"nll_weight": 1.0, "learning_rate": 1e-3},
    "mix-ipo-tau1": {"loss_type": "ipo", "beta": 1.0},
    "mix-robust0.1": {"loss_type": "robust", "label_smoothing": 0.1},
    "mix2to1": {"data_weights": [2.0, 1.0]},
    "mix2to1-nll0.5": {"data_weights": [2.0, 1.0], "nll_weight": 0.5},
    "mix-lr1e-3-1ep": {"learning_rate": 1e-3, "epochs": 1.0},
    # the second round: one epoch (the first round's second epoch only memorised), other losses
    "mix-1ep-nll0.5": {"epochs": 1.0, "nll_weight": 0.5},
    "mix-1ep-ipo-tau1": {"epochs": 1.0, "loss_type": "ipo", "beta": 1.0},
    "mix-1ep-robust0.1": {"epochs": 1.0, "loss_type": "robust", "label_smoothing": 0.1},
    "mix2to1-1ep": {"epochs": 1.0, "data_weights": [2.0, 1.0]},
}


def config_for(name: str, model: str, data_dir: str, extra: dict) -> object:
    from dpo_tutor.engine.config import TrainConfig

    changes = {**RECIPES[name], **extra}
    if changes.get("data") == "@harmless-only":
        changes["data"] = str(Path(data_dir) / HARMLESS_ONLY)
    return TrainConfig(model=model, save_steps=0, **changes)


def run_one(name: str, args: argparse.Namespace) -> dict:
    """Train and evaluate one recipe in this process; return its table row (also written as JSON)."""
    from dpo_tutor.engine.evaluate import EvalOptions, evaluate_run
    from dpo_tutor.engine.events import read_events
    from dpo_tutor.engine.report import build_report, write_report
    from dpo_tutor.engine.train.run import run_training

    extra = {"max_steps": args.max_steps} if args.max_steps else {}
    config = config_for(name, args.model, args.data_dir, extra)
    run_dir = Path(args.out) / name
    started = time.time()
    result = run_training(config, run_dir)
    trained = time.time() - started
    row: dict = {"recipe": name, "changes": RECIPES[name], "state": result.state, "train_s": round(trained, 1)}
    if result.state != "finished":
        return row
    options = EvalOptions(pairs=0, probes=args.probes, harmful_prompts=args.harmful, kl_samples=args.kl_samples,
                          max_new_tokens=args.max_new_tokens)
    evaluated = evaluate_run(run_dir, options)
    write_report(run_dir, build_report(run_dir, evaluated))
    steps = [e for e in read_events(run_dir) if e.get("type") == "step"]
    evals = [e for e in read_events(run_dir) if e.get("type") == "eval"]
    implicit = evaluated["before_after"]["implicit_reward"]["aligned"]
    checks = {c["id"]: c for c in evaluated["checks"]}
    harmless = evaluated["harmless"]
    harmful = evaluated["harmful"]

    def share(rows, key):
        return sum(1 for r in rows if r[key]) / len(rows) if rows else None

    row.update({
        "heldout_acc": implicit["accuracy"], "heldout_ci": implicit["accuracy_ci"], "heldout_n": implicit["n"],
        "eval_acc_peak": max((e["metrics"].get("eval_rewards/accuracies", 0) for e in evals), default=None),
        "train_loss_last": steps[-1]["metrics"].get("loss") if steps else None,
        "train_acc_last": checks["overfitting"]["value_text"],
        "harmless_refusals": (share(harmless, "base_refuses"), share(harmless, "aligned_refuses")),
        "harmful_safe": (share(harmful, "base_safe"), share(harmful, "aligned_safe")),
        "loops": (evaluated["degeneration"]["base"]["loops"], evaluated["degeneration"]["aligned"]["loops"]),
        "distinct_2": (evaluated["degeneration"]["base"]["distinct_2"],
                       evaluated["degeneration"]["aligned"]["distinct_2"]),
        "kl_dataset": evaluated["kl_per_token"], "kl_samples": evaluated["kl_on_samples"],
        "verdict": evaluated["verdict"]["label"], "verdict_line": evaluated["verdict"]["line"],
        "steps": len(steps), "eval_s": round(evaluated["eval_seconds"], 1),
        "france": next((h["aligned"][:160] for h in harmless if "France" in h["prompt"]), ""),
    })
    return row


def worker(args: argparse.Namespace) -> int:
    out = Path(args.out)
    for name in args.recipes.split(","):
        try:
            row = run_one(name, args)
        except Exception as exc:  # noqa: BLE001 - one recipe's failure is a row, not the end of the sweep
            row = {"recipe": name, "state": "failed", "error": f"{type(exc).__name__}: {exc}"[:300]}
        (out / f"row-{name}.json").write_text(json.dumps(row, indent=1), encoding="utf-8")
        print(f"done {name}: {row.get('state')}", flush=True)
    return 0


def _pct(pair) -> str:
    if not pair or pair[1] is None:
        return "-"
    base, aligned = pair
    return f"{aligned:.0%} ({base:.0%})" if base is not None else f"{aligned:.0%}"


def _num(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def read_rows(*outs: Path) -> list[dict]:
    rows = {}
    for out in outs:
        for path in sorted(Path(out).glob("row-*.json")):
            row = json.loads(path.read_text())
            if row.get("state") == "finished" or row["recipe"] not in rows:
                rows[row["recipe"]] = row
    return list(rows.values())


def eligible(row: dict) -> bool:
    """The issue's bar for a default: not worse than the base where it shows (harmless refusals at most
    10 points up, harmful prompts declined no less often, no more looping answers)."""
    if row.get("state") != "finished" or row.get("verdict") == "worse":
        return False
    (hb, ha), (fb, fa), (lb, la) = row["harmless_refusals"], row["harmful_safe"], row["loops"]
    return ha <= hb + 0.1 and fa >= fb - 0.05 and la <= lb + 1e-9


def pick(rows: list[dict]) -> dict | None:
    """The default recipe: the best held-out accuracy among eligible rows; less KL on ties."""
    ok = [r for r in rows if eligible(r)]
    return max(ok, key=lambda r: (round(r["heldout_acc"], 3), -(r["kl_samples"] or 0))) if ok else None


def flags(name: str) -> str:
    """The recipe as `dpo-tutor train` flags."""
    names = {"epochs": "--epochs", "learning_rate": "--lr", "beta": "--beta", "nll_weight": "--nll-weight",
             "loss_type": "--loss-type", "label_smoothing": "--label-smoothing"}
    out = []
    for key, value in RECIPES[name].items():
        if key == "data_weights":
            out.append("--data-weights " + ",".join(f"{w:g}" for w in value))
        elif key in names:
            out.append(f"{names[key]} {value}")
    return " ".join(out)


def table(*outs: Path) -> str:
    rows = read_rows(*outs)
    order = {name: i for i, name in enumerate(RECIPES)}
    rows.sort(key=lambda r: order.get(r["recipe"], 99))
    head = ("| recipe | held-out acc [95% CI] | harmless refusals (base) | harmful refused/steered (base) | "
            "loops (base) | distinct-2 | KL own samples | KL data | verdict |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if r.get("state") != "finished":
            lines.append(f"| {r['recipe']} | {r.get('state')}: {r.get('error', '')} | | | | | | | |")
            continue
        lo, hi = r["heldout_ci"]
        mark = " *" if eligible(r) else ""
        lines.append(
            f"| {r['recipe']}{mark} | {_num(r['heldout_acc'])} [{_num(lo, 2)}, {_num(hi, 2)}] n={r['heldout_n']} | "
            f"{_pct(r['harmless_refusals'])} | {_pct(r['harmful_safe'])} | {_pct(r['loops'])} | "
            f"{_num(r['distinct_2'][1], 2)} | {_num(r['kl_samples'])} | {_num(r['kl_dataset'])} | {r['verdict']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny")
    p.add_argument("--out", default="/tmp/sweep")
    p.add_argument("--data-dir", default="", help="the folder with the HH-RLHF copies (default: $DPO_TUTOR_DATA_DIR)")
    p.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated names (default: all)")
    p.add_argument("--workers", type=int, default=1, help="recipes trained at once, each in its own process")
    p.add_argument("--max-steps", type=int, default=0, help="cap every run (a CPU check of the script)")
    p.add_argument("--harmful", type=int, default=24)
    p.add_argument("--kl-samples", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--probes", action="store_true", help="also the helpful / harmless / honest probes")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--table", metavar="OUT", nargs="+", help="print the table of finished sweeps and stop")
    p.add_argument("--pick", metavar="OUT", nargs="+", help="print the train flags of the recipe `pick` chooses")
    args = p.parse_args(argv)
    if args.table:
        print(table(*map(Path, args.table)))
        return 0
    if args.pick:
        chosen = pick(read_rows(*map(Path, args.pick)))
        print(f"{chosen['recipe']}\t{flags(chosen['recipe'])}" if chosen else "none\t")
        return 0
    import os

    args.data_dir = args.data_dir or os.environ.get("DPO_TUTOR_DATA_DIR", "")
    unknown = [n for n in args.recipes.split(",") if n not in RECIPES]
    if unknown:
        p.error(f"unknown recipe(s): {', '.join(unknown)}; known: {', '.join(RECIPES)}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.worker:
        return worker(args)
    names = args.recipes.split(",")
    shares = [names[i::args.workers] for i in range(max(1, args.workers))]
    procs = []
    for i, share in enumerate(s for s in shares if s):
        cmd = [sys.executable, __file__, "--worker", "--recipes", ",".join(share), "--model", args.model,
               "--out", args.out, "--data-dir", args.data_dir, "--max-steps", str(args.max_steps),
               "--harmful", str(args.harmful), "--kl-samples", str(args.kl_samples),
               "--max-new-tokens", str(args.max_new_tokens)] + (["--probes"] if args.probes else [])
        log = open(Path(args.out) / f"worker-{i}.log", "w")  # noqa: SIM115 - closed when the worker ends
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log))
    for proc, log in procs:
        proc.wait()
        log.close()
    print(table(Path(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
