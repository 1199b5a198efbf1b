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
