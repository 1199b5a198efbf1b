"""Schedule design speed: time per gradient step of the design objective for CPT schedules of
10^3..10^5 steps (per-step parameterisation, knots = steps), against a central finite-difference
gradient over the same knots (2 objective evaluations per knot; measured on a few knots and
scaled) — the ratio is FD time / autodiff time. Then the wall time of a full 20 000-step design
(64 knots, Setting A, 2000 Adam steps max, with the grid baselines) — goal on CPU: < 30 s.

    python benchmarks/design.py
"""

import time

import jax

jax.config.update("jax_enable_x64", True)

import cptjax  # noqa: E402
from _timing import best_of  # noqa: E402
from cptjax.planning import _design  # noqa: E402
from cptjax import schedules as S  # noqa: E402

LAW = cptjax.preset("setting-a")
PT = S.wsd(40000, 2e-4, warmup=500, decay=0.2, final=2e-5)



def main():
    print(f"backend {jax.default_backend()}")
    state = _design.pt_states(LAW, PT)
    print(f"{'CPT steps':>9} {'grad step (ms)':>15} {'FD grad (ms)':>13} {'ratio':>8}")
    for T in (1000, 10000, 100000):
        cfg = _design._Config(T, 2e-4, 0, None, T, True, False, 1, 0.05)
        p = jax.tree.map(lambda x: x[0], _design._init(cfg)[0])  # one start
        g = jax.jit(jax.grad(lambda p: _design._loss(p, LAW, state, (0.5, 0.5), None, cfg)))
        f = jax.jit(lambda p: _design._loss(p, LAW, state, (0.5, 0.5), None, cfg))
        t_g = best_of(lambda: jax.block_until_ready(g(p)))
        t_f = best_of(lambda: jax.block_until_ready(f(p)))
        t_fd = 2 * p["w"].size * t_f  # central differences over every knot
        print(f"{T:>9} {1e3 * t_g:>15.2f} {1e3 * t_fd:>13.1f} {t_fd / t_g:>8.0f}", flush=True)
    t = time.perf_counter()
    plan = cptjax.design(LAW, PT, 20000, max_lr=2e-4, warmup=500, iterations=2000)
    dt = time.perf_counter() - t
    t = time.perf_counter()
    cptjax.design(LAW, PT, 20000, max_lr=2e-4, warmup=500, iterations=2000)
    dt2 = time.perf_counter() - t
    print(f"20 000-step design: {dt:.1f} s first call (with compilation), {dt2:.1f} s second; "
          f"{plan.iterations} Adam steps; objective {plan.objective:.5f} vs best baseline "
          f"{min(b['objective'] for b in plan.baselines.values()):.5f} ({plan.source})")


if __name__ == "__main__":
    main()
