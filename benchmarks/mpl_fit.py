"""The MPL law fitted to the MultiPowerLaw data (upstream training split, 3 runs, ~2.8M (point,
decrement) pairs per size): ``cptjax.fit`` as it runs by default (the search on a thinned copy,
polished on every point) against the baseline ``coarse=False`` (the same search on every point),
in a warm process (best of 3 after a compiling call); with ``--cold`` also a fresh process with
the compilation cache empty and warm (``cptjax fit`` sets the cache up the same way). Prints the
seconds, the ratio and both objectives (they should agree to ~1e-11).

    python benchmarks/mpl_fit.py [--sizes 25 100 400] [--cold]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _timing import best_of  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")


def runs(size):
    from experiments.datasets import MPL_TRAIN, mpl_run

    return [mpl_run(DATA, size, n) for n in MPL_TRAIN]


def fit(size, coarse=None):
    import cptjax

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return cptjax.fit(runs(size), "mpl", "loss", coarse=coarse)


def child(size, cache):
    """A fresh process: import, data, compile and fit of one size."""
    t0 = time.perf_counter()
    os.environ["CPTJAX_CACHE_DIR"] = cache

    jax.config.update("jax_enable_x64", True)
    cptjax.enable_compilation_cache()
    res = fit(size)
    print(json.dumps({"seconds": time.perf_counter() - t0, "objective": res.objective}))


def cold(size):
    with tempfile.TemporaryDirectory() as tmp:
        out = []
        for _ in range(2):  # the first fills the cache, the second finds it
            p = subprocess.run([sys.executable, __file__, "--child", size, os.path.join(tmp, "cache")],
                               capture_output=True, text=True, check=True)
            out.append(json.loads(p.stdout.strip().splitlines()[-1])["seconds"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", default=["25", "100", "400"])
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(*args.child)
    import jax

    jax.config.update("jax_enable_x64", True)
    head = f"{'size':>5} {'full search s':>14} {'thinned s':>10} {'ratio':>6} {'objective full':>15} {'thinned':>15}"
    print(head + (f" {'cold empty s':>13} {'cold cached s':>14}" if args.cold else ""))
    for size in args.sizes:
        r_full, r_thin = fit(size, False), fit(size)
        t_full = best_of(lambda: fit(size, False), reps=3)
        t_thin = best_of(lambda: fit(size), reps=3)
        line = (f"{size + 'M':>5} {t_full:14.2f} {t_thin:10.2f} {t_full / t_thin:5.1f}x "
                f"{r_full.objective:15.10e} {r_thin.objective:15.10e}")
        if args.cold:
            line += " {:13.2f} {:14.2f}".format(*cold(size))
        print(line, flush=True)


if __name__ == "__main__":
    main()
