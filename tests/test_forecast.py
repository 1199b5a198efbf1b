"""The forecaster on synthetic logs from Eq. 1 with known parameters (plus 0.1% noise): the
forecast of each alternative future recovers the true law's loss within its band, the cooldown
start table finds the true best start, and C's source (log, reference, prior) is said."""

import json

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)
import cptjax  # noqa: E402
from cptjax import schedules as S  # noqa: E402

from cptjax.forecasting._realized import RealizedLaw, fit_realized, realized_annealing  # noqa: E402

PARAMS = dict(L0=2.4, A=0.55, alpha=0.5, C=0.45)
TRUE = cptjax.PTLaw(**PARAMS)
# the same parameters in the realized law (the default forecast law); each test runs with the law
# its logs are drawn from: "eq1" (Eq. 1) or "realized"
LAWS = {"eq1": TRUE, "realized": RealizedLaw(**PARAMS)}
PEAK, T, W = 3e-4, 20000, 500


def loss_at(law, lr, idx):
    if isinstance(law, RealizedLaw):
        return law.loss(lr, idx)
    return np.asarray(cptjax.predict(law, lr, idx=idx))


def log_of(lr, upto, rng, every=100, noise=0.001, law=TRUE):
    steps = np.arange(every, upto + 1, every)
    y = loss_at(law, lr, steps - 1) * np.exp(noise * rng.standard_normal(steps.size))
    return cptjax.Run("log", np.asarray(lr[:max(upto, steps[-1])]), upto, steps, {"loss": y})


def truth(lr, law=TRUE):
    return float(loss_at(law, lr, [lr.size - 1])[0])


@pytest.mark.parametrize("form", ["eq1", "realized"])
def test_forecast_with_a_reference_run_recovers_the_truth(form):
    rng = np.random.default_rng(0)
    law = LAWS[form]
    const = S.constant(T, PEAK, warmup=W)
    log = log_of(const, 15000, rng, law=law)
    ref = log_of(S.cosine(T, PEAK, warmup=W, final=0.1 * PEAK), T, rng, law=law)
    fc = cptjax.forecast(log, budget=T, reference=[ref], cooldown="linear", final=0.0, anneal=form)
    truth_ = lambda lr: truth(lr, law)  # noqa: E731
    assert fc.source == "reference" and fc.step == 15000
    assert isinstance(fc.law, RealizedLaw) == (form == "realized")
    by = {a["name"].split(" (")[0]: a for a in fc.alternatives}
    # cool down now over 20% of the budget (4000 steps, linear to 0)
    now = np.concatenate([const[:15000], S.wsd(4000, PEAK, decay=1.0, final=0.0)])
    a = by["cool down now"]
    assert a["end"] == 19000
    assert abs(a["loss"] - truth_(now)) / truth_(now) < 0.002
    assert a["lo"] <= truth_(now) <= a["hi"]
    # the table: starts from 15000 to 19999; each row against the truth, and the best start
    true_rows = []
    for r in fc.table:
        k = r["start"]
        lr = np.concatenate([const[:15000], np.full(k - 15000, PEAK), S.wsd(T - k, PEAK, decay=1.0, final=0.0)])
        true_rows.append((truth_(lr), k))
        assert abs(r["loss"] - truth_(lr)) / truth_(lr) < 0.002, (k, r, truth_(lr))
    assert fc.best_start == min(true_rows)[1]
    assert "k =" in fc.summary() and "reference" in fc.summary()


@pytest.mark.parametrize("form", ["eq1", "realized"])
def test_forecast_sources_log_and_prior(form):
    rng = np.random.default_rng(1)
    law = LAWS[form]
    # a WSD log already 60% through its cooldown: the log itself identifies C
    wsd = S.wsd(T, PEAK, warmup=W, decay=0.25, final=0.0)
    fc = cptjax.forecast(log_of(wsd, 18000, rng, law=law), schedule=wsd, anneal=form)
    assert fc.source == "log"
    a = fc.alternatives[0]
    assert a["name"] == "continue the schedule" and a["end"] == T
    assert abs(a["loss"] - truth(wsd, law)) / truth(wsd, law) < 0.002
    # a constant log and no reference: the prior, and it says so
    fc = cptjax.forecast(log_of(S.constant(T, PEAK, warmup=W), 12000, rng, law=law), budget=T, anneal=form)
    assert fc.source == "prior" and any("prior" in n for n in fc.notes)
    assert all(r["lo"] < r["loss"] < r["hi"] for r in fc.table)


def test_forecast_errors():
    rng = np.random.default_rng(2)
    log = log_of(S.constant(T, PEAK, warmup=W), 12000, rng)
    with pytest.raises(cptjax.InputError, match="cooldown"):
        cptjax.forecast(log, cooldown="step")
    with pytest.raises(cptjax.InputError, match="budget"):
        cptjax.forecast(log, budget=100)
    with pytest.raises(cptjax.InputError, match="final"):
        cptjax.forecast(log, final=1.5)
    with pytest.raises(cptjax.InputTypeError):
        cptjax.forecast(42)


def test_cli_forecast(tmp_path, capsys):
    from cptjax.cli import main

    rng = np.random.default_rng(3)
    const = S.constant(T, PEAK, warmup=W)
    for name, lr, upto in (("log.csv", const, 15000), ("ref.csv", S.cosine(T, PEAK, warmup=W, final=0), T)):
        run = log_of(lr, upto, rng)
        rows = ["step,lr,loss"] + [f"{s},{float(lr[s - 1])!r},{float(v)!r}" for s, v in zip(run.steps, run.losses["loss"])]
        (tmp_path / name).write_text("\n".join(rows) + "\n")
    log = str(tmp_path / "log.csv")
    assert main(["forecast", log, "--budget", str(T), "--reference",
                 str(tmp_path / "ref.csv"), "--json", "--out", str(tmp_path / "fc.json")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == "reference" and out["best_start"] >= 15000
    assert json.loads((tmp_path / "fc.json").read_text())["table"] == out["table"]
    before = (tmp_path / "log.csv").read_bytes()
    assert main(["forecast", log, "--out", log]) == 2  # never overwrite the input
    assert (tmp_path / "log.csv").read_bytes() == before


def test_a_schedule_gives_the_lr_of_a_log_without_one_and_is_checked_against_a_log_with_one(tmp_path):
    """--schedule with a log that records no LR: the schedule gives it (it was an error); with a log
    that records another LR: a warning naming the first step where they disagree."""
    import warnings as w

    law = cptjax.PTLaw(L0=2.4, A=0.55, alpha=0.5, C=0.45)
    const = S.constant(20000, 3e-4, warmup=500)
    steps = np.arange(100, 15001, 100)
    y = np.asarray(cptjax.predict(law, const, idx=steps - 1))
    (tmp_path / "lr.csv").write_text("step,lr,loss\n" + "".join(
        f"{s},{float(const[s - 1])!r},{float(v)!r}\n" for s, v in zip(steps, y)))
    (tmp_path / "nolr.csv").write_text("step,loss\n" + "".join(f"{s},{float(v)!r}\n" for s, v in zip(steps, y)))
    ref = str(tmp_path / "ref.csv")  # the same run's log as a reference (a copy: the log itself is refused)
    (tmp_path / "ref.csv").write_text((tmp_path / "lr.csv").read_text())
    with pytest.raises(cptjax.InputError, match="the log itself"):
        cptjax.forecast(ref, reference=ref)
    a = cptjax.forecast(tmp_path / "nolr.csv", schedule=const, reference=ref)
    b = cptjax.forecast(tmp_path / "lr.csv", reference=ref)
    assert a.alternatives[1]["loss"] == pytest.approx(b.alternatives[0]["loss"], rel=1e-6)  # stop now
    with w.catch_warnings(record=True) as caught:
        w.simplefilter("always")
        cptjax.forecast(tmp_path / "lr.csv", schedule=const, reference=ref)
        assert not [x for x in caught if "disagrees" in str(x.message)]
        cptjax.forecast(tmp_path / "lr.csv", schedule=const / 3, reference=ref)
    msg = [str(x.message) for x in caught if "disagrees" in str(x.message)]
    assert len(msg) == 1 and "150 of 150" in msg[0] and "step 100" in msg[0], msg


def test_realized_annealing_against_the_plain_double_sum():
    """S2ᵃ(t) = 1000·Σ_k Δη_k·(1 − (1 + 25·Σ_{τ=k..t} η_τ)^−0.6), drops after the peak only, summed
    directly (O(T²)): the scan with its 49-exponential quadrature agrees to 1e-5 of the full
    drop's scale (1000·Σ|Δη|: G itself is within 6e-6)."""
    lr = np.concatenate([S.wsd(3000, PEAK, warmup=200, decay=0.3, final=0.0, shape="sqrt"),
                         np.full(300, 0.5 * PEAK)])  # a 1−√ cooldown, then a rise (a negative drop)
    idx = np.arange(50, lr.size, 97)
    c = np.concatenate([[0.0], np.cumsum(lr)])
    peak = int(np.argmax(lr))
    d = np.zeros_like(lr)
    d[peak + 1:] = lr[peak:-1] - lr[peak + 1:]
    want = np.array([1000 * np.sum(d[:t + 1] * (1 - (1 + 25 * (c[t + 1] - c[:t + 1])) ** -0.6)) for t in idx])
    got = realized_annealing(lr, idx)
    assert np.abs(got - want).max() < 1e-5 * 1000 * np.abs(d).sum(), np.abs(got - want).max()
    assert np.all(got[idx <= peak] == 0)


def test_fit_realized_recovers_the_law_and_predict_refuses_it():
    law = LAWS["realized"]
    runs = [log_of(lr, T, np.random.default_rng(0), noise=0.0, law=law)
            for lr in (S.constant(T, PEAK, warmup=W), S.cosine(T, PEAK, warmup=W, final=0.1 * PEAK))]
    res = fit_realized(runs, "loss")
    for k, v in PARAMS.items():
        assert abs(getattr(res.law, k) / v - 1) < 1e-4, (k, getattr(res.law, k))
    assert res.rmse < 1e-6 and res.law.to_dict()["anneal"] == {"form": "realized", "c": 25.0, "beta": 0.6}
    with pytest.raises(cptjax.InputError, match="law.loss"):
        cptjax.predict(res.law, S.constant(100, PEAK))


def test_auto_uses_eq1_outside_the_calibrated_lrs_and_says_so():
    rng = np.random.default_rng(3)
    lr = S.constant(T, 0.05, warmup=W)  # an SGD-like LR, far above the AdamW runs c was chosen on
    fc = cptjax.forecast(log_of(lr, 12000, rng), budget=T)
    assert type(fc.law) is cptjax.PTLaw and any("outside" in n for n in fc.notes)
    fc = cptjax.forecast(log_of(S.constant(T, PEAK, warmup=W), 12000, rng, law=LAWS["realized"]), budget=T)
    assert isinstance(fc.law, RealizedLaw) and not any("outside" in n for n in fc.notes)


def test_a_realized_law_as_reference_keeps_its_own_annealing_term(tmp_path):
    """An earlier forecast's law (in memory or saved) gives its C in S2ᵃ's units: the forecast stays
    with the realized law and recovers the truth; Eq. 1 refuses it."""
    rng = np.random.default_rng(4)
    law = LAWS["realized"]
    const = S.constant(T, PEAK, warmup=W)
    ref = log_of(S.cosine(T, PEAK, warmup=W, final=0.1 * PEAK), T, rng, law=law)
    log = log_of(const, 12000, rng, law=law)
    first = cptjax.forecast(log, budget=T, reference=[ref])
    first.save(tmp_path / "fc.json")
    now = np.concatenate([const[:12000], S.wsd(4000, PEAK, decay=1.0, final=0.0)])
    for reference in (first.law, tmp_path / "fc.json"):
        fc = cptjax.forecast(log, budget=T, reference=reference)
        a = next(a for a in fc.alternatives if a["name"].startswith("cool down now"))
        assert isinstance(fc.law, RealizedLaw) and fc.source == "reference"
        assert abs(a["loss"] / truth(now, law) - 1) < 0.002 and a["lo"] <= truth(now, law) <= a["hi"]
    with pytest.raises(cptjax.InputError, match="realized"):
        cptjax.forecast(log, budget=T, reference=first.law, anneal="eq1")


def test_the_realized_path_checks_its_inputs():
    rng = np.random.default_rng(5)
    log = log_of(S.constant(T, PEAK, warmup=W), 12000, rng, law=LAWS["realized"])
    bad = log_of(S.cosine(T, PEAK, warmup=W), T, rng, law=LAWS["realized"])
    bad.lr[100] = np.nan
    with pytest.raises(cptjax.InputError, match="non-finite LR"):
        cptjax.forecast(log, budget=T, reference=[bad], anneal="realized")
    zero = log_of(S.cosine(T, PEAK, warmup=W), T, rng, law=LAWS["realized"])
    zero.losses["loss"][3] = 0.0
    with pytest.raises(cptjax.InputError, match="loss <= 0"):
        fit_realized([zero], "loss")
    with pytest.raises(cptjax.InputError, match="idx"):
        realized_annealing(S.constant(10, PEAK), [10])


def test_cool_down_now_stays_within_the_budget():
    rng = np.random.default_rng(6)
    log = log_of(S.constant(T, PEAK, warmup=W), 18000, rng)
    fc = cptjax.forecast(log, budget=T)  # 20% of the budget is 4 000 steps; 2 000 are left
    now = next(a for a in fc.alternatives if a["name"].startswith("cool down now"))
    assert now["end"] == T and "2000 steps" in now["name"]
