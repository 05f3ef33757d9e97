"""The beta explorer: DPO loss and gradient weight against delta, for a beta changed with keys.

With `run:` it also marks a real run's deltas on the loss curve. A run logs no per-pair deltas, so the
marks are what its log holds: each logged step's rewards/margins divided by the run's beta, a batch
mean of delta (and the readout says so).
"""

from __future__ import annotations

from typing import ClassVar

from dpo_tutor.engine.dpo_math import LN2, delta_for_loss, gradient_weight, linspace, loss_curve, weight_curve
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Static
from textual_plotext import PlotextPlot

from .lesson_context import LessonContext

DELTA_RANGE = (-20.0, 20.0)
POINTS = 161
LOSS_YMAX = 3.0
TARGET_LOSS = 0.3
# plotext takes colour names; the legend line under the chart uses the same two
LOSS_COLOR, WEIGHT_COLOR, RUN_COLOR = "orange", "cyan", "green"


class BetaExplorer(Vertical, can_focus=True):
    """`params`: betas (list of floats), caption (optional). The current curves live in `loss`/`weight`."""

    DEFAULT_CSS = """
    BetaExplorer { height: auto; border: round $primary; padding: 0 1; margin: 1 0; }
    BetaExplorer:focus { border: round $accent; }
    BetaExplorer PlotextPlot { height: 16; }
    BetaExplorer #beta-readout { text-style: bold; }
    BetaExplorer .beta-caption, BetaExplorer .beta-keys { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,plus", "step(1)", "Beta up", id="beta-up"),
        Binding("down,minus", "step(-1)", "Beta down", id="beta-down"),
    ]

    index: reactive[int] = reactive(0)

    def __init__(self, params: dict, context: LessonContext | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.params = params
        self.run_facts = None
        self.run_deltas: list[float] = []
        if params.get("run"):
            from dpo_tutor.engine.run_facts import RunFacts

            facts = (context or LessonContext()).facts(params["run"])
            if isinstance(facts, RunFacts) and facts.step_deltas:
                self.run_facts = facts
                self.run_deltas = [d for _, d in facts.step_deltas]
        self.betas: list[float] = list(params["betas"])
        self.deltas = linspace(*DELTA_RANGE, POINTS)
        start = self.betas.index(0.1) if 0.1 in self.betas else 0
        self.set_reactive(BetaExplorer.index, start)
        self.loss: list[float] = []
        self.weight: list[float] = []

    @property
    def beta(self) -> float:
        return self.betas[self.index]

    def compose(self) -> ComposeResult:
        if self.params.get("caption"):
            yield Static(self.params["caption"], classes="beta-caption", markup=False)
        yield PlotextPlot()
        yield Static(
            f"[{LOSS_COLOR}]━━[/] loss -log σ(β·δ)   [{WEIGHT_COLOR}]━━[/] gradient weight σ(-β·δ)   "
            "x: δ, log-ratio of chosen minus log-ratio of rejected",
            classes="beta-legend",
        )
        yield Static("", id="beta-readout")
        if self.run_facts is not None:
            yield Static(self.run_text(), id="beta-run", markup=False)
        yield Static("up/+ and down/- change beta: " + ", ".join(f"{b:g}" for b in self.betas),
                     classes="beta-keys")

    def on_mount(self) -> None:
        self.redraw()

    def validate_index(self, value: int) -> int:
        return max(0, min(value, len(self.betas) - 1))

    def watch_index(self) -> None:
        if self.is_mounted:
            self.redraw()

    def action_step(self, step: int) -> None:
        self.index += step

    def readout(self) -> str:
        beta = self.beta
        d = delta_for_loss(beta, TARGET_LOSS)
        return (
            f"beta = {beta:g}   loss at delta 0 = {LN2:.3f}   "
            f"loss falls to {TARGET_LOSS} at delta = {d:.1f} (margin {beta * d:.2f}), "
            f"where the gradient weight is {gradient_weight(beta, d):.2f}"
        )

    def run_text(self) -> str:
        facts, deltas = self.run_facts, self.run_deltas
        return (
            f"● {facts.label} (beta {facts.beta:g}): {len(deltas)} logged steps, delta from {min(deltas):.1f} "
            f"to {max(deltas):.1f}, last {deltas[-1]:.1f}. Each mark is a step's rewards/margins / beta, a "
            "batch mean: the log holds no per-pair deltas."
        )

    def redraw(self) -> None:
        beta = self.beta
        self.loss = loss_curve(beta, self.deltas)
        self.weight = weight_curve(beta, self.deltas)
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(f"beta = {beta:g}")
        shown = [min(v, LOSS_YMAX) for v in self.loss]
        plt.plot(self.deltas, shown, label="loss", marker="braille", color=LOSS_COLOR)
        plt.plot(self.deltas, self.weight, label="gradient weight", marker="braille", color=WEIGHT_COLOR)
        if self.run_deltas:
            lo, hi = DELTA_RANGE
            xs = [min(max(d, lo), hi) for d in self.run_deltas]
            ys = [min(y, LOSS_YMAX) for y in loss_curve(beta, xs)]
            plt.scatter(xs, ys, label="run", marker="dot", color=RUN_COLOR)
        plt.ylim(0, LOSS_YMAX)
        plt.xlim(*DELTA_RANGE)
        plot.refresh()
        self.query_one("#beta-readout", Static).update(self.readout())
