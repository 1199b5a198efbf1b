"""Backtest of ``cptjax forecast`` on real cooldown branches (../shared/data): from the constant-LR
run's log truncated where a cooldown branch leaves it, forecast the branch's final loss — with a
reference (a cosine run of the same model and length, fitted jointly) and with the prior alone —
against what the branch measured; the band's coverage.

- MultiPowerLaw 25M/100M/400M: constant_24000 truncated at step 20 000; branches wsd_20000_24000
  (geometric cooldown to 3e-5) and wsdld_20000_24000 (linear); reference cosine_24000.
- OLMo-2 ladder 190M..3B at 0.5/1/2/5/10xC: the constant 10xC run truncated at each branch's
  decay start; branches = peteish-moreeval-decay (linear to 0.1x over the last 10%); reference =
  the cosine run of the same size and length; loss c4_en.

The forecaster's prior (its ``PRIOR_Q``) was calibrated on Eq. 1 fits of the full MultiPowerLaw
and OLMo 10xC runs — these same studies — so the prior rows here are in-sample; ``--prior``
recomputes that calibration.
"""

import warnings

import numpy as np

import cptjax
from experiments._common import DATA, args, plt, save
from experiments.datasets import mpl_run, olmo_run

OLMO_SIZES = ("190M", "370M", "760M", "1B", "3B")
OLMO_MULTS = ("0.5", "1", "2", "5", "10")


def branches(quick):
    """(name, log (truncated Run), branch schedule (full), measured final loss, reference Run)."""
    for size in (["100"] if quick else ["25", "100", "400"]):
        const, cos = mpl_run(DATA, size, "constant_24000"), mpl_run(DATA, size, "cosine_24000")
        keep = const.steps <= 20000
        log = cptjax.Run(f"mpl{size}-constant", const.lr[:20000], 20000, const.steps[keep],
                         {"loss": const.losses["loss"][keep]})
        for b in ("wsd_20000_24000", "wsdld_20000_24000"):
            br = mpl_run(DATA, size, b)
            yield f"MPL {size}M {b.split('_')[0]}", log, br.lr, float(br.losses["loss"][-1]), cos
    if quick:
        return
    for size in OLMO_SIZES:
        const = olmo_run(DATA, size, "const", "10")
        for mult in OLMO_MULTS:
            try:
                dec = olmo_run(DATA, size, "decay", mult)
                cos = olmo_run(DATA, size, "cosine", mult)
            except Exception:  # a missing file: skip the branch
                continue
            col = "c4_en"
            y = dec.losses[col]
            keep = (const.steps <= dec.n_pt) & np.isfinite(const.losses[col])
            if keep.sum() < 5 or not np.isfinite(y).any():
                continue
            t = int(const.steps[keep].max())
            log = cptjax.Run(f"olmo{size}-const", dec.lr[:t], t, const.steps[keep], {"loss": const.losses[col][keep]})
            ref = cptjax.Run(cos.name, cos.lr, cos.lr.size, cos.steps, {"loss": cos.losses[col]})
            yield f"OLMo {size} {mult}xC", log, dec.lr, float(y[np.isfinite(y)][-1]), ref


def main():
    a = args(__doc__)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, log, sched, measured, ref in branches(a.quick):
            row = {"branch": name, "branch_step": int(log.n_pt), "steps": int(sched.size), "measured": measured,
                   "seen": log.n_pt / sched.size}
            for mode, r in (("reference", [ref]), ("prior", None)):
                fc = cptjax.forecast(log, schedule=sched, reference=r)
                alt = fc.alternatives[0]  # "continue the schedule": the branch's own
                row[mode] = {"loss": alt["loss"], "lo": alt["lo"], "hi": alt["hi"], "source": fc.source,
                             "error_pct": 100 * (alt["loss"] - measured) / measured,
                             "covered": bool(alt["lo"] <= measured <= alt["hi"])}
            rows.append(row)
            print(f"{name:<22} measured {measured:.4f}  ref {row['reference']['error_pct']:+.2f}%  "
                  f"prior {row['prior']['error_pct']:+.2f}%", flush=True)
    summary = {}
    for mode in ("reference", "prior"):
        e = np.abs([r[mode]["error_pct"] for r in rows])
        summary[mode] = {"mean_abs_error_pct": float(e.mean()), "max_abs_error_pct": float(e.max()),
                         "coverage90": float(np.mean([r[mode]["covered"] for r in rows])), "n": len(rows)}
        print(f"{mode}: mean |error| {e.mean():.3f}%, max {e.max():.3f}%, 90% band covers "
              f"{100 * summary[mode]['coverage90']:.0f}% of {len(rows)} branches")
    fig, ax = plt.subplots(1, 1, figsize=(7, 4))
    x = np.arange(len(rows))
    for k, (mode, c) in enumerate((("reference", "C0"), ("prior", "C1"))):
        e = np.array([r[mode]["error_pct"] for r in rows])
        lo = np.array([100 * (r[mode]["lo"] - r["measured"]) / r["measured"] for r in rows])
        hi = np.array([100 * (r[mode]["hi"] - r["measured"]) / r["measured"] for r in rows])
        ax.errorbar(x + 0.2 * k, e, yerr=[e - lo, hi - e], fmt="o", ms=3, color=c, label=f"with {mode}")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(x)
    ax.set_xticklabels([r["branch"] for r in rows], rotation=90, fontsize=6)
    ax.set_ylabel("forecast error of the branch's final loss (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save(a.out, "forecast" + ("_quick" if a.quick else ""), {"branches": rows, "summary": summary}, fig)


if __name__ == "__main__":
    main()
