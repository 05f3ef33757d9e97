"""The evaluation report: `report.json` (data) and `report.md` (for people), written into the run folder.

Both are written to a temporary name in the same folder, then renamed, so a reader never sees half a
report. Sections (the same in both): run and config, versions and hardware, training curves (as text
charts), before/after on held-out pairs, generations, checks.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from .textchart import line_chart

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
SCHEMA_VERSION = 1
SECTIONS = (
    "Run and configuration",
    "Versions and hardware",
    "Training curves",
    "Before and after on held-out pairs",
    "Generations",
    "Checks",
)


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("dpo-tutor", "torch", "transformers", "peft", "trl", "unsloth"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "gpu": None,
    }
    try:
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            info["gpu"] = props.name
            info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
            info["gpu_count"] = torch.cuda.device_count()
    except ImportError:
        pass
    return info


def build_report(run_dir: str | Path, result: dict[str, Any]) -> dict[str, Any]:
    """report.json's content: the evaluation result plus run, versions, hardware and time."""
    from .events import read_events, summarize

    run = Path(run_dir)
    summary = summarize(read_events(run))
    return {
        "schema": SCHEMA_VERSION,
        "run": {"path": str(run), "name": run.name, "state": summary.state, "steps": summary.step,
                "backend": summary.backend, "trained_on": summary.gpu_name or summary.device},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": versions(),
        "hardware": hardware(),
        **result,
    }


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _clean(value: Any) -> Any:
    """JSON has no NaN: turn non-finite floats into null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(_clean(report), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_report(run_dir: str | Path, report: dict[str, Any]) -> tuple[Path, Path]:
    run = Path(run_dir)
    json_path, md_path = run / REPORT_JSON, run / REPORT_MD
    _atomic_write(json_path, to_json(report))
    _atomic_write(md_path, render_markdown(report))
    return json_path, md_path


def read_report(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / REPORT_JSON
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


# ---- Markdown -----------------------------------------------------------------------------------


def pct(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.1%}"


def num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def ci(pair) -> str:
    if not pair or pair[0] is None:
        return ""
    return f"[{pair[0]:.1%}, {pair[1]:.1%}]"


def before_after_rows(table: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(measure, base, aligned, explanation) rows, shared by the Markdown and the Evaluate screen."""
    rows = []
    for key, label in (("implicit_reward", "DPO implicit reward"), ("likelihood_summed", "Likelihood, summed"),
                       ("likelihood_per_token", "Likelihood, per token")):
        base, aligned = table[key]["base"], table[key]["aligned"]

        def cell(s: dict[str, Any]) -> str:
            return f"{pct(s['accuracy'])} {ci(s['accuracy_ci'])} ({s['wins']}W/{s['ties']}T/{s['losses']}L)"

        rows.append((f"{label}: accuracy", cell(base), cell(aligned),
                     "wins / all pairs, Wilson 95% interval; W/T/L = wins, ties, losses"))
        unit = "reward" if key == "implicit_reward" else ("nats" if key == "likelihood_summed" else "nats/token")
        rows.append((f"{label}: mean margin", f"{num(base['mean_margin'])} {unit}",
                     f"{num(aligned['mean_margin'])} {unit}", "chosen minus rejected, 95% interval in the JSON"))
    return rows


def render_markdown(report: dict[str, Any]) -> str:
    lines: list[str] = []
    run = report.get("run", {})
    lines.append(f"# Evaluation of {run.get('name', 'a run')}")
    lines.append("")
    lines.append(f"Written {report.get('created', '')} in {num(report.get('eval_seconds'), 1)} s.")
    lines.append("")
    verdict = report.get("verdict")
    if verdict:
        lines.append(f"**Verdict: {verdict['line']}**")
        lines.append("")

    lines.append(f"## {SECTIONS[0]}")
    lines.append("")
    lines.append(f"- run folder: `{run.get('path', '')}` ({run.get('state', '')}, {run.get('steps', 0)} steps, "
                 f"backend {run.get('backend') or '-'}, trained on {run.get('trained_on') or '-'})")
    data = report.get("data", {})
    if data:
        lines.append(f"- data: `{data.get('source')}` ({data.get('format')}), {data.get('pairs')} pairs, "
                     f"{data.get('heldout')} held out (fraction {data.get('heldout_fraction')}, seed {data.get('seed')})")
    config = report.get("config", {})
    if config:
        lines.append("")
        lines.append("| setting | value |")
        lines.append("|---|---|")
        for key, value in config.items():
            lines.append(f"| {key} | {value} |")
    lines.append("")

    lines.append(f"## {SECTIONS[1]}")
    lines.append("")
    lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in report.get("versions", {}).items()))
    hw = report.get("hardware", {})
    lines.append(f"- hardware: {hw.get('gpu') or 'no GPU'}, {hw.get('cpu_count')} CPU cores, {hw.get('platform')}")
    lines.append(f"- evaluated on: {report.get('device', '-')} ({report.get('dtype', '-')})")
    lines.append("")

    lines.append(f"## {SECTIONS[2]}")
    lines.append("")
    curves = report.get("curves", {})
    if not curves:
        lines.append("The run's log has no logged steps.")
    for key, points in curves.items():
        lines.append("```text")
        lines.append(line_chart([tuple(p) for p in points], title=key, width=60, height=8))
        lines.append("```")
    lines.append("")

    lines.append(f"## {SECTIONS[3]}")
    lines.append("")
    table = report.get("before_after")
    if table:
        lines.append(f"{table['scored']} held-out pairs scored (beta {table['beta']:g}; {table['skipped']} skipped "
                     f"with no answer tokens left after truncation, {table['truncated']} truncated).")
        lines.append("")
        lines.append("| measure | base (before) | aligned (after) | how to read it |")
        lines.append("|---|---|---|---|")
        for row in before_after_rows(table):
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        lines.append(f"**Ties.** {table['tie_note']}")
        lp = table["logps"]
        lines.append("")
        lines.append(
            f"Mean log-probs per token: chosen {num(lp['base']['chosen_per_token'])} -> "
            f"{num(lp['aligned']['chosen_per_token'])}, rejected {num(lp['base']['rejected_per_token'])} -> "
            f"{num(lp['aligned']['rejected_per_token'])} (base -> aligned)."
        )
        if report.get("kl_per_token") is not None:
            lines.append(f"KL(aligned || base) on held-out chosen answers: {num(report['kl_per_token'])} nats/token.")
    lines.append("")

    lines.append(f"## {SECTIONS[4]}")
    lines.append("")
    gens = report.get("generations", [])
    if not gens:
        lines.append("No generations were made (--no-generations).")
    for g in gens:
        lines.append(f"### {g['label']}, {g['settings']}: {_one_line(g['prompt'], 100)}")
        lines.append("")
        lines.append(f"**Base** ({g['base_tokens']} tokens):")
        lines.append("")
        lines.append(_quote(g["base"]))
        lines.append("")
        lines.append(f"**Aligned** ({g['aligned_tokens']} tokens):")
        lines.append("")
        lines.append(_quote(g["aligned"]))
        lines.append("")
    lines.append("")

    lines.append(f"## {SECTIONS[5]}")
    lines.append("")
    lines.append("| check | status | value | threshold | verdict | lesson |")
    lines.append("|---|---|---|---|---|---|")
    for c in report.get("checks", []):
        lines.append(f"| {c['title']} | {c['status'].upper()} | {c['value_text']} | {c['threshold']} | "
                     f"{c['verdict']} | `{c['lesson']}` |")
    harmless = report.get("harmless", [])
    if harmless:
        lines.append("")
        lines.append("Harmless prompts (R = detected as a refusal, L = the answer loops):")
        lines.append("")
        for h in harmless:
            lines.append(f"- {h['prompt']}  base {_marks(h, 'base', 'refuses', 'R')}, "
                         f"aligned {_marks(h, 'aligned', 'refuses', 'R')}")
    harmful = report.get("harmful", [])
    if harmful:
        lines.append("")
        lines.append(f"Harmful prompts ({report.get('harmful_source') or 'red-team'}; S = refuses or steers away, "
                     "L = the answer loops), greedy, first 80 characters of each answer:")
        lines.append("")
        lines.append("| prompt | base | aligned |")
        lines.append("|---|---|---|")
        for h in harmful:
            cells = [f"{_marks(h, side, 'safe', 'S')} {_one_line(h[side], 80)}".replace("|", "/")
                     for side in ("base", "aligned")]
            lines.append(f"| {_one_line(h['prompt'], 60).replace('|', '/')} | {cells[0]} | {cells[1]} |")
    degeneration = report.get("degeneration")
    if degeneration:
        lines.append("")
        lines.append("Degeneration over every greedy answer: " + ", ".join(
            f"{side} {pct(d.get('loops'))} loop, distinct-2 {num(d.get('distinct_2'), 2)}"
            for side, d in degeneration.items()) + ".")
    if report.get("kl_on_samples") is not None:
        lines.append(f"KL(aligned || base) on the aligned model's own sampled answers: "
                     f"{num(report['kl_on_samples'])} nats/token.")
    lines.append("")
    return "\n".join(lines)


def _marks(row: dict[str, Any], side: str, flag: str, letter: str) -> str:
    marks = (letter if row.get(f"{side}_{flag}") else "-") + ("L" if row.get(f"{side}_loops") else "")
    return marks


def _one_line(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _quote(text: str) -> str:
    text = text.strip() or ("(only whitespace)" if text else "(empty)")
    return "\n".join("> " + line for line in text.splitlines())
