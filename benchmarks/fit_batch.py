"""Batched fitting throughput: cptjax.fit_batch vs a scipy per-problem L-BFGS-B loop.

Problems: synthetic CPT runs (Setting A law, both validation sets, 2-4 runs of ~100 points each,
~300 points per problem, 0.2% noise, random law perturbations). Same objective (Huber δ=1e-3 on
log residuals), same multi-start grid. scipy gets the exact JAX gradient (jitted, per problem).
scipy is timed on min(N, --scipy-max) problems and its throughput extrapolated.
Prints problems/s, the ratio, and the fraction of problems where cptjax's objective is no worse
(≤ scipy × (1 + 1e-6)).

    python benchmarks/fit_batch.py [--sizes 10 100 1000] [--scipy-max 40]
"""

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)
import numpy as np  # noqa: E402
from scipy.optimize import minimize  # noqa: E402

import cptjax  # noqa: E402
from cptjax import _fit  # noqa: E402
from cptjax import schedules as S  # noqa: E402


def make_problems(n, seed=0):
    rng = np.random.default_rng(seed)
    pair = cptjax.preset("setting-a")
    out = []
    for i in range(n):
        law = pair.general if i % 2 == 0 else pair.domain
        law = jax.tree.map(lambda v: float(v) * rng.uniform(0.9, 1.1), law)
        runs = []
        for _ in range(int(rng.integers(2, 5))):
            T_pt, T_cpt = int(rng.integers(8000, 20000)), int(rng.integers(4000, 10000))
            pt = S.wsd(T_pt, 2e-4, warmup=300, decay=float(rng.uniform(0.1, 0.3)), final=2e-5)
            cpt = (S.cosine if rng.uniform() < 0.5 else S.linear)(T_cpt, float(rng.uniform(5e-5, 2e-4)),
                                                                  warmup=200, final=0.0)
            lr, n_pt = S.join(pt, cpt)
            steps = np.linspace(200, lr.size, 100).astype(int)
            padded = np.concatenate([lr, np.zeros((1 << (lr.size - 1).bit_length()) - lr.size)])
            y = np.asarray(law(cptjax.areas(padded, n_pt).at(steps - 1)))  # few compilations
            runs.append(cptjax.Run("r", lr, n_pt, steps, {"loss": y * np.exp(rng.normal(0, 0.002, y.size))}))
        out.append(cptjax.make_problem(runs, "cpt", "loss", pad_to=400))
    return out


def scipy_fit(prob):
    f = jax.jit(jax.value_and_grad(lambda t: _fit.objective("cpt", "general", t, prob.feats,
                                                             prob.obs, prob.mask)))
    best = np.inf
    for x0 in np.asarray(_fit._to_theta("cpt", _fit.starts("cpt", prob.obs[prob.mask]))):
        r = minimize(lambda t: tuple(map(np.asarray, f(t))), x0, jac=True, method="L-BFGS-B",
                     options={"maxiter": 1000})
        best = min(best, float(r.fun) if np.isfinite(r.fun) else np.inf)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--scipy-max", type=int, default=40)
    args = ap.parse_args()
    print(f"backend {jax.default_backend()}, {jax.local_device_count()} device(s)")
    print(f"{'N':>6} {'cptjax prob/s':>14} {'scipy prob/s':>13} {'ratio':>7} {'no worse':>9} {'converged':>10}")
    warm = make_problems(8, seed=99)
    cptjax.fit_batch(warm, chunk=8)
    for n in args.sizes:
        probs = make_problems(n, seed=n)
        chunk = min(n, 128)
        cptjax.fit_batch(probs[:chunk], chunk=chunk)  # compile for this chunk shape
        t = time.perf_counter()
        res = cptjax.fit_batch(probs, chunk=chunk)
        t_ours = time.perf_counter() - t
        m = min(n, args.scipy_max)
        t = time.perf_counter()
        ref = [scipy_fit(p) for p in probs[:m]]
        t_sp = (time.perf_counter() - t) / m * n
        nw = np.mean([r.objective <= s * (1 + 1e-6) for r, s in zip(res[:m], ref)])
        conv = np.mean([r.status == "converged" for r in res])
        print(f"{n:>6} {n / t_ours:>14.1f} {n / t_sp:>13.2f} {t_sp / t_ours:>7.1f} {nw:>9.3f} {conv:>10.3f}",
              flush=True)


if __name__ == "__main__":
    main()
