"""Forward and annealing areas S1, S2 of a (joined PT+CPT) schedule — docs/guide/laws.md.

The one place the momentum recurrence lives.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..errors import InputError
from ..schedules import MAX_LR, MIN_PEAK

__all__ = ["Areas", "areas", "areas_numpy", "momentum"]


class Areas(NamedTuple):
    """Per-step areas, each of length T (index j = after step j+1).

    ``s1_pt``/``s2_pt`` sum over PT steps only (constant during CPT); ``s1_cpt``/``s2_cpt`` sum
    over CPT steps only (zero during PT).
    """

    s1_pt: jax.Array
    s1_cpt: jax.Array
    s2_pt: jax.Array
    s2_cpt: jax.Array

    def at(self, idx) -> "Areas":
        """The areas at array indices ``idx`` (a gather: cheap evaluation at logged steps)."""
        return Areas(*(x[..., idx] for x in self))


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


_WARNED = []


def _warn_float32():
    """float64 input, x64 off: JAX computes in float32; say so once per process."""
    if not _WARNED:
        import warnings

        warnings.warn("cptjax: the schedule is float64 but JAX's x64 mode is off, so it is computed "
                      "in float32 (relative error ~1e-6; areas over 10^5+ steps lose more): enable "
                      "float64 with jax.config.update('jax_enable_x64', True)", UserWarning, stacklevel=4)
        _WARNED.append(True)


def check_schedule(lr, n_pt=None, name: str = "lr") -> None:
    """Validate a concrete schedule and ``n_pt`` (skipped for traced values)."""
    if _is_concrete(lr):
        a = np.asarray(lr)
        if a.dtype == bool or not (jnp.issubdtype(a.dtype, jnp.floating) or jnp.issubdtype(a.dtype, jnp.integer)):
            raise InputError(f"`{name}` must be an array of real numbers (learning rates), got dtype {a.dtype}")
        if a.dtype == np.float64 and not jax.config.jax_enable_x64:
            _warn_float32()
        if a.ndim not in (1, 2):
            raise InputError(f"`{name}` must be a per-step LR array of shape (T,) or a batch "
                             f"(B, T), got shape {a.shape}")
        if a.size == 0:
            raise InputError(f"`{name}` is empty: a schedule needs at least one step")
        bad = ~np.isfinite(a)
        if bad.any():
            raise InputError(f"`{name}` has a non-finite LR at step {int(np.argmax(bad)) + 1}")
        if (a < 0).any():
            raise InputError(f"`{name}` has a negative LR at step {int(np.argmax(a < 0)) + 1} "
                             f"({a[np.argmax(a < 0)]:g})")
        top = float(a.max())
        if top > MAX_LR or 0 < top < MIN_PEAK:
            raise InputError(f"`{name}`: its largest LR is {top:g}, outside ({MIN_PEAK:g}, {MAX_LR:g}]: is it "
                             "in raw units (such as 2e-4)?")
    if n_pt is not None and _is_concrete(n_pt) and _is_concrete(lr):
        T = np.shape(lr)[-1]
        n = np.asarray(n_pt)
        if n.ndim > 1 or np.any((n < 0) | (n > T)) or np.any(n.astype(np.int64) != n):
            raise InputError(f"`n_pt` must be an integer in [0, {T}] (the schedule length), got {n_pt!r}")


def check_lam(lam, *, law: bool = False) -> None:
    """The momentum decay λ must be in [0, 1) (S2 grows as 1/(1 − λ)); a law's in (0, 1) (``law``:
    a law is fitted and carried with it). Traced λ is not checked."""
    if _is_concrete(lam):
        try:
            ok = (0 < float(lam) < 1) if law else (0 <= float(lam) < 1)
        except (TypeError, ValueError):
            ok = False
        if not ok or isinstance(lam, bool):
            span = "(0, 1)" if law else "[0, 1)"
            raise InputError(f"`lam` (the momentum decay λ) must be a number in {span}, got {lam!r}")


def widen(lr):
    """``lr`` as a JAX float array of at least 32 bits: integers become the default float, and
    half-precision schedules (bfloat16, float16) are widened, since their running sums lose
    percents (a bfloat16 schedule gave a 6% wrong loss)."""
    lr = jnp.asarray(lr)
    if not jnp.issubdtype(lr.dtype, jnp.floating) or lr.dtype.itemsize < 4:
        lr = lr.astype(jnp.result_type(float))
    return lr


def _one_minus(lam, dtype):
    """κ = 1 − λ, taken in float64 when λ is concrete: a float32 λ = 0.999 is off by 1.3e-8, which
    S2 ∝ 1/(1 − λ) would amplify to a 1.3e-5 relative error."""
    if isinstance(lam, jax.core.Tracer):
        return (1 - jnp.asarray(lam)).astype(dtype)
    return jnp.asarray(1.0 - np.float64(lam), dtype)


def momentum(d, lam, method: str = "auto"):
    """Annealing momentum m_i = λ·m_{i−1} + d_i, m_0 = 0, along the last axis of ``d``.

    Written as m_i = m_{i−1} − κ·m_{i−1} + d_i with κ = 1 − λ, which keeps float32 accurate.
    ``method``: ``"scan"`` (sequential ``lax.scan``), ``"associative"`` (parallel
    ``lax.associative_scan`` on the affine maps m ↦ (1 − c)·m + b, composed as
    c = c1 + c2 − c1·c2), or ``"auto"`` (``scan`` on CPU, where it compiles faster and runs as
    fast; ``associative`` on GPU/TPU; see benchmarks/areas.py).
    """
    d = jnp.asarray(d)
    return _momentum_k(d, _one_minus(lam, d.dtype), method)


def _combine(x, y):
    (c1, b1), (c2, b2) = x, y
    return c1 + c2 - c1 * c2, b1 - c2 * b1 + b2


def _blocked_associative(d, kappa, block: int = 1024):
    """Two-level parallel scan: within blocks of ``block`` steps, then across blocks. Same result
    as one associative scan over T, but XLA compiles it in a fraction of a second at T = 10^6
    (a flat scan took ~55 s to compile on CPU)."""
    T = d.shape[-1]
    if T <= 2 * block:
        c = jnp.broadcast_to(kappa, d.shape)
        return lax.associative_scan(_combine, (c, d), axis=d.ndim - 1)[1]
    nb = -(-T // block)
    x = jnp.pad(d, [(0, 0)] * (d.ndim - 1) + [(0, nb * block - T)])
    x = x.reshape(*d.shape[:-1], nb, block)
    local = lax.associative_scan(_combine, (jnp.broadcast_to(kappa, x.shape), x), axis=x.ndim - 1)[1]
    log_a = jnp.log1p(-kappa)
    c_block = -jnp.expm1(block * log_a)  # 1 − (1 − κ)^block
    ends = local[..., -1]
    carry = lax.associative_scan(_combine, (jnp.broadcast_to(c_block, ends.shape), ends),
                                 axis=ends.ndim - 1)[1]
    prev = jnp.concatenate([jnp.zeros_like(carry[..., :1]), carry[..., :-1]], axis=-1)
    decay = jnp.exp(jnp.arange(1, block + 1, dtype=d.dtype) * log_a)
    m = local + prev[..., None] * decay
    return m.reshape(*d.shape[:-1], nb * block)[..., :T]


def _momentum_k(d, kappa, method):
    if method == "auto":
        method = "scan" if jax.default_backend() == "cpu" else "associative"
    if method == "scan":
        def step(m, di):
            m = m - kappa * m + di
            return m, m

        moved = jnp.moveaxis(d, -1, 0)
        _, m = lax.scan(step, jnp.zeros(moved.shape[1:], d.dtype), moved)
        return jnp.moveaxis(m, 0, -1)
    if method == "associative":
        return _blocked_associative(d, kappa)
    raise InputError(f"`method` must be 'auto', 'scan' or 'associative', got {method!r}")


def areas(lr, n_pt=None, lam=0.999, eta0=None, *, pt_warmup: str = "literal",
          method: str = "auto", eps: float = 0.0) -> Areas:
    r"""Forward and annealing areas of a joined PT+CPT schedule (docs/guide/laws.md).

    In symbols (LaTeX):

        S_1(t) = \sum_{i\le t}\eta_i,\quad m_i = \lambda m_{i-1} + (\eta_{i-1}-\eta_i),\quad
        S_2(t) = \sum_{i\le t} m_i,

    split at the transfer point ``n_pt``; the momentum carries across it.

    Args:
        lr: 1-D array of per-step LRs (``lr[i-1]`` = η_i), PT steps first; or a batch (B, T).
        n_pt: number of PT steps (``None``: the whole schedule is PT); per row for a batch. May
            be traced (vmap over runs).
        lam: momentum decay λ (differentiable).
        eta0: η_0, the LR before step 1; default η_1 (first decrement 0).
        pt_warmup: ``"literal"`` (a rising LR gives negative annealing area) or ``"peak"``: the
            decrements up to the PT peak count as zero, as if the warmup had run at the peak (S1
            stays literal).
        method: recurrence implementation, see `momentum`.
        eps: LR-weighted annealing area (CPT paper App. J, Eq. 9): S2 = Σ m_i·η_i^ε, so that
            steps at ~zero LR stop adding annealing credit. 0 (default): the plain S2.

    Returns:
        `Areas` ``(s1_pt, s1_cpt, s2_pt, s2_cpt)``, each of length T, in ``lr``'s dtype.

    Examples:
        >>> import numpy as np
        >>> a = areas(np.full(4, 0.5), n_pt=2)
        >>> [float(x[-1]) for x in a]
        [1.0, 1.0, 0.0, 0.0]
    """
    check_schedule(lr, n_pt)
    if pt_warmup not in ("literal", "peak"):
        raise InputError(f"`pt_warmup` must be 'literal' or 'peak', got {pt_warmup!r}")
    if np.ndim(lr) == 2:
        # A batch (B, T): on CPU one schedule after another (lax.map) runs the fast sequential
        # scan ~2.5x faster than vmap's batched carry; elsewhere vmap (benchmarks/areas.py).
        lr = jnp.asarray(lr)
        n = jnp.broadcast_to(jnp.asarray(lr.shape[-1] if n_pt is None else n_pt), lr.shape[:1])
        one = lambda x: areas(x[0], x[1], lam, eta0, pt_warmup=pt_warmup, method=method, eps=eps)
        if method in ("auto", "scan") and jax.default_backend() == "cpu":
            return lax.map(one, (lr, n))
        return jax.vmap(lambda x, k: one((x, k)))(lr, n)
    lr = widen(lr)
    check_lam(lam)
    if eta0 is not None and _is_concrete(eta0) and not (np.isfinite(eta0) and float(eta0) >= 0):
        raise InputError(f"`eta0` (the LR before step 1) must be a finite number >= 0, got {eta0!r}")
    n = lr.shape[-1] if n_pt is None else n_pt
    e0 = lr[..., 0] if eta0 is None else eta0
    if not (isinstance(eps, (int, float)) and 0 <= eps < 1):
        raise InputError(f"`eps` (LR weight of S2) must be a number in [0, 1), got {eps!r}")
    return _areas(lr, n, _one_minus(lam, lr.dtype), jnp.asarray(e0, lr.dtype), pt_warmup, method,
                  float(eps))


def _lr_weight(lr, eps):
    """η^ε with a safe zero (η = 0 gives weight 0 and a finite gradient); 1 when ε = 0."""
    if not eps:
        return None
    pos = lr > 0
    return jnp.where(pos, jnp.where(pos, lr, 1.0) ** eps, 0.0)


@functools.partial(jax.jit, static_argnums=(4, 5, 6))
def _areas(lr, n_pt, kappa, eta0, pt_warmup, method, eps=0.0):
    T = lr.shape[-1]
    d = jnp.concatenate([eta0[..., None], lr[..., :-1]], axis=-1) - lr
    idx = jnp.arange(T)
    in_pt = idx < n_pt
    if pt_warmup == "peak":
        peak_at = jnp.argmax(jnp.where(in_pt, lr, -jnp.inf), axis=-1)
        d = jnp.where(idx <= peak_at, 0.0, d)
    if method == "auto":
        method = "scan" if jax.default_backend() == "cpu" else "associative"
    zero = jnp.zeros((), lr.dtype)
    if method == "scan":
        # One sequential pass carrying (m, S1_pt, S1_cpt, S2_pt, S2_cpt): on CPU this beats a
        # separate recurrence plus cumulative sums (XLA's CPU cumsum is a log-depth scan).
        # In float32 the four running sums use Kahan compensation: a plain sequential sum over
        # 10^6 steps drifts by ~5e-3 relative (the tests hold it to 1e-5).
        kahan = jnp.finfo(lr.dtype).bits < 64

        def add(s, c, x, on):
            if not kahan:
                return jnp.where(on, s + x, s), c
            y = x - c
            t = s + y
            return jnp.where(on, t, s), jnp.where(on, (t - s) - y, c)

        w = _lr_weight(lr, eps)

        def step(carry, x):
            m, s, c = carry
            di, eta, pt, wi = x
            m = m - kappa * m + di
            mw = m if wi is None else m * wi
            s1p, c1p = add(s[0], c[0], eta, pt)
            s1c, c1c = add(s[1], c[1], eta, ~pt)
            s2p, c2p = add(s[2], c[2], mw, pt)
            s2c, c2c = add(s[3], c[3], mw, ~pt)
            out = (s1p, s1c, s2p, s2c)
            return (m, out, (c1p, c1c, c2p, c2c)), out

        z = jnp.zeros(lr.shape[:-1], lr.dtype)
        xs = (jnp.moveaxis(d, -1, 0), jnp.moveaxis(lr, -1, 0),
              jnp.moveaxis(jnp.broadcast_to(in_pt, d.shape), -1, 0), None if w is None else jnp.moveaxis(w, -1, 0))
        _, out = lax.scan(step, (z, (z,) * 4, (z,) * 4), xs)
        return Areas(*(jnp.moveaxis(o, 0, -1) for o in out))
    m = _momentum_k(d, kappa, method)
    w = _lr_weight(lr, eps)
    if w is not None:
        m = m * w
    # One cumulative sum over the four split series keeps S1 and S2 on the same (pairwise) path.
    parts = jnp.stack([jnp.where(in_pt, lr, zero), jnp.where(in_pt, zero, lr),
                       jnp.where(in_pt, m, zero), jnp.where(in_pt, zero, m)])
    s = jnp.cumsum(parts, axis=-1)
    return Areas(s[0], s[1], s[2], s[3])


@functools.lru_cache(maxsize=16)
def _powers(b: int, lam: float) -> np.ndarray:
    """λ^j for j < b (read-only; the same few (b, λ) recur for every run of a batch)."""
    p = np.exp(np.arange(b) * math.log(lam))
    p.flags.writeable = False
    return p


def _momentum_np(d, lam: float):
    """The momentum recurrence m_i = λ·m_{i−1} + d_i in numpy (float64) for concrete inputs: in
    blocks of b steps, where λ^(−b) ≤ 2^10, each block in closed form
    m = λ^j·cumsum(λ^(−j)·d) (error ≤ 2^10·ε), blocks joined by the same recurrence on their
    end values with decay λ^b (recursively); for λ ≤ 2^−10 a truncated sum of shifted copies."""
    T, lam = d.size, float(lam)
    log_l = math.log(lam)
    b = int(10 * math.log(2) / -log_l)
    if b <= 1:  # λ ≤ 2^-10: λ^K < 1e-17 after K ≤ 6 terms
        m, term = d.copy(), d
        for _ in range(int(math.ceil(17 * math.log(10) / -log_l))):
            term = np.concatenate([[0.0], term[:-1]]) * lam
            m += term
        return m
    b = min(b, T)
    nb = -(-T // b)
    x = np.concatenate([d, np.zeros(nb * b - T)]).reshape(nb, b)
    p = _powers(b, lam)  # λ^j
    local = np.cumsum(x / p, axis=1) * p
    if nb > 1:
        carry = _momentum_np(local[:, -1], math.exp(b * log_l))  # m at each block's end
        local[1:] += carry[:-1, None] * (lam * p)
    return local.reshape(-1)[:T]


def _prefix_at(x, idx):
    """``np.cumsum(x)[idx]`` without the whole cumulative sum (a sequential scan: the cost of
    building a fitting problem): sums of the segments between the sorted indices, vectorised,
    then a cumulative sum over the segments only. Equal to rounding."""
    if idx.size == 0:
        return np.zeros(0)
    u, inv = np.unique(idx, return_inverse=True)
    seg = np.add.reduceat(x[:u[-1] + 1], np.concatenate([[0], u[:-1] + 1]))
    return np.cumsum(seg)[inv.reshape(idx.shape)]


def areas_numpy(lr, n_pt, lam: float = 0.999, eta0=None, eps: float = 0.0, idx=None) -> Areas:
    """`areas` (``pt_warmup="literal"``) for a concrete 1-D float64 schedule, in numpy: no
    dispatch, no compilation; what building a fitting problem needs (tested against a plain loop
    to 1e-12). ``idx``: only these array indices (the split is then done on them alone)."""
    lr = np.asarray(lr, np.float64)
    T = lr.size
    n = T if n_pt is None else int(n_pt)
    d = np.empty(T)
    d[0] = 0.0 if eta0 is None else float(eta0) - lr[0]
    np.subtract(lr[:-1], lr[1:], out=d[1:])
    m = _momentum_np(d, lam)
    if eps:
        m = m * np.where(lr > 0, np.where(lr > 0, lr, 1.0) ** eps, 0.0)
    # S2 without a cumulative sum: Σ m = λ·Σ m_prev + Σ d, and Σ_{k≤i} d_k telescopes to
    # d_0 + lr_0 − lr_i, so S2_i = (d_0 + (lr_0 − lr_i) − λ·m_i) / (1 − λ) — rounding ε/(1 − λ)
    # relative, so only for λ ≤ 0.999 (the paper's λ and below) and eps = 0. S1 at given indices:
    # segment sums (vectorised), then a cumulative sum over the segments only.
    closed = not eps and float(lam) <= 0.999
    s2_at = lambda i: (d[0] + (lr[0] - lr[i]) - lam * m[i]) / (1.0 - lam)
    if idx is not None:
        idx = np.asarray(idx)
        s1 = _prefix_at(lr, idx)
        s2 = s2_at(idx) if closed else _prefix_at(m, idx)
        at_n = (np.sum(lr[:n]), (s2_at(n - 1) if closed else np.sum(m[:n]))) if n else (0.0, 0.0)
        pt = idx < n
    else:
        s1, s2 = np.cumsum(lr), (s2_at(np.arange(T)) if closed else np.cumsum(m))
        at_n = (s1[n - 1], s2[n - 1]) if n else (0.0, 0.0)
        pt = np.arange(T) < n
    s1p, s2p = np.where(pt, s1, at_n[0]), np.where(pt, s2, at_n[1])
    return Areas(s1p, s1 - s1p, s2p, s2 - s2p)


class PTState(NamedTuple):
    """The PT history summarised at the transfer point: what the CPT areas need from it."""

    s1_pt: jax.Array
    s2_pt: jax.Array
    m: jax.Array  # annealing momentum after the last PT step
    eta: jax.Array  # last PT LR (η_0 of the CPT part)


def pt_state(pt, lam=0.999, eta0=None, eps: float = 0.0) -> PTState:
    """Summarise a PT schedule (see `continue_areas`)."""
    a = areas(pt, None, lam, eta0)
    pt = jnp.asarray(pt)
    # m_T from the identity S2(T) − S2(T−1) = m_T (of the plain S2: m is the raw momentum).
    m = a.s2_pt[-1] - (a.s2_pt[-2] if pt.shape[-1] > 1 else 0.0)
    s2 = a.s2_pt[-1] if not eps else areas(pt, None, lam, eta0, eps=eps).s2_pt[-1]
    return PTState(a.s1_pt[-1], s2, m, pt[-1])


def continue_areas(cpt, state: PTState, lam=0.999, method: str = "auto", eps: float = 0.0) -> Areas:
    """Areas of the CPT steps only (length of ``cpt``), continuing a summarised PT history:
    the momentum carries across the transfer. Equals ``areas(join(pt, cpt))[n_pt:]`` at a
    fraction of the cost when the PT part is fixed (schedule design)."""
    cpt = jnp.asarray(cpt)
    kappa = _one_minus(lam, cpt.dtype)
    d = jnp.concatenate([state.eta[None].astype(cpt.dtype), cpt[:-1]]) - cpt
    m = _momentum_k(d, kappa, method)
    m = m + state.m * jnp.exp(jnp.arange(1, cpt.shape[-1] + 1, dtype=cpt.dtype) * jnp.log1p(-kappa))
    w = _lr_weight(cpt, eps)
    s1c, s2c = jnp.cumsum(cpt), jnp.cumsum(m if w is None else m * w)
    ones = jnp.ones_like(cpt)
    return Areas(state.s1_pt * ones, s1c, state.s2_pt * ones, s2c)
