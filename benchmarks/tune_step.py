"""Tuner step speed: the wall time of one step of ``cptjax.Tuner`` (tell a trial, refit the
replay law on both losses, draw parameters, Thompson-sample the next trial over the candidates)
at 5, 10, 20 and 30 trials of a synthetic study (the replay preset's curves, 0.3% noise; 36
candidates, 600 CPT steps, one point every 20 steps, the first 5 trials at half length), against
the same step without the size buckets (``pad_to``: a new problem size compiles anew, as a plain
refit loop would at every trial). Ratio = baseline / median bucketed step at 21-30 trials. Goal:
seconds per step at 30 trials on the 2-core CPU.

    python benchmarks/tune_step.py
"""

import time
import warnings

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import cptjax  # noqa: E402
from cptjax.tuning import _tuner as _tune  # noqa: E402
from cptjax import schedules as S  # noqa: E402

LAW = cptjax.preset("replay")
PT = S.wsd(2000, 2e-4, warmup=100, decay=0.2, final=2e-5)
STEPS = 600
CANDS = [cptjax.Recipe(f, p, r, warmup=30) for f in ("cosine", "wsd")
         for p in (3e-5, 8e-5, 2e-4, 4e-4, 8e-4, 1.6e-3) for r in (0.0, 0.25, 0.75)]


def curves(trial, rng):
    lr, n_pt = S.join(PT, trial.schedule(PT[-1]))
    idx = np.arange(n_pt + 19, lr.size, 20)
    g, d = (np.asarray(v) * np.exp(0.003 * rng.standard_normal(idx.size))
            for v in cptjax.predict(LAW, lr, n_pt, idx=idx, replay=trial.recipe.replay))
    return cptjax.Run("log", np.zeros(1), 0, idx + 1 - n_pt, {"general_loss": g, "domain_loss": d})


def main():
    print(f"backend {jax.default_backend()}")
    rng = np.random.default_rng(0)
    tuner = cptjax.Tuner(pt=PT, candidates=CANDS, steps=STEPS, seed=0)
    times = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(1, 31):
            t0 = time.perf_counter()
            trial = tuner.ask()
            tuner.tell(trial, curves(trial, rng))
            tuner.best()
            times[k] = time.perf_counter() - t0
        # the baseline: the same step (trial 31) without size buckets, as a plain refit loop
        # would do it at every trial (a new problem size: a fresh compilation)
        real = _tune._bucket
        _tune._bucket = lambda n: None
        try:
            t0 = time.perf_counter()
            trial = tuner.ask()
            tuner.tell(trial, curves(trial, rng))
            tuner.best()
            base = time.perf_counter() - t0
        finally:
            _tune._bucket = real
    print(f"{'trials':>6} {'tuner step (s)':>15}")
    for k in (5, 10, 20, 30):
        print(f"{k:>6} {times[k]:>15.2f}")
    print(f"median step over trials 6-30: {np.median([times[k] for k in range(6, 31)]):.2f} s; "
          f"the step at 31 trials without buckets (a fresh compilation): {base:.2f} s; "
          f"ratio {base / np.median([times[k] for k in range(21, 31)]):.1f}x")


if __name__ == "__main__":
    main()
