"""An output path that names an input is refused before any work, and the input is left intact
(fit, predict, design, lab; the same file through a symlink, a hard link or `..` too)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from cptjax.files import check_outputs

ENV = {**os.environ, "CPTJAX_NO_CACHE": "1"}


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "cptjax.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=ENV, timeout=300)


@pytest.fixture()
def d(tmp_path):
    rows = ["step,lr,loss"] + [f"{s},2e-4,{3 + 0.5 * (s * 2e-4) ** -0.5:.6f}" for s in range(1, 201)]
    (tmp_path / "run.csv").write_text("\n".join(rows) + "\n")
    np.save(tmp_path / "pt.npy", np.full(100, 1e-4))
    (tmp_path / "law.json").write_text('{"law": "pt", "L0": 3, "A": 0.5, "alpha": 0.5, "C": 1}')
    os.symlink(tmp_path / "run.csv", tmp_path / "link.csv")
    os.link(tmp_path / "run.csv", tmp_path / "hard.csv")
    (tmp_path / "sub").mkdir()
    return tmp_path


CASES = [
    ["fit", "run.csv", "--law", "pt", "--out", "run.csv"],
    ["fit", "run.csv", "--law", "pt", "--plot", "link.csv"],
    ["fit", "run.csv", "--law", "pt", "--out", "hard.csv"],
    ["fit", "run.csv", "--law", "pt", "--out", "sub/../run.csv"],
    ["fit", "run.csv", "--law", "pt", "--out", "pt.npy", "--schedule", "file(pt.npy)"],
    ["fit", "run.csv", "--law", "pt", "--out", "f.png", "--plot", "f.png"],
    ["predict", "law.json", "--out", "law.json"],
    ["predict", "law.json", "--run", "run.csv", "--out", "run.csv"],
    ["predict", "--pt", "file(pt.npy)", "--out", "pt.npy"],
]


@pytest.mark.parametrize("args", CASES, ids=lambda a: " ".join(a))
def test_output_naming_an_input_is_refused(d, args):
    before = {p: p.read_bytes() for p in d.iterdir() if p.is_file()}
    r = run(*args, cwd=d)
    assert r.returncode == 2, r.stderr
    assert "cptjax: error:" in r.stderr and ("is one of the inputs" in r.stderr or "same file" in r.stderr)
    assert {p: p.read_bytes() for p in d.iterdir() if p.is_file()} == before


def test_design_and_lab_folders_holding_an_input(d):
    (d / "out").mkdir()
    np.save(d / "out" / "plan.npy", np.full(50, 1e-4))
    r = run("design", "--pt", "file(out/plan.npy)", "--out", "out", "--iterations", "1", cwd=d)
    assert r.returncode == 2 and "out/plan.npy" in r.stderr, r.stderr
    (d / "out" / "manifest.json").write_text("x")
    r = run("lab", "--quick", "--out", "out", "--general", "out/manifest.json", cwd=d)
    assert r.returncode == 2 and "manifest.json" in r.stderr, r.stderr
    assert (d / "out" / "manifest.json").read_text() == "x"


def test_check_outputs_api(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("x")
    with pytest.raises(ValueError, match="is one of the inputs"):
        check_outputs({"out": a}, [str(tmp_path / "." / "a.csv")])
    check_outputs({"out": tmp_path / "b.json", "plot": tmp_path / "b.png"}, [a])  # distinct: fine
