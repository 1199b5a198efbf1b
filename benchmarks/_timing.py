"""Timing helper shared by the benchmark scripts."""

import time


def best_of(f, reps=5):
    """Best wall time of ``reps`` calls after one warm-up call (compilation excluded)."""
    f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return min(ts)
