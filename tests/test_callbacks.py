"""The forecast callbacks inside real, tiny training loops of their libraries (on the CPU): a
Hugging Face Trainer writing TensorBoard events, and a Lightning Trainer writing a CSV log. Each
loop trains a linear model whose loss falls; the test checks that a forecast was made from the
steps, LRs and losses the trainer logged, and that its numbers reached the trainer's own logger."""

import numpy as np
import pytest

from conftest import need_module

torch = need_module("torch")


def _data(n=512, d=16):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, d, generator=g)
    return X, X @ torch.randn(d, generator=g) + 0.3 * torch.randn(n, generator=g)


def _wait_for_first(cb):
    """Block the loop once, until the first forecast is back (the real loops here take a second,
    a forecast several: a long run would simply go on)."""
    job = cb.hook._job
    if job is not None and not getattr(cb, "_waited", False):
        job.result()
        cb._waited = True


def test_transformers_callback_logs_to_tensorboard(tmp_path, monkeypatch):
    transformers = need_module("transformers")
    need_module("tensorboard")
    from cptjax.integrations import transformers as ct
    from cptjax.integrations.hooks import forecast_metrics

    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(16, 1)

        def forward(self, x, labels=None):
            return {"loss": torch.mean((self.lin(x).squeeze(-1) - labels) ** 2)}

    class Wait(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            _wait_for_first(cb)

    X, Y = _data()
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "tb"))
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=120, per_device_train_batch_size=8, learning_rate=0.02,
        lr_scheduler_type="cosine", warmup_steps=10, logging_steps=2, report_to=["tensorboard"],
        save_strategy="no", use_cpu=True, disable_tqdm=True)
    trainer = transformers.Trainer(model=Linear(), args=args,
                                   train_dataset=[{"x": X[i], "labels": Y[i]} for i in range(len(X))])
    cb = ct.attach(trainer, every=40, cooldown="linear")
    trainer.add_callback(Wait())
    trainer.train()
    fc = cb.hook.latest
    assert fc is not None and not cb.hook.errors
    # what the forecast saw is what the trainer logged: every 2nd step, its LR and loss
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert cb.hook.steps[:5] == [h["step"] for h in logged[:5]] == [2, 4, 6, 8, 10]
    assert np.allclose(cb.hook.lrs[:5], [h["learning_rate"] for h in logged[:5]])
    # the trainer's cosine schedule was read from its scheduler: "continue the schedule" to 120
    assert fc.budget == 120 and fc.alternatives[0]["name"] == "continue the schedule"
    # ... and the forecast reached TensorBoard through the trainer's own TensorBoard callback
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(next((tmp_path / "tb").rglob("*tfevents*")).parent))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/loss", "train/cptjax/stop_now", "train/cptjax/best_start"} <= set(tags)
    first = acc.Scalars("train/cptjax/stop_now")[0]
    want = forecast_metrics(fc)  # the last forecast; the first one written was made at step 40
    assert first.step > 40 and np.isfinite(first.value) and "cptjax/stop_now_hi" in want


def test_lightning_callback_logs_through_the_trainer_logger(tmp_path):
    L = need_module("lightning")
    from lightning.pytorch.loggers import CSVLogger

    from cptjax.integrations import lightning as cl

    class Linear(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(16, 1)

        def training_step(self, batch, i):
            x, y = batch
            return torch.mean((self.lin(x).squeeze(-1) - y) ** 2)

        def configure_optimizers(self):
            opt = torch.optim.SGD(self.parameters(), lr=0.02)
            warm = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / 10))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": warm, "interval": "step"}}

    class Wait(L.Callback):
        def on_train_batch_end(self, *a):
            _wait_for_first(cb)

    X, Y = _data()
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, Y), batch_size=8)
    cb = cl.ForecastCallback(every=40, cooldown="linear")
    trainer = L.Trainer(max_steps=120, callbacks=[cb, Wait()], logger=CSVLogger(str(tmp_path)),
                        enable_progress_bar=False, enable_checkpointing=False, accelerator="cpu")
    trainer.fit(Linear(), data)
    fc = cb.hook.latest
    assert fc is not None and not cb.hook.errors and fc.budget == 120
    # every step recorded, with the LR that step used (the warmup: 0.002, 0.004, …, then 0.02)
    assert cb.hook.steps[:12] == list(range(1, 13))
    assert np.allclose(cb.hook.lrs[:12], [0.002 * min(10, k) for k in range(1, 13)])
    # the forecast went through the trainer's logger: a metrics.csv row with its numbers
    import csv

    rows = list(csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))))
    got = [r for r in rows if r.get("cptjax/stop_now")]
    assert got and float(got[0]["cptjax/from_step"]) >= 40
    assert np.isfinite(float(got[0]["cptjax/best_start"]))


def test_forecast_metrics_names():
    from cptjax.integrations.hooks import _metric_name

    assert _metric_name("cool down now (linear, 24 steps)") == "cool_down_now"
    assert _metric_name("best cooldown start (step 119)") == "best_cooldown_start"
    assert _metric_name("continue the schedule") == "continue_the_schedule"
