"""dpo-tutor: learn Direct Preference Optimization in the terminal, and run it for real."""

__version__ = "0.1.0"
