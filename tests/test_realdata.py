"""Real data: Eq. 1 and MPL fitted on the MultiPowerLaw training split, predicting the six held-out
curves (experiments/realdata.py writes the full table)."""

import numpy as np
import pytest

import cptjax
from experiments.datasets import MPL_TEST, MPL_TRAIN, mpl_run


@pytest.mark.data
@pytest.mark.parametrize("size,kinds", [("25", ("pt",)), ("100", ("pt", "mpl")), ("400", ("pt",))])
def test_multipowerlaw_split(data_dir, size, kinds):
    train = [mpl_run(data_dir, size, n) for n in MPL_TRAIN]
    for kind in kinds:
        res = cptjax.fit(train, kind, "loss")
        errs = []
        for name in MPL_TEST:
            run = mpl_run(data_dir, size, name)
            ix, y = run.points("loss")
            p = np.asarray(cptjax.predict(res.law, run.lr, idx=ix))
            errs.append(np.abs(p - y) / y)
        mean = np.mean([e.mean() for e in errs])
        worst = max(e.max() for e in errs)
        assert np.isfinite(mean) and mean < 0.01 and worst < 0.03, (kind, mean, worst)


@pytest.mark.data
@pytest.mark.parametrize("size,published", [("25", 0.00110), ("100", 0.00142), ("400", 0.00168)])
def test_published_mpl_parameters_reproduce_the_authors_errors(data_dir, size, published):
    """The MPL authors' own parameters (upstream logs/<size>.log) on their six test curves give
    their published mean relative error (logs: PredE, 3 significant digits) under cptjax's MPL:
    the law is theirs (every decrement summed, the warmup's included; measured 0.111% / 0.143% /
    0.168%). Skipping the warmup's decrements would give 3.2-5.4%."""
    law = cptjax.preset(f"mpl-{size}m")
    errs = []
    for name in MPL_TEST:
        run = mpl_run(data_dir, size, name)
        ix, y = run.points("loss")
        errs.append(np.mean(np.abs(np.asarray(cptjax.predict(law, run.lr, idx=ix)) - y) / y))
    assert abs(np.mean(errs) - published) < 0.00003, np.mean(errs)
