"""Throughput of areas + law (steps/s) against a numpy/scipy baseline.

Baseline: scipy.signal.lfilter for the momentum recurrence (a C loop) plus numpy cumsums and the
Eq. 4 law in numpy, float64. cptjax: jitted areas + CPTLaw, float64: vmap over the batch with each scan variant, and
cptjax.areas called on the (B, T) batch itself (lax.map over rows on CPU).
Prints steps/s and the ratio cptjax / baseline (>1 means cptjax is faster).

    python benchmarks/areas.py [--max-exp 7]
"""

import argparse

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from scipy.signal import lfilter  # noqa: E402

import cptjax  # noqa: E402
from _timing import best_of  # noqa: E402

P = cptjax.preset("setting-a").domain


def numpy_baseline(lr, n_pt, lam=0.999):
    d = np.concatenate([[0.0], lr[:-1] - lr[1:]])
    m = lfilter([1.0], [1.0, -lam], d)
    in_pt = np.arange(lr.size) < n_pt
    s1p, s1c = np.cumsum(np.where(in_pt, lr, 0)), np.cumsum(np.where(in_pt, 0, lr))
    s2p, s2c = np.cumsum(np.where(in_pt, m, 0)), np.cumsum(np.where(in_pt, 0, m))
    return (P.L0 + P.A * (s1p + s1c) ** -P.alpha - P.C1 * s2p - P.C2 * s2c
            + P.B * (1 - (1 + P.E * s1c) ** -P.beta))



def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-exp", type=int, default=7)
    args = ap.parse_args()
    print(f"backend: {jax.default_backend()}, devices: {jax.devices()}")
    print(f"{'T':>9} {'batch':>5} {'numpy steps/s':>14} {'scan steps/s':>13} {'ratio':>6} "
          f"{'assoc steps/s':>14} {'ratio':>6} {'2-D input':>10} {'ratio':>6}")
    for e in range(4, args.max_exp + 1):
        T = 10**e
        for batch in (1, 16) if T <= 10**6 else (1,):
            rng = np.random.default_rng(0)
            lrs = np.abs(rng.normal(2e-4, 5e-5, (batch, T)))
            n_pt = T // 2
            t_np = best_of(lambda: [numpy_baseline(lr, n_pt) for lr in lrs], 3 if T >= 10**6 else 5)
            out = []
            for method in ("scan", "associative"):
                f = jax.jit(jax.vmap(lambda lr: P(cptjax.areas(lr, n_pt, method=method))))
                x = jnp.asarray(lrs)
                t = best_of(lambda: f(x).block_until_ready(), 3 if T >= 10**6 else 5)
                out.append(t)
            # cptjax.areas on the (B, T) array itself: lax.map over rows on CPU
            g = jax.jit(lambda L: P(cptjax.areas(L, n_pt)))
            out.append(best_of(lambda: g(x).block_until_ready(), 3 if T >= 10**6 else 5))
            n = batch * T
            print(f"{T:>9} {batch:>5} {n / t_np:>14.3g} {n / out[0]:>13.3g} {t_np / out[0]:>6.2f} "
                  f"{n / out[1]:>14.3g} {t_np / out[1]:>6.2f} {n / out[2]:>10.3g} {t_np / out[2]:>6.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
