"""The law as an Optuna sampler: an Optuna study (its storage, its dashboard, workers on many
machines sharing one RDB storage) gets `cptjax.Tuner`'s proposals.

Each proposal is rebuilt from the study's storage, so any number of workers can share it: the
sampler reads every finished trial's curves (what `report_curves` stored in the trial's user
attributes), refits the law on them, and proposes the next recipe by Thompson sampling over the
law's parameter draws (see `cptjax.Tuner`). The objective declares the recipe with
`suggest_recipe` — the same distributions the sampler samples — trains it, reports both
loss curves and returns the weighted final loss.

Example:

    import optuna, cptjax
    from cptjax.integrations.optuna import CPTSampler, suggest_recipe, report_curves

    space = cptjax.Space(steps=2000, peak=(1e-4, 3e-3), replay=(0, 0.5))
    sampler = CPTSampler(space, pt=pt_lr, weight_general=0.5)

    def objective(trial):
        recipe, steps = suggest_recipe(trial, sampler)
        log = train(recipe.schedule(steps, pt_lr[-1]), recipe.replay)  # your trainer
        return report_curves(trial, log.steps, log.general, log.domain, weight_general=0.5)

    study = optuna.create_study(sampler=sampler, storage="sqlite:///cpt.db", study_name="cpt",
                                load_if_exists=True)
    study.optimize(objective, n_trials=12)
    print(sampler.best(study))   # the law's recommendation, with its interval and P(best)

Run parallel trials as separate worker processes sharing a storage (Optuna's distributed mode),
not ``study.optimize(n_jobs=N)`` threads: the sampler refits with JAX, and JAX compiling in two
threads of one process at once can crash.

Needs ``optuna`` (``pip install cptjax[optuna]``).
"""

from __future__ import annotations

import warnings

import numpy as np

try:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.samplers import BaseSampler, RandomSampler
    from optuna.trial import TrialState
except ImportError as e:  # pragma: no cover - the extra is not installed
    raise ImportError("cptjax.integrations.optuna needs Optuna: pip install 'cptjax[optuna]'") from e

from .. import InputError, InputTypeError, Recipe, Space, Trial, Tuner  # public names only

__all__ = ["CPTSampler", "suggest_recipe", "report_curves"]

_ATTR = "cptjax_curves"  # the user attribute holding a trial's curves


class CPTSampler(BaseSampler):
    """An Optuna sampler that proposes CPT recipes with the replay law.

    Args:
        space: a `cptjax.Space` (continuous mode), or ``None`` with ``candidates``.
        pt: the PT schedule the CPT runs continue from (per-step LR array or text form).
        weight_general: λ1 of the objective λ1·L_general + (1 − λ1)·L_domain.
        candidates: a finite list of `cptjax.Recipe` (candidates mode); needs ``steps``.
        steps: the CPT length in candidates mode.
        init_fraction: the length of the first (space-filling) trials as a share of ``steps``;
            1 by default, so that every trial's objective value is a full run's, comparable in
            Optuna's own tables.
        seed: seeds the candidate set (the same on every worker) and, with the trial number,
            each proposal.
        **tuner_options: passed to `cptjax.Tuner` (``noise``, ``n_candidates``, ``pt_log``, …).
    """

    def __init__(self, space: Space | None = None, *, pt, weight_general: float = 0.5,
                 candidates=None, steps: int | None = None, init_fraction: float = 1.0, seed: int = 0,
                 **tuner_options):
        self._kw = dict(space=space, pt=pt, weight_general=weight_general, candidates=candidates,
                        steps=steps, init_fraction=init_fraction, seed=seed, **tuner_options)
        self._tuner = Tuner(**self._kw)  # validates the arguments now, not inside a worker
        self._seed = seed
        self._independent = RandomSampler(seed=seed)

    # -- the distributions the objective must suggest -----------------------------------------
    def distributions(self) -> dict:
        """The parameters (name -> Optuna distribution) that `suggest_recipe` declares."""
        t = self._tuner
        d = {"cptjax_steps": IntDistribution(1, t.steps)}
        if t.space is None:
            d["cptjax_recipe"] = CategoricalDistribution(list(range(len(t.candidates))))
            return d
        s = t.space
        d["family"] = CategoricalDistribution(list(s.families))
        d["peak"] = FloatDistribution(s.peak[0], s.peak[1], log=True)
        for k in ("replay", "decay", "final"):
            d[k] = FloatDistribution(*getattr(s, k))
        return d

    def recipe(self, params: dict) -> tuple:
        """(Recipe, steps) from a trial's parameters."""
        t = self._tuner
        steps = int(params["cptjax_steps"])
        if t.space is None:
            return t.candidates[int(params["cptjax_recipe"])], steps
        return Recipe(params["family"], float(params["peak"]), float(params["replay"]),
                      float(params["decay"]), float(params["final"]), t.space.warmup), steps

    def _encode(self, recipe: Recipe, steps: int) -> dict:
        t = self._tuner
        if t.space is None:
            return {"cptjax_recipe": t.candidates.index(recipe), "cptjax_steps": steps}
        return {"family": recipe.family, "peak": recipe.peak, "replay": recipe.replay,
                "decay": recipe.decay, "final": recipe.final, "cptjax_steps": steps}

    # -- the tuner, rebuilt from the storage --------------------------------------------------
    def tuner(self, study: "optuna.Study", number: int | None = None) -> Tuner:
        """A `cptjax.Tuner` told every finished trial of ``study`` that reported its curves."""
        tuner = Tuner(**self._kw)
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
        for ft in sorted(done, key=lambda x: x.number):
            curves = ft.user_attrs.get(_ATTR)
            if not set(self.distributions()) <= set(ft.params):
                continue  # a trial from another sampler or objective: nothing to learn from
            if ft.state == TrialState.FAIL:  # a run that failed or diverged: not proposed again
                try:
                    rec, steps = self.recipe(ft.params)
                    tuner.tell(Trial(ft.number, rec, int(steps), tuner.steps), None)
                except (InputError, TypeError, ValueError, OverflowError):
                    pass
                continue
            if curves is None:
                continue
            try:  # one malformed stored trial must not stop every worker of the study
                rec, steps = self.recipe(ft.params)
                if not (isinstance(steps, (int, np.integer)) and 1 <= steps <= tuner.steps):
                    raise InputError(f"cptjax_steps {steps!r} is not in [1, {tuner.steps}]")
                trial = Trial(ft.number, rec, int(steps), tuner.steps)
                tuner.tell(trial, _run(curves, tuner.columns))
            except (InputError, TypeError, ValueError, OverflowError) as e:
                warnings.warn(f"optuna trial {ft.number}: its curves were not used ({e})", stacklevel=2)
        if number is not None:
            tuner.asked = number
            tuner.rng = np.random.default_rng([self._seed, number])
        return tuner

    def best(self, study: "optuna.Study"):
        """The law's recommendation (`cptjax.Recommendation`) from every finished trial."""
        return self.tuner(study).best()

    # -- BaseSampler ----------------------------------------------------------------------------
    def infer_relative_search_space(self, study, trial):
        return self.distributions()

    def sample_relative(self, study, trial, search_space):
        if not search_space:
            return {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            proposal = self.tuner(study, trial.number).ask()
        return self._encode(proposal.recipe, proposal.steps)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._independent.sample_independent(study, trial, param_name, param_distribution)

    def reseed_rng(self) -> None:
        self._independent.reseed_rng()


def suggest_recipe(trial: "optuna.Trial", sampler: CPTSampler) -> tuple:
    """Declare the recipe's parameters in ``trial`` (the distributions ``sampler`` samples);
    returns ``(recipe, steps)``: train the first ``steps`` CPT steps of ``recipe``'s schedule,
    ``recipe.schedule(sampler.steps, pt_lr[-1])[:steps]``."""
    if not isinstance(sampler, CPTSampler):
        raise InputTypeError(f"suggest_recipe: `sampler` must be a CPTSampler, got {type(sampler).__name__}")
    params = {}
    for name, dist in sampler.distributions().items():
        if isinstance(dist, CategoricalDistribution):
            params[name] = trial.suggest_categorical(name, dist.choices)
        elif isinstance(dist, IntDistribution):
            params[name] = trial.suggest_int(name, dist.low, dist.high)
        else:
            params[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log)
    return sampler.recipe(params)


def report_curves(trial: "optuna.Trial", steps, general, domain, *, weight_general: float = 0.5,
                  columns=("general_loss", "domain_loss")) -> float:
    """Store a trial's curves (CPT steps counted from 1, both validation losses) in its user
    attributes, where `CPTSampler` reads them on every worker; report the weighted loss at
    each step as the intermediate value (so that a pruner can act); return the weighted final loss,
    the objective value."""
    if isinstance(weight_general, bool) or not (isinstance(weight_general, (int, float, np.floating))
                                                and 0 <= weight_general <= 1):
        raise InputError(f"report_curves: weight_general must be a number in [0, 1], got {weight_general!r}")
    if not (isinstance(columns, (tuple, list)) and len(columns) == 2 and all(isinstance(c, str) for c in columns)
            and columns[0] != columns[1]):
        raise InputError(f"report_curves: columns must be two different column names, got {columns!r}")
    try:
        raw = np.asarray(steps, np.float64).ravel()
        g, d = (np.asarray(x, np.float64).ravel() for x in (general, domain))
    except (TypeError, ValueError):
        raise InputError("report_curves: steps, general and domain must be arrays of numbers") from None
    if not (raw.size == g.size == d.size) or raw.size < 3:
        raise InputError(f"report_curves: steps, general and domain must have the same length >= 3, "
                         f"got {raw.size}, {g.size}, {d.size}")
    if not (np.isfinite(raw).all() and (raw == np.round(raw)).all() and raw.min() >= 1 and raw.max() <= 1e7
            and (np.diff(raw) > 0).all()):
        raise InputError("report_curves: steps must be increasing whole CPT steps in [1, 10^7]")
    steps = raw.astype(np.int64)
    if ((g <= 0) | (d <= 0)).any():
        raise InputError("report_curves: losses must be positive (NaN marks a missing value)")
    ok = np.isfinite(g) & np.isfinite(d)
    if not ok.any():
        raise InputError("report_curves: no step has both losses finite")
    trial.set_user_attr(_ATTR, {"steps": steps.tolist(), columns[0]: g.tolist(), columns[1]: d.tolist()})
    obj = weight_general * g + (1 - weight_general) * d
    for s, v in zip(steps[ok], obj[ok]):
        trial.report(float(v), int(s))
    return float(obj[ok][-1])


def _run(curves: dict, columns):
    from .. import Run

    if not isinstance(curves, dict) or "steps" not in curves or any(c not in curves for c in columns):
        raise InputError(f"the stored curves need 'steps' and {list(columns)}")
    try:
        steps = np.asarray(curves["steps"], np.float64)
        if steps.ndim != 1 or not np.isfinite(steps).all() or (steps != np.round(steps)).any() or \
                np.abs(steps).max(initial=0) > 1e7 or any(len(curves[c]) != steps.size for c in columns):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise InputError("the stored curves need integer steps and a loss per step in each column") from None
    steps = steps.astype(np.int64)
    return Run("optuna-trial", np.zeros(1), 0, steps,
               {c: np.asarray([np.nan if v is None else v for v in curves[c]], np.float64)
                for c in columns})
