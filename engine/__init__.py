"""The dpo-tutor engine: data, models, training, evaluation, generation and runs.

It knows nothing of the terminal UI (an import-linter contract and a test enforce it) and is usable
headless and from Python. Importing this package is cheap: heavy libraries (torch, transformers, TRL)
are imported inside the functions that need them.
"""
