"""Fit statistics: metrics, the sandwich (Laplace) covariance, warnings, and `FitResult`
(apart from the solver, ``_solver``, and the batch driver, ``_batch``)."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from .. import laws as _laws
from ..errors import InputError
from ._problem import STATUS, _at_bound, _build, _cpt_residuals_and_jacobian, _predict_points, _residuals, _spec, _to_natural
from ..laws import areas_numpy
from ..files import atomic_write, dumps, read_text
from ..schedules import MAX_LR, MAX_STEPS
from ._solver import huber

__all__ = ["FitResult", "metrics", "provenance"]


# A fit whose mean relative error exceeds this (or whose R² < 0) is flagged "poor fit": the law's
# published fits and the lab's are all below 2.5%; misapplied ones (image models under OneCycle/SGD)
# reach 30-50%.
QUALITY_MEAN_REL = 0.10


def metrics(pred, obs) -> dict:
    """Goodness of fit of predictions ``pred`` against observed losses ``obs`` (numpy): mean and
    max relative error, R², RMSE, the number of points. The one definition cptjax reports
    everywhere (fits, ``predict --run``, experiments). R² is ``None`` for a constant ``obs``."""
    pred, obs = np.asarray(pred, np.float64), np.asarray(obs, np.float64)
    if pred.shape != obs.shape or obs.size == 0:
        raise InputError(f"metrics: `pred` and `obs` must have one non-empty shape, got "
                         f"{pred.shape} and {obs.shape}")
    rel = np.abs(pred - obs) / np.abs(obs)
    ss = np.sum((obs - obs.mean()) ** 2)
    r2 = float(1 - np.sum((pred - obs) ** 2) / ss) if ss > 0 else None
    return {"mean_rel_error": float(rel.mean()), "max_rel_error": float(rel.max()), "r2": r2,
            "rmse": float(np.sqrt(np.mean((pred - obs) ** 2))), "n_points": int(obs.size)}


def provenance(law, runs, column) -> dict:
    """What a fit was fitted on, for the checks that use it later (design's extrapolation
    warnings): run names, the joined steps of the longest run (``data_range``), the LR span
    (``lr_range``: smallest positive, largest), for area laws the span of the CPT areas at the
    logged CPT points (``area_range``: S1_cpt, S2_cpt with the law's λ and ε), and each run's
    data report."""
    names = unique_names([r.name for r in runs])
    out = {"runs": names, "data_range": max(int(r.lr.size) for r in runs),
           "lr_range": [float(min(r.lr[r.lr > 0].min() if (r.lr > 0).any() else 0.0 for r in runs)),
                        float(max(r.lr.max() for r in runs))]}
    if not law.needs_schedule:
        s1, s2 = [], []
        for r in runs:
            ix, _ = r.points(column)
            ix = ix[ix >= r.n_pt]
            if ix.size:
                a = areas_numpy(r.lr, r.n_pt, law.lam, eps=law.eps, idx=ix)
                s1.append(a.s1_cpt)
                s2.append(a.s2_cpt)
        out["area_range"] = None if not s1 else {
            k: [float(np.min(v)), float(np.max(v))] for k, v in
            (("s1_cpt", np.concatenate(s1)), ("s2_cpt", np.concatenate(s2)))}
    out["data_report"] = {n: r.report for n, r in zip(names, runs)}
    return out


def unique_names(names) -> list:
    """Run names made unique in order (``run.csv``, ``run.csv #2``, …): runs of the same file name
    from different folders are reported apart."""
    seen, out = {}, []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} #{seen[n]}")
    return out


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
    provenance: dict = dataclasses.field(default_factory=dict)  # what it was fitted on (see provenance())

    @property
    def params(self) -> dict:
        return {n: float(getattr(self.law, n)) for n in self.law.param_names()}

    @property
    def finite(self) -> bool:
        """Every number the fit reports is finite (parameters, objective, metrics, covariance)."""
        nums = [self.objective, self.rmse, self.mean_rel_error, self.max_rel_error,
                *self.params.values(), *self.stderr.values()]
        return (self.status != "non-finite" and all(math.isfinite(v) for v in nums)
                and (self.r2 is None or math.isfinite(self.r2)) and bool(np.all(np.isfinite(self.cov))))

    def to_dict(self) -> dict:
        return {"law": self.law.to_dict(), "kind": self.kind, "column": self.column,
                "objective": self.objective, "status": self.status, "iterations": self.iterations,
                "n_points": self.n_points,
                "metrics": {"r2": self.r2, "rmse": self.rmse, "mean_rel_error": self.mean_rel_error,
                            "max_rel_error": self.max_rel_error, "huber": self.objective},
                "stderr": self.stderr, "cov": self.cov.tolist(), "warnings": self.warnings,
                "delta": self.delta, **self.extra, **self.provenance}

    def save(self, path) -> str:
        """Write the fit as strict JSON (atomically): what ``cptjax fit --out`` writes, read back by
        `load`, `cptjax.load_law`, ``cptjax predict`` and ``cptjax design``."""
        atomic_write(path, dumps(self.to_dict(), indent=2))
        return os.fspath(path)

    @classmethod
    def load(cls, path) -> "FitResult":
        """Read a fit file written by `save` (or ``cptjax fit --out``), checked completely:
        a malformed law, covariance, metric or provenance entry raises ``InputError`` naming the
        file and key."""
        text = read_text(path, what="fit file")
        try:
            d = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise InputError(f"{path}: not valid JSON ({str(e)[:200]})") from None
        return cls.from_dict(d, source=os.fspath(path))

    @classmethod
    def from_dict(cls, d, source: str = "fit") -> "FitResult":
        """The inverse of `to_dict`, with every entry checked (see `load`)."""
        return _from_dict(cls, d, source)

    def summary(self) -> str:
        """A short text report: the parameters with standard errors, status and metrics, warnings."""
        w = max([5] + [len(k) for k in self.params])
        lines = [f"{'param'.rjust(w)}  {'value':>12}  {'stderr':>10}"]
        lines += [f"{k.rjust(w)}  {v:12.6g}  {self.stderr.get(k, float('nan')):10.3g}"
                  for k, v in self.params.items()]
        r2 = "n/a (constant loss)" if self.r2 is None else f"{self.r2:.5f}"
        lines.append(f"status {self.status}; iterations {self.iterations}; points {self.n_points}; "
                     f"huber {self.objective:.4g}; R2 {r2}; RMSE {self.rmse:.4g}; "
                     f"mean rel err {100 * self.mean_rel_error:.3f}%; max {100 * self.max_rel_error:.3f}%"
                     + (f"; lam {self.law.lam:g}" if hasattr(self.law, "lam") else ""))
        lines += [f"warning: {x}" for x in self.warnings]
        return "\n".join(lines)

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


def _finish(kind, opts, column, theta, x, f, st, it, stats, delta, bounds=None):
    """A FitResult from one problem's solver state θ, natural parameters ``x`` and statistics
    (all numpy: no per-fit JAX dispatch); ``bounds``: `_at_bound` of θ when the caller
    computed it for a whole batch."""
    cls, names, _ = _spec(kind)
    law = cls(**{n: float(v) for n, v in zip(names, x)}, **dict(opts))
    cov = np.asarray(stats["cov"])
    se = np.sqrt(np.maximum(np.diagonal(cov), 0.0))
    warn = []
    status = STATUS[int(st)]
    if status == "max-iterations":
        warn.append(f"fit status: max-iterations (still improving after {int(it)} iterations, with one "
                    "restart): the objective may not be at its optimum; refit with a larger max_iter")
    elif status != "converged":
        warn.append(f"fit status: {status}")
    bound, beta_zero = _at_bound(kind, theta) if bounds is None else bounds
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
    r2 = float(stats["r2"])
    r2 = r2 if math.isfinite(r2) else None  # a constant loss: R² is undefined, not -inf
    mean_rel = float(stats["mean_rel"])
    if (r2 is not None and r2 < 0) or mean_rel > QUALITY_MEAN_REL:
        warn.append(f"poor fit (R2 {'n/a' if r2 is None else f'{r2:.3f}'}, mean relative error "
                    f"{100 * mean_rel:.1f}%): the law does not describe these runs; do not trust its "
                    "predictions")
    return FitResult(law, kind, column, float(f), status, int(it), int(stats["n"]),
                     r2, float(stats["rmse"]), mean_rel,
                     float(stats["max_rel"]), dict(zip(names, map(float, se))), cov, warn, delta)


def _finite(x) -> bool:
    """A JSON number that is a finite float (an integer of 400 digits is not)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    try:
        return math.isfinite(float(x))
    except OverflowError:
        return False


def _num(d, key, source, *, lo=None, hi=None, integer=False, optional=False):
    v = d.get(key)
    if v is None and optional:
        return None
    if not _finite(v) or (integer and v != int(v)) or (lo is not None and v < lo) or (hi is not None and v > hi):
        raise InputError(f"{source}: {key!r} must be a finite {'integer' if integer else 'number'}"
                         + (f" >= {lo}" if lo is not None else "") + (f" and <= {hi:g}" if hi is not None else "")
                         + f", got {str(v)[:40]}")
    return int(v) if integer else float(v)


def _pair(v, source, key, lo=None, hi=None):
    if not (isinstance(v, list) and len(v) == 2 and all(_finite(x) for x in v) and v[0] <= v[1]
            and (lo is None or v[0] >= lo) and (hi is None or v[1] <= hi)):
        span = f" within [{lo:g}, {hi:g}]" if lo is not None and hi is not None else ""
        raise InputError(f"{source}: {key!r} must be a pair [low, high] of finite numbers{span}, got {str(v)[:80]}")
    return [float(x) for x in v]


def check_provenance(d, source) -> dict:
    """The provenance keys of a fit dict, checked (absent ones stay absent)."""
    out = {}
    if "runs" in d:
        if not (isinstance(d["runs"], list) and all(isinstance(r, str) for r in d["runs"])):
            raise InputError(f"{source}: 'runs' must be a list of run names")
        out["runs"] = d["runs"]
    if "data_range" in d:
        out["data_range"] = _num(d, "data_range", source, lo=1, hi=MAX_STEPS, integer=True)
    if "lr_range" in d:
        out["lr_range"] = _pair(d["lr_range"], source, "lr_range", 0.0, MAX_LR)
        if out["lr_range"][1] <= 0:
            raise InputError(f"{source}: 'lr_range' must end above 0 (the largest LR fitted on), got {d['lr_range']}")
    if "area_range" in d:
        a = d["area_range"]
        if a is not None:
            if not (isinstance(a, dict) and set(a) == {"s1_cpt", "s2_cpt"}):
                raise InputError(f"{source}: 'area_range' must be {{'s1_cpt': [lo, hi], "
                                 f"'s2_cpt': [lo, hi]}} or null, got {a!r}"[:300])
            a = {k: _pair(v, source, f"area_range.{k}") for k, v in a.items()}
        out["area_range"] = a
    if "data_report" in d:
        if not isinstance(d["data_report"], dict):
            raise InputError(f"{source}: 'data_report' must be an object")
        out["data_report"] = d["data_report"]
    return out


_KNOWN = {"law", "kind", "column", "objective", "status", "iterations", "n_points", "metrics",
          "stderr", "cov", "warnings", "delta", "runs", "data_range", "lr_range", "area_range",
          "data_report"}


def _from_dict(cls, d, source):
    if not isinstance(d, dict) or not isinstance(d.get("law"), dict):
        raise InputError(f"{source}: not a fit file (a JSON object with a 'law' object)")
    try:
        law = _laws.law_from_dict(d["law"])
    except (ValueError, TypeError) as e:
        raise InputError(f"{source}: {e}") from None
    if isinstance(law, _laws.LawPair):
        raise InputError(f"{source}: a fit file holds one law, not a general/domain pair")
    names = law.param_names()
    n = len(names)
    m = d.get("metrics", {})
    if not isinstance(m, dict):
        raise InputError(f"{source}: 'metrics' must be an object")
    if d.get("cov") is None:  # a law with no covariance: no uncertainty
        cov = np.full((n, n), np.nan)
    else:
        try:
            cov = np.asarray(d["cov"], np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{source}: 'cov' must be a {n}x{n} matrix of numbers") from None
        if cov.shape != (n, n) or not np.all(np.isfinite(cov)) or np.any(np.abs(cov) > 1e150) \
                or not np.allclose(cov, cov.T, rtol=1e-6, atol=1e-300) or np.any(np.diag(cov) < 0):
            raise InputError(f"{source}: 'cov' must be a symmetric {n}x{n} matrix of finite numbers "
                             "(|x| < 1e150) with a non-negative diagonal")
    stderr = d.get("stderr")
    if stderr is None:
        stderr = {k: float(np.sqrt(cov[i, i])) for i, k in enumerate(names)}
    elif not (isinstance(stderr, dict) and set(stderr) == set(names)):
        raise InputError(f"{source}: 'stderr' must give a standard error for each of {list(names)}")
    else:
        for k in names:
            _num(stderr, k, f"{source}: stderr", lo=0)
    status = d.get("status", "converged")
    if status not in STATUS.values():
        raise InputError(f"{source}: 'status' must be one of {sorted(STATUS.values())}, got {status!r}")
    warns = d.get("warnings", [])
    if not (isinstance(warns, list) and all(isinstance(w, str) for w in warns)):
        raise InputError(f"{source}: 'warnings' must be a list of strings")
    column = d.get("column", "loss")
    if not isinstance(column, str):
        raise InputError(f"{source}: 'column' must be a string")
    num = lambda dd, k, where, **kw: _num(dd, k, where, optional=True, **kw)
    nan = lambda v: float("nan") if v is None else v
    extra = {k: v for k, v in d.items() if k not in _KNOWN}
    return cls(law, law.kind, column, nan(num(d, "objective", source, lo=0)), status,
               num(d, "iterations", source, lo=0, integer=True) or 0,
               num(d, "n_points", source, lo=0, integer=True) or 0,
               num(m, "r2", f"{source}: metrics"), nan(num(m, "rmse", f"{source}: metrics", lo=0)),
               nan(num(m, "mean_rel_error", f"{source}: metrics", lo=0)),
               nan(num(m, "max_rel_error", f"{source}: metrics", lo=0)),
               {k: float(stderr[k]) for k in names}, cov, list(warns),
               num(d, "delta", source, lo=0) or 1e-3, extra, check_provenance(d, source))
