"""The design report: everything ``cptjax design`` reports, as a library object.

``design_report(law, pt, cpt_steps, ...)`` designs the plan (WSD or cosine family) with a Pareto
front over λ1, the free-form plan the law alone would choose (for comparison), compares the plan
with its best baseline and a reference cosine under parameter draws and law variants (P(win),
regret), checks extrapolation, and computes the plan's 90% band. ``DesignReport.to_dict()`` is
``report.json``; ``.save(folder)`` writes the report folder atomically; ``.summary()`` is the
text the command prints.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import schedules as _schedules
from ..laws import areas_numpy
from ._design import Plan, cpt_losses, compare, design, law_draws, pareto, pt_states
from ..files import atomic_dir, atomic_write, dumps
from ..fitting import LawSource, load_law
from ..laws import LawPair
from ..errors import InputError

__all__ = ["design_report", "DesignReport", "FRONT_WEIGHTS", "DESIGN_FILES"]

FRONT_WEIGHTS = (0.1, 0.3, 0.5, 0.7, 0.9)  # the λ1 of the reported Pareto front
DESIGN_FILES = ("plan.csv", "plan.npy", "plan.json", "free_plan.csv", "free_plan.npy", "free_plan.json",
                "plan_pytorch.py", "report.json", "design.png")


@dataclasses.dataclass
class DesignReport:
    """A designed plan with its comparison, uncertainty and warnings (see `design_report`)."""

    plan: Plan
    free: Plan
    front: list            # [{"weight_general", "general", "domain", "objective", "replay"}]
    uncertainty: dict      # compare(): draws, gain, P(win), regret across law variants
    warnings: list
    bands: Any             # (general lo, hi, domain lo, hi) per CPT step (90%), or None
    meta: dict             # law, pt, cpt_steps, max_lr

    def to_dict(self) -> dict:
        """``report.json``: both plans (schedules apart), the comparison, the front, warnings."""
        return {**self.meta,
                "plan": {k: v for k, v in self.plan.to_dict().items() if k != "schedule"},
                "free_plan": {k: v for k, v in self.free.to_dict().items() if k not in ("schedule", "baselines")},
                "uncertainty": self.uncertainty, "pytorch_lr_per_step": self.plan.schedule.tolist(),
                "pareto": self.front, "warnings": self.warnings}

    def save(self, folder) -> list:
        """Write the report folder atomically (every file or none): plan.csv/.npy/.json,
        free_plan.*, plan_pytorch.py, report.json (with ``files``) and design.png. Returns the
        paths written."""
        from .. import plotting as _plot

        files = [os.path.join(folder, f) for f in DESIGN_FILES]
        with atomic_dir(folder) as tmp:
            self.plan.save(os.path.join(tmp, "plan"))
            self.free.save(os.path.join(tmp, "free_plan"))
            atomic_write(os.path.join(tmp, "plan_pytorch.py"), PYTORCH_EXPORT)
            atomic_write(os.path.join(tmp, "report.json"), dumps({**self.to_dict(), "files": files}, indent=2))
            _plot.design(self.plan, self.front, os.path.join(tmp, "design.png"), free=self.free,
                         bands=self.bands)
        return files

    def summary(self) -> str:
        """The plan against its baselines, its diagnostics and its uncertainty, as text."""
        return _summary(self)


def _check_law(law, covs):
    """A LawSource from a spec, a LawSource, or a LawPair (with optional covariances)."""
    if isinstance(law, (str, os.PathLike)):
        return load_law(law, details=True)
    if isinstance(law, LawSource):
        return law
    if isinstance(law, LawPair):
        return LawSource(law, covs or (None, None), None, None, (None, None), "law")
    raise InputError(f"design_report: `law` must be a preset name, fit files 'G.json,D.json', a "
                     f"LawSource or a LawPair, got {type(law).__name__}")


def _outside_areas(law, pt, plan, ranges):
    """Warnings for a plan whose final CPT areas lie beyond those of the runs a law was fitted on."""
    out = []
    for (name, l), rng in zip(zip(("general", "domain"), law), ranges or (None, None)):
        if not rng or l.needs_schedule:
            continue
        a = areas_numpy(np.concatenate([pt, plan]), pt.size, l.lam, eps=l.eps, idx=[pt.size + plan.size - 1])
        for key, label in (("s1_cpt", "forward area S1_cpt"), ("s2_cpt", "annealing area S2_cpt")):
            v, (lo, hi) = float(getattr(a, key)[0]), rng[key]
            if v > hi + 0.05 * abs(hi) or v < lo - 0.05 * abs(lo):
                out.append(f"the plan's {label} ({v:.4g}) lies outside the fitted runs' range "
                           f"[{lo:.4g}, {hi:.4g}] ({name} law): its shape is an extrapolation")
    return out


def _bands(law, pt, plan, draws):
    """The plan's predicted curves under the parameter draws: a 90% band per CPT step. Schedule
    laws cost O(steps x decrements) per curve: their band at ~200 steps, interpolated."""
    states, T = pt_states(law, pt), plan.schedule.size
    at = (np.unique(np.linspace(0, T - 1, min(T, 200)).round().astype(int))
          if any(l.needs_schedule for l in law) else np.arange(T))
    cond = {"replay": plan.replay} if "replay" in law.general.uses else {}
    cur = jax.vmap(lambda lp: [cpt_losses(l, s, jnp.asarray(plan.schedule), cond, at)
                               for l, s in zip(lp, states)])(draws)
    return tuple(np.interp(np.arange(T), at, np.nanquantile(np.asarray(c), q, axis=0))
                 for c in cur for q in (0.05, 0.95))


def _say(progress, msg):
    if progress is not None:
        progress(msg)


def _uncertainty(pair, pt, plan, free, cpt_steps, max_lr, warmup, replay, weight_general, draws, progress):
    """The plan against the best baseline, a plain cosine and the free-form plan under parameter
    draws and law variants (`compare`), and the plan's 90% bands (with draws)."""
    best = min(plan.baselines.values(), key=lambda b: b["objective"])
    cos = _schedules.cosine(cpt_steps, max_lr, warmup=warmup, final=0.0)
    cos = _schedules.rewarm(cos[warmup:], min(float(pt[-1]), max_lr), warmup)
    r0 = None if replay is None else (plan.replay if replay == "free" else replay)
    scheds = {"plan": plan.schedule, "best baseline": np.asarray(best["schedule"]), "cosine": cos,
              "free-form plan": free.schedule}
    reps = {"plan": plan.replay, "best baseline": best["replay"], "cosine": r0, "free-form plan": free.replay}
    _say(progress, "uncertainty: " + ("256 parameter draws from the fits' covariance and " if draws is not None else "")
         + "law variants (momentum decay lambda)")
    unc = compare(pair, pt, scheds, weight_general=weight_general, replays=reps, draws=draws,
                  reference=("plan", "best baseline"))
    unc["best_baseline"] = best["name"]
    bands = _bands(pair, pt, plan, draws) if draws is not None else None
    return unc, bands


def _front_dicts(weights, front) -> list[dict]:
    return [{"weight_general": w, "general": p.general, "domain": p.domain, "objective": p.objective,
             "replay": p.replay} for w, p in zip(weights, front)]


def design_report(law, pt, cpt_steps: int, *, max_lr: float = 2e-4, weight_general: float = 0.5,
                  replay=None, warmup: int = 500, shape: str = "wsd", knots: int = 64,
                  iterations: int = 2000, robust: int = 0, covs=None, pt_text: str | None = None,
                  progress=None, step_progress=None) -> DesignReport:
    """Design a CPT schedule and report it as ``cptjax design`` does.

    Args:
        law: a preset name, fit files ``"GENERAL.json,DOMAIN.json"`` (their covariances give the
            plan's uncertainty and their data range the extrapolation checks), a
            `LawSource`, or a `LawPair` (with ``covs`` = (cov_general, cov_domain)).
        pt: the PT schedule (an array, or text form as ``schedules.parse`` reads).
        robust: minimise the mean objective over this many parameter draws (needs covariances).
        pt_text: how to name the PT schedule in the report (default: its text form, if given).
        progress: ``progress(message)`` at each stage; ``step_progress(done, total, objective)``
            during the optimisation.

    ``cpt_steps``, ``max_lr``, ``weight_general``, ``replay``, ``warmup``, ``shape``, ``knots`` and
    ``iterations`` are as in `cptjax.design`.

    Returns a `DesignReport`; ``report.to_dict()`` equals the command's ``report.json``
    (apart from ``files``).

    Examples:
        >>> rep = design_report("setting-a", "wsd(steps=4000,peak=2e-4,warmup=100,decay=0.2,final=2e-5)",
        ...                     1000, warmup=50, iterations=100)          # doctest: +SKIP
        >>> print(rep.summary()); rep.save("my-design")                    # doctest: +SKIP
    """
    src = _check_law(law, covs)
    pair = src.law
    if isinstance(pt, str):
        pt_text, pt = pt_text or pt, _schedules.parse(pt)
    pt = np.asarray(pt, np.float64)
    warns = _check_design(src, replay, max_lr)
    has_cov = all(c is not None for c in src.cov)
    if robust and not has_cov:
        raise InputError("robust (--robust) design needs parameter covariances: give two fit files GENERAL.json,DOMAIN.json")
    kw = dict(max_lr=max_lr, replay=replay, warmup=warmup, knots=knots, iterations=iterations,
              data_range=src.data_range)
    weights = list(FRONT_WEIGHTS)
    _say(progress, f"optimising the plan ({shape.upper()} family: no dead tail) and a Pareto front over "
                   "lambda1 = " + ", ".join(map(str, weights)) + " together (vmapped)")
    draws = law_draws(pair, src.cov, n=256, seed=0) if has_cov else None
    if robust:
        _say(progress, f"robust plan: minimising the mean objective over {robust} parameter draws")
        kw["draws"] = law_draws(pair, src.cov, n=robust, seed=1)
    plans = pareto(pair, pt, cpt_steps, weights + [weight_general], progress=step_progress, shape=shape, **kw)
    kw.pop("draws", None)
    _say(progress, "optimising the free-form plan (what the law alone prefers), for comparison")
    free = design(pair, pt, cpt_steps, weight_general=weight_general, shape="free",
                  progress=step_progress, **kw)
    plan, front = plans[-1], plans[:-1]
    if not np.isfinite(plan.objective):
        raise InputError("the design ended with a non-finite objective (status non-finite): check the "
                         "law's parameters and the PT schedule")
    unc, bands = _uncertainty(pair, pt, plan, free, cpt_steps, max_lr, warmup, replay, weight_general,
                              draws, progress)
    warns += _outside_areas(pair, pt, plan.schedule, src.area_range)
    meta = {"law": src.name, "pt": pt_text if pt_text is not None else f"array({pt.size} steps)",
            "cpt_steps": cpt_steps, "max_lr": max_lr}
    return DesignReport(plan, free, _front_dicts(weights, front), unc, warns, bands, meta)


def _check_design(src, replay, max_lr) -> list:
    """Refuse a law that cannot design (not a pair; a replay ratio it ignores; a max LR far
    beyond its data); return the warnings for a max LR just beyond it."""
    pair = src.law
    if not isinstance(pair, LawPair):
        raise InputError(f"{src.name}: design needs a general+domain law pair (a CPT preset or a JSON "
                         "with 'general' and 'domain', or two fit files)")
    if replay not in (None, "free") and not any("replay" in l.uses for l in pair):
        raise InputError(f"replay (--replay): the law {src.name} has no replay ratio (it predicts the same losses "
                         "for every ratio); use the replay preset or a fit of the replay law")
    lr_max = src.lr_max
    if lr_max and max_lr > 10 * lr_max:
        raise InputError(f"max_lr (--max-lr) {max_lr:g} is {max_lr / lr_max:.3g}x the largest LR the law was fitted "
                         f"on ({lr_max:g}): its predictions there are not trustworthy")
    if lr_max and max_lr > lr_max * (1 + 1e-9):
        return [f"max_lr (--max-lr) {max_lr:g} is above the largest LR the law was fitted on ({lr_max:g}): "
                "the plan may rely on extrapolation"]
    return []


def _summary(rep: DesignReport) -> str:
    plan, free, unc = rep.plan, rep.free, rep.uncertainty
    rep_ = lambda r: "-" if r is None else f"{r:.3f}"
    rows = [("plan (" + plan.source + ")", plan.objective, plan.general, plan.domain, rep_(plan.replay)),
            ("free-form plan", free.objective, free.general, free.domain, rep_(free.replay))]
    rows += [(b["name"], b["objective"], b["general"], b["domain"], rep_(b["replay"]))
             for b in plan.baselines.values()]
    cols = ["schedule", "objective", "general", "domain", "replay"]
    cells = [[r[0], f"{r[1]:.5f}", f"{r[2]:.5f}", f"{r[3]:.5f}", r[4]] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(cols)]
    out = ["  ".join(c.rjust(w) for c, w in zip(cols, widths))]
    out += ["  ".join(x.rjust(w) for x, w in zip(row, widths)) for row in cells]
    d, fd = plan.diagnostics, free.diagnostics
    out.append(f"plan: predicted gain over the best baseline {d['gain_vs_best_baseline']:+.5f} "
               f"({100 * d['gain_vs_best_baseline_rel']:+.3f}%); {100 * d['share_below_1pct_of_peak']:.1f}% of "
               f"steps below 1% of its peak, credited {d['objective_credited_to_steps_below_1pct']:.5f}")
    dead = fd["share_below_1pct_of_peak"] > 0.01 and fd["objective_credited_to_steps_below_1pct"] > 0
    out.append(f"free-form plan: {100 * fd['share_below_1pct_of_peak']:.1f}% of steps below 1% of its peak, "
               f"credited {fd['objective_credited_to_steps_below_1pct']:.5f} of objective"
               + (": the law over-credits such steps (experiments/README.md, the closed loop); train the "
                  "plan, not this" if dead else " (no dead tail; still a shape the fitted runs may not cover)"))
    best = unc["best_baseline"]
    if "gain" in unc:
        g = unc["gain"]
        out.append(f"uncertainty ({g['n_draws']} parameter draws): gain over {best} "
                   f"{g['mean']:+.5f}, 95% interval [{g['lo95']:+.5f}, {g['hi95']:+.5f}]; "
                   f"P(plan beats it) = {g['p_plan_wins']:.2f}")
    else:
        wins = unc.get("plan_wins_in_variants")
        out.append(f"uncertainty: {rep.meta['law']} carries no parameter covariance (fit your runs and "
                   "pass --law GENERAL.json,DOMAIN.json for a gain interval)"
                   + (f"; over the law variants below, P(plan beats {best}) = {wins} = "
                      f"{unc['p_plan_wins_variants']:.2f}" if wins else ""))
    if unc["regret"]:
        out.append(f"law variants (lambda 0.999..0.98; S2 weighted by LR^0.1, ^0.2): the plan beats {best} "
                   f"in {unc['plan_wins_in_variants']}; worst-case regret: " + ", ".join(
                       f"{k} {v:.5f}" for k, v in unc["worst_regret"].items()))
    else:
        out.append("law variants: none for this law (the variants change the momentum decay and S2 "
                   "weight of area laws)")
    if plan.note:
        out.append(f"note: {plan.note}")
    return "\n".join(out)


PYTORCH_EXPORT = '''"""The designed CPT schedule for PyTorch: a LambdaLR over plan.npy (written by cptjax design).

    optimizer = torch.optim.AdamW(model.parameters(), lr=1.0)   # base LR 1: the lambda gives the LR
    scheduler = make_scheduler(optimizer)                        # call scheduler.step() after each step

Hugging Face Trainer: Trainer(..., optimizers=(optimizer, make_scheduler(optimizer))).
Step i of CPT (1-based, as trainers log it) uses plan[i - 1]; after the plan the last LR is held.
"""
import os

import numpy as np
import torch

PLAN = np.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "plan.npy"))


def lr_at(step: int) -> float:
    return float(PLAN[min(step, PLAN.size - 1)])


def make_scheduler(optimizer):
    base = optimizer.param_groups[0]["lr"]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_at(step) / base)
'''
