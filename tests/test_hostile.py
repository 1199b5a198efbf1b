"""Issue 22's second pass, one property per class: whatever a careless or hostile user gives —
an LR in the wrong units, booleans where numbers belong, a fit file whose metadata lies, a study
whose settings are nonsense, a tuner told garbage — the answer is a result or an InputError that
names the argument, file or key, never a silent wrong number or another exception. Hypothesis
draws the values over their whole range; the examples pin the cases a hostile pass found."""

import json
import math

import jax
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import cptjax  # noqa: E402
from cptjax import schedules as S  # noqa: E402

jax.config.update("jax_enable_x64", True)
FAST = settings(max_examples=25, deadline=None)
ANY = (st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10**30, 10**30) | st.booleans()
       | st.none() | st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=4)
       | st.lists(st.floats(-1e3, 1e3), max_size=3))


def named_error(f, *names):
    """f() returns, or raises InputError naming one of ``names``; returns the result or None."""
    try:
        return f()
    except cptjax.InputError as e:
        assert any(n in str(e) for n in names), str(e)
        return None


@FAST
@given(st.floats(-300, 300))
@example(300.0).via("an LR logged in absurd units")
@example(-299.0).via("an LR logged in absurd units")
def test_lr_units_are_checked_wherever_a_schedule_enters(exp):
    """An LR scale of 10^exp: every entry point (areas, predict, a run file) computes with it only
    when the largest LR is in (1e-12, 10] — raw units — and otherwise says so."""
    peak = 10.0 ** exp
    lr = np.concatenate([np.linspace(peak / 10, peak, 20), np.full(200, peak)])
    ok = 1e-12 < peak <= 10
    for f in (lambda: cptjax.areas(lr, 100), lambda: cptjax.predict(cptjax.preset("setting-a").general, lr, 100)):
        out = named_error(f, "lr", "LR")
        assert (out is not None) == ok
        if out is not None:
            assert np.isfinite(np.asarray(jax.tree.leaves(out)[0])).all()


@pytest.mark.parametrize("bad", [np.ones(50, bool), np.ones(50) + 1j, np.array(["1e-4"] * 50),
                                 np.array([np.datetime64("2020-01-01")] * 50), np.array([object()] * 50)])
def test_a_schedule_must_be_real_numbers(bad):
    for f in (lambda: cptjax.areas(bad, 10), lambda: S.join(np.full(5, 1e-4), bad), lambda: S.join(bad, [1e-4])):
        with pytest.raises(cptjax.InputError, match="real numbers|LRs|dtype"):
            f()


def test_join_refuses_what_is_not_a_per_step_lr():
    with pytest.raises(cptjax.InputError, match="cpt"):
        S.join(np.full(5, 1e-4), [np.nan, 1e-4])
    with pytest.raises(cptjax.InputError, match="pt.*1-D"):
        S.join(np.full((2, 5), 1e-4), [1e-4])
    with pytest.raises(cptjax.InputError, match="idx"):
        cptjax.predict(cptjax.preset("setting-a").general, *S.join(S.constant(50, 1e-4), S.constant(5, 1e-4)),
                       idx=[1.5])


@FAST
@given(st.lists(st.one_of(st.floats(2.0, 4.0), st.booleans(), st.none()), min_size=12, max_size=30),
       st.booleans())
def test_json_runs_never_read_a_boolean_as_a_number(losses, dup):
    """cptjax's JSON run: a true/false loss is left out (never 1.0 / 0.0); steps and LRs that are
    booleans are refused; a step logged twice keeps its last row (a resumed run)."""
    import tempfile

    steps = list(range(10, 10 * len(losses) + 1, 10))
    if dup:
        steps[-1] = steps[-2]
    d = {"lr": [1e-4] * (10 * len(losses)), "steps": steps, "losses": {"loss": losses}}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(d, f)
    try:
        run = cptjax.load_run(f.name)
    except cptjax.InputError as e:
        assert "loss" in str(e) or "valid" in str(e)
        return
    got = {s: v for s, v in zip(run.steps.tolist(), run.losses["loss"].tolist()) if math.isfinite(v)}  # NaN: left out
    for s, v in zip(steps, losses):
        if isinstance(v, float) and s in got and not (dup and s == steps[-1]):
            assert got[s] == v
    assert not any(v in (0.0, 1.0) for v in run.losses["loss"].tolist())
    assert len(set(run.steps.tolist())) == run.steps.size
    if dup:
        last = losses[-1]
        want = last if isinstance(last, float) else (losses[-2] if isinstance(losses[-2], float) else None)
        assert got.get(steps[-1]) == want or (want is None and steps[-1] not in got)


@pytest.mark.parametrize("bad", [{"steps": [True] * 5}, {"lr": [True] * 100}, {"losses": {}}])
def test_json_run_structure(tmp_path, bad):
    d = {"lr": [1e-4] * 100, "steps": [10, 20, 30, 40, 50], "losses": {"loss": [3.0, 2.9, 2.8, 2.7, 2.6]}}
    d.update(bad)
    (tmp_path / "r.json").write_text(json.dumps(d))
    with pytest.raises(cptjax.InputError, match="r.json"):
        cptjax.load_run(str(tmp_path / "r.json"))


def _fit_file(tmp_path):
    """A real fit file (finite covariance): Eq. 4 on two CPT runs (one anneals), 0.2% noise."""
    law, rng, runs = cptjax.preset("setting-a").general, np.random.default_rng(0), []
    for name, cpt in (("const", S.constant(1500, 1e-4, warmup=20)), ("cos", S.cosine(1500, 1e-4, warmup=20))):
        lr, n = S.join(S.wsd(3000, 2e-4, warmup=50, decay=0.2, final=2e-5), cpt)
        steps = np.arange(50, lr.size + 1, 50)
        y = np.asarray(cptjax.predict(law, lr, n, idx=steps - 1)) * np.exp(0.002 * rng.standard_normal(steps.size))
        runs.append(cptjax.Run(name, lr, n, steps, {"loss": y}))
    path = tmp_path / "g.json"
    cptjax.fit(runs, "cpt", "loss", basins=1).save(path)
    d = json.loads(path.read_text())
    assert cptjax.load_law(str(path)) is not None  # the unmutated file loads
    return d


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(["data_range", "lr_range", "status"]), ANY)
@example("data_range", 10**400).via("an integer no float holds")
@example("lr_range", [-1.0, -0.5]).via("a negative LR range")
@example("lr_range", [0.0, 0.0]).via("an LR range that says nothing")
@example("status", "non-finite").via("a failed fit used as a law")
def test_a_fit_file_is_checked_completely_when_read(tmp_path_factory, key, value):
    tmp = tmp_path_factory.mktemp("fit")
    d = dict(FIT)
    d[key] = value
    (tmp / "f.json").write_text(json.dumps(d))
    src = named_error(lambda: cptjax.load_law(str(tmp / "f.json"), details=True), key)
    if src is not None:  # what was accepted is usable and within its bounds
        assert src.data_range is None or 1 <= src.data_range <= S.MAX_STEPS
        assert src.lr_max is None or 0 < src.lr_max <= S.MAX_LR


@pytest.fixture(scope="module", autouse=True)
def _fit_dict(tmp_path_factory):
    global FIT
    FIT = _fit_file(tmp_path_factory.mktemp("base"))


STUDY = """pt = "constant(steps=200,peak=1e-3,warmup=10)"
steps = 60
trials = 2
train = "python trainer.py {schedule} {log}"
[space]
peak = [1e-4, 1e-3]
"""


def _toml(v):
    """``v`` as a TOML value (None: no line)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return json.dumps(v, ensure_ascii=False)  # TOML has no surrogate-pair escapes


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["seed", "timeout", "noise", "weight_general", "init_fraction", "columns", "lam"]), ANY)
@example("train", "python t.py {schedule} {log} {nonexistent}").via("a template field that does not exist")
@example("train", "python t.py {schedule} {log} {").via("a lone brace")
@example("seed", 10**20).via("a seed no RNG takes")
def test_a_tune_study_refuses_nonsense_settings_before_any_trial(tmp_path_factory, key, value):
    """Every scalar setting of a tune study is checked when it is read, naming the key."""
    if value is None:
        return
    top = [ln for ln in STUDY.split("[space]")[0].splitlines() if not ln.startswith(f"{key} =")]
    text = "\n".join(top + [f"{key} = {_toml(value)}", "[space]", "peak = [1e-4, 1e-3]", ""])
    tmp = tmp_path_factory.mktemp("study")
    (tmp / "s.toml").write_text(text)
    named_error(lambda: cptjax.load_tune_study(str(tmp / "s.toml")), key)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["noise", "n_candidates", "n_draws", "seed", "columns", "init_fraction", "weight_general"]), ANY)
def test_tuner_arguments(name, value):
    space = cptjax.Space(steps=50, peak=(1e-4, 1e-3))
    try:
        cptjax.Tuner(space, pt=S.constant(100, 1e-3), **{name: value})
    except (cptjax.InputError, cptjax.InputTypeError) as e:
        assert name in str(e) or "Tuner" in str(e), str(e)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["peak", "replay", "decay", "final", "warmup"]), ANY)
@example("peak", (1e-4, 100.0)).via("an LR range in the wrong units")
@example("warmup", -1).via("a negative warmup")
def test_space_and_recipe_ranges(name, value):
    try:
        cptjax.Space(steps=50, **{name: value})
    except cptjax.InputError as e:
        assert name in str(e), str(e)
    scalar = value[0] if isinstance(value, (list, tuple)) and value else value
    try:
        r = cptjax.Recipe("cosine", 1e-4, **{} if name == "peak" else {name: scalar})
        if name == "peak":
            r = cptjax.Recipe("cosine", scalar)
    except cptjax.InputError as e:
        assert name in str(e), str(e)
    else:
        assert 0 < r.peak <= S.MAX_LR and r.warmup >= 0


def test_a_tuner_is_not_told_garbage():
    """tell() checks the log before the tuner holds it: a loss column with no finite value, or a
    log that is not a run or a path, is refused and leaves the tuner as it was."""
    tuner = cptjax.Tuner(cptjax.Space(steps=40, peak=(1e-4, 1e-3)), pt=S.constant(100, 1e-3))
    t = tuner.ask()
    lr, n = S.join(tuner.pt, t.schedule(tuner.pt[-1]))
    steps = np.arange(n + 2, lr.size + 1, 2)
    bad = cptjax.Run("x", lr, n, steps, {"general_loss": np.full(steps.size, np.nan),
                                         "domain_loss": np.linspace(3, 2, steps.size)})
    with pytest.raises(cptjax.InputError, match="general_loss"):
        tuner.tell(t, bad)
    for junk in ({}, 3.0):  # not a run (None: the trial failed)
        with pytest.raises(cptjax.InputTypeError, match="run"):
            tuner.tell(t, junk)
    assert tuner.n_trials == 0
    good = cptjax.Run("x", lr, n, steps, {"general_loss": np.linspace(2.5, 2.6, steps.size),
                                          "domain_loss": np.linspace(3, 2, steps.size)})
    tuner.tell(t, good)
    with pytest.raises(cptjax.InputError, match="already told"):
        tuner.tell(t, good)
    assert tuner.n_trials == 1


# -- second pass: forecasts, watch, the Optuna sampler -----------------------------------------
def _log():
    lr = S.constant(3000, 3e-4, warmup=100)
    steps = np.arange(50, 3001, 50)
    law = cptjax.PTLaw(L0=2.0, A=0.5, alpha=0.5, C=0.5)
    return cptjax.Run("log", lr, lr.size, steps, {"loss": np.asarray(cptjax.predict(law, lr, idx=steps - 1))})


@pytest.mark.parametrize("kw, name", [
    ({"budget": 2**63 - 1}, "budget"), ({"budget": 10**8}, "budget"), ({"budget": 100}, "budget"),
    ({"budget": 5000, "cooldown_steps": 2**63 - 1}, "cooldown_steps"), ({"cooldown_steps": 0}, "cooldown_steps"),
    ({"cooldown_steps": 1.9}, "cooldown_steps"), ({"n_draws": 0}, "n_draws"), ({"n_draws": 10**12}, "n_draws"),
    ({"n_starts": 0}, "n_starts"), ({"seed": -1}, "seed"), ({"cooldown": ["linear"]}, "cooldown"),
    ({"schedule": np.full(5000, np.nan)}, "schedule"), ({"schedule": np.full((2, 5000), 3e-4)}, "schedule"),
    ({"schedule": np.ones(5000, bool)}, "schedule"), ({"reference": 5}, "reference"),
    ({"reference": []}, "reference"), ({"reference": cptjax.PTLaw(L0=2.0, A=0.5, alpha=0.5, C=float("nan"))}, "reference"),
])
def test_forecast_arguments_are_named_before_any_fit(kw, name):
    """Every forecast argument is checked (bounds included: a budget past 10^7 steps or a cooldown
    past the budget wrapped round or ran out of memory) and named; a wrong type is a TypeError."""
    with pytest.raises((cptjax.InputError, cptjax.InputTypeError), match=name):
        cptjax.forecast(_log(), **kw)


def test_a_forecast_is_a_positive_loss_or_an_error():
    """A reference whose parameters do not describe the run (C = 10^6 made 'cool down now' a loss
    of −2·10^5) is refused, not reported."""
    with pytest.raises(cptjax.InputError, match="positive finite loss"):
        cptjax.forecast(_log(), budget=5000, reference=cptjax.PTLaw(L0=2.0, A=0.5, alpha=0.5, C=1e6))


def test_watch_checks_its_poll_and_column(tmp_path):
    f = tmp_path / "log.csv"
    run = _log()
    f.write_text("step,lr,loss\n" + "".join(f"{s},{float(run.lr[s - 1])!r},{float(y)!r}\n" for s, y in zip(run.steps, run.losses["loss"])))
    with pytest.raises(cptjax.InputError, match="poll"):
        next(cptjax.watch(str(f), poll=1e300, budget=5000))
    with pytest.raises(cptjax.InputError, match="nope"):  # was: waited forever
        next(cptjax.watch(str(f), column="nope", budget=5000, max_polls=3, sleep=lambda s: None))


def test_one_malformed_stored_trial_does_not_stop_an_optuna_study():
    """A COMPLETE trial added by hand with values the sampler's space does not hold, or with curves
    that are not curves, is skipped with a warning: every worker rebuilding the tuner from storage
    would otherwise fail."""
    optuna = pytest.importorskip("optuna")
    from cptjax.integrations.optuna import CPTSampler

    space = cptjax.Space(steps=40, peak=(1e-4, 1e-3))
    s = CPTSampler(space, pt=S.constant(100, 1e-3))
    study = optuna.create_study(sampler=s)
    dist = s.distributions()
    for params, curves in (({"family": "cosine", "peak": 50.0}, {"steps": [1, 2, 3]}),
                           ({"family": "cosine", "peak": 5e-4}, {"steps": ["a"], "general_loss": [1], "domain_loss": [1]}),
                           ({"family": "cosine", "peak": 5e-4}, {"steps": [10**30] * 3, "general_loss": [1] * 3,
                                                                 "domain_loss": [1] * 3})):
        p = {k: params.get(k, dist[k].low if hasattr(dist[k], "low") else dist[k].choices[0]) for k in dist}
        d = {k: (optuna.distributions.FloatDistribution(1e-6, 100.0, log=True) if k == "peak" else v)
             for k, v in dist.items()}
        study.add_trial(optuna.trial.create_trial(params=p, distributions=d, value=1.0,
                                                  user_attrs={"cptjax_curves": curves}))
    with pytest.warns(UserWarning, match="not used"):
        tuner = s.tuner(study)
    assert tuner.n_trials == 0


def test_a_fit_pair_in_the_wrong_order_or_twice_is_refused(tmp_path):
    """GENERAL.json,DOMAIN.json: the fit files record their loss column, so the pair given the
    other way round (or one file twice) is refused instead of designing with swapped laws."""
    g, d = dict(FIT, column="general_loss"), dict(FIT, column="domain_loss")
    (tmp_path / "g.json").write_text(json.dumps(g))
    (tmp_path / "d.json").write_text(json.dumps(d))
    with pytest.raises(cptjax.InputError, match="order"):
        cptjax.load_law(f"{tmp_path / 'd.json'},{tmp_path / 'g.json'}")
    with pytest.raises(cptjax.InputError, match="twice"):
        cptjax.load_law(f"{tmp_path / 'g.json'},{tmp_path / 'g.json'}")
    assert isinstance(cptjax.load_law(f"{tmp_path / 'g.json'},{tmp_path / 'd.json'}"), cptjax.LawPair)


@pytest.mark.parametrize("kw", [{"weight_general": float("nan")}, {"weight_general": 5}, {"weight_general": "0.5"},
                                {"columns": ("a",)}, {"columns": ("a", "a")}, {"steps": [3, 2, 1]},
                                {"steps": [1.5, 2, 3]}, {"steps": [0, 1, 2]}, {"steps": [1, 2, 10**18]},
                                {"general": [-1.0, 2.0, 2.0]}, {"general": ["a", "b", "c"]}])
def test_report_curves_checks_what_it_stores(kw):
    """What report_curves stores is what every worker's sampler reads back: refused when it is not
    a pair of positive loss curves on increasing steps, or the weight is not a ratio."""
    optuna = pytest.importorskip("optuna")
    from cptjax.integrations.optuna import report_curves

    args = {"steps": [1, 2, 3], "general": [2.0, 1.9, 1.8], "domain": [3.0, 2.5, 2.2], **kw}
    trial = optuna.create_study().ask()
    with pytest.raises(cptjax.InputError, match="report_curves"):
        report_curves(trial, args.pop("steps"), args.pop("general"), args.pop("domain"), **args)


# -- third pass: files read on the wrong axis, references that do not describe the log, types --------
def test_a_schedule_file_reads_its_first_number_and_refuses_a_sparse_log(tmp_path):
    """A first line such as 1e-4 (np.savetxt's format) is data, not a header (the schedule lost a
    step); NaN there is refused like anywhere else; a log whose step column skips steps is not a
    per-step schedule."""
    (tmp_path / "a.txt").write_text("1e-4\n2e-4\n3e-4\n")
    np.testing.assert_array_equal(S.parse(f"file({tmp_path / 'a.txt'})"), [1e-4, 2e-4, 3e-4])
    (tmp_path / "n.txt").write_text("nan\n1e-4\n")
    with pytest.raises(cptjax.InputError, match="step 1"):
        S.parse(f"file({tmp_path / 'n.txt'})")
    (tmp_path / "log.csv").write_text("step,lr,loss\n10,1e-4,3\n20,1e-4,2.9\n30,1e-4,2.8\n")
    with pytest.raises(cptjax.InputError, match="skips steps"):
        S.parse(f"file({tmp_path / 'log.csv'})")
    (tmp_path / "plan.csv").write_text("cpt_step,lr\n1,1e-4\n2,2e-4\n")
    assert S.parse(f"file({tmp_path / 'plan.csv'})").size == 2
    with pytest.raises(cptjax.InputError, match="above 10"):
        S.parse("constant(steps=10,peak=20)")


def test_a_loss_scale_column_is_not_a_loss(tmp_path):
    lr = S.constant(500, 3e-4, warmup=50)
    law = cptjax.PTLaw(L0=2.0, A=0.5, alpha=0.5, C=0.5)
    steps = np.arange(10, 501, 10)
    y = np.asarray(cptjax.predict(law, lr, idx=steps - 1))
    (tmp_path / "l.csv").write_text("step,lr,loss_scale,loss\n" + "".join(
        f"{s},{float(lr[s - 1])!r},65536,{float(v)!r}\n" for s, v in zip(steps, y)))
    assert list(cptjax.load_run(tmp_path / "l.csv").losses) == ["loss"]


def test_a_reference_that_misses_the_log_is_refused(tmp_path):
    """A reference law whose C is absurd printed "stop now 74 333" for a log at 3.37: "stop now"
    (the log's own last step) must agree with the log."""
    log = _log()
    wild = cptjax.PTLaw(L0=2.0, A=0.5, alpha=0.5, C=1e6)
    with pytest.raises(cptjax.InputError, match="does not describe this run"):
        cptjax.forecast(log, reference=wild, budget=4000)
    (tmp_path / "log.csv").write_text("step,lr,loss\n" + "".join(
        f"{s},{float(log.lr[s - 1])!r},{float(v)!r}\n" for s, v in zip(log.steps, log.losses["loss"])))
    with pytest.raises(cptjax.InputError, match="the log itself"):
        cptjax.forecast(tmp_path / "log.csv", reference=str(tmp_path / "log.csv"))


def test_wrong_types_and_sizes_are_named():
    run = _log()
    with pytest.raises(cptjax.InputTypeError, match="path"):
        cptjax.load_run(None)
    with pytest.raises(cptjax.InputError, match="empty"):
        cptjax.load_run("")
    for bad in (None, 5):
        with pytest.raises(cptjax.InputTypeError, match="runs"):
            cptjax.fit(bad, "pt")
    with pytest.raises(cptjax.InputError, match="pad_to"):
        cptjax.fit(run, "pt", pad_to=10**12)
    with pytest.raises(cptjax.InputError, match="twice"):
        cptjax.fit([run, run], "pt")
    assert cptjax.fit(run, "pt", delta=np.float32(1e-3)).status == "converged"


def test_a_tuner_trial_must_fit_the_tuner():
    tuner = cptjax.Tuner(cptjax.Space(steps=40, peak=(1e-4, 1e-3)), pt=S.constant(100, 1e-3))
    t = tuner.ask()
    for bad in (t._replace(number=-1), t._replace(steps=10**6), t._replace(full_steps=41)):
        with pytest.raises(cptjax.InputError, match="does not fit this tuner"):
            tuner.tell(bad, None)
    tuner.tell(t, None)
    with pytest.raises(cptjax.InputError, match="every one of the 1 trials"):
        tuner.best()


def test_empty_column_names_and_contradicting_n_pt(tmp_path):
    from cptjax import cli

    log = _log()
    (tmp_path / "log.csv").write_text("# n_pt: 3000\nstep,lr,loss\n" + "".join(
        f"{s},{float(log.lr[s - 1])!r},{float(v)!r}\n" for s, v in zip(log.steps, log.losses["loss"])))
    assert cli.main(["fit", str(tmp_path / "log.csv"), "--step-column", ""]) == 2
    with pytest.warns(cptjax.DataWarning, match="n_pt: 3000"):
        cptjax.load_run(tmp_path / "log.csv", n_pt=1500)
    hist = [{"loss": float(v), "learning_rate": float(log.lr[s - 1]), **({"step": int(s)} if i % 3 else {})}
            for i, (s, v) in enumerate(zip(log.steps, log.losses["loss"]))]
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": hist, "global_step": 3000}))
    with pytest.warns(cptjax.DataWarning, match="no 'step'"):
        cptjax.load_run(tmp_path / "trainer_state.json")


def test_a_prediction_where_no_training_happened_says_so():
    law = cptjax.PTLaw(L0=2.0, A=0.5, alpha=0.5, C=0.5)
    with pytest.raises(cptjax.InputError, match="LR is 0 up to there"):
        cptjax.predict(law, np.r_[0.0, S.constant(100, 3e-4)])


def test_unreadable_cells_are_shown_with_a_hint(tmp_path):
    (tmp_path / "c.csv").write_text("step;lr;loss\n10;3,0e-4;3,5\n20;3,0e-4;3,4\n")
    with pytest.raises(cptjax.DataError, match="decimal comma"):
        cptjax.load_run(tmp_path / "c.csv")
    (tmp_path / "r.csv").write_text("step,lr,loss\n10,1e-4,3.0\n20,1e-4,2.9\nstep,lr,loss\n30,1e-4,2.8\n")
    with pytest.raises(cptjax.DataError, match="repeated header"):
        cptjax.load_run(tmp_path / "r.csv")
    (tmp_path / "trainer_state.json").write_text(json.dumps({"global_step": 10, "log_history": [
        {"step": s, "loss": 3 - s / 100, "learning_rate": 1e-4} for s in (10, 20, 30)]}))
    with pytest.raises(cptjax.DataError, match="global_step"):
        cptjax.load_run(tmp_path / "trainer_state.json")


def test_one_loss_spike_at_the_end_is_not_a_misfit():
    """The "stop now" check compares with the median of the last logged losses: a spike of 20% on
    the last one (common in real training) does not make the forecast refuse."""
    log = _log()
    y = log.losses["loss"].copy()
    y[-1] *= 1.2
    fc = cptjax.forecast(cptjax.Run("log", log.lr, log.n_pt, log.steps, {"loss": y}), budget=4000,
                         reference=cptjax.PTLaw(L0=2.0, A=0.5, alpha=0.5, C=0.5))
    assert fc.source == "reference" and math.isfinite(fc.alternatives[0]["loss"])
