"""Errors a person can act on.

Every failure the user can cause (bad data, a bad flag, a missing model) is raised as a `UserError`:
one clear sentence, optionally where (file, line, field) and a remedy. The CLI prints it as one line
and exits 2; the UI shows it as a notification. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment, told in one line."""

    def __init__(self, message: str, *, where: str | None = None, remedy: str | None = None):
        self.message = message
        self.where = where
        self.remedy = remedy
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.remedy:
            text += f" ({self.remedy})"
        # A message quoting a library's multi-line error still prints as one line.
        return " ".join(part.strip() for part in text.splitlines() if part.strip())


class DataError(UserError):
    """The preference data cannot be read or used."""


class ConfigError(UserError):
    """A training configuration value is invalid."""


class ModelError(UserError):
    """The model cannot be found or loaded."""
