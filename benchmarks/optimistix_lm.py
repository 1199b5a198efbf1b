"""cptjax's Levenberg–Marquardt (cptjax/fitting/_solver.py) against optimistix.LevenbergMarquardt, both
vmapped over the same problems from the same starts, on the same objective.

Problems: benchmarks/fit_batch.py's synthetic Eq. 4 problems (3 runs × 250 points). Start: each
problem's variable-projection start. Objective: Σ Huber_δ(log L̂ − log L), δ = 1e-3; optimistix
minimises a sum of squares, so it gets the residuals ψ̃(r) = r inside δ and
sign(r)·sqrt(2δ|r| − δ²) outside, whose ½Σψ̃² is exactly the Huber sum (same optimum, same
objective). Both get the Jacobian by forward-mode autodiff (cptjax's own closed-form Eq. 4
Jacobian is timed as a third column). Up to 200 steps each.

Columns: problems/s (best of 3 after compiling), mean steps, the fraction of problems where the
solver's objective ≤ the other's × (1 + 1e-6), and the fraction reported converged.
Needs optimistix (``pip install optimistix``; not a cptjax dependency).

    python benchmarks/optimistix_lm.py [--n 256] [--rtol 1e-8 --atol 1e-10]
"""

import argparse
import functools
import os
import sys

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optimistix as optx  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import best_of  # noqa: E402
from fit_batch import make_runs, problems  # noqa: E402

from cptjax.fitting import _problem as _fit  # noqa: E402
from cptjax.fitting._solver import huber, levenberg_marquardt  # noqa: E402

DELTA = 1e-3


def _resid(th, feats, obs, mask):
    return _fit._residuals("cpt", (), th, feats, obs, mask)


def ours(th0, feats, obs, mask, closed_form=False):
    if closed_form:
        inv = dict(log_s1=jnp.log(feats[0] + feats[1]), log_obs=jnp.log(obs))
        rj = lambda th: _fit._cpt_residuals_and_jacobian_t(th, feats, obs, mask, **inv)
    else:
        r = functools.partial(_resid, feats=feats, obs=obs, mask=mask)
        rj = lambda th: (r(th), jax.jacfwd(r)(th).T)
    th, f, st, it, _, _ = levenberg_marquardt(rj, th0, DELTA, 200)
    return th, f, st == 0, it


def theirs(th0, feats, obs, mask, rtol, atol):
    def fn(th, _):
        r = _resid(th, feats, obs, mask)
        a = jnp.abs(r)
        return jnp.where(a <= DELTA, r, jnp.sign(r) * jnp.sqrt(jnp.maximum(2 * DELTA * a - DELTA**2, 0.0)))

    sol = optx.least_squares(fn, optx.LevenbergMarquardt(rtol=rtol, atol=atol), th0, max_steps=200,
                             throw=False, options={"jac": "fwd"})
    th = sol.value
    f = jnp.sum(huber(_resid(th, feats, obs, mask), DELTA))
    return th, f, sol.result == optx.RESULTS.successful, sol.stats["num_steps"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--rtol", type=float, default=1e-8)
    ap.add_argument("--atol", type=float, default=1e-10)
    a = ap.parse_args()
    probs = problems(make_runs(a.n, seed=3))
    feats = tuple(jnp.asarray(np.stack([p.feats[j] for p in probs])) for j in range(len(probs[0].feats)))
    obs, mask = jnp.asarray(np.stack([p.obs for p in probs])), jnp.asarray(np.stack([p.mask for p in probs]))
    th0 = jax.vmap(lambda f, o, m: _fit._vp_starts("cpt", (), f, o, m, 1)[0])(feats, obs, mask)
    runs = {
        "cptjax LM (jacfwd)": jax.jit(jax.vmap(ours)),
        "cptjax LM (closed-form J)": jax.jit(jax.vmap(functools.partial(ours, closed_form=True))),
        "optimistix LM (jacfwd)": jax.jit(jax.vmap(functools.partial(theirs, rtol=a.rtol, atol=a.atol))),
    }
    out = {}
    for name, f in runs.items():
        go = lambda: jax.block_until_ready(f(th0, feats, obs, mask))
        t = best_of(go, reps=3)
        out[name] = (t, *map(np.asarray, go()))
    ref = {k: v[2] for k, v in out.items()}
    print(f"{a.n} problems, backend {jax.default_backend()}; optimistix rtol={a.rtol:g} atol={a.atol:g}")
    print(f"{'solver':>28} {'prob/s':>8} {'steps':>6} {'<= other':>9} {'converged':>10}")
    other = {"cptjax LM (jacfwd)": "optimistix LM (jacfwd)", "cptjax LM (closed-form J)": "optimistix LM (jacfwd)",
             "optimistix LM (jacfwd)": "cptjax LM (jacfwd)"}
    for name, (t, th, f, conv, it) in out.items():
        nw = np.mean(f <= ref[other[name]] * (1 + 1e-6))
        print(f"{name:>28} {a.n / t:>8.1f} {np.mean(it):>6.1f} {nw:>9.3f} {np.mean(conv):>10.3f}")


if __name__ == "__main__":
    main()
