"""``cptjax tune STUDY.toml --out DIR``: the tuner's loop around the user's own trainer, or the lab's.

Each trial's CPT schedule is written per step (``cpt_step,lr``, the format of ``cptjax design``'s
``plan.csv``) and the study's ``train`` command template is run with ``{schedule}``, ``{replay}``,
``{steps}``, ``{seed}``, ``{log}``, ``{peak}``, ``{trial}`` filled in; the log it writes is read
back in any format cptjax reads. A failing command or a broken log is recorded as a failed trial
with the tail of its stderr, and the study goes on. ``DIR/journal.json`` records every trial, so a
killed study resumes where it stopped (the tuner replays the journal: the same trials in the same
order, given the seed); ``DIR/report.json`` holds the recommendation and every trial.

With a ``[lab]`` table instead of ``train``, the trials train the lab's model (``cptjax lab``) on
its corpora: the PT run once (its checkpoint in ``DIR/lab/.ckpt``), every trial a CPT branch from
it with the trial's schedule and replay ratio, one at a time (the lab's training takes every core).
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import json
import math
import os
import shlex
import subprocess
import threading
import time
import tomllib

import numpy as np

from ..laws import check_lam
from ..schedules import to_csv
from ._tuner import Recipe, Space, Trial, Tuner
from ..errors import InputError
from ..files import atomic_write, dumps, read_text

__all__ = ["load_tune_study", "run_tune_study", "TUNE_EXAMPLE"]

TUNE_EXAMPLE = '''# cptjax tune study: the PT run being continued, the CPT budget, the objective, the space, the trainer.
pt = "wsd(steps=4000,peak=2e-4,warmup=100,decay=0.2,final=2e-5)"  # PT schedule (text form or file(...))
steps = 1500            # CPT steps of the run being planned
weight_general = 0.5    # lambda1 of lambda1*L_general + (1 - lambda1)*L_domain
trials = 12             # at most this many trials
noise = 0.005           # seed noise of the objective: stop when no trial is expected to gain more
# lam = 0.99            # fix the law form (the areas' momentum decay); default: chosen by held-out trials
seed = 0
columns = ["general_loss", "domain_loss"]
# Run from DIR/trials/NNN/; the command writes {log} (any format cptjax reads).
train = "python train.py --lr-file {schedule} --replay {replay} --steps {steps} --seed {seed} --log {log}"
# Or, instead of `train`, the lab's own model and corpora (cptjax lab):
# [lab]
# model = {preset = "cpu"}   # and any [model] key of a lab study
# eval_interval = 50
# eval_batches = 8
# general = "prose.txt"      # optional: your corpora (default: CPython's prose and source)
# domain = "code.txt"

[space]
peak = [2e-5, 1e-3]     # log scale
replay = [0.0, 0.5]
families = ["cosine", "wsd"]
decay = [0.1, 0.4]      # WSD cooldown fraction
final = [0.0, 0.1]      # final LR as a fraction of the peak
warmup = 50
'''

_KEYS = {"pt", "steps", "weight_general", "trials", "noise", "seed", "columns", "train", "space",
         "candidates", "init_fraction", "timeout", "lab", "lam"}
_LAB_KEYS = {"model", "eval_interval", "eval_batches", "seed", "general", "domain"}


def load_tune_study(path) -> dict:
    """Read and check a tune study (TOML), naming the file and key of anything wrong."""
    text = read_text(path, "tune study", limit=1 << 20)
    try:
        d = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as e:
        raise InputError(f"{path}: not valid TOML ({str(e)[:200]})") from None
    bad = sorted(set(d) - _KEYS)
    if bad:
        raise InputError(f"{path}: unknown key(s) {bad}; known: {sorted(_KEYS)}")
    for k in ("pt", "steps"):
        if k not in d:
            raise InputError(f"{path}: missing key {k!r}")
    if ("train" in d) == ("lab" in d):
        raise InputError(f"{path}: give either 'train' (your trainer's command template) or a [lab] table")
    if "train" in d and (not isinstance(d["train"], str) or "{log}" not in d["train"]
                         or "{schedule}" not in d["train"]):
        raise InputError(f"{path}: 'train' must be a command template with {{schedule}} and {{log}}")
    if "train" in d:
        try:
            d["train"].format(**{k: "x" for k in _FIELDS})
        except (KeyError, IndexError, ValueError) as e:
            raise InputError(f"{path}: 'train': not a valid template ({type(e).__name__}: {e}); its fields "
                             f"are {{{'}, {'.join(_FIELDS)}}}, literal braces are written {{{{ }}}}") from None
    _check_settings(path, d)
    if "lab" in d:
        if not isinstance(d["lab"], dict) or set(d["lab"]) - _LAB_KEYS:
            raise InputError(f"{path}: [lab] must be a table with keys among {sorted(_LAB_KEYS)}")
        if not isinstance(d["pt"], str):
            raise InputError(f"{path}: with [lab], 'pt' must be a schedule in text form")
        for k in ("general", "domain"):
            if k in d["lab"] and not (isinstance(d["lab"][k], str) and os.path.isfile(d["lab"][k])):
                raise InputError(f"{path}: lab.{k} must name a text file (the corpus), got {d['lab'][k]!r}")
    if d.get("lam") is not None:
        try:
            check_lam(d["lam"], law=True)
        except InputError as e:
            raise InputError(f"{path}: {e}") from None
    for k, lo in (("trials", 1), ("steps", 2)):
        if isinstance(d.get(k, lo), bool) or not isinstance(d.get(k, lo), int) or d.get(k, lo) < lo:
            raise InputError(f"{path}: {k!r} must be an integer >= {lo}, got {d.get(k)!r}")
    if "lab" in d:
        _lab_study(d, Trial(0, Recipe("cosine", 1e-3), d["steps"], d["steps"]), None, 0, where=f"{path}: [lab]")
    try:
        space = d.get("space", {})
        if not isinstance(space, dict):
            raise InputError("'space' must be a table")
        d["_space"] = Space(steps=d["steps"], **{k: tuple(v) if isinstance(v, list) else v
                                                for k, v in space.items()})
        d["_candidates"] = [Recipe(**c) for c in d.get("candidates", [])] or None
    except (TypeError, InputError) as e:
        raise InputError(f"{path}: {e}") from None
    return d


_FIELDS = ("schedule", "log", "replay", "steps", "seed", "peak", "trial")


def _check_settings(path, d):
    """The study's scalar settings, each named when wrong (before any trial runs)."""
    def bad(key, want, v):
        raise InputError(f"{path}: {key!r} must be {want}, got {v!r}")

    num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    seeds = [("seed", d.get("seed", 0))]
    if isinstance(d.get("lab"), dict):
        seeds.append(("lab.seed", d["lab"].get("seed", 0)))
    for key, v in seeds:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**31:
            bad(key, "an integer in [0, 2^31)", v)
    if "timeout" in d and not (num(d["timeout"]) and d["timeout"] > 0):
        bad("timeout", "a number of seconds > 0", d["timeout"])
    if "noise" in d and not (num(d["noise"]) and 0 <= d["noise"] <= 1):
        bad("noise", "a number in [0, 1] (the seed noise of the objective, in nats)", d["noise"])
    for key in ("weight_general", "init_fraction"):
        if key in d and not (num(d[key]) and 0 <= d[key] <= 1):
            bad(key, "a number in [0, 1]", d[key])
    if "columns" in d and not (isinstance(d["columns"], list) and len(d["columns"]) == 2
                               and all(isinstance(c, str) and c for c in d["columns"])):
        bad("columns", "a list of two column names [general, domain]", d["columns"])
    if not isinstance(d.get("candidates", []), list) or not all(isinstance(c, dict) for c in d.get("candidates", [])):
        bad("candidates", "a list of tables (one recipe each)", d.get("candidates"))


def _lab_study(study, trial, sched, seed, where="[lab]"):
    """The lab study of one trial: the tune study's PT run, and one CPT branch with the trial's
    schedule (the file ``sched``; ``None`` checks the settings only) and replay ratio."""
    from ..lab import parse_study

    lab, r = study["lab"], trial.recipe
    name = f"trial{trial.number:03d}"
    d = {"name": "tune", "seed": lab.get("seed", 0), "eval_interval": lab.get("eval_interval", 50),
         "eval_batches": lab.get("eval_batches", 8), "model": lab.get("model", {}), "pt": {"pt": study["pt"]},
         "cpt": {"steps": trial.steps, "schedules": {
             name: f"file({sched})" if sched else f"constant(steps={trial.steps},peak={r.peak})"},
                 "grid": [{"pt": ["pt"], "schedule": [name], "peak": [r.peak], "replay": [r.replay],
                           "seed": [seed]}]}}
    if not isinstance(d["model"], dict):
        raise InputError(f"{where}: model must be a table")
    return parse_study(d, where)


_LAB_LOCK = threading.Lock()


@functools.lru_cache(maxsize=2)
def _corpora(general, domain):
    """The lab's corpora, read once per process (every trial of a study trains on them)."""
    from ..lab import load_corpora

    return load_corpora(general, domain)


def _lab_trial(study, out, sched, trial, seed):
    """Train one trial with the lab (one at a time); its run file is the trial's log."""
    from ..lab import run_study

    lab = study["lab"]
    st = _lab_study(study, trial, sched, seed)
    with _LAB_LOCK:
        try:
            corpora = _corpora(lab.get("general"), lab.get("domain"))
            run_study(st, os.path.join(out, "lab"), corpora=corpora, quiet=True, only=[st.runs[0].name])
        except InputError as e:
            return None, f"lab: {e}"
    return os.path.join(out, "lab", st.runs[0].name + ".csv"), None


def _run_trial(study, out, j, trial, pt_last, seed):
    """Run trial ``j`` in ``out/trials/NNN``: its log (a path) and error (``None`` when it ran)."""
    folder = os.path.abspath(os.path.join(out, "trials", f"{j:03d}"))  # the trainer runs in it
    os.makedirs(folder, exist_ok=True)
    sched = os.path.join(folder, "schedule.csv")
    lr = trial.schedule(pt_last)
    atomic_write(sched, to_csv(lr))
    if "lab" in study:
        return _lab_trial(study, out, os.path.abspath(sched), trial, seed)
    log = os.path.join(folder, "log.csv")
    r = trial.recipe
    cmd = study["train"].format(schedule=shlex.quote(sched), log=shlex.quote(log), replay=r.replay,
                                steps=trial.steps, seed=seed, peak=r.peak, trial=trial.number)
    try:
        p = subprocess.run(cmd, shell=True, cwd=folder, capture_output=True, text=True,
                           timeout=study.get("timeout"))
    except subprocess.TimeoutExpired:
        return None, f"timed out after {study.get('timeout')} s"
    if p.returncode != 0:
        last = [ln for ln in p.stderr.splitlines() if ln.strip()][-1:] or ["(no stderr)"]
        return None, f"exit code {p.returncode}: {last[0][-300:]} (the trainer's stderr)"
    return log, None


def _fmt(x) -> str:
    return f"{x:.4g}" if math.isfinite(x) else "n/a (no law fitted yet)"


def _progress(progress, tuner, trial, e, j, n_trials, t0):
    rate = (j + 1) / max(time.perf_counter() - t0, 1e-9)
    b = tuner.best() if tuner.n_trials else None
    progress(f"trial {j + 1}/{n_trials}: {trial.recipe.name()} for {trial.steps} steps"
             f"{' FAILED: ' + e['error'][:120] if e['error'] else ''}; best so far "
             f"{b.recipe.name() + f' (predicted {b.objective:.4f})' if b else '-'}; predicted "
             f"gain left {_fmt(tuner.expected_gain())}; {rate * 60:.2f} trials/min, ETA "
             f"{(n_trials - j - 1) / rate:.0f} s")


def _study_tuner(study: dict, out: str, journal: list, jpath: str):
    """The study's Tuner and the settings its journal records (checked against a resumed one)."""
    # What the trials depend on (not ``trials``: asking a study for more trials resumes it).
    settings = {k: study[k] for k in sorted(study) if not k.startswith("_") and k != "trials"}
    tuner = Tuner(study["_space"] if not study["_candidates"] else None, pt=study["pt"],
                  candidates=study["_candidates"], steps=study["steps"],
                  weight_general=study.get("weight_general", 0.5), noise=study.get("noise", 0.005),
                  init_fraction=study.get("init_fraction", 0.5), seed=study.get("seed", 0), lam=study.get("lam"),
                  columns=tuple(study.get("columns", ("general_loss", "domain_loss"))))
    # the PT's values, not its text: a `file(...)` schedule may change under the same name
    settings["pt_sha256"] = hashlib.sha256(np.ascontiguousarray(tuner.pt).tobytes()).hexdigest()[:16]
    if journal and journal[0].get("settings") != settings:
        raise InputError(f"{out}: holds a tune study made with other settings; use another --out")
    if not journal:  # the folder is made, saying what it was made with, before any trial runs
        os.makedirs(out, exist_ok=True)
        atomic_write(jpath, dumps([{"settings": settings}], indent=1))
    return tuner, settings


def _report(tuner, entries, spent, settings) -> dict:
    b = tuner.best()
    return {"recommendation": {"recipe": b.recipe.to_dict(), "name": b.recipe.name(),
                               "objective": b.objective, "interval90": list(b.interval),
                               "p_best": b.p_best, "general": b.general, "domain": b.domain},
            "cpt_steps_spent": spent, "trials": entries, "stopped_early": tuner.should_stop(),
            "expected_gain_left": tuner.expected_gain(), "settings": settings}


def run_tune_study(study: dict, out: str, progress=None, workers: int = 1) -> dict:
    """Run (or resume) a tune study in folder ``out``; returns the report. ``workers``: trials run
    at once (each batch is asked together; the tuner does not propose a recipe that is running)."""
    jpath = os.path.join(out, "journal.json")
    journal = json.loads(read_text(jpath, "journal")) if os.path.exists(jpath) else []
    tuner, settings = _study_tuner(study, out, journal, jpath)
    entries = journal[1:] if journal else []
    while entries and entries[-1]["error"]:  # a resumed study retries the trials that failed last
        entries.pop()
    t0, spent, k, n_trials = time.perf_counter(), 0, 0, study.get("trials", 12)
    workers = max(1, int(workers))
    while k < n_trials:
        # A batch of up to `workers` trials, asked together and run at once; told in trial order,
        # so that a resumed study replays the same trials whatever finished first.
        batch = [tuner.ask() for _ in range(min(workers, n_trials - k))]
        todo = [(j, t) for j, t in enumerate(batch, start=k) if j >= len(entries)]
        with concurrent.futures.ThreadPoolExecutor(max(1, len(todo))) as pool:
            futs = {j: pool.submit(_run_trial, study, out, j, t,
                                   float(tuner.pt[-1]), study.get("seed", 0) + j) for j, t in todo}
            for j, trial in enumerate(batch, start=k):
                if j < len(entries):  # resume: the journal says what this trial gave
                    e = entries[j]
                    if e["recipe"] != trial.recipe.to_dict() or e["steps"] != trial.steps:
                        raise InputError(f"{jpath}: trial {j} differs from the study's (was the journal edited?)")
                else:
                    log, err = futs[j].result()
                    e = {"number": j, "recipe": trial.recipe.to_dict(), "steps": trial.steps, "log": log,
                         "error": err}
                    entries.append(e)
                if e["error"] is None:
                    try:
                        tuner.tell(trial, e["log"])
                    except InputError as exc:
                        e["error"], e["log"] = f"broken log: {exc}", None
                if e["error"] is not None:  # the tuner neither asks it again nor recommends it
                    tuner.tell(trial, None)
                spent += trial.steps
                atomic_write(jpath, dumps([{"settings": settings}] + entries, indent=1))
                if progress:
                    _progress(progress, tuner, trial, e, j, n_trials, t0)
        k += len(batch)
        if tuner.n_trials and tuner.should_stop():
            break
    if not tuner.n_trials:
        raise InputError(f"every trial failed; the first: {entries[0]['error']}")
    report = _report(tuner, entries, spent, settings)
    atomic_write(os.path.join(out, "report.json"), dumps(report, indent=2))
    _figure(tuner, entries, os.path.join(out, "report.png"))
    return report


def _figure(tuner, entries, path):
    """report.png: each trial's observed objective against the CPT steps spent; every trial's
    curves of both losses with the recommended recipe's predicted curves."""
    import numpy as np

    from ..laws import predict
    from ..plotting import pyplot, save
    from ..schedules import join

    plt = pyplot()
    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    spent, obs = np.cumsum([e["steps"] for e in entries]), {t.trial.number: tuner._observed(t) for t in tuner.told}
    xs = [s for s, e in zip(spent, entries) if e["number"] in obs]
    ax[0].plot(xs, [obs[e["number"]] for e in entries if e["number"] in obs], "o-", ms=3)
    ax[0].set_xlabel("CPT steps spent")
    ax[0].set_ylabel("observed objective at the trial's last step")
    best = tuner.best()
    lr, n_pt = join(tuner.pt, best.recipe.schedule(tuner.steps, tuner.pt[-1]))
    for k, col in enumerate(tuner.columns):
        a = ax[1 + k]
        for t in tuner.told:
            a.plot(np.asarray(t.run.steps) - n_pt, t.run.losses[col], lw=0.8, alpha=0.6)
        if tuner.law is not None:
            x = np.arange(n_pt, lr.size)
            a.plot(x - n_pt + 1, np.asarray(predict(tuner.law[k], lr, n_pt, idx=x, replay=best.recipe.replay)),
                   "k--", lw=1.5, label=f"recommended: {best.recipe.name()} (law)")
            a.legend(fontsize=7)
        a.set_xlabel("CPT step")
        a.set_ylabel(col)
    fig.tight_layout()
    save(fig, path)
