"""The Python API keeps the command line's promise (issue 22's API class): arbitrary arguments to
the public functions give a finite result or an InputError (a ValueError; InputTypeError, also a
TypeError, for a wrong type) naming the argument — never inf/NaN, never another exception.
Property-based (hypothesis) over each argument's whole range, edge values included."""

import math

import jax
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import cptjax  # noqa: E402
from cptjax import schedules as S  # noqa: E402

jax.config.update("jax_enable_x64", True)
FAST = settings(max_examples=60, deadline=None)
PAIR = cptjax.preset("setting-a")
LR, N = S.join(S.wsd(600, 2e-4, warmup=50, decay=0.2, final=2e-5), S.cosine(300, 1e-4, warmup=20))
PT = S.wsd(600, 2e-4, warmup=50, decay=0.2, final=2e-5)
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, 1.0, -0.0, 1 - 1e-12, 1e308])


def finite_or_input_error(f, names):
    """f() is finite, or raises InputError whose message names one of ``names``."""
    try:
        out = f()
    except cptjax.InputError as e:
        assert any(n in str(e) for n in names), str(e)
        return None
    for x in (out if isinstance(out, tuple) else (out,)):
        assert np.isfinite(np.asarray(x)).all()
    return out


@FAST
@given(ANY_FLOAT)
def test_momentum_decay(lam):
    finite_or_input_error(lambda: cptjax.predict(PAIR.general, LR, N, lam=lam), ["lam"])
    finite_or_input_error(lambda: tuple(cptjax.areas(LR, N, lam)), ["lam"])


@FAST
@given(st.sampled_from(PAIR.general.param_names()), ANY_FLOAT)
def test_law_parameter(name, value):
    law = PAIR.general.replace(**{name: value})
    finite_or_input_error(lambda: cptjax.predict(law, LR, N), ["law"])


@FAST
@given(st.sampled_from(["lr", "eta0", "size"]), ANY_FLOAT)
def test_schedule_and_conditions(what, value):
    if what == "lr":
        lr = LR.copy()
        lr[100] = value
        finite_or_input_error(lambda: cptjax.predict(PAIR.general, lr, N), ["lr", "law"])
    elif what == "eta0":
        finite_or_input_error(lambda: cptjax.predict(PAIR.general, LR, N, eta0=value), ["eta0", "law"])
    else:
        law = cptjax.preset("size")
        finite_or_input_error(lambda: cptjax.predict(law, LR, N, size=value), ["size", "law"])


@settings(max_examples=20, deadline=None, phases=[Phase.explicit, Phase.generate])  # a design is slow to shrink
@given(st.sampled_from(["iterations", "ood", "weights", "max_lr", "learning_rate"]), ANY_FLOAT)
def test_design_arguments(what, value):
    kw = {"iterations": 2, "max_lr": 2e-4}
    weights = [0.5]
    if what == "iterations":
        kw["iterations"] = int(value) if math.isfinite(value) and abs(value) < 5 else value
    elif what == "ood":
        kw["ood"] = (value, 0.5, 0.3)
    elif what == "weights":
        weights = [value]
    else:
        kw[what] = value

    def run():
        plans = cptjax.pareto(PAIR, PT, 100, weights, **kw)
        return tuple(p.objective for p in plans)

    finite_or_input_error(run, [what, "λ1", "weight"])


@pytest.mark.parametrize("bad, kind", [({"L0": 1.0}, cptjax.InputTypeError), ("general.json", cptjax.InputTypeError),
                                       (None, cptjax.InputTypeError)])
def test_a_law_of_the_wrong_type(bad, kind):
    with pytest.raises(kind, match="law"):
        cptjax.predict(bad, LR, N)
    with pytest.raises(kind, match="LawPair"):
        cptjax.design(bad, PT, 100, max_lr=2e-4, iterations=2)


def test_half_precision_and_integer_inputs():
    """bfloat16/float16 schedules are widened (their running sums lost percents); numpy integer
    n_pt and idx work as Python ints."""
    ref = np.asarray(cptjax.predict(PAIR.general, LR, N))
    bf = np.asarray(cptjax.predict(PAIR.general, jax.numpy.asarray(LR, jax.numpy.bfloat16), np.int64(N)))
    assert bf.dtype == np.float64
    assert np.max(np.abs(bf / ref - 1)) < 5e-3  # bfloat16's own rounding of the LRs (was 6%)
    i = np.asarray(cptjax.predict(PAIR.general, LR, np.int64(N), idx=np.array([10, 700], np.int32)))
    assert np.allclose(i, ref[[10, 700]], rtol=1e-12)
    with pytest.raises(cptjax.InputError, match="loss_potential"):
        cptjax.loss_potential(np.r_[PT[:10], np.nan, PT[11:]])
    with pytest.raises(cptjax.InputError, match="n"):
        cptjax.law_draws(PAIR, None, 0)
