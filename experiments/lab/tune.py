"""The tuning benchmark: ``cptjax tune`` against random search, Optuna (TPE, TPE + Hyperband) and
the published CPT recipes, on a table of real lab runs (as NAS-Bench / HPO-B do).

Stage ``grid`` writes ``tune/grid.toml``: a 0.1M-parameter byte-level GPT (d_model 64, 2 layers,
context 64, batch 16) pre-trained 2 000 steps on CPython's prose with WSD (peak 3e-3, cooled to
3e-4 at the branch), then 500 CPT steps on its Python source for every recipe of the grid —
6 peak LRs (1.5e-4 … 4.8e-3, ×2 apart: 0.05–1.6× the PT peak) × 5 replay ratios
(0, 0.1, 0.25, 0.5, 0.75) × 2 families (cosine to 0; WSD with a 20% linear cooldown to 0) ×
2 data-order seeds — and the published recipes trained as published (relative to the PT peak),
2 seeds each. Train it with ``cptjax lab experiments/lab/tune/grid.toml --out DIR`` (about 30
minutes on the 2-core CPU), then ``python -m experiments.lab.tune pack DIR`` stores the runs
(gzipped) in ``tune/runs/``.

Stage ``bench`` (default) reads the stored runs and runs every strategy against the table (a
trial of length k costs k CPT steps and returns the stored run truncated at k, one seed drawn at
random; a strategy's recommendation is scored by its measured objective, mean over seeds, minus
the best in the grid): random search, Optuna TPE, Optuna TPE with Hyperband pruning, the
published recipes (one run each), and ``cptjax.Tuner`` in candidates mode, for λ1 ∈ {0.2, 0.5, 0.8}.
Writes ``results/tune.json`` and ``results/tune.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import os
import pathlib
import sys
import time

import numpy as np

import cptjax
from cptjax.files import atomic_write

HERE = pathlib.Path(__file__).resolve().parent
WEIGHTS = (0.2, 0.5, 0.8)


@dataclasses.dataclass(frozen=True)
class Spec:
    """One tabular benchmark: the lab model, the PT run, the CPT grid and where its runs live."""

    name: str
    folder: pathlib.Path
    pt_name: str
    pt: str
    pt_peak: float
    steps: int
    peaks: tuple
    replays: tuple
    shapes: dict  # family -> Recipe keyword arguments (its shape)
    seeds: tuple
    model: dict
    eval_interval: int = 25
    domain: str = "CPython's source"
    more: tuple = ()  # other tables' folders whose runs this table also holds (same model and PT)

    @property
    def families(self) -> tuple:
        return tuple(self.shapes)

    def recipe(self, family, peak, replay) -> cptjax.Recipe:
        return cptjax.Recipe(family, peak, replay, **self.shapes[family])

    def grid(self) -> list:
        """The table's recipes (what cptjax.Tuner's candidates are): family x peak x replay."""
        return [self.recipe(f, p, r) for f in self.families for p in self.peaks for r in self.replays]

    def pt_schedule(self) -> np.ndarray:
        return cptjax.schedules.parse(self.pt)

    def published(self) -> dict:
        """The published CPT recipes, relative to the lab's PT peak (warm-ups from the PT's last LR).

        Ibrahim et al. 2024 (arXiv 2403.08763): linear re-warm over 1% of the steps to the PT peak,
        cosine to 0.1x of it, 5% replay (25% for a strong shift). Parmar et al. 2024 (arXiv
        2407.07263): no re-warm, start at the PT minimum (0.1x the PT peak), cosine to 1/100 of that.
        Wang et al. 2025 (the CPT paper's takeaway): re-warm to 10% of the PT peak (cosine to 0)."""
        w, peak = self.steps // 100, self.pt_peak
        return {"ibrahim-5%": cptjax.Recipe("cosine", peak, 0.05, final=0.1, warmup=w),
                "ibrahim-25%": cptjax.Recipe("cosine", peak, 0.25, final=0.1, warmup=w),
                "parmar": cptjax.Recipe("cosine", peak / 10, 0.0, final=0.01),
                "wang-rewarm-10%": cptjax.Recipe("cosine", peak / 10, 0.0, final=0.0, warmup=w)}


# The project's table: every tuner choice was developed on it.
MAIN = Spec("main", HERE / "tune", "wsd", "wsd(steps=2000,peak=0.003,warmup=100,decay=0.2,final=0.0003)",
            3e-3, 500, (1.5e-4, 3e-4, 6e-4, 1.2e-3, 2.4e-3, 4.8e-3), (0.0, 0.1, 0.25, 0.5, 0.75),
            {"cosine": {"decay": 0.2, "final": 0.0}, "wsd": {"decay": 0.2, "final": 0.0}}, (0, 1),
            {"preset": "cpu", "d_model": 64, "seq_len": 64})
# A held-out table, built after the tuner was frozen and never tuned on: another model (3 layers,
# d_model 48, context 96), another PT (cosine to 10%, 1 500 steps), another domain (C headers),
# another CPT length (400), other peaks, replays and shapes (WSD with a 30% cooldown).
HELDOUT = Spec("heldout", HERE / "tune_heldout", "cos", "cosine(steps=1500,peak=0.002,warmup=75,final=0.0002)",
               2e-3, 400, (1e-4, 2.5e-4, 6e-4, 1.5e-3, 4e-3), (0.0, 0.15, 0.35, 0.6),
               {"cosine": {"final": 0.0}, "wsd": {"decay": 0.3, "final": 0.0}}, (0, 1),
               {"preset": "cpu", "d_model": 48, "n_layer": 3, "n_head": 4, "seq_len": 96},
               eval_interval=20, domain="C headers (/usr/include/*.h)")
# The held-out table with its peak range carried past the optimum (issue 33): two more peaks, WSD
# only, 2 seeds (tune_wide/grid.toml); its other runs are the held-out table's.
WIDE = dataclasses.replace(HELDOUT, name="wide", folder=HERE / "tune_wide", peaks=HELDOUT.peaks + (1e-2, 2.5e-2),
                           more=(HERE / "tune_heldout",))
SPECS = {s.name: s for s in (MAIN, HELDOUT, WIDE)}
# The main table's constants, by their old names.
DIR, RUNS, PT, PT_PEAK, STEPS = MAIN.folder, MAIN.folder / "runs", MAIN.pt, MAIN.pt_peak, MAIN.steps
PEAKS, REPLAYS, FAMILIES, SEEDS, MODEL = MAIN.peaks, MAIN.replays, MAIN.families, MAIN.seeds, MAIN.model


def grid(spec=MAIN) -> list:
    return spec.grid()


def published(spec=MAIN) -> dict:
    return spec.published()


def pt_schedule(spec=MAIN) -> np.ndarray:
    return spec.pt_schedule()


def _family_text(family, shape) -> str:
    if family == "cosine":
        return f'cosine = "cosine(steps={{steps}},peak={{peak}},final={shape.get("final", 0.0):g})"'
    return f'wsd = "wsd(steps={{steps}},peak={{peak}},decay={shape["decay"]:g},final={shape.get("final", 0.0):g})"'


def grid_stage(spec=MAIN):
    if any(s.get("final", 0.0) != 0.0 for s in spec.shapes.values()):
        raise SystemExit("a grid family's final LR must be 0 (the lab's text form takes an absolute LR)")
    sched_dir = spec.folder / "schedules"
    os.makedirs(sched_dir, exist_ok=True)
    last = float(spec.pt_schedule()[-1])
    model = [f"{k} = {json.dumps(v)}" for k, v in spec.model.items()]
    toml = [f'name = "tune-{"grid" if spec is MAIN else spec.name}"', "seed = 0", f"eval_interval = {spec.eval_interval}", "eval_batches = 8",
            "[model]", *model, "[pt]", f'{spec.pt_name} = "{spec.pt}"', "[cpt]", f"steps = {spec.steps}",
            "[cpt.schedules]", *(_family_text(f, s) for f, s in spec.shapes.items())]
    rel = lambda p: os.path.relpath(p, HERE.parents[1])
    pub = spec.published()
    for name, rec in pub.items():
        path = sched_dir / f"{name}.csv"
        atomic_write(path, cptjax.schedules.to_csv(rec.schedule(spec.steps, last)))
        toml.append(f'"{name}" = "file({rel(path)})"')
    for seed in spec.seeds:  # seed 0 of everything first
        toml += ["[[cpt.grid]]", f'pt = ["{spec.pt_name}"]', f"schedule = {list(spec.families)}".replace("'", '"'),
                 f"peak = {list(spec.peaks)}", f"replay = {list(spec.replays)}", f"seed = [{seed}]"]
        for name, rec in pub.items():
            toml += ["[[cpt.grid]]", f'pt = ["{spec.pt_name}"]', f'schedule = ["{name}"]', f"peak = [{rec.peak!r}]",
                     f"replay = [{rec.replay!r}]", f"seed = [{seed}]"]
    atomic_write(spec.folder / "grid.toml", "\n".join(toml) + "\n")
    extra = "" if spec is MAIN else " --domain /usr/include/*.h"
    print(f"wrote {spec.folder / 'grid.toml'}: train it with  cptjax lab {rel(spec.folder / 'grid.toml')} --out DIR{extra}")


def pack_stage(src, dest=RUNS, skip_pt=False):
    """Store the trained runs gzipped in ``dest`` (and the manifest)."""
    os.makedirs(dest, exist_ok=True)
    src = pathlib.Path(src)
    n = 0
    for p in sorted(src.glob("*.csv")):
        if p.name.startswith("pt-") and skip_pt:
            continue  # the off-grid study's PT run is the table's
        atomic_write(dest / (p.name + ".gz"), gzip.compress(p.read_bytes(), mtime=0))
        n += 1
    atomic_write(dest / "manifest.json", (src / "manifest.json").read_text())
    print(f"stored {n} runs in {dest}")


# -- the table -------------------------------------------------------------------------------------
class Table:
    """The stored runs: per recipe and seed, the CPT-phase evaluation points (steps counted from
    the start of CPT) of both losses; the PT run's log."""

    def __init__(self, spec=MAIN):
        self.spec = spec
        folder, grid_ = spec.folder / "runs", spec.grid()
        self.curves, self.extra = {}, {}
        self.pt_log = None
        files = sorted(pathlib.Path(folder).glob("*.csv.gz"))
        for more in spec.more:
            files += [p for p in sorted((more / "runs").glob("*.csv.gz")) if not p.name.startswith("pt-")]
        for p in files:
            run = cptjax.load_run(p)
            if p.name.startswith("pt-"):
                self.pt_log = run
                continue
            fam, peak, rep, seed = _parse_name(p.name)
            s = np.asarray(run.steps)
            g, d = run.losses["general_loss"], run.losses["domain_loss"]
            ok = (s > run.n_pt) & np.isfinite(g) & np.isfinite(d)
            self.n_pt = run.n_pt
            entry = (s[ok] - run.n_pt, g[ok], d[ok])
            if fam in spec.families:
                rec = next(r for r in grid_ if r.family == fam and np.isclose(r.peak, peak)
                           and np.isclose(r.replay, rep))
                self.curves.setdefault(rec, {})[seed] = entry
            else:
                self.extra.setdefault(fam, {})[seed] = entry
        self.recipes = [r for r in grid_ if r in self.curves]

    def final(self, entry, lam1):
        _, g, d = entry
        return lam1 * g[-1] + (1 - lam1) * d[-1]

    def objective(self, rec, lam1):
        """Measured objective of a grid recipe (or published name): mean over seeds."""
        runs = self.curves[rec] if rec in self.curves else self.extra[rec]
        return float(np.mean([self.final(e, lam1) for e in runs.values()]))

    def best(self, lam1):
        return min(self.objective(r, lam1) for r in self.recipes)

    def noise(self, lam1):
        """Seed noise of the objective: the sd of one run's objective, from seed pairs (|a-b|/sqrt 2, RMS)."""
        diffs = [self.final(c[0], lam1) - self.final(c[1], lam1) for c in self.curves.values() if len(c) > 1]
        return float(np.sqrt(np.mean(np.square(diffs)) / 2))

    def trial(self, rec, k, rng):
        """The stored run of ``rec`` truncated at ``k`` CPT steps, one seed at random: a Run with
        CPT-relative steps, as a user's CPT log would be."""
        seeds = sorted(self.curves[rec])
        s, g, d = self.curves[rec][seeds[rng.integers(len(seeds))]]
        keep = s <= k
        return cptjax.Run("trial", np.zeros(1), 0, s[keep], {"general_loss": g[keep], "domain_loss": d[keep]})


def _parse_name(name):
    # wsd_{family}_p{peak}_r{replay}_s{seed}.csv.gz
    stem = name[:-len(".csv.gz")]
    rest, seed = stem.rsplit("_s", 1)
    rest, rep = rest.rsplit("_r", 1)
    rest, peak = rest.rsplit("_p", 1)
    return rest.split("_", 1)[1], float(peak), float(rep), int(seed)


# -- strategies: each returns [(steps spent, recommended recipe)] after every trial ---------------
def random_search(table, lam1, budget, rng):
    order = rng.permutation(len(table.recipes))
    out, spent, best = [], 0, (np.inf, None)
    for i in order:
        rec = table.recipes[i]
        run = table.trial(rec, table.spec.steps, rng)
        spent += table.spec.steps
        obj = lam1 * run.losses["general_loss"][-1] + (1 - lam1) * run.losses["domain_loss"][-1]
        best = min(best, (obj, i))
        out.append((spent, table.recipes[best[1]]))
        if spent >= budget:
            break
    return out


def optuna_search(table, lam1, budget, rng, pruner=False):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=int(rng.integers(2**31)))
    spec = table.spec
    prune = optuna.pruners.HyperbandPruner(min_resource=spec.eval_interval, max_resource=spec.steps,
                                           reduction_factor=3) if pruner else optuna.pruners.NopPruner()
    study = optuna.create_study(sampler=sampler, pruner=prune)
    fams, peaks, reps = sorted({r.family for r in table.recipes}), spec.peaks, spec.replays
    out, spent = [], 0
    while spent < budget:
        t = study.ask()
        fam = t.suggest_categorical("family", fams)
        # a family with fewer peaks on the table (the wide table's WSD-only high peaks) gets its own
        # peak parameter: the space is the table's
        own = sorted({r.peak for r in table.recipes if r.family == fam})
        peak = t.suggest_categorical("peak" if len(own) == len(peaks) else f"peak_{fam}", own)
        rec = spec.recipe(fam, peak, t.suggest_categorical("replay", reps))
        run = table.trial(rec, spec.steps, rng)
        obj = lam1 * run.losses["general_loss"] + (1 - lam1) * run.losses["domain_loss"]
        state, used = None, spec.steps
        for k, v in zip(run.steps, obj):
            t.report(float(v), int(k))
            if pruner and t.should_prune():
                state, used = optuna.trial.TrialState.PRUNED, int(k)
                break
        spent += used
        if state is None:
            study.tell(t, float(obj[-1]))
        else:
            study.tell(t, state=state)
        done = [x for x in study.trials if x.state == optuna.trial.TrialState.COMPLETE]
        if done:
            p = study.best_trial.params
            out.append((spent, spec.recipe(p["family"], p.get("peak", p.get(f"peak_{p['family']}")), p["replay"])))
    return out


def cptjax_search(table, lam1, budget, rng, noise):
    tuner = cptjax.Tuner(candidates=table.recipes, steps=table.spec.steps, pt=table.spec.pt_schedule(), weight_general=lam1,
                         noise=noise, pt_log=table.pt_log, seed=int(rng.integers(2**31)))
    out, spent = [], 0
    stopped = (None, None)  # (CPT steps spent, recommendation) where should_stop() first said stop
    while spent < budget:
        t = tuner.ask()
        tuner.tell(t, table.trial(t.recipe, t.steps, rng))
        spent += t.steps
        out.append((spent, tuner.best().recipe))
        if stopped[0] is None and tuner.should_stop():
            stopped = out[-1]
    return out, tuner, stopped


def offgrid_result(table, lam1):
    """The continuous-mode recommendation for ``lam1``, trained with 3 seeds: its measured
    objective (mean, sd) and regret against the grid's best."""
    rec_path, runs = OFFGRID / "recommendations.json", OFFGRID / "runs"
    if table.spec is not MAIN or not (rec_path.exists() and runs.exists()):
        return None
    name = f"offgrid-l{lam1:g}"
    rec = json.loads(rec_path.read_text()).get(name)
    finals = []
    for p in sorted(runs.glob(f"wsd_{name}_*.csv.gz")):
        r = cptjax.load_run(p)
        g, d = r.losses["general_loss"], r.losses["domain_loss"]
        ok = np.isfinite(g) & np.isfinite(d)
        finals.append(lam1 * g[ok][-1] + (1 - lam1) * d[ok][-1])
    if rec is None or not finals:
        return None
    m = float(np.mean(finals))
    return {**rec, "measured": finals, "measured_mean": m,
            "measured_sd": float(np.std(finals, ddof=1)) if len(finals) > 1 else None,
            "regret": m - table.best(lam1)}


def regret_curve(table, lam1, trace, grid_steps):
    """Regret of the recommendation at each budget in ``grid_steps`` (NaN before the first)."""
    best = table.best(lam1)
    out = np.full(len(grid_steps), np.nan)
    for j, b in enumerate(grid_steps):
        recs = [r for s, r in trace if s <= b]
        if recs:
            out[j] = table.objective(recs[-1], lam1) - best
    return out


def _with_stop(result, stops):
    """cptjax_search's trace; where its tuner first said stop, appended to ``stops``."""
    out, _, stopped = result
    stops.append(stopped)
    return out


def _median_at(curves, grid_steps, b):
    """The median regret over repeats once ``b`` CPT steps are spent (NaN before any)."""
    j = int(np.searchsorted(grid_steps, b, side="right")) - 1
    return float(np.nanmedian(curves[:, j])) if j >= 0 and np.isfinite(curves[:, j]).any() else None


def bench_stage(quick=False, repeats=None, spec=MAIN, only=None, out=None, budget_runs=None):
    table = Table(spec)
    steps = spec.steps
    budget = (budget_runs or (12 if quick else 20)) * steps
    grid_steps = np.arange(steps // 2, budget + 1, steps // 2)
    n_cheap = repeats or (5 if quick else 50)
    n_tuner = repeats or (2 if quick else 10)
    weights = WEIGHTS[1:2] if quick else WEIGHTS
    res = {"table": {"name": spec.name, "recipes": len(table.recipes), "seeds": len(spec.seeds), "steps": steps,
                     "pt": spec.pt, "peaks": spec.peaks, "replays": spec.replays, "shapes": spec.shapes,
                     "model": spec.model, "domain": spec.domain, "n_pt": table.n_pt},
           "budget_steps": int(budget), "grid_steps": grid_steps.tolist(), "weights": {}}
    t0 = time.time()
    for lam1 in weights:
        noise, best = table.noise(lam1), table.best(lam1)
        best_rec = min(table.recipes, key=lambda r: table.objective(r, lam1))
        entry = {"seed_noise": noise, "best_objective": best, "best_recipe": best_rec.to_dict(),
                 "published": {n: {"regret": table.objective(n, lam1) - best, "steps": steps}
                               for n in table.extra},
                 "strategies": {}}
        strategies = {"random": (n_cheap, lambda rng: random_search(table, lam1, budget, rng)),
                      "optuna-tpe": (n_cheap, lambda rng: optuna_search(table, lam1, budget, rng)),
                      "optuna-tpe-hyperband": (n_cheap, lambda rng: optuna_search(table, lam1, budget, rng, True)),
                      "cptjax": (n_tuner, lambda rng: _with_stop(cptjax_search(table, lam1, budget, rng, noise), stops))}
        if only:
            strategies = {k: v for k, v in strategies.items() if k in only}
        for name, (n, run) in strategies.items():
            curves, stops = [], []
            for rep in range(n):
                curves.append(regret_curve(table, lam1, run(np.random.default_rng([rep, int(lam1 * 10)])), grid_steps))
                print(f"[tune bench] lambda1={lam1} {name} repeat {rep + 1}/{n}  "
                      f"{time.time() - t0:.0f}s", file=sys.stderr, flush=True)
            c = np.array(curves)
            med = np.nanmedian(c, axis=0)
            reach = next((int(s) for s, m in zip(grid_steps, med) if m <= noise), None)
            entry["strategies"][name] = {
                "repeats": n, "median": med.tolist(), "q25": np.nanquantile(c, 0.25, axis=0).tolist(),
                "q75": np.nanquantile(c, 0.75, axis=0).tolist(), "steps_to_noise": reach,
                "final_median": float(med[-1]),
                "regret_at_runs": {str(k): _median_at(c, grid_steps, k * steps) for k in (2, 5, 12)}}
            if name == "cptjax":
                regrets = [table.objective(r, lam1) - best for _, r in stops if r is not None]
                entry["strategies"][name]["stop"] = {
                    "stopped": len(regrets), "repeats": n,
                    "within_noise": sum(x <= noise for x in regrets),
                    "median_steps": float(np.median([s_ for s_, r in stops if r is not None])) if regrets else None,
                    "regrets": regrets}
        entry["offgrid"] = offgrid_result(table, lam1)
        res["weights"][str(lam1)] = entry
    plot(res, quick, spec, out)
    return res


def plot(res, quick, spec=MAIN, out=None):
    from experiments._common import ROOT, plt, save

    ws = list(res["weights"])
    fig, axes = plt.subplots(1, len(ws), figsize=(5 * len(ws), 4), squeeze=False)
    x = np.asarray(res["grid_steps"]) / spec.steps
    for ax, w in zip(axes[0], ws):
        e = res["weights"][w]
        for name, s in e["strategies"].items():
            ax.plot(x, s["median"], label=name)
            ax.fill_between(x, s["q25"], s["q75"], alpha=0.15)
        for n, p in e["published"].items():
            ax.scatter([1], [max(p["regret"], 1e-4)], marker="x", label=n)
        ax.axhline(e["seed_noise"], color="k", ls=":", lw=1, label="seed noise")
        ax.set_yscale("log")
        ax.set_xlabel("CPT steps spent (full runs)")
        ax.set_ylabel("regret (nats/byte)")
        ax.set_title(f"lambda1 = {w}")
    axes[0][0].legend(fontsize=7)
    name = out or "tune" + ("" if spec is MAIN else f"_{spec.name}") + ("_quick" if quick else "")
    save(str(ROOT / "experiments" / "results"), name, res, fig)


OFFGRID = DIR / "offgrid"


def offgrid_stage(budget_runs=10):
    """Continuous mode: for each lambda1, a Tuner over the continuous space (peak 1.5e-4..4.8e-3,
    replay 0..0.75, both families, WSD cooldown 10-40%, cosine final 0-10%) is told the trials of
    one candidates-mode search on the table (the same budget), and its recommendation is written as
    a lab study to train with 3 seeds: ``cptjax lab experiments/lab/tune/offgrid/offgrid.toml --out DIR``,
    then ``pack-offgrid DIR``."""
    table = Table()
    os.makedirs(OFFGRID, exist_ok=True)
    space = cptjax.Space(steps=STEPS, peak=(PEAKS[0], PEAKS[-1]), replay=(0.0, 0.75), decay=(0.1, 0.4),
                         final=(0.0, 0.1))
    last = float(pt_schedule()[-1])
    recs = {}
    toml = ['name = "tune-offgrid"', "seed = 0", "eval_interval = 25", "eval_batches = 8", "[model]",
            *[f"{k} = {json.dumps(v)}" for k, v in MODEL.items()], "[pt]", f'wsd = "{PT}"', "[cpt]",
            f"steps = {STEPS}", "[cpt.schedules]"]
    grids = []
    rel = lambda p: os.path.relpath(p, HERE.parents[1])
    for lam1 in WEIGHTS:
        rng = np.random.default_rng([0, int(lam1 * 10)])
        _, grid_tuner, _ = cptjax_search(table, lam1, budget_runs * STEPS, rng, table.noise(lam1))
        tuner = cptjax.Tuner(space, pt=pt_schedule(), weight_general=lam1, pt_log=table.pt_log,
                             n_candidates=512, seed=0)
        for t in grid_tuner.told:  # the same trials (on-grid recipes are data for any tuner)
            trial = cptjax.Trial(t.trial.number, t.trial.recipe, t.trial.steps, STEPS)
            s_ = np.asarray(t.run.steps) - table.n_pt
            tuner.tell(trial, cptjax.Run("t", np.zeros(1), 0, s_, t.run.losses))
        b = tuner.best()
        name = f"offgrid-l{lam1:g}"
        path = OFFGRID / f"{name}.csv"
        atomic_write(path, cptjax.schedules.to_csv(b.recipe.schedule(STEPS, last)))
        recs[name] = {"weight_general": lam1, "recipe": b.recipe.to_dict(), "name": b.recipe.name(),
                      "predicted": b.objective, "interval90": list(b.interval), "p_best": b.p_best,
                      "trials": len(grid_tuner.told), "steps_spent": int(sum(t.trial.steps for t in grid_tuner.told))}
        toml.append(f'"{name}" = "file({rel(path)})"')
        grids += ["[[cpt.grid]]", 'pt = ["wsd"]', f'schedule = ["{name}"]', f"peak = [{b.recipe.peak!r}]",
                  f"replay = [{b.recipe.replay!r}]", "seed = [0, 1, 2]"]
        print(f"lambda1={lam1}: {b.recipe.name()} predicted {b.objective:.4f}")
    atomic_write(OFFGRID / "offgrid.toml", "\n".join(toml + grids) + "\n")
    atomic_write(OFFGRID / "recommendations.json", json.dumps(recs, indent=1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("stage", nargs="?", default="bench", choices=("grid", "pack", "offgrid", "pack-offgrid", "bench"))
    ap.add_argument("src", nargs="?", help="pack: the folder cptjax lab wrote")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--table", choices=sorted(SPECS), default="main",
                    help="main: the project's table; heldout: the table built after the tuner was frozen; "
                         "wide: the held-out table with two more peaks, past its optimum")
    ap.add_argument("--only", nargs="+", help="bench: these strategies only (random, optuna-tpe, "
                                              "optuna-tpe-hyperband, cptjax)")
    ap.add_argument("--budget-runs", type=int, default=None, help="bench: the budget in full runs' CPT steps (default 20)")
    ap.add_argument("--out", help="bench: write the results under this name (default tune[_TABLE])")
    args = ap.parse_args(argv)
    spec = SPECS[args.table]
    if args.stage == "grid":
        return grid_stage(spec)
    if args.stage == "pack":
        return pack_stage(args.src, spec.folder / "runs")
    if args.stage == "offgrid":
        return offgrid_stage()
    if args.stage == "pack-offgrid":
        return pack_stage(args.src, OFFGRID / "runs", skip_pt=True)
    return bench_stage(args.quick, args.repeats, spec, args.only, args.out, args.budget_runs)


if __name__ == "__main__":
    main()
