"""Does cptjax's fit reach the global optimum? Against the papers' own method: scipy L-BFGS-B from
128 starts (log-uniform over each parameter's range, signs free where the law allows), on the
same objective (Σ Huber on log residuals) with the exact JAX gradient, keeping the best.

Problems: every real data set in the project (the lab's default study, both losses, Eq. 4, the
shared-C law and the MPL-term law; from ../shared/data when present: Eq. 1 on the MultiPowerLaw training split and
on the OLMo ladder per validation domain, Eq. 4 on the OLMo cooldowns, as experiments/realdata.py
fits them), ``--synthetic N`` synthetic Eq. 4 problems (fit_batch.py's), and problems built to
be hard the way real CPT curves are: ``--hard N`` synthetic Eq. 4 problems with two runs only (one
constant CPT, one cosine CPT: only one anneals), parameters drawn wide (±30% around Setting A's,
E log-uniform in 5-200; a third of them with the shift near its bounds: β = 0.02 or B·β tiny),
heavy-tailed and correlated noise (Student-t with 3 degrees of freedom, AR(1) with ρ = 0.7, 0.3%
scale) and 40-120 points a run; ``--lab-subsets N``: random pairs and triples of the lab's runs,
both losses.
Prints, per problem, both objectives and whether cptjax's ≤ reference × (1 + 1e-6); the
fraction that is. Run: python benchmarks/reference.py [--synthetic 20] [--starts 128] [--no-shared]
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
import warnings

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from scipy.optimize import minimize  # noqa: E402

import cptjax  # noqa: E402
from cptjax.fitting import _problem as _fit  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# log10 ranges for the random starts (natural units); L0 relative to the lowest loss
RANGES = {"L0": (-1.0, 0.0), "A": (-2, 1), "alpha": (-1.5, 0.3), "C": (-2, 1), "C1": (-2, 1), "C2": (-2, 1),
          "B": (-2, 1), "E": (0, 4.5), "beta": (-2, 0.3), "S1pt": (-1, 1.5), "a1": (-3, 0), "a2": (-1, 1)}


def reference(prob, starts=128, seed=0):
    feats = tuple(map(jnp.asarray, prob.feats))
    obs, mask = jnp.asarray(prob.obs), jnp.asarray(prob.mask)
    f = jax.jit(jax.value_and_grad(lambda t: _fit.objective(prob.kind, prob.opts, t, feats, obs, mask)))
    cls, names, free = _fit._spec(prob.kind)
    rng = np.random.default_rng(seed)
    lo = float(prob.obs[prob.mask].min())
    best = np.inf
    for _ in range(starts):
        x = np.array([10 ** rng.uniform(*RANGES.get(n, (-1, 1))) for n in names])
        x[names.index("L0")] *= lo
        x = np.where(free, x * rng.choice([-1, 1], size=x.size), x)
        th0 = np.asarray(_fit._to_theta(prob.kind, jnp.asarray(x)))
        fun = lambda t: tuple(np.asarray(v, np.float64) for v in f(jnp.asarray(t)))
        try:
            r = minimize(fun, th0, jac=True, method="L-BFGS-B", options={"maxiter": 2000})
            if np.isfinite(r.fun):
                best = min(best, float(r.fun))
        except (ValueError, FloatingPointError):
            pass
    return best


def lab_problems():
    runs = [cptjax.load_run(p) for p in sorted(glob.glob(os.path.join(ROOT, "experiments/lab/runs/*.csv.gz")))]
    no_rep = [r for r in runs if (r.replay or 0) == 0 and not r.name.startswith(("constant_cosine_p0.002_r0_s1",))]
    out = []
    for law in ("cpt", "cpt-shared", "cpt-mpl"):
        for col in ("general_loss", "domain_loss"):
            out.append((f"lab {law} {col}", no_rep, law, col))
    return out


def hard_problems(n, seed=11):
    """``n`` hard synthetic Eq. 4 problems (module docstring), as (name, problem)."""
    from cptjax import schedules as S
    from cptjax.laws import areas_numpy

    rng = np.random.default_rng(seed)
    pair = cptjax.preset("setting-a")
    out = []
    for i in range(n):
        base = pair.general if i % 2 == 0 else pair.domain
        law = jax.tree.map(lambda v: float(v) * rng.uniform(0.7, 1.3), base)
        law = law.replace(E=float(np.exp(rng.uniform(np.log(5), np.log(200)))))
        if i % 3 == 1:
            law = law.replace(beta=0.02)
        elif i % 3 == 2:
            law = law.replace(B=float(law.B) * 0.02)
        T_pt = int(rng.integers(6000, 16000))
        pt = S.wsd(T_pt, 3e-4, warmup=200, decay=0.2, final=3e-5)
        runs = []
        for name, cpt in (("constant", S.constant(int(rng.integers(2000, 6000)), 1.5e-4, warmup=100)),
                          ("cosine", S.cosine(int(rng.integers(2000, 6000)), 1.5e-4, warmup=100, final=0.0))):
            lr, n_pt = S.join(pt, cpt)
            steps = np.unique(np.linspace(100, lr.size, int(rng.integers(40, 121))).astype(int))
            y = np.asarray(law(areas_numpy(lr, n_pt).at(steps - 1)))
            e = 0.003 * rng.standard_t(3, y.size) / np.sqrt(3)
            for k in range(1, e.size):
                e[k] = 0.7 * e[k - 1] + np.sqrt(1 - 0.49) * e[k]
            runs.append(cptjax.Run(name, lr, n_pt, steps, {"loss": y * np.exp(e)}))
        out.append((f"hard {i}", runs, "cpt", "loss"))
    return out


def lab_subsets(n, seed=5):
    """``n`` random pairs and triples of the lab's runs (both losses: 2n problems)."""
    runs = [cptjax.load_run(p) for p in sorted(glob.glob(os.path.join(ROOT, "experiments/lab/runs/*.csv.gz")))]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        pick = sorted(rng.choice(len(runs), size=2 + i % 2, replace=False))
        sub = [runs[j] for j in pick]
        for col in ("general_loss", "domain_loss"):
            out.append((f"lab subset {i} {col[:3]}", sub, "cpt", col))
    return out


def shared_problems():
    """Eq. 1 on the MultiPowerLaw training split (3 sizes) and on the OLMo ladder (5 sizes × 11
    validation domains), and Eq. 4 on the OLMo cooldown branches, as experiments/realdata.py fits
    them; none when ../shared/data is absent."""
    data = os.path.join(os.path.dirname(ROOT), "shared", "data")
    if not os.path.isdir(data):
        return []
    sys.path.insert(0, ROOT)
    from experiments.datasets import MPL_TRAIN, OLMO_DOMAINS, mpl_run, olmo_run

    out = [(f"MPL {s}M pt loss", [mpl_run(data, s, n) for n in MPL_TRAIN], "pt", "loss") for s in ("25", "100", "400")]
    for size in ("190M", "370M", "760M", "1B", "3B"):
        const, cos1 = olmo_run(data, size, "const", "10"), olmo_run(data, size, "cosine", "1")
        out += [(f"OLMo {size} pt {d}", [const, cos1], "pt", d) for d in OLMO_DOMAINS]
        branches = [olmo_run(data, size, "decay", m) for m in ("0.5", "1", "2", "5", "10")]
        out.append((f"OLMo {size} cpt c4_en cooldowns", [const] + branches, "cpt", "c4_en"))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--synthetic", type=int, default=0)
    ap.add_argument("--starts", type=int, default=128)
    ap.add_argument("--no-shared", action="store_true", help="skip ../shared/data's curves")
    ap.add_argument("--hard", type=int, default=0, metavar="N")
    ap.add_argument("--lab-subsets", type=int, default=0, metavar="N")
    ap.add_argument("--only-new", action="store_true", help="only the --synthetic/--hard/--lab-subsets problems")
    a = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    cases = [] if a.only_new else lab_problems() + ([] if a.no_shared else shared_problems())
    cases += hard_problems(a.hard) + lab_subsets(a.lab_subsets)
    if a.synthetic:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from fit_batch import make_runs, problems

        for i, p in enumerate(problems(make_runs(a.synthetic, seed=7))):
            cases.append((f"synthetic {i}", p, None, None))
    wins, stalled = 0, []
    print(f"{'problem':>34} {'cptjax':>12} {'scipy x' + str(a.starts):>12} {'ok':>4} {'cptjax s':>9} {'scipy s':>8}")
    for name, runs, law, col in cases:
        t = time.perf_counter()
        if law is None:
            prob = runs
            ours = cptjax.fit_batch([prob])[0].objective
        else:
            prob = _fit.make_problem(runs, law, col)
            res = cptjax.fit(runs, law, col, throw=False)
            ours = res.objective
            if res.status == "max-iterations":
                stalled.append(name)
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        ref = reference(prob, a.starts)
        t_ref = time.perf_counter() - t
        ok = ours <= ref * (1 + 1e-6)
        wins += ok
        print(f"{name:>34} {ours:12.8f} {ref:12.8f} {'yes' if ok else 'NO':>4} {t_ours:9.1f} {t_ref:8.1f}", flush=True)
    print(f"cptjax <= reference x (1 + 1e-6) in {wins}/{len(cases)} problems")
    if stalled:
        print(f"fits that ended at max-iterations: {stalled}")


if __name__ == "__main__":
    main()
