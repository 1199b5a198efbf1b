"""The CPT forecast (both losses and the λ1 objective) on synthetic CPT logs from a cpt-shared law
with known parameters: the forecast of the run's own schedule covers the truth; with nothing
annealed in the log C comes from the PT prior (wider band) or a reference; the command line's --n-pt mode."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest

import cptjax
from cptjax import schedules as S
from cptjax import SharedCPTLaw

jax.config.update("jax_enable_x64", True)


def _shared(law):
    d = law.to_dict()
    d.pop("law")
    c = d.pop("C1")
    d.pop("C2")
    return SharedCPTLaw(C=c, **d)


G, D = (_shared(l) for l in cptjax.preset("setting-a"))


def _log(pt, cpt, upto, seed=0):
    full, n = S.join(pt, cpt)
    steps = np.arange(200, upto + 1, 200)
    rng = np.random.default_rng(seed)
    ys = {c: np.asarray(cptjax.predict(l, full, n, idx=steps - 1)) * np.exp(rng.normal(0, 0.002, steps.size))
          for c, l in (("general_loss", G), ("domain_loss", D))}
    return cptjax.Run("cpt", full[:upto], n, steps, ys), full, n


def _truth(full, n):
    g, d = (float(cptjax.predict(l, full, n)[-1]) for l in (G, D))
    return g, d, 0.5 * g + 0.5 * d


def test_forecast_of_the_own_schedule_covers_the_truth():
    pt = S.wsd(20000, 2e-4, warmup=500, decay=0.2, final=2e-5)  # the PT anneals: C is in the log
    run, full, n = _log(pt, S.wsd(10000, 1e-4, warmup=300, decay=0.2), 26000)
    fc = cptjax.forecast_cpt(run, schedule=full, weight_general=0.5)
    g, d, obj = _truth(full, n)
    alt = fc.alternatives[0]
    assert alt["name"] == "continue the schedule" and fc.source == "log"
    assert alt["lo"] <= obj <= alt["hi"] and abs(alt["loss"] / obj - 1) < 0.005
    assert alt["general"]["lo"] <= g <= alt["general"]["hi"] and alt["domain"]["lo"] <= d <= alt["domain"]["hi"]
    assert alt["loss"] == pytest.approx(0.5 * alt["general"]["loss"] + 0.5 * alt["domain"]["loss"], rel=1e-12)
    assert fc.best_start is not None and "general" in fc.summary()


def test_no_annealing_uses_the_prior_or_a_reference():
    """Nothing anneals in the log: C comes from the PT prior (said, with its spread in the band:
    the prior's band is wider than the reference's, and the curve so far stays fitted), or from a
    reference law (within 1% of the truth)."""
    pt = S.constant(20000, 2e-4, warmup=500)  # nothing anneals in the log
    run, full, n = _log(pt, S.wsd(10000, 2e-4, warmup=300, decay=0.2), 26000)
    g, d, obj = _truth(full, n)
    prior = cptjax.forecast_cpt(run, schedule=full)
    ref = cptjax.forecast_cpt(run, schedule=full, reference=cptjax.LawPair(G, D))
    assert ref.source == "reference" and abs(ref.alternatives[0]["loss"] / obj - 1) < 0.01
    assert prior.source == "prior" and any("prior" in x for x in prior.notes)
    width = lambda fc: fc.alternatives[0]["hi"] - fc.alternatives[0]["lo"]
    assert width(prior) > 1.3 * width(ref)  # (setting-a is synthetic: its C is not the real runs' prior)
    stop = next(a for a in prior.alternatives if a["name"] == "stop now")  # the log's own last point
    assert abs(stop["loss"] / prior.observed - 1) < 0.01 and stop["lo"] <= prior.observed <= stop["hi"]


def test_cli_cpt_mode(tmp_path):
    pt = S.wsd(20000, 2e-4, warmup=500, decay=0.2, final=2e-5)
    run, full, n = _log(pt, S.wsd(10000, 1e-4, warmup=300, decay=0.2), 26000)
    lines = ["step,lr,general_loss,domain_loss"] + [
        f"{s},{float(run.lr[s - 1])!r},{float(a)!r},{float(b)!r}"
        for s, a, b in zip(run.steps, run.losses["general_loss"], run.losses["domain_loss"])]
    (tmp_path / "log.csv").write_text("\n".join(lines) + "\n")
    np.save(tmp_path / "full.npy", full)
    p = subprocess.run([sys.executable, "-m", "cptjax.cli", "forecast", str(tmp_path / "log.csv"), "--n-pt", str(n),
                        "--schedule", f"file({tmp_path / 'full.npy'})", "--weight-general", "0.3", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    d = json.loads(p.stdout)
    alt = d["alternatives"][0]
    assert alt["loss"] == pytest.approx(0.3 * alt["general"]["loss"] + 0.7 * alt["domain"]["loss"], rel=1e-12)


def _csv(path, run):
    lines = ["step,lr,general_loss,domain_loss"] + [
        f"{s},{float(run.lr[s - 1])!r},{float(a)!r},{float(b)!r}"
        for s, a, b in zip(run.steps, run.losses["general_loss"], run.losses["domain_loss"])]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_reference_csv_without_a_pt_length_is_read_with_the_logs(tmp_path):
    """A finished CPT run given as a plain CSV records no n_pt: it is read with the log's (a file
    read as PT-only was fitted as a pre-training run), and said so; one with no CPT is refused."""
    pt = S.constant(20000, 2e-4, warmup=500)
    run, full, n = _log(pt, S.wsd(10000, 2e-4, warmup=300, decay=0.2), 26000)
    ref, _, _ = _log(pt, S.cosine(10000, 2e-4, warmup=300), 30000, seed=1)
    fc = cptjax.forecast_cpt(run, schedule=full, reference=str(_csv(tmp_path / "ref.csv", ref)))
    g, d, obj = _truth(full, n)
    assert fc.source == "reference" and any("n_pt = 20000" in x for x in fc.notes)
    assert abs(fc.alternatives[0]["loss"] / obj - 1) < 0.01
    pt_only = cptjax.Run("pt", pt, pt.size, ref.steps[ref.steps <= 20000],
                         {c: v[ref.steps <= 20000] for c, v in ref.losses.items()})
    with pytest.raises(cptjax.InputError, match="no CPT steps"):
        cptjax.forecast_cpt(run, schedule=full, reference=[pt_only])
