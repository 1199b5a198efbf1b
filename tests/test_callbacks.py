"""The forecast callbacks inside real, tiny training loops of their libraries (on the CPU): a
Hugging Face Trainer writing TensorBoard events, and a Lightning Trainer writing a CSV log. Each
loop (tests/callback_loops.py) trains a linear model in its own process; the test checks that a
forecast was made from the steps, LRs and losses the trainer logged, and that its numbers reached
the trainer's own logger."""

import csv
import json
import os
import subprocess
import sys

import numpy as np

from conftest import need_installed

HERE = os.path.dirname(os.path.abspath(__file__))


def _loop(which, tmp_path):
    need_installed("torch")
    p = subprocess.run([sys.executable, os.path.join(HERE, "callback_loops.py"), which, str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["forecast"] is not None and not res["errors"], res["errors"]
    return res


def test_transformers_callback_logs_to_tensorboard(tmp_path):
    need_installed("transformers")
    need_installed("tensorboard")
    res = _loop("hf", tmp_path)
    # what the forecast saw is what the trainer logged: every 2nd step, its LR and loss
    assert res["steps"][:5] == res["log_steps"][:5] == [2, 4, 6, 8, 10]
    assert np.allclose(res["lrs"][:5], res["log_lrs"][:5])
    # the trainer's cosine schedule was read from its scheduler: "continue the schedule" to 120
    assert res["forecast"]["budget"] == 120 and res["forecast"]["first"] == "continue the schedule"
    # ... and the forecast reached TensorBoard through the trainer's own TensorBoard callback
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(next((tmp_path / "tb").rglob("*tfevents*")).parent))
    acc.Reload()
    assert {"train/loss", "train/cptjax/stop_now", "train/cptjax/best_start"} <= set(acc.Tags()["scalars"])
    first = acc.Scalars("train/cptjax/stop_now")[0]
    assert first.step > 40 and np.isfinite(first.value) and "cptjax/stop_now_hi" in res["forecast"]["metrics"]


def test_lightning_callback_logs_through_the_trainer_logger(tmp_path):
    need_installed("lightning")
    res = _loop("lightning", tmp_path)
    assert res["forecast"]["budget"] == 120
    # every step recorded, with the LR that step used (the warmup: 0.002, 0.004, …, then 0.02)
    assert res["steps"][:12] == list(range(1, 13))
    assert np.allclose(res["lrs"][:12], [0.002 * min(10, k) for k in range(1, 13)])
    # the forecast went through the trainer's logger: a metrics.csv row with its numbers
    rows = list(csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))))
    got = [r for r in rows if r.get("cptjax/stop_now")]
    assert got and float(got[0]["cptjax/from_step"]) >= 40
    assert np.isfinite(float(got[0]["cptjax/best_start"]))


def test_forecast_metrics_names():
    from cptjax.integrations.hooks import _metric_name

    assert _metric_name("cool down now (linear, 24 steps)") == "cool_down_now"
    assert _metric_name("best cooldown start (step 119)") == "best_cooldown_start"
    assert _metric_name("continue the schedule") == "continue_the_schedule"
