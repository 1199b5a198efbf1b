"""Tuner step speed: the wall time of one step of ``cptjax.Tuner`` (tell a trial, refit the
replay law on both losses, draw parameters, Thompson-sample the next trial over the candidates)
after 10, 20 and 30 trials of a synthetic study (the replay preset's curves, 0.3% noise; 36
candidates, 600 CPT steps, one point every 20 steps), against the same step without the size
buckets (``pad_to``: every new problem size compiles anew) — the baseline a plain refit loop
would be. Ratio = baseline / bucketed. Goal: seconds per step at 30 trials on the 2-core CPU.

    python benchmarks/tune_step.py
"""

import time
import warnings

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import cptjax  # noqa: E402
from cptjax import _tune  # noqa: E402
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


def run(bucketed: bool, marks=(10, 20, 30)):
    rng = np.random.default_rng(0)
    tuner = cptjax.Tuner(pt=PT, candidates=CANDS, steps=STEPS, seed=0)
    real = _tune._bucket
    if not bucketed:
        _tune._bucket = lambda n: None  # no padding: a compilation per new problem size
    out = {}
    try:
        for k in range(1, max(marks) + 1):
            t0 = time.perf_counter()
            trial = tuner.ask()
            tuner.tell(trial, curves(trial, rng))
            tuner.best()
            if k in marks:
                out[k] = time.perf_counter() - t0
    finally:
        _tune._bucket = real
    return out


def main():
    print(f"backend {jax.default_backend()}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = run(True)
        slow = run(False)
    print(f"{'trials':>6} {'tuner step (s)':>15} {'no buckets (s)':>15} {'ratio':>6}")
    for k in fast:
        print(f"{k:>6} {fast[k]:>15.2f} {slow[k]:>15.2f} {slow[k] / fast[k]:>6.1f}")


if __name__ == "__main__":
    main()
