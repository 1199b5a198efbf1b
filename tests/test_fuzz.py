"""Property-based fuzzing (hypothesis) of everything that reads user input: the run loaders, the
schedule text parser and the law JSON reader. Arbitrary input gives a valid result or a clear
error (ValueError / DataError) — never another exception type, never a NaN."""

import json
import math

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import cptjax  # noqa: E402

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _valid_run_or_data_error(path):
    try:
        run = cptjax.load_run(path)
    except cptjax.DataError as e:
        assert str(e)
        return None
    assert run.lr.ndim == 1 and run.lr.size >= 1 and np.isfinite(run.lr).all() and (run.lr >= 0).all()
    assert (run.lr > 0).any() and 0 <= run.n_pt <= run.lr.size
    assert np.all(np.diff(run.steps) > 0) and run.steps.min() >= 1 and run.steps.max() <= run.lr.size
    for v in run.losses.values():
        assert v.shape == run.steps.shape
        ok = v[np.isfinite(v)]
        assert (ok > 0).all()  # bad values are NaN (dropped), never kept
    return run


@FUZZ
@given(st.binary(max_size=400), st.sampled_from([".csv", ".json", ".csv.gz"]))
def test_arbitrary_bytes(tmp_path, data, ext):
    p = tmp_path / f"r{ext}"
    p.write_bytes(data)
    _valid_run_or_data_error(p)


_cell = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers(-5, 10**6).map(str),
                  st.sampled_from(["", "nan", "NaN", "inf", "-inf", "x", "1e-3", " 2 ", "null", "1e400"]))


@FUZZ
@given(st.lists(st.sampled_from(["step", "lr", "loss", "eval/x/CrossEntropyLoss", "_step", "other",
                                 "val_loss", "learning_rate"]), min_size=1, max_size=5),
       st.lists(st.lists(_cell, min_size=0, max_size=6), max_size=30),
       st.sampled_from([",", ";", "\t"]))
def test_arbitrary_csv_shapes(tmp_path, header, rows, sep):
    text = sep.join(header) + "\n" + "\n".join(sep.join(r) for r in rows)
    p = tmp_path / "r.csv"
    p.write_text(text)
    _valid_run_or_data_error(p)


_json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(), st.integers(-10**20, 10**20), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=6), inner, max_size=5)),
    max_leaves=20)


@FUZZ
@given(st.fixed_dictionaries({}, optional={
    "lr": st.one_of(st.lists(st.floats(), max_size=20), st.text(max_size=30), _json_value),
    "schedule": st.one_of(st.text(max_size=40), st.just("constant(steps=20,peak=1e-3)")),
    "n_pt": _json_value, "steps": st.one_of(st.lists(st.integers(-3, 30), max_size=20), _json_value),
    "losses": st.one_of(st.dictionaries(st.sampled_from(["loss", "a"]),
                                        st.lists(st.one_of(st.none(), st.floats()), max_size=20)), _json_value),
    "replay": _json_value, "size": _json_value}))
def test_arbitrary_json_runs(tmp_path, d):
    p = tmp_path / "r.json"
    p.write_text(json.dumps(d))
    _valid_run_or_data_error(p)


_names = st.sampled_from(["constant", "cosine", "linear", "wsd", "multistep", "inverse_sqrt", "file", "zz", ""])
_keys = st.sampled_from(["steps", "peak", "warmup", "final", "decay", "shape", "milestones", "factors",
                         "timescale", "x"])
_vals = st.one_of(st.integers(-10, 10**13).map(str), st.floats().map(repr),
                  st.sampled_from(["cosine", "linear", "exp", "sqrt", "(0.5,)", "[1, 2]", "'a'", "", "1e400"]))


@FUZZ
@given(st.one_of(st.text(max_size=60),
                 st.builds(lambda n, kv: f"{n}(" + ",".join(f"{k}={v}" for k, v in kv) + ")",
                           _names, st.lists(st.tuples(_keys, _vals), max_size=5))))
def test_schedule_parser(text):
    try:
        lr = cptjax.schedules.parse(text)
    except ValueError as e:
        assert str(e)
        return
    assert lr.ndim == 1 and 1 <= lr.size <= cptjax.schedules.MAX_STEPS
    assert np.isfinite(lr).all() and (lr >= 0).all()


@FUZZ
@given(st.one_of(_json_value, st.fixed_dictionaries(
    {"law": st.sampled_from(list(cptjax.LAWS) + ["zz"])},
    optional={n: st.one_of(st.floats(), st.integers(-3, 3), st.none(), st.text(max_size=3))
              for n in ("L0", "A", "alpha", "C", "C1", "C2", "B", "E", "beta", "a1", "a2", "F", "gamma",
                        "gamma1", "gamma2", "gamma3", "S1pt", "lam", "target", "form")})))
def test_law_json_reader(d):
    try:
        law = cptjax.law_from_dict(d)
    except ValueError as e:
        assert str(e)
        return
    for n in law.param_names():
        assert math.isfinite(getattr(law, n))
