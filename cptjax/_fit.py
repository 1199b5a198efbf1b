"""Fitting laws to loss logs: Huber objective on log residuals, multi-start, batched
Levenberg–Marquardt with Huber (IRLS) weights, and honest fit statistics.

Objective (LAW.md §4): Σ Huber_δ(log L̂ − log L) over every logged point of every run of one
validation set, parameters shared across runs.  Positivity by reparameterisation (θ = log p).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import _laws
from ._areas import areas as _areas_fn
from ._data import DataError, Run

__all__ = ["FitResult", "FitProblem", "fit", "fit_batch", "make_problem", "objective",
           "CONVERGED", "MAX_ITERATIONS", "NONFINITE", "STATUS"]

CONVERGED, MAX_ITERATIONS, NONFINITE = 0, 1, 2
MU_DOWN = 0.3
STATUS = {CONVERGED: "converged", MAX_ITERATIONS: "max-iterations", NONFINITE: "non-finite"}

# Parameters that may take either sign (all others are positive, fitted as log p).
_FREE = {"cpt": ("B",), "replay": ("B",), "size": ("B", "gamma1", "gamma2"), "open": ("B",),
         "pt": (), "mpl": ()}


def _spec(kind):
    if kind not in _laws.LAWS:
        raise ValueError(f"unknown law {kind!r}; expected one of {sorted(_laws.LAWS)}")
    cls = _laws.LAWS[kind]
    names = cls.param_names()
    free = np.array([n in _FREE[kind] for n in names])
    return cls, names, free


def _to_theta(kind, x):
    _, _, free = _spec(kind)
    x = jnp.asarray(x)
    return jnp.where(free, x, jnp.log(jnp.where(free, 1.0, jnp.abs(x))))


def _to_natural(kind, theta):
    _, _, free = _spec(kind)
    return jnp.where(free, theta, jnp.exp(theta))


def _build(kind, x, target="general"):
    cls, names, _ = _spec(kind)
    kw = dict(zip(names, (x[..., i] for i in range(len(names)))))
    if kind == "replay":
        kw["target"] = target
    return cls(**kw)


def huber(r, delta):
    a = jnp.abs(r)
    return jnp.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


@dataclasses.dataclass
class FitProblem:
    """One fitting problem as flat, padded arrays (area laws) or per-run schedules (MPL)."""

    kind: str
    target: str
    feats: tuple  # area laws: (s1p, s1c, s2p, s2c, replay, size) each (n,); mpl: per-run tuples
    obs: np.ndarray
    mask: np.ndarray
    run_of_point: np.ndarray
    idx_of_point: np.ndarray
    runs: list


def make_problem(runs, kind: str, column: str, *, target: str = "general", lam: float = 0.999,
                 pad_to: int | None = None) -> FitProblem:
    """Turn runs + one loss column into a problem. Areas come from each run's dense schedule."""
    _spec(kind)
    if isinstance(runs, Run):
        runs = [runs]
    if not runs:
        raise DataError("no runs to fit")
    obs, rid, pidx, feats = [], [], [], []
    for r_i, run in enumerate(runs):
        ix, y = run.points(column)
        if kind == "replay" and run.replay is None:
            raise DataError(f"{run.name}: the replay law needs the run's replay ratio (--replay)")
        if kind == "size" and run.size is None:
            raise DataError(f"{run.name}: the size law needs the run's model size (--size)")
        if kind == "mpl":
            # Only non-zero decrements enter MPL's sum: keep (d_k, η_k, S1(k−1), k) for those.
            lr = run.lr
            d = np.concatenate([lr[:1], lr[:-1]]) - lr
            d[: int(np.argmax(lr)) + 1] = 0.0
            nz = np.flatnonzero(d)
            s1 = np.cumsum(lr)
            feats.append(((s1[ix], ix, np.full(ix.size, r_i)),
                          (d[nz], lr[nz], (s1 - lr)[nz], nz, np.full(nz.size, r_i))))
        else:
            eta0 = 0.0 if kind == "open" else None
            # Pad the schedule to a power-of-two length: steps after T do not change the areas up
            # to T, and runs of many lengths then share a handful of compilations.
            T = run.lr.size
            size = max(1024, 1 << (T - 1).bit_length())
            lr = np.concatenate([run.lr, np.zeros(size - T)])
            a = _areas_fn(lr, run.n_pt, lam, eta0).at(ix)
            f = np.stack([np.asarray(x) for x in a]
                         + [np.full(ix.size, run.replay or 0.0), np.full(ix.size, run.size or 1.0)])
            feats.append(f)
        obs.append(y)
        rid.append(np.full(y.size, r_i))
        pidx.append(ix)
    obs, rid, pidx = map(np.concatenate, (obs, rid, pidx))
    n = obs.size
    mask = np.ones(n, bool)
    if kind == "mpl":
        pts = [np.concatenate(c) for c in zip(*(f[0] for f in feats))]
        dec = [np.concatenate(c) for c in zip(*(f[1] for f in feats))]
        if dec[0].size == 0:  # no decrement at all: one inert entry keeps shapes non-empty
            dec = [np.zeros(1), np.ones(1), np.zeros(1), np.full(1, 10**9), np.zeros(1)]
        feats = tuple(pts) + tuple(dec)
    else:
        f = np.concatenate(feats, axis=1)
        if pad_to is not None:
            if pad_to < n:
                raise ValueError(f"pad_to={pad_to} < {n} points")
            extra = pad_to - n
            f = np.concatenate([f, np.repeat(f[:, :1], extra, axis=1)], axis=1)
            obs = np.concatenate([obs, np.ones(extra)])
            mask = np.concatenate([mask, np.zeros(extra, bool)])
        feats = tuple(f)
    return FitProblem(kind, target, feats, obs, mask, rid, pidx, list(runs))


def _predict_points(kind, target, x, feats):
    law = _build(kind, x, target)
    if kind == "mpl":
        s1_t, t_idx, t_run, d, eta, s1b, k_idx, k_run = feats
        on = (k_run[None, :] == t_run[:, None]) & (k_idx[None, :] <= t_idx[:, None])
        sk = jnp.where(on, s1_t[:, None] - s1b[None, :], 0.0)
        g = 1 - (law.C * eta[None, :] ** (-law.gamma) * sk + 1) ** (-law.beta)
        ld = jnp.sum(jnp.where(on, d[None, :] * g, 0.0), axis=1)
        return law.L0 + law.A * s1_t ** (-law.alpha) - law.B * ld
    s1p, s1c, s2p, s2c, rep, size = feats
    a = _laws.Areas(s1p, s1c, s2p, s2c)
    if kind == "replay":
        return law(a, rep)
    if kind == "size":
        return law(a, size)
    return law(a)


def _residuals(kind, target, theta, feats, obs, mask):
    pred = _predict_points(kind, target, _to_natural(kind, theta), feats)
    r = jnp.log(jnp.where(pred > 0, pred, jnp.nan)) - jnp.log(obs)
    return jnp.where(mask, r, 0.0)


def _cpt_residuals_and_jacobian(theta, feats, obs, mask):
    """Eq. 4 residuals and their Jacobian w.r.t. θ in closed form: it reuses the primal's
    transcendentals (≈3x cheaper than jacfwd here; tested against jacfwd)."""
    lL0, lA, lal, lC1, lC2, B, lE, lbe = (theta[..., i] for i in range(8))
    L0, A, al, C1, C2, E, be = (jnp.exp(v) for v in (lL0, lA, lal, lC1, lC2, lE, lbe))
    s1p, s1c, s2p, s2c = feats[:4]
    log_s1 = jnp.log(s1p + s1c)
    P = jnp.exp(-al * log_s1)
    u = 1 + E * s1c
    log_u = jnp.log(u)
    V = jnp.exp(-be * log_u)  # (1 + E·S1_cpt)^(−β)
    pred = L0 + A * P - C1 * s2p - C2 * s2c + B * (1 - V)
    ok = mask & (pred > 0)
    safe = jnp.where(ok, pred, 1.0)
    r = jnp.where(ok, jnp.log(safe) - jnp.log(obs), jnp.where(mask, jnp.nan, 0.0))
    cols = [L0 + 0 * P, A * P, -A * P * al * log_s1, -C1 * s2p, -C2 * s2c, 1 - V,
            B * be * V / u * E * s1c, B * V * be * log_u]
    J = jnp.stack(cols, axis=-1) / safe[:, None]
    return r, jnp.where(ok[:, None], J, 0.0)


def objective(kind, target, theta, feats, obs, mask, delta=1e-3):
    """Σ Huber_δ(log L̂ − log L); +inf where the prediction is non-positive or non-finite."""
    r = _residuals(kind, target, theta, feats, obs, mask)
    f = jnp.sum(huber(r, delta))
    return jnp.where(jnp.isfinite(f), f, jnp.inf)


def _spd_solve(A, b):
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


def _lm(kind, target, theta0, feats, obs, mask, delta, max_iter):
    """Levenberg–Marquardt on the Huber objective: gradient Jᵀψ(r) with the Huber score
    ψ(r) = clip(r, −δ, δ), and the Gauss–Newton curvature Jᵀ W J with W = 1 inside δ and δ/|r|
    outside (IRLS weights keep W positive where the exact curvature is 0).
    Returns (theta, objective, status, iterations); never raises inside jit."""
    dtype = theta0.dtype
    eps = jnp.finfo(dtype).eps
    ftol = jnp.sqrt(eps) * 0.1  # 1.5e-9 relative in float64
    resid = functools.partial(_residuals, kind, target, feats=feats, obs=obs, mask=mask)
    obj = functools.partial(objective, kind, target, feats=feats, obs=obs, mask=mask, delta=delta)

    def body(s):
        theta, f, mu, it, done, _ = s
        if kind == "cpt":
            r, J = _cpt_residuals_and_jacobian(theta, feats, obs, mask)
        else:
            r = resid(theta)
            J = jax.jacfwd(resid)(theta)
        w = jnp.where(jnp.abs(r) <= delta, 1.0, delta / jnp.maximum(jnp.abs(r), delta))
        g = J.T @ jnp.clip(r, -delta, delta)
        H = J.T @ (w[:, None] * J)
        dH = jnp.diag(H)
        A = H + mu * jnp.diag(dH + eps * (1 + dH.max()))
        step = -_spd_solve(A, g)
        new = theta + step
        fn = obj(new)
        ok = jnp.isfinite(fn) & (fn < f)
        rel = (f - fn) / jnp.maximum(f, eps)
        small = jnp.max(jnp.abs(step)) < 1e3 * eps * (1 + jnp.max(jnp.abs(theta)))
        conv = (ok & (rel < ftol)) | small | (mu > 1e12)
        theta = jnp.where(ok, new, theta)
        f = jnp.where(ok, fn, f)
        mu = jnp.where(ok, mu * MU_DOWN, mu * 10.0)
        return theta, f, mu, it + 1, conv, jnp.all(jnp.isfinite(step))

    def cond(s):
        return (s[3] < max_iter) & ~s[4] & jnp.isfinite(s[1]) & s[5]

    f0 = obj(theta0)
    s = (theta0, f0, jnp.asarray(1e-3, dtype), jnp.asarray(0), jnp.asarray(False), jnp.asarray(True))
    theta, f, _, it, done, _ = lax.while_loop(cond, body, s)
    status = jnp.where(~jnp.isfinite(f) | ~jnp.all(jnp.isfinite(theta)), NONFINITE,
                       jnp.where(done, CONVERGED, MAX_ITERATIONS))
    return theta, f, status, it


def starts(kind: str, obs: np.ndarray) -> np.ndarray:
    """A small multi-start grid (natural units) with data-driven L0 (from the lowest loss)."""
    lo = float(np.nanmin(obs))
    L0 = [0.75 * lo, 0.95 * lo]
    L0c = [0.95 * lo]  # CPT families: the B × E × α grid matters more (benchmarks/fit_batch.py)
    grids = {
        "pt": [L0, [0.5], [0.3, 0.7], [0.3, 3.0]],
        "cpt": [L0c, [0.5], [0.3, 0.7], [0.3], [0.3], [-0.5, 0.5], [30.0, 3000.0], [0.3]],
        "replay": [L0c, [0.5], [0.3, 0.7], [0.3], [0.3], [-0.5, 0.5], [30.0, 3000.0], [0.3], [0.05], [2.0]],
        "size": [L0c, [0.5], [0.3, 0.7], [0.3], [0.3], [-0.5, 0.5], [30.0, 3000.0], [0.3], [1.0],
                 [0.1], [0.1], [0.2]],
        "open": [L0c, [0.5], [0.3, 0.7], [0.3], [-0.5, 0.5], [30.0, 3000.0], [0.3], [1.0, 5.0]],
        "mpl": [L0, [0.5], [0.5], [400.0], [1.0, 2.0], [0.5], [0.6]],
    }[kind]
    return np.array(list(itertools.product(*grids)), np.float64)


@functools.partial(jax.jit, static_argnames=("kind", "target", "max_iter", "screen_iter", "keep"))
def _solve_batch(kind, target, theta0, feats, obs, mask, delta, max_iter, screen_iter=8, keep=1):
    """vmap over problems (leading axis) and starts (second axis).

    Two phases, because under vmap every lane runs as long as the slowest: all starts run
    ``screen_iter`` iterations, then each problem's ``keep`` best continue to ``max_iter``."""
    def per_problem(th0, feats, obs, mask):
        run = lambda t, n: _lm(kind, target, t, feats, obs, mask, delta, n)
        if kind == "mpl":  # its Jacobian is (points × decrements × params): starts in sequence
            th, f, st, it = lax.map(lambda t: run(t, screen_iter), th0)
        else:
            th, f, st, it = jax.vmap(lambda t: run(t, screen_iter))(th0)
        order = jnp.argsort(jnp.where(st == NONFINITE, jnp.inf, f))[:keep]
        th2, f2, st2, it2 = jax.vmap(lambda t: run(t, max_iter))(th[order])
        b = jnp.argmin(jnp.where(st2 == NONFINITE, jnp.inf, f2))
        # A start that converged during screening keeps its result (the second run is a no-op).
        return th2[b], f2[b], st2[b], it[order[b]] + it2[b]

    return jax.vmap(per_problem)(theta0, feats, obs, mask)


@functools.partial(jax.jit, static_argnames=("kind", "target", "n_iter"))
def _continue_batch(kind, target, theta, feats, obs, mask, delta, n_iter):
    """Continue LM from ``theta`` for problems that had not converged (one start each)."""
    return jax.vmap(lambda t, f, o, m: _lm(kind, target, t, f, o, m, delta, n_iter))(theta, feats, obs, mask)


def _stats_one(kind, target, theta, feats, obs, mask, delta):
    """Metrics and the sandwich (Laplace) covariance at θ, mapped to natural parameters
    (computed in θ = log p space, where the parameter scales are comparable)."""
    x = _to_natural(kind, theta)
    pred = _predict_points(kind, target, x, feats)
    m = mask.astype(x.dtype)
    n = m.sum()
    err = jnp.where(mask, pred - obs, 0.0)
    mean = jnp.sum(obs * m) / n
    r2 = 1 - jnp.sum(err**2) / jnp.sum(jnp.where(mask, obs - mean, 0.0) ** 2)
    rel = jnp.where(mask, jnp.abs(err) / obs, 0.0)

    resid_x = functools.partial(_residuals, kind, target, feats=feats, obs=obs, mask=mask)

    def f_x(x):
        return jnp.sum(huber(resid_x(x), delta))

    H = jax.hessian(f_x)(theta)
    J = jax.jacfwd(resid_x)(theta)
    r = resid_x(theta)
    psi = jnp.clip(r, -delta, delta)  # Huber score
    Bm = J.T @ ((psi**2)[:, None] * J)
    Hinv = jnp.linalg.pinv(H, hermitian=True)
    cov = Hinv @ Bm @ Hinv * n / jnp.maximum(n - x.shape[-1], 1.0)
    D = jax.jacfwd(functools.partial(_to_natural, kind))(theta)  # dx/dθ
    cov = D @ cov @ D.T
    ev = jnp.linalg.eigvalsh(H)
    return dict(r2=r2, rmse=jnp.sqrt(jnp.sum(err**2) / n), mean_rel=jnp.sum(rel) / n,
                max_rel=jnp.max(rel), huber=f_x(theta), cov=cov, hess_eig_min=ev[0], hess_eig_max=ev[-1],
                n=n)


_stats_batch = jax.jit(jax.vmap(_stats_one, in_axes=(None, None, 0, 0, 0, 0, None)),
                       static_argnames=("kind", "target"))


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

    @property
    def params(self) -> dict:
        return {k: v for k, v in self.law.to_dict().items() if k != "law" and k != "target"}

    def to_dict(self) -> dict:
        return {"law": self.law.to_dict(), "kind": self.kind, "column": self.column,
                "objective": self.objective, "status": self.status, "iterations": self.iterations,
                "n_points": self.n_points,
                "metrics": {"r2": self.r2, "rmse": self.rmse, "mean_rel_error": self.mean_rel_error,
                            "max_rel_error": self.max_rel_error, "huber": self.objective},
                "stderr": self.stderr, "cov": self.cov.tolist(), "warnings": self.warnings,
                "delta": self.delta}

    def band(self, lr, n_pt=None, *, idx=None, replay=None, size=None, z: float = 1.96):
        """Prediction and its ±z·σ band (delta method on the parameter covariance)."""
        names = _spec(self.kind)[1]
        x0 = jnp.array([self.params[n] for n in names])
        target = getattr(self.law, "target", "general")
        f = lambda x: _laws.predict(_build(self.kind, x, target), lr, n_pt, idx=idx, replay=replay,
                                    size=size)
        y = f(x0)
        G = jax.jacfwd(f)(x0)
        sd = jnp.sqrt(jnp.maximum(jnp.einsum("ip,pq,iq->i", G, jnp.asarray(self.cov), G), 0.0))
        return np.asarray(y), np.asarray(y - z * sd), np.asarray(y + z * sd)


def _finish(kind, target, column, theta, f, st, it, stats, delta):
    cls, names, free = _spec(kind)
    x = np.asarray(_to_natural(kind, jnp.asarray(theta)))
    law = _build(kind, jnp.asarray(x), target)
    law = jax.tree.map(float, law)
    cov = np.asarray(stats["cov"])
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    warn = []
    status = STATUS[int(st)]
    if status != "converged":
        warn.append(f"fit status: {status}")
    at_bound = [n for n, t, fr in zip(names, np.asarray(theta), free) if not fr and abs(t) > 15]
    if at_bound:
        warn.append(f"parameter(s) {at_bound} ran to a bound (0 or infinity): not identifiable from "
                    "these data")
    emin, emax = float(stats["hess_eig_min"]), float(stats["hess_eig_max"])
    if not (emin > 0) or emax / max(emin, 1e-300) > 1e14:
        warn.append(f"Hessian is singular or ill-conditioned (eigenvalues {emin:.3g}..{emax:.3g}): "
                    "some parameters are not identifiable; their standard errors are unreliable")
    return FitResult(law, kind, column, float(f), status, int(it), int(stats["n"]),
                     float(stats["r2"]), float(stats["rmse"]), float(stats["mean_rel"]),
                     float(stats["max_rel"]), dict(zip(names, map(float, se))), cov, warn, delta)


def _stack(problems, kind):
    if kind == "mpl":
        k_max = max(p.feats[3].size for p in problems)
        problems = [_repad_dec(p, k_max) for p in problems]
    feats = tuple(np.stack([p.feats[j] for p in problems]) for j in range(len(problems[0].feats)))
    return feats, np.stack([p.obs for p in problems]), np.stack([p.mask for p in problems])


def fit_batch(problems, *, delta: float = 1e-3, max_iter: int = 200, chunk: int = 128,
              init=None, progress=None) -> list:
    """Fit N independent problems of one law kind at once: padded + masked (one compilation),
    chunked to bound memory, and sharded over all local devices when there are several.

    Returns a list of :class:`FitResult` (each with its status). ``progress(done, total)`` is
    called after each chunk.
    """
    if not problems:
        return []
    kind, target = problems[0].kind, problems[0].target
    if any(p.kind != kind or p.target != target for p in problems):
        raise ValueError("fit_batch: all problems must use the same law and target")
    n_max = max(p.obs.size for p in problems)
    problems = [p if p.obs.size == n_max else _repad(p, n_max) for p in problems]
    out = []
    ndev = jax.local_device_count()
    if kind == "mpl":
        chunk = min(chunk, 2)  # MPL's per-problem working set is large (points × decrements)
    chunk = max(ndev, (min(chunk, len(problems)) // ndev) * ndev)
    for c0 in range(0, len(problems), chunk):
        part = problems[c0:c0 + chunk]
        real = len(part)
        part = part + [part[-1]] * (chunk - real)  # pad the last chunk: same shapes, no recompile
        feats, obs, mask = _stack(part, kind)
        th0 = np.stack([starts(kind, p.obs[p.mask]) if init is None else np.atleast_2d(init)
                        for p in part])
        th0 = _to_theta(kind, th0)
        if ndev > 1:
            from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

            mesh = Mesh(np.array(jax.local_devices()), ("b",))
            put = lambda x: jax.device_put(x, NamedSharding(mesh, P("b")))
            feats, obs, mask, th0 = jax.tree.map(put, (feats, obs, mask, th0))
        first = min(max_iter, 40)
        theta, f, st, it = map(np.array, _solve_batch(kind, target, th0, feats, obs, mask, delta, first))
        # Under vmap every lane runs as long as the slowest: the few problems still crawling after
        # `first` iterations continue in a compacted batch instead of holding up the chunk.
        slow = np.flatnonzero(st[:real] == MAX_ITERATIONS)
        if slow.size and max_iter > first:
            size = max(ndev, 1 << (int(slow.size) - 1).bit_length())
            pick = np.concatenate([slow, np.full(size - slow.size, slow[0])])
            sub = jax.tree.map(lambda x: np.asarray(x)[pick], (feats, obs, mask))
            t2, f2, s2, i2 = map(np.asarray, _continue_batch(kind, target, jnp.asarray(theta[pick]),
                                                             *sub, delta, max_iter - first))
            n = slow.size
            theta[slow], f[slow], st[slow], it[slow] = t2[:n], f2[:n], s2[:n], it[slow] + i2[:n]
        stats = _stats_batch(kind, target, jnp.asarray(theta), feats, obs, mask, delta)
        stats = jax.tree.map(np.asarray, stats)
        for i in range(real):
            out.append(_finish(kind, target, None, theta[i], f[i], st[i], it[i],
                               jax.tree.map(lambda s: s[i], stats), delta))
        if progress is not None:
            progress(min(c0 + chunk, len(problems)), len(problems))
    return out


def _repad_dec(p, k):
    extra = k - p.feats[3].size
    if not extra:
        return p
    pad = [np.zeros(extra), np.ones(extra), np.zeros(extra), np.full(extra, 10**9), np.zeros(extra)]
    return dataclasses.replace(p, feats=p.feats[:3] + tuple(
        np.concatenate([f, z]) for f, z in zip(p.feats[3:], pad)))


def _repad(p, n):
    extra = n - p.obs.size
    npt = 3 if p.kind == "mpl" else len(p.feats)
    feats = tuple(np.concatenate([f, np.repeat(f[:1], extra)]) if j < npt else f
                  for j, f in enumerate(p.feats))
    return dataclasses.replace(p, feats=feats, obs=np.concatenate([p.obs, np.ones(extra)]),
                               mask=np.concatenate([p.mask, np.zeros(extra, bool)]))


def fit(runs, law: str = "cpt", column: str = "loss", *, target: str | None = None,
        delta: float = 1e-3, max_iter: int = 200, lam: float = 0.999) -> FitResult:
    """Fit one law to one loss column of one or more runs (parameters shared across runs).

    Args:
        runs: a :class:`Run` or a list of them (e.g. all PT and CPT runs of one validation set).
        law: ``pt``, ``cpt``, ``replay``, ``size``, ``open`` or ``mpl``.
        column: the loss column to fit.
        target: ``general`` or ``domain`` (only the replay law's form depends on it).
        delta: Huber δ on log residuals.
    """
    if not (isinstance(delta, (int, float)) and delta > 0):
        raise ValueError(f"`delta` must be > 0, got {delta!r}")
    target = target or "general"
    prob = make_problem(runs, law, column, target=target, lam=lam)
    res = fit_batch([prob], delta=delta, max_iter=max_iter)[0]
    res.column = column
    for w in res.warnings:
        warnings.warn(w, RuntimeWarning, stacklevel=2)
    return res
