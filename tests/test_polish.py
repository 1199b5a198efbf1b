"""Issue 22's polish class: small inputs that were read wrongly or silently."""

import json
import os
import subprocess
import sys
import warnings

import jax
import numpy as np
import pytest

import cptjax
from cptjax import schedules as S

jax.config.update("jax_enable_x64", True)
STEPS = np.arange(10, 1010, 10)
LOSS = 3.0 * (STEPS / 10.0) ** -0.1


def _csv(path, steps=STEPS, extra=""):
    path.write_text("step,lr,loss\n" + "".join(f"{s},3e-4,{float(y)!r}\n" for s, y in zip(steps, LOSS)) + extra)
    return path


@pytest.mark.parametrize("cell", ["inf", "nan", "-inf"])
def test_a_row_without_a_finite_step_is_left_out_with_a_warning(tmp_path, cell):
    p = _csv(tmp_path / "r.csv", extra=f"{cell},3e-4,2.0\n")
    with pytest.warns(cptjax.DataWarning, match="without a finite step"):
        run = cptjax.load_run(p)
    assert run.steps.size == STEPS.size


def test_a_fractional_trainer_step_is_refused(tmp_path):
    hist = [{"step": float(s) + 0.5, "learning_rate": 3e-4, "loss": float(y)} for s, y in zip(STEPS, LOSS)]
    p = tmp_path / "trainer_state.json"
    p.write_text(json.dumps({"log_history": hist, "global_step": 1000}))
    with pytest.raises(cptjax.DataError, match="whole number"):
        cptjax.load_run(p)


@pytest.mark.parametrize("arr", [np.array(["2020-01-01"] * 50, "datetime64[D]"), np.array(["1e-4"] * 50),
                                 np.ones(50, bool), np.ones(50, complex)])
def test_a_schedule_file_of_non_numbers_is_refused(tmp_path, arr):
    np.save(tmp_path / "lr.npy", arr)
    with pytest.raises(cptjax.InputError, match="numeric LR array"):
        S.parse(f"file({tmp_path / 'lr.npy'})")


def test_runs_of_the_same_file_name_are_reported_apart(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    runs = [_csv(tmp_path / "a" / "run.csv"), _csv(tmp_path / "b" / "run.csv")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = cptjax.fit(runs, "pt", throw=False)
    assert res.provenance["runs"] == ["run.csv", "run.csv #2"]
    assert list(res.provenance["data_report"]) == ["run.csv", "run.csv #2"]


def test_a_plan_never_exceeds_max_lr_when_the_pt_ended_above_it():
    pt = S.wsd(2000, 2e-4, warmup=100, decay=0.2, final=2e-5)
    plan = cptjax.design(cptjax.preset("setting-a"), pt, 400, max_lr=1e-5, warmup=50, iterations=30)
    assert np.max(plan.schedule) <= 1e-5 * (1 + 1e-12)
    assert all(np.max(b["schedule"]) <= 1e-5 * (1 + 1e-12) for b in plan.baselines.values())


def test_output_into_a_closed_pipe_is_not_an_error():
    """`cptjax predict | head -1`: the reader hung up; no 'internal error', exit 0."""
    p = subprocess.Popen(f"{sys.executable} -m cptjax.cli predict | head -1", shell=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "CPTJAX_NO_CACHE": "1"})
    out, err = p.communicate(timeout=120)
    assert out.count("\n") == 1 and "error" not in err, err


def test_a_design_with_the_size_law_is_refused_with_the_reason():
    """The size law (a model-size condition) cannot be designed with: an InputError that says
    why and what to use, before any optimisation (it was an internal 'None is not a valid value')."""
    pt = S.wsd(2000, 2e-4, warmup=100, decay=0.2, final=2e-5)
    with pytest.raises(cptjax.InputError, match="model sizes"):
        cptjax.design(cptjax.preset("size"), pt, 500, max_lr=2e-4, iterations=5)
    with pytest.raises(cptjax.InputError, match="--replay"):
        cptjax.design(cptjax.preset("replay"), pt, 500, max_lr=2e-4, iterations=5)
