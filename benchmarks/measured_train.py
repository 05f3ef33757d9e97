"""`dpo-tutor train` with measurement tools attached: the same command, its run handed the callbacks.

    python -m dpo_tutor.benchmarks.measured_train [--profile FIRST:COUNT:FILE] [--host-phases FILE]
        [--sync-debug FILE] -- <dpo-tutor train flags>

--profile: torch.profiler's operator tables for steps FIRST..FIRST+COUNT-1 (profiling.py);
--host-phases: the host's time per step by Trainer phase; --sync-debug: the calls that waited for the
GPU in steps 6-9 (host_phases.py). Switches (engine/switches.py) go in DPO_TUTOR_SWITCHES as usual.
"""

from __future__ import annotations

import argparse
import sys


def measurement_callbacks(profile: str = "", host_phases: str = "", sync_debug: str = "") -> list:
    """The callbacks for the given measurements (none for empty values)."""
    callbacks: list = []
    if profile:
        from dpo_tutor.benchmarks.profiling import from_spec

        callbacks.append(from_spec(profile))
    if host_phases:
        from dpo_tutor.benchmarks.host_phases import HostPhaseCallback

        callbacks.append(HostPhaseCallback(host_phases))
    if sync_debug:
        from dpo_tutor.benchmarks.host_phases import SyncDebugCallback

        callbacks.append(SyncDebugCallback(sync_debug))
    return callbacks


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    own, train_argv = argv[:split], argv[split + 1:]
    parser = argparse.ArgumentParser(prog="measured_train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="", metavar="FIRST:COUNT:FILE")
    parser.add_argument("--host-phases", default="", metavar="FILE")
    parser.add_argument("--sync-debug", default="", metavar="FILE")
    measures = parser.parse_args(own)
    from dpo_tutor.cli import build_parser
    from dpo_tutor.commands import train

    args = build_parser().parse_args(["train", *train_argv])
    callbacks = measurement_callbacks(measures.profile, measures.host_phases, measures.sync_debug)
    return train.run(args, callbacks=callbacks)


if __name__ == "__main__":
    raise SystemExit(main())
