"""Every law is a smooth function of the schedule: its gradient with respect to the per-step LR
matches central finite differences (float64, 1e-4 relative) on plateaus, cooldowns and
re-warmups — the MPL law's warmup end is fixed outside the law (an argmax inside it made the
gradient wrong on any plateau: −0.20 against −213)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cptjax
from cptjax import schedules as S

PT = S.wsd(5000, 3e-4, warmup=500, decay=0.3, final=3e-5)  # warmup, plateau, cooldown
CPT = S.cosine(2000, 2e-4, warmup=300, final=0.0)  # re-warmup after the PT anneal
LR, N_PT = S.join(PT, CPT)
# steps probed: warmup, plateau (incl. the issue's step 1000), cooldown, re-warmup, CPT decay
PROBE = [200, 1000, 2500, 4200, 5100, 5250, 6500]


def laws():
    a, b = cptjax.preset("setting-a"), cptjax.preset("replay")
    return {
        "pt": (cptjax.PTLaw(3.0, 0.5, 0.5, 0.3), {}),
        "cpt": (a.domain, {}),
        "cpt-shared": (cptjax.SharedCPTLaw(3.0, 0.45, 0.5, 0.3, 0.4, 50.0, 0.3), {}),
        "cpt-eps0.2": (a.domain.replace(eps=0.2, lam=0.99), {}),
        "replay-swapped": (b.general, {"replay": 0.3}),
        "replay-printed": (cptjax.preset("replay-printed").domain, {"replay": 0.3}),
        "size": (cptjax.preset("size").general, {"size": 300.0}),
        "open": (cptjax.OpenCPTLaw(2.4, 0.17, 0.53, 0.31, -0.79, 17.0, 0.5, 0.085), {}),
        "mpl": (cptjax.preset("mpl-100m"), {}),
        "cpt-mpl": (cptjax.MPLCPTLaw(2.5, 0.5, 0.5, 400.0, 300.0, 0.2, 100.0, 0.5, 2.0, 0.6, 0.6), {}),
    }


@pytest.mark.parametrize("name", list(laws()))
def test_schedule_gradient_matches_finite_differences(name):
    law, cond = laws()[name]
    at = jnp.array([N_PT - 1, LR.size - 1, 3000])  # losses at the transfer, the end, mid-PT
    if law.needs_schedule:  # the default: every decrement summed, the warmup's included
        f = lambda lr: jnp.sum(law(lr, at, n_pt=N_PT))
    else:
        f = lambda lr: jnp.sum(law(cptjax.areas(lr, N_PT, law.lam, eps=law.eps).at(at), **cond))
    lr = jnp.asarray(LR)
    g = np.asarray(jax.grad(f)(lr))
    fj = jax.jit(f)
    for k in PROBE:
        h = 1e-4 * float(LR[k])  # relative step (MPL's curvature makes 1e-3 truncate at ~1e-4)
        e = jnp.zeros_like(lr).at[k].set(h)
        fd = (float(fj(lr + e)) - float(fj(lr - e))) / (2 * h)
        assert g[k] == pytest.approx(fd, rel=1e-4, abs=1e-9 * max(1.0, abs(fd))), (name, k, g[k], fd)


def test_mpl_plateau_gradient_is_the_one_the_issue_measured():
    """The issue's case: mpl-100m, warmup 500, plateau 3 000, cooldown 1 500 steps, step 1000.
    With the warmup end recomputed from each perturbed schedule (the old argmax inside the law),
    central differences jump across the discontinuity (−213); with it fixed, the law is smooth
    and autodiff equals central differences (−0.2013)."""
    lr = jnp.asarray(S.wsd(5000, 3e-4, warmup=500, decay=0.3, final=3e-5))
    law = cptjax.preset("mpl-100m")
    warm = cptjax.warmup_end(lr)
    f = lambda x: law(x, jnp.array([4999]), warmup=warm)[0]
    g = float(jax.grad(f)(lr)[999])
    h = 3e-8
    fd = (float(f(lr.at[999].add(h))) - float(f(lr.at[999].add(-h)))) / (2 * h)
    assert g == pytest.approx(fd, rel=1e-4) and g == pytest.approx(-0.2013, abs=1e-3)
    # the warmup end recomputed as the argmax of each perturbed schedule
    old = lambda x: float(law(x, jnp.array([4999]), warmup=cptjax.warmup_end(x))[0])
    fd_old = (old(lr.at[999].add(3e-7)) - old(lr.at[999].add(-3e-7))) / 6e-7
    assert fd_old < -100  # the discontinuity the issue measured


def test_mpl_pair_sums_written_derivative_equals_autodiff():
    """The fitter's MPL sum over (point, decrement) pairs has its derivative written out (one
    segment sum per parameter instead of a tangent per pair): forward, reverse and second order
    equal autodiff through the plain expression (1e-10 relative), in the parameters and the data."""
    from cptjax.laws import _laws

    rng = np.random.default_rng(0)
    n, p = 7, 400
    point = jnp.asarray(np.sort(rng.integers(0, n, p)).astype(np.int32))
    d = jnp.asarray(rng.normal(0, 1e-5, (2, p)))
    log_eta = jnp.asarray(np.log(rng.uniform(1e-5, 3e-4, p)))
    s_kt = jnp.asarray(rng.uniform(0, 2.0, p))

    def plain(c, b, g, d, le, s):
        return _laws._segsum(d * _laws._mpl_g(c, b, g, le, s), point, n)

    def custom(c, b, g, d, le, s):
        return _laws._pair_sums(c, b, g, d, le, s, point, n)

    args = (0.7, 0.45, 0.6, d, log_eta, s_kt)
    np.testing.assert_allclose(custom(*args), plain(*args), rtol=1e-13)
    for i in range(6):
        want = jax.jacfwd(plain, argnums=i)(*args)
        np.testing.assert_allclose(jax.jacfwd(custom, argnums=i)(*args), want, rtol=1e-10, atol=1e-22)
    scalar = lambda f: (lambda *a: jnp.sum(jnp.sin(1e3 * f(*a))))  # a nonlinear read-out
    g_want = jax.grad(scalar(plain), argnums=(0, 1, 2, 3, 4, 5))(*args)
    for got, want in zip(jax.grad(scalar(custom), argnums=(0, 1, 2, 3, 4, 5))(*args), g_want):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-22)
    h = lambda f: jax.hessian(lambda t: scalar(f)(t[0], t[1], t[2], d, log_eta, s_kt))(jnp.array(args[:3]))
    np.testing.assert_allclose(h(custom), h(plain), rtol=1e-10)
