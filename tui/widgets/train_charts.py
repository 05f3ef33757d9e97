"""Live charts of a run with textual-plotext: loss, reward margin, preference accuracy, and the chosen
and rejected rewards together (both fall while the margin grows, as the lesson explains).

Charts never redraw per event: the screen calls `TrainCharts.redraw(store, limit=1)` every 0.125 s inside
`app.batch_update()`, so the four charts take turns and each is redrawn about every 0.5 s, and only
when the store moved or its size changed.
Series are downsampled to about the chart's width; raw points are drawn as dots, the smoothed curve as a
line, and eval points (when the run has them) as x. One legend line under the four charts says so (a
legend inside each chart would take the rows of data a small terminal has). Step ticks are whole
numbers at even spacing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from ..metrics_store import ACCURACY, CHOSEN, LOSS, MARGIN, REJECTED, MetricsStore


@dataclass(frozen=True)
class ChartSpec:
    id: str
    title: str
    metrics: tuple[tuple[str, str, str], ...]  # (metric, label, colour)
    ylim: tuple[float, float] | None = None
    short: str = ""  # the title where the long one does not fit the chart's width

    def title_for(self, width: int) -> str:
        # plotext drops a title wider than the plot beside its y-axis labels (up to ~6 columns)
        return self.title if len(self.title) <= width - 8 or not self.short else self.short


CHARTS = (
    ChartSpec("chart-loss", "loss (ln 2 = 0.693 at the start)", ((LOSS, "loss", "cyan"),), short="loss"),
    ChartSpec("chart-margin", "reward margin (chosen - rejected)", ((MARGIN, "margin", "green"),),
              short="reward margin"),
    ChartSpec("chart-accuracy", "preference accuracy", ((ACCURACY, "accuracy", "magenta"),), (0.0, 1.0),
              short="accuracy"),
    ChartSpec(
        "chart-rewards",
        "rewards: chosen (green), rejected (red)",
        ((CHOSEN, "chosen", "green"), (REJECTED, "rejected", "red")),
        short="chosen / rejected",
    ),
)
LEGEND = "[b]•[/] each step  [b]⠒⠒[/] smoothed  [b yellow]x[/] held-out eval  [green]chosen[/] [red]rejected[/]"


def step_ticks(first: float, last: float, room: int) -> list[int]:
    """Whole-number step ticks at a round spacing (1, 2, 5, 10, 20, 50 ...), at most `room` of them."""
    lo, hi = math.ceil(first), math.floor(last)
    if hi <= lo:
        return [lo] if lo == hi else []
    room = max(2, room)
    spacing = 1
    for k in range(0, 12):
        for m in (1, 2, 5):
            spacing = m * 10**k
            if hi // spacing - (lo - 1) // spacing <= room:  # multiples of spacing in [lo, hi]
                ticks = list(range(-(-lo // spacing) * spacing, hi + 1, spacing))
                return ticks if len(ticks) >= 2 else [lo, *ticks] if ticks and ticks[0] != lo else [lo, hi]
    return [lo, hi]


class MetricChart(PlotextPlot):
    """One chart; `draw(store)` rebuilds its figure from the store."""

    def __init__(self, spec: ChartSpec) -> None:
        super().__init__(id=spec.id)
        self.spec = spec
        self.drawn_version = -1
        self.drawn_store: MetricsStore | None = None
        self.drawn_size = (0, 0)
        self.points_drawn = 0
        self._label()  # before the first step too: four titled, empty axes, not blank boxes

    def _label(self) -> None:
        self.plt.title(self.spec.title_for(self.size.width))  # a narrow chart keeps a title that fits
        self.plt.xlabel("step")

    def on_resize(self) -> None:
        self._label()

    def needs_redraw(self, store: MetricsStore) -> bool:
        return (
            store is not self.drawn_store
            or store.version != self.drawn_version
            or tuple(self.size) != self.drawn_size
        )

    def draw(self, store: MetricsStore) -> None:
        plt = self.plt
        plt.clear_data()
        self._label()
        max_points = max(20, self.size.width - 10)
        drawn = 0
        first = last = None
        for metric, _label, colour in self.spec.metrics:
            view = store.view(metric, max_points)
            if view.steps:
                plt.scatter(view.steps, view.raw, marker="dot", color=colour)
                plt.plot(view.steps, view.smooth, marker="braille", color=colour)
                drawn = max(drawn, len(view.steps))
                first = view.steps[0] if first is None else min(first, view.steps[0])
                last = view.steps[-1] if last is None else max(last, view.steps[-1])
            points = store.eval_view(metric, max_points)
            if points.steps:
                plt.scatter(points.steps, points.raw, marker="x", color="yellow")
        if first is not None and last is not None:
            ticks = step_ticks(first, last, max(2, (self.size.width - 8) // 8))
            plt.xticks(ticks, [str(t) for t in ticks])
        if self.spec.ylim is not None and drawn:
            plt.ylim(*self.spec.ylim)
        self.points_drawn = drawn
        self.drawn_version = store.version
        self.drawn_store = store
        self.drawn_size = tuple(self.size)
        self.refresh()


ONE_CHART_BELOW = 14  # rows: under this (60x20), four charts would have no room for data; one is shown at a time


class TrainCharts(Vertical):
    """Four charts in a grid; `c` shows one at a time, large (and again the next, then the grid). Where the
    four would have no rows left for data (60x20), one is shown and `c` goes through them."""

    DEFAULT_CSS = """
    TrainCharts { height: 1fr; }
    TrainCharts > Grid { grid-size: 2 2; grid-gutter: 0 1; height: 1fr; }
    TrainCharts.-one > Grid { grid-size: 1 1; }
    TrainCharts.-one MetricChart { display: none; }
    TrainCharts.-one MetricChart.-current { display: block; }
    TrainCharts MetricChart { height: 1fr; min-height: 6; }
    TrainCharts > .chart-legend { height: auto; color: $text-muted; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        with Grid():
            for spec in CHARTS:
                yield MetricChart(spec)
        yield Static(LEGEND, classes="chart-legend")

    _next = 0
    single = -1  # the chart shown alone (an index of CHARTS), -1 for the grid of four

    def on_resize(self) -> None:
        self._layout_charts()

    def next_chart(self) -> str:
        """Grid -> each chart alone -> grid (where the grid fits); returns what is shown."""
        cramped = self.size.height < ONE_CHART_BELOW
        self.single = (self.shown + 1) % len(CHARTS) if cramped else (self.single + 2) % (len(CHARTS) + 1) - 1
        self._layout_charts()
        return "all four charts" if self.shown < 0 else CHARTS[self.shown].title

    @property
    def shown(self) -> int:
        if self.single < 0 and self.size.height and self.size.height < ONE_CHART_BELOW:
            return 0
        return self.single

    def _layout_charts(self) -> None:
        shown = self.shown
        self.set_class(shown >= 0, "-one")
        for i, chart in enumerate(self.query(MetricChart)):
            chart.set_class(i == shown, "-current")

    def redraw(self, store: MetricsStore, limit: int | None = None) -> int:
        """Redraw the charts whose data or size changed, at most `limit` of them (taking turns);
        return how many were redrawn. One chart per tick keeps each frame short while steps stream in."""
        charts = list(self.query(MetricChart))
        redrawn = 0
        for i in range(len(charts)):
            chart = charts[(self._next + i) % len(charts)]
            if limit is not None and redrawn >= limit:
                break
            if chart.needs_redraw(store):
                chart.draw(store)
                redrawn += 1
                self._next = (charts.index(chart) + 1) % len(charts)
        return redrawn
