"""Levenberg–Marquardt with Huber/IRLS weights for any residual function (the maths of the
fitter; the residuals and starts live in ``_problem``, the batch driver and ``fit()`` in ``_batch``,
the statistics and ``FitResult`` in ``_stats``).

The solver sees only ``rj(θ) -> (r, Jᵀ)``: residuals (n,) and the transposed Jacobian (p, n). Its
state is a NamedTuple; its outcome a ``RESULTS`` code (optimistix style); it never raises inside
jit, so that one bad lane of a vmapped batch cannot stop the others.
"""

from __future__ import annotations

import enum
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["RESULTS", "LMState", "levenberg_marquardt", "huber", "spd_solve"]

MU0 = 1e-3  # initial damping (relative to diag(JᵀWJ))
W_LATE = 0.1  # outside-δ curvature weight after the IRLS warm-up (0 = exact Gauss–Newton)


class RESULTS(enum.IntEnum):
    """Outcome of a solve (per problem)."""

    converged = 0
    max_iterations = 1
    nonfinite = 2


def huber(r, delta):
    a = jnp.abs(r)
    return jnp.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def spd_solve(A, b):
    """Solve A x = b for a small SPD matrix by an unrolled Cholesky factorisation: plain
    elementwise ops that vectorise across a vmapped batch (batched LAPACK calls on CPU loop over
    the batch one tiny matrix at a time)."""
    p = A.shape[-1]
    L = [[None] * p for _ in range(p)]
    for j in range(p):
        s = A[j, j] - sum(L[j][k] * L[j][k] for k in range(j))
        L[j][j] = jnp.sqrt(jnp.maximum(s, jnp.finfo(A.dtype).tiny))
        for i in range(j + 1, p):
            L[i][j] = (A[i, j] - sum(L[i][k] * L[j][k] for k in range(j))) / L[j][j]
    y = []
    for i in range(p):
        y.append((b[i] - sum(L[i][k] * y[k] for k in range(i))) / L[i][i])
    x = [None] * p
    for i in reversed(range(p)):
        x[i] = (y[i] - sum(L[k][i] * x[k] for k in range(i + 1, p))) / L[i][i]
    return jnp.stack(x)


class LMState(NamedTuple):
    """The solver's state: the point, its objective, gradient and curvature, the damping (μ, ν),
    the iteration count, and whether it has converged / the last step was finite."""

    theta: jax.Array
    f: jax.Array
    g: jax.Array
    H: jax.Array
    mu: jax.Array
    nu: jax.Array
    it: jax.Array
    done: jax.Array
    finite: jax.Array


class LMResult(NamedTuple):
    """What `levenberg_marquardt` returns (a tuple, unpacked positionally by the batch driver)."""

    theta: jax.Array
    objective: jax.Array
    status: jax.Array  # a RESULTS code
    iterations: jax.Array
    mu: jax.Array  # the damping, to continue a run
    nu: jax.Array


def levenberg_marquardt(rj: Callable, theta0, delta, max_iter, mu0=MU0, nu0=2.0, irls_iter=3):
    """Levenberg–Marquardt on Σ Huber_δ(r(θ)): gradient Jᵀψ(r) with the Huber score
    ψ(r) = clip(r, −δ, δ), and the Gauss–Newton curvature Jᵀ W J with W = 1 inside δ. Outside δ
    the Huber curvature is 0; for the first ``irls_iter`` iterations W = δ/|r| there (IRLS
    weights: cautious steps from a rough start), then W_LATE·δ/|r|, closer to the exact curvature:
    about 30% fewer iterations from the data-driven starts (mean 24.7 → 17.2 on the
    benchmarks/fit_batch.py problems) to the same or better optima.

    ``rj(θ)`` returns the residuals and the transposed Jacobian, evaluated once per iteration at
    the trial point (kept when the step is accepted). Nielsen's damping update; the damping (μ, ν)
    is returned and can be passed back in to continue a run.
    Returns an `LMResult` (θ, objective, RESULTS code, iterations, μ, ν)."""
    dtype = theta0.dtype
    eps = jnp.finfo(dtype).eps
    ftol = jnp.sqrt(eps) * 0.1  # 1.5e-9 relative in float64

    def model(theta, w_out):
        r, Jt = rj(theta)  # Jacobian transposed, (p, n)
        f = jnp.sum(huber(r, delta))
        f = jnp.where(jnp.isfinite(f), f, jnp.inf)
        w = jnp.where(jnp.abs(r) <= delta, 1.0, w_out * delta / jnp.maximum(jnp.abs(r), delta))
        return f, Jt @ jnp.clip(r, -delta, delta), (Jt * w) @ Jt.T

    def body(s: LMState) -> LMState:
        dH = jnp.diag(s.H)
        step = -spd_solve(s.H + s.mu * jnp.diag(dH + eps * (1 + dH.max())), s.g)
        new = s.theta + step
        fn, gn, Hn = model(new, jnp.where(s.it + 1 < irls_iter, 1.0, W_LATE))
        ok = jnp.isfinite(fn) & (fn < s.f)
        rel = (s.f - fn) / jnp.maximum(s.f, eps)
        small = jnp.max(jnp.abs(step)) < 1e3 * eps * (1 + jnp.max(jnp.abs(s.theta)))
        conv = (ok & (rel < ftol)) | small | (s.mu > 1e12)
        # Nielsen's damping update from the gain ratio ρ = actual / predicted decrease.
        predicted = -(s.g @ step) - 0.5 * step @ (s.H @ step)
        rho = (s.f - fn) / jnp.maximum(predicted, jnp.finfo(dtype).tiny)
        keep = lambda a, b: jnp.where(ok, a, b)
        mu = jnp.where(ok, s.mu * jnp.maximum(1 / 3, 1 - (2 * jnp.minimum(rho, 1.0) - 1) ** 3), s.mu * s.nu)
        return LMState(keep(new, s.theta), keep(fn, s.f), keep(gn, s.g), keep(Hn, s.H), mu,
                       jnp.where(ok, 2.0, s.nu * 2), s.it + 1, conv, jnp.all(jnp.isfinite(step)))

    def cond(s: LMState):
        return (s.it < max_iter) & ~s.done & jnp.isfinite(s.f) & s.finite

    f0, g0, H0 = model(theta0, jnp.where(jnp.asarray(irls_iter) > 0, 1.0, W_LATE))
    s = lax.while_loop(cond, body, LMState(theta0, f0, g0, H0, jnp.asarray(mu0, dtype),
                                           jnp.asarray(nu0, dtype), jnp.asarray(0),
                                           jnp.asarray(False), jnp.asarray(True)))
    status = jnp.where(~jnp.isfinite(s.f) | ~jnp.all(jnp.isfinite(s.theta)), RESULTS.nonfinite,
                       jnp.where(s.done, RESULTS.converged, RESULTS.max_iterations))
    return LMResult(s.theta, s.f, status, s.it, s.mu, s.nu)
