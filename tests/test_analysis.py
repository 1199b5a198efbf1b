import numpy as np
import pytest

import cptjax
from cptjax import schedules as S

A = cptjax.preset("setting-a")


def test_loss_potential():
    assert cptjax.loss_potential(S.wsd(1000, 2e-4, decay=0.2, final=2e-5)) == pytest.approx(0.1)
    assert cptjax.loss_potential(S.constant(10, 1e-3)) == 1.0


def test_turning_length_against_direct_scan():
    pt = S.constant(10000, 2e-4, warmup=500)  # under-trained, unannealed: pre-critical
    cpt = S.cosine(60000, 2e-4, warmup=500)
    t = cptjax.turning_length(A, pt, cpt, weight_general=1.0)
    lr, n = S.join(pt, cpt)
    g = np.asarray(cptjax.predict(A, lr, n).general)
    assert np.isfinite(t)
    k = int(t)
    assert g[n - 1 + k] <= g[n - 1] < g[n - 2 + k]  # first step back at/below the start
    info = cptjax.critical_point(A, pt, cpt)
    assert info["pre_critical"]
    # a long, fully annealed PT model under a strong shift never turns back (Setting B)
    t_b = cptjax.turning_length(cptjax.preset("setting-b"), S.wsd(40000, 2e-4, warmup=500, decay=0.2),
                                S.cosine(20000, 2e-4, warmup=500))
    assert t_b == float("inf")


def test_optimal_vs_weight_directions():
    w = [0.2, 0.5, 0.9]
    peak = cptjax.optimal_vs_weight(A, w, what="peak", cpt_steps=5000)
    assert peak["optimum"][0] >= peak["optimum"][1] >= peak["optimum"][2]
    assert peak["optimum"][0] > peak["optimum"][2]
    lp = cptjax.optimal_vs_weight(A, [0.0, 1.0], what="lp")
    d = np.asarray(lp["domain"])
    assert d[-1] < d[0]  # higher loss potential, lower final domain loss
    assert lp["optimum"][0] > lp["optimum"][1]  # small λ1 keeps potential (paper Fig. 8a)
    rep = cptjax.optimal_vs_weight(cptjax.preset("replay"), w, what="replay", cpt_steps=5000)
    assert rep["optimum"][2] >= rep["optimum"][0]
    with pytest.raises(ValueError, match="needs a law with a replay"):
        cptjax.optimal_vs_weight(A, w, what="replay")
    with pytest.raises(ValueError, match="`what`"):
        cptjax.optimal_vs_weight(A, w, what="steps")
