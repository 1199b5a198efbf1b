"""Batched fitting throughput: cptjax.fit_batch against the way the papers fit.

Problems (``--problems``, several may be given and are reported side by side): synthetic Eq. 4
problems, one validation set each, 3 runs of 250 logged points, 0.2% multiplicative noise:

- ``own`` (the benchmark's first set): the Setting A general or domain law, every parameter
  perturbed by ±10%; PT of 8K-20K steps, WSD; CPT of 4K-10K steps, cosine or linear, peak
  5e-5-2e-4.
- ``wide``: every parameter ±30% around Setting A's, E log-uniform in 5-200; the same schedules.
- ``schedules``: the ``own`` laws on other schedules: a WSD PT with a 20% cooldown to 10% of its
  peak, then constant, cosine and WSD CPT (one run each) at half the PT peak.
- ``wide-schedules``: both (the issue's independent set).

Baseline ("paper"): the papers' method — scipy L-BFGS-B with finite-difference gradients on a
numpy objective (the same Huber δ = 1e-3 on log residuals, same parameterisation), from a
32-point start grid, one problem at a time — timed on ``--paper-max`` problems and extrapolated.

Columns: problems/s of cptjax end to end (make_problem + fit_batch) in a warm process (best of
3 after a compiling call), and of fit_batch alone on the built problems ("fit only"); with
``--cold`` also in a fresh process with an empty compilation
cache and with a warm one (make_problem, compilation and fit; the interpreter's start and
``import cptjax`` reported apart); the paper method's problems/s; the ratios; "no worse" = the
fraction of the paper-timed problems where cptjax's objective ≤ the paper method's × (1 + 1e-6).

``--large N… --pool P`` (for accelerators: N = 10⁴…10⁶): problem i keeps the logged points of
pool problem i mod P (P distinct schedules from the set's generator) and gets a law drawn afresh
by the same generator, its observations computed from the law's formula, with fresh 0.2% noise;
``fit_batch`` alone is timed (``--chunk`` sizes compared at the smallest N, each after a first,
compiling call on the same problems; larger N reuse those shapes), and the wall time stops at ``--budget-s``.

The global-optimum check (128-start scipy with the exact gradient) on N of these synthetic
problems and every real data set is benchmarks/reference.py, which imports this file's generators
(this file imports nothing from it).

    python benchmarks/fit_batch.py [--sizes 10 100 1000] [--paper-max 5] [--cold]
    python benchmarks/reference.py --synthetic 200
"""

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time

import jax

jax.config.update("jax_enable_x64", True)
import numpy as np  # noqa: E402
from scipy.optimize import minimize  # noqa: E402

import cptjax  # noqa: E402
from cptjax import schedules as S  # noqa: E402
from cptjax.laws import areas_numpy  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def _law(rng, i, kind):
    pair = cptjax.preset("setting-a")
    base = pair.general if i % 2 == 0 else pair.domain
    if kind in ("own", "schedules"):
        return jax.tree.map(lambda v: float(v) * rng.uniform(0.9, 1.1), base)
    law = jax.tree.map(lambda v: float(v) * rng.uniform(0.7, 1.3), base)
    return law.replace(E=float(np.exp(rng.uniform(np.log(5), np.log(200)))))


def _schedule(rng, j, kind):
    T_pt, T_cpt = int(rng.integers(8000, 20000)), int(rng.integers(4000, 10000))
    if kind in ("own", "wide"):
        pt = S.wsd(T_pt, 2e-4, warmup=300, decay=float(rng.uniform(0.1, 0.3)), final=2e-5)
        cpt = (S.cosine if rng.uniform() < 0.5 else S.linear)(T_cpt, float(rng.uniform(5e-5, 2e-4)),
                                                              warmup=200, final=0.0)
    else:
        pt = S.wsd(T_pt, 2e-4, warmup=300, decay=0.2, final=2e-5)
        cpt = (S.constant(T_cpt, 1e-4, warmup=200), S.cosine(T_cpt, 1e-4, warmup=200, final=0.0),
               S.wsd(T_cpt, 1e-4, warmup=200, decay=0.2, final=0.0))[j % 3]
    return S.join(pt, cpt)


def make_runs(n, seed=0, kind="own"):
    """``n`` problems' runs: [[(lr, n_pt, steps, loss), ×3], ...] (numpy, picklable); ``kind``:
    ``own``, ``wide``, ``schedules`` or ``wide-schedules`` (module docstring)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        law = _law(rng, i, kind)
        runs = []
        for j in range(3):
            lr, n_pt = _schedule(rng, j, kind)
            steps = np.unique(np.linspace(200, lr.size, 250).astype(int))
            y = np.asarray(law(areas_numpy(lr, n_pt).at(steps - 1)))
            runs.append((lr, n_pt, steps, y * np.exp(rng.normal(0, 0.002, y.size))))
        out.append(runs)
    return out


NAMES = ("L0", "A", "alpha", "C1", "C2", "B", "E", "beta")


def _law_matrix(rng, n, kind):
    """(n, 8) natural Eq. 4 parameters drawn as :func:`_law` draws them (vectorised)."""
    pair = cptjax.preset("setting-a")
    base = np.array([[float(getattr(law, k)) for k in NAMES] for law in (pair.general, pair.domain)])
    x = base[np.arange(n) % 2]
    w = 0.1 if kind in ("own", "schedules") else 0.3
    x = x * rng.uniform(1 - w, 1 + w, x.shape)
    if w == 0.3:
        x[:, 6] = np.exp(rng.uniform(np.log(5), np.log(200), n))
    return x


@jax.jit
def _eq4(x, s1p, s1c, s2p, s2c, key):
    """Eq. 4 (the papers' objective's formula) at the points, for (n, 8) parameters x, with 0.2%
    multiplicative noise."""
    L0, A, al, C1, C2, B, E, be = (x[:, k:k + 1] for k in range(8))
    y = L0 + A * (s1p + s1c) ** -al - C1 * s2p - C2 * s2c + B * (1 - (1 + E * s1c) ** -be)
    return y * jax.numpy.exp(0.002 * jax.random.normal(key, y.shape, y.dtype))


def tiled(pool, n, seed, kind):
    """``n`` problems on the pool's points with laws drawn afresh (module docstring)."""
    import dataclasses

    rng, key = np.random.default_rng(seed), jax.random.key(seed)
    assert all(p.mask.all() for p in pool)  # unpadded: a problem's observations are a row of y
    feats = [jax.numpy.asarray(np.stack([p.feats[k] for p in pool])) for k in range(4)]
    out = []
    for b0 in range(0, n, 100_000):
        m, key = min(100_000, n - b0), jax.random.fold_in(key, b0)
        idx = (b0 + np.arange(m)) % len(pool)
        y = np.asarray(_eq4(_law_matrix(rng, m, kind), *(f[idx] for f in feats), key))
        out += [dataclasses.replace(pool[j], obs=y[i]) for i, j in enumerate(idx)]
    return out


def large(args):
    """fit_batch alone at large N (accelerators): chunk sizes compared at the smallest N, then the
    best at every N until ``--budget-s``."""
    t_start = time.perf_counter()
    for kind in args.problems:
        pool = problems(make_runs(args.pool, seed=0, kind=kind))
        n_max = max(args.large)
        probs = tiled(pool, n_max, 1, kind)
        print(f"\nproblems: {kind} (pool {args.pool}, built in {time.perf_counter() - t_start:.0f} s)", flush=True)
        print(f"{'N':>8} {'chunk':>6} {'first call s':>13} {'fit s':>7} {'problems/s':>11} {'converged':>10} "
              f"{'mean iters':>10}", flush=True)
        best = None
        for n in sorted(args.large):
            first = n == min(args.large)
            for chunk in (args.chunk if best is None else [best[0]]):
                if best and time.perf_counter() - t_start + 1.5 * n / best[1] > args.budget_s:
                    print(f"{n:>8} {chunk:>6} skipped: would end past --budget-s {args.budget_s:g}", flush=True)
                    continue
                t0 = time.perf_counter()
                if first:  # the same shapes (chunk, chunk/4, chunk/16) serve every larger N
                    cptjax.fit_batch(probs[:n], chunk=chunk)
                t1 = time.perf_counter()
                res = cptjax.fit_batch(probs[:n], chunk=chunk)
                t = time.perf_counter() - t1
                conv = np.mean([r.status == "converged" for r in res])
                its = np.mean([r.iterations for r in res])
                print(f"{n:>8} {chunk:>6} {t1 - t0:>13.1f} {t:>7.1f} {n / t:>11.0f} {conv:>10.4f} {its:>10.1f}",
                      flush=True)
                if best is None or n / t > best[1]:
                    best = (chunk, n / t)
        if args.profile and time.perf_counter() - t_start + 3 * args.profile / best[1] < args.budget_s:
            import cProfile
            import pstats

            print(f"\nwhere the time goes: fit_batch of {args.profile} problems, chunk {best[0]} (cProfile)")
            prof = cProfile.Profile()
            prof.runcall(cptjax.fit_batch, probs[:args.profile], chunk=best[0])
            pstats.Stats(prof).sort_stats("tottime").print_stats(14)


def problems(runsets):
    return [cptjax.make_problem([cptjax.Run("r", lr, n, st, {"loss": y}) for lr, n, st, y in rs], "cpt", "loss")
            for rs in runsets]


def end_to_end(runsets):
    return cptjax.fit_batch(problems(runsets))


# -- the papers' method ---------------------------------------------------------------------------
def _np_objective(theta, feats, obs):
    lL0, lA, lal, lC1, lC2, B, lE, lbe = theta
    s1p, s1c, s2p, s2c = feats[:4]
    be = np.exp(lbe)
    with np.errstate(all="ignore"):
        pred = (np.exp(lL0) + np.exp(lA) * (s1p + s1c) ** -np.exp(lal) - np.exp(lC1) * s2p - np.exp(lC2) * s2c
                + B * (1 - (1 + np.exp(lE) * s1c) ** -be))
        r = np.log(pred) - np.log(obs)
        a = np.abs(r)
        f = np.sum(np.where(a <= 1e-3, 0.5 * r * r, 1e-3 * (a - 0.5e-3)))
    return f if np.isfinite(f) else 1e30


PAPER_GRID = list(itertools.product((0.3, 0.7), (0.1, 1.0), (0.1, 1.0), (-0.5, 0.5), (30.0, 3000.0)))  # 32


def paper_fit(prob):
    """scipy L-BFGS-B, finite-difference gradients, 32 starts; the best objective."""
    obs = prob.obs[prob.mask]
    feats = [f[prob.mask] for f in prob.feats]
    best = np.inf
    for al, c1, c2, b, e in PAPER_GRID:
        th0 = np.array([np.log(0.95 * obs.min()), np.log(0.5), np.log(al), np.log(c1), np.log(c2), b,
                        np.log(e), np.log(0.3)])
        r = minimize(_np_objective, th0, args=(feats, obs), method="L-BFGS-B", options={"maxiter": 1000})
        best = min(best, float(r.fun))
    return best


# -- a fresh process -------------------------------------------------------------------------------
def child(path, cache):
    """Run in a fresh process: time make_problem + compile + fit of the saved runs."""
    t0 = time.perf_counter()
    os.environ["CPTJAX_CACHE_DIR"] = cache

    jax.config.update("jax_enable_x64", True)
    cptjax.enable_compilation_cache()  # what `cptjax fit` does: float64, the persistent compilation cache
    import pickle

    with open(path, "rb") as fh:
        runsets = pickle.load(fh)
    t1 = time.perf_counter()
    res = end_to_end(runsets)
    t2 = time.perf_counter()
    print(json.dumps({"startup": t1 - t0, "fit": t2 - t1, "converged": sum(r.status == "converged" for r in res)}))


def cold(runsets):
    """(empty-cache, warm-cache) seconds of a fresh process's make_problem + compile + fit, and
    the import time."""
    import pickle

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "runs.pkl")
        with open(path, "wb") as fh:
            pickle.dump(runsets, fh)
        out = []
        for _ in range(2):  # the first fills the cache, the second finds it
            p = subprocess.run([sys.executable, __file__, "--child", path, os.path.join(tmp, "cache")],
                               capture_output=True, text=True, check=True)
            out.append(json.loads(p.stdout.strip().splitlines()[-1]))
    return out[0]["fit"], out[1]["fit"], out[1]["startup"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--problems", nargs="+", default=["own"], choices=["own", "wide", "schedules", "wide-schedules"])
    ap.add_argument("--paper-max", type=int, default=5)
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--large", type=int, nargs="+", metavar="N")
    ap.add_argument("--pool", type=int, default=1000)
    ap.add_argument("--chunk", type=int, nargs="+", default=[512, 4096, 16384])
    ap.add_argument("--budget-s", type=float, default=400)
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="with --large: profile a fit of N problems")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(*args.child)
    print(f"backend {jax.default_backend()}, {jax.local_device_count()} device(s): {jax.devices()[0].device_kind}")
    if args.large:
        return large(args)
    for kind in args.problems:
        print(f"\nproblems: {kind}")
        run_set(args, make_runs(max(args.sizes), seed=0, kind=kind))


def run_set(args, runsets):
    m = min(args.paper_max, max(args.sizes))
    probs = problems(runsets[:m])
    t = time.perf_counter()
    paper = [paper_fit(p) for p in probs]
    paper_rate = m / (time.perf_counter() - t)
    print(f"paper method: {paper_rate:.3f} problems/s ({m} problems)")
    head = f"{'N':>6} {'warm prob/s':>12} {'x paper':>8} {'fit only':>9} {'x paper':>8}"
    if args.cold:
        head += f" {'cold empty':>11} {'cold cached':>12} {'x paper':>8} {'import s':>9}"
    print(head + f" {'no worse':>9} {'converged':>10}")
    for n in args.sizes:
        res = end_to_end(runsets[:n])  # compiles for this batch's shapes
        t_warm = min(_timed(lambda: end_to_end(runsets[:n])) for _ in range(3))
        built = problems(runsets[:n])
        t_fit = min(_timed(lambda: cptjax.fit_batch(built)) for _ in range(3))
        line = (f"{n:>6} {n / t_warm:>12.1f} {n / t_warm / paper_rate:>8.0f} {n / t_fit:>9.1f} "
                f"{n / t_fit / paper_rate:>8.0f}")
        if args.cold:
            t_empty, t_cached, startup = cold(runsets[:n])
            line += f" {n / t_empty:>11.1f} {n / t_cached:>12.1f} {n / t_cached / paper_rate:>8.0f} {startup:>9.1f}"
        k = min(n, m)
        nw = np.mean([r.objective <= s * (1 + 1e-6) for r, s in zip(res[:k], paper[:k])])
        conv = np.mean([r.status == "converged" for r in res])
        print(line + f" {nw:>9.3f} {conv:>10.3f}", flush=True)


def _timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
