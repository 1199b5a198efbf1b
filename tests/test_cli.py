import json
import subprocess
import sys

import numpy as np
import pytest

from cptjax import cli


def run(*args):
    return subprocess.run([sys.executable, "-m", "cptjax.cli", *args], capture_output=True, text=True)


def test_predict_json_csv_plot(tmp_path, capsys):
    out, png = tmp_path / "c.csv", tmp_path / "p.png"
    rc = cli.main(["predict", "--json", "--out", str(out), "--plot", str(png), "--at", "40000,50000"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose([r["general"] for r in res["table"]], [3.25289648, 3.38233240], rtol=1e-8)
    np.testing.assert_allclose([r["domain"] for r in res["table"]], [3.14365479, 2.66938378], rtol=1e-8)
    rows = np.loadtxt(out, delimiter=",", skiprows=1)
    assert rows.shape == (50000, 5) and rows[-1, 4] == pytest.approx(2.66938378, rel=1e-8)
    assert png.stat().st_size > 10_000


def test_predict_replay_and_law_json(tmp_path, capsys):
    import cptjax

    f = tmp_path / "law.json"
    f.write_text(json.dumps(cptjax.preset("replay").to_dict()))
    assert cli.main(["predict", str(f), "--replay", "0.3", "--json"]) == 0
    a = json.loads(capsys.readouterr().out)["final"]
    assert cli.main(["predict", "replay", "--replay", "0.3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["final"] == a


@pytest.mark.parametrize("args,needle", [
    (["predict", "nope"], "unknown preset"),
    (["predict", "--pt", "wsd(steps=10,peak=-1)"], "`peak`"),
    (["predict", "--cpt", "cosine(steps=10"], "expected NAME"),
    (["predict", "replay"], "needs `replay`"),
    (["predict", "--at", "0"], "--at"),
    (["predict", "--pt", "file(/no/such.npy)"], "no such file"),
    (["predict", "--out", "/no/such/dir/x.csv"], "does not exist"),
])
def test_bad_input_one_line_exit_2(args, needle):
    p = run(*args)
    assert p.returncode == 2
    assert needle in p.stderr and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("cptjax: error:")


def test_help_is_complete():
    p = run("--help")
    assert p.returncode == 0 and "predict" in p.stdout
    p = run("predict", "--help")
    for opt in ("--pt", "--cpt", "--replay", "--size", "--out", "--plot", "--json", "--at"):
        assert opt in p.stdout


def test_fit_and_design_cli(tmp_path, capsys):
    from cptjax import schedules as S
    import cptjax

    lr, n = S.join(S.wsd(4000, 2e-4, warmup=100, decay=0.2, final=2e-5), S.cosine(2000, 1e-4, warmup=100))
    steps = np.arange(50, lr.size + 1, 50)
    y = np.asarray(cptjax.predict(cptjax.preset("setting-a").domain, lr, n, idx=steps - 1))
    f = tmp_path / "run.csv"
    f.write_text("step,lr,domain_loss\n" + "".join(
        f"{i},{float(lr[i - 1])!r},{(y[list(steps).index(i)] if i in set(steps) else '')}\n"
        for i in range(1, lr.size + 1)))
    out = tmp_path / "fit.json"
    assert cli.main(["fit", str(f), "--n-pt", str(n), "--law", "cpt", "--loss-column", "domain_loss",
                     "--out", str(out), "--plot", str(tmp_path / "fit.png"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["metrics"]["max_rel_error"] < 1e-4 and (tmp_path / "fit.png").exists()
    held = tmp_path / "held.csv"
    assert cli.main(["predict", str(out), "--run", str(f), "--n-pt", str(n), "--loss-column",
                     "domain_loss", "--out", str(held), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["loss"]["max_rel_error"] < 1e-4
    rows = np.loadtxt(held, delimiter=",", skiprows=1)
    assert held.read_text().startswith("step,observed,predicted_loss\n") and rows.shape == (steps.size, 3)
    np.testing.assert_allclose(rows[:, 2], rows[:, 1], rtol=1e-4)
    d = tmp_path / "design"
    assert cli.main(["design", "--cpt-steps", "500", "--warmup", "50", "--iterations", "200",
                     "--pt", "wsd(steps=4000,peak=2e-4,warmup=100,decay=0.2,final=2e-5)",
                     "--out", str(d), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["plan"]["objective"] <= min(b["objective"] for b in rep["plan"]["baselines"].values())
    for name in ("plan.csv", "plan.npy", "plan.json", "report.json", "design.png"):
        assert (d / name).exists()
    p = run("design", "--max-lr", "-1", "--out", str(d))
    assert p.returncode == 2 and "--max-lr" in p.stderr
    p = run("design", "--law", "setting-a", "--replay", "free", "--out", str(d))
    assert p.returncode == 2 and "needs a law" in p.stderr


def test_design_from_two_fit_files_reports_uncertainty(tmp_path, capsys):
    """fit the general and the domain loss, then design from the two fit files: the report
    carries the gain interval and the probability that the plan beats its best baseline."""
    from cptjax import schedules as S
    import cptjax

    rng = np.random.default_rng(0)
    law = cptjax.preset("setting-a")
    files = []
    for k, (pt, cpt) in enumerate([(S.wsd(4000, 2e-4, warmup=100, decay=0.2, final=2e-5), S.cosine(2000, 2e-4)),
                                   (S.constant(4000, 2e-4, warmup=100), S.wsd(2000, 1e-4, decay=0.3))]):
        lr, n = S.join(pt, cpt)
        st = np.arange(50, lr.size + 1, 50)
        p = cptjax.predict(law, lr, n, idx=st - 1)
        g, d = (np.asarray(v) * (1 + 2e-3 * rng.standard_normal(st.size)) for v in p)
        at = dict(zip(st.tolist(), zip(g, d)))
        f = tmp_path / f"run{k}.csv"
        f.write_text(f"# n_pt: {n}\nstep,lr,general_loss,domain_loss\n" + "".join(
            f"{i},{float(lr[i - 1])!r}," + (f"{at[i][0]:.6f},{at[i][1]:.6f}" if i in at else ",") + "\n"
            for i in range(1, lr.size + 1)))
        files.append(str(f))
    for col in ("general", "domain"):
        assert cli.main(["fit", *files, "--loss-column", f"{col}_loss", "--out", str(tmp_path / f"{col}.json")]) == 0
    d = tmp_path / "design"
    assert cli.main(["design", "--law", f"{tmp_path / 'general.json'},{tmp_path / 'domain.json'}",
                     "--pt", "wsd(steps=4000,peak=2e-4,warmup=100,decay=0.2,final=2e-5)",
                     "--cpt-steps", "1000", "--iterations", "200", "--weight-general", "0.3",
                     "--out", str(d)]) == 0
    out = capsys.readouterr().out
    assert "P(plan beats it)" in out
    rep = json.loads((d / "report.json").read_text())
    g = rep["uncertainty"]["gain"]
    assert g["n_draws"] > 100 and g["lo95"] <= g["mean"] <= g["hi95"] and 0 <= g["p_plan_wins"] <= 1
    assert (d / "plan_pytorch.py").exists()
    # The fit files carry the span of the CPT areas; a plan beyond it is flagged.
    ranges = [json.loads((tmp_path / f"{c}.json").read_text())["area_range"] for c in ("general", "domain")]
    cpts = [S.cosine(2000, 2e-4), S.wsd(2000, 1e-4, decay=0.3)]
    assert ranges[0]["s1_cpt"][1] == pytest.approx(max(float(c.sum()) for c in cpts), rel=1e-9)
    assert isinstance(rep["warnings"], list)
    from cptjax.planning._report import _outside_areas

    pt = S.wsd(4000, 2e-4, warmup=100, decay=0.2, final=2e-5)
    assert _outside_areas(law, pt, cpts[0][:1500], ranges) == []
    far = _outside_areas(law, pt, np.full(6000, 2e-4), ranges)
    assert len(far) >= 2 and all("S1_cpt" in w or "S2_cpt" in w for w in far) and "S1_cpt" in far[0]


def test_design_with_the_mpl_term_law_from_fit_files(tmp_path, capsys):
    """Two fit-style files holding MPL-term laws (cpt-mpl) with covariances: the design runs,
    reports the gain interval, draws its band at ~200 steps and says there are no λ variants."""
    import cptjax

    g = cptjax.MPLCPTLaw(2.5, 0.5, 0.5, 400.0, 300.0, 0.2, 100.0, 0.5, 2.0, 0.6, 0.6)
    for name, law in (("g", g), ("d", g.replace(L0=2.8, C2=500.0, B=-0.6))):
        x = np.array([float(getattr(law, k)) for k in law.param_names()])
        (tmp_path / f"{name}.json").write_text(json.dumps({"law": law.to_dict(),
                                                           "cov": np.diag((0.01 * x) ** 2).tolist()}))
    d = tmp_path / "out"
    assert cli.main(["design", "--law", f"{tmp_path / 'g.json'},{tmp_path / 'd.json'}",
                     "--pt", "wsd(steps=2000,peak=2e-4,warmup=100,decay=0.2,final=2e-5)",
                     "--cpt-steps", "600", "--iterations", "200", "--out", str(d)]) == 0
    out = capsys.readouterr().out
    assert "P(plan beats it)" in out and "law variants: none" in out
    rep = json.loads((d / "report.json").read_text())
    assert rep["uncertainty"]["gain"]["n_draws"] == 256 and rep["uncertainty"]["regret"] == {}
    assert (d / "design.png").stat().st_size > 0


def test_predict_with_a_schedule_law_evaluates_the_steps_it_shows(tmp_path, capsys):
    """A law that takes the schedule itself (cpt-mpl) on a 6 000-step run: the table's values
    equal the law at those steps, and the plot is drawn from 2 000 sampled steps."""
    import cptjax
    from cptjax import schedules as S

    law = cptjax.MPLCPTLaw(2.5, 0.5, 0.5, 400.0, 300.0, 0.2, 100.0, 0.5, 2.0, 0.6, 0.6)
    f = tmp_path / "law.json"
    f.write_text(json.dumps(law.to_dict()))
    pt, cpt = "wsd(steps=4000,peak=3e-4,warmup=100,decay=0.2,final=3e-5)", "cosine(steps=2000,peak=2e-4,final=0)"
    assert cli.main(["predict", str(f), "--pt", pt, "--cpt", cpt, "--at", "4000,5000,6000",
                     "--plot", str(tmp_path / "p.png"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    lr, n = S.join(S.parse(pt), S.parse(cpt))
    want = np.asarray(law(lr, np.array([3999, 4999, 5999]), n_pt=n))
    np.testing.assert_allclose([r["loss"] for r in rep["table"]], want, rtol=1e-12)
    assert (tmp_path / "p.png").stat().st_size > 0
