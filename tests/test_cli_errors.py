"""Bad input, every command: one `cptjax: error:` line and exit 2 — never a traceback, a negative
exit code, or an output file or folder left behind (issue: hardening). Plus interrupts."""

import json
import os
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

ENV = {**os.environ, "CPTJAX_NO_CACHE": "1"}


def run(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "cptjax.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=ENV, timeout=timeout)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    (d / "list.json").write_text("[1, 2, 3]")
    (d / "null.json").write_text(json.dumps({"law": "cpt", "L0": None, "A": 1, "alpha": 1, "C1": 1,
                                             "C2": 1, "B": 1, "E": 1, "beta": 1}))
    (d / "nan.json").write_text('{"law": "pt", "L0": NaN, "A": 1, "alpha": 0.5, "C": 1}')
    (d / "inf.json").write_text('{"law": "pt", "L0": 3, "A": Infinity, "alpha": 0.5, "C": 1}')
    (d / "str.json").write_text('{"law": "pt", "L0": "3", "A": 1, "alpha": 0.5, "C": 1}')
    (d / "broken.json").write_text('{"law": ')
    (d / "neg.json").write_text('{"law": "pt", "L0": 3, "A": -1, "alpha": 0.5, "C": 1}')
    (d / "typo.json").write_text('{"law": "cpt", "L0": 3, "A": 1, "alpha": 0.5, "C1": 1, "C2": 1, "B": 1, '
                                 '"E": 1, "beta": 1, "lamda": 0.99}')
    (d / "exists.txt").write_text("x")
    rows = ["step,lr,loss"] + [f"{s},0.0,{3 - s / 1e4}" for s in range(1, 101)]
    (d / "zero_lr.csv").write_text("\n".join(rows))
    rows = ["step;lr;loss"] + [f"{s};1e-3;{3 - s / 1e4}" for s in range(1, 101)]
    (d / "semicolon.csv").write_text("\n".join(rows))
    (d / "bom.csv").write_bytes(b"\xef\xbb\xbf" + "\n".join(
        ["step,lr,loss"] + [f"{s},1e-3,{3 - s / 1e4}" for s in range(1, 101)]).encode())
    (d / "text.csv").write_text("step,lr,loss\n1,abc,3\n")
    (d / "empty.csv").write_text("")
    (d / "nonum.csv").write_text("a,b\n1,2\n")
    (d / "dir").mkdir()
    os.mkfifo(d / "pipe")  # a special file: must be refused, never replaced
    rows = ["step,lr,loss"] + [f"{s},2e-4,{3 + 0.5 * (s * 2e-4) ** -0.5:.6f}" for s in range(1, 201)]
    (d / "ok.csv").write_text("\n".join(rows))
    return d


CASES = [
    # (args, needle in the message)
    (["predict", "--pt", "file()"], "file()"),
    (["predict", "--out", "{tmp}"], "is a folder"),
    (["predict", "{in}/list.json"], "JSON object"),
    (["predict", "{in}/null.json"], "'L0'"),
    (["design", "--law", "{in}/list.json", "--out", "{tmp}/d"], "JSON object"),
    (["design", "--law", "{in}/null.json", "--out", "{tmp}/d"], "'L0'"),
    (["predict", "{in}/nan.json"], "finite"),
    (["predict", "{in}/inf.json"], "finite"),
    (["predict", "{in}/str.json"], "finite number"),
    (["predict", "{in}/broken.json"], "not valid JSON"),
    (["predict", "{in}/neg.json"], "'A' must be >= 0"),
    (["predict", "{in}/typo.json"], "unknown key(s) ['lamda']"),
    (["predict", "--pt", "cosine(steps=100,steps=200,peak=1e-4)"], "'steps' is given twice"),
    (["fit", "{in}/dir"], "is a folder"),
    (["design", "--out", "{in}/exists.txt"], "not a folder"),
    (["design", "--knots", "0", "--out", "{tmp}/d"], "--knots"),
    (["design", "--knots", "1", "--out", "{tmp}/d"], "--knots"),
    (["fit", "{in}/semicolon.csv", "--out", "/sys/x.json"], "not writable"),
    (["fit", "{in}/semicolon.csv", "--out", "/no/dir/x.json"], "does not exist"),
    (["predict", "--pt", "constant(steps=1000000000000,peak=1e-4)"], "limit"),
    (["predict", "--pt", "constant(steps=100000000,peak=1e-4)"], "limit"),
    (["fit", "{in}/zero_lr.csv"], "zero at every step"),
    (["design", "--weight-general", "1.5", "--out", "{tmp}/d"], "--weight-general"),
    (["design", "--weight-general", "-1", "--out", "{tmp}/d"], "--weight-general"),
    (["design", "--weight-general", "nan", "--out", "{tmp}/d"], "--weight-general"),
    (["design", "--iterations", "-5", "--out", "{tmp}/d"], "--iterations"),
    (["design", "--max-lr", "1e3", "--out", "{tmp}/d"], "largest LR"),
    (["design", "--max-lr", "inf", "--out", "{tmp}/d"], "--max-lr"),
    (["design", "--cpt-steps", "1", "--out", "{tmp}/d"], "--cpt-steps"),
    (["design", "--warmup", "20000", "--out", "{tmp}/d"], "--warmup"),
    (["design", "--replay", "1.5", "--out", "{tmp}/d"], "--replay"),
    (["design", "--replay", "lots", "--out", "{tmp}/d"], "--replay"),
    (["design", "--law", "setting-a", "--replay", "0.5", "--out", "{tmp}/d"], "has no replay ratio"),
    (["design", "--pt", "cosine(steps=10,peak=1e-4,final=2e-4)", "--out", "{tmp}/d"], "must not exceed"),
    (["predict", "--cpt", "cosine(steps=10,peak=1e-4,final=2e-4)"], "must not exceed"),
    (["predict", "--out", "{tmp}/c.csv", "--plot", "/no/dir/p.png"], "--plot"),
    (["predict", "--replay", "2", "replay"], "--replay"),
    (["predict", "--lam", "1.5"], "--lam"),
    (["predict", "--at", "x"], "--at"),
    (["predict", "--replay", "abc"], "invalid float"),
    (["fit", "{in}/text.csv"], "could not read a number"),
    (["fit", "{in}/empty.csv"], "empty"),
    (["fit", "{in}/nonum.csv"], "step column"),
    (["fit", "{in}/semicolon.csv", "--max-iter", "0"], "--max-iter"),
    (["fit", "{in}/semicolon.csv", "--delta", "-1"], "--delta"),
    (["fit", "{in}/semicolon.csv", "--lam", "2"], "--lam"),
    (["fit", "{in}/semicolon.csv", "--law", "nope"], "invalid choice"),
    (["fit", "/no/such.csv"], "no such file"),
    (["lab", "--out", "{in}/exists.txt"], "not a folder"),
    (["lab", "{in}/exists.txt", "--out", "{tmp}/lab"], "TOML"),
    (["fit", "{in}/ok.csv", "--out", "{tmp}/d/"], "is a folder"),
    (["predict", "--plot", "{tmp}/x.txt"], "--plot"),
    (["predict", "--out", "{in}/pipe"], "not a regular file"),
    (["fit", "{in}/ok.csv", "--out", "{in}/pipe"], "not a regular file"),
    (["fit", "{in}/ok.csv", "--n-pt", "999999"], "outside"),
    (["fit", "{in}/ok.csv", "--law", "replay"], "replay ratio"),
    (["fit", "{in}/ok.csv", "--schedule", "constant(steps=10,peak=1e-3)"], "beyond the schedule"),
    (["predict", "--pt", "file({in}/semicolon.csv)"], "file("),
    (["design", "--law", "mpl-100m", "--out", "{tmp}/d"], "law pair"),
    (["design", "--pt", "constant(steps=100000,peak=1e-4)", "--out", "{tmp}/d"], "data range"),
    (["lab", "--only", "nope", "--quick", "--out", "{tmp}/l"], "--only"),
    (["nonsense"], "invalid choice"),
    ([], "required"),
]


@pytest.mark.parametrize("args, needle", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input_is_one_clean_error(args, needle, files, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    before = set(os.listdir(files))
    args = [a.replace("{in}", str(files)).replace("{tmp}", str(work)) for a in args]
    p = run(*args, cwd=work)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and lines and lines[-1].startswith("cptjax: error:"), p.stderr
    assert needle in p.stderr, p.stderr
    assert os.listdir(work) == [], os.listdir(work)  # nothing written, no temporary left
    assert set(os.listdir(files)) == before
    assert stat.S_ISFIFO(os.stat(files / "pipe").st_mode)


def test_bom_and_semicolon_csv_load(files):
    import cptjax

    for name in ("bom.csv", "semicolon.csv"):
        run_ = cptjax.load_run(files / name)
        assert run_.lr.size == 100 and np.isfinite(run_.losses["loss"]).all()


def test_outputs_honour_the_umask(tmp_path):
    from cptjax.files import atomic_write

    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "x.txt", "hi")
    finally:
        os.umask(old)
    assert (os.stat(tmp_path / "x.txt").st_mode & 0o777) == 0o640


def test_fit_json_is_strict_and_warnings_once(files, tmp_path):
    out = tmp_path / "f.json"
    rows = ["step,lr,loss"] + [f"{s},2e-4,{3 + 0.5 * (s * 2e-4) ** -0.5:.6f}" for s in range(10, 2001, 10)]
    (tmp_path / "r.csv").write_text("\n".join(rows))
    p = run("fit", str(tmp_path / "r.csv"), "--law", "cpt", "--out", str(out))
    assert p.returncode == 0, p.stderr
    text = out.read_text()
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text)
    warned = [l for l in (p.stdout + p.stderr).splitlines() if "not identifiable" in l]
    assert len(warned) == len(set(warned))  # each warning printed once


@pytest.mark.parametrize("delay", [0.5, 6.0])
def test_sigint_exits_130_and_leaves_nothing(tmp_path, delay):
    """Ctrl-C at any moment (during start-up/compilation, or in the optimisation loop): exit 130,
    one line, no output folder and no temporary left."""
    p = subprocess.Popen([sys.executable, "-m", "cptjax.cli", "design", "--iterations", "100000",
                          "--out", str(tmp_path / "d")], cwd=tmp_path, env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_leave_nothing(tmp_path, sig, code):
    p = subprocess.Popen([sys.executable, "-m", "cptjax.cli", "design", "--iterations", "100000",
                          "--out", str(tmp_path / "d")], cwd=tmp_path, env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4.0)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == code and "Traceback" not in err
    assert os.listdir(tmp_path) == []  # no hidden temporary folder either


def test_a_commands_outputs_are_one_set(tmp_path):
    """Inside files.output_set every output waits under its temporary name and all land together;
    an error before the end leaves none of them (the JSON of `fit --plot` is not left without its
    figure), and a folder's files join an existing folder only at the end."""
    from cptjax import files

    (tmp_path / "rep").mkdir()
    (tmp_path / "rep" / "old.txt").write_text("old run")
    with pytest.raises(RuntimeError):
        with files.output_set():
            files.atomic_write(tmp_path / "fit.json", "{}")
            with files.atomic_dir(tmp_path / "rep") as d:
                open(os.path.join(d, "report.json"), "w").write("{}")
            assert not (tmp_path / "fit.json").exists() and not (tmp_path / "rep" / "report.json").exists()
            raise RuntimeError("the figure failed")
    assert sorted(os.listdir(tmp_path)) == ["rep"] and os.listdir(tmp_path / "rep") == ["old.txt"]
    with files.output_set():
        files.atomic_write(tmp_path / "fit.json", "{}")
        with files.atomic_dir(tmp_path / "rep") as d:
            open(os.path.join(d, "report.json"), "w").write("{}")
    assert sorted(os.listdir(tmp_path)) == ["fit.json", "rep"]
    assert sorted(os.listdir(tmp_path / "rep")) == ["old.txt", "report.json"]
