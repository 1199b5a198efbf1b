"""Forecast a CPT run while it trains: both losses and the weighted objective λ1·general +
(1 − λ1)·domain at the end of each alternative future (continue, stop now, cool down now, start
the cooldown at step k), with 90% bands.

The law is Eq. 4 with one annealing coefficient for both phases (``cpt-shared``: C1 = C2 = C, so
the CPT's re-warmup undoes the PT anneal at the rate it was earned), fitted on each loss of the
log so far. Its C is what a cooldown is worth; it is taken from the log when the log identifies it
(the LR so far has come down by 30% from a peak, in the PT part or the CPT part, and C's relative
standard error is below 30%; a re-warmup's negative annealing area alone fitted a C 8% off on the
lab's runs, so it does not count), else from
``reference`` — finished CPT runs of the same model and PT (fitted jointly, all parameters
shared), or a fitted pair (``cpt-shared`` or ``cpt`` law files: its C, or C2) — else from the PT
forecast's Eq. 1 prior (:data:`cptjax.PRIOR_Q` ``['eq1']``, over the whole run so far; ``source == "prior"``, its
spread in the band), which is calibrated on pre-training runs only (on the lab's CPT runs its
forecasts missed by 4.3% on average against 2.3% with a reference: experiments/forecast_cpt.py).
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings

import numpy as np

from ..laws import Areas, areas_numpy
from ..data import Run, load_run
from ._forecast import MODEL_SD, PRIOR_Q, Forecast, _not_itself, _annealed, _as_run, _budget, _check_cooldown, _check_counts, _full_schedule, _is_fit_file, _futures, _identified, _sane
from ._forecast import _draws as _param_draws
from ..errors import FitError, InputError

__all__ = ["forecast_cpt"]

LAW = "cpt-shared"


def forecast_cpt(log, *, general: str = "general_loss", domain: str = "domain_loss",
                 weight_general: float = 0.5, budget: int | None = None, schedule=None,
                 cooldown: str = "linear", cooldown_steps: int | None = None, final: float = 0.0,
                 reference=None, n_starts: int = 12, n_draws: int = 256, seed: int = 0) -> Forecast:
    """Forecast a CPT run's final general and domain losses and their weighted objective.

    Args:
        log: the run so far, a `Run` (or a log file) whose ``n_pt`` marks the CPT start
            and whose ``lr`` is the joined PT + CPT schedule so far (``load_run(path,
            schedule=..., n_pt=...)``).
        general: the general loss column.
        domain: the domain loss column.
        weight_general: λ1 of the objective λ1·general + (1 − λ1)·domain.
        schedule: the run's full joined schedule, when known (the "continue" alternative).
        reference: finished CPT runs of the same model and PT (list of `Run` or files,
            fitted jointly), or a fitted `LawPair` / ``"general.json,domain.json"``.

    The other arguments are as in `cptjax.forecast`.

    Returns a `cptjax.Forecast` whose alternatives and table rows carry ``loss`` (the
    objective), ``lo``, ``hi`` and ``general`` / ``domain`` (each ``{loss, lo, hi}``).
    """
    if isinstance(weight_general, bool) or not (isinstance(weight_general, (int, float)) and 0 <= weight_general <= 1):
        raise InputError(f"forecast: weight_general (λ1) must be in [0, 1], got {weight_general!r}")
    _check_counts(n_starts=n_starts, n_draws=n_draws, seed=seed)
    _check_cooldown(cooldown, final)
    full = _full_schedule(schedule)
    _not_itself(log, reference)
    run = _as_run(log, full)
    so_far, t = _so_far(run, general, domain)
    budget, L = _budget(full, budget, t, cooldown_steps)
    laws, fits, source, notes, spreads = _fit_both(so_far, (general, domain), reference)
    rng = np.random.default_rng(seed)
    draws = [_draws(l, f.cov, n_draws, rng) for l, f in zip(laws, fits)]
    draws = [_prior_spread(d, l, sd, so_far, c, rng) if sd else d
             for d, l, sd, c in zip(draws, laws, spreads, (general, domain))]
    sds = [float(f.rmse) if math.isfinite(f.rmse) else 0.0 for f in fits]
    end = _Evaluator(laws, draws, sds, so_far.n_pt, weight_general)
    futures, table, best = _futures(so_far.lr, full, budget, L, cooldown, final, n_starts, end)
    alternatives = [{"name": name, "end": int(x.size), **end(x)} for name, x in futures.items()]
    ix, yg = so_far.points(general)
    _, yd = so_far.points(domain)
    observed = weight_general * yg[-1] + (1 - weight_general) * yd[-1]
    last = weight_general * yg[-5:] + (1 - weight_general) * yd[-5:] if yg.size == yd.size else np.array([observed])
    _sane(alternatives + table, source, float(np.median(last)), weight_general * sds[0] + (1 - weight_general) * sds[1])
    curves = {name: end.curve(x, t) for name, x in futures.items()}
    notes.append(f"CPT forecast: law {LAW} on both losses, objective = {weight_general:g}·{general} + "
                 f"{1 - weight_general:g}·{domain}")
    from ..laws import LawPair

    return Forecast(t, float(observed), int(budget) if budget else None, cooldown, float(final),
                    LawPair(*laws), source, alternatives, table, best, fits[0], notes, curves,
                    (ix + 1, weight_general * yg + (1 - weight_general) * yd))


def _so_far(run, general, domain):
    for c in (general, domain):
        if c not in run.losses:
            raise InputError(f"forecast: {run.name} has no loss column {c!r}; it has {sorted(run.losses)}")
    if not 0 < run.n_pt < run.lr.size:
        raise InputError(f"forecast: a CPT forecast needs the log's PT length (n_pt, --n-pt) with CPT steps after "
                         f"it; {run.name} has n_pt = {run.n_pt} of {run.lr.size} steps")
    steps = np.asarray(run.steps)
    ok = np.isfinite(run.losses[general]) & np.isfinite(run.losses[domain])
    if ok.sum() < 5 or (steps[ok] > run.n_pt).sum() < 3:
        raise InputError(f"forecast: {run.name} needs at least 5 steps with both losses, 3 of them in the CPT")
    t = int(steps[ok].max())
    if run.lr[t - 1] <= 0:
        raise InputError(f"forecast: the LR at step {t} is {run.lr[t - 1]}: the run has already cooled down to 0")
    keep = ok & (steps <= t)
    return Run(run.name, np.asarray(run.lr[:t], np.float64), run.n_pt, steps[keep],
               {general: run.losses[general][keep], domain: run.losses[domain][keep]}), t


def _reference_runs(reference, so_far, columns, notes) -> list[Run]:
    """The finished CPT runs given as reference, each cut to the log's loss columns."""
    runs = []
    for r in (reference if isinstance(reference, (list, tuple)) else [reference]):
        rr = _as_run(r, None, "reference")
        if not isinstance(r, Run) and rr.n_pt >= rr.lr.size:  # the file records no PT length
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rr = load_run(r, n_pt=so_far.n_pt)
            notes.append(f"reference {rr.name}: its PT length is not recorded; read with the log's "
                         f"n_pt = {so_far.n_pt}")
        if not 0 < rr.n_pt < rr.lr.size:
            raise InputError(f"forecast: the reference {rr.name} has no CPT steps after its PT (n_pt = "
                             f"{rr.n_pt} of {rr.lr.size} steps): a CPT reference is a finished CPT run")
        missing = [c for c in columns if c not in rr.losses]
        if missing:
            raise InputError(f"forecast: the reference {rr.name} has no loss column(s) {missing}")
        runs.append(Run(rr.name, rr.lr, rr.n_pt, rr.steps, {c: rr.losses[c] for c in columns}, replay=rr.replay))
    return runs


def _fit_both(so_far, columns, reference):
    """Each loss's law with C from the log, the reference runs (fitted jointly), a reference pair
    or the prior (then its log-sd in ``spreads``)."""
    from ..fitting import fit
    from ..fitting import load_law
    from ..laws import LawPair

    runs, pair, source, notes, spreads = [so_far], None, "log", [], []
    if isinstance(reference, (str, bytes)) or hasattr(reference, "__fspath__"):
        if all(_is_fit_file(part) for part in str(os.fspath(reference)).split(",")):
            pair = load_law(reference)  # fit files: their errors are reported as such
        else:
            reference = [reference]
    elif isinstance(reference, LawPair):
        pair = reference
    if pair is not None and not (isinstance(pair, LawPair) and all(hasattr(l, "C") or hasattr(l, "C2") for l in pair)):
        raise InputError("forecast: a CPT reference law must be a general,domain pair of cpt-shared or cpt laws")
    if reference is not None and pair is None:
        runs += _reference_runs(reference, so_far, columns, notes)
        source = "reference"
    laws, fits = [], []
    for c, ref in zip(columns, pair if pair is not None else (None, None)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                res = fit(runs, LAW, c, target="general" if c == columns[0] else "domain", throw=True)
            except FitError as e:
                raise InputError(f"forecast: the CPT law could not be fitted to {c!r} of {so_far.name}: {e}") from None
        law, spread = res.law, 0.0
        if not (source == "reference" or (_annealed(so_far.lr) and _identified(law, res.cov))):
            if ref is None:  # the PT forecast's prior: κ_t = C·S1_t^(1+α)/(A·α) = q·t^1.5
                t, S1 = so_far.lr.size, float(so_far.lr.sum())
                C = PRIOR_Q["eq1"][0] * t ** 1.5 * law.A * law.alpha / S1 ** (law.alpha + 1)
                source, spread = "prior", PRIOR_Q["eq1"][1]
                notes.append(f"{c}: the log has no annealing and no reference was given: C = {C:.4g} comes from "
                             f"the prior (q = {PRIOR_Q['eq1'][0]:g}, log-sd {PRIOR_Q['eq1'][1]:g}, from pre-training runs); give "
                             "a finished CPT run of this model as reference= for a sharper forecast")
            else:
                C = float(getattr(ref, "C", getattr(ref, "C2", math.nan)))
                source = "reference" if source != "prior" else source
                notes.append(f"{c}: C = {C:.4g} from the reference law")
            law = _relevel(law, C, so_far, c)
            res.cov = None if res.cov is None else _fix_c(res.cov, law)
        spreads.append(spread)
        laws.append(law)
        fits.append(res)
    return laws, fits, source, notes, spreads


def _prior_spread(d, law, sd, run, column, rng):
    """Draws whose C spreads by the prior's log-sd, each with L0 moved so that its mean over the
    logged points is unchanged (L is linear in C with slope −S2)."""
    ix, _ = run.points(column)
    a = areas_numpy(run.lr, run.n_pt, law.lam, idx=ix, eps=law.eps)
    s2 = float(np.mean(np.asarray(a.s2_pt) + np.asarray(a.s2_cpt)))
    C = np.asarray(d.C) * np.exp(sd * rng.standard_normal(np.shape(d.C)))
    return d.replace(C=C, L0=np.asarray(d.L0) + (C - np.asarray(d.C)) * s2)


def _relevel(law, C, run, column):
    """The law with C set, L0 moved so that its mean over the logged CPT points is unchanged."""
    ix, _ = run.points(column)
    a = areas_numpy(run.lr, run.n_pt, law.lam, idx=ix, eps=law.eps)
    old = np.asarray(law(a))
    new = law.replace(C=C)
    return new.replace(L0=float(law.L0 + np.mean(old - np.asarray(new(a)))))


def _fix_c(cov, law):
    """C known (from the reference): its variance and covariances set to 0."""
    cov = np.array(cov, np.float64)
    i = law.param_names().index("C")
    cov[i, :] = cov[:, i] = 0.0
    return cov


def _draws(law, cov, n, rng):
    """Parameter draws as one law whose leaves are arrays (n,)."""
    return law.replace(**_param_draws(law, cov, n, rng))


@dataclasses.dataclass
class _Evaluator:
    """Both losses and the objective at the end of a future, with 90% bands (parameter draws, the
    log's residual scatter and the law's error on an unseen future, as the PT forecast)."""

    laws: list
    draws: list
    sds: list
    n_pt: int
    w: float

    def __call__(self, lr):
        z = np.random.default_rng(0).standard_normal((4, self.draws[0].L0.size))
        out, vals = {}, []
        for k, (name, law, d, sd) in enumerate(zip(("general", "domain"), self.laws, self.draws, self.sds)):
            a = areas_numpy(lr, self.n_pt, law.lam, idx=[lr.size - 1], eps=law.eps)
            a = Areas(*(float(np.asarray(v).reshape(-1)[-1]) for v in a))
            m = float(law(a))
            v = np.asarray(d(a)) + z[2 * k] * sd + z[2 * k + 1] * MODEL_SD["eq1"] * m
            vals.append(v)
            out[name] = {"loss": m, **_band(v)}
        obj = self.w * vals[0] + (1 - self.w) * vals[1]
        return {"loss": self.w * out["general"]["loss"] + (1 - self.w) * out["domain"]["loss"], **_band(obj), **out}

    def curve(self, lr, t):
        x = np.unique(np.linspace(t, lr.size, 200).round().astype(int))
        g, d = (np.asarray(l(areas_numpy(lr, self.n_pt, l.lam, idx=x - 1, eps=l.eps))) for l in self.laws)
        return x, self.w * g + (1 - self.w) * d


def _band(v):
    v = v[np.isfinite(v)]
    lo, hi = np.quantile(v, [0.05, 0.95]) if v.size else (math.nan, math.nan)
    return {"lo": float(lo), "hi": float(hi)}
