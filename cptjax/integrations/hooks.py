"""Forecasts from inside a training loop, off the training process: :class:`ForecastHook` for any
loop (JAX/optax, or anything that knows its step, LR and loss).

The forecasts run in one worker *process* (started with ``spawn``), not a thread of the training
process: JAX compiling in two threads of one process at once (the training step's and the
forecast's, with the persistent compilation cache on) crashed with a segmentation fault. As with
any ``spawn`` worker (PyTorch's DataLoader workers, ``multiprocessing``), a training *script*
must guard its entry point with ``if __name__ == "__main__":``.

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
import multiprocessing
import threading
import warnings

import numpy as np

from .._data import Run
from .._forecast import forecast
from ..errors import InputError

__all__ = ["ForecastHook"]


class ForecastHook:
    """Record (step, LR, loss) from a training loop and forecast every ``every`` steps in one
    worker process (a forecast still running when the next is due is not doubled: the next one
    waits for the following ``every`` steps).

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
        self._pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
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
            self._job = self._pool.submit(_forecast, self._snapshot(), self.options)
            self._job.add_done_callback(self._done)

    def _snapshot(self) -> Run:
        s, lr, y = (np.asarray(v) for v in (self.steps, self.lrs, self.losses))
        order = np.argsort(s, kind="stable")
        s, lr, y = s[order], lr[order], y[order]
        T = int(s[-1])
        # the dense LR: the recorded ones, interpolated between records (from 0 before the first)
        dense = np.interp(np.arange(1, T + 1), np.r_[0, s], np.r_[0.0, lr])
        return Run("training loop", dense, T, s, {"loss": y})

    def _done(self, job) -> None:
        try:
            fc = job.result()
        except Exception as e:  # never interrupt training: keep the error for the user
            with self._lock:
                self.errors.append(e)
            return
        with self._lock:
            self.latest = fc
        if self.on_forecast is not None:
            self.on_forecast(fc)

    def close(self) -> None:
        """Wait for a forecast in progress and stop the worker process."""
        self._pool.shutdown(wait=True)


def _forecast(run, options):
    """In the worker process: one forecast (float64, as the library's fits need)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return forecast(run, **options)
