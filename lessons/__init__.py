"""Lesson content: Markdown with front matter, one file per lesson."""
