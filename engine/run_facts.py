"""Facts a lesson quotes from the learner's own run, or from a shipped recording when there is none.

A lesson's `run-facts` directive names which run to read (`latest`: the newest run in the runs folder
that logged a step, else a shipped recording; `recording:<name>`: one shipped recording) and which
facts to state. This module reads the run's `events.jsonl` and, when present, its `report.json`
(written by `dpo-tutor eval`), and turns them into sentences that always say where the numbers came
from. Pure: no UI; the TUI's RunFacts widget shows the sentences.

The arithmetic is the lessons' own: TRL's logged `rewards/margins` is beta * delta, so delta is the
margin divided by the run's beta (Rafailov et al. 2023, eq. 5: the implicit reward is beta times the
log-ratio). The train accuracy is the mean over the last 10 % of logged steps, the definition the
overfitting check uses (`engine/evaluate.train_accuracy`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .events import EVENTS_FILE, read_events
from .recorded.loader import HERE as RECORDED_HERE
from .recorded.loader import recorded_runs
from .runs import list_runs

REPORT_FILE = "report.json"
# a first step whose loss is this close to ln 2 is still a tie, up to bf16 rounding and a reference
# scored in another layout (the default recording's step 1 logs 0.6836 at learning rate 0)
TIE_LOSS_GAP = 0.02
# the recording a lesson falls back to when the learner has no run, in order of preference
FALLBACK_RECORDINGS = ("default-recipe-h200", "over-refusal-h100")

FACT_KEYS = (
    "source", "recipe", "first_step", "loss", "margin", "accuracy", "heldout_peak", "rewards", "refusal",
    "ranking", "checks", "answers", "reference", "verdict",
)


@dataclass
class RunFacts:
    """What one run's log (and report) says, with the run named."""

    kind: str  # "run" (the learner's) or "recording" (shipped)
    name: str
    path: Path
    why: str = ""  # why this run was picked, when it was not the obvious one
    state: str = ""
    steps: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    gpu: str = ""
    first: dict[str, float] = field(default_factory=dict)  # the first logged step's metrics
    first_step: int = 0
    last: dict[str, float] = field(default_factory=dict)
    last_step: int = 0
    step_margins: list[tuple[int, float]] = field(default_factory=list)
    step_accuracies: list[float] = field(default_factory=list)
    evals: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    report: dict[str, Any] | None = None

    # -- derived numbers ---------------------------------------------------------------------------

    @property
    def beta(self) -> float | None:
        beta = self.config.get("beta")
        return float(beta) if isinstance(beta, (int, float)) and beta > 0 else None

    @property
    def subject(self) -> str:
        return "your run" if self.kind == "run" else "this recording"

    @property
    def label(self) -> str:
        return f"your run {self.name}" if self.kind == "run" else f"the shipped recording {self.name}"

    def delta_of(self, margin: float) -> float | None:
        """delta = margin / beta (the logged margin is beta * delta)."""
        return margin / self.beta if self.beta else None

    @property
    def step_deltas(self) -> list[tuple[int, float]]:
        """(step, batch-mean delta) for every logged step: rewards/margins / beta. Not per pair."""
        if not self.beta:
            return []
        return [(s, m / self.beta) for s, m in self.step_margins]

    @property
    def train_accuracy(self) -> float | None:
        """Mean rewards/accuracies over the last 10 % of logged steps (at least the last one)."""
        values = self.step_accuracies
        if not values:
            return None
        tail = values[-max(1, len(values) // 10):]
        return sum(tail) / len(tail)

    def _eval(self, key: str) -> list[tuple[int, float]]:
        return [(s, m[key]) for s, m in self.evals if isinstance(m.get(key), (int, float))]

    @property
    def heldout_accuracy(self) -> tuple[int, float] | None:
        """The last in-training eval's accuracy on the held-out pairs (step, value)."""
        points = self._eval("eval_rewards/accuracies")
        return points[-1] if points else None

    @property
    def heldout_peak(self) -> tuple[int, float] | None:
        """The best in-training held-out accuracy (step, value); the earliest step on a tie."""
        points = self._eval("eval_rewards/accuracies")
        return max(points, key=lambda p: (p[1], -p[0])) if points else None

    @property
    def heldout_margin(self) -> tuple[int, float] | None:
        points = self._eval("eval_rewards/margins")
        return points[-1] if points else None

    def report_value(self, *keys: str) -> Any:
        node: Any = self.report
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node

    @property
    def report_heldout(self) -> tuple[float, int] | None:
        """(accuracy, pairs) of the aligned model on the report's held-out pairs."""
        acc = self.report_value("before_after", "implicit_reward", "aligned", "accuracy")
        n = self.report_value("before_after", "implicit_reward", "aligned", "n")
        return (float(acc), int(n or 0)) if isinstance(acc, (int, float)) else None

    @property
    def refusal(self) -> tuple[float, float, int] | None:
        """(base rate, aligned rate, prompts) on the report's harmless prompts."""
        rows = self.report_value("harmless")
        if not isinstance(rows, list) or not rows:
            return None
        base = sum(1 for r in rows if r.get("base_refuses")) / len(rows)
        aligned = sum(1 for r in rows if r.get("aligned_refuses")) / len(rows)
        return base, aligned, len(rows)

    def numbers(self) -> dict[str, str]:
        """Formatted numbers for `{placeholders}` in lesson text and quizzes ("" when unknown)."""
        out: dict[str, str] = {"run": self.label, "name": self.name}
        beta = self.beta
        out["beta"] = f"{beta:g}" if beta else ""
        out["lr"] = f"{self.config.get('learning_rate', ''):g}" if isinstance(self.config.get("learning_rate"),
                                                                              (int, float)) else ""
        margin = self.last.get("rewards/margins")
        out["margin"] = f"{margin:.2f}" if margin is not None else ""
        delta = self.delta_of(margin) if margin is not None else None
        out["delta"] = f"{delta:.1f}" if delta is not None else ""
        out["first_loss"] = f"{self.first['loss']:.4f}" if "loss" in self.first else ""
        out["first_accuracy"] = f"{self.first['rewards/accuracies']:.3f}" if "rewards/accuracies" in self.first else ""
        out["first_margin"] = f"{self.first['rewards/margins']:+.3f}" if "rewards/margins" in self.first else ""
        acc = self.train_accuracy
        out["train_accuracy"] = f"{acc:.2f}" if acc is not None else ""
        held = self.report_heldout
        last_eval = self.heldout_accuracy
        out["heldout_accuracy"] = (f"{held[0]:.2f}" if held else f"{last_eval[1]:.2f}" if last_eval else "")
        for when in ("base", "aligned"):
            value = self.report_value("before_after", "likelihood_summed", when, "accuracy")
            key = "ranking_before" if when == "base" else "ranking_after"
            out[key] = f"{value:.1%}" if isinstance(value, (int, float)) else ""
        if margin is not None and beta:
            out["margin_times_beta"] = f"{margin * beta:.2f}"
        peak = self.heldout_peak
        out["heldout_peak"] = f"{peak[1]:.2f}" if peak else ""
        out["heldout_peak_step"] = str(peak[0]) if peak else ""
        held_value = held[0] if held else last_eval[1] if last_eval else None
        out["gap_points"] = (f"{(acc - held_value) * 100:.0f}" if acc is not None and held_value is not None
                             else "")
        refusal = self.refusal
        out["refusal_rate"] = f"{refusal[1]:.0%}" if refusal else ""
        out["base_refusal_rate"] = f"{refusal[0]:.0%}" if refusal else ""
        return out


def read_facts(path: str | os.PathLike[str], kind: str = "run", why: str = "") -> RunFacts:
    """The facts of one run folder (its events.jsonl, and report.json when it has one)."""
    path = Path(path)
    events = read_events(path / EVENTS_FILE)
    facts = RunFacts(kind=kind, name=path.name, path=path, why=why)
    for event in events:
        kind_ = event.get("type")
        if kind_ == "run_started":
            if isinstance(event.get("config"), dict):
                facts.config = dict(event["config"])
            facts.gpu = event.get("gpu_name") or event.get("device") or ""
            facts.state = "running"
        elif kind_ == "step":
            metrics = event.get("metrics") or {}
            step = int(event.get("step", 0))
            if not facts.first:
                facts.first, facts.first_step = dict(metrics), step
            facts.last, facts.last_step = dict(metrics), step
            if isinstance(metrics.get("rewards/margins"), (int, float)):
                facts.step_margins.append((step, float(metrics["rewards/margins"])))
            if isinstance(metrics.get("rewards/accuracies"), (int, float)):
                facts.step_accuracies.append(float(metrics["rewards/accuracies"]))
            facts.steps = max(facts.steps, step)
        elif kind_ == "eval":
            facts.evals.append((int(event.get("step", 0)), dict(event.get("metrics") or {})))
        elif kind_ in ("finished", "stopped", "failed"):
            facts.state = kind_
    report = path / REPORT_FILE
    if report.is_file():
        try:
            data = json.loads(report.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        facts.report = data if isinstance(data, dict) else None
    return facts


def recording(name: str, base: Path | None = None) -> Path | None:
    """The shipped recording folder of this name, or None while it is not shipped."""
    for path in recorded_runs(base or RECORDED_HERE):
        if path.name == name:
            return path
    return None


@dataclass(frozen=True)
class Missing:
    """No run to read: `why` says what was looked for."""

    why: str


def pick_facts(which: str = "latest", runs_dir: str | os.PathLike[str] | None = None,
               recordings: Path | None = None) -> RunFacts | Missing:
    """The run a lesson reads.

    `latest`: the newest run in `runs_dir` that logged at least one step; when there is none, the
    first shipped recording of FALLBACK_RECORDINGS (saying so). `recording:<name>`: that recording,
    or Missing while it is not shipped.
    """
    if which.startswith("recording:"):
        name = which.split(":", 1)[1]
        path = recording(name, recordings)
        if path is None:
            return Missing(f"the recording {name} is not in this install yet")
        return read_facts(path, kind="recording")
    if which != "latest":
        raise ValueError(f"unknown run {which!r}: use 'latest' or 'recording:<name>'")
    skipped = 0
    for info in list_runs(runs_dir):
        if info.summary.step > 0:
            facts = read_facts(info.path, kind="run")
            if facts.step_margins or facts.first:
                facts.state = info.state
                return facts
        skipped += 1
    where = str(runs_dir) if runs_dir is not None else "the runs folder"
    none_yet = (f"no run in {where} has logged a step yet" if skipped
                else f"you have no run in {where} yet")
    for name in FALLBACK_RECORDINGS:
        path = recording(name, recordings)
        if path is not None:
            return read_facts(path, kind="recording", why=none_yet)
    return Missing(f"{none_yet}, and no recording ships with this install")


# -- sentences ---------------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{x:.0%}"


def source_line(facts: RunFacts) -> str:
    bits = [facts.state or "unknown state", f"{facts.steps} steps"]
    if facts.gpu:
        bits.append(facts.gpu)
    line = f"Numbers from {facts.label} ({', '.join(bits)})"
    if facts.why:
        line += f": {facts.why}, so the lesson reads a shipped recording instead"
    return line + "."


def fact_sentence(facts: RunFacts, key: str) -> str | None:
    """One sentence for `key` (one of FACT_KEYS), or None when the run lacks the numbers."""
    subject = facts.subject
    Subject = subject[0].upper() + subject[1:]
    beta = facts.beta
    if key == "source":
        return source_line(facts)
    if key == "recipe":
        c = facts.config
        parts = []
        for k, label in (("beta", "beta"), ("learning_rate", "lr"), ("epochs", "epochs"), ("max_steps", "max steps"),
                         ("batch_size", "batch"), ("grad_accum", "accumulation"), ("lora_r", "LoRA r")):
            v = c.get(k)
            if isinstance(v, (int, float)) and (v or k not in ("max_steps", "epochs")):
                parts.append(f"{label} {v:g}")
        return f"{Subject}'s recipe: {', '.join(parts)}." if parts else None
    if key == "first_step":
        if "loss" not in facts.first:
            return None
        loss = facts.first["loss"]
        acc = facts.first.get("rewards/accuracies")
        text = f"{Subject}'s first logged step (step {facts.first_step}): loss {loss:.4f}"
        text += f" (ln 2 = {math.log(2):.4f})"
        if acc is not None:
            text += f", rewards/accuracies {acc:.3f}"
        margin = facts.first.get("rewards/margins")
        if margin is not None:
            text += f", margin {margin:+.3f}"
        if abs(loss - math.log(2)) < TIE_LOSS_GAP:
            text += (". Loss about ln 2 and margin about 0: the policy still equals the reference, up to "
                     "rounding")
            if acc:
                text += (f"; the accuracy of {acc:.3f} is that rounding breaking ties (bf16, and a reference "
                         "scored in another batch layout), not learning")
        return text + "."
    if key == "loss":
        first, last = facts.first.get("loss"), facts.last.get("loss")
        if first is None or last is None:
            return None
        return (f"Training loss {first:.3f} at step {facts.first_step}, {last:.3f} at step {facts.last_step} "
                "(a batch mean on training pairs).")
    if key == "margin":
        margin = facts.last.get("rewards/margins")
        if margin is None or not beta:
            return None
        delta = margin / beta
        return (f"{Subject}'s margin is {margin:.2f} at beta {beta:g} (step {facts.last_step}, a batch mean), "
                f"so delta = {margin:.2f} / {beta:g} = {delta:.1f} nats.")
    if key == "accuracy":
        train = facts.train_accuracy
        if train is None:
            return None
        text = f"Train accuracy {train:.2f} (mean of the last 10 % of steps)"
        report = facts.report_heldout
        last_eval = facts.heldout_accuracy
        if report:
            text += f" against held-out {report[0]:.2f} on {report[1]} pairs (report.json)"
            held = report[0]
        elif last_eval:
            text += f" against held-out {last_eval[1]:.2f} (the eval at step {last_eval[0]})"
            held = last_eval[1]
        else:
            return text + "; no held-out numbers yet (no eval event, no report.json)."
        gap = train - held
        verdict = "more than 15 points: the overfitting check warns" if gap > 0.15 else "within 15 points"
        return text + f": a gap of {gap * 100:+.0f} points, {verdict}."
    if key == "heldout_peak":
        peak, last = facts.heldout_peak, facts.heldout_accuracy
        if not peak or not last:
            return None
        text = f"Held-out accuracy during training peaked at {peak[1]:.2f} at step {peak[0]}"
        if last[0] != peak[0]:
            text += f" and ended at {last[1]:.2f} at step {last[0]}"
        return text + "."
    if key == "rewards":
        chosen, rejected = facts.last.get("rewards/chosen"), facts.last.get("rewards/rejected")
        if chosen is None or rejected is None:
            return None
        both = ("both are below 0, so both answers became less likely than under the reference" if (
            chosen < 0 and rejected < 0) else "they are not both falling")
        return (f"At step {facts.last_step} rewards/chosen is {chosen:+.2f} and rewards/rejected {rejected:+.2f}: "
                f"{both}.")
    if key == "refusal":
        refusal = facts.refusal
        if refusal is None:
            return (f"{Subject} has no report.json yet, so no refusal rate: `dpo-tutor eval {facts.path}` "
                    "writes one." if facts.kind == "run" else None)
        base, aligned, n = refusal
        return (f"Refusals on {n} harmless prompts (report.json): aligned {_pct(aligned)}, base {_pct(base)}.")
    if key == "ranking":
        base = facts.report_value("before_after", "likelihood_summed", "base", "accuracy")
        aligned = facts.report_value("before_after", "likelihood_summed", "aligned", "accuracy")
        if not isinstance(base, (int, float)) or not isinstance(aligned, (int, float)):
            return None
        return (f"Ranked by raw log-likelihood, the chosen answer wins {base:.1%} of held-out pairs before "
                f"training and {aligned:.1%} after (report.json).")
    if key == "checks":
        checks = facts.report_value("checks")
        if not isinstance(checks, list) or not checks:
            return None
        warned = [c.get("title", c.get("id", "?")) for c in checks if c.get("status") == "warn"]
        if not warned:
            return f"All {len(checks)} checks in report.json read OK."
        return f"{len(warned)} of {len(checks)} checks warn: " + "; ".join(warned) + "."
    if key == "verdict":
        line = facts.report_value("verdict", "line")
        return f"The report's verdict: {line}" if isinstance(line, str) and line else None
    if key == "answers":
        rows = facts.report_value("harmless")
        if not isinstance(rows, list) or not rows:
            return None
        shown = [r for r in rows if r.get("aligned_refuses") and not r.get("base_refuses")][:2] or rows[:2]
        quotes = "; ".join(f"\"{r.get('prompt', '')}\" -> \"{_excerpt(r.get('aligned', ''))}\"" for r in shown)
        return f"Aligned answers to harmless prompts (report.json): {quotes}."
    if key == "reference":
        chosen = facts.report_value("before_after", "logps", "base", "chosen_per_token")
        rejected = facts.report_value("before_after", "logps", "base", "rejected_per_token")
        if not isinstance(chosen, (int, float)) or not isinstance(rejected, (int, float)):
            return None
        return (f"The reference gives the held-out answers {chosen:.2f} (chosen) and {rejected:.2f} (rejected) "
                f"nats per token (a geometric-mean token probability of {math.exp(chosen):.2f}), on answers "
                "sampled from other models, not from this reference (report.json).")
    raise ValueError(f"unknown fact {key!r} (known: {', '.join(FACT_KEYS)})")


def _excerpt(text: str, limit: int = 70) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def compare_rows(left: RunFacts | Missing, right: RunFacts | Missing) -> list[tuple[str, str, str]]:
    """(what, left, right) rows for two runs side by side; a Missing side reads 'not shipped yet'."""

    def cells(facts: RunFacts | Missing) -> dict[str, str]:
        if isinstance(facts, Missing):
            return {}
        out: dict[str, str] = {"run": facts.name}
        c = facts.config
        sources = c.get("data") or []
        sources = [sources] if isinstance(sources, str) else [str(x) for x in sources]
        names = [x.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] for x in sources if x]
        out["data"] = " + ".join(names) if names else "the default mix"
        recipe = []
        if isinstance(c.get("learning_rate"), (int, float)):
            recipe.append(f"lr {c['learning_rate']:g}")
        if isinstance(c.get("epochs"), (int, float)) and not c.get("max_steps"):
            recipe.append(f"{c['epochs']:g} epochs")
        if isinstance(c.get("max_steps"), (int, float)) and c.get("max_steps"):
            recipe.append(f"{c['max_steps']:g} steps")
        if facts.beta:
            recipe.append(f"beta {facts.beta:g}")
        out["recipe"] = ", ".join(recipe)
        if "loss" in facts.first and "loss" in facts.last:
            out["loss"] = f"{facts.first['loss']:.2f} -> {facts.last['loss']:.2f}"
        if facts.train_accuracy is not None:
            out["train"] = f"{facts.train_accuracy:.2f}"
        peak = facts.heldout_peak
        if peak:
            out["peak"] = f"{peak[1]:.2f} at step {peak[0]} of {facts.steps}"
        held = facts.report_heldout
        if held:
            out["heldout"] = f"{held[0]:.2f} ({held[1]} pairs)"
        chosen, rejected = facts.last.get("rewards/chosen"), facts.last.get("rewards/rejected")
        if chosen is not None and rejected is not None:
            out["rewards"] = f"{chosen:+.2f} / {rejected:+.2f}"
        refusal = facts.refusal
        if refusal:
            out["refusal"] = f"{refusal[1]:.0%} (base {refusal[0]:.0%})"
        checks = facts.report_value("checks")
        if isinstance(checks, list) and checks:
            warned = sum(1 for ch in checks if ch.get("status") == "warn")
            out["checks"] = f"{warned} of {len(checks)} warn"
        return out

    labels = (("run", "run"), ("data", "data"), ("recipe", "recipe"), ("loss", "train loss"),
              ("train", "train accuracy"), ("peak", "held-out peak"), ("heldout", "held-out, report"),
              ("rewards", "chosen / rejected"), ("refusal", "refusals, harmless"), ("checks", "checks"))
    a, b = cells(left), cells(right)
    gone_a = "not shipped yet" if isinstance(left, Missing) else "-"
    gone_b = "not shipped yet" if isinstance(right, Missing) else "-"
    return [(label, a.get(key, gone_a), b.get(key, gone_b)) for key, label in labels]


def fact_lines(facts: RunFacts | Missing, keys: list[str] | tuple[str, ...]) -> list[str]:
    """The sentences for `keys`, the source first; a Missing gives one line that says what is missing."""
    if isinstance(facts, Missing):
        return [f"No numbers to show: {facts.why}."]
    lines = [source_line(facts)]
    for key in keys:
        if key == "source":
            continue
        sentence = fact_sentence(facts, key)
        if sentence:
            lines.append(sentence)
    return lines


def fill(template: str, facts: RunFacts | Missing) -> str:
    """`template` with `{name}` placeholders from `RunFacts.numbers()`; unknown or missing names read '?'."""
    numbers = facts.numbers() if isinstance(facts, RunFacts) else {}

    class _Default(dict):
        def __missing__(self, key: str) -> str:
            return "?"

    values = _Default({k: v for k, v in numbers.items() if v != ""})
    return template.format_map(values)
