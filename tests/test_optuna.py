"""The law as an Optuna sampler inside a real Optuna study: SQLite storage, two worker processes
sharing it (Optuna's own distributed mode), curves from the replay preset plus 0.3% noise (the
synthetic study of test_tune.py, whose true optimum is known)."""

import os
import subprocess
import sys

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")
import cptjax  # noqa: E402
from cptjax.integrations.optuna import CPTSampler, report_curves, suggest_recipe  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_tune import CANDS, PT, STEPS, curves, true_objective  # noqa: E402

LAM1 = 0.5


def sampler():
    # the law form fixed (the curves are drawn at λ = 0.999; the held-out choice is tested in test_tune)
    return CPTSampler(pt=PT, candidates=CANDS, steps=STEPS, weight_general=LAM1, seed=0, lam=0.999)


def objective(s):
    def f(trial):
        recipe, steps = suggest_recipe(trial, s)
        run = curves(recipe, steps, np.random.default_rng(trial.number), every=100)  # 6 points a trial: 8 trials share one size bucket (one compilation)
        return report_curves(trial, run.steps, run.losses["general_loss"], run.losses["domain_loss"],
                             weight_general=LAM1)
    return f


def worker(url, n):
    cptjax.enable_compilation_cache()  # the suite's cache folder: the test's own process then loads the tuner
    s = sampler()
    study = optuna.load_study(study_name="cpt", storage=url, sampler=s)
    study.optimize(objective(s), n_trials=n)


def test_sampler_in_a_sqlite_study_with_two_workers(tmp_path):
    url = f"sqlite:///{tmp_path / 'cpt.db'}"
    optuna.create_study(study_name="cpt", storage=url)
    # 3 trials each: the first 5 are the space's corners, so one model-based proposal is made (one
    # tuner compilation, in whichever worker gets it: each costs ~16 s of a fresh process)
    code = f"import sys; sys.path.insert(0, {HERE!r}); import test_optuna as t; t.worker({url!r}, 3)"
    env = {**os.environ, "JAX_ENABLE_X64": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    cptjax.enable_compilation_cache()
    s = sampler()
    study = optuna.load_study(study_name="cpt", storage=url, sampler=s)
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(done) == 6
    recipes = [s.recipe(t.params)[0] for t in done]
    assert all(r in CANDS for r in recipes) and all(s.recipe(t.params)[1] == STEPS for t in done)
    assert len(set(recipes)) == 6  # the workers did not propose one recipe twice
    truth = {c: true_objective(c, LAM1) for c in CANDS}
    best = min(truth.values())
    rec = s.best(study)
    # the law's recommendation from 6 full trials: within 0.003 of the optimum (grid spread > 0.1)
    assert truth[rec.recipe] - best <= 0.003, (rec, truth[rec.recipe], best)
    # each trial's value is the weighted final loss it reported; Optuna's own best agrees with it
    t0 = done[0]
    c = t0.user_attrs["cptjax_curves"]
    assert t0.value == pytest.approx(LAM1 * c["general_loss"][-1] + (1 - LAM1) * c["domain_loss"][-1], rel=1e-12)
    assert t0.intermediate_values[c["steps"][-1]] == pytest.approx(t0.value, rel=1e-12)


def test_sampler_continuous_space_and_errors():
    space = cptjax.Space(steps=STEPS, peak=(3e-5, 8e-4), replay=(0, 0.75))
    s = CPTSampler(space, pt=PT, weight_general=LAM1, n_candidates=16)
    study = optuna.create_study(sampler=s)
    study.optimize(objective(s), n_trials=3)
    for t in study.trials:
        rec, steps = s.recipe(t.params)
        assert 3e-5 <= rec.peak <= 8e-4 and 0 <= rec.replay <= 0.75 and steps == STEPS
    # the first proposals are the space's corners
    assert s.recipe(study.trials[0].params)[0] == space.corners()[0]

    def diverges(trial):
        suggest_recipe(trial, s)
        raise FloatingPointError("loss is NaN")
    study.optimize(diverges, n_trials=1, catch=(FloatingPointError,))  # Optuna stores it as FAIL
    failed = s.recipe(study.trials[-1].params)[0]
    rebuilt = s.tuner(study)
    assert [f.recipe for f in rebuilt.failed] == [failed] and rebuilt.n_trials == 3
    with pytest.raises(cptjax.InputError, match="same length"):
        report_curves(study.trials[0], [1, 2, 3], [1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(cptjax.InputTypeError):
        suggest_recipe(study.ask(), "not a sampler")
    with pytest.raises(cptjax.InputError, match="weight_general"):
        CPTSampler(space, pt=PT, weight_general=2.0)
