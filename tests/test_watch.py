"""Live forecasting: `watch` on a log that grows while it reads (with a half-written last line),
and the training-loop hook inside a real optax loop."""

import threading

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)
import cptjax  # noqa: E402
from cptjax import schedules as S  # noqa: E402
from cptjax.integrations.hooks import ForecastHook  # noqa: E402

TRUE = cptjax.PTLaw(L0=2.4, A=0.55, alpha=0.5, C=0.45)
LR = S.constant(20000, 3e-4, warmup=500)


def _rows():
    """The CSV rows of the true law's log, a point every 200 steps."""
    steps = np.arange(200, 20001, 200)
    y = np.asarray(cptjax.predict(TRUE, LR, idx=steps - 1))
    return [f"{s},{float(LR[s - 1])!r},{float(v)!r}\n" for s, v in zip(steps, y)]


def test_watch_follows_a_growing_log(tmp_path):
    path, rows = tmp_path / "log.csv", _rows()
    path.write_text("step,lr,loss\n" + "".join(rows[:30]))
    polls = []

    def grow(_):  # the 'trainer': at each poll, 20 more rows, the last one half-written
        k = 30 + 20 * len(polls)
        polls.append(k)
        path.write_text("step,lr,loss\n" + "".join(rows[:k]) + rows[k][:7])

    got = list(cptjax.watch(path, every=15, max_polls=4, sleep=grow, budget=20000,
                            reference=None))
    assert len(got) >= 3  # the half-written line did not stop it
    assert [f.step for f in got] == sorted(f.step for f in got) and got[-1].step > got[0].step
    assert all(f.source == "prior" for f in got) and "best cooldown start" in got[-1].line()


def test_watch_errors(tmp_path):
    with pytest.raises(cptjax.InputError, match="every"):
        next(cptjax.watch(tmp_path / "x.csv", every=0))
    with pytest.raises(cptjax.InputError, match="10 times"):
        list(cptjax.watch(tmp_path / "missing.csv", sleep=lambda _: None))


def test_hook_in_a_real_optax_loop():
    """A tiny regression trained by optax with a warmup-constant schedule; the hook gets its step,
    LR and loss, forecasts off the training thread, and the loop goes on."""
    import optax

    sched = optax.join_schedules([optax.linear_schedule(0.0, 0.05, 50), optax.constant_schedule(0.05)], [50])
    opt = optax.adam(sched)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 8))
    w_true = rng.standard_normal(8)
    yv = X @ w_true + 0.5 * rng.standard_normal(256)
    params = jax.numpy.zeros(8)
    state = opt.init(params)
    loss_fn = lambda p, xb, yb: jax.numpy.mean((xb @ p - yb) ** 2)

    @jax.jit
    def step_fn(p, s, xb, yb):
        loss, g = jax.value_and_grad(loss_fn)(p, xb, yb)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, loss

    seen = []
    hook = ForecastHook(every=100, budget=1000, on_forecast=seen.append)
    for step in range(1, 601):
        idx = rng.integers(0, 256, 32)
        params, state, loss = step_fn(params, state, X[idx], yv[idx])
        hook(step, float(sched(step - 1)), float(loss))
    hook.close()
    assert seen and hook.latest is seen[-1] and not hook.errors
    assert hook.latest.step >= 100 and hook.latest.budget == 1000
    assert threading.current_thread() is threading.main_thread()


def test_watch_says_when_the_log_restarts(tmp_path):
    path, rows = tmp_path / "log.csv", _rows()
    path.write_text("step,lr,loss\n" + "".join(rows[:40]))
    shrink = lambda _: path.write_text("step,lr,loss\n" + "".join(rows[:10]))  # a restarted run
    with pytest.warns(cptjax.DataWarning, match="fewer than the 40"):
        got = list(cptjax.watch(path, every=15, max_polls=2, sleep=shrink, budget=20000))
    assert [f.step for f in got] == [8000, 2000]  # and it follows the new log from there
