"""A mix on screen, driven with Pilot at 80x24: the Train form's data and data_weights fields, and the Data
area's training mix (each source's weight and pairs, the pairs tagged with their source)."""

from __future__ import annotations

import socket

import pytest
from conftest import SHARED_DATA, lift_sample_default, shared_file
from dpo_tutor.tui.app import DpoTutorApp
from dpo_tutor.tui.context import AppContext

HARMLESS = ("hh-rlhf", "harmless-base-test.jsonl.gz")
HELPFUL = ("hh-rlhf-helpful-steamshp", "anthropic_helpful_test.jsonl.gz")


@pytest.fixture
def halves(tmp_path, monkeypatch) -> list[str]:
    """The two real halves, and the default data resolved as a machine without network does."""
    files = [str(shared_file(*HARMLESS)), str(shared_file(*HELPFUL))]
    monkeypatch.setenv("DPO_TUTOR_CACHE_DIR", str(tmp_path / "cache"))
    lift_sample_default(monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DPO_TUTOR_DATA_DIR", str(SHARED_DATA))
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("a test tried the network"))
    return files


def text(widget) -> str:
    return str(widget.render())


async def settle(app, pilot) -> None:
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause(0.15)


async def test_the_train_form_sets_sources_and_weights_and_checks_them(halves, tmp_path):
    app = DpoTutorApp(AppContext(runs_dir=tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await settle(app, pilot)
        form = app.screen.query_one("TrainForm")
        summary = app.screen.query_one("#form-summary")
        assert "data: the default data (HH-RLHF harmless-base + helpful-base 2:1)" in text(summary)
        app.screen.query_one("#in-data").value = ", ".join(halves)
        app.screen.query_one("#in-data_weights").value = "1, 3"
        await pilot.pause()
        assert form.config.data == halves and form.config.data_weights == [1.0, 3.0]
        assert "data: hh-rlhf/harmless-base x1 + hh-rlhf/helpful-base x3" in " ".join(text(summary).split())
        app.screen.query_one("#in-data_weights").value = "1"
        await pilot.pause()
        weights = app.screen.query_one("#field-data_weights")
        assert form.config is None and weights.has_class("-invalid")
        assert text(weights.query_one(".error")).startswith("data_weights has 1 weight for 2 data sources")
        assert app.screen.query_one("#start").disabled
        # the picker offers the default mix first, then the bundled sample and the hub's two halves
        from dpo_tutor.tui.widgets.train_form import data_choices

        choices = data_choices(tmp_path)
        assert choices[0] == ("the default mix: HH-RLHF harmless + helpful 2:1", "")
        assert choices[1][0] == "the bundled sample"
        assert ("hub: HH-RLHF harmless + helpful halves",
                "hf:Anthropic/hh-rlhf/harmless-base, hf:Anthropic/hh-rlhf/helpful-base") in choices


async def test_the_data_area_shows_the_training_mix_and_tags_each_pair(halves, tmp_path):
    from dpo_tutor.tui.screens.data import DataScreen

    app = DpoTutorApp(AppContext(runs_dir=tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, DataScreen)
        await pilot.press("m")
        await settle(app, pilot)
        status = text(screen.query_one("#data-status"))
        assert status.strip() == "mix of 2 sources  ·  showing 3,454 of 3,454 pairs  ·  4,656 rows read"
        assert len(status.rstrip()) <= 78  # one line at 80 columns, nothing cut
        mix = screen.loaded.result.mix
        assert [(u.name, u.weight, u.used) for u in mix] == [
            ("hh-rlhf/harmless-base", 2.0, 2303), ("hh-rlhf/helpful-base", 1.0, 1151)]
        stats = text(screen.query_one("#stats-summary"))
        assert stats.startswith("mix of 2 sources, 3,454 pairs\n hh-rlhf/harmless-base\n   weight 2 · used 2,303/2,303\n"
                                " hh-rlhf/helpful-base\n   weight 1 · used 1,151/2,338")
        assert max(len(line) for line in stats.splitlines()[:5]) <= 33  # the Stats tab's width at 80x24
        # the browser shows the mixed pairs with their source, and the group filter picks one source
        detail = screen.query_one("#data-detail")
        assert detail.triplet.source == "hh-rlhf/harmless-base"
        assert screen.query_one("#detail-prompt-box").border_subtitle == "hh-rlhf/harmless-base"
        await pilot.press("down")
        await settle(app, pilot)
        assert screen.query_one("#detail-prompt-box").border_subtitle == "hh-rlhf/helpful-base"
        screen.query_one("#data-group").value = "hh-rlhf/helpful-base"
        await settle(app, pilot)
        table = screen.query_one("#data-table")
        assert len(table.order) == 1151
        assert {screen.loaded.index.triplets[i].source for i in table.order} == {"hh-rlhf/helpful-base"}


async def test_comma_separated_sources_open_as_a_mix_at_equal_weights(halves, tmp_path):
    app = DpoTutorApp(AppContext(runs_dir=tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(app, pilot)
        app.screen.open_source(", ".join(halves))
        await settle(app, pilot)
        assert [u.used for u in app.screen.loaded.result.mix] == [2303, 2303]
        assert "mix of 2 sources" in text(app.screen.query_one("#data-status"))
