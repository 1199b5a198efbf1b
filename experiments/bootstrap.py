"""Batch-fitting study: bootstrap over the points of a real curve (MultiPowerLaw 100M,
constant_24000, Eq. 1), all resamples in one batched fit, giving confidence intervals on the
parameters and on the predicted loss at 2x the fitted horizon (step 48000 of the same constant
schedule); compared with the fitter's Laplace (sandwich) standard errors and delta-method band."""

import dataclasses
import time

import numpy as np

import cptjax
from cptjax import schedules as S
from experiments.datasets import mpl_run
from experiments._common import DATA, args, plt, save


def main():
    a = args(__doc__)
    B = 100 if a.quick else 1000
    run = mpl_run(DATA, "100", "constant_24000")
    base = cptjax.make_problem(run, "pt", "loss")
    full = cptjax.fit(run, "pt", "loss")
    rng = np.random.default_rng(0)
    n = base.obs.size
    probs = []
    for _ in range(B):
        idx = rng.integers(0, n, n)
        # A resample reuses the base problem's areas: only the point selection changes.
        probs.append(dataclasses.replace(
            base, feats=tuple(f[idx] for f in base.feats), obs=base.obs[idx], mask=base.mask[idx],
            run_of_point=base.run_of_point[idx], idx_of_point=base.idx_of_point[idx]))
    t = time.perf_counter()
    fits = cptjax.fit_batch(probs)
    dt = time.perf_counter() - t
    names = list(full.params)
    P = np.array([[f.params[k] for k in names] for f in fits])
    ok = np.array([f.status == "converged" for f in fits])
    lr = S.constant(48000, 3e-4, warmup=2160)
    horizon = np.array([float(cptjax.predict(f.law, lr, idx=[47999])[0]) for f in np.array(fits)[ok]])
    y, lo, hi = full.band(lr, idx=np.array([47999]))
    res = {"resamples": B, "seconds": dt, "converged_fraction": ok.mean(),
           "params": {k: {"fit": full.params[k], "laplace_se": full.stderr[k],
                          "bootstrap_se": float(P[ok, i].std(ddof=1)),
                          "bootstrap_ci95": np.percentile(P[ok, i], [2.5, 97.5])}
                      for i, k in enumerate(names)},
           "loss_at_48000": {"fit": float(y[0]), "laplace_band95": [float(lo[0]), float(hi[0])],
                             "bootstrap_ci95": np.percentile(horizon, [2.5, 97.5])}}
    fig, ax = plt.subplots(1, len(names) + 1, figsize=(4 * (len(names) + 1), 3.4))
    for i, k in enumerate(names):
        ax[i].hist(P[ok, i], bins=40, density=True, alpha=0.6, label="bootstrap")
        xs = np.linspace(*np.percentile(P[ok, i], [0.1, 99.9]), 200)
        se = full.stderr[k]
        ax[i].plot(xs, np.exp(-0.5 * ((xs - full.params[k]) / se) ** 2) / (se * np.sqrt(2 * np.pi)),
                   label="Laplace")
        ax[i].set_title(k)
    ax[0].legend(fontsize=7)
    ax[-1].hist(horizon, bins=40, density=True, alpha=0.6)
    for v in (lo[0], hi[0]):
        ax[-1].axvline(v, color="C1")
    ax[-1].set_title("loss at step 48000 (2x horizon)")
    save(a.out, "bootstrap", res, fig)
    print(f"{B} resamples fitted in {dt:.1f} s ({B / dt:.0f} fits/s)")


if __name__ == "__main__":
    main()
