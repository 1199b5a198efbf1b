import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import cptjax
from cptjax import schedules as S
from reference import areas_loop

V2_PT = S.wsd(40000, 2e-4, warmup=500, decay=0.2, final=2e-5)
V2_CPT = S.cosine(10000, 1e-4, warmup=500, final=0.0)


@pytest.mark.parametrize("method", ["scan", "associative"])
def test_reference_values(method):
    lr, n = S.join(S.constant(20000, 2e-4), S.constant(20000, 2e-4))
    a = cptjax.areas(lr, n, method=method)
    np.testing.assert_allclose([x[-1] for x in a], [4, 4, 0, 0], rtol=1e-12, atol=1e-14)
    lr, n = S.join(V2_PT, V2_CPT)
    a = cptjax.areas(lr, n, method=method)
    np.testing.assert_allclose([x[-1] for x in a], [7.23001, 0.5, -0.04206999, 0.03755156],
                               rtol=2e-7)  # V2 is printed to 7-8 significant digits


def _random_schedule(rng, T):
    kind = rng.integers(4)
    if kind == 0:
        return rng.uniform(0, 1e-3, T)
    if kind == 1:
        return np.abs(np.cumsum(rng.normal(0, 1e-5, T))) + 1e-5
    if kind == 2:
        return S.wsd(T, 3e-4, warmup=T // 10, decay=0.3, final=3e-5, shape="cosine")
    return np.repeat(rng.uniform(1e-5, 1e-3, 5), -(-T // 5))[:T]


@pytest.mark.parametrize("seed", range(8))
def test_matches_loop_on_random_schedules(seed):
    rng = np.random.default_rng(seed)
    T = int(rng.integers(2, 3000))
    lr = _random_schedule(rng, T)
    n_pt = int(rng.integers(0, T + 1))
    lam = float(rng.uniform(0.9, 0.9999))
    eta0 = float(rng.uniform(0, 1e-3)) if seed % 2 else None
    ref = areas_loop(lr, n_pt, lam, eta0)
    for method in ("scan", "associative"):
        got = np.stack(cptjax.areas(lr, n_pt, lam, eta0, method=method))
        scale = np.abs(ref).max(axis=1, keepdims=True) + 1e-300
        assert np.max(np.abs(got - ref) / scale) < 1e-12, method


@pytest.mark.parametrize("lam", [1e-4, 0.3, 0.9, 0.99, 0.999, 0.99999])
def test_numpy_areas_match_loop(lam):
    """areas_numpy (make_problem's dispatch-free path; blocked closed-form momentum) against the
    plain loop, every λ regime (truncated sum, one block, many blocks, nested carries)."""
    from cptjax.laws import areas_numpy

    rng = np.random.default_rng(int(lam * 1e5))
    for T in (1, 7, 2500, 30001):
        lr = _random_schedule(rng, T)
        n_pt, eta0 = int(rng.integers(0, T + 1)), float(rng.uniform(0, 1e-3))
        ref = areas_loop(lr, n_pt, lam, eta0)
        got = np.stack(areas_numpy(lr, n_pt, lam, eta0))
        scale = np.abs(ref).max(axis=1, keepdims=True) + 1e-300
        # both sum sequentially, in different orders: rounding grows like T·ε
        assert np.max(np.abs(got - ref) / scale) < max(1e-12, 4 * T * np.finfo(float).eps), T
        ix = np.unique(rng.integers(0, T, 7))
        # at given indices (segment sums, not a cumulative sum): the same to rounding
        assert np.max(np.abs(np.stack(areas_numpy(lr, n_pt, lam, eta0, idx=ix)) - got[:, ix]) / scale) < 1e-12


def test_float32_long_schedule():
    T = 10**6
    lr = S.wsd(T, 2e-4, warmup=1000, decay=0.2, final=2e-6, shape="cosine")
    lr = np.concatenate([lr[: T // 2], S.cosine(T - T // 2, 1e-4, warmup=1000)])
    lr = lr.astype(np.float32)
    ref = areas_loop(lr.astype(np.float64), T // 2)  # same (rounded) input, float64 arithmetic
    for method in ("scan", "associative"):
        got = np.stack(cptjax.areas(lr, T // 2, method=method)).astype(np.float64)
        assert got.dtype == np.float64
        scale = np.abs(ref).max(axis=1, keepdims=True)
        err = np.max(np.abs(got - ref) / scale, axis=1)
        assert np.all(err < 1e-5), (method, err)


def test_dtype_kept_and_no_recompile():
    lr32 = jnp.asarray(V2_CPT, jnp.float32)
    a = cptjax.areas(lr32, 100)
    assert all(x.dtype == jnp.float32 for x in a)
    f = jax.jit(lambda lr: cptjax.areas(lr, 100).s2_cpt[-1])
    f(lr32)
    with jax.log_compiles():
        pass
    n0 = f._cache_size()
    f(lr32 * 0.5)
    assert f._cache_size() == n0 == 1


def test_vmap_and_grad():
    lrs = jnp.stack([jnp.asarray(V2_CPT) * s for s in (0.5, 1.0, 2.0)])
    n = jnp.array([100, 2000, 5000])
    batched = jax.vmap(lambda lr, n: cptjax.areas(lr, n))(lrs, n)
    for b in range(3):
        single = cptjax.areas(lrs[b], int(n[b]))
        for x, y in zip(batched, single):
            np.testing.assert_allclose(x[b], y, rtol=1e-13, atol=1e-16)
    g = jax.grad(lambda lam: cptjax.areas(lrs[1], 2000, lam).s2_cpt[-1])(0.999)
    assert np.isfinite(g) and g != 0


def test_batch_input_matches_rows():
    lrs = np.stack([V2_CPT * s for s in (0.5, 1.0, 2.0)])
    n = np.array([100, 2000, 5000])
    for method in ("auto", "associative"):
        batched = cptjax.areas(lrs, n, method=method)
        for b in range(3):
            for x, y in zip(batched, cptjax.areas(lrs[b], int(n[b]))):
                np.testing.assert_allclose(x[b], y, rtol=1e-12, atol=1e-16)


def test_check_grads():
    lr = jnp.asarray(np.random.default_rng(0).uniform(1e-4, 3e-4, 64))

    def f(lr, lam):
        a = cptjax.areas(lr, 20, lam)
        return jnp.stack([a.s1_pt[-1], a.s1_cpt[-1], a.s2_pt[-1], a.s2_cpt[-1]]) @ jnp.array([1., 2., 3., 4.])

    check_grads(f, (lr, 0.99), order=2, modes=["fwd", "rev"], eps=1e-6)
    check_grads(lambda lr, lam: cptjax.areas(lr, 20, lam, method="associative").s2_cpt.sum(),
                (lr, 0.99), order=1, eps=1e-6)


def test_pt_warmup_as_peak():
    lr = S.constant(100, 1.0, warmup=10)
    lit = cptjax.areas(lr, 100)
    pk = cptjax.areas(lr, 100, pt_warmup="peak")
    assert float(lit.s2_pt[-1]) < 0 and float(pk.s2_pt[-1]) == 0.0
    np.testing.assert_array_equal(lit.s1_pt, pk.s1_pt)


@pytest.mark.parametrize("lr,n_pt,needle", [
    ([1e-4, -1e-4], None, "negative LR at step 2"),
    ([1e-4, np.nan], None, "non-finite LR at step 2"),
    ([1e-4, np.inf], None, "non-finite"),
    ([], None, "empty"),
    ([1e-4, 1e-4], 3, "`n_pt`"),
    ([1e-4, 1e-4], -1, "`n_pt`"),
    ([[[1e-4]]], None, "shape (T,)"),
])
def test_bad_input(lr, n_pt, needle):
    with pytest.raises(ValueError) as e:
        cptjax.areas(np.asarray(lr, float), n_pt)
    assert needle in str(e.value)
    with pytest.raises(ValueError):
        cptjax.areas([1e-4], method="magic")


def test_continue_areas_matches_joined():
    from cptjax.laws import continue_areas, pt_state

    pt, cpt = V2_PT[:5000], V2_CPT[:3000]
    lr, n = S.join(pt, cpt)
    full = cptjax.areas(lr, n)
    part = continue_areas(cpt, pt_state(pt))
    for x, y in zip(full, part):
        np.testing.assert_allclose(np.asarray(x)[n:], y, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("eps", [0.1, 0.2])
def test_lr_weighted_s2_matches_a_loop(eps):
    """CPT paper App. J, Eq. 9: S2 = Σ m_i·η_i^ε, split at the transfer, momentum unweighted."""
    lr, n = S.join(S.wsd(3000, 2e-4, warmup=100, decay=0.3, final=0.0), S.cosine(2000, 1e-4, warmup=100))
    lam = 0.999
    m, s2p, s2c = 0.0, 0.0, 0.0
    prev = lr[0]
    out_p, out_c = [], []
    for i, eta in enumerate(lr):
        m = lam * m + (prev - eta)
        prev = eta
        w = m * eta ** eps if eta > 0 else 0.0
        if i < n:
            s2p += w
        else:
            s2c += w
        out_p.append(s2p)
        out_c.append(s2c)
    a = cptjax.areas(lr, n, lam, eps=eps)
    np.testing.assert_allclose(a.s2_pt, out_p, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(a.s2_cpt, out_c, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(cptjax.areas(lr, n, lam, eps=eps, method="associative").s2_cpt, out_c,
                               rtol=1e-9, atol=1e-15)
    from cptjax.laws import continue_areas, pt_state

    c = continue_areas(lr[n:], pt_state(lr[:n], lam, eps=eps), lam, eps=eps)
    np.testing.assert_allclose(c.s2_cpt, np.asarray(out_c)[n:], rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(c.s2_pt, out_p[-1], rtol=1e-12)
    law = cptjax.preset("setting-a").domain.replace(eps=eps)
    back = cptjax.law_from_dict(law.to_dict())
    assert back.eps == eps and float(cptjax.predict(back, lr, n, idx=[lr.size - 1])[0]) == pytest.approx(
        float(law(a.at(jnp.array([lr.size - 1])))[0]), rel=1e-12)
