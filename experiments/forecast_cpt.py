"""Backtest of the CPT forecast (``cptjax forecast LOG --n-pt N``, ``cptjax.forecast_cpt``) on the
lab's real CPT runs (experiments/lab/runs: a 0.1M-parameter byte-level GPT, PT 3 000 steps on
prose, CPT 1 500 steps on code): from the run whose CPT LR stays constant, truncated where a WSD
CPT run of the same PT and peak starts its cooldown, forecast the WSD run's final general and
domain losses and their λ1 = 0.5 objective — with C from the log itself (the PT part anneals in the
``annealed`` runs; in the ``constant`` runs nothing in the log anneals and C comes from the PT prior,
``source`` says which)
and with C from a reference (the cosine CPT run of the same PT and peak, fitted jointly) —
against what the WSD run measured; the band's coverage. 2 PT kinds x 2 peaks = 4 branches."""

import os
import warnings

import numpy as np

import cptjax
from experiments._common import ROOT, args, plt, save

RUNS = os.path.join(ROOT, "experiments", "lab", "runs")
W = 0.5


def run(name):
    return cptjax.load_run(os.path.join(RUNS, name + ".csv.gz"))


def branches():
    for pt in ("constant", "annealed"):
        for p in ("0.0005", "0.002"):
            const, wsd = run(f"{pt}_constant_p{p}_r0_s0"), run(f"{pt}_wsd_p{p}_r0_s0")
            cos = run(f"{pt}_cosine_p{p}_r0_s0")
            k = int(np.flatnonzero(wsd.lr[wsd.n_pt:] < wsd.lr[wsd.n_pt:].max())[-1])  # last step below peak
            start = wsd.n_pt + int(np.flatnonzero(np.diff(wsd.lr[wsd.n_pt:]) < 0)[0]) + 1  # cooldown start
            keep = const.steps <= start
            log = cptjax.Run(const.name, const.lr[:start], const.n_pt, const.steps[keep],
                             {c: v[keep] for c, v in const.losses.items()})
            yield f"{pt} PT, peak {p}", log, wsd, cos, k


def main():
    a = args(__doc__)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, log, wsd, cos, _ in branches():
            truth = {c: float(wsd.losses[c][-1]) for c in ("general_loss", "domain_loss")}
            truth["objective"] = W * truth["general_loss"] + (1 - W) * truth["domain_loss"]
            row = {"branch": name, "seen_cpt_steps": int(log.lr.size - log.n_pt),
                   "cpt_steps": int(wsd.lr.size - wsd.n_pt), "measured": truth}
            for mode, ref in (("log", None), ("reference", [cos])):
                try:
                    fc = cptjax.forecast_cpt(log, schedule=wsd.lr, weight_general=W, reference=ref)
                except cptjax.InputError as e:
                    row[mode] = {"refused": str(e)[:160]}
                    continue
                alt = fc.alternatives[0]  # "continue the schedule": the WSD run's own
                got = {"general_loss": alt["general"], "domain_loss": alt["domain"],
                       "objective": {"loss": alt["loss"], "lo": alt["lo"], "hi": alt["hi"]}}
                row[mode] = {k: {**v, "error_pct": 100 * (v["loss"] - truth[k]) / truth[k],
                                 "covered": bool(v["lo"] <= truth[k] <= v["hi"])} for k, v in got.items()}
                row[mode]["source"] = fc.source
            rows.append(row)
            print(name, {m: ("refused" if "refused" in row[m] else
                             {k: round(row[m][k]["error_pct"], 2) for k in ("general_loss", "domain_loss", "objective")})
                         for m in ("log", "reference")}, flush=True)
    summary = {}
    for mode in ("log", "reference"):
        ok = [r[mode] for r in rows if "refused" not in r[mode]]
        summary[mode] = {"n": len(ok), "refused": len(rows) - len(ok)}
        for k in ("general_loss", "domain_loss", "objective"):
            e = np.abs([o[k]["error_pct"] for o in ok]) if ok else np.array([np.nan])
            summary[mode][k] = {"mean_abs_error_pct": float(np.mean(e)), "max_abs_error_pct": float(np.max(e)),
                                "coverage90": float(np.mean([o[k]["covered"] for o in ok])) if ok else None}
        print(mode, summary[mode])
    fig, ax = plt.subplots(1, 1, figsize=(7, 3.5))
    for k, (mode, c) in enumerate((("log", "C0"), ("reference", "C1"))):
        for j, col in enumerate(("general_loss", "domain_loss", "objective")):
            xs = [i + 0.25 * j + 0.08 * k for i, r in enumerate(rows) if "refused" not in r[mode]]
            e = [r[mode][col]["error_pct"] for r in rows if "refused" not in r[mode]]
            ax.plot(xs, e, "os^"[j], color=c, ms=4, label=f"{col}, C from the {mode}")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r["branch"] for r in rows], fontsize=7)
    ax.set_ylabel("forecast error at the end (%)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    save(a.out, "forecast_cpt", {"branches": rows, "summary": summary}, fig)


if __name__ == "__main__":
    main()
