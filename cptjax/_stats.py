"""Fit statistics: metrics, the sandwich (Laplace) covariance, warnings, and :class:`FitResult`
(apart from the solver, ``_solver``, and the batch driver, ``_batch``)."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from . import _laws
from ._fit import STATUS, _at_bound, _build, _cpt_residuals_and_jacobian, _predict_points, _residuals, _spec, _to_natural
from ._solver import huber

__all__ = ["FitResult"]


def _stats_one(kind, opts, theta, feats, obs, mask, delta):
    """Metrics and the sandwich (Laplace) covariance at θ, mapped to natural parameters
    (computed in θ = log p space, where the parameter scales are comparable)."""
    x = _to_natural(kind, theta)
    pred = _predict_points(kind, opts, x, feats)
    m = mask.astype(x.dtype)
    n = m.sum()
    err = jnp.where(mask, pred - obs, 0.0)
    mean = jnp.sum(obs * m) / n
    r2 = 1 - jnp.sum(err**2) / jnp.sum(jnp.where(mask, obs - mean, 0.0) ** 2)
    rel = jnp.where(mask, jnp.abs(err) / obs, 0.0)

    resid_x = functools.partial(_residuals, kind, opts, feats=feats, obs=obs, mask=mask)

    def f_x(x):
        return jnp.sum(huber(resid_x(x), delta))

    H = jax.hessian(f_x)(theta)
    if kind == "cpt":
        r, J = _cpt_residuals_and_jacobian(theta, feats, obs, mask)
    else:
        r, J = resid_x(theta), jax.jacfwd(resid_x)(theta)
    psi = jnp.clip(r, -delta, delta)  # Huber score
    Bm = J.T @ ((psi**2)[:, None] * J)
    ev, V = jnp.linalg.eigh(H)  # one decomposition: the pseudo-inverse and the conditioning
    keep = ev > jnp.finfo(ev.dtype).eps * ev.shape[-1] * jnp.max(jnp.abs(ev))
    Hinv = (V * jnp.where(keep, 1 / jnp.where(keep, ev, 1.0), 0.0)) @ V.T
    cov = Hinv @ Bm @ Hinv * n / jnp.maximum(n - x.shape[-1], 1.0)
    D = jax.jacfwd(functools.partial(_to_natural, kind))(theta)  # dx/dθ
    cov = D @ cov @ D.T
    return dict(r2=r2, rmse=jnp.sqrt(jnp.sum(err**2) / n), mean_rel=jnp.sum(rel) / n,
                max_rel=jnp.max(rel), huber=f_x(theta), cov=cov, hess_eig_min=ev[0], hess_eig_max=ev[-1],
                n=n)


_stats_batch = jax.jit(jax.vmap(_stats_one, in_axes=(None, None, 0, 0, 0, 0, None)),
                       static_argnames=("kind", "opts"))


@dataclasses.dataclass
class FitResult:
    """A fitted law with its fit statistics.

    ``stderr`` and ``cov`` come from the Laplace/sandwich approximation at the optimum:
    cov = H⁻¹ (Σ ψ(r_i)² ∇r_i ∇r_iᵀ) H⁻¹ · n/(n − p), H the Hessian of the Huber objective (JAX),
    ψ the Huber score — the M-estimator covariance, which reduces to σ²(JᵀJ)⁻¹ when every residual
    is inside δ.
    """

    law: object
    kind: str
    column: str
    objective: float
    status: str
    iterations: int
    n_points: int
    r2: float
    rmse: float
    mean_rel_error: float
    max_rel_error: float
    stderr: dict
    cov: np.ndarray
    warnings: list
    delta: float = 1e-3
    extra: dict = dataclasses.field(default_factory=dict)  # e.g. the λ profile

    @property
    def params(self) -> dict:
        return {n: float(getattr(self.law, n)) for n in self.law.param_names()}

    def to_dict(self) -> dict:
        return {"law": self.law.to_dict(), "kind": self.kind, "column": self.column,
                "objective": self.objective, "status": self.status, "iterations": self.iterations,
                "n_points": self.n_points,
                "metrics": {"r2": self.r2, "rmse": self.rmse, "mean_rel_error": self.mean_rel_error,
                            "max_rel_error": self.max_rel_error, "huber": self.objective},
                "stderr": self.stderr, "cov": self.cov.tolist(), "warnings": self.warnings,
                "delta": self.delta, **self.extra}

    def band(self, lr, n_pt=None, *, idx=None, replay=None, size=None, z: float = 1.96):
        """Prediction and its ±z·σ band (delta method on the parameter covariance)."""
        names = _spec(self.kind)[1]
        x0 = jnp.array([self.params[n] for n in names])
        opts = tuple((n, getattr(self.law, n)) for n in self.law.meta)
        f = lambda x: _laws.predict(_build(self.kind, x, opts), lr, n_pt, idx=idx, replay=replay,
                                    size=size)
        y = f(x0)
        G = jax.jacfwd(f)(x0)
        sd = jnp.sqrt(jnp.maximum(jnp.einsum("ip,pq,iq->i", G, jnp.asarray(self.cov), G), 0.0))
        return np.asarray(y), np.asarray(y - z * sd), np.asarray(y + z * sd)


def _finish(kind, opts, column, theta, x, f, st, it, stats, delta):
    """A FitResult from one problem's solver state θ, natural parameters ``x`` and statistics
    (all numpy: no per-fit JAX dispatch)."""
    names = _spec(kind)[1]
    law = jax.tree.map(float, _build(kind, x, opts))
    cov = np.asarray(stats["cov"])
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    warn = []
    status = STATUS[int(st)]
    if status != "converged":
        warn.append(f"fit status: {status}")
    bound, beta_zero = _at_bound(kind, theta)
    if beta_zero:
        warn.append(f"beta ran to 0 (B → ∞ with B·beta = {theta[names.index('B')]:.4g} fixed): the data "
                    "favour the shift's limit B·beta·log(1 + E·S1_cpt); B and beta are not separately "
                    "identifiable")
    if bound.any():
        warn.append(f"parameter(s) {[n for n, b in zip(names, bound) if b]} ran to a bound (0 or "
                    "infinity): not identifiable from these data")
    emin, emax = float(stats["hess_eig_min"]), float(stats["hess_eig_max"])
    if not (emin > 0) or emax / max(emin, 1e-300) > 1e14:
        warn.append(f"Hessian is singular or ill-conditioned (eigenvalues {emin:.3g}..{emax:.3g}): "
                    "some parameters are not identifiable; their standard errors are unreliable")
    return FitResult(law, kind, column, float(f), status, int(it), int(stats["n"]),
                     float(stats["r2"]), float(stats["rmse"]), float(stats["mean_rel"]),
                     float(stats["max_rel"]), dict(zip(names, map(float, se))), cov, warn, delta)
