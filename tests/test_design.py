import jax.numpy as jnp
import jax
import numpy as np
import pytest

import cptjax
from cptjax import schedules as S

PT = S.wsd(20000, 2e-4, warmup=500, decay=0.2, final=2e-5)


@pytest.fixture(scope="module")
def plan():
    return cptjax.design(cptjax.preset("setting-a"), PT, 2000, max_lr=2e-4, weight_general=0.5,
                         warmup=100, iterations=800)


def test_plan_objective_recomputed_and_beats_baselines(plan):
    sched = np.asarray(cptjax.optax_schedule(plan)(jnp.arange(2000)))  # the exported schedule
    np.testing.assert_array_equal(sched, plan.schedule)
    lr, n = S.join(PT, sched)
    p = cptjax.predict(cptjax.preset("setting-a"), lr, n, idx=[lr.size - 1])
    obj = 0.5 * float(p.general[0]) + 0.5 * float(p.domain[0])
    assert obj == pytest.approx(plan.objective, rel=1e-6)
    assert plan.objective <= min(b["objective"] for b in plan.baselines.values())
    assert np.all(plan.schedule >= 0) and np.all(plan.schedule <= 2e-4 * (1 + 1e-12))
    assert np.all(np.diff(plan.schedule[100:]) <= 1e-15)  # monotone after the re-warmup


def test_pt_only_law_gives_wsd_like_schedule():
    """PT-only law (general = domain = the MPL-data Eq. 1 fit), fixed budget: hold near max_lr,
    anneal at the end."""
    law = cptjax.PTLaw(2.6933, 0.5534, 0.5244, 0.4754)
    pair = cptjax.LawPair(law, law)
    plan = cptjax.design(pair, S.constant(2160, 3e-4, warmup=2160 - 1), 21840, max_lr=3e-4,
                         iterations=1500, knots=64)
    s = plan.schedule
    assert s[: s.size // 2].min() > 0.9 * 3e-4
    assert s[-1] < 0.1 * 3e-4
    assert plan.objective <= plan.baselines["wsd"]["objective"]


def test_paper_findings_peak_lr_and_replay_vs_weight():
    """Higher λ1 -> lower optimal CPT peak LR (Setting A, cosine CPT grid) and higher replay."""
    law = cptjax.preset("setting-a")
    peaks = []
    for w in (0.2, 0.9):
        b = cptjax.baselines(law, PT, 5000, max_lr=2e-4, weight_general=w, warmup=100)["cosine"]
        peaks.append(float(b["name"].split("=")[1].rstrip(")")))
    assert peaks[1] < peaks[0]
    rep = cptjax.preset("replay")
    rs = [cptjax.baselines(rep, PT, 5000, max_lr=2e-4, weight_general=w, replay="free",
                           warmup=100)["cosine"]["replay"] for w in (0.2, 0.9)]
    assert rs[1] >= rs[0]


def test_higher_loss_potential_lowers_domain_loss():
    law = cptjax.preset("setting-a")
    out = []
    for lp in (0.1, 0.5, 1.0):
        pt = S.wsd(40000, 2e-4, warmup=500, decay=0.2, final=2e-4 * lp) if lp < 1 else S.constant(40000, 2e-4, warmup=500)
        cpt = S.linear(10000, 2e-4 * lp, final=0.0)
        out.append(float(cptjax.evaluate(law, pt, cpt)[2]))
    assert out[0] > out[1] > out[2]


@pytest.mark.parametrize("kw,needle", [
    (dict(max_lr=0.0), "`max_lr`"),
    (dict(max_lr=2e-4, weight_general=1.5), "weight_general"),
    (dict(max_lr=2e-4, replay="free"), "replay='free' needs a law"),
    (dict(max_lr=2e-4, warmup=5000), "`warmup`"),
    (dict(max_lr=2e-4, data_range=10000), "longer than the law's data range"),
    (dict(max_lr=2e-4, last_k=(0, 10)), "horizons"),
    (dict(max_lr=2e-4, ood=(1.0, 0.5)), "`ood`"),
])
def test_bad_input(kw, needle):
    with pytest.raises(ValueError) as e:
        cptjax.design(cptjax.preset("setting-a"), PT, 1000, **kw)
    assert needle in str(e.value)


def test_horizons_and_ood_objective():
    law = cptjax.preset("setting-a")
    stack = (-0.546, 1.853, 0.5)  # StackExchange (Fig. 21), half of the objective
    plan = cptjax.design(law, PT, 1000, max_lr=2e-4, weight_general=0.5, last_k=(500, 1000),
                         ood=stack, iterations=300)
    lr, n = S.join(PT, plan.schedule)
    p = cptjax.predict(law, lr, n, idx=[n + 499, n + 999])
    g, d = float(np.mean(p.general)), float(np.mean(p.domain))
    wg, wd = 0.5 * 0.5 + 0.5 * -0.546, 0.5 * 0.5 + 0.5 * 1.853
    assert plan.objective == pytest.approx(wg * g + wd * d, rel=1e-9)
    assert plan.objective <= min(b["objective"] for b in plan.baselines.values())


def test_wsd_shape_respects_every_constraint_exactly():
    """The default plan shape: non-increasing after the re-warmup, at most max_lr, a cooldown of
    at least max(2/(1 − λ), 10% of the budget) steps, the final LR reached only at the last step,
    and no cliff: no step drops by more than the cooldown's steepest allowed ramp."""
    law = cptjax.preset("setting-a")
    for w in (0.2, 0.5):
        plan = cptjax.design(law, PT, 3000, max_lr=2e-4, weight_general=w, warmup=100, iterations=300)
        s = plan.schedule[100:]
        assert plan.shape == "wsd" and s.max() <= 2e-4 * (1 + 1e-12)
        assert np.all(np.diff(s) <= 1e-15)  # non-increasing
        assert s[-1] == pytest.approx(0.0, abs=1e-15) and np.all(s[:-1] > 0)  # lowest only at the end
        cool = np.flatnonzero(s < s[0] * (1 - 1e-9))
        assert cool.size >= min(2900 - 1, max(2000, 300)) - 1  # cooldown length (2/(1-0.999) = 2000)
        # q ≤ 2: one step of a cooldown of L steps falls by at most 2/L of the peak (ramp, no cliff).
        assert np.max(-np.diff(s)) <= 2.0 * s[0] / cool.size * 1.01
        d = plan.diagnostics
        assert d["share_below_1pct_of_peak"] < 0.1 and d["gain_vs_best_baseline"] >= 0


def test_free_shape_shows_the_dead_tail():
    """What the law alone prefers (shape='free'): hold, drop, then many steps at ~zero LR —
    reported by the diagnostics, which is why it is not the default."""
    law = cptjax.preset("setting-a")
    plan = cptjax.design(law, PT, 3000, max_lr=2e-4, weight_general=0.2, warmup=100, shape="free",
                         iterations=300)
    assert plan.diagnostics["share_below_1pct_of_peak"] > 0.1


def _cov(law, rel=0.02):
    x = np.array([abs(float(getattr(law, n))) for n in law.param_names()])
    return np.diag((rel * x) ** 2)


def test_robust_objective_with_one_draw_equals_the_plain_one():
    law = cptjax.preset("setting-a")
    one = cptjax.law_draws(law, (None, None), n=1)
    kw = dict(max_lr=2e-4, weight_general=0.5, warmup=100, iterations=200)
    a = cptjax.design(law, PT, 2000, **kw)
    b = cptjax.design(law, PT, 2000, draws=one, **kw)
    np.testing.assert_allclose(b.schedule, a.schedule, rtol=1e-9, atol=1e-15)
    assert b.objective == pytest.approx(a.objective, rel=1e-12)


def test_law_draws_follow_the_covariance():
    law = cptjax.preset("setting-a")
    covs = (_cov(law.general), _cov(law.domain))
    d = cptjax.law_draws(law, covs, n=4000, seed=1)
    for l, c in zip(d, covs):
        x = np.stack([np.asarray(getattr(l, n)) for n in l.param_names()], 1)
        emp = np.cov(x.T)  # log-normal for positive parameters: the same covariance to first order
        np.testing.assert_allclose(np.diag(emp), np.diag(c), rtol=0.1)  # sampling error ~ 2.2%
        corr = emp / np.sqrt(np.outer(np.diag(emp), np.diag(emp)))
        assert np.max(np.abs(corr - np.eye(len(c)))) < 0.1  # independent, as drawn


def test_gain_interval_covers_the_true_gain():
    """Laws drawn from a known covariance: the 95% gain interval computed from draws around the
    fitted law covers the gain under the true law in >= 80% of 60 seeds. (The draws are centred
    on a fitted law that is itself one draw from the truth, so the expected coverage lies between
    P(|N(0, 2)| <= 1.96) = 83% and 95%; measured over 120 seeds: 90%.)"""
    law = cptjax.preset("setting-a")
    covs = (_cov(law.general, 0.03), _cov(law.domain, 0.03))
    plan = S.wsd(2000, 2e-4, warmup=100, decay=0.3)
    base = S.cosine(2000, 1e-4, warmup=100)
    hits, n = 0, 60
    for seed in range(n):
        truth = jax.tree.map(lambda x: x[0], cptjax.law_draws(law, covs, n=1, seed=1000 + seed))
        true_gain = (float(cptjax.evaluate(truth, PT, base)[0]) - float(cptjax.evaluate(truth, PT, plan)[0]))
        # the analyst only sees a law fitted near the truth: centre the draws on a second draw
        fitted = jax.tree.map(lambda x: x[0], cptjax.law_draws(truth, covs, n=1, seed=5000 + seed))
        r = cptjax.compare(fitted, PT, {"plan": plan, "base": base}, draws=cptjax.law_draws(fitted, covs, 400, seed),
                           reference=("plan", "base"), variants=())
        hits += r["gain"]["lo95"] <= true_gain <= r["gain"]["hi95"]
    assert hits >= 0.8 * n, hits


def test_mpl_term_law_design_free_plan_has_no_dead_tail():
    """With the MPL annealing term (cpt-mpl) the design evaluates the law only at the objective's
    step; the reported objective equals the law on the joined schedule (1e-9), the plan beats its
    baselines, and even the free-form plan (under Eq. 4 at the defaults: 39% of the budget at
    ~zero LR, issue 13) keeps < 1% of its steps below 1% of its peak."""
    g = cptjax.MPLCPTLaw(2.5, 0.5, 0.5, 400.0, 300.0, 0.2, 100.0, 0.5, 2.0, 0.6, 0.6)
    law = cptjax.LawPair(g, g.replace(L0=2.8, C2=500.0, B=-0.6))
    pt = S.wsd(3000, 2e-4, warmup=100, decay=0.2, final=2e-5)
    plan = cptjax.design(law, pt, 1500, max_lr=2e-4, warmup=50, iterations=400)
    free = cptjax.design(law, pt, 1500, max_lr=2e-4, warmup=50, iterations=400, shape="free")
    lr, n = S.join(pt, plan.schedule)
    want = 0.5 * sum(float(l(lr, [lr.size - 1], n_pt=n)[0]) for l in law)
    assert plan.objective == pytest.approx(want, rel=1e-9)
    assert plan.objective <= min(b["objective"] for b in plan.baselines.values())
    assert np.asarray(plan.curves.general).shape == (4500,)
    assert free.diagnostics["share_below_1pct_of_peak"] < 0.01


def test_peak_starts_find_the_low_peak_basin():
    """Setting A at the CLI defaults (40K-step WSD PT, 10 000 CPT steps, max LR 2e-4): the WSD-family
    objective has a local optimum at the max LR (3.02443) and its best plans near 10% of it; from
    one start at 95% the search ended there and lost to cosine(peak=2e-5) (3.02398). Starting every
    weight from several peaks (PEAK_STARTS) finds a plan that beats every baseline."""
    pt = S.parse("wsd(steps=40000,peak=2e-4,warmup=500,decay=0.2,final=2e-5)")
    plan = cptjax.design(cptjax.preset("setting-a"), pt, 10000, max_lr=2e-4, iterations=1000)
    best = min(b["objective"] for b in plan.baselines.values())
    assert plan.source == "gradient" and plan.objective < best
    assert plan.schedule.max() < 0.5 * 2e-4


def test_cosine_family_plan_is_a_cosine_with_its_own_final_lr():
    """shape='cosine': the plan is exactly a cosine from its peak to its final LR (free, here
    chosen by the law), never worse than its baselines."""
    plan = cptjax.design(cptjax.preset("setting-a"), PT, 2000, max_lr=2e-4, warmup=100, shape="cosine",
                         iterations=400)
    s = plan.schedule[100:]
    peak, end = s[0], s[-1]
    v = np.arange(s.size) / (s.size - 1)
    if plan.source == "gradient":
        np.testing.assert_allclose(s, end + (peak - end) * 0.5 * (1 + np.cos(np.pi * v)), rtol=1e-9, atol=1e-15)
        assert 0 <= end < peak <= 2e-4 * (1 + 1e-12)
    assert plan.objective <= min(b["objective"] for b in plan.baselines.values())
