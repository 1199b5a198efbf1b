import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import cptjax
from cptjax import schedules as S
from reference import areas_loop, cpt_loop, mpl_cpt_naive, mpl_naive, shift

A_GEN = (3.057, 0.490, 0.497, 0.299, 0.298, 0.366, 28, 0.189)
A_DOM = (3.024, 0.412, 0.677, 0.278, 0.324, -0.666, 5662, 0.146)


def test_v1_v2_reference_values():
    law = cptjax.preset("setting-a")
    lr, n = S.join(S.constant(20000, 2e-4), S.constant(20000, 2e-4))
    p = cptjax.predict(law, lr, n, idx=[19999, 39999])
    np.testing.assert_allclose(p.general, [3.30302105, 3.44754685], rtol=1e-8)
    np.testing.assert_allclose(p.domain, [3.18517683, 2.61285165], rtol=1e-8)
    lr, n = S.join(S.wsd(40000, 2e-4, warmup=500, decay=0.2, final=2e-5),
                   S.cosine(10000, 1e-4, warmup=500, final=0.0))
    for method in ("scan", "associative"):
        a = cptjax.areas(lr, n, method=method).at(jnp.array([39999, 40499, 49999]))
        np.testing.assert_allclose(law.general(a), [3.25289648, 3.28894020, 3.38233240], rtol=1e-8)
        np.testing.assert_allclose(law.domain(a), [3.14365479, 2.80165702, 2.66938378], rtol=1e-8)


def _rand_case(seed):
    rng = np.random.default_rng(seed)
    T = int(rng.integers(50, 1500))
    lr = np.concatenate([S.wsd(T, 3e-4, warmup=T // 20, decay=rng.uniform(0, 0.5), final=3e-5),
                         rng.uniform(1e-5, 3e-4, int(rng.integers(1, 800)))])
    return rng, lr, T


@pytest.mark.parametrize("seed", range(5))
def test_laws_match_loop(seed):
    rng, lr, n_pt = _rand_case(seed)
    a = areas_loop(lr, n_pt)
    ar = cptjax.areas(lr, n_pt)
    s1, s1c, s2p, s2c = a
    # Eq. 4
    np.testing.assert_allclose(cptjax.CPTLaw(*A_DOM)(ar), cpt_loop(A_DOM, a), rtol=1e-12)
    # Eq. 1 on the joined areas
    pt = cptjax.PTLaw(3.0, 0.5, 0.5, 0.3)
    np.testing.assert_allclose(pt(ar), 3.0 + 0.5 * (s1 + s1c) ** -0.5 - 0.3 * (s2p + s2c), rtol=1e-12)
    # Eq. 8, both targets
    r = float(rng.uniform(0, 1))
    p8 = (3.067, 0.480, 0.510, 0.280, 0.263, 0.276, 99.35, 0.04, 0.055, 3.238)
    base = p8[0] + p8[1] * (s1 + s1c) ** -p8[2] - p8[3] * s2p
    g = base - p8[4] * s2c * np.exp(p8[8] * r) + shift(p8[5], p8[6], p8[7], s1c) * (1 - np.exp(-p8[9] * (1 - r)))
    d = base - p8[4] * s2c * np.exp(p8[8] * (1 - r)) + shift(p8[5], p8[6], p8[7], s1c) * (np.exp(p8[9] * (1 - r)) - 1)
    np.testing.assert_allclose(cptjax.ReplayCPTLaw(*p8, target="general", form="printed")(ar, replay=r), g, rtol=1e-12)
    np.testing.assert_allclose(cptjax.ReplayCPTLaw(*p8, target="domain", form="printed")(ar, replay=r), d, rtol=1e-12)
    # Eq. 7
    p7 = (1.829, 0.504, 0.537, 0.090, 0.103, 0.278, 12.0, 0.359, 3.072, 0.235, 0.199, 0.195)
    N = float(rng.uniform(50, 2000))
    ref7 = (p7[0] + p7[1] * (s1 + s1c) ** -p7[2] - p7[3] * s2p * N ** p7[9] - p7[4] * s2c * N ** p7[10]
            + shift(p7[5], p7[6], p7[7], s1c) + p7[8] * N ** -p7[11])
    np.testing.assert_allclose(cptjax.SizeCPTLaw(*p7)(ar, size=N), ref7, rtol=1e-12)
    # open model
    po = (2.4, 0.17, 0.53, 0.31, -0.79, 17.0, 0.5, 0.085)
    refo = po[0] + po[1] * (s1c + po[7]) ** -po[2] - po[3] * s2c + shift(po[4], po[5], po[6], s1c)
    np.testing.assert_allclose(cptjax.OpenCPTLaw(*po)(ar), refo, rtol=1e-12)
    # MPL at a few steps against the O(T^2) definition
    law = cptjax.preset("mpl-100m")
    t = np.sort(rng.choice(lr.size, 6, replace=False))
    p = tuple(law.to_dict()[k] for k in law.param_names())
    np.testing.assert_allclose(law(lr, t), mpl_naive(p, lr, t), rtol=1e-11)
    warm = cptjax.warmup_end(lr)
    np.testing.assert_allclose(law(lr, t, warmup=warm), mpl_naive(p, lr, t, skip_warmup=True), rtol=1e-11)


def test_law_grads_params_and_schedule():
    lr = jnp.asarray(S.cosine(300, 2e-4, warmup=20, final=2e-5))
    a = cptjax.areas(lr, 150)
    law = cptjax.CPTLaw(*map(float, A_DOM))
    check_grads(lambda l: l(a).sum(), (law,), order=2, modes=["rev"], eps=1e-6)
    check_grads(lambda x: law(cptjax.areas(x, 150)).sum(), (lr,), order=1, modes=["rev"], eps=1e-9)
    rep = cptjax.preset("replay").domain
    check_grads(lambda l, r: l(a, replay=r).sum(), (rep, 0.3), order=1, eps=1e-6)
    mpl = cptjax.preset("mpl-25m")
    check_grads(lambda l: l(lr, jnp.arange(100, 300, 50), warmup=19).sum(), (mpl,), order=1, modes=["rev"], eps=1e-6)


def test_vmap_over_parameters_and_gather():
    lr, n = S.join(S.constant(2000, 2e-4), S.cosine(1000, 1e-4))
    a = cptjax.areas(lr, n)
    laws = jax.tree.map(lambda *x: jnp.array(x), *[cptjax.CPTLaw(*A_DOM).replace(B=b) for b in (-0.1, -0.5, -1.0)])
    out = jax.vmap(lambda l: l(a.at(jnp.array([1999, 2999]))))(laws)
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out[1], cptjax.CPTLaw(*A_DOM).replace(B=-0.5)(a)[jnp.array([1999, 2999])])
    assert out[0, 1] > out[1, 1] > out[2, 1]  # a stronger (more negative) shift lowers the domain loss


def test_jit_no_recompile():
    f = jax.jit(lambda law, lr: cptjax.predict(law, lr, 100, idx=jnp.array([150, 199])))
    law = cptjax.preset("setting-b")
    lr = jnp.asarray(S.cosine(200, 2e-4))
    y = f(law, lr)
    f(law, lr * 0.9)
    assert f._cache_size() == 1 and y.general.dtype == jnp.float64


def test_mpl_memory_is_chunked():
    lr = jnp.asarray(S.wsd(20000, 3e-4, warmup=100, decay=0.2, final=3e-5))
    law = cptjax.preset("mpl-100m")
    hlo = jax.jit(lambda lr: law(lr, warmup=100, chunk=64)).lower(lr).compile().memory_analysis()
    if hlo is not None:  # O(chunk*T) temporaries, far below the 3.2 GB an O(T^2) matrix would need
        assert hlo.temp_size_in_bytes < 100e6


def test_mpl_upstream_optimised_schedule_losses(data_dir):
    """Upstream MPL printed the final predicted loss of its optimised schedules (logs/*.log). Its
    optimiser works on the post-warmup schedule (S_W added, the warmup's decrements not summed),
    unlike its fitting code, which sums them (cptjax's default, test_realdata): reproduced with
    ``warmup=warmup_end(lr)``. Upstream's two conventions differ by ~0.11 in predicted loss."""
    expected = {"25": 3.1496773780559524, "100": 2.794136776132377, "400": 2.533218602559499}
    for size, final in expected.items():
        tail = np.load(data_dir / "MultiPowerLaw" / "optimized_schedules" / f"{size}.npy")
        lr = np.concatenate([np.linspace(0, 3e-4, 2160), tail])  # upstream warmup
        law = cptjax.preset(f"mpl-{size}m")
        got = float(law(lr, jnp.array([lr.size - 1]), warmup=cptjax.warmup_end(lr))[0])
        assert got == pytest.approx(final, abs=2e-5), size


def test_predict_errors():
    lr = S.constant(10, 1e-4)
    with pytest.raises(ValueError, match="needs `replay`"):
        cptjax.predict(cptjax.preset("replay"), lr, 5)
    with pytest.raises(ValueError, match="does not take it"):
        cptjax.predict(cptjax.preset("setting-a"), lr, 5, replay=0.2)
    with pytest.raises(ValueError, match=r"`replay` must be a ratio"):
        cptjax.predict(cptjax.preset("replay"), lr, 5, replay=1.5)
    with pytest.raises(ValueError, match="`idx`"):
        cptjax.predict(cptjax.preset("setting-a"), lr, 5, idx=[10])
    with pytest.raises(ValueError, match="unknown law"):
        cptjax.law_from_dict({"law": "zzz"})
    with pytest.raises(ValueError, match="missing"):
        cptjax.law_from_dict({"law": "pt", "L0": 1})


def test_json_round_trip():
    pair = cptjax.preset("replay")
    back = cptjax.law_from_dict(pair.to_dict())
    assert back == pair and back.domain.target == "domain"


MPL_CPT = cptjax.MPLCPTLaw(2.5, 0.5, 0.5, 400.0, 300.0, 0.2, 100.0, 0.5, 2.0, 0.6, 0.6)


def test_mpl_cpt_law_matches_definition_and_its_design_continuation():
    """MPLCPTLaw against a loop from the definition (1e-12 relative), and the design's
    continuation from a PT summary (only the PT's nonzero decrements kept) equal to the law on
    the joined schedule, at CPT steps and at PT steps."""
    pt = S.wsd(1500, 3e-4, warmup=100, decay=0.2, final=3e-5)
    cpt = S.cosine(700, 2e-4, warmup=50, final=0.0)
    lr, n = S.join(pt, cpt)
    t = np.arange(0, lr.size, 23)
    got = np.asarray(MPL_CPT(lr, t, n_pt=n))
    p = [float(getattr(MPL_CPT, k)) for k in MPL_CPT.param_names()]
    np.testing.assert_allclose(got, mpl_cpt_naive(p, lr, n, t), rtol=1e-12)
    full = np.asarray(MPL_CPT(lr, n_pt=n))
    h = MPL_CPT.pt_state(pt)
    np.testing.assert_allclose(np.asarray(MPL_CPT.continue_at(jnp.asarray(cpt), h)), full[n:], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(MPL_CPT.continue_at(None, h, np.arange(n))), full[:n], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(cptjax.predict(MPL_CPT, lr, n, idx=t)), got, rtol=1e-12)


def test_mpl_cpt_law_gives_zero_lr_steps_no_credit():
    """Steps at LR 0 leave the MPL-term law's loss unchanged (to 1e-10: cumsum rounding), where
    Eq. 4's momentum keeps lowering it (by > 0.01 here): the dead-tail flaw of issue 13."""
    pt = S.wsd(1500, 3e-4, warmup=100, decay=0.2, final=3e-5)
    cpt = np.where(np.arange(2000) < 1200, 2e-4, 0.0)
    lr, n = S.join(pt, cpt)
    tail = np.arange(n + 1200, lr.size)
    y = np.asarray(MPL_CPT(lr, tail, n_pt=n))
    assert np.ptp(y) < 1e-10
    eq4 = np.asarray(cptjax.predict(cptjax.preset("setting-a").general, lr, n, idx=tail))
    assert eq4[0] - eq4[-1] > 0.01


def test_mpl_cpt_design_continuation_gradient_equals_the_laws():
    """The design differentiates the continuation (PT summary + CPT schedule) at the last step:
    its gradient with respect to the CPT schedule equals the law's on the joined schedule, also
    for a schedule ending at LR 0 (the η floor keeps both finite and equal)."""
    pt = S.wsd(800, 3e-4, warmup=50, decay=0.2, final=3e-5)
    h = MPL_CPT.pt_state(pt)
    cpt = jnp.asarray(S.wsd(300, 2e-4, warmup=20, decay=0.3, final=0.0))
    g1 = jax.grad(lambda c: MPL_CPT.continue_at(c, h, jnp.array([299]))[0])(cpt)
    joined = lambda c: MPL_CPT(jnp.concatenate([jnp.asarray(pt), c]), jnp.array([1099]), n_pt=800)[0]
    g2 = jax.grad(joined)(cpt)
    assert np.all(np.isfinite(g1))
    np.testing.assert_allclose(np.asarray(g1), np.asarray(g2), rtol=1e-9, atol=1e-9)
