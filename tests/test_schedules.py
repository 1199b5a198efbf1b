import numpy as np
import pytest

import cptjax
from cptjax import schedules as S


def test_warmup_and_wsd_definition():
    lr = S.wsd(40000, 2e-4, warmup=500, decay=0.2, final=2e-5)
    i = np.arange(1, 40001)
    ref = np.where(i <= 500, 2e-4 * i / 500, 2e-4)
    ref = np.where(i > 32000, 2e-4 + (2e-5 - 2e-4) * (i - 32000) / 8000, ref)
    np.testing.assert_allclose(lr, ref, rtol=1e-14, atol=0)
    assert lr[-1] == pytest.approx(2e-5, rel=1e-15) and lr[31999] == 2e-4


@pytest.mark.parametrize("shape", ["linear", "exp", "cosine", "sqrt"])
def test_wsd_shapes_hit_final(shape):
    lr = S.wsd(1000, 1e-3, warmup=10, decay=0.3, final=1e-5, shape=shape)
    assert lr[-1] == pytest.approx(1e-5, rel=1e-12)
    assert np.all(lr[:700][10:] == 1e-3)
    assert np.all(np.diff(lr[699:]) <= 0)


def test_cosine_matches_v2_cpt():
    lr = S.cosine(10000, 1e-4, warmup=500, final=0.0)
    t = np.arange(501, 10001)
    np.testing.assert_allclose(lr[500:], 1e-4 * 0.5 * (1 + np.cos(np.pi * (t - 500) / 9500)), atol=1e-20)
    np.testing.assert_allclose(lr[:500], 1e-4 * np.arange(1, 501) / 500, rtol=1e-15)


def test_others():
    np.testing.assert_allclose(S.linear(5, 1.0, final=0.5), [0.9, 0.8, 0.7, 0.6, 0.5])
    ms = S.multistep(10, 1.0)
    np.testing.assert_allclose(ms, [1] * 8 + [0.316, 0.1])
    inv = S.inverse_sqrt(6, 1.0, warmup=2)
    np.testing.assert_allclose(inv, [0.5, 1.0, 1.0, np.sqrt(2 / 3), np.sqrt(2 / 4), np.sqrt(2 / 5)])
    assert S.constant(3, 2.0).tolist() == [2.0, 2.0, 2.0]
    lr, n = S.join([1, 2], [3])
    assert n == 2 and lr.tolist() == [1, 2, 3]


def test_parse_and_file(tmp_path):
    a = S.parse("wsd(steps=40000,peak=2e-4,warmup=500,decay=0.2,final=2e-5)")
    np.testing.assert_array_equal(a, S.wsd(40000, 2e-4, 500, 0.2, 2e-5))
    b = S.parse("wsd(steps=100, peak=1e-3, decay=0.1, final=1e-5, shape=exp)")
    assert b[-1] == pytest.approx(1e-5)
    np.save(tmp_path / "lr.npy", a[:10])
    np.testing.assert_array_equal(S.parse(f"file({tmp_path / 'lr.npy'})"), a[:10])
    (tmp_path / "lr.csv").write_text("step,lr\n1,0.1\n2,0.2\n")
    np.testing.assert_array_equal(S.parse(f"file({tmp_path / 'lr.csv'})"), [0.1, 0.2])


@pytest.mark.parametrize("text,needle", [
    ("wsd(steps=10,peak=-1)", "`peak`"),
    ("wsd(steps=10,peak=1,decay=2)", "`decay`"),
    ("cosine(steps=0,peak=1)", "`steps`"),
    ("cosine(steps=10,peak=1,warmup=10)", "`warmup`"),
    ("triangle(steps=10,peak=1)", "unknown schedule 'triangle'"),
    ("cosine(steps=10 peak=1)", "bad value"),
    ("cosine(10, peak=1)", "bad argument"),
    ("cosine steps=10", "expected NAME"),
    ("cosine(steps=10,peak=1,foo=2)", "foo"),
    ("wsd(steps=10,peak=1,shape=zigzag)", "`shape`"),
    ("wsd(steps=10,peak=1,shape=exp)", "final"),
    ("file(/nonexistent/lr.npy)", "no such file"),
])
def test_bad_specs(text, needle):
    with pytest.raises(ValueError, match=None) as e:
        S.parse(text)
    assert needle in str(e.value)


def test_file_schedule_refuses_special_files(tmp_path):
    """A FIFO (which would never end) or a folder as a schedule file: a clear error, at once."""
    import os

    fifo = tmp_path / "lr.csv"
    os.mkfifo(fifo)
    with pytest.raises(cptjax.InputError, match="regular file|not a"):
        cptjax.schedules.parse(f"file({fifo})")
    deep = tmp_path / "deep.json"
    deep.write_text('{"schedule": ' + "[" * 100000 + "]" * 100000 + "}")
    with pytest.raises(cptjax.InputError, match="deep.json"):
        cptjax.schedules.parse(f"file({deep})")
