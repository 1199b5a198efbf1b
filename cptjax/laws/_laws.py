"""Law families as small parameter pytrees with a pure ``__call__`` (docs/guide/laws.md).

Each law is a frozen dataclass registered as a JAX pytree: its parameters are the leaves, so laws
jit, vmap (over thousands of parameter sets), differentiate and ``jax.tree.map`` with no special
cases.  Area laws are called on `cptjax.Areas`; `MultiPowerLaw` needs the schedule
itself and is called on the LR array.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

import numpy as np

from ._areas import Areas, areas, areas_numpy, check_lam, check_schedule, continue_areas, pt_state, widen
from ..errors import InputError, InputTypeError

__all__ = ["Param", "PTLaw", "CPTLaw", "SharedCPTLaw", "ReplayCPTLaw", "SizeCPTLaw", "OpenCPTLaw",
           "MultiPowerLaw", "MPLCPTLaw", "AreaLaw", "ScheduleLaw", "LawPair", "LossPair", "predict", "law_from_dict", "replay_factors", "LAWS"]


class Param(NamedTuple):
    """How a law parameter is fitted (the law's own metadata, read by the fitter, the CLI and the
    JSON reader).

    Attributes:
        name: the field name.
        positive: fitted as log p (p > 0); otherwise the sign is free.
        linear: the law is affine in it for fixed other parameters (variable projection solves
            it by linear least squares).
        grid: the values a nonlinear parameter takes on the variable-projection grid.
        start: its values on the fallback start grid (natural units; for ``L0``, fractions of
            the lowest observed loss).
        wide: more values that one fit (``cptjax.fit``) also starts from when its best basin
            has the shift term at a bound (batches keep the lean grid).
    """

    name: str
    positive: bool = True
    linear: bool = False
    grid: tuple = ()
    start: tuple = ()
    wide: tuple = ()


LAM = 0.999  # the CPT paper's momentum decay λ (docs/guide/laws.md)


def _law(cls=None, *, meta=()):
    def wrap(cls):
        nonlocal meta
        # The fields are the declared parameters, in order (then any static options the class
        # annotates): a law lists its parameters once, in ``params``.
        own = dict(cls.__dict__.get("__annotations__", {}))
        cls.__annotations__ = {**{p.name: Any for p in cls.params}, **own}
        if issubclass(cls, AreaLaw):
            # Area laws carry the momentum decay λ their areas are computed with (a static option:
            # fitted by profiling, saved in JSON, used by predict and design).
            # And the LR weight ε of S2 (App. J: S2 = Σ m_i·η_i^ε; 0 = the plain S2).
            cls.__annotations__ = {**cls.__annotations__, "lam": float, "eps": float}
            cls.lam, cls.eps = LAM, 0.0
            meta = tuple(meta) + ("lam", "eps")
            cls.meta = tuple(getattr(cls, "meta", ())) + ("lam", "eps")
        cls = dataclasses.dataclass(frozen=True)(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        jax.tree_util.register_dataclass(
            cls, data_fields=[n for n in names if n not in meta], meta_fields=list(meta))
        declared = tuple(p.name for p in cls.params)
        if declared != cls.param_names():
            raise InputTypeError(f"{cls.__name__}: `params` {declared} must list the fields {cls.param_names()}")
        return cls
    return wrap if cls is None else wrap(cls)


class _Base:
    """What every law declares: ``kind`` (its JSON/CLI name), ``params`` (one `Param` per
    parameter; ``@_law`` makes them the dataclass fields, in that order), ``uses`` (extra
    conditions it takes: "replay", "size"), ``shift``
    (True when it has Eq. 3's shift term with fields B, E, beta — fitted as B·β, see
    ``cptjax.fitting``), ``meta`` (static options, e.g. the replay law's target).

    Two protocols fill it in: `AreaLaw` (called as ``law(areas, *, replay=None,
    size=None)``) and `ScheduleLaw` (``law(lr, idx)``; ``needs_schedule`` is True); both
    give ``on_schedule`` (what `predict` calls), and the CPT laws ``pt_state`` and
    ``continue_at`` (what the design calls).
    """

    kind: ClassVar[str]
    params: ClassVar[tuple[Param, ...]]
    needs_schedule: ClassVar[bool] = False
    uses: ClassVar[tuple[str, ...]] = ()
    shift: ClassVar[bool] = False
    meta: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.name not in cls.meta)

    @classmethod
    def options(cls) -> dict[str, tuple]:
        """Allowed values of each static option (``meta`` field)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        out = {"law": self.kind}
        out.update({n: float(getattr(self, n)) for n in self.param_names()})
        out.update({n: getattr(self, n) for n in self.meta})
        return out

    def replace(self, **kw):
        return dataclasses.replace(self, **kw)

    def __post_init__(self):
        lam = getattr(self, "lam", 0.5)
        if not (isinstance(lam, (int, float)) and 0 < lam < 1):
            raise InputError(f"{type(self).__name__}: `lam` (momentum decay) must be in (0, 1), got {lam!r}")
        eps = getattr(self, "eps", 0.0)
        if not (isinstance(eps, (int, float)) and 0 <= eps < 1):
            raise InputError(f"{type(self).__name__}: `eps` (LR weight of S2) must be in [0, 1), got {eps!r}")
        for name, allowed in self.options().items():
            if getattr(self, name) not in allowed:
                raise InputError(f"{type(self).__name__}: `{name}` must be one of {allowed}, "
                                 f"got {getattr(self, name)!r}")

class AreaLaw(_Base):
    """The protocol of the area laws: ``law(areas, *, replay=None, size=None)``, a pure function of
    the four areas of `cptjax.areas` (computed with the law's own momentum decay ``lam`` and
    S2 weight ``eps``). A concrete law fills in ``kind``, ``params`` and ``__call__``."""

    def pt_state(self, pt):
        """The PT history summarised for `continue_at`: the areas' state after ``pt``."""
        return pt_state(pt, self.lam, eps=self.eps)

    def continue_at(self, cpt, state, at=None, **cond):
        """The loss at CPT indices ``at`` (default every CPT step) of the CPT schedule ``cpt``
        after a PT ``state`` (`pt_state`)."""
        c = self(continue_areas(cpt, state, self.lam, eps=self.eps), **cond)
        return c if at is None else c[at]

    def pt_curve(self, pt, state, **cond):
        """The loss at every step of the PT schedule ``pt`` (``state``: its `pt_state`)."""
        pt = jnp.asarray(pt)
        return self(areas(pt, pt.shape[-1], self.lam, eps=self.eps), **cond)

    def on_schedule(self, a, lr, idx, replay, size, eta0, warmup, n_pt):
        """The law on a whole schedule, given its areas ``a`` (see `predict`)."""
        if idx is not None:
            a = a.at(idx)
        return self(a, replay=replay, size=size)

    # -- fitting: per-point features of a run, and the law evaluated on them ------------------
    @classmethod
    def features(cls, lr, n_pt, ix, lam, replay, size, run_index, eps=0.0):
        """Per-point arrays the law needs at array indices ``ix`` of one run (area laws: the four
        areas, the replay ratio and the model size), and per-run extra arrays (none)."""
        check_schedule(lr, n_pt)
        a = areas_numpy(lr, n_pt, LAM if lam is None else lam, cls.eta0, eps=eps or 0.0, idx=ix)
        pts = tuple(a) + (np.full(ix.size, replay or 0.0), np.full(ix.size, size or 1.0))
        return pts, ()

    eta0: ClassVar[float | None] = None  # η_0 used for the fit features (None: η_1)

    @staticmethod
    def join_extras(extras, n_points):
        """A problem's per-run extra arrays from its runs' (``n_points`` points each)."""
        return [np.concatenate(c) for c in zip(*extras)]

    def at_points(self, feats):
        """The law at a fitting problem's points (see `features`)."""
        s1p, s1c, s2p, s2c, rep, size = feats
        return self(Areas(s1p, s1c, s2p, s2c), **{u: {"replay": rep, "size": size}[u] for u in self.uses})




class ScheduleLaw(_Base):
    """The protocol of the laws that need the schedule itself (a sum over its LR decrements):
    ``law(lr, idx, *, n_pt=None, eta0=None, warmup=-1)``; fitted on (point, decrement) pairs
    (``features``/``at_points``), and, for CPT laws, continued after a PT history
    (``pt_state``/``continue_at``)."""

    needs_schedule: ClassVar[bool] = True

    def on_schedule(self, a, lr, idx, replay, size, eta0, warmup, n_pt):
        """The law on a whole schedule (``a``, the areas, is unused)."""
        return self(lr, idx, n_pt=n_pt, eta0=eta0, warmup=warmup)


def _shift(B, E, beta, s1_cpt):
    """Distribution-shift factor B·(1 − (1 + E·S1_cpt)^(−β)) (Eq. 3)."""
    return -B * jnp.expm1(-beta * jnp.log1p(E * s1_cpt))  # the same, accurate for small β


def _power(A, alpha, s1):
    return A * s1 ** (-alpha)


_L0 = Param("L0", linear=True, start=(0.95,))
_A = Param("A", linear=True, start=(0.5,))
_ALPHA = Param("alpha", grid=(0.2, 0.3, 0.5, 0.7, 1.0), start=(0.3, 0.7))
_SHIFT_PARAMS = (Param("B", positive=False, linear=True, start=(-0.5, 0.5)),
                 Param("E", grid=(10.0, 100.0, 1000.0, 10000.0), start=(30.0, 3000.0)),
                 Param("beta", grid=(0.1, 0.5), start=(0.3,), wide=(2.0,)))


@_law
class PTLaw(AreaLaw):
    r"""Eq. 1, the annealing law: ``L = L_0 + A S_1^{-\alpha} - C S_2`` on the joined areas."""

    kind: ClassVar[str] = "pt"
    params: ClassVar = (Param("L0", linear=True, start=(0.75, 0.95)), _A, _ALPHA,
                        Param("C", linear=True, start=(0.3, 3.0)))

    def __call__(self, a: Areas, *, replay=None, size=None):
        return self.L0 + _power(self.A, self.alpha, a.s1_pt + a.s1_cpt) - self.C * (a.s2_pt + a.s2_cpt)


@_law
class CPTLaw(AreaLaw):
    r"""Eq. 4, the CPT law:

    In symbols (LaTeX):

        L = L_0 + A(S_1^{pt}+S_1^{cpt})^{-\alpha} - C_1 S_2^{pt} - C_2 S_2^{cpt}
              + B(1-(1+E S_1^{cpt})^{-\beta})

    B > 0 on the general (PT) set, B < 0 on the domain (CPT) set.
    """

    kind: ClassVar[str] = "cpt"
    params: ClassVar = (_L0, _A, _ALPHA, Param("C1", linear=True, start=(0.3,)),
                        Param("C2", linear=True, start=(0.3,))) + _SHIFT_PARAMS
    shift: ClassVar[bool] = True

    def __call__(self, a: Areas, *, replay=None, size=None):
        return (self.L0 + _power(self.A, self.alpha, a.s1_pt + a.s1_cpt) - self.C1 * a.s2_pt
                - self.C2 * a.s2_cpt + _shift(self.B, self.E, self.beta, a.s1_cpt))


@_law
class SharedCPTLaw(AreaLaw):
    r"""Eq. 4 with one annealing coefficient for both phases (C1 = C2 = C), so that a CPT
    re-warmup (negative S2_cpt) undoes the PT anneal at the rate it was earned:

    In symbols (LaTeX):

        L = L_0 + A(S_1^{pt}+S_1^{cpt})^{-\alpha} - C (S_2^{pt} + S_2^{cpt})
              + B(1-(1+E S_1^{cpt})^{-\beta})

    On the lab's runs it predicts held-out CPT phases better than Eq. 4 (experiments/lab).
    """

    kind: ClassVar[str] = "cpt-shared"
    params: ClassVar = (_L0, _A, _ALPHA, Param("C", linear=True, start=(0.3,))) + _SHIFT_PARAMS
    shift: ClassVar[bool] = True

    def __call__(self, a: Areas, *, replay=None, size=None):
        return (self.L0 + _power(self.A, self.alpha, a.s1_pt + a.s1_cpt) - self.C * (a.s2_pt + a.s2_cpt)
                + _shift(self.B, self.E, self.beta, a.s1_cpt))


def replay_factors(a1, a2, replay, target: str, form: str = "swapped"):
    """Eq. 8's replay factors (annealing factor, shift factor) for replay ratio r_pt = ``replay``
    (r_cpt = 1 − r_pt).

    Annealing: general e^(a1·r_pt), domain e^(a1·r_cpt). Shift, ``form="printed"`` (the paper's
    Eq. 8 as printed): general 1 − e^(−a2·r_cpt), domain e^(a2·r_cpt) − 1; ``form="swapped"`` (the
    default; the two shift factors exchanged, which the evidence of Fig. 12 supports — docs/guide/laws.md
    Eq. 8 and ``experiments/replay_form``): general e^(a2·r_cpt) − 1, domain 1 − e^(−a2·r_cpt).
    """
    r_pt = jnp.asarray(replay)
    r_cpt = 1 - r_pt
    anneal = jnp.exp(a1 * (r_pt if target == "general" else r_cpt))
    rises = (target == "general") == (form == "swapped")  # e^(a2·r_cpt) − 1: convex in r
    mix = jnp.expm1(a2 * r_cpt) if rises else -jnp.expm1(-a2 * r_cpt)
    return anneal, mix


@_law(meta=("target", "form"))
class ReplayCPTLaw(AreaLaw):
    r"""Eq. 8, the CPT law with replay ratio r = r_pt (share of PT data in the CPT mix),
    r_cpt = 1 − r.  ``target`` is ``"general"`` or ``"domain"`` (the two sets differ in form);
    ``form`` is ``"swapped"`` (default, see `replay_factors`) or ``"printed"``:

    In symbols (LaTeX):

        \dots - C_2 S_2^{cpt} f_{anneal}(r) + B(1-(1+ES_1^{cpt})^{-\beta})\, f_{shift}(r)
    """

    target: str = "general"
    form: str = "swapped"
    kind: ClassVar[str] = "replay"
    params: ClassVar = CPTLaw.params + (Param("a1", grid=(0.05,), start=(0.05,)),
                                       Param("a2", grid=(1.0, 3.0), start=(2.0,)))
    uses: ClassVar[tuple[str, ...]] = ("replay",)
    shift: ClassVar[bool] = True
    meta: ClassVar[tuple[str, ...]] = ("target", "form")  # + "lam", added by @_law

    @classmethod
    def options(cls):
        return {"target": ("general", "domain"), "form": ("swapped", "printed")}

    def __call__(self, a: Areas, *, replay=None, size=None):
        anneal, mix = replay_factors(self.a1, self.a2, replay, self.target, self.form)
        return (self.L0 + _power(self.A, self.alpha, a.s1_pt + a.s1_cpt) - self.C1 * a.s2_pt
                - self.C2 * a.s2_cpt * anneal + _shift(self.B, self.E, self.beta, a.s1_cpt) * mix)


@_law
class SizeCPTLaw(AreaLaw):
    r"""Eq. 7, with model size N (millions of non-embedding parameters, inferred):
    ``\dots - C_1 S_2^{pt} N^{\gamma_1} - C_2 S_2^{cpt} N^{\gamma_2} + \dots + F N^{-\gamma_3}``."""

    kind: ClassVar[str] = "size"
    params: ClassVar = CPTLaw.params + (
        Param("F", linear=True, start=(1.0,)), Param("gamma1", positive=False, grid=(0.1,), start=(0.1,)),
        Param("gamma2", positive=False, grid=(0.1,), start=(0.1,)),
        Param("gamma3", grid=(0.2,), start=(0.2,)))
    uses: ClassVar[tuple[str, ...]] = ("size",)
    shift: ClassVar[bool] = True

    def __call__(self, a: Areas, *, replay=None, size=None):
        n = jnp.asarray(size)
        return (self.L0 + _power(self.A, self.alpha, a.s1_pt + a.s1_cpt)
                - self.C1 * a.s2_pt * n ** self.gamma1 - self.C2 * a.s2_cpt * n ** self.gamma2
                + _shift(self.B, self.E, self.beta, a.s1_cpt) + self.F * n ** (-self.gamma3))


@_law
class OpenCPTLaw(AreaLaw):
    r"""Paper §6, a PT model with unknown history: S1_pt is the fitted parameter ``S1pt``, the PT
    final LR is taken as 0 (compute the CPT areas with ``eta0=0``: CPT re-warms from 0) and S2_pt
    is absorbed into L0:

    In symbols (LaTeX):

        L = L_0 + A(S_1^{cpt}+\hat S_1^{pt})^{-\alpha} - C S_2^{cpt} + B(1-(1+ES_1^{cpt})^{-\beta})
    """

    kind: ClassVar[str] = "open"
    params: ClassVar = (_L0, _A, _ALPHA, Param("C", linear=True, start=(0.3,))) + _SHIFT_PARAMS + (
        Param("S1pt", grid=(0.3, 1.0, 3.0, 10.0), start=(1.0, 5.0)),)
    shift: ClassVar[bool] = True
    eta0: ClassVar[float | None] = 0.0

    def __call__(self, a: Areas, *, replay=None, size=None):
        return (self.L0 + _power(self.A, self.alpha, a.s1_cpt + self.S1pt) - self.C * a.s2_cpt
                + _shift(self.B, self.E, self.beta, a.s1_cpt))


def _mpl_g(c, beta, gamma, log_eta, sk):
    """MPL's G(η_k^(−γ)·S_k(t)) = 1 − (c·η_k^(−γ)·S_k + 1)^(−β), from log η_k (floored, see
    `_eta_floor`): as 1 − exp(−β·log(1 + x)), x = c·exp(−γ·log η)·S — two transcendentals
    per term (log dominates on CPU), G's absolute error ~1e-16."""
    x = c * jnp.exp(-gamma * log_eta) * sk
    return 1 - jnp.exp(-beta * jnp.log(1 + x))


ETA_FLOOR = 1e-6  # relative to the schedule's peak, see _eta_floor


def _eta_floor(eta, peak=None):
    """η_k inside G, floored at ETA_FLOOR·peak: as η_k → 0, η_k^(−γ) → ∞ and G → 1, but G's
    derivative grows without bound, and in reverse mode the huge cotangents of S_k(t) = S1(t) −
    S1(k−1) cancel to garbage (gradients of 17 where the truth is −0.16, at a schedule ending at
    LR 0). At the floor G is already 1 − O(1e-3) for any step-sized S, so losses are unchanged to
    ~1e-9 while gradients stay exact (tests/test_gradients.py)."""
    peak = jnp.max(eta) if peak is None else peak
    return jnp.maximum(eta, ETA_FLOOR * lax.stop_gradient(peak))


def warmup_end(lr) -> int:
    """MPL's warmup length: the (first) index of the schedule's peak LR; ``law(lr, idx,
    warmup=warmup_end(lr))`` skips the decrements up to it. Computed on a concrete schedule, then
    held fixed, so that the law stays a smooth function of the schedule."""
    return int(np.argmax(np.asarray(lr), axis=-1))


def _decrement_sums(g, s1_t, t, dec, chunk=128):
    """MPL's loss drop split by phase: (Σ over PT decrements, Σ over CPT decrements) of
    d_k·G(η_k^(−γ)·(S1(t) − S1(k−1))) over the decrements k ≤ t, at points with forward area
    ``s1_t`` and joined index ``t`` (both (n,)). ``g`` = G's (c, β, γ); ``dec`` = (d, log η
    (floored), S1(k−1), k, is-CPT). Chunked over points: memory O(chunk·K)."""
    d, log_eta, s1_before, k, is_cpt = dec

    def one(st):
        s, tt = st
        dg = jnp.where(k <= tt, d * _mpl_g(*g, log_eta, jnp.maximum(s - s1_before, 0.0)), 0.0)
        return jnp.stack([jnp.sum(jnp.where(is_cpt, 0.0, dg)), jnp.sum(jnp.where(is_cpt, dg, 0.0))])

    out = lax.map(one, (s1_t, t), batch_size=max(1, min(chunk, s1_t.size)))
    return out[:, 0], out[:, 1]


@functools.partial(jax.custom_jvp, nondiff_argnums=(7,))
def _pair_sums(c, beta, gamma, d, log_eta, s_kt, point, n):
    """Σ over each point's (point, decrement) pairs of d·G(η_k^(−γ)·S_k(t)), G's (c, β, γ): (m, n)
    for weights ``d`` (m, P) (e.g. one row per phase), ``point`` the pairs' point index (< n). Its
    derivative is written out (`_pair_sums_jvp`): a Jacobian in (c, β, γ) costs three
    segment sums over the primal's own terms instead of a tangent per pair and parameter."""
    return _segsum(d * _mpl_g(c, beta, gamma, log_eta, s_kt), point, n)


def _segsum(v, point, n):
    return jnp.moveaxis(jax.ops.segment_sum(jnp.moveaxis(v, -1, 0), point, num_segments=n), 0, -1)


def _pair_sums_jvp(n, primals, tangents):
    c, beta, gamma, d, log_eta, s_kt, point = primals
    e = jnp.exp(-gamma * log_eta)
    x = c * e * s_kt
    ell = jnp.log(1 + x)
    u = jnp.exp(-beta * ell)  # (1 + x)^(−β); G = 1 − u
    gx = d * beta * u / (1 + x)  # d·∂G/∂x
    live = [type(t) is not jax.custom_derivatives.SymbolicZero for t in tangents]
    # The value and ∂/∂c, ∂/∂β, ∂/∂γ (each a sum over the pairs, times a scalar tangent) in one
    # segment sum; the data's own tangents (zero when fitting) per pair.
    rows = [d * (1 - u)] + [r for r, on in zip((gx * e * s_kt, d * u * ell, -gx * x * log_eta), live) if on]
    sums = _segsum(jnp.stack(rows, -2), point, n)  # (n, rows, m) -> (m, rows, n)
    out, tan, j = sums[..., 0, :], 0.0, 1
    for t, on in zip(tangents[:3], live):
        if on:
            tan, j = tan + sums[..., j, :] * t, j + 1
    per_pair = zip(tangents[3:6], live[3:6], (1 - u, -gx * gamma * x, gx * c * e))
    for t, on, dg in per_pair:
        if on:
            tan = tan + _segsum(dg * t, point, n)
    return out, tan + jnp.zeros_like(out)


_pair_sums.defjvp(_pair_sums_jvp, symbolic_zeros=True)


def _schedule_decrements(lr, eta0, warmup, n_pt):
    """A (traced) schedule's forward area S1 and its decrements as `_decrement_sums` takes
    them: d_k = η_(k−1) − η_k (η_(−1) = ``eta0``, default η_0; none up to index ``warmup``), log η_k
    floored (`_eta_floor`), S1(k−1), k, and whether k is a CPT step (k ≥ ``n_pt``)."""
    first = lr[:1] if eta0 is None else jnp.asarray(eta0, lr.dtype)[None]
    k = jnp.arange(lr.shape[-1])
    d = jnp.where(k <= warmup, 0.0, jnp.concatenate([first, lr[:-1]]) - lr)
    s1 = jnp.cumsum(lr)
    return s1, (d, jnp.log(_eta_floor(lr)), s1 - lr, k, k >= n_pt)


def _pairs(lr, ix):
    """MPL's (point, decrement) pairs of one run, for fitting: for every point ``ix`` and every
    nonzero decrement d_k = η_(k−1) − η_k at or before it (η_(−1) = η_0): d_k, log η_k (−inf at
    η = 0, floored where used), S_k(t) = S1(t) − S1(k−1), the point's position in ``ix`` and k."""
    d, nz, s1 = _nonzero_decrements(lr)
    n = np.searchsorted(nz, ix, side="right")  # decrements at or before each point
    point = np.repeat(np.arange(ix.size), n)
    k = nz[np.arange(point.size) - np.repeat(np.cumsum(n) - n, n)]
    return d[k], _log(lr[k]), s1[ix][point] - (s1 - lr)[k], point.astype(np.float64), k


def _nonzero_decrements(lr):
    """A concrete schedule's decrements d_k = η_(k−1) − η_k (d_0 = 0), the indices k where they
    are nonzero, and its forward area S1."""
    d = np.concatenate([lr[:1], lr[:-1]]) - lr
    return d, np.flatnonzero(d), np.cumsum(lr)


def _log(x):
    """log of LRs, −inf at 0 (floored where used)."""
    with np.errstate(divide="ignore"):
        return np.log(x)


@_law
class MultiPowerLaw(ScheduleLaw):
    r"""The Multi-Power Law (Luo et al. 2025), for comparison:

    In symbols (LaTeX):

        L(t) = L_0 + A S_1(t)^{-\alpha} - B\sum_{k\le t}(\eta_{k-1}-\eta_k)\,
              G(\eta_k^{-\gamma} S_k(t)),\quad S_k(t)=\sum_{\tau=k}^{t}\eta_\tau,\quad
              G(x) = 1-(Cx+1)^{-\beta}

    S1 includes the warmup area (MPL's S_W). Every decrement is summed, the warmup's negative ones
    included, as in the authors' code: with their published parameters this reproduces their
    held-out errors on their data (0.111% / 0.143% / 0.168% at 25M / 100M / 400M against the
    published 0.110% / 0.142% / 0.168%; skipping the warmup's decrements shifts every prediction
    by ~B·η_peak ≈ 0.13 and gives 3.2-5.4%). ``warmup`` (an array index, e.g. `warmup_end`)
    skips the decrements up to it. The sum is evaluated in chunks of ``chunk`` output steps, so
    memory is O(chunk·T), never O(T²).
    """

    kind: ClassVar[str] = "mpl"
    params: ClassVar = (Param("L0", linear=True, start=(0.75, 0.95)), _A,
                        Param("alpha", grid=(0.3, 0.5, 0.7), start=(0.5,)),
                        Param("B", linear=True, start=(400.0,)),
                        Param("C", grid=(0.5, 2.0), start=(1.0, 2.0)),
                        Param("beta", grid=(0.4, 0.6), start=(0.5,)),
                        Param("gamma", grid=(0.4, 0.6), start=(0.6,)))

    def __call__(self, lr, idx=None, *, n_pt=None, eta0=None, warmup=-1, chunk: int = 128):
        lr = jnp.asarray(lr)
        idx = jnp.arange(lr.shape[-1]) if idx is None else jnp.asarray(idx)
        s1, dec = _schedule_decrements(lr, eta0, warmup, lr.shape[-1])  # one phase: all "PT"
        ld = _decrement_sums((self.C, self.beta, self.gamma), s1[idx.ravel()], idx.ravel(), dec, chunk)[0]
        ld = ld.reshape(idx.shape)
        return self.L0 + _power(self.A, self.alpha, s1[idx]) - self.B * ld

    @classmethod
    def features(cls, lr, n_pt, ix, lam, replay, size, run_index, eps=0.0):
        """Per point S1(t); per (point, decrement) pair with the decrement at or before the point
        (d_k, log η_k, S_k(t) = S1(t) − S1(k−1), the point's index): only the pairs the sum needs —
        ~5x fewer than every point × every decrement of the problem (MultiPowerLaw data)."""
        d, log_eta, s_kt, point, _ = _pairs(lr, ix)
        return (np.cumsum(lr)[ix],), (d, log_eta, s_kt, point)

    @staticmethod
    def join_extras(extras, n_points):
        """Concatenate the runs' pairs, their point indices (column 3) offset to the problem's
        points."""
        offset = np.cumsum([0] + list(n_points[:-1]))
        return [np.concatenate([e[j] + (o if j == 3 else 0) for e, o in zip(extras, offset)])
                for j in range(len(extras[0]))]

    # One inert pair (d = 0, at the first point) pads the per-pair arrays; log η = −1e300 keeps
    # the floor's peak (the largest η of the problem) unchanged.
    extra_pad: ClassVar[tuple] = (0.0, -1e300, 0.0, 0.0)

    def at_points(self, feats):
        """The law at a problem's points from its pairs (log η a feature, floored in log space as
        `_eta_floor`)."""
        s1_t, d, log_eta, s_kt, point = feats
        floor = np.log(ETA_FLOOR) + lax.stop_gradient(jnp.max(log_eta))
        ld = _pair_sums(self.C, self.beta, self.gamma, d[None], jnp.maximum(log_eta, floor), s_kt,
                        point.astype(jnp.int32), s1_t.shape[-1])[0]
        return self.L0 + _power(self.A, self.alpha, s1_t) - self.B * ld



class History(NamedTuple):
    """A PT history as a schedule law needs it to continue (`MPLCPTLaw.pt_state`): its last
    LR, total and running forward area, peak LR, length, and its nonzero decrements (d_k, log η_k,
    S1(k−1), k)."""

    eta: jax.Array
    s1: jax.Array
    s1_cum: jax.Array
    peak: jax.Array
    n: jax.Array
    d: jax.Array
    log_eta: jax.Array
    s1_before: jax.Array
    k: jax.Array


@_law
class MPLCPTLaw(ScheduleLaw):
    r"""Eq. 4 with the Multi-Power Law's annealing term in place of the annealing areas S2 (an
    annealing law that gives zero-LR steps no credit):

    In symbols (LaTeX):

        L(t) = L_0 + A S_1(t)^{-\alpha} - C_1 LD_{pt}(t) - C_2 LD_{cpt}(t)
              + B(1-(1+E S_1^{cpt}(t))^{-\beta}),

    In symbols (LaTeX):

        LD(t) = \sum_{k\le t}(\eta_{k-1}-\eta_k)\,G(\eta_k^{-\gamma}S_k(t)),\quad
              S_k(t)=\sum_{\tau=k}^{t}\eta_\tau,\quad G(x) = 1-(\kappa x+1)^{-\rho},

    LD_pt summing the PT's decrements, LD_cpt the CPT's (the first, η_pt_last − η_1, included:
    a re-warmup's negative decrements undo annealing). A decrement pays off only as training goes
    on at the lower LR (S_k(t) grows with the LR area after it): steps at LR 0 change nothing,
    so a plan cannot gain by a dead tail, and a cliff to a tiny LR pays off slowly. Every
    decrement is summed (the MPL authors' convention, `MultiPowerLaw`).

    Called on the schedule: ``law(lr, idx, n_pt=n_pt)``; the design continues a PT history
    (`pt_state`, `continue_at`). Evaluating every step costs O(T·K) (K decrements):
    fits use (point, decrement) pairs, the design the objective's steps only.
    """

    kind: ClassVar[str] = "cpt-mpl"
    params: ClassVar = (_L0, _A, Param("alpha", grid=(0.3, 0.6), start=(0.3, 0.7)),
                        Param("C1", linear=True, start=(400.0,)), Param("C2", linear=True, start=(400.0,)),
                        Param("B", positive=False, linear=True, start=(-0.5, 0.5)),
                        Param("E", grid=(10.0, 100.0, 1000.0, 10000.0), start=(30.0, 3000.0)),
                        Param("beta", grid=(0.1, 0.5), start=(0.3,)),
                        Param("kappa", grid=(0.5, 2.0), start=(2.0,)),
                        Param("rho", grid=(0.6,), start=(0.6,)),
                        Param("gamma", grid=(0.6,), start=(0.6,)))
    shift: ClassVar[bool] = True
    extra_pad: ClassVar[tuple] = (0.0, -1e300, 0.0, 0.0, 0.0)
    join_extras = staticmethod(MultiPowerLaw.join_extras)

    def _combine(self, s1_t, s1_cpt, ld_pt, ld_cpt):
        return (self.L0 + _power(self.A, self.alpha, s1_t) - self.C1 * ld_pt - self.C2 * ld_cpt
                + _shift(self.B, self.E, self.beta, s1_cpt))

    def __call__(self, lr, idx=None, *, n_pt=None, eta0=None, warmup=-1, chunk: int = 128):
        lr = jnp.asarray(lr)
        T = lr.shape[-1]
        idx = jnp.arange(T) if idx is None else jnp.asarray(idx)
        n_pt = T if n_pt is None else n_pt
        s1, dec = _schedule_decrements(lr, eta0, warmup, n_pt)
        t = idx.ravel()
        ld_pt, ld_cpt = _decrement_sums((self.kappa, self.rho, self.gamma), s1[t], t, dec, chunk)
        s1_pt = jnp.where(n_pt > 0, s1[jnp.maximum(n_pt - 1, 0)], 0.0)
        s1_cpt = jnp.where(t >= n_pt, s1[t] - s1_pt, 0.0)
        return self._combine(s1[t], s1_cpt, ld_pt, ld_cpt).reshape(idx.shape)

    @staticmethod
    def pt_state(pt) -> History:
        """The PT schedule (concrete) summarised for `continue_at`: only its nonzero
        decrements are kept."""
        pt = np.asarray(pt, np.float64)
        d, k, s1 = _nonzero_decrements(pt)
        return History(*map(jnp.asarray, (pt[-1], s1[-1], s1, pt.max(), pt.size, d[k], _log(pt[k]),
                                          (s1 - pt)[k], k)))

    def pt_curve(self, pt, h: History, **cond):
        """The loss at every step of the PT schedule ``pt`` from its history ``h``."""
        return self.continue_at(None, h, np.arange(len(pt)))

    def continue_at(self, cpt, h: History, at=None, *, chunk: int = 128, **cond):
        """The loss at CPT indices ``at`` (0-based; default every CPT step) of the CPT schedule
        ``cpt`` after the PT history ``h``; ``cpt=None``: at PT indices ``at`` of the history alone."""
        peak = h.peak if cpt is None else jnp.maximum(h.peak, jnp.max(cpt))
        floor = jnp.log(ETA_FLOOR * lax.stop_gradient(peak))
        dec = (h.d, jnp.maximum(h.log_eta, floor), h.s1_before, h.k, jnp.zeros(h.k.shape, bool))
        if cpt is None:
            t = jnp.asarray(at)
            s1_t = h.s1_cum[t]
        else:
            cpt = jnp.asarray(cpt)
            T = cpt.shape[-1]
            at = jnp.arange(T) if at is None else jnp.asarray(at)
            s1c = jnp.cumsum(cpt)
            kc = h.n + jnp.arange(T)
            dc = (jnp.concatenate([h.eta[None], cpt[:-1]]) - cpt, jnp.log(_eta_floor(cpt, peak)),
                  h.s1 + s1c - cpt, kc, jnp.ones(T, bool))
            dec = tuple(jnp.concatenate([a, b.astype(a.dtype)]) for a, b in zip(dec, dc))
            t, s1_t = h.n + at, h.s1 + s1c[at]
        ld_pt, ld_cpt = _decrement_sums((self.kappa, self.rho, self.gamma), s1_t, t, dec, chunk)
        return self._combine(s1_t, 0.0 if cpt is None else s1_t - h.s1, ld_pt, ld_cpt)

    @classmethod
    def features(cls, lr, n_pt, ix, lam, replay, size, run_index, eps=0.0):
        """Per point S1(t) and S1_cpt(t); per (point, decrement) pair (see `_pairs`) d_k,
        log η_k, S_k(t), the point's index and whether k is a CPT step."""
        d, log_eta, s_kt, point, k = _pairs(lr, ix)
        s1 = np.cumsum(lr)
        s1_pt = s1[n_pt - 1] if n_pt else 0.0
        return ((s1[ix], np.where(ix >= n_pt, s1[ix] - s1_pt, 0.0)),
                (d, log_eta, s_kt, point, (k >= n_pt).astype(np.float64)))

    def at_points(self, feats):
        s1_t, s1_cpt, d, log_eta, s_kt, point, cpt = feats
        floor = np.log(ETA_FLOOR) + lax.stop_gradient(jnp.max(log_eta))
        ld_pt, ld_cpt = _pair_sums(self.kappa, self.rho, self.gamma, jnp.stack([d * (1 - cpt), d * cpt]),
                                   jnp.maximum(log_eta, floor), s_kt, point.astype(jnp.int32), s1_t.shape[-1])
        return self._combine(s1_t, s1_cpt, ld_pt, ld_cpt)

LAWS = {c.kind: c for c in (PTLaw, CPTLaw, SharedCPTLaw, ReplayCPTLaw, SizeCPTLaw, OpenCPTLaw,
                            MultiPowerLaw, MPLCPTLaw)}


class LawPair(NamedTuple):
    """The general (D_pt) and domain (D_cpt) laws of one setting (a pytree)."""

    general: Any
    domain: Any

    def to_dict(self) -> dict[str, Any]:
        return {"general": self.general.to_dict(), "domain": self.domain.to_dict()}


class LossPair(NamedTuple):
    """Predicted general and domain losses."""

    general: jax.Array
    domain: jax.Array


def law_from_dict(d):
    """Rebuild a law (or a `LawPair` from ``{"general": ..., "domain": ...}``).

    Every parameter must be a finite number; unknown law names, missing parameters and bad
    option values raise ``ValueError`` naming the key."""
    if not isinstance(d, dict):
        raise InputError(f"a law must be a JSON object (a dict), got {type(d).__name__}")
    if "general" in d and "domain" in d:
        pair = []
        for k in ("general", "domain"):
            if isinstance(d[k], dict) and "general" in d[k]:
                raise InputError(f"the {k!r} law of a pair is itself a pair: give one law there")
            pair.append(law_from_dict(d[k]))
        return LawPair(*pair)
    kind = d.get("law")
    if not isinstance(kind, str) or kind not in LAWS:
        raise InputError(f"unknown law {kind!r}; expected one of {sorted(LAWS)} under key 'law'")
    cls = LAWS[kind]
    missing = [n for n in cls.param_names() if n not in d]
    if missing:
        raise InputError(f"law {kind!r} is missing parameter(s) {missing}")
    unknown = sorted(set(d) - {"law"} - set(cls.param_names()) - set(cls.meta))
    if unknown:  # e.g. a misspelt option, which would otherwise fall back to its default silently
        raise InputError(f"law {kind!r}: unknown key(s) {unknown}; its parameters are "
                         f"{list(cls.param_names())}" + (f" and options {list(cls.meta)}" if cls.meta else ""))
    kw = {}
    for p in cls.params:
        v = d[p.name]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputError(f"law {kind!r}: parameter {p.name!r} must be a finite number, got {v!r}")
        if p.positive and v < 0:
            raise InputError(f"law {kind!r}: parameter {p.name!r} must be >= 0, got {v!r}")
        kw[p.name] = float(v)
    for n in cls.meta:
        if n in d:
            kw[n] = float(d[n]) if n in ("lam", "eps") and isinstance(d[n], (int, float)) and not isinstance(d[n], bool) else d[n]
    return cls(**kw)


@jax.jit
def _eval_one(law, a, lr, idx, replay, size, eta0, warmup, n_pt):
    return law.on_schedule(a, lr, idx, replay, size, eta0, warmup, n_pt)


def check_law(law, name: str = "law") -> None:
    """``law`` must be a cptjax law or `LawPair` whose concrete parameters are finite
    (traced ones, under ``jit``/``grad``, are not checked): an ``InputTypeError`` or
    ``InputError`` naming the argument and the parameter, never a NaN prediction."""
    for l in (list(law) if isinstance(law, LawPair) else [law]):
        if not isinstance(l, _Base):
            hint = " (a law's JSON or dict is read with cptjax.load_law)" if isinstance(l, (dict, str)) else ""
            raise InputTypeError(f"`{name}` must be a cptjax law or LawPair, got {type(l).__name__}{hint}")
        for p in l.param_names():
            v = getattr(l, p)
            if isinstance(v, jax.core.Tracer):
                continue
            a = np.asarray(v)
            if a.dtype.kind not in "fiub" or not np.isfinite(a).all():
                raise InputError(f"`{name}`: parameter {p!r} of the {l.kind!r} law is not a finite number ({v!r})")


def predict(law, lr, n_pt=None, *, idx=None, replay=None, size=None, lam=None, eta0=None,
            pt_warmup: str = "literal"):
    """Predicted loss of ``law`` (a law or a `LawPair`) for the schedule ``lr``.

    Computes the areas once (per momentum decay λ: each law's own ``lam`` unless ``lam`` is
    given) and evaluates at array indices ``idx`` (default: every step).
    ``replay`` (replay ratio r_pt ∈ [0, 1]) and ``size`` (N, millions) are required exactly by the
    laws that take them. Returns an array, or a `LossPair` for a pair.

    Examples:
        >>> import cptjax
        >>> lr, n_pt = cptjax.schedules.join(cptjax.schedules.constant(20000, 2e-4),
        ...                                  cptjax.schedules.constant(20000, 2e-4))
        >>> out = predict(cptjax.preset("setting-a"), lr, n_pt, idx=[19999, 39999])
        >>> [round(float(x), 4) for x in out.domain]
        [3.1852, 2.6129]
    """
    check_law(law)
    laws = list(law) if isinstance(law, LawPair) else [law]
    uses = {u for l in laws for u in l.uses}
    for name, val in (("replay", replay), ("size", size)):
        if name in uses and val is None:
            raise InputError(f"this law ({', '.join(l.kind for l in laws)}) needs `{name}`")
        if name not in uses and val is not None:
            raise InputError(f"`{name}` was given but this law ({', '.join(l.kind for l in laws)}) "
                             f"does not take it")
    if replay is not None and not isinstance(replay, jax.core.Tracer):
        r = float(replay)
        if not 0 <= r <= 1:
            raise InputError(f"`replay` must be a ratio in [0, 1], got {replay!r}")
    if size is not None and not isinstance(size, jax.core.Tracer) and not 0 < float(size) < math.inf:
        raise InputError(f"`size` must be a finite number > 0 (millions of parameters), got {size!r}")
    check_schedule(lr, n_pt)
    lr = widen(lr)
    if lam is not None:
        check_lam(lam)
    if idx is not None and not isinstance(idx, jax.core.Tracer):
        i = np.asarray(idx)
        if i.size and (i.dtype == bool or i.dtype.kind not in "iu"):
            raise InputError(f"`idx` must be integer array indices, got dtype {i.dtype}")
        if i.size and (i.min() < 0 or i.max() >= lr.shape[-1]):
            raise InputError(f"`idx` must be array indices in [0, {lr.shape[-1] - 1}]")
    # Areas once per momentum decay (each law's own λ unless ``lam`` overrides it).
    lams = {id(l): (lam if lam is not None else l.lam, l.eps) for l in laws if isinstance(l, AreaLaw)}
    a = {v: areas(lr, n_pt, v[0], eta0, pt_warmup=pt_warmup, eps=v[1]) for v in set(lams.values())}
    n = lr.shape[-1] if n_pt is None else n_pt
    out = [_eval_one(l, a.get(lams.get(id(l))), lr, idx, replay, size, eta0, -1, n) for l in laws]
    for l, o in zip(laws, out):  # finite or an error, when nothing is traced
        if not isinstance(o, jax.core.Tracer) and not bool(jnp.isfinite(o).all()):
            bad = int(np.argmax(~np.isfinite(np.asarray(o)).ravel()))
            lr1 = np.asarray(lr, np.float64).reshape(-1, lr.shape[-1])[0]
            step = (int(np.asarray(idx).ravel()[bad]) if idx is not None and np.size(idx) else bad % lr.shape[-1])
            if step < lr1.size and not lr1[:step + 1].any():
                raise InputError(f"the {l.kind!r} law's prediction at step {step + 1} is not finite: the LR is 0 up "
                                 "to there (S1 = 0: no training yet, where the law has no loss); start the "
                                 "prediction where the LR is above 0")
            raise InputError(f"the {l.kind!r} law's prediction is not finite (first at index {bad}): its "
                             f"parameters {l.to_dict()} give no finite loss on this schedule")
    return LossPair(*out) if isinstance(law, LawPair) else out[0]
