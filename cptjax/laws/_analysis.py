"""The CPT paper's §4–5 quantities: loss potential, critical point, turning length, and the
optimal loss potential / peak LR / replay ratio against the balance weight λ1."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .. import schedules as S
from ._areas import areas
from ._laws import LawPair, predict, replay_factors
from ..errors import InputError

__all__ = ["loss_potential", "critical_point", "turning_length", "optimal_vs_weight"]


def loss_potential(pt) -> float:
    """LP = η_final_pt / η_peak_pt (paper §3.3): 1 = no annealing, 0 = annealed to zero."""
    pt = np.asarray(pt, np.float64)
    if pt.ndim != 1 or pt.size == 0 or not np.isfinite(pt).all() or pt.min() < 0 or pt.max() <= 0:
        raise InputError("loss_potential needs a non-empty, finite, non-negative PT schedule with a positive peak")
    return float(pt[-1] / pt.max())


def _cond(law, replay):
    return {"replay": replay} if "replay" in law.uses else {}


def critical_point(law, pt, cpt, replay=None) -> dict:
    """Critical point of the general loss for a CPT schedule (docs/guide/laws.md, paper §4.4).

    Operationalised from Eq. 4 (paper-notes §4.3, DERIVED): as S1_cpt → ∞ under the plan's
    annealing, L_general → L0 + B − C1·S2_pt − C2·S2_cpt (the D_pt loss on the hidden curve
    trained on D_cpt). Returns ``{"critical": value, "start": L_general at transfer,
    "pre_critical": start > critical}`` — pre-critical runs can turn back below their start.
    """
    g = law.general if isinstance(law, LawPair) else law
    if g.kind not in ("cpt", "replay"):
        raise InputError(f"critical_point needs a CPT law (cpt or replay), got {g.kind!r}")
    if g.kind == "replay" and replay is None:
        raise InputError("critical_point: the replay law needs `replay`")
    lr, n = S.join(pt, cpt)
    a = areas(lr, n, g.lam, eps=g.eps)
    mix = anneal = 1.0
    if g.kind == "replay":
        anneal, mix = replay_factors(g.a1, g.a2, replay, g.target, g.form)
    crit = g.L0 + g.B * mix - g.C1 * a.s2_pt[-1] - g.C2 * a.s2_cpt[-1] * anneal
    cond = _cond(g, replay)
    start = g(a.at(n - 1), **cond) if n > 0 else jnp.nan
    return {"critical": float(crit), "start": float(start), "pre_critical": bool(start > crit)}


def turning_length(law, pt, cpt, replay=None, weight_general: float = 1.0) -> float:
    """Fewest CPT steps after which the loss (general, or λ1·general + λ2·domain) is back at or
    below its value at the transfer point, after first rising above it; ``inf`` if it never is
    within the schedule (paper §4.4)."""
    if not 0 <= weight_general <= 1:
        raise InputError(f"`weight_general` must be in [0, 1], got {weight_general!r}")
    lr, n = S.join(pt, cpt)
    g = law.general if isinstance(law, LawPair) else law
    y = predict(law, lr, n, replay=replay if "replay" in g.uses else None)
    if isinstance(law, LawPair):
        y = weight_general * y.general + (1 - weight_general) * y.domain
    y = np.asarray(y)
    start, tail = y[n - 1], y[n:]
    risen = np.maximum.accumulate(tail > start)
    back = np.flatnonzero(risen & (tail <= start))
    return float(back[0] + 1) if back.size else float("inf")


def optimal_vs_weight(law: LawPair, weights, *, what: str, pt_steps: int = 40000,
                      cpt_steps: int = 10000, peak: float = 2e-4, warmup: int = 500,
                      cpt_peak: float = 2e-4, replay=None, grid=None) -> dict:
    """The paper's Fig. 8 questions by grid search under the law (PT WSD, CPT cosine, as §5):

    ``what="lp"``: optimal loss potential (PT final LR / peak, PT linear cooldown over 20%); the
    CPT starts at the PT's final LR and anneals linearly to 0 (no re-warmup, as paper Fig. 5a–c); ``what="peak"``: optimal CPT peak LR; ``what=
    "replay"``: optimal replay ratio (needs a replay law). Returns ``{"grid", "optimum" (one per
    weight), "general", "domain" (losses on the grid)}``.
    """
    weights = np.asarray(weights, np.float64)
    if np.any((weights < 0) | (weights > 1)):
        raise InputError("weights (λ1) must lie in [0, 1]")
    base_pt = S.wsd(pt_steps, peak, warmup=warmup, decay=0.2, final=0.1 * peak)
    if what == "lp":
        grid = np.linspace(0.0, 1.0, 21) if grid is None else np.asarray(grid)
        pts = [S.wsd(pt_steps, peak, warmup=warmup, decay=0.2, final=lp * peak) if lp < 1
               else S.constant(pt_steps, peak, warmup=warmup) for lp in grid]
        cpts = [S.linear(cpt_steps, max(lp, 1e-12) * peak, final=0.0) for lp in grid]
        reps = [replay] * len(grid)
    elif what == "peak":
        grid = np.linspace(0.25e-4, 2.0e-4, 36) if grid is None else np.asarray(grid)
        pts = [base_pt] * len(grid)
        cpts = [S.cosine(cpt_steps, p, warmup=warmup, final=0.0) for p in grid]
        reps = [replay] * len(grid)
    elif what == "replay":
        if "replay" not in law.general.uses:
            raise InputError("what='replay' needs a law with a replay ratio (preset 'replay')")
        grid = np.linspace(0.0, 1.0, 51) if grid is None else np.asarray(grid)
        pts = [base_pt] * len(grid)
        cpts = [S.cosine(cpt_steps, cpt_peak, warmup=warmup, final=0.0)] * len(grid)
        reps = list(grid)
    else:
        raise InputError(f"`what` must be 'lp', 'peak' or 'replay', got {what!r}")
    lrs = jnp.asarray(np.stack([np.concatenate([p, c]) for p, c in zip(pts, cpts)]))
    rs = jnp.asarray([0.0 if r is None else float(r) for r in reps])
    uses = "replay" in law.general.uses

    def final(lr, r):
        cond = {"replay": r} if uses else {}
        return tuple(l(areas(lr, pt_steps, l.lam, eps=l.eps).at(-1), **cond) for l in law)

    g, d = map(np.asarray, jax.jit(jax.vmap(final))(lrs, rs))
    obj = weights[:, None] * g[None, :] + (1 - weights[:, None]) * d[None, :]
    return {"grid": grid.tolist(), "weights": weights.tolist(),
            "optimum": grid[np.argmin(obj, axis=1)].tolist(), "general": g.tolist(),
            "domain": d.tolist()}
