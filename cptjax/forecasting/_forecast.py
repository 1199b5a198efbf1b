"""Forecast a run while it trains: "if I start the cooldown now (or at step k), the final loss will
be X".

The annealing law is fitted on the log so far — by default with the realized annealing term
(L = L0 + A·S1^−α − C·S2ᵃ, `._realized`: each LR drop's gain realized by the LR area after it;
``anneal="eq1"``: Eq. 1's S2, the momentum per step) — and each alternative
future schedule (the run's own, cool down now, stop now, start the cooldown at step k of a fixed
budget) is the log's LR so far joined to that future, and its final loss is the law's prediction
there, with a 90% band from parameter draws.

While the LR has been constant, the log holds no annealing and C (the gain of a cooldown) is not
identified by it. It then comes, in this order, from a reference: other runs of the same model
(``reference=[run, ...]``: fitted jointly, all parameters shared — e.g. one finished cosine run),
or an earlier fit (``reference=law`` or a fit file: its C); else from the prior — the
dimensionless annealing gain κ_t = C·S1_t^(1+α)/(A·α) at the log's last step t, how much a unit of
annealing area is worth against a unit of forward area there, which grows as t^1.5 across real
runs (``PRIOR_Q``); the band then carries its spread, and the forecast says so
(``source == "prior"``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings

import numpy as np

from .. import schedules as _schedules
from ..laws import areas_numpy, check_law, check_schedule
from ..data import Run, load_run
from ..errors import DataWarning, FitError, InputError, InputTypeError
from ..files import atomic_write, dumps
from ._realized import RealizedLaw, areas_of, fit_realized

__all__ = ["forecast", "watch", "Forecast", "COOLDOWN_SHAPES", "PRIOR_Q"]

COOLDOWN_SHAPES = {"linear": "linear", "1-sqrt": "sqrt", "sqrt": "sqrt", "cosine": "cosine", "exp": "exp"}
# The prior of the annealing gain: κ_t = C·S1_t^(1+α)/(A·α) — what a unit of annealing area is worth
# against a unit of forward area at the log's last step t — grows as t^1.5 across real runs.
# A·α·S1_t^(−α−1) is the log's own slope in S1, which a constant-LR log does identify; so
# C = q·t^1.5·A·α / S1_t^(1+α). For the realized law (the default): q = 9.6e-6,
# the median over the joint fits (constant log truncated at the branch step + the cosine reference)
# of the 29 real branches of experiments/forecast.py (MultiPowerLaw 25M/100M/400M at 20 000 steps,
# OLMo-2 ladder 190M..3B at 5 000..181 000 steps), log-sd 0.24 there, taken as 0.35 for a model it
# has not seen (a power of t fitted there, 1.28, forecast the two-stage branches at step 8 000 far
# worse: 1.46% against 0.44%). For
# Eq. 1 (``anneal="eq1"``): q = 8.2e-6 (median over Eq. 1 fits of the 8 full runs of the same
# studies), log-sd 0.22 there, taken as 0.35.
PRIOR_Q = {"realized": (9.6e-6, 0.35), "eq1": (8.2e-6, 0.35)}  # (q, log-sd)
# The peak LRs the realized law's area constant (c = 25 per unit of LR·steps) was chosen on: AdamW
# runs at 3e-4..9.7e-4; taken an order of magnitude wider on each side
REALIZED_LRS = (3e-5, 1e-2)
# The law's relative error on an unseen future schedule, in the band: ×1.25 the mean |error| (the sd
# of a normal with that mean |error|) of reference-mode forecasts of the real branches of
# experiments/forecast.py: for the realized law, 0.22% over all 38 (0.19% on the 29 cooldown
# branches it was chosen on, 0.33% on the 9 two-stage ones) → 0.3%; for Eq. 1, 0.4% (its 0.36% on
# the 29, set before that rule).
MODEL_SD = {"realized": 0.003, "eq1": 0.004}
_IDENTIFIED = 0.3  # C counts as identified by the log when its relative standard error is below this


@dataclasses.dataclass
class Forecast:
    """A forecast: every alternative's final loss with a 90% band, and the cooldown-start table.

    ``alternatives``: list of dicts ``name, end (step), loss, lo, hi``; ``table``: list of dicts
    ``start, loss, lo, hi`` (cooldown from step ``start`` to the end of the budget);
    ``best_start``: the start with the lowest forecast; ``source``: where C came from (``log``,
    ``reference``, ``prior``)."""

    step: int
    observed: float
    budget: int
    cooldown: str
    final: float
    law: object
    source: str
    alternatives: list
    table: list
    best_start: int | None
    fit: object = None
    notes: list = dataclasses.field(default_factory=list)
    schedules: dict = dataclasses.field(default_factory=dict, repr=False)
    curve: tuple = dataclasses.field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {"step": self.step, "observed_loss": self.observed, "budget": self.budget,
                "cooldown": self.cooldown, "final_fraction": self.final, "source": self.source,
                "law": self.law.to_dict(), "alternatives": self.alternatives, "table": self.table,
                "best_start": self.best_start, "notes": self.notes,
                "fit": None if self.fit is None else {"status": self.fit.status, "rmse": self.fit.rmse,
                                                      "mean_rel_error": self.fit.mean_rel_error}}

    def save(self, path) -> None:
        atomic_write(path, dumps(self.to_dict(), indent=2))

    def summary(self) -> str:
        lines = [f"step {self.step}: loss {self.observed:.4f} (C from the {self.source}"
                 + (", band includes the prior's spread" if self.source == "prior" else "") + ")"]
        for a in self.alternatives:
            lines.append(f"  {a['name']:<34} -> step {a['end']:>8}: {a['loss']:.4f}  "
                         f"[{a['lo']:.4f}, {a['hi']:.4f}]" + _both(a))
        if self.table:
            lines.append(f"  cooldown ({self.cooldown}, to {self.final:g}x the LR) from step k to {self.budget}:")
            for r in self.table:
                mark = "  <- best" if r["start"] == self.best_start else ""
                lines.append(f"    k = {r['start']:>8}: {r['loss']:.4f}  [{r['lo']:.4f}, {r['hi']:.4f}]{_both(r)}{mark}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def line(self) -> str:
        """One line for a live log: step, loss, each alternative's forecast with its band."""
        alts = "; ".join(f"{a['name'].split(' (')[0]} {a['loss']:.4f} [{a['lo']:.4f}, {a['hi']:.4f}]"
                         for a in self.alternatives)
        best = f"; best cooldown start {self.best_start}" if self.best_start is not None else ""
        return f"step {self.step}: loss {self.observed:.4f} | {alts}{best} (C from the {self.source})"

    def plot(self, path) -> None:
        """The curve so far, the fitted law, each alternative's forecast with its band."""
        from ..plotting import pyplot, save as save_fig

        fig, ax = pyplot().subplots(figsize=(7, 4.5))
        steps, loss = self.curve
        ax.plot(steps, loss, ".", ms=2, color="0.5", label="log")
        for (name, (x, y)), a in zip(self.schedules.items(), self.alternatives):
            line, = ax.plot(x, y, lw=1, label=name)
            ax.errorbar([a["end"]], [a["loss"]], yerr=[[a["loss"] - a["lo"]], [a["hi"] - a["loss"]]],
                        fmt="o", ms=3, color=line.get_color(), capsize=3)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(f"forecast at step {self.step} (C from the {self.source})")
        ax.legend(fontsize=7)
        save_fig(fig, path)


def _both(row) -> str:
    """A CPT forecast's row: its general and domain losses beside the objective."""
    if "general" not in row:
        return ""
    return f"  (general {row['general']['loss']:.4f}, domain {row['domain']['loss']:.4f})"


def _cooldown(start_lr, n, shape, final):
    if n <= 0:
        return np.zeros(0)
    v = np.arange(1, n + 1, dtype=np.float64) / n
    return _schedules.cooldown_curve(start_lr, final * start_lr, v, shape)


def forecast(log, *, column: str | None = None, budget: int | None = None, schedule=None,
             cooldown: str = "linear", cooldown_steps: int | None = None, final: float = 0.0,
             reference=None, anneal: str = "auto", n_starts: int = 12, n_draws: int = 256,
             seed: int = 0) -> Forecast:
    """Forecast a (pre-)training run's final loss under alternative futures.

    Args:
        log: the run so far: a `Run` or a log file (any format `load_run` reads).
        column: the loss column (default: the log's only loss column, else ``loss``).
        budget: the planned total steps (default: the length of ``schedule``, else none: no
            cooldown-start table).
        schedule: the run's own full schedule (per-step array or text form), when known.
        cooldown: the cooldown's shape: ``linear``, ``1-sqrt``, ``cosine``, ``exp``.
        cooldown_steps: the length of "cool down now" (default: 20% of the budget, at most the
            steps left in it; else 20% of the steps so far).
        final: the LR at the end of a cooldown, as a fraction of the LR it starts from.
        reference: other runs of the same model (list of `Run` or log files; fitted
            jointly), or a fitted law (``pt`` law, or a fit file path): where C comes from when the
            log has no annealing. ``None``: the prior.
        anneal: the law's annealing term: ``"realized"`` (each LR drop's gain realized by the LR
            area after it, `RealizedLaw`; on the 29 real branches of experiments/forecast.py
            it halves Eq. 1's error), ``"eq1"`` (Eq. 1's S2, momentum per step), or ``"auto"``
            (default): realized, unless the peak LR is outside ``REALIZED_LRS`` (the range its
            area constant was calibrated on, AdamW runs) or its forecast is not sane there — then
            Eq. 1, and a note says so. A reference *law* keeps its own term: an Eq. 1 law (a fit
            file) makes it Eq. 1; a realized law (an earlier forecast's) is refused by Eq. 1.
        n_starts: rows of the cooldown-start table.
    """
    _check_counts(n_starts=n_starts, n_draws=n_draws, seed=seed)
    if anneal not in ("auto", "realized", "eq1"):
        raise InputError(f"forecast: anneal must be 'auto', 'realized' or 'eq1', got {anneal!r}")
    shape, full = _check_cooldown(cooldown, final), _full_schedule(schedule)
    _not_itself(log, reference)
    log_run, column, budget, L = _so_far(_as_run(log, full), column, full, budget, cooldown_steps)
    opts = (log_run, column, reference, full, budget, L, cooldown, final, n_starts, n_draws, seed)
    if anneal != "auto":
        return _forecast(anneal, [], *opts)
    peak = max(float(np.max(log_run.lr)), float(np.max(full)) if full is not None else 0.0)
    if not REALIZED_LRS[0] <= peak <= REALIZED_LRS[1]:
        return _forecast("eq1", [f"peak LR {peak:.3g} is outside {REALIZED_LRS}, where the realized law's area "
                                 "constant was calibrated: Eq. 1's annealing term is used"], *opts)
    try:
        return _forecast("realized", [], *opts)
    except InputError as e:
        if "does not describe this run" not in str(e):
            raise
        return _forecast("eq1", [f"the realized law's forecast was not sane ({e}); Eq. 1's annealing term is "
                                 "used"], *opts)


def _forecast(anneal, notes0, log_run, column, reference, full, budget, L, cooldown, final, n_starts, n_draws, seed):
    t, lr_so_far = log_run.n_pt, log_run.lr
    res, law, source, notes, ref_law = _fit(log_run, column, reference, anneal)
    notes = notes0 + notes
    rng = np.random.default_rng(seed)
    law, draws, source = _annealing(law, res.cov, source, ref_law, log_run, budget or (t + L), n_draws, rng, notes)
    sd = float(res.rmse) if math.isfinite(res.rmse) else 0.0
    score = lambda lr: dict(zip(("loss", "lo", "hi"), _at_end(law, draws, lr, sd)))
    futures, table, best = _futures(lr_so_far, full, budget, L, cooldown, final, n_starts, score)
    alternatives, curves = [], {}
    for name, lr in futures.items():
        x = np.unique(np.linspace(t, lr.size, 200).round().astype(int))  # ends at lr.size
        a = _areas_at(law, lr, x - 1)  # once: the curve, and its last point for the band
        m, lo, hi = _at_end(law, draws, lr, sd, a)
        alternatives.append({"name": name, "end": int(lr.size), "loss": m, "lo": lo, "hi": hi})
        curves[name] = (x, _value({k: float(getattr(law, k)) for k in law.param_names()}, a))
    y = log_run.losses[column]
    _sane(alternatives + table, source, float(np.median(y[-5:])), sd)  # the median: one loss spike is not a misfit
    return Forecast(t, float(y[-1]), int(budget) if budget else None, cooldown, float(final), law, source,
                    alternatives, table, best, res, notes, curves, (log_run.steps, y))


def _not_itself(log, reference):
    """The log given as its own reference would fit C from the log twice over: refused."""
    paths = lambda x: [x] if isinstance(x, (str, bytes, os.PathLike)) else (list(x) if isinstance(x, (list, tuple)) else [])
    if isinstance(log, (str, bytes, os.PathLike)):
        me = os.path.realpath(os.fsdecode(log))
        for r in paths(reference):
            if isinstance(r, (str, bytes, os.PathLike)) and me in (os.path.realpath(p) for p in os.fsdecode(r).split(",")):
                raise InputError(f"forecast: the reference {os.fsdecode(r)} is the log itself: give a finished run of "
                                 "the same model")


def _sane(rows, source, observed=None, sd=0.0):
    """Every forecast a positive, finite loss, and "stop now" (the log's own last step) within 5%
    (plus three of the fit's residual sd ``sd``: a noisy log) of the loss ``observed`` there (the
    median of the last few logged): a law (a reference's, most often) that predicts otherwise does
    not describe this run, and its numbers are not reported."""
    bad = [r for r in rows if not (math.isfinite(r["loss"]) and r["loss"] > 0
                                   and all(math.isfinite(r[k]) for k in ("lo", "hi") if k in r))]
    if bad:
        raise InputError(f"forecast: the law ({source}) predicts a loss of {bad[0].get('loss')!r} for "
                         f"'{bad[0].get('name', bad[0].get('start'))}': not a positive finite loss, so it does not "
                         "describe this run (check the reference's parameters)")
    stop = next((r for r in rows if r.get("name") == "stop now"), None)
    if observed is not None and stop is not None and abs(stop["loss"] - observed) > 0.05 * observed + 3 * sd:
        raise InputError(f"forecast: the law ({source}) gives {stop['loss']:.4g} at the log's last step, where the "
                         f"log has {observed:.4g}: it does not describe this run (is the reference a run of this "
                         "model, with these columns?)")


def _check_counts(**kw):
    """``n_starts`` in [1, 1000], ``n_draws`` in [2, 100 000], ``seed`` a non-negative integer."""
    for name, (lo, hi) in (("n_starts", (1, 1000)), ("n_draws", (2, 100_000)), ("seed", (0, 2**63 - 1))):
        v = kw[name]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
            raise InputError(f"forecast: `{name}` must be an integer in [{lo}, {hi}], got {v!r}")


def _check_cooldown(cooldown, final) -> str:
    """The cooldown's shape name, after checking ``cooldown`` and ``final``."""
    if not isinstance(cooldown, str) or cooldown not in COOLDOWN_SHAPES:
        raise InputError(f"forecast: cooldown must be one of {sorted(COOLDOWN_SHAPES)}, got {cooldown!r}")
    shape = COOLDOWN_SHAPES[cooldown]
    if isinstance(final, bool) or not (isinstance(final, (int, float)) and 0 <= final < 1 and math.isfinite(final)):
        raise InputError(f"forecast: final must be a fraction in [0, 1), got {final!r}")
    if shape == "exp" and final <= 0:
        raise InputError("forecast: an 'exp' cooldown needs final > 0")
    return shape


def _full_schedule(schedule):
    """The run's whole planned schedule (text form or per-step array), or ``None``."""
    if schedule is None:
        return None
    full = _schedules.parse(schedule) if isinstance(schedule, str) else schedule
    check_schedule(full, name="schedule")
    full = np.asarray(full, np.float64)
    if full.ndim != 1:
        raise InputError(f"forecast: `schedule` must be a 1-D per-step LR array, got shape {full.shape}")
    return full


def _futures(lr, full, budget, L, cooldown, final, n_starts, score):
    """The futures of a log whose schedule so far is ``lr``: the schedule continued (when known),
    stop now, cool down now over ``L`` steps, and — with a ``budget`` — the cooldown-start table
    (``score(schedule)`` gives a row's numbers, with its ``loss``) and its best start. Returns
    ({name: schedule}, table, best start)."""
    t, eta_t, shape = lr.size, float(lr[-1]), COOLDOWN_SHAPES[cooldown]
    futures = {}
    if full is not None and full.size > t:
        futures["continue the schedule"] = full
    futures["stop now"] = lr
    futures[f"cool down now ({cooldown}, {L} steps)"] = np.concatenate([lr, _cooldown(eta_t, L, shape, final)])
    table, best = [], None
    if budget is not None:
        start_at = lambda k: np.concatenate([lr, np.full(k - t, eta_t), _cooldown(eta_t, budget - k, shape, final)])
        for k in np.unique(np.linspace(t, budget - 1, n_starts).round().astype(int)):
            table.append({"start": int(k), **score(start_at(k))})
        best = min(table, key=lambda r: r["loss"])["start"]
        futures[f"best cooldown start (step {best})"] = start_at(best)
    return futures, table, best


def _budget(full, budget, t, cooldown_steps):
    """The forecast's budget (the schedule's length when it is given) and the length of "cool
    down now", checked against the log's last step ``t``."""
    if full is not None:
        if full.size < t:
            raise InputError(f"forecast: the schedule has {full.size} steps, the log reaches step {t}")
        budget = full.size if budget is None else budget
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, np.integer))
                               or not t < budget <= _schedules.MAX_STEPS):
        raise InputError(f"forecast: budget must be an integer step after the log's last step {t} and at most "
                         f"{_schedules.MAX_STEPS:,}, got {budget!r}")
    if cooldown_steps is not None and (isinstance(cooldown_steps, bool) or not isinstance(cooldown_steps, (int, np.integer))
                                       or not 1 <= cooldown_steps <= (budget - t if budget else _schedules.MAX_STEPS - t)):
        raise InputError(f"forecast: cooldown_steps must be an integer in [1, {budget - t if budget else _schedules.MAX_STEPS - t}]"
                         f"{' (the steps left in the budget)' if budget else ''}, got {cooldown_steps!r}")
    # "cool down now" by default over 20% of the budget (within the steps left in it), else of the steps so far
    L = int(cooldown_steps) if cooldown_steps is not None else max(1, round(0.2 * (budget or t)))
    L = min(L, budget - t) if budget and cooldown_steps is None else L
    return budget, L


def _so_far(run, column, full, budget, cooldown_steps):
    """The log up to its last logged loss (as a PT-only Run), the column, the budget and the
    length of "cool down now", checked."""
    column = column or (next(iter(run.losses)) if len(run.losses) == 1 else "loss")
    if column not in run.losses:
        raise InputError(f"forecast: {run.name} has no loss column {column!r}; it has {sorted(run.losses)}")
    y = np.asarray(run.losses[column], np.float64)
    ok = np.isfinite(y)
    if ok.sum() < 5:
        raise InputError(f"forecast: {run.name} has {int(ok.sum())} logged losses; at least 5 are needed")
    t = int(np.asarray(run.steps)[ok].max())
    lr_so_far = np.asarray(run.lr[:t], np.float64)
    if lr_so_far[-1] <= 0:
        raise InputError(f"forecast: the LR at step {t} is {lr_so_far[-1]}: the run has already cooled down to 0")
    budget, L = _budget(full, budget, t, cooldown_steps)
    keep = (np.asarray(run.steps) <= t) & ok
    return Run(run.name, lr_so_far, t, np.asarray(run.steps)[keep], {column: y[keep]}), column, budget, L


def _relevel(law, draws, log):
    """With C set from elsewhere, L0 and A (the law's linear parameters) refitted to the log by
    least squares (for the law and each draw, its α and C held): the curve so far stays fitted
    (the warmup's negative annealing area would otherwise shift it by C·S2)."""
    steps, y = log.points(next(iter(log.losses)))
    a = _areas_at(law, log.lr, steps)
    s1, s2 = a.s1_pt + a.s1_cpt, a.s2_pt + a.s2_cpt
    def solve(alpha, C):
        X = np.stack([np.ones_like(s1), np.power(s1, -alpha)], 1)
        (L0, A), *_ = np.linalg.lstsq(X, y + C * s2, rcond=None)
        return L0, max(A, 1e-12)

    L0, A = solve(law.alpha, law.C)
    law = dataclasses.replace(law, L0=float(L0), A=float(A))
    sol = np.array([solve(al, c) for al, c in zip(draws["alpha"], draws["C"])])
    return law, {**draws, "L0": sol[:, 0], "A": sol[:, 1]}


def _annealing(law, cov, source, ref_law, log, T_end, n_draws, rng, notes):
    """The law and its parameter draws with C from where it is known: the log (when it anneals
    and identifies C), the reference, or the prior."""
    lr_so_far = log.lr
    draws = _draws(law, cov, n_draws, rng)
    if source == "log" and not (_annealed(lr_so_far) and _identified(law, cov)):
        source = "reference" if ref_law is not None else "prior"
    if source == "reference" and ref_law is not None:
        draws["C"] = np.full(n_draws, float(ref_law.C))
        law = dataclasses.replace(law, C=float(ref_law.C))
        law, draws = _relevel(law, draws, log)
    elif source == "prior":
        t, S1 = lr_so_far.size, float(lr_so_far.sum())
        q0, sd = PRIOR_Q[_form(law)]
        kappa = q0 * t ** 1.5
        q = kappa * np.exp(sd * rng.standard_normal(n_draws))
        draws["C"] = q * draws["A"] * draws["alpha"] / S1 ** (draws["alpha"] + 1)
        law = dataclasses.replace(law, C=float(kappa * law.A * law.alpha / S1 ** (law.alpha + 1)))
        law, draws = _relevel(law, draws, log)
        notes.append("the log has no annealing and no reference was given: C comes from the prior "
                     f"(q = {q0:g}, log-sd {sd:g}, from real runs of two studies); give a "
                     "finished run of this model as reference= for a sharper forecast")
    return law, draws, source


def _fit_file(path) -> dict | None:
    """The parsed top level of a ``.json`` file with a ``law`` key (cptjax's fit, law and forecast
    files), else ``None``."""
    import json

    if not os.fspath(path).endswith(".json") or not os.path.isfile(path):
        return None
    try:
        from ..files import read_text

        d = json.loads(read_text(path, "reference", limit=64 << 20))
    except (ValueError, RecursionError, InputError, OSError):
        return None
    return d if isinstance(d, dict) and "law" in d else None


def _is_fit_file(path) -> bool:
    return _fit_file(path) is not None


def _as_run(log, full, what="log") -> Run:
    """The log as a Run; a file read with the run's full schedule when it is known (it gives
    the LR of a log that records none, and a log whose own LR disagrees with it is warned about)."""
    if isinstance(log, Run):
        return log
    if isinstance(log, (str, bytes)) or hasattr(log, "__fspath__"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run = load_run(log, schedule=full)
        for w in caught:  # only the disagreement: the reader's other notes are about the LR it rebuilt
            if "disagrees" in str(w.message):
                warnings.warn(str(w.message), DataWarning, stacklevel=3)
        return run
    raise InputTypeError(f"forecast: `{what}` must be a Run or a log file path, got {type(log).__name__}")


def _fit(log_run, column, reference, anneal="realized"):
    from ..fitting import fit
    from ..laws import PTLaw
    from ..fitting import load_law

    runs, ref_law, notes, source = [log_run], None, [], "log"
    if reference is not None:
        if isinstance(reference, PTLaw):
            check_law(reference, "reference")
            ref_law = reference
        elif isinstance(reference, (str, bytes)) or hasattr(reference, "__fspath__"):
            d = _fit_file(reference)
            if d is not None:  # a fit file is read as one, its errors reported as such
                ref_law = _realized_law(d, reference) or load_law(reference)
            else:
                reference = [reference]
        elif not (isinstance(reference, (list, tuple)) and reference):
            raise InputTypeError(f"forecast: `reference` must be a pt law, a fit file, or a non-empty list of runs "
                                 f"or log files, got {type(reference).__name__}")
        if ref_law is not None and not isinstance(ref_law, PTLaw):
            raise InputError(f"forecast: a reference law must be the annealing law (pt), got {type(ref_law).__name__}")
        if ref_law is None:
            refs = reference if isinstance(reference, (list, tuple)) else [reference]
            for r in refs:
                rr = _as_run(r, None, "reference")
                if column not in rr.losses:
                    raise InputError(f"forecast: the reference {rr.name} has no loss column {column!r}; "
                                     f"it has {sorted(rr.losses)}")
                runs.append(Run(rr.name, rr.lr, rr.lr.size, rr.steps, {column: rr.losses[column]}))
            source = "reference"
    if isinstance(ref_law, RealizedLaw) and anneal == "eq1":
        raise InputError("forecast: the reference law is a realized law (an earlier forecast's): its C is not Eq. 1's; "
                         "use anneal='realized' or 'auto'")
    realized = anneal == "realized" and (ref_law is None or isinstance(ref_law, RealizedLaw))
    if anneal == "realized" and not realized:
        notes.append("the reference law is Eq. 1's: forecast with Eq. 1's annealing term (anneal='eq1')")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = fit_realized(runs, column) if realized else fit(runs, "pt", column, throw=True)
        except (FitError, InputError) as e:
            raise InputError(f"forecast: the annealing law could not be fitted to {log_run.name}: {e}") from None
    if ref_law is not None:
        if _annealed(log_run.lr) and _identified(res.law, res.cov):
            source = "log"
        notes.append(f"reference law: C = {ref_law.C:.4g}")
    return res, res.law, source, notes, ref_law


def _realized_law(d, path):
    """The realized law of a saved forecast or law file's top level ``d`` (``"law": "pt-realized"``),
    else ``None``."""
    d = d["law"] if isinstance(d["law"], dict) else d
    if d.get("law") != "pt-realized":
        return None
    try:
        law = RealizedLaw(**{k: float(d[k]) for k in RealizedLaw.param_names()})
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"forecast: the reference {os.fsdecode(path)} has a realized law without its parameters: {e}") from None
    check_law(law, "reference")
    return law


def _annealed(lr) -> bool:
    """Whether the LR so far has come down from its peak by at least 30% (after the peak): only
    then can the log itself identify the annealing coefficient C."""
    i = int(np.argmax(lr))
    return lr.size > i + 1 and float(lr[i + 1:].min()) <= 0.7 * float(lr[i])


def _identified(law, cov) -> bool:
    names = law.param_names()
    i = names.index("C")
    var = float(np.asarray(cov)[i, i]) if cov is not None else math.inf
    return law.C > 0 and math.isfinite(var) and var >= 0 and math.sqrt(var) < _IDENTIFIED * law.C


def _draws(law, cov, n, rng) -> dict:
    """Parameter draws (capped at 50% relative sd, as the tuner's) as {name: array (n,)}."""
    from ..planning import cap_cov, param_draws

    names = law.param_names()
    c = None if cov is None else cap_cov(law, np.nan_to_num(np.asarray(cov, np.float64), nan=0.0, posinf=0.0, neginf=0.0))
    x = param_draws(law, c, n, rng)
    return {k: x[:, i] for i, k in enumerate(names)}


def _form(law) -> str:
    """The law's annealing term: ``realized`` or ``eq1`` (the keys of PRIOR_Q and MODEL_SD)."""
    return "realized" if isinstance(law, RealizedLaw) else "eq1"


def _areas_at(law, lr, idx):
    if isinstance(law, RealizedLaw):
        return areas_of(np.asarray(lr, np.float64), np.asarray(idx))
    return areas_numpy(lr, lr.size, law.lam, idx=np.asarray(idx), eps=getattr(law, "eps", 0.0))


def _value(p, a):
    return p["L0"] + p["A"] * np.power(a.s1_pt + a.s1_cpt, -p["alpha"]) - p["C"] * (a.s2_pt + a.s2_cpt)


def _at_end(law, draws, lr, sd, a=None):
    """Mean, 5% and 95% of the loss at the last step of ``lr`` (``a``: its areas there, if known)."""
    a = _areas_at(law, lr, [lr.size - 1]) if a is None else a
    a = type(a)(*(np.asarray(v).reshape(-1)[-1] for v in a))
    mean = float(_value({k: float(getattr(law, k)) for k in draws}, a))
    vals = _value(draws, a)
    vals = vals[np.isfinite(vals)]
    # the band: parameter draws, plus the log's residual scatter (the measured loss has it too) and
    # the law's own error on a future it has not seen (MODEL_SD, relative)
    z = np.random.default_rng(0).standard_normal((2, vals.size))
    noise = z[0] * sd + z[1] * MODEL_SD[_form(law)] * mean
    lo, hi = np.quantile(vals + noise, [0.05, 0.95]) if vals.size else (math.nan, math.nan)
    return mean, float(lo), float(hi)


def watch(path, *, column: str | None = None, every: int = 20, poll: float = 5.0,
          max_polls: int | None = None, sleep=None, **forecast_options):
    """Follow a growing training log: each time it has ``every`` new logged losses (and at the
    first read with enough of them), refit and yield a `Forecast`. The log is re-read every
    ``poll`` seconds; a read that fails while the trainer is writing (a half-written last line) is
    retried at the next poll, and only ten failures in a row raise. ``max_polls`` ends the watch
    (tests); Ctrl-C ends it in between polls. ``forecast_options`` go to `forecast`.

    Example:

        for fc in cptjax.watch("run/metrics.csv", every=50, budget=20000):
            print(fc.step, fc.table and fc.best_start)
    """
    import time

    from ..errors import DataError

    if not (isinstance(every, int) and every >= 1):
        raise InputError(f"watch: every must be an integer >= 1, got {every!r}")
    if isinstance(poll, bool) or not (isinstance(poll, (int, float)) and 0 < poll <= 86400):
        raise InputError(f"watch: poll must be a number of seconds in (0, 86400], got {poll!r}")
    sleep = sleep or time.sleep
    seen, fails, polls = 0, 0, 0
    while max_polls is None or polls < max_polls:
        polls += 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                run = load_run(path)
            fails = 0
        except (DataError, InputError, OSError) as e:
            fails += 1
            if fails >= 10:
                raise InputError(f"watch: {path} could not be read 10 times in a row: {e}") from None
            sleep(poll)
            continue
        col = column or (next(iter(run.losses)) if len(run.losses) == 1 else "loss")
        if col not in run.losses:
            raise InputError(f"watch: {path} has no loss column {col!r}; it has {sorted(run.losses)}")
        n = int(np.isfinite(run.losses[col]).sum())
        if n < seen:  # replaced by a shorter log: a restarted run
            warnings.warn(f"watch: {path} now has {n} logged losses, fewer than the {seen} before (a restarted "
                          "run?); following it from here", DataWarning, stacklevel=2)
            seen = 0
        if n >= 5 and (seen == 0 or n - seen >= every):
            seen = n
            yield forecast(run, column=col, **forecast_options)
        sleep(poll)
