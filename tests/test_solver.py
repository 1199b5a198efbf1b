"""The generic Levenberg–Marquardt solver (cptjax.fitting._solver) on problems with known answers."""

import jax
import jax.numpy as jnp
import numpy as np

from cptjax.fitting import RESULTS, levenberg_marquardt


def _problem(seed):
    rng = np.random.default_rng(seed)
    A = jnp.asarray(rng.standard_normal((40, 3)))
    x = jnp.asarray(rng.standard_normal(3))
    return A, A @ x * 1e-4, x * 1e-4  # residuals stay inside δ: plain least squares


def test_linear_least_squares_is_solved_exactly():
    A, y, x = _problem(0)
    rj = lambda th: (A @ th - y, A.T)
    th, f, st, it, _, _ = levenberg_marquardt(rj, jnp.zeros(3), 1e-3, 100)
    assert int(st) == RESULTS.converged and it < 20
    np.testing.assert_allclose(th, np.linalg.lstsq(np.asarray(A), np.asarray(y), rcond=None)[0], rtol=1e-8)


def test_one_bad_lane_does_not_stop_the_batch():
    A, y, x = _problem(1)
    ys = jnp.stack([y, y.at[3].set(jnp.nan)])

    def solve(yy):
        return levenberg_marquardt(lambda th: (A @ th - yy, A.T), jnp.zeros(3), 1e-3, 100)

    th, f, st, *_ = jax.vmap(solve)(ys)
    assert int(st[0]) == RESULTS.converged and int(st[1]) == RESULTS.nonfinite
    np.testing.assert_allclose(th[0], solve(y)[0], rtol=1e-12)
