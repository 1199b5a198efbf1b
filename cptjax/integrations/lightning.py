"""The forecast in a PyTorch Lightning ``Trainer``: `ForecastCallback` (``pip install
cptjax[lightning]``).

After every training batch the callback records the step, the first optimiser's LR and the
training loss (kept as a tensor: read only when a forecast starts, so the step does not wait for
the device); every ``every`` steps it forecasts the run's final loss in a worker process
(`cptjax.integrations.hooks.ForecastHook`), and logs each forecast through the trainer's
own loggers (``logger.log_metrics``: TensorBoard, W&B, CSV, …) as scalars beside the loss
(`cptjax.integrations.hooks.forecast_metrics`):

    cb = cptjax.integrations.lightning.ForecastCallback(every=500, budget=20_000)
    trainer = lightning.Trainer(max_steps=20_000, callbacks=[cb])
    trainer.fit(model, data)
    print(cb.hook.latest.summary())
"""

from __future__ import annotations

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # the standalone package
    from pytorch_lightning.callbacks import Callback

from .hooks import ForecastHook, forecast_metrics

__all__ = ["ForecastCallback"]


class ForecastCallback(Callback):
    """Forecast every ``every`` steps from the training loss and the LR.

    Args:
        every: forecast every this many optimiser steps.
        prefix: of the logged metric names.
        forecast_options: for `cptjax.forecast` (``budget``, ``schedule``, ``cooldown``,
            ``reference``, …); ``budget`` defaults to the trainer's ``max_steps`` when set.

    The loss is ``outputs["loss"]`` (or ``outputs`` itself when ``training_step`` returns a
    tensor). ``cb.hook`` is the `cptjax.integrations.hooks.ForecastHook`.
    """

    def __init__(self, every: int = 500, prefix: str = "cptjax/", **forecast_options):
        self.prefix, self.options = prefix, forecast_options
        self.hook = ForecastHook(every=every, **forecast_options)

    def on_train_start(self, trainer, pl_module):
        opts = dict(self.options)
        if "budget" not in opts and "schedule" not in opts and trainer.max_steps and trainer.max_steps > 0:
            opts["budget"] = int(trainer.max_steps)
        self.hook.options = opts

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        # the LR this step will use (a step-interval scheduler moves it before on_train_batch_end)
        self._lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None or getattr(self, "_lr", None) is None:
            return
        self.hook(trainer.global_step, self._lr, loss.detach() if hasattr(loss, "detach") else loss)
        fc = self.hook.take()
        if fc is not None:
            for logger in trainer.loggers:
                logger.log_metrics(forecast_metrics(fc, self.prefix), step=trainer.global_step)

    def on_train_end(self, trainer, pl_module):
        self.hook.close()
