"""The app shell: modes, help, palette."""

from __future__ import annotations

from dpo_tutor.tui.app import AREAS, DpoTutorApp
from dpo_tutor.tui.context import AppContext


async def test_number_keys_switch_between_all_five_areas(tmp_path):
    app = DpoTutorApp(AppContext(runs_dir=tmp_path))
    async with app.run_test(size=(100, 30)) as pilot:
        for key, mode in zip("12345", AREAS, strict=False):
            await pilot.press(key)
            await pilot.pause()
            assert app.current_mode == mode


async def test_help_lists_the_app_bindings(tmp_path):
    app = DpoTutorApp(AppContext(runs_dir=tmp_path))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        from dpo_tutor.tui.screens.help import HelpScreen

        assert isinstance(app.screen, HelpScreen)
        text = app.screen.text
        for label in ("Learn", "Data", "Train", "Evaluate", "Chat", "Quit"):
            assert label in text
        # the area's own keys come first, in words a person reads
        assert text.splitlines()[0].startswith("Learn: this area's keys")
        assert "next lesson" in text.lower().split("Everywhere")[0]
        assert "right_square_bracket" not in text and "question_mark" not in text
        assert "  ]" in text and "  ?" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_escape_leaves_a_text_field_so_number_keys_switch_areas_again(tmp_path):
    from textual.widgets import Input

    app = DpoTutorApp(AppContext(runs_dir=tmp_path))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        field = app.screen.query(Input).first()
        field.focus()
        await pilot.pause()
        await pilot.press("1")  # typed into the field, not a mode switch
        await pilot.pause()
        assert app.current_mode == "train" and "1" in field.value
        await pilot.press("escape", "1")
        await pilot.pause()
        assert app.current_mode == "learn"
