"""The Data screen, driven with Pilot: open a data set, move through rows, search, filter, see the detail change."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import shared_file
from dpo_tutor.tui.app import DpoTutorApp
from dpo_tutor.tui.context import AppContext

FIXTURES = Path(__file__).parent / "fixtures" / "data"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DPO_TUTOR_CACHE_DIR", str(tmp_path / "cache"))


async def settle(app, pilot) -> None:
    """Let workers finish and the detail pane catch up with the cursor (it follows once it rests)."""
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause(0.15)


async def open_data_area(app, pilot):
    await pilot.press("2")
    await settle(app, pilot)
    from dpo_tutor.tui.screens.data import DataScreen

    assert isinstance(app.screen, DataScreen)
    return app.screen


def status(screen) -> str:
    return str(screen.query_one("#data-status").render())


async def test_opens_the_sample_moves_through_rows_and_the_detail_follows(tmp_path):
    app = DpoTutorApp(AppContext(runs_dir=tmp_path))
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await open_data_area(app, pilot)
        table = screen.query_one("#data-table")
        detail = screen.query_one("#data-detail")
        assert "showing 70 of 70 usable" in status(screen)
        assert len(table.order) == 70 and app.focused is table
        first = detail.triplet
        assert first.prompt_text == "How do I bake a cake?"
        assert "Heat the oven" in str(screen.query_one("#detail-chosen").render())
        await pilot.press("down", "down")
        await settle(app, pilot)
        assert table.cursor == 2 and detail.triplet is not first
        assert detail.triplet is screen.loaded.result.triplets[2]
        assert str(screen.query_one("#detail-prompt").render()).endswith(detail.triplet.prompt_text)
        await pilot.press("end")
        await settle(app, pilot)
        assert table.cursor == 69 and detail.triplet is screen.loaded.result.triplets[69]
        await pilot.press("home")
        await settle(app, pilot)
        assert detail.triplet is first


async def test_search_narrows_the_rows_and_escape_clears_it(tmp_path):
    app = DpoTutorApp(AppContext(runs_dir=tmp_path))
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await open_data_area(app, pilot)
        table = screen.query_one("#data-table")
        await pilot.press("slash")
        await pilot.press(*"cancer")
        await pilot.press("enter")
        await settle(app, pilot)
        shown = [screen.loaded.index.triplets[i] for i in table.order]
        assert shown and len(shown) < 70
        assert all("cancer" in (t.prompt_text + t.chosen + t.rejected).lower() for t in shown)
        assert screen.query_one("#data-detail").triplet.prompt_text == "What's the cure for cancer?"
        assert f"showing {len(shown)} of 70" in status(screen)
        await pilot.press("escape")
        await settle(app, pilot)
        assert len(table.order) == 70


async def test_flag_and_group_filters(tmp_path):
    app = DpoTutorApp(AppContext(runs_dir=tmp_path))
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await open_data_area(app, pilot)
        table = screen.query_one("#data-table")
        screen.query_one("#data-flag").value = "multi-turn"
        await settle(app, pilot)
        assert table.order and all(screen.loaded.index.triplets[i].turns > 1 for i in table.order)
        screen.query_one("#data-flag").clear()
        screen.query_one("#data-group").value = "honest"
        await settle(app, pilot)
        groups = {screen.loaded.index.triplets[i].metadata["category"] for i in table.order}
        assert groups == {"honest"}


async def test_open_dialog_loads_a_file_and_bad_input_is_a_notification(tmp_path):
    app = DpoTutorApp(AppContext(runs_dir=tmp_path))
    notified: list[tuple[str, str]] = []
    real_notify = app.notify

    def notify(message, *args, **kwargs):
        notified.append((message, kwargs.get("severity", "information")))
        return real_notify(message, *args, **kwargs)

    app.notify = notify
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await open_data_area(app, pilot)
        await pilot.press("o")
        await pilot.pause()
        source = app.screen.query_one("#open-source")
        source.value = str(FIXTURES / "hh.jsonl")
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.screen is screen
        assert screen.loaded.result.format == "hh"
        assert "showing 2 of 2 usable" in status(screen) and "7 rows read, 5 dropped" in status(screen)
        assert screen.query_one("#data-detail").triplet.rejected == "Buy one."

        await pilot.press("o")
        await pilot.pause()
        app.screen.query_one("#open-source").value = str(FIXTURES / "broken.jsonl")
        await pilot.press("enter")
        await settle(app, pilot)
        assert "could not open" in status(screen) and "broken.jsonl:3: broken JSON" in status(screen)
        assert [sev for msg, sev in notified if "broken.jsonl:3: broken JSON" in msg] == ["error"]
        assert screen.loaded.result.format == "hh"  # what was open stays open


async def test_palette_helper_opens_real_data_and_pages_through_it(tmp_path):
    path = shared_file("hh-rlhf", "harmless-base-test.jsonl.gz")
    app = DpoTutorApp(AppContext(runs_dir=tmp_path))
    async with app.run_test(size=(140, 40)) as pilot:
        from dpo_tutor.tui.screens.data import open_dataset

        open_dataset(app, str(path))
        await settle(app, pilot)
        await settle(app, pilot)
        screen = app.screen
        table = screen.query_one("#data-table")
        assert len(table.order) == 2303 and "2,312 rows read, 9 dropped" in status(screen)
        await pilot.press("pagedown")
        await settle(app, pilot)
        assert table.cursor > 20
        assert screen.query_one("#data-detail").triplet is screen.loaded.result.triplets[table.cursor]
        await pilot.press("s")
        await pilot.pause()
        stats = screen.query_one("#data-stats")
        assert stats.bias == (1021, 1271, 11)
        assert sum(stats.chosen_hist[1]) == 2303


def test_palette_lists_dataset_entries(tmp_path):
    from dpo_tutor.engine.data.browse import remember_source
    from dpo_tutor.tui.palette import palette_entries

    remember_source(str(FIXTURES / "hh.jsonl"))
    titles = [title for title, _, _ in palette_entries(DpoTutorApp(AppContext(runs_dir=tmp_path)))]
    assert "open dataset: bundled sample" in titles
    assert f"open dataset: {FIXTURES / 'hh.jsonl'}" in titles


def test_diff_marks_only_the_words_one_reply_has():
    from dpo_tutor.tui.widgets.data_detail import diff_spans

    left, right = diff_spans("The sky is blue today.", "The sky is green today.")
    assert [text for text, changed in left if changed] == ["blue"]
    assert [text for text, changed in right if changed] == ["green"]
    assert "".join(text for text, _ in left) == "The sky is blue today."


def test_browse_index_flags_groups_and_length_buckets():
    from dpo_tutor.engine.data.browse import BrowseIndex
    from dpo_tutor.engine.data.load import load_triplets

    index = BrowseIndex(load_triplets().triplets)
    assert index.group_names == ["harmless", "helpful", "honest"]
    multi = index.filter(flag="multi-turn")
    assert multi and all(index.triplets[i].turns > 1 for i in multi)
    longer = set(index.filter(flag="chosen longer"))
    shorter = set(index.filter(flag="rejected longer"))
    assert longer and shorter and not longer & shorter and len(longer) + len(shorter) <= len(index)
    short = index.filter(length="short (< 300 chars)")
    assert short and all(
        index.rows[i].prompt_len + index.rows[i].chosen_len + index.rows[i].rejected_len < 300 for i in short
    )
    assert index.filter("CAKE") == [i for i, t in enumerate(index.triplets) if "cake" in
                                    (t.prompt_text + t.chosen + t.rejected).lower()]
