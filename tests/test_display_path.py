"""Paths shown on screen and in reports read the same on every machine: relative when that is shorter."""

from __future__ import annotations

import os

from dpo_tutor.engine.paths import display_path


def test_a_file_beside_the_checkout_reads_relative(tmp_path, monkeypatch):
    (tmp_path / "main").mkdir()
    monkeypatch.chdir(tmp_path / "main")
    source = str(tmp_path / "shared" / "data" / "x.jsonl.gz")
    assert display_path(source) == os.path.join("..", "shared", "data", "x.jsonl.gz")


def test_a_far_file_keeps_its_absolute_path_when_that_is_shorter(tmp_path, monkeypatch):
    deep = tmp_path.joinpath(*"abcdefghij")
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    monkeypatch.setenv("HOME", str(deep))
    assert display_path("/x.jsonl") == "/x.jsonl"


def test_home_reads_as_tilde(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir("/")
    source = str(tmp_path / "home" / "data" / "pairs.jsonl")
    assert display_path(source) == "~/data/pairs.jsonl"


def test_hub_names_and_urls_are_left_alone():
    assert display_path("Anthropic/hh-rlhf") == "Anthropic/hh-rlhf"
    assert display_path("https://example.org/a.jsonl") == "https://example.org/a.jsonl"
    assert display_path("") == ""
