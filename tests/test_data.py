import warnings

import numpy as np
import pytest

import cptjax
from cptjax import schedules as S


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_csv_dense_lr_and_empty_loss_cells(tmp_path):
    lr = S.cosine(50, 1e-3, warmup=5)
    rows = ["step,lr,loss"] + [f"{i},{float(lr[i-1])!r},{'' if i % 2 else 3.0 - i / 100}" for i in range(1, 51)]
    run = cptjax.load_run(write(tmp_path, "a.csv", "\n".join(rows)))
    np.testing.assert_array_equal(run.lr, lr)
    ix, y = run.points("loss")
    assert ix.tolist() == list(range(1, 50, 2)) and y[0] == pytest.approx(2.98)


def test_sparse_lr_is_interpolated_and_coarse_log_warns(tmp_path):
    rows = ["step,lr,loss"] + [f"{s},{1e-3 * (1 - s / 2000)},{3 - s / 1e4}" for s in range(200, 2001, 200)]
    with pytest.warns(cptjax.DataWarning, match="S2"):
        run = cptjax.load_run(write(tmp_path, "s.csv", "\n".join(rows)))
    assert run.lr.size == 2000 and run.report["lr_rebuilt"]
    assert run.lr[399] == pytest.approx(1e-3 * 0.8) and run.lr[299] == pytest.approx(1e-3 * 0.85)


def test_sparse_lr_step_change_and_late_first_log_warn(tmp_path):
    """A log every 64 steps cannot tell a step change from a ramp, nor (first logged at step
    2160) the warmup before it: the rebuild assumes a ramp and a linear warmup, and says so."""
    steps = np.r_[np.arange(2160, 8000, 64), np.arange(8000, 12001, 64)]
    rows = ["step,lr,loss"] + [f"{s},{3e-4 if s < 8000 else 9e-5},{3 - s / 1e5}" for s in steps]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        run = cptjax.load_run(write(tmp_path, "wsdcon.csv", "\n".join(rows)))
    msgs = " | ".join(str(x.message) for x in w)
    assert "changes from 0.0003 to 9e-05 between logged steps 7984 and 8000; rebuilt as a linear ramp" in msgs
    assert "first logged at step 2160; before it a linear warmup from 0 is assumed" in msgs
    assert run.lr[7983] == 3e-4 and run.lr[7999] == pytest.approx(9e-5) and 9e-5 < run.lr[7991] < 3e-4
    # A 10-step warmup and a cosine logged every 5 steps: steep, but no steeper than its neighbours.
    lr = S.cosine(200, 1e-3, warmup=10)
    rows = ["step,lr,loss"] + [f"{s},{float(lr[s - 1])!r},{3 - s / 1e4}" for s in range(5, 201, 5)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", cptjax.DataWarning)
        cptjax.load_run(write(tmp_path, "warmup.csv", "\n".join(rows)))


def test_resumed_run_keeps_last_and_bad_losses_dropped(tmp_path):
    rows = ["step,lr,loss", "1,1e-3,4.0", "2,1e-3,3.9", "3,1e-3,3.8", "2,1e-3,3.7", "4,1e-3,nan",
            "5,1e-3,-1", "6,1e-3,3.5", "7,1e-3,3.4", "8,1e-3,3.3", "9,1e-3,inf"]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        run = cptjax.load_run(write(tmp_path, "r.csv", "\n".join(rows)))
    msgs = " ".join(str(x.message) for x in w)
    assert "kept the last value" in msgs and "dropped non-finite or non-positive" in msgs
    assert run.report["duplicate_steps_merged"] == 1
    assert run.report["bad_losses_dropped"] == {"loss": 3}  # nan, -1 and inf cells all counted
    ix, y = run.points("loss")
    assert ix.tolist() == [0, 1, 2, 5, 6, 7] and y[1] == 3.7


@pytest.mark.parametrize("text,kw,needle", [
    ("lr,loss\n1,2\n", {}, "missing step column"),
    ("step,loss\n1,2\n", {}, "missing LR column"),
    ("step,lr,loss\n1,1e-3,3\n", {"loss_columns": ["val"]}, "missing loss column 'val'"),
    ("step,lr,loss\n1,1e-3,abc\n", {}, "row 2"),
    ("step,lr,loss\n1,-1e-3,3\n", {}, "negative LR"),
    ("step,lr,loss\n", {}, "no data rows"),
    ("step,lr,loss\n5,1e-3,3\n", {"schedule": "constant(steps=3,peak=1e-3)"}, "beyond the schedule"),
    ("step,lr,loss,loss\n1,1e-3,3,3\n", {}, "['loss'] appear more than once"),
    ("step,lr,loss\n1,1e-3,3\n2.5,1e-3,3\n", {}, "row 3: step '2.5' (column 'step') is not a whole number"),
    ("step,lr,loss\n1,1e-3,3\n2,inf,3\n3,1e-3,3\n", {}, "infinite LR at step 2"),
])
def test_bad_files(tmp_path, text, kw, needle):
    p = write(tmp_path, "bad.csv", text)
    with pytest.raises(cptjax.DataError) as e:
        cptjax.load_run(p, **kw)
    assert needle in str(e.value) and "bad.csv" in str(e.value)


def test_json_run(tmp_path):
    p = write(tmp_path, "r.json", '{"schedule": "constant(steps=10,peak=1e-3)", "n_pt": 5, '
                                  '"steps": [2,4,6,8,10], "losses": {"gen": [3,2.9,null,2.8,2.7]}}')
    run = cptjax.load_run(p)
    assert run.n_pt == 5 and run.lr.size == 10 and np.isnan(run.losses["gen"][2])
    with pytest.raises(cptjax.DataError, match="missing key 'losses'"):
        cptjax.load_run(write(tmp_path, "b.json", '{"steps": [1]}'))


@pytest.mark.data
def test_wandb_olmo_export(data_dir):
    p = data_dir / "OLMo-ladder-peteish" / "data" / "peteish-moreeval" / "190M-1xC.csv.gz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = cptjax.load_run(str(p))
    assert any("c4_en" in c for c in run.losses) and len(run.losses) == 11
    assert run.lr.max() == pytest.approx(0.000972728518721015, rel=1e-3)  # its learning_rate_peak
    assert run.report["lr_rebuilt"] and run.steps[-1] == 7272


def test_bad_jsonl_line_is_named(tmp_path):
    p = write(tmp_path, "bad.jsonl", '{"step": 1, "lr": 1e-3, "loss": 3}\n{"step": 2,\n')
    with pytest.raises(cptjax.DataError, match=r"bad.jsonl: line 2: not valid JSON"):
        cptjax.load_run(p)
    p = write(tmp_path, "list.jsonl", '[1, 2]\n')
    with pytest.raises(cptjax.DataError, match=r"list.jsonl: line 1: expected a JSON object"):
        cptjax.load_run(p)
