"""The forecast in a Hugging Face ``Trainer``: `ForecastCallback` (``pip install
cptjax[transformers]``).

Every ``every`` steps the callback forecasts the run's final loss from the losses and LRs the
trainer logged so far — stop now, cool down now, the trainer's own schedule continued, and the
best step to start a cooldown within ``max_steps`` — in a worker process
(`cptjax.integrations.hooks.ForecastHook`), and writes each forecast into the trainer's
next log as scalars (``cptjax/stop_now``, ``cptjax/cool_down_now_lo``, ``cptjax/best_start``, …:
`cptjax.integrations.hooks.forecast_metrics`), so that TensorBoard, W&B or any
``report_to`` logger shows it beside the loss. Use `attach`, which puts the callback
before the trainer's loggers (a callback given as ``Trainer(callbacks=[...])`` comes after them,
and they would not see the forecast):

    trainer = Trainer(model=model, args=args, train_dataset=data)
    cb = cptjax.integrations.transformers.attach(trainer, every=500, cooldown="1-sqrt")
    trainer.train()
    print(cb.hook.latest.summary())
"""

from __future__ import annotations

from transformers import TrainerCallback

from .hooks import ForecastHook, forecast_metrics

__all__ = ["ForecastCallback", "attach"]

_MAX_SCHEDULE = 2_000_000  # the trainer's schedule is read step by step up to this many steps


class ForecastCallback(TrainerCallback):
    """Forecast every ``every`` steps from the trainer's logged ``loss`` and ``learning_rate``.

    Args:
        every: forecast every this many steps (the trainer must log at least every few steps:
            ``logging_steps`` well below ``every``).
        prefix: of the logged metric names.
        forecast_options: for `cptjax.forecast` (``cooldown``, ``final``,
            ``cooldown_steps``, ``reference``, …); ``budget`` defaults to the trainer's
            ``max_steps`` and ``schedule`` to its LR scheduler's (when it is a ``LambdaLR``, as
            every ``transformers`` schedule is).

    ``cb.hook`` is the `cptjax.integrations.hooks.ForecastHook` (``.latest``,
    ``.errors``); the worker stops at the end of training.
    """

    def __init__(self, every: int = 500, prefix: str = "cptjax/", **forecast_options):
        self.every, self.prefix, self.options = every, prefix, forecast_options
        self.hook = ForecastHook(every=every, **forecast_options)  # checks `every` now

    def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
        opts = dict(self.options)
        if "budget" not in opts and "schedule" not in opts:
            full = _schedule(lr_scheduler, state.max_steps)
            if full is not None:
                opts["schedule"] = full
            elif state.max_steps and state.max_steps > 0:
                opts["budget"] = int(state.max_steps)
        self.hook.options = opts

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:
            return
        lr = logs.get("learning_rate", logs.get("lr"))
        if "loss" in logs and lr is not None:
            self.hook(state.global_step, float(lr), float(logs["loss"]))
        fc = self.hook.take()
        if fc is not None:  # the loggers after this callback write these beside the loss
            logs.update(forecast_metrics(fc, self.prefix))

    def on_train_end(self, args, state, control, **kwargs):
        self.hook.close()


def attach(trainer, every: int = 500, prefix: str = "cptjax/", **forecast_options) -> ForecastCallback:
    """Add a `ForecastCallback` to ``trainer`` before its loggers; returns it."""
    cb = ForecastCallback(every=every, prefix=prefix, **forecast_options)
    trainer.callback_handler.callbacks.insert(0, cb)
    return cb


def _schedule(lr_scheduler, max_steps):
    """The LR of steps 1..max_steps from a ``LambdaLR`` (first parameter group), else None."""
    lambdas = getattr(lr_scheduler, "lr_lambdas", None)
    base = getattr(lr_scheduler, "base_lrs", None)
    if not lambdas or not base or not max_steps or not 0 < max_steps <= _MAX_SCHEDULE:
        return None
    import numpy as np

    f, b = lambdas[0], float(base[0])
    return np.array([b * f(k) for k in range(int(max_steps))], np.float64)
