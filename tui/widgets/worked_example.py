"""One real pair's DPO numbers: log-probs in, rewards, margin, loss and gradient weight out (dpo_math)."""

from __future__ import annotations

from typing import ClassVar

from dpo_tutor.engine.dpo_math import PairResult, dpo_pair
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Static


def _excerpt(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class WorkedExample(Vertical, can_focus=True):
    """`params` is a worked-example WidgetSpec's params; beta cycles through `betas` if given."""

    DEFAULT_CSS = """
    WorkedExample { height: auto; border: round $primary; padding: 0 1; margin: 1 0; }
    WorkedExample:focus { border: round $accent; }
    WorkedExample .we-pair { margin-bottom: 1; }
    WorkedExample .we-notes { color: $text-muted; }
    WorkedExample .we-keys { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,plus", "beta(1)", "Beta up", id="worked-beta-up"),
        Binding("down,minus", "beta(-1)", "Beta down", id="worked-beta-down"),
    ]

    beta: reactive[float] = reactive(0.1)

    def __init__(self, params: dict, context=None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.params = params
        betas = list(params.get("betas") or [])
        if params["beta"] not in betas:
            betas = sorted(betas + [params["beta"]])
        self.betas = betas
        self.set_reactive(WorkedExample.beta, params["beta"])

    @property
    def result(self) -> PairResult:
        p = self.params
        return dpo_pair(self.beta, p["policy_chosen"], p["policy_rejected"], p["ref_chosen"], p["ref_rejected"])

    def compose(self) -> ComposeResult:
        p = self.params
        pair = Text()
        pair.append("prompt   ", style="bold")
        pair.append(_excerpt(p["prompt"]) + "\n")
        pair.append("chosen   ", style="bold green")
        pair.append(_excerpt(p["chosen"]) + "\n")
        pair.append("rejected ", style="bold red")
        pair.append(_excerpt(p["rejected"]))
        yield Static(pair, classes="we-pair")
        yield Static(self._table(), id="we-table")
        yield Static(self._verdict(), id="we-verdict")
        notes = [f"source: {p['source']}"]
        if p.get("policy_note"):
            notes.append(f"policy: {p['policy_note']}")
        if p.get("ref_note"):
            notes.append(f"reference: {p['ref_note']}")
        yield Static("\n".join(notes), classes="we-notes", markup=False)
        if len(self.betas) > 1:
            yield Static("up/+ and down/- change beta (" + ", ".join(f"{b:g}" for b in self.betas) + ")",
                         classes="we-keys")

    def _table(self) -> Table:
        p, r = self.params, self.result
        table = Table(box=None, pad_edge=False, show_edge=False, expand=False)
        table.add_column("")
        table.add_column("chosen", justify="right", style="green")
        table.add_column("rejected", justify="right", style="red")
        table.add_row("policy log p", f"{p['policy_chosen']:.3f}", f"{p['policy_rejected']:.3f}")
        table.add_row("reference log p", f"{p['ref_chosen']:.3f}", f"{p['ref_rejected']:.3f}")
        table.add_row(
            "log-ratio (policy - ref)",
            f"{p['policy_chosen'] - p['ref_chosen']:+.3f}",
            f"{p['policy_rejected'] - p['ref_rejected']:+.3f}",
        )
        table.add_row(f"reward = {self.beta:g} × log-ratio", f"{r.reward_chosen:+.4f}", f"{r.reward_rejected:+.4f}")
        return table

    def _verdict(self) -> Text:
        r = self.result
        if r.tie:
            ranking = "tie: a strict > counts it as wrong (rewards/accuracies 0)"
        elif r.accurate:
            ranking = "chosen ranked higher (counts 1 in rewards/accuracies)"
        else:
            ranking = "rejected ranked higher (counts 0)"
        text = Text()
        text.append(f"beta = {self.beta:g}\n", style="bold")
        text.append(f"margin  = {r.reward_chosen:+.4f} - ({r.reward_rejected:+.4f}) = {r.margin:+.4f}\n")
        text.append(f"loss    = -log sigmoid({r.margin:+.4f}) = {r.loss:.4f}\n")
        text.append(f"gradient weight sigmoid(-margin) = {r.gradient_weight:.4f}\n")
        text.append(ranking)
        return text

    def watch_beta(self) -> None:
        if self.is_mounted:
            self.query_one("#we-table", Static).update(self._table())
            self.query_one("#we-verdict", Static).update(self._verdict())

    def action_beta(self, step: int) -> None:
        i = self.betas.index(self.beta) if self.beta in self.betas else 0
        self.beta = self.betas[max(0, min(i + step, len(self.betas) - 1))]
