"""Real, tiny training loops of Hugging Face transformers and PyTorch Lightning with cptjax's
forecast callbacks, run by tests/test_callbacks.py in a separate process (PyTorch and JAX in one
pytest process crashed the suite once: each library keeps its own thread pools).

    python tests/callback_loops.py hf|lightning OUT_DIR

Writes OUT_DIR/result.json: what the callback recorded and its last forecast's metrics."""

import json
import os
import sys

import torch


def _data(n=512, d=16):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, d, generator=g)
    return X, X @ torch.randn(d, generator=g) + 0.3 * torch.randn(n, generator=g)


def _wait_for_first(cb):
    """Block the loop once, until the first forecast is back (these loops take a second, a
    forecast several: a long run would simply go on)."""
    job = cb.hook._job
    if job is not None and not getattr(cb, "_waited", False):
        job.result()
        cb._waited = True


def hf(out):
    import transformers

    from cptjax.integrations import transformers as ct

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
    os.environ["TENSORBOARD_LOGGING_DIR"] = os.path.join(out, "tb")
    args = transformers.TrainingArguments(
        output_dir=os.path.join(out, "out"), max_steps=120, per_device_train_batch_size=8, learning_rate=0.02,
        lr_scheduler_type="cosine", warmup_steps=10, logging_steps=2, report_to=["tensorboard"],
        save_strategy="no", use_cpu=True, disable_tqdm=True)
    trainer = transformers.Trainer(model=Linear(), args=args,
                                   train_dataset=[{"x": X[i], "labels": Y[i]} for i in range(len(X))])
    cb = ct.attach(trainer, every=40, cooldown="linear")
    trainer.add_callback(Wait())
    trainer.train()
    logged = [h for h in trainer.state.log_history if "loss" in h]
    return cb, {"log_steps": [h["step"] for h in logged], "log_lrs": [h["learning_rate"] for h in logged]}


def lightning(out):
    import lightning as L
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
    trainer = L.Trainer(max_steps=120, callbacks=[cb, Wait()], logger=CSVLogger(out),
                        enable_progress_bar=False, enable_checkpointing=False, accelerator="cpu")
    trainer.fit(Linear(), data)
    return cb, {}


if __name__ == "__main__":
    from cptjax.integrations.hooks import forecast_metrics

    which, out = sys.argv[1], sys.argv[2]
    cb, extra = {"hf": hf, "lightning": lightning}[which](out)
    fc = cb.hook.latest
    result = {"errors": [repr(e) for e in cb.hook.errors], "steps": cb.hook.steps, "lrs": cb.hook.lrs,
              "forecast": None if fc is None else {"budget": fc.budget, "step": fc.step,
                                                   "first": fc.alternatives[0]["name"],
                                                   "metrics": forecast_metrics(fc)}, **extra}
    with open(os.path.join(out, "result.json"), "w") as fh:
        json.dump(result, fh)
