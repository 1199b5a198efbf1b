"""Fitting laws to loss logs, the maths: problems, the Huber objective on log residuals, starts
(variable projection, the grid) and batched Levenberg–Marquardt steps. The batch driver and
`fit` are in ``_batch``, the fit statistics in ``_stats``, the solver in ``_solver``.

Objective (docs/guide/laws.md): Σ Huber_δ(log L̂ − log L) over every logged point of every run of one
validation set, parameters shared across runs.  Positivity by reparameterisation (θ = log p).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os

import jax
import jax.numpy as jnp
import numpy as np

from .. import laws as _laws
from ..data import Run, load_run
from ._solver import MU0, RESULTS, huber, levenberg_marquardt
from ._solver import spd_solve as _spd_solve
from ..errors import DataError, InputError, InputTypeError

__all__ = ["FitProblem", "make_problem", "objective",
           "CONVERGED", "MAX_ITERATIONS", "NONFINITE", "STATUS"]

CONVERGED, MAX_ITERATIONS, NONFINITE = (int(r) for r in RESULTS)
LSQ_FLOOR = 1e-3  # see _vp_starts
VP_POINTS = 128  # variable projection on about this many points (an evenly strided subsample)
VP_POINTS_BASINS = 2048  # the same for the basins of one fit (finer: their starts decide the optimum)


# How starts are screened and IRLS weights used (see _solver.levenberg_marquardt): a fit from the
# variable-projection start (plus the grid, screened by objective value) has a 3-iteration IRLS
# warm-up; grid-only fits (the retry, given starts) screen each start by SCREEN_ITER LM
# iterations and keep IRLS weights throughout.
IRLS_START, IRLS_GRID, SCREEN_ITER = 3, 10**9, 8


# β is floored at e^−80: there (1 − (1+E·S)^(−β))/β equals log(1 + E·S) to machine precision, so
# the floor changes no prediction and keeps B = θ_B/β finite on the flat β → 0 side.
LOG_BETA_MIN = -80.0
STATUS = {CONVERGED: "converged", MAX_ITERATIONS: "max-iterations", NONFINITE: "non-finite"}


@functools.lru_cache(maxsize=None)
def _spec(kind):
    """(law class, parameter names, free-sign mask) from the law's own metadata (cached: it is
    asked for once per problem when results are built)."""
    if kind not in _laws.LAWS:
        raise InputError(f"unknown law {kind!r}; expected one of {sorted(_laws.LAWS)}")
    cls = _laws.LAWS[kind]
    free = np.array([not p.positive for p in cls.params])
    free.flags.writeable = False
    return cls, cls.param_names(), free


def _to_theta(kind, x):
    """Natural parameters → the solver's θ: log p for positive ones; for the shift term
    B·(1 − (1 + E·S)^(−β)), θ_B = B·β instead of B. The shift is then θ_B·(1 − (1+E·S)^(−β))/β,
    which tends to θ_B·log(1 + E·S) as β → 0: the valley B → ∞, β → 0 (B·β fixed) that noisy
    CPT data often favour becomes a straight, flat direction in log β instead of a curved one
    that Levenberg–Marquardt crawls along."""
    cls, names, free = _spec(kind)
    x = jnp.asarray(x)
    theta = jnp.where(free, x, jnp.log(jnp.where(free, 1.0, jnp.abs(x))))
    if cls.shift:
        b, be = names.index("B"), names.index("beta")
        theta = theta.at[..., b].set(x[..., b] * x[..., be])
    return theta


def _to_natural(kind, theta):
    cls, names, free = _spec(kind)
    x = jnp.where(free, theta, jnp.exp(theta))
    if cls.shift:
        b, be = names.index("B"), names.index("beta")
        beta = jnp.exp(jnp.maximum(theta[..., be], LOG_BETA_MIN))
        x = x.at[..., be].set(beta).at[..., b].set(theta[..., b] / beta)
    return x


# Jitted for whole batches: one cached executable, not a string of eager ops in a fresh process.
_to_theta_batch = jax.jit(_to_theta, static_argnums=0)
_to_natural_batch = jax.jit(_to_natural, static_argnums=0)


def _at_bound(kind, theta):
    """Which positive parameters ran to 0 or ∞ (|log p| > 15), (..., p) booleans, and whether β ran
    to 0 — for laws with the shift term the latter is its legitimate limit B·β·log(1 + E·S),
    reported apart."""
    cls, names, free = _spec(kind)
    bound = (np.abs(theta) > 15) & ~free
    beta_zero = np.zeros(bound.shape[:-1], bool)
    if cls.shift:
        be = names.index("beta")
        beta_zero = bound[..., be] & (theta[..., be] < 0)
        bound[..., be] &= ~beta_zero
    return bound, beta_zero


def _build(kind, x, opts=()):
    """The law with natural parameters ``x`` (..., p) and static options ``opts`` (pairs)."""
    cls, names, _ = _spec(kind)
    return cls(**dict(zip(names, (x[..., i] for i in range(len(names))))), **dict(opts))


@dataclasses.dataclass
class FitProblem:
    """One fitting problem as flat, padded arrays: the law's per-point features (and per-run
    extras, e.g. MPL's decrements), the observed losses and a mask of real points."""

    kind: str
    opts: tuple  # the law's static options as (name, value) pairs, e.g. the replay law's target
    feats: tuple
    obs: np.ndarray
    mask: np.ndarray
    run_of_point: np.ndarray
    idx_of_point: np.ndarray
    runs: list
    n_point_feats: int = 0  # feats[:n_point_feats] are per point, the rest per-run extras


def law_options(kind, target="general", form=None, lam=None, eps=None) -> tuple:
    """The static options of a law kind as hashable pairs (only those the law declares)."""
    cls = _spec(kind)[0]
    given = {"target": target, "form": form, "lam": None if lam is None else float(lam),
             "eps": None if not eps else float(eps)}
    for n in ("lam", "eps"):
        if given[n] is not None and n not in cls.meta:
            raise InputError(f"`{n}` applies to the area laws; the {kind} law takes the schedule itself "
                             "and has no momentum decay or S2 weight")
    opts = tuple((n, given[n]) for n in cls.meta if given.get(n) is not None)
    for n, v in opts:
        if n in cls.options() and v not in cls.options()[n]:
            raise InputError(f"`{n}` must be one of {cls.options()[n]} for the {kind} law, got {v!r}")
    return opts


def kernel_opts(opts) -> tuple:
    """A law's static options as its fitting kernels see them: without the areas' λ and ε, which
    shape the features only (so fits at different λ share one compilation)."""
    return tuple((n, v) for n, v in opts if n not in ("lam", "eps"))


def make_problem(runs, kind: str, column: str, *, target: str = "general", form: str | None = None,
                 lam: float | None = None, eps: float = 0.0, pad_to: int | None = None) -> FitProblem:
    """Turn runs + one loss column into a problem. Features come from each run's dense schedule
    (the law's ``features``: areas for area laws, decrements for MPL)."""
    cls = _spec(kind)[0]
    opts = law_options(kind, target, form, lam, eps)
    if not (isinstance(eps, (int, float)) and 0 <= eps < 1):
        raise InputError(f"`eps` (LR weight of S2) must be in [0, 1), got {eps!r}")
    if lam is not None and not 0 < float(lam) < 1:
        raise InputError(f"`lam` (momentum decay) must be in (0, 1), got {lam!r}")
    if isinstance(runs, (Run, str, bytes, os.PathLike)):
        runs = [runs]
    if isinstance(runs, dict) or not hasattr(runs, "__iter__"):
        raise InputTypeError(f"runs must be a cptjax.Run, a file path or a list of them, got {type(runs).__name__}")
    runs = list(runs)
    paths = [os.path.realpath(os.fsdecode(r)) for r in runs if isinstance(r, (str, bytes, os.PathLike))]
    twice = next((p for p in paths if paths.count(p) > 1), None)
    if twice is not None or len({id(r) for r in runs if isinstance(r, Run)}) < sum(isinstance(r, Run) for r in runs):
        raise InputError(f"runs: {twice or 'a Run'} is given twice (it would count double)")
    runs = [load_run(r) if isinstance(r, (str, bytes, os.PathLike)) else r for r in runs]
    if not runs:
        raise DataError("no runs to fit")
    bad = next((r for r in runs if not isinstance(r, Run)), None)
    if bad is not None:
        raise InputTypeError(f"runs must be cptjax.Run objects or file paths, got {type(bad).__name__}")
    obs, rid, pidx, pts, extra = [], [], [], [], []
    for r_i, run in enumerate(runs):
        ix, y = run.points(column)
        for cond in cls.uses:
            if getattr(run, cond) is None:
                what = {"replay": "replay ratio", "size": "model size"}.get(cond, cond)
                raise DataError(f"{run.name}: the {kind} law needs the run's {what} (--{cond})")
        p, e = cls.features(run.lr, run.n_pt, ix, lam, run.replay, run.size, r_i, eps=eps)
        pts.append(p)
        extra.append(e)
        obs.append(y)
        rid.append(np.full(y.size, r_i))
        pidx.append(ix)
    obs, rid, pidx = map(np.concatenate, (obs, rid, pidx))
    n = obs.size
    mask = np.ones(n, bool)
    extra = cls.join_extras(extra, [p[0].size for p in pts])
    pts = [np.concatenate(c) for c in zip(*pts)]
    if extra and extra[0].size == 0:  # e.g. no decrement at all: one inert entry keeps shapes
        extra = [np.full(1, v, np.float64) for v in cls.extra_pad]
    if pad_to is not None:
        if isinstance(pad_to, bool) or not isinstance(pad_to, (int, np.integer)) or not n <= pad_to <= max(4 * n, 1 << 16):
            raise InputError(f"pad_to must be an integer from the {n} points to {max(4 * n, 1 << 16):,}, got {pad_to!r}")
        pts = [np.concatenate([f, np.repeat(f[:1], pad_to - n)]) for f in pts]
        obs = np.concatenate([obs, np.ones(pad_to - n)])
        mask = np.concatenate([mask, np.zeros(pad_to - n, bool)])
    return FitProblem(kind, opts, tuple(pts) + tuple(extra), obs, mask, rid, pidx, list(runs),
                      len(pts))


def _predict_points(kind, opts, x, feats):
    return _build(kind, x, opts).at_points(feats)


def _residuals(kind, opts, theta, feats, obs, mask):
    pred = _predict_points(kind, opts, _to_natural(kind, theta), feats)
    r = jnp.log(jnp.where(pred > 0, pred, jnp.nan)) - jnp.log(obs)
    return jnp.where(mask, r, 0.0)


def _cpt_residuals_and_jacobian(theta, feats, obs, mask, log_s1=None, log_obs=None):
    """Eq. 4 residuals and their Jacobian w.r.t. θ, (n, p), in closed form: it reuses the primal's
    transcendentals (≈3x cheaper than jacfwd here; tested against jacfwd). ``log_s1`` and
    ``log_obs`` are loop invariants a solver may compute once."""
    r, Jt = _cpt_residuals_and_jacobian_t(theta, feats, obs, mask, log_s1, log_obs)
    return r, Jt.T


def _cpt_residuals_and_jacobian_t(theta, feats, obs, mask, log_s1=None, log_obs=None):
    """As `_cpt_residuals_and_jacobian`, with the Jacobian transposed, (p, n): the layout
    the solver's Jᵀ W J wants (≈15% faster per iteration on CPU)."""
    lL0, lA, lal, lC1, lC2, G, lE, lbe = (theta[..., i] for i in range(8))  # G = B·β
    lbe = jnp.maximum(lbe, LOG_BETA_MIN)
    L0, A, al, C1, C2, E, be = (jnp.exp(v) for v in (lL0, lA, lal, lC1, lC2, lE, lbe))
    s1p, s1c, s2p, s2c = feats[:4]
    log_s1 = jnp.log(s1p + s1c) if log_s1 is None else log_s1
    log_obs = jnp.log(obs) if log_obs is None else log_obs
    P = jnp.exp(-al * log_s1)
    Es = E * s1c
    ell = jnp.log1p(Es)
    m1 = jnp.expm1(-be * ell)  # V − 1, V = (1 + E·S1_cpt)^(−β)
    V = 1 + m1
    q = -m1 / be  # (1 − V)/β
    pred = L0 + A * P - C1 * s2p - C2 * s2c + G * q
    ok = mask & (pred > 0)
    safe = jnp.where(ok, pred, 1.0)
    r = jnp.where(ok, jnp.log(safe) - log_obs, jnp.where(mask, jnp.nan, 0.0))
    inv = 1 / safe
    cols = [L0 + 0 * P, A * P, -A * P * al * log_s1, -C1 * s2p, -C2 * s2c, q,
            G * V * Es / (1 + Es), jnp.where(theta[..., 7] > LOG_BETA_MIN, G * (ell * V - q), 0.0)]
    return r, jnp.stack(cols) * jnp.where(ok, inv, 0.0)


def objective(kind, opts, theta, feats, obs, mask, delta=1e-3):
    """Σ Huber_δ(log L̂ − log L); +inf where the prediction is non-positive or non-finite."""
    r = _residuals(kind, opts, theta, feats, obs, mask)
    f = jnp.sum(huber(r, delta))
    return jnp.where(jnp.isfinite(f), f, jnp.inf)


def _lm(kind, opts, theta0, feats, obs, mask, delta, max_iter, mu0=MU0, nu0=2.0, irls_iter=3):
    """The generic solver (``_solver.levenberg_marquardt``) on one problem's residuals: Eq. 4's
    closed-form Jacobian (≈3x cheaper than jacfwd, tested against it) or forward-mode autodiff
    for any other law."""
    if kind == "cpt":
        inv = dict(log_s1=jnp.log(feats[0] + feats[1]), log_obs=jnp.log(obs))
        rj = lambda th: _cpt_residuals_and_jacobian_t(th, feats, obs, mask, **inv)
    else:
        resid = functools.partial(_residuals, kind, opts, feats=feats, obs=obs, mask=mask)
        rj = lambda th: (resid(th), jax.jacfwd(resid)(th).T)
    return levenberg_marquardt(rj, theta0, delta, max_iter, mu0, nu0, irls_iter)


def starts(kind: str, obs: np.ndarray) -> np.ndarray:
    """The fallback multi-start grid (natural units) from the law's ``Param.start`` values, L0 as
    fractions of the lowest observed loss."""
    lo = float(np.nanmin(obs))
    vals = [[v * lo for v in p.start] if p.name == "L0" else list(p.start) for p in _spec(kind)[0].params]
    return np.array(list(itertools.product(*vals)), np.float64)


def starts_batch(kind: str, lo: np.ndarray) -> np.ndarray:
    """`starts` of many problems at once from each one's lowest observed loss ``lo`` (n,):
    (n, starts, p)."""
    cls, names, _ = _spec(kind)
    out = np.repeat(starts(kind, np.ones(1))[None], lo.size, 0)
    if "L0" in names:
        out[..., names.index("L0")] *= lo[:, None]
    return out


def _vp_starts(kind, opts, feats, obs, mask, k, points=VP_POINTS):
    """Data-driven starts by variable projection, for any law: with the nonlinear parameters fixed
    on the law's grid (``Param.grid``), the law is affine in its linear ones (``Param.linear``:
    L0, A, C…, B), so weighted linear least squares on relative residuals (the first-order log
    residual) gives them in closed form. The basis is the law's Jacobian in the linear parameters
    at 0 (forward mode: one primal evaluation per grid point, exact since the law is affine in
    them). Positive linear parameters the fit puts at ≤ 0 are raised to a floor (LSQ_FLOOR).
    Returns the ``k`` starts (θ, shape (k, p)) with the smallest least-squares error, computed on
    an evenly strided subsample of about ``points`` points (batches: ``VP_POINTS``; the basins
    of one fit: ``VP_POINTS_BASINS``)."""
    cls, names, _ = _spec(kind)
    stride = max(1, obs.shape[-1] // points)  # a Python int: shapes are static under jit
    if stride > 1 and not getattr(cls, "extra_pad", ()):
        # A start needs the curve's shape, not every point: an evenly strided subsample (laws
        # whose extras refer to points by index, MPL, keep them all).
        feats = tuple(f[::stride] for f in feats)
        obs, mask = obs[::stride], mask[::stride]
    lin = np.array([i for i, q in enumerate(cls.params) if q.linear])
    non = np.array([i for i, q in enumerate(cls.params) if not q.linear])
    pos = jnp.array([cls.params[i].positive for i in lin])
    grid = jnp.array(list(itertools.product(*(cls.params[i].grid for i in non))), obs.dtype)
    wt = jnp.where(mask, 1 / obs, 0.0)

    def one(xn):
        def pred(c):  # the law built from scalars: the nonlinear ones carry no tangent
            vals = dict(zip([names[i] for i in non], xn)) | dict(zip([names[i] for i in lin], c))
            return cls(**vals, **dict(opts)).at_points(feats)
        c0 = jnp.zeros(lin.size, obs.dtype)
        base, cols = pred(c0), jax.jacfwd(pred)(c0).T  # (n,), (n_lin, n)
        Z, y = cols * wt, jnp.where(mask, obs - base, 0.0) * wt
        N, rhs = Z @ Z.T, Z @ y
        d = jnp.sqrt(jnp.diagonal(N)) + 1e-30  # Jacobi scaling
        c = _spd_solve(N / (d[:, None] * d[None, :]) + 1e-10 * jnp.eye(lin.size), rhs / d) / d
        # A positive parameter the least squares puts at ≤ 0 starts where its term is LSQ_FLOOR of
        # the loss (rms), not at ~0: in log space a near-zero start is a dead end.
        c = jnp.where(pos, jnp.maximum(c, LSQ_FLOOR * jnp.sqrt(mask.sum()) / d), c)
        sse = c @ N @ c - 2 * c @ rhs + y @ y
        x = jnp.zeros(len(names), obs.dtype).at[non].set(xn).at[lin].set(c)
        return x, jnp.where(jnp.isfinite(sse), sse, jnp.inf)

    x, sse = jax.vmap(one)(grid)
    return _to_theta(kind, x[jnp.argsort(sse)[:k]])


_vp_starts_jit = jax.jit(_vp_starts, static_argnums=(0, 1, 5, 6))


def initial_guesses(kind: str, opts, feats, obs, mask, grid: np.ndarray, n_vp: int = 1):
    """All starts of one problem in solver space θ: the ``n_vp`` best variable-projection starts
    followed by the grid (natural units, e.g. from `starts`)."""
    th = _to_theta(kind, jnp.asarray(grid))
    if n_vp:
        th = jnp.concatenate([_vp_starts(kind, opts, feats, obs, mask, n_vp), th], 0)
    return th


@functools.partial(jax.jit, static_argnames=("kind", "opts"))
def _start_batch(kind, opts, grid, feats, obs, mask, delta):
    """Problems (leading axis of everything) × starts (the variable-projection start, then
    ``grid``, natural units, second axis): each problem's best start by objective (one evaluation
    each, no Jacobian), θ. Only it goes on (under vmap every lane runs as long as the slowest), in
    `_continue_batch` — the one compiled solver every round, retry and basin shares (a fresh
    process traces it once). Grid-only fits (the retry, given starts) are screened by the batch
    driver with a few solver iterations instead (``_batch._screen_grid``)."""
    theta0 = jax.vmap(lambda f, o, m, g: initial_guesses(kind, opts, f, o, m, g))(feats, obs, mask, grid)
    obj = lambda th, f, o, m: objective(kind, opts, th, f, o, m, delta)
    f0 = jax.vmap(jax.vmap(obj, in_axes=(0, None, None, None)))(theta0, feats, obs, mask)
    best = jnp.argmin(jnp.where(jnp.isnan(f0), jnp.inf, f0), axis=1)
    return jnp.take_along_axis(theta0, best[:, None, None], 1)[:, 0]


@functools.partial(jax.jit, static_argnames=("kind", "opts"))
def _continue_batch(kind, opts, theta, mu, nu, feats, obs, mask, delta, budget, irls=0):
    """Continue LM (state θ, μ, ν) for at most ``budget`` (per problem) more iterations, the first
    ``irls`` of them with IRLS weights (``IRLS_START`` from a fresh start, ``IRLS_GRID`` for
    grid-only fits, 0 when continuing). ``irls`` is traced, not static: every use shares this
    compilation (and its tracing in a fresh process)."""
    lm = lambda t, a, b, f, o, m, n: _lm(kind, opts, t, f, o, m, delta, n, a, b, irls)
    return jax.vmap(lm)(theta, mu, nu, feats, obs, mask, budget)
