"""The forecaster's annealing term: each LR drop's gain realized by the LR area travelled after it.

Eq. 1 counts a drop's gain through the momentum m (``S2 = Σ m``), whose memory decays per *step*
(λ = 0.999): a drop is fully realized ~1 000 steps later, whatever the LR meanwhile. Real cooldowns
do not follow that: fitted on a cosine run, Eq. 1 credits a fast drop (a geometric or 1−√ cooldown)
with too much gain and a short cooldown (≲ 1 500 steps) with too little (experiments/forecast.py).
Here a drop Δη_k at step k is realized as the model moves on at the lower LR — by the LR *area*
after it, as in the Multi-Power Law (Luo et al. 2025, arXiv 2503.12811):

    S2ᵃ(t) = 1/(1 − λ) · Σ_{k ≤ t, after the peak} Δη_k · G(c·Σ_{τ=k..t} η_τ),   G(x) = 1 − (1 + x)^(−β)

with c = 25 (per unit of LR·steps) and β = 0.6 fixed, and 1/(1 − λ) = 1 000 so that a fully
realized anneal counts as in Eq. 1. The forecast law is then ``L = L0 + A·S1^−α − C·S2ᵃ``: Eq. 1
with S2 replaced, four parameters, fitted the same way. c and β: the Multi-Power Law's fits have
β ≈ 0.59 at 25M-400M; c was chosen on the 29 real cooldown branches of experiments/forecast.py
(two studies: c ∈ [22, 30] was best for both, separately) — its numbers there are in-sample for
that one constant.

Computed exactly up to a quadrature: (1 + x)^(−β) = Γ(β)⁻¹ ∫ exp(βu − eᵘ(1 + x)) du, a sum of 49
exponentials (|error| < 1e-5 of G), so S2ᵃ is a sum of momenta M_j(t) = e^(−a_j·η_t)·(M_j(t−1) +
Δη_t) that decay per unit of area — associative scans over chunks of steps; a sum over few points
and drops (a forecast's last step) is taken directly instead, exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import InputError
from ..laws import Areas, PTLaw, check_schedule

__all__ = ["C_AREA", "BETA", "realized_annealing", "RealizedLaw", "RealizedFit", "areas_of", "fit_realized"]

C_AREA = 25.0
BETA = 0.6
_SCALE = 1000.0  # 1/(1 − λ) at λ = 0.999: a fully realized drop counts as in Eq. 1's S2


@functools.lru_cache(maxsize=None)
def _nodes(beta: float, c: float):
    u = np.arange(-20.0, 4.0 + 1e-9, 0.5)
    w = 0.5 * np.exp(beta * u - np.exp(u)) / math.gamma(beta)
    return w, c * np.exp(u)


_CHUNK = 1 << 15  # the scan's steps per call: one shape to compile, bounded memory (~13 MB)
_DIRECT = 2e7  # (indices × drops) up to which the sum is taken directly (exact, O(T) a point)


@jax.jit
def _scan_chunk(h0, lr, d, rates, weights):
    """One chunk of the momenta: h_t = e^(−a·η_t)·(h_{t−1} + d_t) from ``h0``; returns Σ_j w_j·h_j(t)
    for each step of the chunk and the last h."""
    decay = jnp.exp(-rates[None, :] * lr[:, None])  # (chunk, J)

    def combine(x, y):  # (a, b) composed: h ↦ a·h + b
        return x[0] * y[0], y[0] * x[1] + y[1]

    a, b = jax.lax.associative_scan(combine, (decay, decay * d[:, None]))
    h = a * h0[None, :] + b
    return h @ weights, h[-1]


def _by_scan(lr, d, idx, c, beta):
    """Σ_k d_k·G(...) at ``idx`` through the quadrature's momenta, chunk by chunk."""
    w, rates = _nodes(float(beta), float(c))
    rates, w = jnp.asarray(rates), jnp.asarray(w)
    h = jnp.zeros(rates.shape, rates.dtype)
    out = np.zeros(idx.size)
    first = int(np.flatnonzero(d)[0])  # before the first drop every momentum is 0
    for s in range(first, int(idx.max()) + 1, _CHUNK):
        e = min(s + _CHUNK, lr.size)
        seg = lambda v: np.concatenate([v[s:e], np.zeros(_CHUNK - (e - s))])  # η = 0, no drop: h kept
        m, h = _scan_chunk(h, jnp.asarray(seg(lr)), jnp.asarray(seg(d)), rates, w)
        sel = (idx >= s) & (idx < e)
        if sel.any():
            out[sel] = np.asarray(m, np.float64)[idx[sel] - s]
    return np.cumsum(d)[idx] - out


def _direct(lr, d, idx, c, beta):
    """Σ_{k ≤ t} d_k·(1 − (1 + c·Σ_{τ=k..t} η_τ)^−β) at each t of ``idx``, summed directly."""
    k = np.flatnonzero(d)
    cum = np.concatenate([[0.0], np.cumsum(lr)])
    out = np.zeros(idx.size)
    rows = max(1, int(4e6 // max(k.size, 1)))
    for s in range(0, idx.size, rows):
        t = idx[s:s + rows]
        area = cum[t + 1][:, None] - cum[k][None, :]
        g = np.where(k[None, :] <= t[:, None], 1 - np.power(1 + c * np.maximum(area, 0), -beta), 0.0)
        out[s:s + rows] = g @ d[k]
    return out


def realized_annealing(lr, idx, *, c: float = C_AREA, beta: float = BETA) -> np.ndarray:
    """S2ᵃ of the per-step schedule ``lr`` at the 0-based step indices ``idx`` (float64 array).

    Exact sums where they are small (a point costs O(its drops)); otherwise the 49-exponential
    quadrature (|error| < 1e-5 of the full drop) in chunks of 32 768 steps. The drops counted are
    those after the schedule's (first) global maximum: a schedule that re-warms above an earlier
    peak counts its drops from the later one."""
    check_schedule(lr, name="lr")
    lr = np.asarray(lr, np.float64)
    if lr.ndim != 1:
        raise InputError(f"`lr` must be a per-step LR array of shape (T,), got shape {lr.shape}")
    raw = np.asarray(idx).reshape(-1)
    if raw.size and (not np.issubdtype(raw.dtype, np.integer) or raw.min() < 0 or raw.max() >= lr.size):
        raise InputError(f"`idx` must be integer step indices in [0, {lr.size - 1}], got {np.asarray(idx)!r}"[:300])
    idx = raw.astype(np.int64)
    peak = int(np.argmax(lr))
    d = np.zeros_like(lr)
    d[peak + 1:] = lr[peak:-1] - lr[peak + 1:]  # the drops after the peak (warmup rises are not gains)
    if not idx.size or not np.any(d[: idx.max() + 1]):
        return np.zeros(idx.size)
    if idx.size * np.count_nonzero(d[: idx.max() + 1]) <= _DIRECT:
        return _SCALE * _direct(lr, d, idx, float(c), float(beta))
    return _SCALE * _by_scan(lr, d, idx, float(c), float(beta))


class RealizedLaw(PTLaw):
    """``L = L0 + A·S1^−α − C·S2ᵃ``: Eq. 1 with S2 replaced by the realized annealing area
    (`realized_annealing`, c = ``C_AREA``, β = ``BETA``). The forecaster's law; evaluate it
    with `loss` (``cptjax.predict`` takes the area laws, whose S2 is Eq. 1's)."""

    kind = "pt-realized"

    def __call__(self, a, *, replay=None, size=None):
        raise InputError("a pt-realized law (the forecaster's) is evaluated with law.loss(lr, idx), not predict: "
                         "its annealing term is not Eq. 1's S2")

    def loss(self, lr, idx=None) -> np.ndarray:
        """The loss after each step of ``lr`` (or at 0-based step indices ``idx``)."""
        lr = np.asarray(lr, np.float64)
        idx = np.arange(lr.size) if idx is None else np.asarray(idx).reshape(-1)
        a = areas_of(lr, idx)
        return self.L0 + self.A * np.power(a.s1_pt + a.s1_cpt, -self.alpha) - self.C * (a.s2_pt + a.s2_cpt)

    def to_dict(self):
        return {**super().to_dict(), "anneal": {"form": "realized", "c": C_AREA, "beta": BETA}}


def areas_of(lr, idx) -> Areas:
    """S1 (as Eq. 1's: the LR summed to each step, in ``s1_pt``) and S2ᵃ in place of S2 (in
    ``s2_pt``), at 0-based step indices ``idx``."""
    s2 = realized_annealing(lr, idx)  # checks lr and idx
    zero = np.zeros_like(s2)
    return Areas(np.cumsum(np.asarray(lr, np.float64))[np.asarray(idx).reshape(-1)], zero, s2, zero)


@dataclasses.dataclass
class RealizedFit:
    """A least-squares fit of `RealizedLaw` (relative residuals): the law, the parameters'
    covariance (L0, A, α, C; C's row and column 0 when it was held), the residuals' rmse (loss
    units) and mean relative error."""

    law: RealizedLaw
    cov: np.ndarray
    rmse: float
    mean_rel_error: float
    status: str = "converged"


_ALPHAS = np.geomspace(0.02, 3.0, 64)
_SUBSETS = {n: [k for k in ((0, 1, 2), (0, 1), (0, 2), (1, 2), (0,), (1,), (2,)) if max(k) < n] for n in (2, 3)}


def _golden(f, lo: float, hi: float, steps: int = 48) -> float:
    """The minimiser of a unimodal ``f`` on [lo, hi] by golden section: one new evaluation a step."""
    g = (math.sqrt(5) - 1) / 2
    a1, a2 = hi - g * (hi - lo), lo + g * (hi - lo)
    f1, f2 = f(a1), f(a2)
    for _ in range(steps):
        if f1 < f2:
            hi, a2, f2 = a2, a1, f1
            a1 = hi - g * (hi - lo)
            f1 = f(a1)
        else:
            lo, a1, f1 = a1, a2, f2
            a2 = lo + g * (hi - lo)
            f2 = f(a2)
    return (lo + hi) / 2


def fit_realized(runs, column, *, free_c: bool = True) -> RealizedFit:
    """Fit ``L0, A, α, C`` to the loss ``column`` of ``runs`` (jointly, all parameters shared) by
    variable projection: L0, A and C (all ≥ 0) by linear least squares at each α of a grid from
    0.02 to 3, then α refined by golden section — the global optimum in α, no start to choose.
    ``free_c=False`` (or runs with no drop after their peak) holds C at 0."""
    s1, s2, y = [], [], []
    for r in runs:
        check_schedule(r.lr, name=f"{r.name}: lr")
        ix, v = r.points(column)
        if np.any(np.asarray(v) <= 0):
            raise InputError(f"{r.name}: column {column!r} has a loss <= 0; the law's losses are positive")
        a = areas_of(np.asarray(r.lr, np.float64), ix)
        s1.append(np.asarray(a.s1_pt + a.s1_cpt)), s2.append(np.asarray(a.s2_pt)), y.append(np.asarray(v, np.float64))
    s1, s2, y = (np.concatenate(v) for v in (s1, s2, y))
    free_c = free_c and np.ptp(s2) > 0
    ls1, w = np.log(s1), 1.0 / y

    def solve(alpha):
        cols = [np.ones_like(s1), np.exp(-alpha * ls1)] + ([-s2] if free_c else [])
        X = np.stack(cols, 1) * w[:, None]
        best = None
        for keep in _SUBSETS[X.shape[1]]:  # non-negative least squares by enumeration: 2-3 columns
            th, *_ = np.linalg.lstsq(X[:, keep], np.ones_like(y), rcond=None)
            if np.any(th < 0):
                continue
            full = np.zeros(3)
            full[list(keep)] = th
            rss = float(np.sum((X @ full[:X.shape[1]] - 1.0) ** 2))
            if best is None or rss < best[0]:
                best = (rss, full)
        return best if best is not None else (math.inf, np.zeros(3))

    scores = [solve(a)[0] for a in _ALPHAS]
    i = int(np.argmin(scores))
    alpha = _golden(lambda a: solve(a)[0], _ALPHAS[max(i - 1, 0)], _ALPHAS[min(i + 1, _ALPHAS.size - 1)])
    rss, (L0, A, C) = solve(alpha)
    if not (math.isfinite(rss) and math.isfinite(alpha)):
        raise InputError(f"the realized law could not be fitted to {', '.join(r.name for r in runs)}: no "
                         "non-negative L0, A, C fits these losses")
    law = RealizedLaw(L0=float(L0), A=float(A), alpha=float(alpha), C=float(C))
    pred = L0 + A * np.exp(-alpha * ls1) - C * s2
    # the covariance of (L0, A, α, C) from the weighted Jacobian at the optimum
    J = np.stack([np.ones_like(s1), np.exp(-alpha * ls1), -A * ls1 * np.exp(-alpha * ls1), -s2], 1) * w[:, None]
    if not free_c:
        J[:, 3] = 0.0
    n_free = 3 + free_c
    sigma2 = rss / max(y.size - n_free, 1)
    with np.errstate(all="ignore"):
        cov = sigma2 * np.linalg.pinv(J.T @ J)
    return RealizedFit(law, cov, float(np.sqrt(np.mean((pred - y) ** 2))), float(np.mean(np.abs(pred / y - 1))))


# a pytree as its parent (so that predict reaches __call__, which says what to do instead)
jax.tree_util.register_dataclass(RealizedLaw, data_fields=list(RealizedLaw.param_names()), meta_fields=["lam", "eps"])
