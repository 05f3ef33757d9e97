"""Benchmarks: scripts that print tables (results in BENCHMARKS.md), the `dpo-tutor bench` pipelines
(bench.py) and the measurement tools a run is handed from outside (profiling.py, host_phases.py,
measured_train.py). Installed as `dpo_tutor.benchmarks`; nothing in the engine or the UI imports it."""
