"""The CPT lab at tiny size: corpora held out by file, real training dynamics, resumability, and
run files that ``cptjax fit`` reads without flags."""

import filecmp
import os
import shutil
import tomllib

import numpy as np
import pytest

import cptjax
from cptjax.lab import _corpora as C
from cptjax.lab import _train as L
from cptjax import cli

STUDY = """
name = "t"
seed = 0
eval_interval = 20
eval_batches = 2
[model]
preset = "tiny"
[pt]
c = "constant(steps=400,peak=5e-3,warmup=10)"
[cpt]
steps = 120
[cpt.schedules]
k = "constant(steps={steps},peak={peak})"
cos = "cosine(steps={steps},peak={peak},final=0)"
[[cpt.grid]]
pt = ["c"]
schedule = ["k"]
peak = [5e-3]
replay = [0.0, 0.5]
[[cpt.grid]]
pt = ["c"]
schedule = ["cos"]
peak = [5e-3]
"""


@pytest.fixture(scope="module")
def corpora():
    return L.load_corpora()


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory, corpora):
    out = tmp_path_factory.mktemp("lab")
    study = L.parse_study(tomllib.loads(STUDY))
    L.run_study(study, out, corpora=corpora, quiet=True)
    return out


def test_corpora_held_out_by_file(corpora):
    files = C.stdlib_files()
    rel = [r for r, _ in files]
    assert rel == sorted(rel) and not any("/test/" in f"/{r}" or r.startswith("test_") for r in rel)
    val = {r for r in rel if C._is_val(r)}
    assert 0 < len(val) < len(rel) / 10
    g, d = corpora["general"], corpora["domain"]
    assert g.train.size > 1.5e6 and g.train.size < 4e6  # ~2.3 MB of prose
    assert d.train.size > 5e6 and d.train.size < 15e6  # ~9 MB of source
    assert g.val.size > 5e4 and d.val.size > 1e5
    # Docstrings go to the general set, the rest of the source (comments too) to the domain set.
    src, docs = C.split_source('"""Mod doc."""\nx = 1  # keep\n\ndef f():\n    """F doc."""\n    return "s"\n')
    assert docs == ["Mod doc.", "F doc."]
    assert "doc" not in src and "# keep" in src and 'return "s"' in src


def _losses(path):
    r = cptjax.load_run(path)
    ok = np.isfinite(r.losses["general_loss"])
    return r, r.steps[ok], r.losses["general_loss"][ok], r.losses["domain_loss"][ok]


def test_training_dynamics(study_dir):
    """PT loss falls; after the transfer the general loss rises and the domain loss falls; replay
    0.5 keeps the general loss lower than no replay."""
    run, st, g, d = _losses(study_dir / "c_k_p0.005_r0_s0.csv")
    assert run.n_pt == 400 and run.replay == 0.0 and run.lr.size == 520
    at = np.flatnonzero(st == 400)[0]
    assert g[at] < g[0] - 0.5  # PT learns
    assert g[at + 1:].max() > g[at] + 0.1  # forgetting
    assert d[-1] < d[at] - 0.2  # adaptation
    _, _, g_r, d_r = _losses(study_dir / "c_k_p0.005_r0.5_s0.csv")
    assert g_r[-1] < g[-1] - 0.1 and d_r[-1] > d[-1]  # replay trades domain for general
    np.testing.assert_array_equal(g_r[: at + 1], g[: at + 1])  # the same PT branch


def test_resume_equals_uninterrupted(study_dir, corpora, tmp_path):
    """A run killed mid-way (after its first checkpoint) and restarted ends with the same bytes."""
    study = L.parse_study(tomllib.loads(STUDY))
    spec = next(r for r in study.runs if r.family == "cos")
    os.makedirs(tmp_path / ".ckpt")
    shutil.copy(study_dir / ".ckpt" / "pt-c.final.npz", tmp_path / ".ckpt")
    fns = L._make_fns(study.model)
    assert L.train_run(spec, study, corpora, tmp_path, fns, stop_after=50) is None
    assert not (tmp_path / f"{spec.name}.csv").exists() and (tmp_path / ".ckpt" / f"{spec.name}.npz").exists()
    path = L.train_run(spec, study, corpora, tmp_path, fns)
    assert filecmp.cmp(path, study_dir / f"{spec.name}.csv", shallow=False)
    assert not (tmp_path / ".ckpt" / f"{spec.name}.npz").exists()


def test_finished_runs_are_skipped(study_dir, corpora):
    before = {p: os.path.getmtime(p) for p in study_dir.glob("*.csv")}
    L.run_study(L.parse_study(tomllib.loads(STUDY)), study_dir, corpora=corpora, quiet=True)
    assert {p: os.path.getmtime(p) for p in study_dir.glob("*.csv")} == before


def test_run_files_fit_without_flags(study_dir, tmp_path, capsys):
    files = sorted(str(p) for p in study_dir.glob("c_*.csv"))
    out = tmp_path / "fit.json"
    assert cli.main(["fit", *files, "--loss-column", "domain_loss", "--out", str(out), "--json"]) == 0
    import json

    res = json.loads(out.read_text())
    assert res["status"] in ("converged", "max-iterations") and res["metrics"]["mean_rel_error"] < 0.05


@pytest.mark.parametrize("patch, msg", [
    ({"model": {"d_model": 30, "n_head": 4}}, "multiple of model.n_head"),
    ({"cpt": {"steps": 10, "schedules": {}, "grid": [{"pt": ["zz"], "schedule": [], "peak": []}]}},
     "unknown PT schedule 'zz'"),
    ({"pt": {"c": "cosine(steps=10)"}}, "peak"),
    ({"model": {"depth": 3}}, r"\[model\]: unknown key\(s\) \['depth'\]"),
    ({"model": "huge"}, r"\[model\]: expected a table"),
    ({"model": {"d_model": "x"}}, "model.d_model: 'x' is not an integer"),
    ({"stesp": 3}, r"unknown key\(s\) \['stesp'\]"),
    ({"eval_interval": 0}, "eval_interval: 0 is not an integer >= 1"),
    ({"cpt": {"steps": 10, "schedules": {"c": "cosine(steps={step},peak={peak})"},
              "grid": [{"pt": ["c"], "schedule": ["c"], "peak": [1e-3]}]}}, "only {steps} and {peak}"),
    ({"cpt": {"steps": 10, "schedules": {}, "grid": [{"pt": [], "schedule": [], "peak": ["x"]}]}},
     r"cpt.grid\[0\]: peak: 'x' is not a number"),
    ({"cpt": {"steps": 10, "schedules": {}, "grid": [{"pt": [], "schedule": [], "peak": [], "seed": [0.5]}]}},
     "seed: 0.5 is not an integer"),
    # nonsense hyper-parameters would train uphill with normal-looking run files
    ({"model": {"vocab": 1}}, "vocab must be >= 256"),
    ({"model": {"clip": -1.0}}, "clip"),
    ({"model": {"weight_decay": -0.1}}, "weight_decay"),
    ({"eval_batches": 5000}, "eval_batches = 5000 is above the limit"),
])
def test_study_errors(patch, msg):
    d = tomllib.loads(STUDY)
    for k, v in patch.items():
        d[k] = {**d.get(k, {}), **v} if isinstance(v, dict) and k == "model" else v
    with pytest.raises(ValueError, match=msg):
        L.parse_study(d)


def test_quick_and_default_studies_parse():
    q = L.parse_study(tomllib.loads(L.QUICK_STUDY))
    d = L.parse_study(tomllib.loads(L.DEFAULT_STUDY))
    assert len(q.runs) == 4 and len(d.runs) == 16 + 4 + 1
    assert {r.replay for r in d.runs} == {0.0, 0.25, 0.5} and {r.seed for r in d.runs} == {0, 1}


def test_study_folder_refuses_other_settings(study_dir, corpora):
    """A folder made with one study is not silently reused (and relabelled) by another."""
    d = tomllib.loads(STUDY)
    d["eval_interval"] = 40
    with pytest.raises(cptjax.InputError, match="other settings"):
        L.run_study(L.parse_study(d), study_dir, corpora=corpora, quiet=True)
    d = tomllib.loads(STUDY)
    d["cpt"]["schedules"]["k"] = "cosine(steps={steps},peak={peak},final=0)"  # another schedule, same name
    with pytest.raises(cptjax.InputError, match="run c_k_"):
        L.run_study(L.parse_study(d), study_dir, corpora=corpora, quiet=True)


def test_damaged_checkpoint_is_a_user_error(study_dir, corpora, tmp_path):
    study = L.parse_study(tomllib.loads(STUDY))
    spec = next(r for r in study.runs if r.family == "cos")
    os.makedirs(tmp_path / ".ckpt")
    good = (study_dir / ".ckpt" / "pt-c.final.npz").read_bytes()
    (tmp_path / ".ckpt" / "pt-c.final.npz").write_bytes(good[: len(good) // 2])  # truncated by a kill
    with pytest.raises(cptjax.InputError, match="damaged"):
        L.train_run(spec, study, corpora, tmp_path, L._make_fns(study.model))
    os.remove(tmp_path / ".ckpt" / "pt-c.final.npz")
    with pytest.raises(cptjax.InputError, match="PT checkpoint"):
        L.train_run(spec, study, corpora, tmp_path, L._make_fns(study.model))
