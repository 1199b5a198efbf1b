"""Lab validation, law forms on unseen shapes: fit each law form on the default study's no-replay
runs, then predict the closed loop's trained runs (experiments/lab/closed_loop/runs, replay 0:
designed WSD-family plans, free-form plans with a near-zero tail, grid baselines, cosines — shapes
the fits never saw). Scores: mean relative error over the CPT phase and at the final step, per
schedule kind, and whether the form ranks the free-form plan behind the default plan (it lost by
~0.08 in real training)."""

import pathlib

import numpy as np

from experiments._common import args as _args, plt, save
from experiments.lab.prediction import load

import cptjax

HERE = pathlib.Path(__file__).resolve().parent
FORMS = [("Eq. 4 (paper)", "cpt", {}), ("shared C, lambda profiled", "cpt-shared", {"lam": "profile"}),
         ("shared C, lambda profiled, eps=0.1", "cpt-shared", {"lam": "profile", "eps": 0.1}),
         ("shared C, lambda profiled, eps=0.2", "cpt-shared", {"lam": "profile", "eps": 0.2}),
         ("MPL annealing term", "cpt-mpl", {})]
KINDS = ("plan", "free", "baseline", "cosine")


def main():
    a = _args(__doc__)
    study = load(HERE / "runs")
    loop = {n: r for n, r in load(HERE / "closed_loop" / "runs").items() if "_r0-" in n or "r0-w" in n}
    loop = {n: r for n, r in loop.items() if n.split("_")[1].startswith("r0-")}
    fit_runs = [r for n, r in study.items() if (r.replay or 0) == 0 and not n.endswith("_s1")]
    forms = FORMS[:2] if a.quick else FORMS
    res, curves = {}, {}
    for label, kind, opts in forms:
        laws = {c: cptjax.fit(fit_runs, kind, f"{c}_loss", **opts).law for c in ("general", "domain")}
        row = {"lam": {c: getattr(l, "lam", None) for c, l in laws.items()}, "eps": opts.get("eps", 0.0)}
        for c, law in laws.items():
            cpt_err, fin_err = {k: [] for k in KINDS}, {k: [] for k in KINDS}
            for n, r in loop.items():
                k = n.split("_")[1].split("-")[-1]
                ix, y = r.points(f"{c}_loss")
                p = np.asarray(cptjax.predict(law, r.lr, r.n_pt, idx=ix))
                cpt = ix >= r.n_pt
                cpt_err[k].append(float(np.mean(np.abs(p[cpt] - y[cpt]) / y[cpt])))
                fin_err[k].append(float((p[-1] - y[-1]) / y[-1]))
                curves[(label, c, n)] = (ix + 1, y, p)
            row[c] = {"cpt_mean": {k: float(np.mean(v)) for k, v in cpt_err.items()},
                      "final_signed": {k: float(np.mean(v)) for k, v in fin_err.items()}}
        # Ranking: predicted weighted objective of plan vs free at each weight.
        order = {}
        for w in (0.2, 0.5, 0.8):
            obj = {}
            for k in ("plan", "free"):
                r = next(r for n, r in loop.items() if f"r0-w{w:g}-{k}_" in n)
                obj[k] = sum(wt * float(cptjax.predict(laws[c], r.lr, r.n_pt, idx=[r.lr.size - 1])[0])
                             for c, wt in (("general", w), ("domain", 1 - w)))
            order[str(w)] = "plan better" if obj["plan"] < obj["free"] else "free better"
        row["ranking"] = order
        res[label] = row
        print(f"{label:>36}: CPT-phase error general "
              + " ".join(f"{k} {100 * row['general']['cpt_mean'][k]:.2f}%" for k in KINDS)
              + " | final signed general " + " ".join(f"{k} {100 * row['general']['final_signed'][k]:+.2f}%" for k in KINDS)
              + f" | ranking {order}")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, c in zip(axes, ("general", "domain")):
        for i, (label, _, _) in enumerate(forms):
            vals = [100 * res[label][c]["final_signed"][k] for k in KINDS]
            w = 0.8 / len(forms)
            ax.bar(np.arange(len(KINDS)) + w * i, vals, width=w, label=label)
        ax.set_xticks(np.arange(len(KINDS)) + 0.4 - 0.4 / len(forms), KINDS)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_title(f"{c}: signed final-loss error, closed-loop runs (%)", fontsize=10)
    axes[0].legend(fontsize=7)
    save(a.out, "lab_law_forms", res, fig)


if __name__ == "__main__":
    main()
