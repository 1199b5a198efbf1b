"""Lab validation, prediction: fit each law form on a few lab runs, predict all the others.

Reads the default lab study's run files (``experiments/lab/runs``, trained by ``cptjax lab``;
regenerate them with ``cptjax lab --out DIR`` and ``--runs DIR``). For every law form and both
validation sets, fits one parameter set on the fit runs and reports the mean / max relative error
per held-out run and per phase: early PT (first 10% of PT), PT, the first 200 CPT steps, the rest
of CPT. The CPT phase is scored on its own (a held-out run's PT half repeats a fitted curve). The
noise floor is the mean relative difference between two runs that differ only in the data-order
seed.
"""

import glob
import os
import pathlib

import numpy as np

from experiments._common import args as _args, plt, save

import cptjax

HERE = pathlib.Path(__file__).resolve().parent
FIT = ("pt-constant", "pt-annealed", "constant_constant_p0.002_r0_s0", "annealed_wsd_p0.0005_r0_s0",
       "constant_rewarm_p0.002_r0_s0")
COLUMNS = {"general": "general_loss", "domain": "domain_loss"}
# (label, law kind, extra fit options) — the paper's Eq. 4 is the baseline row.
FORMS = [("Eq. 4 (paper)", "cpt", {}), ("Eq. 4, lambda profiled", "cpt", {"lam": "profile"}),
         ("shared C", "cpt-shared", {}), ("shared C, lambda profiled", "cpt-shared", {"lam": "profile"}),
         ("shared C, lambda profiled, eps=0.2", "cpt-shared", {"lam": "profile", "eps": 0.2})]


def load(folder):
    runs = {}
    for p in sorted(glob.glob(os.path.join(folder, "*.csv*"))):
        r = cptjax.load_run(p)
        runs[r.name.split(".csv")[0]] = r
    return runs


def phases(run):
    """Boolean masks over the run's logged steps, per phase."""
    s, n = run.steps, run.n_pt
    cpt = s > n
    return {"early_pt": s <= 0.1 * n, "pt": (s > 0.1 * n) & ~cpt,
            "cpt_first_200": cpt & (s <= n + 200), "cpt_rest": cpt & (s > n + 200), "cpt": cpt}


def errors(law, run, column):
    ix, y = run.points(column)
    pred = np.asarray(cptjax.predict(law, run.lr, run.n_pt, idx=ix,
                                     replay=run.replay if "replay" in law.uses else None))
    ok = np.isfinite(run.losses[column])
    out = {}
    for name, m in phases(run).items():
        m = m[ok]
        e = cptjax.metrics(pred[m], y[m]) if m.any() else None
        out[name] = {"mean": e["mean_rel_error"], "max": e["max_rel_error"]} if e else None
    return out, (ix + 1, y, pred)


def noise_floor(runs, column):
    a, b = runs.get("constant_cosine_p0.002_r0_s0"), runs.get("constant_cosine_p0.002_r0_s1")
    if a is None or b is None:
        return None
    m = np.isfinite(a.losses[column]) & (a.steps > a.n_pt)
    return float(np.mean(np.abs(a.losses[column][m] - b.losses[column][m]) / b.losses[column][m]))


def evaluate_forms(runs, forms=FORMS, fit_names=FIT):
    fit_runs = [runs[n] for n in fit_names]
    test = [n for n, r in runs.items() if n not in fit_names and r.n_pt < r.lr.size
            and not n.endswith("_s1") and (r.replay or 0) == 0]
    table, curves = {}, {}
    for label, kind, opts in forms:
        row = {}
        for target, col in COLUMNS.items():
            res = cptjax.fit(fit_runs, kind, col, target=target, **opts)
            per_run = {}
            for n in test:
                per_run[n], c = errors(res.law, runs[n], col)
                curves[(label, target, n)] = c
            cpt = [v["cpt"]["mean"] for v in per_run.values()]
            row[target] = {"params": res.params, "lam": res.law.lam, "objective": res.objective,
                           "status": res.status, "lam_profile": res.extra.get("lam_profile"),
                           "cpt_mean": float(np.mean(cpt)), "cpt_max_run": float(np.max(cpt)),
                           "by_phase": {p: float(np.mean([v[p]["mean"] for v in per_run.values()
                                                          if v[p] is not None]))
                                        for p in ("early_pt", "pt", "cpt_first_200", "cpt_rest")},
                           "max": float(np.max([v["cpt"]["max"] for v in per_run.values()])),
                           "per_run": per_run}
        table[label] = row
    return table, test, curves


def main():
    a = _args(__doc__)
    runs = load(os.environ.get("CPTJAX_LAB_RUNS", HERE / "runs"))
    forms = FORMS[:1] if a.quick else FORMS
    table, test, curves = evaluate_forms(runs, forms)
    floor = {t: noise_floor(runs, c) for t, c in COLUMNS.items()}
    result = {"fit_runs": list(FIT), "test_runs": test, "noise_floor_cpt": floor, "forms": table}
    for label, row in table.items():
        print(f"{label:>24}: CPT-phase mean error general {100 * row['general']['cpt_mean']:.2f}% / "
              f"domain {100 * row['domain']['cpt_mean']:.2f}% (noise floor "
              f"{100 * (floor['general'] or 0):.2f}% / {100 * (floor['domain'] or 0):.2f}%)")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    base = forms[0][0]
    for ax, target in zip(axes, COLUMNS):
        for n in test[:6]:
            s, y, p = curves[(base, target, n)]
            line, = ax.plot(s, y, ".", ms=2)
            ax.plot(s, p, "-", lw=1, color=line.get_color(), label=n)
        ax.set_title(f"{target} loss: lab runs (dots) vs {base} (held out)")
        ax.set_xlabel("step")
    axes[0].legend(fontsize=6)
    save(a.out, "lab_prediction", result, fig)


if __name__ == "__main__":
    main()
