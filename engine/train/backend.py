"""Kept only for tui/context.py, which imports `gpu_visible` from here: the machine's facts live in
machine.py and the backend choice in plan.py. Remove this file once tui/ imports machine.gpu_visible."""

from .machine import gpu_visible

__all__ = ["gpu_visible"]
