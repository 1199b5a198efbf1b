"""Forecasts from inside a training loop, off the training thread: :class:`ForecastHook` for any
loop (JAX/optax, or anything that knows its step, LR and loss).

Example (an optax loop)::

    hook = cptjax.integrations.hooks.ForecastHook(every=500, budget=20000, on_forecast=print_line)
    for step in range(1, 20001):
        params, opt_state, loss = train_step(params, opt_state, batch)
        hook(step, float(schedule(step - 1)), loss)    # O(1): records, and every 500 steps
    hook.close()                                        # starts a forecast in a worker thread
    print(hook.latest.summary())
"""

from __future__ import annotations

import concurrent.futures
import threading
import warnings

import numpy as np

from .._data import Run
from .._forecast import forecast
from ..errors import InputError

__all__ = ["ForecastHook"]


class ForecastHook:
    """Record (step, LR, loss) from a training loop and forecast every ``every`` steps in one
    background thread (a forecast still running when the next is due is not doubled: the next
    one waits for the following ``every`` steps).

    Args:
        every: forecast every this many steps (at least 5 recorded losses are needed).
        on_forecast: called with each :class:`cptjax.Forecast` (from the worker thread) — e.g.
            to log ``fc.alternatives`` through the trainer's logger.
        forecast_options: for :func:`cptjax.forecast` (``budget``, ``schedule``, ``cooldown``,
            ``reference``, …).

    ``hook.latest`` is the last forecast; ``hook.errors`` the forecasts that failed (the loop
    is never interrupted by one); ``close()`` waits for the one running.
    """

    def __init__(self, every: int = 100, on_forecast=None, **forecast_options):
        if not (isinstance(every, int) and every >= 1):
            raise InputError(f"ForecastHook: every must be an integer >= 1, got {every!r}")
        self.every, self.on_forecast, self.options = every, on_forecast, forecast_options
        self.steps, self.lrs, self.losses = [], [], []
        self.latest, self.errors = None, []
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="cptjax-forecast")
        self._job = None
        self._lock = threading.Lock()
        self._last = 0

    def __call__(self, step: int, lr: float, loss) -> None:
        """Record one step (cheap); every ``every`` steps, start a forecast in the background."""
        self.steps.append(int(step))
        self.lrs.append(float(lr))
        self.losses.append(float(loss))
        if step - self._last >= self.every and len(self.steps) >= 5 and (self._job is None or self._job.done()):
            self._last = step
            self._job = self._pool.submit(self._run, self._snapshot())

    def _snapshot(self) -> Run:
        s, lr, y = (np.asarray(v) for v in (self.steps, self.lrs, self.losses))
        order = np.argsort(s, kind="stable")
        s, lr, y = s[order], lr[order], y[order]
        T = int(s[-1])
        # the dense LR: the recorded ones, interpolated between records (from 0 before the first)
        dense = np.interp(np.arange(1, T + 1), np.r_[0, s], np.r_[0.0, lr])
        return Run("training loop", dense, T, s, {"loss": y})

    def _run(self, run: Run):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fc = forecast(run, **self.options)
        except Exception as e:  # never interrupt training: keep the error for the user
            with self._lock:
                self.errors.append(e)
            return None
        with self._lock:
            self.latest = fc
        if self.on_forecast is not None:
            self.on_forecast(fc)
        return fc

    def close(self) -> None:
        """Wait for a forecast in progress and stop the worker thread."""
        self._pool.shutdown(wait=True)
