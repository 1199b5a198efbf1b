"""Designing the CPT schedule and replay ratio by gradient (optax), with grid baselines.

Objective (docs/guide/laws.md Eq. 5): λ1·L_general + λ2·L_domain at the last CPT step (or averaged over the
last k steps), λ2 = 1 − λ1.  The PT history is an input, not optimised.

Trainable schedule (reparameterised, STYLE §6): K knots interpolated linearly to every CPT step.
Monotone mode (default): peak p = max_lr·σ(a); non-negative decrements δ = (p − f)·softmax(w)
(with a slack entry when the final LR is free), η_k = p − Σ_{j≤k} δ_j — so 0 ≤ f ≤ η ≤ p ≤ max_lr
and η is non-increasing after the (fixed-length, linear) re-warmup. Free mode: η = max_lr·σ(u).
The replay ratio, when free, is r = σ(ρ).
"""

from __future__ import annotations

import dataclasses
import io
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import schedules as _schedules
from ..files import atomic_write, dumps
from ..laws import LawPair, LossPair, check_law, check_schedule
from ..errors import InputError, InputTypeError

__all__ = ["Plan", "design", "baselines", "evaluate", "pareto", "optax_schedule", "law_draws", "compare"]


MAX_LR = _schedules.MAX_LR
MAX_CPT_STEPS = 200_000  # a design report holds ~6 KB per CPT step (1.2 GB here at the limit)
MAX_ITERATIONS = 100_000


def _check(law, pt, cpt_steps, max_lr, weight_general, replay):
    if not isinstance(law, LawPair):
        raise InputTypeError("design needs a LawPair (general and domain laws), e.g. cptjax.preset('setting-a'), "
                             f"got {type(law).__name__}")
    check_law(law)
    if not (isinstance(max_lr, (int, float)) and math.isfinite(max_lr) and 0 < max_lr <= MAX_LR):
        raise InputError(f"`max_lr` must be in (0, {MAX_LR:g}] (a learning rate in raw units), got {max_lr!r}")
    if not 0 <= weight_general <= 1:
        raise InputError(f"`weight_general` (λ1) must be in [0, 1], got {weight_general!r}")
    if isinstance(cpt_steps, bool) or not (isinstance(cpt_steps, (int, np.integer)) and 2 <= cpt_steps <= MAX_CPT_STEPS):
        raise InputError(f"`cpt_steps` must be an integer in [2, {MAX_CPT_STEPS:,}] (a design's memory grows "
                         f"~6 KB per step), got {cpt_steps!r}")
    uses_replay = "replay" in law.general.uses
    if replay == "free" and not uses_replay:
        raise InputError("replay='free' needs a law with a replay ratio (e.g. preset 'replay'); "
                         f"this law is {law.general.kind!r}")
    if replay not in (None, "free") and not (isinstance(replay, (int, float, np.floating)) and not isinstance(replay, bool)
                                             and 0 <= float(replay) <= 1):
        raise InputError(f"`replay` must be 'free' or a ratio in [0, 1], got {replay!r}")
    if uses_replay and replay is None:
        raise InputError("this law takes a replay ratio: pass replay='free' or a value in [0, 1] "
                         "(the command line: --replay free, or --replay R)")
    other = [u for l in law for u in l.uses if u != "replay"]
    if other:
        raise InputError(f"the {law.general.kind!r} law predicts across model sizes ({other[0]!r}); a "
                         "design is for one model: fit the 'cpt' or 'replay' law to that model's runs "
                         "(or use a preset of one model, e.g. setting-a or replay) and design with it")
    pt = _schedules.parse(pt) if isinstance(pt, str) else pt  # text form, as the command line takes it
    try:
        pt = np.asarray(pt, np.float64)
    except (TypeError, ValueError):
        raise InputError("`pt` (the PT schedule) must be a per-step LR array or a schedule in text form") from None
    if pt.ndim != 1 or pt.size == 0 or not np.isfinite(pt).all() or (pt < 0).any():
        raise InputError("the PT schedule must be a non-empty, finite, non-negative 1-D array")
    check_schedule(pt, name="pt")
    return pt


def pt_states(law, pt):
    """The fixed PT history summarised once per law of the pair (area laws: their areas' state,
    each with its own λ; schedule laws, e.g. `cptjax.MPLCPTLaw`: its decrements)."""
    return tuple(l.pt_state(pt) for l in law)


def cpt_losses(l, state, cpt, cond, at=None):
    """One law's loss at CPT indices ``at`` (default every CPT step) after a PT ``state``: area
    laws through the continued areas (every step is cheap), schedule laws at ``at`` only."""
    return l.continue_at(cpt, state, at, **cond)


class Evaluation(NamedTuple):
    """What `evaluate` returns (a tuple: ``obj, g, d, curves = evaluate(...)`` still works)."""

    objective: jax.Array
    general: jax.Array  # the general loss (mean over the last_k steps or the horizons)
    domain: jax.Array
    curves: LossPair | None  # every step's losses (None with curves=False)


def evaluate(law, pt, cpt, replay=None, last_k=1, weight_general=0.5, weight_domain=None, curves=True):
    """Losses of a CPT schedule after the PT history: an `Evaluation` (objective,
    general, domain and the curves — a LossPair; ``None`` with ``curves=False``). The losses are the mean over the last
    ``last_k`` steps, or, when ``last_k`` is a tuple of CPT steps (horizons), the mean over those
    steps. The objective is ``weight_general·general + weight_domain·domain`` (default
    weight_domain = 1 − weight_general).

    ``pt`` is the PT schedule (curves then cover PT and CPT) or its `pt_states` summary
    (curves cover the CPT steps only; this is what the optimiser uses). Each law uses its own λ.
    Schedule laws (`cptjax.MPLCPTLaw`) cost O(steps × decrements) per curve: pass
    ``curves=False`` when only the objective is needed."""
    # concrete numbers only (under jit/grad these are tracers, checked by the callers); the
    # weights of an out-of-domain objective (Eq. 6) may be negative, not NaN
    if not isinstance(law, LawPair):
        raise InputTypeError(f"evaluate: `law` must be a LawPair (general, domain), got {type(law).__name__}")
    check_law(law)
    if isinstance(replay, (int, float, np.floating)) and not 0 <= replay <= 1:
        raise InputError(f"evaluate: `replay` must be a ratio in [0, 1], got {replay!r}")
    for name, v in (("weight_general", weight_general), ("weight_domain", weight_domain)):
        if isinstance(v, (int, float, np.floating)) and not math.isfinite(v):
            raise InputError(f"evaluate: `{name}` must be a finite number, got {v!r}")
    cond = {"replay": replay} if "replay" in law.general.uses else {}
    cpt = jnp.asarray(cpt)
    T = cpt.shape[-1]
    at = jnp.asarray([h - 1 for h in last_k]) if isinstance(last_k, tuple) else jnp.arange(T - last_k, T)
    states = pt if isinstance(pt, tuple) else pt_states(law, pt)
    if curves:
        cur = [cpt_losses(l, s, cpt, cond) for l, s in zip(law, states)]
        gk, dk = (jnp.mean(c[at]) for c in cur)
        if not isinstance(pt, tuple):  # prepend the PT history's own curve
            ptc = [l.pt_curve(pt, s, **cond) for l, s in zip(law, states)]
            cur = [jnp.concatenate([p, c]) for p, c in zip(ptc, cur)]
        out = LossPair(*cur)
    else:
        gk, dk = (jnp.mean(cpt_losses(l, s, cpt, cond, at)) for l, s in zip(law, states))
        out = None
    wd = 1 - weight_general if weight_domain is None else weight_domain
    return Evaluation(weight_general * gk + wd * dk, gk, dk, out)


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
    shape: str = "wsd"
    diagnostics: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"objective": self.objective, "general": self.general, "domain": self.domain,
                "replay": self.replay, "weight_general": self.weight_general, "source": self.source,
                "note": self.note, "iterations": self.iterations, "n_pt": self.n_pt,
                "shape": self.shape, "diagnostics": self.diagnostics,
                "cpt_steps": int(self.schedule.size),
                "baselines": {k: {kk: vv for kk, vv in v.items() if kk != "schedule"}
                              for k, v in self.baselines.items()},
                "schedule": self.schedule.tolist()}

    def save(self, prefix: str) -> list[str]:
        """Write ``prefix.csv``, ``prefix.npy`` and ``prefix.json``; returns the paths."""
        buf = io.BytesIO()
        np.save(buf, self.schedule)
        atomic_write(prefix + ".npy", buf.getvalue())
        atomic_write(prefix + ".csv", _schedules.to_csv(self.schedule))
        atomic_write(prefix + ".json", dumps(self.to_dict()))
        return [prefix + ".csv", prefix + ".npy", prefix + ".json"]


def optax_schedule(plan_or_lr, offset: int = 0):
    """An optax schedule (step -> LR) from a plan: step ``offset + i`` (0-based) gets η_{i+1};
    after the last step the final LR is held."""
    lr = jnp.asarray(plan_or_lr.schedule if isinstance(plan_or_lr, Plan) else plan_or_lr)

    def schedule(count):
        i = jnp.clip(jnp.asarray(count) - offset, 0, lr.shape[0] - 1)
        return lr[i]

    return schedule


def _grid_schedules(cpt_steps, max_lr, warmup, final, start_lr=0.0):
    """Baseline grid; the re-warmup rises linearly from the PT's last LR (as the plan's does)."""
    fin = 0.0 if final is None else final
    peaks = [max_lr * f for f in (1.0, 0.75, 0.5, 0.35, 0.25, 0.15, 0.1, 0.05)]
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
    return {k: _schedules.rewarm(v[warmup:], start_lr, warmup) for k, v in out.items()}


def _grid_table(law, pt, cpt_steps, max_lr, replay, warmup, final, last_k):
    """General and domain loss of every grid schedule × replay value (computed once)."""
    pt = np.asarray(pt, np.float64)
    grid = _grid_schedules(cpt_steps, max_lr, warmup, final, min(float(pt[-1]), max_lr))
    names = list(grid)
    S = jnp.asarray(np.stack([grid[n] for n in names]))
    rs = list(np.linspace(0, 1, 21)) if replay == "free" else [None if replay is None else float(replay)]
    rows = []
    summary = pt_states(law, pt)
    f = jax.jit(jax.vmap(lambda c, r: evaluate(law, summary, c, r, last_k, curves=False)[1:3],
                         in_axes=(0, None)))
    for r in rs:
        g, d = map(np.asarray, f(S, None if r is None else jnp.asarray(r)))
        rows += [(n, None if r is None else float(r), float(g[i]), float(d[i]), grid[n])
                 for i, n in enumerate(names)]
    return rows


def _select(table, weight, weight_domain=None):
    best = {}
    wd = 1 - weight if weight_domain is None else weight_domain
    for name, r, g, d, sched in table:
        obj = weight * g + wd * d
        fam = name.split("(")[0]
        if fam not in best or obj < best[fam]["objective"]:
            best[fam] = {"name": name, "objective": obj, "general": g, "domain": d, "replay": r,
                         "schedule": sched}
    return best


def baselines(law, pt, cpt_steps, *, max_lr, weight_general=0.5, replay=None, warmup=0,
              final=None, last_k=1):
    """Best constant, cosine and WSD schedules by grid (peak LR × decay fraction × replay grid of
    21 values when free) under the same law and constraints.
    Returns {family: {name, objective, general, domain, replay, schedule}}."""
    pt = _check(law, pt, cpt_steps, max_lr, weight_general, replay)
    return _select(_grid_table(law, pt, cpt_steps, max_lr, replay, warmup, final, last_k), weight_general)


class _Config(NamedTuple):
    cpt_steps: int
    max_lr: float
    warmup: int
    final: float | None
    knots: int
    monotone: bool
    free_replay: bool
    last_k: int | tuple
    learning_rate: float
    chunk: int = 100
    shape: str = "wsd"
    cooldown_min: int = 0
    draws: int = 0  # > 0: the law holds that many parameter draws (robust design)


# Cooldown power q of the wsd shape, η = end·(1 − v)^q over the cooldown (v: 0 → 1):
# q ∈ [Q_MIN, Q_MAX] keeps the cooldown a ramp, never a cliff (q = 1 is linear).
Q_MIN, Q_MAX = 0.5, 2.0


def _build_schedule(params, cfg: _Config, start_lr):
    n = cfg.cpt_steps - cfg.warmup
    t = jnp.linspace(0.0, 1.0, n)
    peak = cfg.max_lr * jax.nn.sigmoid(params["a"])
    fin = 0.0 if cfg.final is None else cfg.final
    if cfg.shape == "wsd":
        # The WSD family with a free peak, cooldown length L ≥ cooldown_min and cooldown power q:
        # hold the peak, then fin + (peak − fin)·(1 − v)^q, reaching fin at the last step only.
        # No cliff and no dead tail can be represented (q ≤ 2 keeps the cooldown a ramp).
        L = cfg.cooldown_min + (n - cfg.cooldown_min) * jax.nn.sigmoid(params["c"])
        s0 = n - L  # cooldown start (continuous)
        step = jnp.arange(n, dtype=t.dtype)
        q = Q_MIN * (Q_MAX / Q_MIN) ** jax.nn.sigmoid(params["q"])
        rest = jnp.clip(1 - (step + 1 - s0) / L, 0.0, 1.0)
        safe = jnp.where(rest > 0, rest, 1.0)  # (1 − v)^q has an infinite derivative at v = 1
        main = fin + (peak - fin) * jnp.where(rest > 0, safe ** q, 0.0)
    elif cfg.shape == "cosine":
        # The cosine family with a free peak and a free final LR (a fraction of the peak; or
        # ``final`` when fixed): peak at the first step, the final LR at the last.
        end = peak * jax.nn.sigmoid(params["f"]) if cfg.final is None else fin
        v = jnp.arange(n, dtype=t.dtype) / max(n - 1, 1)
        main = end + (peak - end) * 0.5 * (1 + jnp.cos(jnp.pi * v))
    elif cfg.monotone:
        w = jax.nn.softmax(params["w"])
        steps = (peak - fin) * (w[:-1] if cfg.final is None else w)
        vals = jnp.maximum(peak - jnp.concatenate([jnp.zeros(1), jnp.cumsum(steps)])[: cfg.knots], fin)
        main = jnp.interp(t, jnp.linspace(0.0, 1.0, cfg.knots), vals)
    else:
        main = jnp.interp(t, jnp.linspace(0.0, 1.0, cfg.knots), cfg.max_lr * jax.nn.sigmoid(params["w"]))
    # the re-warmup starts at the PT's last LR, or at max_lr when that is lower: no plan above max_lr
    return _schedules.rewarm(main, jnp.minimum(start_lr, cfg.max_lr), cfg.warmup)


def _loss(params, law, pt, weight, replay, cfg):
    r = jax.nn.sigmoid(params["rho"]) if cfg.free_replay else replay
    if cfg.draws:  # robust design: the mean objective over parameter draws (leading axis of law)
        sched = _build_schedule(params, cfg, pt[0].eta)
        one = lambda l: evaluate(l, pt, sched, r, cfg.last_k, weight[0], weight[1], curves=False)[0]
        return jnp.mean(jax.vmap(one)(law))
    return evaluate(law, pt, _build_schedule(params, cfg, pt[0].eta), r, cfg.last_k, weight[0],
                    weight[1], curves=False)[0]


def _chunk(params, state, law, pt, weight, replay, cfg):
    opt = optax.adam(cfg.learning_rate)

    def step(c, _):
        p, s = c
        v, g = jax.value_and_grad(_loss)(p, law, pt, weight, replay, cfg)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), v

    (params, state), vals = jax.lax.scan(step, (params, state), None, length=cfg.chunk)
    return params, state, vals[-1]


# Compiled once per configuration and shapes; law, PT history, weight and replay are arguments,
# so repeated designs (and Pareto sweeps, vmapped over λ1) reuse the compilation.
_chunk_vmap = jax.jit(jax.vmap(_chunk, in_axes=(0, 0, None, None, 0, None, None)), static_argnames=("cfg",))


# The peak LR is multi-modal (under Setting A at the defaults: a local optimum at the max LR, the
# best plans at ~10% of it), so every weight starts from several peaks, as fractions of max_lr.
PEAK_STARTS = (0.95, 0.3, 0.1)


def _init(cfg, starts=PEAK_STARTS):
    """Initial parameters, one set per peak start (leading axis)."""
    n_w = cfg.knots + (1 if cfg.monotone and cfg.final is None else 0)
    w0 = jnp.zeros(n_w) if cfg.monotone else jnp.full(cfg.knots, 2.0)
    a = jnp.log(jnp.asarray(starts) / (1 - jnp.asarray(starts)))  # σ(a) = start
    k = len(starts)
    params = {"a": a, "w": jnp.tile(w0, (k, 1)), "rho": jnp.zeros(k), "c": jnp.full(k, -1.0),
              "q": jnp.zeros(k), "f": jnp.full(k, -2.2)}  # cosine: final LR σ(−2.2) ≈ 10% of the peak
    if not cfg.monotone:  # free knots: σ(w) = the start's peak fraction everywhere
        params["w"] = jnp.tile(a[:, None], (1, cfg.knots))
    return params, jax.vmap(optax.adam(cfg.learning_rate).init)(params)


def _optimise(law, pt, weights, replay, cfg, iterations, tol, progress, states_law=None):
    """Adam on all weights × peak starts at once (vmap); stop when every lane's objective changed
    by less than ``tol`` (relative) over a chunk, or at ``iterations``. Returns, per weight, the
    parameters of its best start."""
    weights = jnp.asarray(weights, jnp.result_type(float))  # (n, 2): general and domain weights
    p0, s0 = _init(cfg)
    n, k = weights.shape[0], len(PEAK_STARTS)
    params, state = jax.tree.map(lambda x: jnp.tile(x, (n,) + (1,) * (x.ndim - 1)), (p0, s0))
    lanes = jnp.repeat(weights, k, axis=0)  # lane i·k + j: weight i, start j
    rep = None if replay in (None, "free") else jnp.asarray(float(replay))
    summary = pt_states(states_law or law, pt)  # the PT history is fixed: summarise it once
    prev, done = None, 0
    total = -(-iterations // cfg.chunk) * cfg.chunk  # whole chunks: iterations rounded up
    for done in range(cfg.chunk, total + 1, cfg.chunk):
        params, state, cur = _chunk_vmap(params, state, law, summary, lanes, rep, cfg)
        cur = np.asarray(cur)
        if progress is not None:  # the last weight (the caller's own plan): its best start
            progress(done, total, float(np.nanmin(cur[-k:])))
        settled = ~np.isfinite(cur) | ((prev is not None) and (np.abs(prev - cur) <= tol * np.abs(cur)))
        if np.all(settled):  # every lane converged (or ran non-finite: its start is dropped)
            break
        prev = cur
    score = np.where(np.isfinite(cur), cur, np.inf).reshape(n, k)
    best = np.arange(n) * k + np.argmin(score, axis=1)
    return jax.tree.map(lambda x: x[best], params), done


def design(law, pt, cpt_steps: int, *, max_lr: float, weight_general: float = 0.5, replay=None,
           warmup: int = 0, shape: str = "wsd", monotone: bool = True, draws=None,
           final: float | None = None, knots: int = 64,
           last_k=1, ood=None, iterations: int = 3000, learning_rate: float = 0.05,
           tol: float = 1e-9, data_range: int | None = None, progress=None) -> Plan:
    """Optimise the CPT schedule (and replay ratio if ``replay='free'``) with optax Adam.

    Args:
        law: a `LawPair` (general, domain).
        pt: the PT schedule (history), not optimised.
        cpt_steps: CPT budget in steps.
        max_lr: upper bound on the CPT LR.
        weight_general: λ1 (λ2 = 1 − λ1).
        replay: ``None`` (law without replay), a fixed ratio, or ``"free"``.
        warmup: fixed re-warmup length (linear from the PT's last LR to the peak).
        shape: ``"wsd"`` (default): hold a free peak, then cool down over a free length
            ≥ max(2/(1 − λ), 10% of the budget) with a free shape (1 − v)^q, q ∈ [0.5, 2],
            reaching the final LR only at the last step: no dead tail of zero-LR steps and no
            cliff, both of which the annealing law over-credits and which lost in real training.
            ``"cosine"``: a cosine from a free peak to a free final LR (or ``final``).
            ``"free"``: free-form knots (non-increasing when ``monotone``), what the law alone
            would choose — report it beside the default, never train it blindly.
        monotone: (free shape) non-increasing after the re-warmup. final: fix the final LR.
        draws: robust design: a `LawPair` whose parameters carry a leading axis of draws
            (`law_draws`); the plan minimises the mean objective over them (the reported
            objective and the baselines stay those of ``law``).
        knots: number of knots (interpolated to every step).
        last_k: average the losses over the last k steps, or a tuple of CPT steps (several
            horizons at once: the losses are averaged over them).
        ood: ``(c_general, c_domain, share)``: mix in an out-of-domain set modelled as
            ``c_general·L_general + c_domain·L_domain`` (Eq. 6, e.g. the Fig. 21 coefficients)
            with weight ``share``: objective = (1 − share)·(λ1·L_g + λ2·L_d) + share·L_ood.
        data_range: the number of joined steps the law was fitted on; a longer PT history is an
            extrapolation and is refused.
    Returns a `Plan` that is never worse than its best baseline.

    Examples:
        >>> import cptjax
        >>> pt = cptjax.schedules.wsd(20000, 2e-4, warmup=500, decay=0.2, final=2e-5)
        >>> plan = cptjax.design(cptjax.preset("setting-a"), pt, 2000, max_lr=2e-4, iterations=300)
        >>> plan.objective <= min(b["objective"] for b in plan.baselines.values())
        True
    """
    return pareto(law, pt, cpt_steps, [weight_general], max_lr=max_lr, replay=replay, warmup=warmup,
                  shape=shape, monotone=monotone, final=final, draws=draws, knots=knots, last_k=last_k, ood=ood,
                  iterations=iterations, learning_rate=learning_rate, tol=tol,
                  data_range=data_range, progress=progress)[0]


def diagnostics(law, pt, plan, last_k=1, wg=None, wd=None) -> dict:
    """What a practitioner should know about a plan: its predicted gain over the best baseline,
    the share of its steps below 1% of its peak LR and the part of its objective the law credits
    to them (the objective it loses when those steps run at 1% of the peak instead)."""
    wg = plan.weight_general if wg is None else wg
    wd = 1 - wg if wd is None else wd
    sched = np.asarray(plan.schedule)
    peak = float(sched.max())
    low = sched < 0.01 * peak
    lifted = np.where(low, 0.01 * peak, sched)
    lifted_obj = float(evaluate(law, pt, lifted, plan.replay, last_k, wg, wd, curves=False)[0])
    best = min(b["objective"] for b in plan.baselines.values())
    return {"gain_vs_best_baseline": best - plan.objective,
            "gain_vs_best_baseline_rel": (best - plan.objective) / best,
            "share_below_1pct_of_peak": float(low.mean()),
            "objective_credited_to_steps_below_1pct": lifted_obj - plan.objective,
            "peak_lr": peak, "final_lr": float(sched[-1])}


def law_draws(law, covs, n: int = 256, seed: int = 0):
    """``n`` parameter draws of a `LawPair` from each law's covariance (natural parameters,
    e.g. the Laplace/sandwich ``cov`` of a fit): a LawPair whose leaves have a leading axis ``n``.
    Positive parameters are drawn in log space (covariance mapped by the delta method, as the
    fitter parameterises them), so every draw is a valid law and the draws centre on the fit
    without the bias a rejection of non-positive values would bring. ``covs``:
    (cov_general, cov_domain), ``None`` for no uncertainty."""
    if not isinstance(law, LawPair):
        raise InputTypeError(f"law_draws: `law` must be a LawPair, got {type(law).__name__}")
    check_law(law)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"law_draws: `n` must be an integer >= 1, got {n!r}")
    if covs is None:
        covs = (None, None)
    if not (isinstance(covs, (tuple, list)) and len(covs) == 2):
        raise InputError("law_draws: `covs` must be (cov_general, cov_domain), each a covariance or None")
    rng = np.random.default_rng(seed)
    out = []
    for l, cov in zip(law, covs):
        names = l.param_names()
        x = param_draws(l, cov, n, rng)
        out.append(l.replace(**{k: jnp.asarray(x[:, i]) for i, k in enumerate(names)}))
    return LawPair(*out)


def param_draws(law, cov, n: int, rng) -> np.ndarray:
    """``n`` draws (n, parameters) of one law's parameters from its covariance (``None``: the
    law repeated), positive parameters in log space (see `law_draws`)."""
    names = law.param_names()
    x0 = np.array([float(getattr(law, k)) for k in names])
    if cov is None:
        return np.repeat(x0[None], n, 0)
    cov = np.asarray(cov, np.float64)
    if cov.shape != (x0.size, x0.size) or not np.all(np.isfinite(cov)):
        raise InputError(f"covariance for the {law.kind} law must be a finite {x0.size}x{x0.size} matrix")
    pos = np.array([p.positive for p in type(law).params]) & (x0 > 0)
    scale = np.where(pos, 1 / np.where(pos, x0, 1.0), 1.0)  # d log x / dx for positive ones
    with np.errstate(all="ignore"):  # a parameter near 0 with a wide error overflows
        c = np.nan_to_num(cov * np.outer(scale, scale), nan=0.0, posinf=0.0, neginf=0.0)
    z = _correlated_normal(rng, (c + c.T) / 2, n)
    return np.where(pos, x0 * np.exp(np.clip(z, -50, 50)), x0 + z)


def cap_cov(law, cov, cap: float = 0.5):
    """The fit's covariance with each parameter's relative (log-space) standard deviation capped
    at ``cap``: a parameter the data do not identify yet (a Hessian near singular) would
    otherwise draw laws far outside anything plausible; its uncertainty stays large, not infinite."""
    x0 = np.array([float(getattr(law, k)) for k in law.param_names()])
    pos = np.array([p.positive for p in type(law).params]) & (x0 > 0)
    with np.errstate(all="ignore"):
        scale = np.where(pos, 1 / np.where(pos, x0, 1.0), 1 / np.maximum(np.abs(x0), 1e-12))
        c = np.nan_to_num(np.asarray(cov, np.float64) * np.outer(scale, scale), nan=0.0, posinf=0.0, neginf=0.0)
        sd = np.sqrt(np.clip(np.diag(c), 0, None))
        f = np.minimum(1.0, cap / np.where(sd > 0, sd, 1.0))
        out = np.nan_to_num(c * np.outer(f, f) / np.outer(scale, scale), nan=0.0, posinf=0.0, neginf=0.0)
    return (out + out.T) / 2


def _correlated_normal(rng, cov, n):
    """``n`` draws of N(0, cov), computed through the correlation matrix (eigen-decomposed on the
    unit scale, then scaled by each standard deviation), so that one parameter of enormous
    variance (a degenerate fit: a shift amplitude of 1e32) cannot swamp the others with
    rounding error, as a decomposition of the raw covariance does."""
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    with np.errstate(all="ignore"):
        corr = np.nan_to_num(cov / np.outer(np.where(sd > 0, sd, 1.0), np.where(sd > 0, sd, 1.0)))
    try:
        w, V = np.linalg.eigh(corr)
    except np.linalg.LinAlgError:  # no eigen-decomposition: independent draws
        w, V = np.ones(sd.size), np.eye(sd.size)
    return (rng.standard_normal((n, sd.size)) @ (V * np.sqrt(np.clip(w, 0, None))).T) * sd


def compare(law, pt, schedules: dict, *, weight_general=0.5, replays=None, last_k=1, draws=None,
            variants=((0.999, 0.0), (0.995, 0.0), (0.99, 0.0), (0.98, 0.0), (0.999, 0.1), (0.999, 0.2)),
            reference=None) -> dict:
    """How sure is a plan? Objectives of several CPT ``schedules`` ({name: array}) under parameter
    ``draws`` (`law_draws`) and under law variants (each law's momentum decay λ replaced by
    each value of ``variants``). With ``reference`` = (plan name, baseline name): the plan's gain
    over the baseline (baseline − plan objective; > 0 = the plan is better) — mean, 95% interval
    and the probability it is positive over the draws — and, per variant, each schedule's regret
    (objective − the best of the schedules under that variant)."""
    replays = replays or {}
    names = list(schedules)
    out = {}
    if draws is not None:
        states = pt_states(law, pt)
        # One compiled function for every schedule (they share a length): vmapped over the draws.
        f = jax.jit(jax.vmap(lambda l, s, r: evaluate(l, states, s, r, last_k, weight_general, curves=False)[0],
                             in_axes=(0, None, None)))
        objs = {n: np.asarray(f(draws, jnp.asarray(schedules[n]),
                                None if replays.get(n) is None else jnp.asarray(float(replays[n]))))
                for n in names}
        bad = max(float(np.mean(~np.isfinite(v))) for v in objs.values())
        if bad > 0.1:  # a covariance too wide to sample: no honest statistics from these draws
            raise InputError(f"compare: {100 * bad:.0f}% of the parameter draws give no finite objective: the "
                             "fits' covariance is too wide to sample (refit with more data, or design without it)")
        objs = {n: v[np.isfinite(v)] for n, v in objs.items()}
        out["draws"] = {n: {"mean": float(v.mean()), "sd": float(v.std())} for n, v in objs.items()}
        if reference:
            gain = objs[reference[1]] - objs[reference[0]]
            gain = gain[np.isfinite(gain)]
            out["gain"] = {"mean": float(gain.mean()), "lo95": float(np.quantile(gain, 0.025)),
                           "hi95": float(np.quantile(gain, 0.975)), "p_plan_wins": float(np.mean(gain > 0)),
                           "n_draws": int(gain.size)}
    regret = {}
    if not any(hasattr(l, "lam") for l in law):  # schedule laws: no momentum decay to vary
        variants = ()
    for var in variants:
        lam, eps = var if isinstance(var, tuple) else (var, 0.0)
        v = LawPair(*(l.replace(lam=float(lam), eps=float(eps)) if hasattr(l, "lam") else l for l in law))
        o = {n: float(evaluate(v, pt, schedules[n], replays.get(n), last_k, weight_general, curves=False)[0])
             for n in names}
        best = min(o.values())
        regret[f"lam={lam:g},eps={eps:g}"] = {n: o[n] - best for n in names}
    out["regret"] = regret
    if regret:
        out["worst_regret"] = {n: max(r[n] for r in regret.values()) for n in names}
    if reference and regret:
        wins = [r[reference[0]] < r[reference[1]] for r in regret.values()]
        out["plan_wins_in_variants"] = f"{sum(wins)}/{len(wins)}"
        out["p_plan_wins_variants"] = sum(wins) / len(wins)
    return out


def _weights(weight_general, ood):
    """(general, domain) objective weights, with an OOD mix folded in (all terms are linear)."""
    wg, wd = float(weight_general), 1 - float(weight_general)
    if ood is None:
        return wg, wd
    cg, cd, share = map(float, ood)
    return (1 - share) * wg + share * cg, (1 - share) * wd + share * cd


def _check_options(pt, cpt_steps, max_lr, warmup, final, last_k, ood, shape, knots, iterations,
                   learning_rate, data_range):
    """Check `pareto`'s options (naming each); returns ``last_k`` as an int or a tuple."""
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or not 1 <= iterations <= MAX_ITERATIONS:
        raise InputError(f"`iterations` must be an integer in [1, {MAX_ITERATIONS:,}], got {iterations!r}")
    if not (isinstance(learning_rate, (int, float)) and math.isfinite(learning_rate) and learning_rate > 0):
        raise InputError(f"`learning_rate` (Adam's step) must be a finite number > 0, got {learning_rate!r}")
    if not 0 <= warmup < cpt_steps:
        raise InputError(f"`warmup` must be in [0, cpt_steps), got {warmup!r}")
    if final is not None and not 0 <= final <= max_lr:
        raise InputError(f"`final` must be in [0, max_lr], got {final!r}")
    if data_range is not None and pt.size > data_range:
        raise InputError(f"the PT schedule ({pt.size} steps) is longer than the law's data range "
                         f"({data_range} steps): predictions there are extrapolations")
    if isinstance(last_k, (list, tuple)):
        last_k = tuple(int(h) for h in last_k)
        if not last_k or min(last_k) < 1 or max(last_k) > cpt_steps:
            raise InputError(f"horizons (`last_k`) must be CPT steps in 1..{cpt_steps}, got {last_k}")
    elif not 1 <= int(last_k) <= cpt_steps:
        raise InputError(f"`last_k` must be in 1..{cpt_steps}, got {last_k!r}")
    if ood is not None:
        if (len(ood) != 3 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in ood)
                or not 0 <= ood[2] <= 1):
            raise InputError("`ood` must be three finite numbers (c_general, c_domain, share) with share in [0, 1], "
                             f"got {ood!r}")
    if shape not in ("wsd", "cosine", "free"):
        raise InputError(f"`shape` must be 'wsd', 'cosine' or 'free', got {shape!r}")
    if not (isinstance(knots, int) and knots >= 2):
        raise InputError(f"`knots` must be an integer >= 2, got {knots!r}")
    return last_k


def _plan(law, pt, p, cfg, table, w, pair, replay, max_lr, shape, done):
    """One weight's `Plan`: the optimised schedule, or the best baseline when it is better."""
    sched = np.asarray(_build_schedule(p, cfg, float(pt[-1])))
    r = float(jax.nn.sigmoid(p["rho"])) if cfg.free_replay else (None if replay is None else float(replay))
    wg, wd = pair
    obj, g, d, curves = evaluate(law, pt, sched, r, cfg.last_k, wg, wd)
    base = _select(table, wg, wd)
    name, b = min(base.items(), key=lambda kv: kv[1]["objective"])
    plan = Plan(sched, r, float(obj), float(g), float(d), curves, base, float(w), "gradient",
                pt.size, done, shape=shape)
    if not np.isfinite(plan.objective) or plan.objective > b["objective"]:
        obj, g, d, curves = evaluate(law, pt, b["schedule"], b["replay"], cfg.last_k, wg, wd)
        plan = Plan(np.asarray(b["schedule"]), b["replay"], float(obj), float(g), float(d),
                    curves, base, float(w), b["name"], pt.size, done,
                    note=f"gradient search ended worse than the best baseline ({b['name']}); "
                         "reporting the baseline", shape=shape)
    if not all(np.isfinite(v) and v > 0 for v in (plan.objective, plan.general, plan.domain)):
        raise InputError(f"design: no positive finite loss for any schedule at λ1 = {w:g} (max_lr {max_lr:g}, "
                         f"replay {replay!r}): the law's parameters give none for these settings")
    plan.diagnostics = diagnostics(law, pt, plan, cfg.last_k, wg, wd)
    return plan


def pareto(law, pt, cpt_steps, weights, *, max_lr, replay=None, warmup=0, shape="wsd",
           monotone=True, final=None, draws=None, knots=64, last_k=1, ood=None, iterations=3000, learning_rate=0.05,
           tol=1e-9, data_range=None, progress=None) -> list:
    """Plans for several λ1 at once: one vmapped optimisation over the weights, one baseline grid
    evaluated once and selected per weight. Returns a list of `Plan` (one per weight)."""
    weights = list(weights) if isinstance(weights, (list, tuple, np.ndarray)) else None
    if not weights:
        raise InputError("`weights` must be a non-empty list of λ1 values in [0, 1]")
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, (int, float, np.floating, np.integer)) or not math.isfinite(w):
            raise InputError(f"`weights`: each λ1 must be a number in [0, 1], got {w!r}")
        pt = _check(law, pt, cpt_steps, max_lr, w, replay)
    last_k = _check_options(pt, cpt_steps, max_lr, warmup, final, last_k, ood, shape, knots, iterations,
                            learning_rate, data_range)
    pairs = [_weights(w, ood) for w in weights]
    n_main = cpt_steps - warmup
    lam = getattr(law.general, "lam", 0.0)  # schedule laws have no momentum memory: 10% alone
    cool = min(n_main - 1, max(math.ceil(2 / (1 - lam)), math.ceil(0.1 * cpt_steps)))
    cfg = _Config(int(cpt_steps), float(max_lr), int(warmup), None if final is None else float(final),
                  int(min(knots, n_main)), bool(monotone), replay == "free", last_k,
                  float(learning_rate), shape=shape, cooldown_min=int(max(cool, 1)),
                  draws=0 if draws is None else int(jax.tree.leaves(draws)[0].shape[0]))
    params, done = _optimise(law if draws is None else draws, pt, pairs, replay, cfg, iterations, tol,
                             progress, states_law=law)
    table = _grid_table(law, pt, cpt_steps, max_lr, replay, warmup, final, cfg.last_k)
    return [_plan(law, pt, jax.tree.map(lambda x: x[i], params), cfg, table, w, pairs[i], replay, max_lr,
                  shape, done) for i, w in enumerate(weights)]
