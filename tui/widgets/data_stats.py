"""The quality report of the open data set: counts, dropped rows by reason, length histograms, length bias."""

from __future__ import annotations

from dpo_tutor.engine.data.browse import BrowseIndex
from dpo_tutor.engine.data.quality import QualityReport
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static
from textual_plotext import PlotextPlot

BINS = 20


def histogram(values: list[int], bins: int = BINS, upper: float | None = None) -> tuple[list[float], list[int]]:
    """(bin centres, counts) over 0..upper (the 95th percentile when None); the rest lands in the last bin."""
    if not values:
        return [], []
    ordered = sorted(values)
    top = upper if upper is not None else max(1, ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))])
    width = top / bins
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int(v / width))] += 1
    return [round(width * (k + 0.5)) for k in range(bins)], counts


def mix_lines(mix) -> list[str]:
    """Each source of a mix in two short lines (the Stats tab is ~33 columns wide at 80x24)."""
    if not mix:
        return []
    lines = [f"mix of {len(mix)} sources, {mix.total:,} pairs"]
    for use in mix:
        lines += [f" {use.name}", f"   weight {use.weight:g} · used {use.used:,}/{use.usable:,}"]
    return lines + [""]


class DataStats(VerticalScroll):
    DEFAULT_CSS = """
    DataStats #stats-summary { height: auto; padding: 0 1; }
    DataStats #stats-plots { height: 14; }
    DataStats PlotextPlot { width: 1fr; height: 14; }
    """

    def compose(self) -> ComposeResult:
        # The two charts first (titled in words that fit), then the report's lines.
        with Horizontal(id="stats-plots"):
            yield PlotextPlot(id="stats-lengths")
            yield PlotextPlot(id="stats-bias")
        yield Static("", id="stats-summary", markup=False)

    def show(self, report: QualityReport | None, index: BrowseIndex | None, mix=None) -> None:
        """The report; for a mix (engine/data/mix.py `Mix`) first each source's weight and pairs used."""
        self.report = report
        if report is None:
            self.query_one("#stats-summary", Static).update("no data set open")
            return
        self.query_one("#stats-summary", Static).update("\n".join(mix_lines(mix) + report.summary_lines()))
        self.bias = (report.chosen_longer, report.rejected_longer, report.same_length)
        chosen = [r.chosen_len for r in index.rows] if index else []
        rejected = [r.rejected_len for r in index.rows] if index else []
        both = sorted(chosen + rejected)
        upper = both[min(len(both) - 1, int(len(both) * 0.95))] if both else 1
        self.chosen_hist = histogram(chosen, upper=max(1, upper))
        self.rejected_hist = histogram(rejected, upper=max(1, upper))
        plot = self.query_one("#stats-lengths", PlotextPlot)
        plt = plot.plt
        plt.clear_figure()
        plt.title("reply chars")
        plt.xlabel("characters (to p95)")
        if chosen:
            plt.multiple_bar(self.chosen_hist[0], [self.chosen_hist[1], self.rejected_hist[1]],
                             labels=["chosen", "rejected"])
            # ticks chosen here: plotext picks a different subset from run to run
            centres = self.chosen_hist[0]
            ticks = centres[:: max(1, len(centres) // 5)]
            plt.xticks(ticks, [f"{t:,}" for t in ticks])
        plot.refresh()
        bias_plot = self.query_one("#stats-bias", PlotextPlot)
        bplt = bias_plot.plt
        bplt.clear_figure()
        bplt.title(f"chosen longer: {report.chosen_longer_share:.0%}")
        bplt.bar(["C longer", "R longer", "equal"], list(self.bias))
        bias_plot.refresh()
