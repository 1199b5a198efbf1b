"""Designing the CPT schedule and replay ratio by gradient (optax), with grid baselines.

Objective (LAW.md Eq. 5): λ1·L_general + λ2·L_domain at the last CPT step (or averaged over the
last k steps), λ2 = 1 − λ1.  The PT history is an input, not optimised.

Trainable schedule (reparameterised, STYLE §6): K knots interpolated linearly to every CPT step.
Monotone mode (default): peak p = max_lr·σ(a); non-negative decrements δ = (p − f)·softmax(w)
(with a slack entry when the final LR is free), η_k = p − Σ_{j≤k} δ_j — so 0 ≤ f ≤ η ≤ p ≤ max_lr
and η is non-increasing after the (fixed-length, linear) re-warmup. Free mode: η = max_lr·σ(u).
The replay ratio, when free, is r = σ(ρ).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import _schedules
from ._areas import areas
from ._laws import LawPair, LossPair

__all__ = ["Plan", "design", "baselines", "evaluate", "pareto", "optax_schedule"]


def _check(law, pt, cpt_steps, max_lr, weight_general, replay):
    if not isinstance(law, LawPair):
        raise ValueError("design needs a LawPair (general and domain laws), e.g. cptjax.preset('setting-a')")
    if not (isinstance(max_lr, (int, float)) and math.isfinite(max_lr) and max_lr > 0):
        raise ValueError(f"`max_lr` must be > 0, got {max_lr!r}")
    if not 0 <= weight_general <= 1:
        raise ValueError(f"`weight_general` (λ1) must be in [0, 1], got {weight_general!r}")
    if not (isinstance(cpt_steps, int) and cpt_steps >= 2):
        raise ValueError(f"`cpt_steps` must be an integer >= 2, got {cpt_steps!r}")
    uses_replay = "replay" in law.general.uses
    if replay == "free" and not uses_replay:
        raise ValueError("replay='free' needs a law with a replay ratio (e.g. preset 'replay'); "
                         f"this law is {law.general.kind!r}")
    if replay not in (None, "free") and not 0 <= float(replay) <= 1:
        raise ValueError(f"`replay` must be 'free' or a ratio in [0, 1], got {replay!r}")
    if uses_replay and replay is None:
        raise ValueError("this law takes a replay ratio: pass replay='free' or a value in [0, 1]")
    pt = np.asarray(pt, np.float64)
    if pt.ndim != 1 or pt.size == 0 or not np.isfinite(pt).all() or (pt < 0).any():
        raise ValueError("the PT schedule must be a non-empty, finite, non-negative 1-D array")
    return pt


def evaluate(law, pt, cpt, replay=None, last_k: int = 1, weight_general=0.5):
    """Losses of a CPT schedule after the PT history ``pt``: returns (objective, general, domain)
    at the end (mean over the last ``last_k`` steps) and the full curves (LossPair)."""
    lr = jnp.concatenate([jnp.asarray(pt), jnp.asarray(cpt)])
    a = areas(lr, pt.shape[-1])
    cond = {"replay": replay} if "replay" in law.general.uses else {}
    g, d = law.general(a, **cond), law.domain(a, **cond)
    gk, dk = jnp.mean(g[-last_k:]), jnp.mean(d[-last_k:])
    return weight_general * gk + (1 - weight_general) * dk, gk, dk, LossPair(g, d)


@dataclasses.dataclass
class Plan:
    """A designed CPT plan: schedule, replay ratio, predicted losses, and its baselines."""

    schedule: np.ndarray
    replay: float | None
    objective: float
    general: float
    domain: float
    curves: LossPair
    baselines: dict
    weight_general: float
    source: str  # "gradient" or the name of the baseline that won
    n_pt: int
    iterations: int
    note: str = ""

    def to_dict(self) -> dict:
        return {"objective": self.objective, "general": self.general, "domain": self.domain,
                "replay": self.replay, "weight_general": self.weight_general, "source": self.source,
                "note": self.note, "iterations": self.iterations, "n_pt": self.n_pt,
                "cpt_steps": int(self.schedule.size),
                "baselines": {k: {kk: vv for kk, vv in v.items() if kk != "schedule"}
                              for k, v in self.baselines.items()},
                "schedule": self.schedule.tolist()}

    def save(self, prefix: str) -> list[str]:
        """Write ``prefix.csv``, ``prefix.npy`` and ``prefix.json``; returns the paths."""
        np.save(prefix + ".npy", self.schedule)
        with open(prefix + ".csv", "w") as fh:
            fh.write("cpt_step,lr\n" + "".join(f"{i + 1},{v!r}\n" for i, v in enumerate(self.schedule.tolist())))
        with open(prefix + ".json", "w") as fh:
            json.dump(self.to_dict(), fh)
        return [prefix + ".csv", prefix + ".npy", prefix + ".json"]


def optax_schedule(plan_or_lr, offset: int = 0):
    """An optax schedule (step -> LR) from a plan: step ``offset + i`` (0-based) gets η_{i+1};
    after the last step the final LR is held."""
    lr = jnp.asarray(plan_or_lr.schedule if isinstance(plan_or_lr, Plan) else plan_or_lr)

    def schedule(count):
        i = jnp.clip(jnp.asarray(count) - offset, 0, lr.shape[0] - 1)
        return lr[i]

    return schedule


def _grid_schedules(cpt_steps, max_lr, warmup, final):
    fin = 0.0 if final is None else final
    peaks = [max_lr * f for f in (1.0, 0.75, 0.5, 0.35, 0.25, 0.15, 0.1)]
    out = {}
    for p in peaks:
        if p < fin:
            continue
        out[f"constant(peak={p:.3g})"] = _schedules.constant(cpt_steps, p, warmup=warmup)
        out[f"cosine(peak={p:.3g})"] = _schedules.cosine(cpt_steps, p, warmup=warmup, final=fin)
        for dec in (0.1, 0.2, 0.3, 0.5):
            if round(dec * cpt_steps) <= cpt_steps - warmup:
                out[f"wsd(peak={p:.3g},decay={dec})"] = _schedules.wsd(cpt_steps, p, warmup=warmup,
                                                                      decay=dec, final=fin)
    return out


def baselines(law, pt, cpt_steps, *, max_lr, weight_general=0.5, replay=None, warmup=0,
              final=None, last_k=1):
    """Best constant, cosine and WSD schedules by grid (peak LR × decay fraction × replay grid)
    under the same law and constraints. Returns {family: {objective, schedule, replay, name}}."""
    pt = np.asarray(pt, np.float64)
    grid = _grid_schedules(cpt_steps, max_lr, warmup, final)
    names = list(grid)
    S = jnp.asarray(np.stack([grid[n] for n in names]))
    rs = np.linspace(0, 1, 21) if replay == "free" else [None if replay is None else float(replay)]
    best = {}
    for r in rs:
        f = jax.jit(jax.vmap(lambda c: evaluate(law, pt, c, r, last_k, weight_general)[:3]))
        obj, g, d = map(np.asarray, f(S))
        for i, n in enumerate(names):
            fam = n.split("(")[0]
            if fam not in best or obj[i] < best[fam]["objective"]:
                best[fam] = {"name": n, "objective": float(obj[i]), "general": float(g[i]),
                             "domain": float(d[i]), "replay": r, "schedule": grid[n]}
    return best


def _build_schedule(params, cpt_steps, max_lr, warmup, final, knots, monotone, start_lr):
    u = jnp.linspace(0.0, 1.0, knots)
    t = jnp.linspace(0.0, 1.0, cpt_steps - warmup)
    if monotone:
        peak = max_lr * jax.nn.sigmoid(params["a"])
        fin = 0.0 if final is None else final
        w = jax.nn.softmax(params["w"])
        steps = (peak - fin) * (w[:-1] if final is None else w)
        vals = peak - jnp.concatenate([jnp.zeros(1), jnp.cumsum(steps)])[: knots]
        vals = jnp.maximum(vals, fin)
    else:
        peak = max_lr
        vals = max_lr * jax.nn.sigmoid(params["w"])
    main = jnp.interp(t, u, vals)
    if warmup:
        i = jnp.arange(1, warmup + 1) / warmup
        start = main[0]
        main = jnp.concatenate([start_lr + (start - start_lr) * i, main])
    return main


def design(law, pt, cpt_steps: int, *, max_lr: float, weight_general: float = 0.5, replay=None,
           warmup: int = 0, monotone: bool = True, final: float | None = None, knots: int = 64,
           last_k: int = 1, iterations: int = 3000, learning_rate: float = 0.05, tol: float = 1e-9,
           progress=None) -> Plan:
    """Optimise the CPT schedule (and replay ratio if ``replay='free'``) with optax Adam.

    Args:
        law: a :class:`LawPair` (general, domain).
        pt: the PT schedule (history), not optimised.
        cpt_steps: CPT budget in steps.
        max_lr: upper bound on the CPT LR.
        weight_general: λ1 (λ2 = 1 − λ1).
        replay: ``None`` (law without replay), a fixed ratio, or ``"free"``.
        warmup: fixed re-warmup length (linear from the PT's last LR to the peak).
        monotone: non-increasing after the re-warmup. final: fix the final LR.
        knots: number of knots (interpolated to every step).
    Returns a :class:`Plan` that is never worse than its best baseline.
    """
    pt = _check(law, pt, cpt_steps, max_lr, weight_general, replay)
    if not 0 <= warmup < cpt_steps:
        raise ValueError(f"`warmup` must be in [0, cpt_steps), got {warmup!r}")
    if final is not None and not 0 <= final <= max_lr:
        raise ValueError(f"`final` must be in [0, max_lr], got {final!r}")
    knots = int(min(knots, cpt_steps - warmup))
    free_r = replay == "free"
    build = functools.partial(_build_schedule, cpt_steps=cpt_steps, max_lr=max_lr, warmup=warmup,
                              final=final, knots=knots, monotone=monotone, start_lr=float(pt[-1]))

    def loss(params):
        r = jax.nn.sigmoid(params["rho"]) if free_r else replay
        return evaluate(law, pt, build(params), r, last_k, weight_general)[0]

    params = {"a": jnp.asarray(3.0), "w": jnp.zeros(knots + (1 if monotone and final is None else 0)),
              "rho": jnp.asarray(0.0)}
    if not monotone:
        params["w"] = jnp.full(knots, 2.0)
    opt = optax.adam(learning_rate)
    state = opt.init(params)

    @jax.jit
    def run_chunk(params, state):
        def step(c, _):
            p, s = c
            v, g = jax.value_and_grad(loss)(p)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), v

        (params, state), vals = jax.lax.scan(step, (params, state), None, length=100)
        return params, state, vals

    prev, done = np.inf, 0
    for done in range(100, iterations + 100, 100):
        params, state, vals = run_chunk(params, state)
        cur = float(vals[-1])
        if progress is not None:
            progress(done, iterations, cur)
        if not np.isfinite(cur) or abs(prev - cur) <= tol * abs(cur):
            break
        prev = cur
    sched = np.asarray(build(params))
    r = float(jax.nn.sigmoid(params["rho"])) if free_r else (None if replay is None else float(replay))
    obj, g, d, curves = evaluate(law, pt, sched, r, last_k, weight_general)
    base = baselines(law, pt, cpt_steps, max_lr=max_lr, weight_general=weight_general,
                     replay=replay, warmup=warmup, final=final, last_k=last_k)
    fam, b = min(base.items(), key=lambda kv: kv[1]["objective"])
    plan = Plan(sched, r, float(obj), float(g), float(d), curves, base, weight_general, "gradient",
                pt.size, done)
    if not np.isfinite(plan.objective) or plan.objective > b["objective"]:
        obj, g, d, curves = evaluate(law, pt, b["schedule"], b["replay"], last_k, weight_general)
        plan = Plan(np.asarray(b["schedule"]), b["replay"], float(obj), float(g), float(d), curves,
                    base, weight_general, b["name"], pt.size, done,
                    note=f"gradient search ended worse than the best baseline ({b['name']}); "
                         "reporting the baseline")
    return plan


def pareto(law, pt, cpt_steps, weights, **kw):
    """Plans over a grid of λ1 (one compilation, reused across weights)."""
    return [design(law, pt, cpt_steps, weight_general=float(w), **kw) for w in weights]
