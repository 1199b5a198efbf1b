"""Regenerate every experiment: ``python -m experiments.all [--quick] [--out DIR]``."""

import argparse
import importlib
import os
import sys
import time

SCRIPTS = ["paper_curves", "loss_potential", "peak_lr", "balance", "unseen_schedules",
           "optimal_schedule", "realdata", "bootstrap"]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    a = ap.parse_args()
    failed = []
    for name in SCRIPTS:
        t = time.perf_counter()
        sys.argv = [name, "--out", a.out] + (["--quick"] if a.quick else [])
        try:
            importlib.import_module(f"experiments.{name}").main()
        except Exception as e:  # report and go on: one broken study must not hide the others
            failed.append(name)
            print(f"{name}: FAILED: {e!r}")
        print(f"[{name}: {time.perf_counter() - t:.1f} s]")
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
