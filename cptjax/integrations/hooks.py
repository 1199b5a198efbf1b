"""Forecasts from inside a training loop, off the training process: `ForecastHook` for any
loop (JAX/optax, or anything that knows its step, LR and loss).

The forecasts run in one worker *process*, not a thread of the training process: JAX compiling
in two threads of one process at once (the training step's and the forecast's, with the
persistent compilation cache on) crashed with a segmentation fault. The worker is a fresh Python
(``python -c``, not ``multiprocessing``), so a training script needs no ``__main__`` guard; it runs
at the lowest CPU priority with one XLA thread, so that it takes what the training leaves.

Example (an optax loop):

    hook = cptjax.integrations.hooks.ForecastHook(every=500, budget=20000, on_forecast=print_line)
    for step in range(1, 20001):
        params, opt_state, loss = train_step(params, opt_state, batch)
        hook(step, float(schedule(step - 1)), loss)    # O(1); every 500 steps a forecast starts
    hook.close()                                        # waits for the last one
    print(hook.latest.summary())
"""

from __future__ import annotations

import concurrent.futures
import os
import pickle
import signal
import subprocess
import sys
import threading
import warnings

import numpy as np

from .. import InputError, Run, forecast  # public names only

__all__ = ["ForecastHook", "forecast_metrics"]


class ForecastHook:
    """Record (step, LR, loss) from a training loop and forecast every ``every`` steps in one
    worker process (a forecast still running when the next is due is not doubled: the next one
    waits for the following ``every`` steps).

    Args:
        every: forecast every this many steps (at least 5 recorded losses are needed).
        on_forecast: called with each `cptjax.Forecast` (from the worker thread) — e.g.
            to log ``fc.alternatives`` through the trainer's logger.
        forecast_options: for `cptjax.forecast` (``budget``, ``schedule``, ``cooldown``,
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
        self._fresh = None
        self._worker = None  # started at the first forecast
        self._job = None
        self._lock = threading.Lock()
        self._last = 0

    def __call__(self, step: int, lr: float, loss) -> None:
        """Record one step (cheap); every ``every`` steps, start a forecast in the background.

        ``loss`` may be a device array or tensor: it is kept as is and read (``float``) only when
        a forecast starts, so the loop is not made to wait for its device every step."""
        self.steps.append(int(step))
        self.lrs.append(float(lr))
        self.losses.append(loss)
        if step - self._last >= self.every and len(self.steps) >= 5 and (self._job is None or self._job.done()):
            self._last = step
            if self._worker is None:
                self._worker = _Worker()
            self._job = self._worker.submit(self._snapshot(), self.options)
            self._job.add_done_callback(self._done)

    def _snapshot(self) -> Run:
        n = len(self.steps)
        self.losses[:n] = [float(v) for v in self.losses[:n]]  # read the device values once
        s = np.asarray(self.steps[:n], np.int64)
        lr, y = (np.asarray(v[:n], np.float64) for v in (self.lrs, self.losses))
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
            self.latest = self._fresh = fc
        if self.on_forecast is not None:
            self.on_forecast(fc)

    def take(self):
        """The newest forecast not taken before, or None (for a logger that writes each once)."""
        with self._lock:
            fc, self._fresh = self._fresh, None
        return fc

    def close(self) -> None:
        """Wait for a forecast in progress and stop the worker process."""
        if self._job is not None:
            concurrent.futures.wait([self._job])
        if self._worker is not None:
            self._worker.close()
            self._worker = None


def forecast_metrics(fc, prefix: str = "cptjax/") -> dict[str, float]:
    """A forecast as flat scalar metrics for a trainer's logger (TensorBoard, W&B, CSV):
    ``<prefix><alternative>`` with ``…_lo``/``…_hi`` (its 90% band) for each alternative
    (``stop_now``, ``cool_down_now``, ``continue_the_schedule`` when the schedule is known,
    ``best_cooldown_start`` when there is a budget), ``<prefix>best_start`` (the step to start the
    cooldown at) and ``<prefix>from_step`` (the log's last step the forecast was made from)."""
    out = {f"{prefix}from_step": float(fc.step)}
    for a in fc.alternatives:
        key = prefix + _metric_name(a["name"])
        out[key], out[key + "_lo"], out[key + "_hi"] = float(a["loss"]), float(a["lo"]), float(a["hi"])
    if fc.best_start is not None:
        out[f"{prefix}best_start"] = float(fc.best_start)
    return out


def _metric_name(name: str) -> str:
    """'cool down now (linear, 20%)' -> 'cool_down_now'."""
    head = name.split(" (")[0].strip().lower()
    return "".join(c if c.isalnum() else "_" for c in head).strip("_")


class _Worker:
    """One forecasting process (``python -c``), fed pickled (Run, options) on its stdin; each
    reply (a Forecast, or the exception) comes back pickled on its stdout."""

    def __init__(self):
        import cptjax

        root = os.path.dirname(os.path.dirname(os.path.abspath(cptjax.__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                            " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
        env["JAX_PLATFORMS"] = "cpu"  # the training owns the accelerator
        self.proc = subprocess.Popen([sys.executable, "-c", "from cptjax.integrations.hooks import _serve; _serve()"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.lock = threading.Lock()

    def submit(self, run, options) -> concurrent.futures.Future:
        fut = concurrent.futures.Future()
        threading.Thread(target=self._call, args=(fut, run, options), daemon=True).start()
        return fut

    def _call(self, fut, run, options):
        with self.lock:
            try:
                pickle.dump((run, options), self.proc.stdin)
                self.proc.stdin.flush()
                ok, value = pickle.load(self.proc.stdout)
            except (OSError, EOFError, pickle.UnpicklingError) as e:
                fut.set_exception(RuntimeError(f"the forecast worker stopped ({e!r}; exit code {self.proc.poll()})"))
                return
        fut.set_result(value) if ok else fut.set_exception(value)

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _serve():
    """The worker's loop: read (Run, options), forecast, write (ok, Forecast or exception), until
    stdin closes. Its stdout is the channel (prints go to stderr); Ctrl-C is the parent's."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.nice(19)
    except OSError:
        pass
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import jax

    jax.config.update("jax_enable_x64", True)
    while True:
        try:
            run, options = pickle.load(sys.stdin.buffer)
        except EOFError:
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reply = (True, forecast(run, **options))
        except Exception as e:  # sent back: the hook keeps it in .errors
            reply = (False, e)
        try:
            data = pickle.dumps(reply)
        except Exception as e:  # an unpicklable exception
            data = pickle.dumps((False, RuntimeError(f"{type(reply[1]).__name__}: {reply[1]} ({e})")))
        channel.write(data)
        channel.flush()
