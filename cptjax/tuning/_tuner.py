"""A schedule-aware hyper-parameter optimiser for CPT recipes, in Optuna's ask-and-tell shape.

Every trial is a whole curve of both losses. After each trial the tuner refits the replay law
(Eq. 8, one law per validation set) on every curve seen so far and predicts the final objective
λ1·L_general + (1 − λ1)·L_domain of every candidate recipe:

- the law's form — the areas' momentum decay λ, one of ``LAMS`` — is the one that best predicts
  held-out trials (each fitted without the last quarter of the trials, scored on them);
- parameter sets are drawn from the fits' covariance;
- the law's residuals at the trials (measured − predicted) are modelled by a Gaussian process over
  the recipes: its mean corrects the predictions, its samples join the parameter draws.

The next trial is chosen by Thompson sampling over those draws (the candidate that is best under
one random draw: where the law is uncertain, where it has been wrong and where its optimum is);
the law's own favourite is run at full length before it can be recommended (``verify``).
``best()`` returns the best recipe measured at full length (by the corrected prediction, which
averages seed noise), a 90% interval and the probability (over the draws) that it is the best.

Multi-fidelity comes free: the law predicts a full run from its beginning, so the first trials —
chosen to span the space (its corners and centre), not at random — are run for ``init_fraction``
of the CPT steps only. The stop rule: no candidate's expected improvement over the recommended
one exceeds ``noise`` (the seed-to-seed spread of the objective).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import warnings
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import schedules as _schedules
from ..schedules import MAX_LR

MAX_TUNE_STEPS = 200_000  # n_candidates schedules of this length are held at once
from ..laws import check_lam
from ..fitting import fit, fit_batch
from ..fitting import make_problem
from ..data import Run, load_run
from ..planning import cpt_losses, cap_cov, evaluate, law_draws, pt_states
from ..laws import LawPair
from ..errors import FitError, InputError, InputTypeError

__all__ = ["Recipe", "Space", "Trial", "Tuner", "Recommendation", "LAMS"]

FAMILIES = ("cosine", "wsd")
LAMS = (0.95, 0.99, 0.995, 0.999)  # the law forms (momentum decays) the tuner chooses among


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One CPT recipe: a schedule family with its peak LR and shape, and a replay ratio.

    ``family``: ``"cosine"`` (from ``peak`` to ``final``·peak) or ``"wsd"`` (hold ``peak``,
    then a linear cooldown over the last ``decay`` of the steps to ``final``·peak). A linear
    re-warmup of ``warmup`` steps rises from the PT's last LR to the peak."""

    family: str
    peak: float
    replay: float = 0.0
    decay: float = 0.2
    final: float = 0.0
    warmup: int = 0

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise InputError(f"Recipe: family must be one of {FAMILIES}, got {self.family!r}")
        for name, v, hi in (("peak", self.peak, MAX_LR), ("replay", self.replay, 1),
                            ("decay", self.decay, 1), ("final", self.final, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not 0 <= v <= hi \
                    or not math.isfinite(v) or (name == "peak" and v == 0):
                raise InputError(f"Recipe: {name} must be a finite number in {'(0' if name == 'peak' else '[0'}, "
                                 f"{hi}], got {v!r}" + (" (an LR in raw units)" if name == "peak" else ""))
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, (int, np.integer)) or self.warmup < 0:
            raise InputError(f"Recipe: warmup must be an integer number of steps >= 0, got {self.warmup!r}")

    def schedule(self, steps: int, start_lr: float = 0.0) -> np.ndarray:
        """The per-step CPT LR for a run of ``steps`` steps, re-warmed from ``start_lr``."""
        w = min(self.warmup, steps - 1)
        body = steps - w
        if self.family == "cosine":
            main = _schedules.cosine(body, self.peak, final=self.final * self.peak)
        else:
            main = _schedules.wsd(body, self.peak, decay=self.decay, final=self.final * self.peak)
        return _schedules.rewarm(main, float(start_lr), w)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def name(self) -> str:
        shape = f"decay={self.decay:.3g}" if self.family == "wsd" else ""
        return (f"{self.family}(peak={self.peak:.3g}{',' + shape if shape else ''}"
                f"{f',final={self.final:.3g}' if self.final else ''},replay={self.replay:.3g})")


@dataclasses.dataclass(frozen=True)
class Space:
    """The search space: peak LR in [lo, hi] (log scale), replay ratio in [lo, hi], the schedule
    families with their shape ranges (WSD cooldown fraction, cosine final fraction), a fixed
    re-warmup, and the CPT length ``steps`` of the run being planned."""

    steps: int
    peak: tuple = (1e-5, 1e-3)
    replay: tuple = (0.0, 0.5)
    families: tuple = FAMILIES
    decay: tuple = (0.1, 0.4)
    final: tuple = (0.0, 0.1)
    warmup: int = 0

    def __post_init__(self):
        if not (isinstance(self.steps, (int, np.integer)) and self.steps >= 2):
            raise InputError(f"Space: steps must be an integer >= 2, got {self.steps!r}")
        for name in ("peak", "replay", "decay", "final"):
            v = getattr(self, name)
            if not (isinstance(v, (tuple, list)) and len(v) == 2
                    and all(isinstance(x, (int, float, np.floating)) and not isinstance(x, bool) for x in v)):
                raise InputError(f"Space: {name} must be a range (lo, hi) of two numbers, got {v!r}")
        for name, (lo, hi), lo_ok in (("peak", self.peak, 0), ("replay", self.replay, 0),
                                      ("decay", self.decay, 0), ("final", self.final, 0)):
            if not (math.isfinite(lo) and math.isfinite(hi) and lo_ok <= lo <= hi):
                raise InputError(f"Space: {name} must be a range (lo, hi) with {lo_ok} <= lo <= hi, "
                                 f"got {(lo, hi)!r}")
        if self.peak[0] <= 0 or self.replay[1] > 1 or self.decay[1] > 1 or self.final[1] > 1:
            raise InputError("Space: peak must be > 0; replay, decay and final within [0, 1]")
        if self.peak[1] > MAX_LR:
            raise InputError(f"Space: peak {self.peak[1]!r} is above {MAX_LR:g}: is the LR in raw units?")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, (int, np.integer)) \
                or not 0 <= self.warmup < self.steps:
            raise InputError(f"Space: warmup must be an integer number of steps in [0, steps), got {self.warmup!r}")
        if not self.families or set(self.families) - set(FAMILIES):
            raise InputError(f"Space: families must be a non-empty subset of {FAMILIES}")

    def sample(self, rng, n: int) -> list:
        """``n`` recipes drawn uniformly (peak log-uniformly)."""
        out = []
        for _ in range(n):
            fam = self.families[rng.integers(len(self.families))]
            out.append(Recipe(fam, float(np.exp(rng.uniform(*np.log(self.peak)))),
                              float(rng.uniform(*self.replay)), float(rng.uniform(*self.decay)),
                              float(rng.uniform(*self.final)), self.warmup))
        return out

    def corners(self) -> list:
        """A space-filling first design that identifies the law: the four (peak, replay) corners
        and the centre, families alternating."""
        lo, hi = self.peak
        mid = math.sqrt(lo * hi)
        pts = [(lo, self.replay[0]), (hi, self.replay[1]), (mid, float(np.mean(self.replay))),
               (hi, self.replay[0]), (lo, self.replay[1])]
        fams = itertools.cycle(self.families)
        d, f = float(np.mean(self.decay)), float(np.mean(self.final))
        return [Recipe(next(fams), p, r, d, f, self.warmup) for p, r in pts]


class Trial(NamedTuple):
    """A proposed run: the first ``steps`` CPT steps of ``recipe``'s full ``full_steps``-step
    schedule (a short trial is the beginning of the full run, truncated: the law predicts the rest).
    """

    number: int
    recipe: Recipe
    steps: int
    full_steps: int

    def schedule(self, start_lr: float = 0.0) -> np.ndarray:
        """The per-step CPT LR to train for this trial, re-warmed from the PT's last LR."""
        return self.recipe.schedule(self.full_steps, start_lr)[:self.steps]


class Recommendation(NamedTuple):
    """The recommended recipe: its predicted objective (mean over parameter draws), a 90%
    interval, the probability that it is the best candidate, and the predicted general and
    domain losses at the end of the full run. Before a law could be fitted (too few trials), the
    recommendation is the best observed trial and ``p_best``, ``general`` and ``domain`` are ``None``."""

    recipe: Recipe
    objective: float
    interval: tuple
    p_best: float | None
    general: float | None
    domain: float | None
    n_trials: int


@dataclasses.dataclass
class _Told:
    trial: Trial
    run: Run


def _check_options(weight_general, init_fraction, noise, n_candidates, n_draws, seed, columns, probe):
    """Tuner's scalar options, each checked by name."""
    real = lambda v: isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)
    if not (real(weight_general) and 0 <= weight_general <= 1):
        raise InputError(f"Tuner: weight_general must be in [0, 1], got {weight_general!r}")
    if not (real(init_fraction) and 0 < init_fraction <= 1):
        raise InputError(f"Tuner: init_fraction must be in (0, 1], got {init_fraction!r}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float, np.floating)) or not 0 <= noise <= 1:
        raise InputError(f"Tuner: noise (the objective's seed noise, in nats) must be a number in [0, 1], got {noise!r}")
    for name, v, lo, hi in (("n_candidates", n_candidates, 1, 100_000), ("n_draws", n_draws, 2, 100_000),
                            ("seed", seed, 0, 2**63 - 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
            raise InputError(f"Tuner: {name} must be an integer in [{lo}, {hi}], got {v!r}")
    if not isinstance(columns, (list, tuple)) or len(columns) != 2 or not all(isinstance(c, str) for c in columns):
        raise InputError(f"Tuner: columns must be two column names (general, domain), got {columns!r}")
    if not (real(probe) and 0 <= probe <= 1):
        raise InputError(f"Tuner: probe must be a probability in [0, 1], got {probe!r}")


class Tuner:
    """Ask-and-tell tuning of a CPT recipe with the replay law.

    Args:
        space: a `Space` (continuous mode: ``n_candidates`` recipes drawn from it plus its
            corners are the candidates), or ``None`` with ``candidates``.
        pt: the PT schedule (per-step LR array or text form) the CPT runs continue from.
        weight_general: λ1 of the objective λ1·L_general + (1 − λ1)·L_domain at the end of CPT.
        candidates: a finite list of `Recipe` to choose among (candidates mode); needs
            ``steps``.
        steps: the CPT length (candidates mode; else the space's).
        init_fraction: the length of the first (space-filling) trials as a share of ``steps``.
        noise: the seed noise of the objective; the stop rule's threshold.
        columns: the general and domain loss columns of the trials' logs.
        pt_log: the PT run's own log with both losses (a `Run` or a log file), if you have
            it: fitted once with every trial, it pins the PT part of the law (L0, A, α, C) that
            CPT-only logs identify poorly.
        lam: fix the areas' momentum decay λ (e.g. the paper's 0.999), or ``"profile"`` (the
            best of ``cptjax.LAM_GRID`` by the fit's objective). Default ``None``: the law form is
            chosen at every refit among ``lams`` by how well each predicts held-out trials (see
            ``chosen_lam`` and ``lam_scores``).
        lams: the momentum decays λ to choose among (default ``LAMS``: their memories, 1/(1 − λ),
            span 20–1000 steps; the paper's 0.999 suits long runs, the lab's 500-step CPT runs
            are predicted far better at 0.99).
        verify: when the recommended recipe has not been run at full length, the next trial runs
            it (then Thompson sampling again): every recommendation is checked against a real run.
        probe: a trial's cost in the acquisition: a recipe Thompson sampling picks that no trial
            has run yet and whose probability of being the best is below ``probe`` is first run
            short (``init_fraction`` of the steps: the law predicts the rest), at full length only
            if it is picked again. ``0`` runs every pick at full length.
        seed: seeds the candidate draws, Thompson sampling and the parameter draws.

    Example:

        tuner = cptjax.Tuner(cptjax.Space(steps=2000, peak=(1e-4, 3e-3), replay=(0, 0.5)), pt=pt_lr)
        while not tuner.should_stop() and tuner.n_trials < 12:
            trial = tuner.ask()
            log = train(trial.schedule(pt_lr[-1]), trial.recipe.replay)
            tuner.tell(trial, log)             # a Run, or any log file load_run reads
        print(tuner.best())
    """

    def __init__(self, space: Space | None = None, *, pt, weight_general: float = 0.5,
                 candidates: Sequence[Recipe] | None = None, steps: int | None = None,
                 init_fraction: float = 0.5, noise: float = 0.005, n_candidates: int = 256,
                 n_draws: int = 128, columns=("general_loss", "domain_loss"), pt_log=None,
                 lam=None, lams: Sequence[float] = None, verify: bool = True, probe: float = 0.0,
                 seed: int = 0):
        if space is None and not candidates:
            raise InputError("Tuner: give a search `space`, or `candidates` (a list of Recipe)")
        if candidates is not None and not all(isinstance(c, Recipe) for c in candidates):
            raise InputTypeError("Tuner: `candidates` must be a list of cptjax.Recipe")
        _check_options(weight_general, init_fraction, noise, n_candidates, n_draws, seed, columns, probe)
        self.space, self.lam1, self.noise = space, float(weight_general), float(noise)
        self.steps = int(steps if steps is not None else (space.steps if space else 0))
        if not 2 <= self.steps <= MAX_TUNE_STEPS:
            raise InputError(f"Tuner: the CPT length `steps` must be in [2, {MAX_TUNE_STEPS:,}] (every candidate's "
                             f"schedule is held in memory), got {self.steps}")
        self.pt = _schedules.parse(pt) if isinstance(pt, str) else np.asarray(pt, np.float64)
        if self.pt.ndim != 1 or self.pt.size < 2 or not np.all(np.isfinite(self.pt)):
            raise InputError("Tuner: `pt` must be a finite per-step LR schedule")
        self.rng = np.random.default_rng(seed)
        self.seed, self.n_draws, self.columns, self.lam = seed, int(n_draws), tuple(columns), lam
        self.verify, self.probe = bool(verify), float(probe)
        for v in (LAMS if lams is None else lams) if lam is None else ([] if lam == "profile" else [lam]):
            check_lam(v, law=True)
        self.lams = tuple(float(v) for v in (LAMS if lams is None else lams))
        if not self.lams:
            raise InputError("Tuner: `lams` must name at least one momentum decay")
        self.chosen_lam, self.lam_scores = None, {}
        if candidates is not None:
            self.candidates = list(candidates)
            self._init = _spread(self.candidates)
        else:
            self._init = space.corners()
            self.candidates = self._init + space.sample(self.rng, n_candidates)
        self.init_steps = max(2, int(round(init_fraction * self.steps)))
        # Every candidate's full-length schedule and replay ratio, once (the acquisition's inputs).
        self._scheds = jnp.asarray(np.stack([c.schedule(self.steps, self.pt[-1]) for c in self.candidates]))
        self._reps = jnp.asarray([c.replay for c in self.candidates])
        self._index = {c: i for i, c in enumerate(self.candidates)}
        self._z = _features(self.candidates, self.candidates)
        self.told: list[_Told] = []
        self.asked = 0
        self._full = set()  # recipes asked at full length
        self.failed: list[Trial] = []  # trials told as failed (tell(trial, None)): never recommended
        self._probed = set()  # recipes asked short
        self.pt_run = None if pt_log is None else self._pt_run(pt_log)
        self.law, self._pred = None, None  # the fitted pair; predictions (draws x candidates)
        self._est, self._measured_idx, self._tau2 = None, [], 0.0  # see _measured

    @property
    def n_trials(self) -> int:
        return len(self.told)

    # -- ask / tell ---------------------------------------------------------------------------
    def ask(self) -> Trial:
        """The next trial: one of the space-filling first design (short), then Thompson sampling
        over the parameter draws (full length)."""
        n = self.asked
        self.asked += 1
        if n < len(self._init):
            self._probed.add(self._init[n])
            return Trial(n, self._init[n], self.init_steps, self.steps)
        pred = self._predictions()
        if pred is None:  # the law could not be fitted yet: keep filling the space
            return Trial(n, self.candidates[self.rng.integers(len(self.candidates))], self.steps, self.steps)
        rec = self._recommended_by_law()
        if self.verify and self.candidates[rec] not in self._full:
            # The recommendation itself has not been run at full length: run it (the law is a
            # model; its best guess is verified before the search moves on).
            self._full.add(self.candidates[rec])
            return Trial(n, self.candidates[rec], self.steps, self.steps)
        draw = pred[self.rng.integers(pred.shape[0])]
        order = np.argsort(draw)
        # not a recipe already run (or asked and still running: parallel workers) at full length
        bad = {f.recipe for f in self.failed}
        pick = next((int(i) for i in order if self.candidates[i] not in self._full),
                    next((int(i) for i in order if self.candidates[i] not in bad), int(order[0])))
        c = self.candidates[pick]
        if self.probe and c not in self._probed:
            wins = np.argmin(np.where([x in bad for x in self.candidates], np.inf, pred), axis=1)
            if np.mean(wins == pick) < self.probe:  # exploration: a short run costs less
                self._probed.add(c)
                return Trial(n, c, self.init_steps, self.steps)
        self._full.add(c)
        return Trial(n, self.candidates[pick], self.steps, self.steps)

    def tell(self, trial: Trial, run, *, cpt_steps_only: bool | None = None) -> None:
        """Record a trial's log: a `Run` or a log file (any format ``load_run`` reads) with
        the general and domain loss columns; ``None`` for a trial that failed or diverged (its
        recipe is neither asked again nor recommended). The schedule is the one the trial asked for (the
        PT's joined to the recipe's). The log's steps count from the start of CPT, or from the
        start of PT when they go beyond the trial's length (a log that continues the PT run's
        step counter, e.g. the lab's); ``cpt_steps_only`` says which when that guess is wrong."""
        if not isinstance(trial, Trial):
            raise InputTypeError(f"tell: `trial` must be a Trial from ask(), got {type(trial).__name__}")
        whole = lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool)
        if not (whole(trial.number) and trial.number >= 0 and whole(trial.steps) and 1 <= trial.steps <= self.steps
                and trial.full_steps == self.steps and isinstance(trial.recipe, Recipe)):
            raise InputError(f"tell: trial {trial.number!r} does not fit this tuner: a number >= 0, a Recipe, steps in "
                             f"[1, {self.steps}] of full_steps = {self.steps}; got steps {trial.steps!r} of "
                             f"{trial.full_steps!r}")
        if any(t.trial.number == trial.number for t in self.told) or any(f.number == trial.number for f in self.failed):
            raise InputError(f"tell: trial {trial.number} was already told (each trial is told once)")
        if run is None:
            self.failed.append(trial)
            self._full.add(trial.recipe)
            return
        if not isinstance(run, (Run, str, os.PathLike)):
            raise InputTypeError(f"tell: `run` must be a cptjax.Run, a log file path or None (failed), got "
                                 f"{type(run).__name__}")
        cpt = trial.schedule(self.pt[-1])
        lr, n_pt = _schedules.join(self.pt, cpt)
        if not isinstance(run, Run):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                run = load_run(run, loss_columns=list(self.columns), schedule=lr, n_pt=n_pt)
        missing = [c for c in self.columns if c not in run.losses]
        if missing:
            raise InputError(f"tell: the log {run.name} has no column(s) {missing}; it has "
                             f"{sorted(run.losses)}")
        steps = np.asarray(run.steps)
        if cpt_steps_only is None:
            cpt_steps_only = steps.max(initial=0) <= trial.steps
        if cpt_steps_only:
            steps = steps + n_pt
        keep = (steps >= 1) & (steps <= lr.size)
        losses = {c: np.asarray(run.losses[c], np.float64)[keep] for c in self.columns}
        if keep.sum() < 3:
            raise InputError(f"tell: the log {run.name} has fewer than 3 points within the trial's "
                             f"{lr.size} joined steps")
        for c, v in losses.items():
            if np.count_nonzero(np.isfinite(v) & (v > 0)) < 3:
                raise InputError(f"tell: the log {run.name}'s column {c!r} has fewer than 3 finite positive "
                                 "losses within the trial")
        self.told.append(_Told(trial, Run(f"trial{trial.number}", lr, n_pt, steps[keep], losses,
                                          replay=trial.recipe.replay)))
        self.law, self._pred = None, None

    def _pt_run(self, log) -> Run:
        if not isinstance(log, Run):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                log = load_run(log, loss_columns=list(self.columns), schedule=self.pt)
        missing = [c for c in self.columns if c not in log.losses]
        if missing:
            raise InputError(f"Tuner: pt_log {log.name} has no column(s) {missing}; it has {sorted(log.losses)}")
        steps = np.asarray(log.steps)
        keep = (steps >= 1) & (steps <= self.pt.size)
        if keep.sum() < 3:
            raise InputError(f"Tuner: pt_log {log.name} has fewer than 3 points within the PT's {self.pt.size} steps")
        return Run("pt", self.pt, self.pt.size, steps[keep],
                   {c: np.asarray(log.losses[c], np.float64)[keep] for c in self.columns}, replay=0.0)

    # -- the law ------------------------------------------------------------------------------
    def _runs(self, told) -> list:
        """The runs a fit sees: the PT log (when given) and the ``told`` trials."""
        return ([self.pt_run] if self.pt_run is not None else []) + [t.run for t in told]

    def _fit(self, told, lam):
        """The replay law fitted (one law per loss) on the PT log and the ``told`` trials at
        momentum ``lam``: (LawPair, capped covariances), or ``None`` when a fit fails."""
        runs = self._runs(told)
        laws, covs = [], []
        for target, col in zip(("general", "domain"), self.columns):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    res = fit(runs, "replay", col, target=target, basins=2, throw=True, lam=lam,
                              pad_to=_padded(runs, col))
                except FitError:
                    return None
            laws.append(res.law)
            covs.append(cap_cov(res.law, res.cov))
        return LawPair(*laws), tuple(covs)

    def _choose_lam(self):
        """The law form (momentum λ) that best predicts held-out trials: each λ of ``lams`` is
        fitted without the last quarter of the trials (at least one) and scored by the mean square
        of its error on their measured objectives (λ1·general + (1 − λ1)·domain, each at the
        trial's last logged step: what the tuner ranks recipes by). Until two trials are left to
        fit on, the last λ of ``lams``."""
        if self.lam is not None or len(self.lams) == 1:
            return self.lam if self.lam is not None else self.lams[0]
        n = len(self.told)
        h = max(1, n // 4)
        if n - h < 2:
            return self.lams[-1]
        fit_on, held = self.told[:n - h], self.told[n - h:]
        laws = self._fit_lams(fit_on)
        scores = []
        for law in laws:
            if law is None:
                scores.append(math.inf)
                continue
            states = pt_states(law, self.pt)
            err = [self._predicted_at_last(law, states, t) - self._observed(t) for t in held]
            scores.append(float(np.mean(np.square(err))) if np.all(np.isfinite(err)) else math.inf)
        self.lam_scores = dict(zip(self.lams, scores))
        return self.lams[int(np.argmin(scores))] if np.isfinite(scores).any() else self.lams[-1]

    def _fit_lams(self, told) -> list:
        """The replay law at every λ of ``lams`` on the PT log and ``told``: one batched fit per
        loss (the λs share a kernel); a LawPair per λ, ``None`` where a fit failed."""
        runs = self._runs(told)
        per_loss = []
        for target, col in zip(("general", "domain"), self.columns):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                probs = [make_problem(runs, "replay", col, target=target, lam=v, pad_to=_padded(runs, col))
                         for v in self.lams]
                per_loss.append(fit_batch(probs))
        return [LawPair(g.law, d.law) if g.finite and d.finite else None for g, d in zip(*per_loss)]

    @staticmethod
    def _reached(t: _Told) -> int:
        """The CPT steps a told trial's log reached."""
        return int(t.run.steps[-1]) - t.run.n_pt

    def _predicted_at_last(self, law, states, t: _Told) -> float:
        """The law's objective for a told trial at its last logged step."""
        k = max(self._reached(t), 1)
        sched = jnp.asarray(t.trial.recipe.schedule(self.steps, self.pt[-1]))
        return float(_obj_at(law, states, sched, t.trial.recipe.replay, k - 1, self.lam1))

    def _predictions(self):
        """Predicted final objective, shape (draws, candidates); ``None`` before a fit."""
        if self._pred is not None:
            return self._pred
        if len(self.told) < 2:
            return None
        self.chosen_lam = self._choose_lam()
        fitted = self._fit(self.told, self.chosen_lam)
        # The chosen form's fit on every trial can fail where its held-out fit did not: the next
        # best form, not a random trial (which spent a full run on nothing the law chose).
        for lam in sorted(self.lam_scores, key=self.lam_scores.get) if self.lam is None else []:
            if fitted is not None:
                break
            if lam != self.chosen_lam and math.isfinite(self.lam_scores[lam]):
                self.chosen_lam, fitted = lam, self._fit(self.told, lam)
        if fitted is None:
            return None
        self.law, covs = fitted
        draws = law_draws(self.law, covs, n=self.n_draws, seed=self.seed + len(self.told))
        states = pt_states(self.law, self.pt)
        out = np.asarray(_over_draws(draws, states, self._scheds, self._reps, self.lam1))  # (draws, cands)
        mean = np.asarray(_over_candidates(self.law, states, self._scheds, self._reps, self.lam1))
        # A draw far in a tail (a parameter the trials barely identify) can predict nonsense for
        # some recipes: each candidate's predictions are clipped to its 2.5-97.5% range over the
        # draws, so that no single draw decides P(best) or the expected gain.
        obj = np.where(np.isfinite(out), out, np.nan)
        lo, hi = np.nanquantile(obj, 0.025, axis=0), np.nanquantile(obj, 0.975, axis=0)
        obj = np.clip(np.where(np.isnan(obj), hi, obj), lo, hi)
        # The law is a model, not the truth: its residuals at the trials (measured − predicted,
        # at each trial's last step) are modelled by a Gaussian process over the recipes, whose
        # posterior mean corrects every candidate's prediction and whose posterior samples add the
        # law's own misfit to the parameter draws (so the acquisition explores where the law has
        # been wrong, not only where its parameters are uncertain).
        res = np.array([self._observed(t) - self._predicted_at_last(self.law, states, t) for t in self.told])
        mu, samples, gp_var = self._residual_gp(res)
        self._law_mean = np.asarray(mean)[:, 0].copy()
        obj = obj + samples
        mean = np.asarray(mean).copy()
        mean[:, 0] += mu
        self._mean = mean
        self._pred = self._measured(res, obj, gp_var)
        return self._pred

    def _measured(self, res, obj, gp_var):
        """Where the runs have measured a recipe at full length, its estimate moves from the model
        to the measurements as far as the model's misfit exceeds the seed noise (a hierarchical
        estimate: true objective ~ N(law, τ²), each run ~ N(true, σ²)); elsewhere the model's
        spread is at least the misfit τ the law showed on the trials. Returns the draws
        (draws × candidates) with both applied; sets ``_est`` (the estimates), ``_tau2``. ``res``:
        the law's residuals at every told trial's last logged step."""
        sigma2 = max(self.noise, 1e-6) ** 2
        # method of moments: the residuals' mean square less the seed noise's share
        self._tau2 = tau2 = max(float(np.mean(res ** 2)) - sigma2, 0.0) if res.size else 0.0
        est = self._mean[:, 0].copy()
        var = np.zeros(len(self.candidates))
        runs, bad = {}, {f.recipe for f in self.failed}
        for t in self.told:  # a recipe that failed in any trial is not a measured candidate
            if t.trial.recipe in self._index and t.trial.recipe not in bad and self._reached(t) >= self.steps:
                runs.setdefault(self._index[t.trial.recipe], []).append(self._observed(t))
        for i, ys in runs.items():
            prec = (1.0 / tau2 if tau2 > 0 else math.inf) + len(ys) / sigma2
            w = (len(ys) / sigma2) / prec if math.isfinite(prec) else 0.0
            est[i] = (1 - w) * self._law_mean[i] + w * float(np.mean(ys))
            var[i] = 1.0 / prec if math.isfinite(prec) else 0.0
        self._est, self._measured_idx = est, sorted(runs)
        rng = np.random.default_rng(self.seed + 104729 * len(self.told))
        out = obj.copy()
        extra = np.sqrt(np.maximum(tau2 - gp_var, 0.0))  # the misfit floor, not measured recipes
        extra[self._measured_idx] = 0.0
        out = out + rng.standard_normal(out.shape) * extra[None, :]
        for i in self._measured_idx:
            out[:, i] = est[i] + math.sqrt(var[i]) * rng.standard_normal(out.shape[0])
        return out

    def _residual_gp(self, res):
        """The residual GP on the law's residuals ``res`` at the told trials (every told trial
        counts, a candidate or not: e.g. grid runs told to a continuous tuner): its posterior mean
        over the candidates, ``n_draws`` joint samples and its posterior variance."""
        told, m = self.told, len(self.candidates)
        if not told:
            return np.zeros(m), np.zeros((self.n_draws, m)), np.zeros(m)
        full = np.array([self._reached(t) >= self.steps for t in told])
        # a short trial's residual stands for the final one less surely
        nv = np.where(full, 1.0, 4.0) * max(self.noise, 1e-6) ** 2
        z = _features([t.trial.recipe for t in told], self.candidates)
        mu, cov = _gp_posterior(z, self._z, res, nv)
        rng = np.random.default_rng(self.seed + 7919 * len(self.told))
        w, v = np.linalg.eigh(cov)
        samples = rng.standard_normal((self.n_draws, m)) @ (v * np.sqrt(np.maximum(w, 0.0))).T
        return mu, mu[None, :] + samples, np.maximum(np.diag(cov), 0.0)

    # -- results ------------------------------------------------------------------------------
    def _recommended(self) -> int:
        """The recommendation's index: among the candidates measured at full length, the lowest
        estimate (between the law's prediction and the measurements, by the law's misfit against
        the seed noise: see ``_measured``); before any full-length trial, the lowest estimate. A
        recipe the law prefers but no run has checked is the next trial (``verify``), not the
        recommendation: where the law is biased, the recommendation stays a measured recipe."""
        full = self._measured_idx
        if full:
            return int(full[int(np.argmin(self._est[full]))])
        return self._recommended_by_law()

    def _recommended_by_law(self) -> int:
        """The lowest estimate (law + GP; measured recipes: see ``_measured``) among the recipes
        that did not fail."""
        bad = {f.recipe for f in self.failed}
        return int(np.argmin(np.where([c in bad for c in self.candidates], np.inf, self._est)))

    def best(self) -> Recommendation:
        """The recommended recipe (see ``_recommended``): its predicted objective, the 90%
        interval over the parameter draws and P(best) = share of draws under which it is best."""
        pred = self._predictions()
        if pred is None:
            if not self.told:
                raise InputError(f"best(): every one of the {len(self.failed)} trials told so far failed" if self.failed
                                 else "best(): no trial has been told yet")
            # No law yet: the best observed final objective among the full-length trials
            obs = [(self._observed(t), t) for t in self.told]
            o, t = min(obs, key=lambda x: x[0])
            return Recommendation(t.trial.recipe, o, (o, o), None, None, None,
                                  len(self.told))
        i = self._recommended()
        col = pred[:, i]
        p_best = float(np.mean(np.argmin(pred, axis=1) == i))
        ok = col[np.isfinite(col)]
        # the draws' spread, centred on the recommendation's own prediction (the draws' median
        # sits off it where the law is nonlinear in its parameters, or the GP's mean moved it)
        lo, hi = (np.quantile(ok, [0.05, 0.95]) - np.median(ok) + float(self._est[i])
                  if ok.size else (np.nan, np.nan))
        return Recommendation(self.candidates[i], float(self._est[i]), (float(lo), float(hi)),
                              p_best, float(self._mean[i, 1]), float(self._mean[i, 2]), len(self.told))

    def expected_gain(self) -> float:
        """The largest expected improvement of any candidate over the recommended one, over the
        parameter draws (E[max(0, objective(best) − objective(c))])."""
        pred = self._predictions()
        if pred is None:
            return math.inf
        i = self._recommended()
        gain = np.maximum(pred[:, i:i + 1] - pred, 0.0)
        gain = np.where(np.isfinite(gain), gain, 0.0)
        return float(gain.mean(axis=0).max())

    def should_stop(self) -> bool:
        """The recommendation was measured at full length, the law describes the trials to within
        the seed noise (its misfit τ ≤ σ: where it does not, its claim that nothing else is better
        is not evidence), and no candidate is expected to gain more than the seed noise over the
        recommendation (with τ in every unmeasured candidate's spread)."""
        if self.asked < len(self._init) or self._predictions() is None:
            return False
        return (self._recommended() in self._measured_idx and self._tau2 <= max(self.noise, 1e-6) ** 2
                and self.expected_gain() <= self.noise)

    def _observed(self, t: _Told) -> float:
        g, d = (t.run.losses[c] for c in self.columns)
        return float(self.lam1 * g[np.isfinite(g)][-1] + (1 - self.lam1) * d[np.isfinite(d)][-1])

    def history(self) -> list:
        """Every told trial: number, recipe, steps, the observed objective at its last point."""
        rows = [{"number": t.trial.number, "recipe": t.trial.recipe.to_dict(), "steps": t.trial.steps,
                 "observed_objective": self._observed(t), "failed": False} for t in self.told]
        rows += [{"number": f.number, "recipe": f.recipe.to_dict(), "steps": f.steps, "observed_objective": None,
                  "failed": True} for f in self.failed]
        return sorted(rows, key=lambda r: r["number"])


_LENGTHS = (0.15, 0.3, 0.6, 1.2)  # the residual GP's length scales tried, unit-scaled recipe space


def _gp_posterior(z, zc, r, nv):
    """A zero-mean GP with a squared-exponential kernel on the law's residuals ``r`` at recipes
    ``z`` (noise variances ``nv``): the posterior mean and covariance at ``zc``. The signal
    variance and length scale are the grid point of highest marginal likelihood (signal variances
    from the noise's up to 4× the residuals' mean square)."""
    d_oo = np.sum((z[:, None] - z[None]) ** 2, -1)
    d_co = np.sum((zc[:, None] - z[None]) ** 2, -1)
    d_cc = np.sum((zc[:, None] - zc[None]) ** 2, -1)
    top = max(4 * float(np.mean(r ** 2)), float(np.mean(nv)))
    best = None
    for s2 in top * np.logspace(-3, 0, 7):
        for ls in _LENGTHS:
            K = s2 * np.exp(-d_oo / (2 * ls ** 2)) + np.diag(nv)
            try:
                L = np.linalg.cholesky(K)
            except np.linalg.LinAlgError:
                continue
            a = np.linalg.solve(L.T, np.linalg.solve(L, r))
            ll = -0.5 * r @ a - np.log(np.diag(L)).sum()
            if best is None or ll > best[0]:
                best = (ll, s2, ls, L, a)
    if best is None:
        return np.zeros(len(zc)), np.zeros((len(zc), len(zc)))
    _, s2, ls, L, a = best
    Ks = s2 * np.exp(-d_co / (2 * ls ** 2))
    V = np.linalg.solve(L, Ks.T)
    return Ks @ a, s2 * np.exp(-d_cc / (2 * ls ** 2)) - V.T @ V


def _features(recipes, over) -> np.ndarray:
    """Recipes as points for the residual kernel: log peak and replay scaled to [0, 1] over the
    candidates ``over``, the family one unit apart, and its shape (WSD cooldown fraction, cosine
    final fraction)."""
    lp, r = np.log([c.peak for c in over]), np.array([c.replay for c in over])
    p = np.log([c.peak for c in recipes])
    fam = np.array([FAMILIES.index(c.family) for c in recipes], np.float64)
    shape = np.array([c.decay if c.family == "wsd" else c.final for c in recipes])
    return np.stack([(p - lp.min()) / max(np.ptp(lp), 1e-12),
                     (np.array([c.replay for c in recipes]) - r.min()) / max(np.ptp(r), 1e-12), fam, shape], axis=1)


def _padded(runs, col) -> int:
    """The size bucket of the runs' finite points in loss column ``col``."""
    return _bucket(sum(int(np.isfinite(r.losses[col]).sum()) for r in runs))


def _bucket(n: int) -> int:
    """Points padded to the next of 64, 96, 128, 192, 256, 384, 512, …: a tuner's refits compile
    once per bucket, not once per trial."""
    b = 64
    while b < n:
        b = b * 3 // 2 if b & (b - 1) == 0 else (b // 3) * 4
    return b


def _final(law, states, sched, replay, lam1):
    """(objective, general, domain) at the last CPT step of ``sched`` after the PT ``states``."""
    o, g, d, _ = evaluate(law, states, sched, replay, 1, lam1, curves=False)
    return jnp.stack([o, g, d])


def _obj_one_step(law, states, sched, replay, k, lam1):
    """The objective at CPT step index ``k`` (traced) of ``sched`` after the PT ``states``."""
    cond = {"replay": replay}
    g, d = (cpt_losses(l, s, sched, cond)[k] for l, s in zip(law, states))
    return lam1 * g + (1 - lam1) * d


_obj_at = jax.jit(_obj_one_step)

# Compiled once per (candidates, draws) shape, not once per trial: the mean law over every
# candidate, and the objective alone over draws x candidates.
_over_candidates = jax.jit(jax.vmap(_final, in_axes=(None, None, 0, 0, None)))
_over_draws = jax.jit(jax.vmap(jax.vmap(lambda *a: _final(*a)[0], in_axes=(None, None, 0, 0, None)),
                               in_axes=(0, None, None, None, None)))


def _spread(cands: list) -> list:
    """A space-filling first design among finite candidates: the extremes of peak LR × replay
    and the one nearest the centre (in log-peak, replay), distinct, at most 5."""
    p = np.log([c.peak for c in cands])
    r = np.array([c.replay for c in cands])
    z = np.stack([(p - p.min()) / max(np.ptp(p), 1e-12), (r - r.min()) / max(np.ptp(r), 1e-12)], 1)
    targets = [(0, 0), (1, 1), (0.5, 0.5), (1, 0), (0, 1)]
    fams = sorted({c.family for c in cands})
    out = []
    for k, t in enumerate(targets):
        want = fams[k % len(fams)]  # the families alternate, as in Space.corners
        d = np.sum((z - np.asarray(t)) ** 2, axis=1) + np.array([c.family != want for c in cands])
        pick = next((cands[i] for i in np.argsort(d) if cands[i] not in out), None)
        if pick is not None:
            out.append(pick)
    return out
