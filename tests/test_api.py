"""The library owns every computation the command reports: a Python user gets the design report,
fit files with their provenance, and the same errors as the CLI (issue: one front door)."""

import ast
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)
import cptjax  # noqa: E402

from test_golden import GOLD, close, make_golden  # noqa: E402

D = make_golden.HERE
RUNS = [os.path.join(D, f) for f in ("pt.csv", "cpt_cosine.csv", "cpt_constant.csv")]


def test_design_report_from_python_equals_the_command(tmp_path):
    """`cptjax design --law G.json,D.json ... --json` (pinned in golden.json) from Python alone."""
    cmd = make_golden.COMMANDS["design"]
    rep = cptjax.design_report(f"{D}/general.json,{D}/domain.json", make_golden.PT, 1500, warmup=100,
                               iterations=200, max_lr=2e-4)
    got = {k: v for k, v in rep.to_dict().items() if k != "pytorch_lr_per_step"}
    assert cmd[cmd.index("--law") + 1].format(d=D) == got["law"]
    got["law"] = cmd[cmd.index("--law") + 1]  # the goldens name paths relative to tests/golden
    old = dict(GOLD["design"])
    old.pop("files")
    close(got, old, 1e-7, skip=("uncertainty",))
    close(got["uncertainty"], old["uncertainty"], 1e-3)
    files = rep.save(tmp_path / "r")
    assert sorted(os.listdir(tmp_path / "r")) == sorted(cptjax.DESIGN_FILES)
    assert json.loads((tmp_path / "r" / "report.json").read_text())["files"] == [str(f) for f in files]
    assert "P(plan beats it)" in rep.summary()


def test_fit_result_round_trip_with_provenance(tmp_path):
    res = cptjax.fit(RUNS, "cpt", "domain_loss")
    p = res.provenance
    assert p["runs"] == ["pt.csv", "cpt_cosine.csv", "cpt_constant.csv"] and p["data_range"] == 5500
    assert p["lr_range"][1] == pytest.approx(2e-4) and p["area_range"]["s1_cpt"][0] > 0
    res.save(tmp_path / "f.json")
    back = cptjax.FitResult.load(tmp_path / "f.json")
    assert back.params == res.params and back.provenance == json.loads(json.dumps(p))
    np.testing.assert_allclose(back.cov, res.cov, rtol=1e-15)
    # the design's extrapolation checks see the provenance of a fit saved from Python
    (tmp_path / "f2.json").write_text((tmp_path / "f.json").read_text())  # one file twice is refused
    src = cptjax.load_law(f"{tmp_path / 'f.json'},{tmp_path / 'f2.json'}", details=True)
    assert src.lr_max == pytest.approx(2e-4) and src.data_range == 5500 and src.area_range[0] is not None


@pytest.mark.parametrize("edit, needle", [
    (lambda d: d.update(lr_range="0.1"), "lr_range"),
    (lambda d: d.update(area_range={"s1_cpt": [0, 1]}), "area_range"),
    (lambda d: d.update(cov=(np.array(d["cov"]) * 0 + 1e308).tolist()), "cov"),
    (lambda d: d.update(law={"general": d["law"], "domain": d["law"]}), "pair"),
    (lambda d: d.update(stderr={"L0": 1}), "stderr"),
    (lambda d: d.update(data_range=-3), "data_range"),
])
def test_malformed_fit_files_are_refused_when_read(tmp_path, edit, needle):
    d = dict(GOLD["fit_general"])
    edit(d)
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(d))
    with pytest.raises(cptjax.InputError, match=needle):
        cptjax.FitResult.load(f)
    with pytest.raises(cptjax.InputError):
        cptjax.load_law(f"{f},{f}")


def test_a_pair_of_pretraining_laws_is_refused(tmp_path):
    f = tmp_path / "pt.json"
    f.write_text(json.dumps({"general": {"law": "mpl", **dict(zip(
        cptjax.MultiPowerLaw.param_names(), [3, 0.5, 0.5, 400, 2, 0.5, 0.6]))},
        "domain": cptjax.preset("setting-a").domain.to_dict()}))
    with pytest.raises(cptjax.InputError, match="pre-training law"):
        cptjax.load_law(str(f))


def test_fit_throws_on_a_non_finite_fit_and_fit_batch_reports_it():
    steps = np.arange(10, 301, 10)
    # an LR of 0 throughout: S1 = 0 at every point, where no law is defined: a clear data error
    zero = cptjax.Run("zero", np.zeros(300), 300, steps, {"loss": 3 + 1e-3 * np.sin(steps)})
    with pytest.raises(cptjax.DataError, match="0 valid points"), pytest.warns(cptjax.DataWarning, match="no LR"):
        cptjax.fit([zero], "pt", "loss")
    # losses near the float limit: the fit's statistics overflow
    run = cptjax.Run("tiny", np.full(300, 1e-3), 300, steps, {"loss": 1e300 * (3 + 1e-3 * np.sin(steps))})
    with pytest.raises(cptjax.FitError, match="finite"):
        cptjax.fit([run], "pt", "loss")
    res = cptjax.fit([run], "pt", "loss", throw=False)
    assert not res.finite


def test_only_input_errors_are_user_errors(monkeypatch, capsys):
    """A ValueError that is not an InputError is a bug (exit 1), not the user's fault (exit 2)."""
    from cptjax import cli

    def boom(args):
        raise ValueError("operands could not be broadcast together")
    monkeypatch.setattr(cli, "cmd_predict", boom)
    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with(parser(), boom))
    assert cli.main(["predict"]) == 1
    assert "internal error" in capsys.readouterr().err


def test_xla_out_of_memory_is_a_user_error(monkeypatch, capsys):
    """XLA's out-of-memory (a design of 10^7 steps on a small machine) is the problem's size, not
    a bug: exit 2 with advice, not an internal error."""
    from cptjax import cli

    def oom(args):
        raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 80000000000 bytes.")
    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with(parser(), oom))
    assert cli.main(["predict"]) == 2
    err = capsys.readouterr().err
    assert "not enough memory" in err and "internal" not in err


def _with(p, fn):
    p._subparsers._group_actions[0].choices["predict"].set_defaults(func=fn)
    return p


def test_exports_and_the_static_block_agree():
    src = open(cptjax.__file__).read()
    tree = ast.parse(src)
    static = {a.asname for node in ast.walk(tree) if isinstance(node, ast.If)
              for imp in node.body if isinstance(imp, ast.ImportFrom) for a in imp.names}
    assert static == set(cptjax._EXPORTS)
    for name in cptjax._EXPORTS:
        assert getattr(cptjax, name) is not None


def test_cli_uses_public_names_and_no_array_maths():
    src = open(os.path.join(os.path.dirname(cptjax.__file__), "cli.py")).read()
    tree = ast.parse(src)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            assert node.module in ("files", "errors"), node.module  # public modules of the package
        if isinstance(node, ast.Import):
            assert not any(a.name in ("numpy", "jax.numpy") for a in node.names)  # jax: config only
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            assert node.module not in ("numpy", "jax.numpy", "jax"), node.module
    long = [f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
            and f.name.startswith("cmd_") and f.end_lineno - f.lineno > 40]
    assert not long, long


def test_cli_names_the_step_and_lr_columns(tmp_path, capsys):
    """A nanoGPT-style log (`iter`, found as its step; an LR column cptjax does not know): refused
    with the flag named, then read with --lr-column (and --step-column): all 200 points, fitted to
    < 0.5% mean error."""
    from cptjax import cli

    rows = ["iter,learning,train_loss"] + [f"{s},2e-4,{3 + 0.5 * (s * 2e-4) ** -0.5!r}"
                                           for s in range(10, 2001, 10)]
    f = tmp_path / "n.csv"
    f.write_text("\n".join(rows) + "\n")
    assert cli.main(["fit", str(f), "--law", "pt"]) == 2
    assert "--lr-column" in capsys.readouterr().err
    assert cli.main(["fit", str(f), "--law", "pt", "--step-column", "iter", "--lr-column", "learning",
                     "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_points"] == 200 and out["metrics"]["mean_rel_error"] < 0.005
