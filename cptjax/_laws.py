"""Law families as small parameter pytrees with a pure ``__call__`` (LAW.md §3).

Each law is a frozen dataclass registered as a JAX pytree: its parameters are the leaves, so laws
jit, vmap (over thousands of parameter sets), differentiate and ``jax.tree.map`` with no special
cases.  Area laws are called on :class:`~cptjax.Areas`; :class:`MultiPowerLaw` needs the schedule
itself and is called on the LR array.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from ._areas import Areas, areas, check_schedule

__all__ = ["PTLaw", "CPTLaw", "ReplayCPTLaw", "SizeCPTLaw", "OpenCPTLaw", "MultiPowerLaw",
           "LawPair", "LossPair", "predict", "law_from_dict", "LAWS"]


def _law(cls=None, *, meta=()):
    def wrap(cls):
        cls = dataclasses.dataclass(frozen=True)(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        jax.tree_util.register_dataclass(
            cls, data_fields=[n for n in names if n not in meta], meta_fields=list(meta))
        return cls
    return wrap if cls is None else wrap(cls)


class _Base:
    kind: ClassVar[str]
    needs_schedule: ClassVar[bool] = False
    uses: ClassVar[tuple[str, ...]] = ()  # extra conditions: "replay", "size"
    meta: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.name not in cls.meta)

    def to_dict(self) -> dict[str, Any]:
        out = {"law": self.kind}
        out.update({n: float(getattr(self, n)) for n in self.param_names()})
        out.update({n: getattr(self, n) for n in self.meta})
        return out

    def replace(self, **kw):
        return dataclasses.replace(self, **kw)


def _shift(B, E, beta, s1_cpt):
    """Distribution-shift factor B·(1 − (1 + E·S1_cpt)^(−β)) (Eq. 3)."""
    return -B * jnp.expm1(-beta * jnp.log1p(E * s1_cpt))  # the same, accurate for small β


@_law
class PTLaw(_Base):
    r"""Eq. 1, the annealing law: :math:`L = L_0 + A S_1^{-\alpha} - C S_2` on the joined areas."""

    L0: Any
    A: Any
    alpha: Any
    C: Any
    kind: ClassVar[str] = "pt"

    def __call__(self, a: Areas):
        s1 = a.s1_pt + a.s1_cpt
        return self.L0 + self.A * s1 ** (-self.alpha) - self.C * (a.s2_pt + a.s2_cpt)


@_law
class CPTLaw(_Base):
    r"""Eq. 4, the CPT law:

    .. math:: L = L_0 + A(S_1^{pt}+S_1^{cpt})^{-\alpha} - C_1 S_2^{pt} - C_2 S_2^{cpt}
              + B(1-(1+E S_1^{cpt})^{-\beta})

    B > 0 on the general (PT) set, B < 0 on the domain (CPT) set.
    """

    L0: Any
    A: Any
    alpha: Any
    C1: Any
    C2: Any
    B: Any
    E: Any
    beta: Any
    kind: ClassVar[str] = "cpt"

    def __call__(self, a: Areas):
        return (self.L0 + self.A * (a.s1_pt + a.s1_cpt) ** (-self.alpha) - self.C1 * a.s2_pt
                - self.C2 * a.s2_cpt + _shift(self.B, self.E, self.beta, a.s1_cpt))


@_law(meta=("target",))
class ReplayCPTLaw(_Base):
    r"""Eq. 8, the CPT law with replay ratio r = r_pt (share of PT data in the CPT mix),
    r_cpt = 1 − r.  ``target`` is ``"general"`` or ``"domain"`` (the two sets differ in form):

    general: :math:`\dots - C_2 S_2^{cpt} e^{a_1 r_{pt}} + B(1-(1+ES_1^{cpt})^{-\beta})(1-e^{-a_2 r_{cpt}})`

    domain: :math:`\dots - C_2 S_2^{cpt} e^{a_1 r_{cpt}} + B(1-(1+ES_1^{cpt})^{-\beta})(e^{a_2 r_{cpt}}-1)`
    """

    L0: Any
    A: Any
    alpha: Any
    C1: Any
    C2: Any
    B: Any
    E: Any
    beta: Any
    a1: Any
    a2: Any
    target: str = "general"
    kind: ClassVar[str] = "replay"
    uses: ClassVar[tuple[str, ...]] = ("replay",)
    meta: ClassVar[tuple[str, ...]] = ("target",)

    def __post_init__(self):
        if self.target not in ("general", "domain"):
            raise ValueError(f"ReplayCPTLaw: `target` must be 'general' or 'domain', got {self.target!r}")

    def __call__(self, a: Areas, replay):
        r_pt = jnp.asarray(replay)
        r_cpt = 1 - r_pt
        if self.target == "general":
            anneal, mix = jnp.exp(self.a1 * r_pt), 1 - jnp.exp(-self.a2 * r_cpt)
        else:
            anneal, mix = jnp.exp(self.a1 * r_cpt), jnp.exp(self.a2 * r_cpt) - 1
        return (self.L0 + self.A * (a.s1_pt + a.s1_cpt) ** (-self.alpha) - self.C1 * a.s2_pt
                - self.C2 * a.s2_cpt * anneal + _shift(self.B, self.E, self.beta, a.s1_cpt) * mix)


@_law
class SizeCPTLaw(_Base):
    r"""Eq. 7, with model size N (millions of non-embedding parameters, inferred):
    :math:`\dots - C_1 S_2^{pt} N^{\gamma_1} - C_2 S_2^{cpt} N^{\gamma_2} + \dots + F N^{-\gamma_3}`."""

    L0: Any
    A: Any
    alpha: Any
    C1: Any
    C2: Any
    B: Any
    E: Any
    beta: Any
    F: Any
    gamma1: Any
    gamma2: Any
    gamma3: Any
    kind: ClassVar[str] = "size"
    uses: ClassVar[tuple[str, ...]] = ("size",)

    def __call__(self, a: Areas, size):
        n = jnp.asarray(size)
        return (self.L0 + self.A * (a.s1_pt + a.s1_cpt) ** (-self.alpha)
                - self.C1 * a.s2_pt * n ** self.gamma1 - self.C2 * a.s2_cpt * n ** self.gamma2
                + _shift(self.B, self.E, self.beta, a.s1_cpt) + self.F * n ** (-self.gamma3))


@_law
class OpenCPTLaw(_Base):
    r"""Paper §6, a PT model with unknown history: S1_pt is the fitted parameter ``S1pt``, the PT
    final LR is taken as 0 (compute the CPT areas with ``eta0=0``: CPT re-warms from 0) and S2_pt
    is absorbed into L0:

    .. math:: L = L_0 + A(S_1^{cpt}+\hat S_1^{pt})^{-\alpha} - C S_2^{cpt} + B(1-(1+ES_1^{cpt})^{-\beta})
    """

    L0: Any
    A: Any
    alpha: Any
    C: Any
    B: Any
    E: Any
    beta: Any
    S1pt: Any
    kind: ClassVar[str] = "open"

    def __call__(self, a: Areas):
        return (self.L0 + self.A * (a.s1_cpt + self.S1pt) ** (-self.alpha) - self.C * a.s2_cpt
                + _shift(self.B, self.E, self.beta, a.s1_cpt))


@_law
class MultiPowerLaw(_Base):
    r"""The Multi-Power Law (Luo et al. 2025), for comparison:

    .. math:: L(t) = L_0 + A S_1(t)^{-\alpha} - B\sum_{k\le t}(\eta_{k-1}-\eta_k)\,
              G(\eta_k^{-\gamma} S_k(t)),\quad S_k(t)=\sum_{\tau=k}^{t}\eta_\tau,\quad
              G(x) = 1-(Cx+1)^{-\beta}

    S1 includes the warmup area (MPL's S_W); decrements up to the peak (warmup) are not summed.
    Called on the schedule: ``law(lr, idx)``. The sum is evaluated in chunks of ``chunk`` output
    steps, so memory is O(chunk·T), never O(T²).
    """

    L0: Any
    A: Any
    alpha: Any
    B: Any
    C: Any
    beta: Any
    gamma: Any
    kind: ClassVar[str] = "mpl"
    needs_schedule: ClassVar[bool] = True

    def __call__(self, lr, idx=None, eta0=None, chunk: int = 128):
        lr = jnp.asarray(lr)
        T = lr.shape[-1]
        idx = jnp.arange(T) if idx is None else jnp.asarray(idx)
        first = lr[:1] if eta0 is None else jnp.asarray(eta0, lr.dtype)[None]
        d = jnp.concatenate([first, lr[:-1]]) - lr
        k = jnp.arange(T)
        d = jnp.where(k <= jnp.argmax(lr), 0.0, d)
        s1 = jnp.cumsum(lr)
        s1_before = s1 - lr  # S1(k-1)
        # Guard η = 0 (where η^(-γ) is infinite): G → 1 there, which a tiny floor reproduces.
        eta_g = jnp.maximum(lr, jnp.finfo(lr.dtype).tiny ** 0.25) ** (-self.gamma)

        def one(t):
            sk = s1[t] - s1_before
            g = 1 - (self.C * eta_g * jnp.maximum(sk, 0.0) + 1) ** (-self.beta)
            return jnp.sum(jnp.where(k <= t, d * g, 0.0))

        ld = lax.map(one, idx.ravel(), batch_size=min(chunk, idx.size)).reshape(idx.shape)
        return self.L0 + self.A * s1[idx] ** (-self.alpha) - self.B * ld


LAWS = {c.kind: c for c in (PTLaw, CPTLaw, ReplayCPTLaw, SizeCPTLaw, OpenCPTLaw, MultiPowerLaw)}


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


def law_from_dict(d: dict):
    """Rebuild a law (or a :class:`LawPair` from ``{"general": ..., "domain": ...}``)."""
    if "general" in d and "domain" in d:
        return LawPair(law_from_dict(d["general"]), law_from_dict(d["domain"]))
    kind = d.get("law")
    if kind not in LAWS:
        raise ValueError(f"unknown law {kind!r}; expected one of {sorted(LAWS)}")
    cls = LAWS[kind]
    missing = [n for n in cls.param_names() if n not in d]
    if missing:
        raise ValueError(f"law {kind!r} is missing parameter(s) {missing}")
    kw = {n: float(d[n]) for n in cls.param_names()}
    kw.update({n: d[n] for n in cls.meta if n in d})
    return cls(**kw)


@jax.jit
def _eval_one(law, a, lr, idx, replay, size, eta0):
    if law.needs_schedule:
        return law(lr, idx, eta0=eta0)
    if idx is not None:
        a = a.at(idx)
    cond = {}
    if "replay" in law.uses:
        cond["replay"] = replay
    if "size" in law.uses:
        cond["size"] = size
    return law(a, **cond)


def predict(law, lr, n_pt=None, *, idx=None, replay=None, size=None, lam=0.999, eta0=None,
            pt_warmup: str = "literal"):
    """Predicted loss of ``law`` (a law or a :class:`LawPair`) for the schedule ``lr``.

    Computes the areas once and evaluates at array indices ``idx`` (default: every step).
    ``replay`` (replay ratio r_pt ∈ [0, 1]) and ``size`` (N, millions) are required exactly by the
    laws that take them. Returns an array, or a :class:`LossPair` for a pair.

    Example:
        >>> import cptjax
        >>> lr, n_pt = cptjax.schedules.join(cptjax.schedules.constant(20000, 2e-4),
        ...                                  cptjax.schedules.constant(20000, 2e-4))
        >>> out = predict(cptjax.preset("setting-a"), lr, n_pt, idx=[19999, 39999])
        >>> [round(float(x), 4) for x in out.domain]
        [3.1852, 2.6129]
    """
    laws = list(law) if isinstance(law, LawPair) else [law]
    uses = {u for l in laws for u in l.uses}
    for name, val in (("replay", replay), ("size", size)):
        if name in uses and val is None:
            raise ValueError(f"this law ({', '.join(l.kind for l in laws)}) needs `{name}`")
        if name not in uses and val is not None:
            raise ValueError(f"`{name}` was given but this law ({', '.join(l.kind for l in laws)}) "
                             f"does not take it")
    if replay is not None and not isinstance(replay, jax.core.Tracer):
        r = float(replay)
        if not 0 <= r <= 1:
            raise ValueError(f"`replay` must be a ratio in [0, 1], got {replay!r}")
    if size is not None and not isinstance(size, jax.core.Tracer) and not float(size) > 0:
        raise ValueError(f"`size` must be > 0 (millions of parameters), got {size!r}")
    check_schedule(lr, n_pt)
    lr = jnp.asarray(lr)
    if idx is not None and not isinstance(idx, jax.core.Tracer):
        import numpy as np
        i = np.asarray(idx)
        if i.size and (i.min() < 0 or i.max() >= lr.shape[-1]):
            raise ValueError(f"`idx` must be array indices in [0, {lr.shape[-1] - 1}]")
    a = None if all(l.needs_schedule for l in laws) else areas(lr, n_pt, lam, eta0, pt_warmup=pt_warmup)
    out = [_eval_one(l, a, lr, idx, replay, size, eta0) for l in laws]
    return LossPair(*out) if isinstance(law, LawPair) else out[0]
