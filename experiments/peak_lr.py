"""Fig. 7: final general and domain loss against the CPT peak LR for 20K-80K CPT steps (WSD PT,
cosine CPT, Setting A), plus the critical point / turning length picture: general-loss curves of a
pre-critical (short, unannealed PT) and a post-critical (long, annealed PT) run."""

import numpy as np

import cptjax
from cptjax import schedules as S
from experiments._common import args, plt, save


def main():
    a = args(__doc__)
    law = cptjax.preset("setting-a")
    peaks = np.linspace(0.25e-4, 2e-4, 6 if a.quick else 15)
    steps = [20000, 80000] if a.quick else [20000, 40000, 60000, 80000]
    pt = S.wsd(40000, 2e-4, warmup=500, decay=0.2, final=2e-5)
    data_range = 60000  # joined steps of the runs behind the preset (cptjax.laws._presets.DATA_RANGE)
    res = {"peaks": peaks, "general": {}, "domain": {}, "data_range": data_range, "extrapolated": []}
    fig, ax = plt.subplots(1, 3, figsize=(16, 4))
    for T in steps:
        g, d = [], []
        for p in peaks:
            _, gg, dd, _ = cptjax.evaluate(law, pt, S.cosine(T, p, warmup=500, final=0.0))
            g.append(float(gg))
            d.append(float(dd))
        res["general"][str(T)], res["domain"][str(T)] = g, d
        extra = pt.size + T > data_range  # beyond the fitted data: flagged (dashed)
        if extra:
            res["extrapolated"].append(T)
        style = dict(ls="--" if extra else "-", marker="o", ms=3,
                     label=f"{T // 1000}K" + (" (extrapolated)" if extra else ""))
        ax[0].plot(peaks, g, **style)
        ax[1].plot(peaks, d, **style)
        res.setdefault("general_argmax_peak", {})[str(T)] = float(peaks[int(np.argmax(g))])
    ax[0].set_title("final general loss")
    ax[1].set_title("final domain loss")
    for x in ax[:2]:
        x.set_xlabel("CPT peak LR")
        x.legend(title="CPT steps")
        x.grid(alpha=0.3)
    T = 100000  # long enough for the pre-critical run to turn back (cheap: one prediction)
    cpt = S.cosine(T, 2e-4, warmup=500, final=0.0)
    for label, pt_ in (("pre-critical: 10K constant PT", S.constant(10000, 2e-4, warmup=500)),
                       ("post-critical: 40K WSD PT", pt)):
        lr, n = S.join(pt_, cpt)
        gcur = np.asarray(cptjax.predict(law, lr, n).general)[n - 1:]
        crit = cptjax.critical_point(law, pt_, cpt)
        tl = cptjax.turning_length(law, pt_, cpt)
        beyond = pt_.size + (0 if not np.isfinite(tl) else tl) > data_range
        ax[2].plot(np.arange(gcur.size), gcur, label=f"{label} (turning length {tl:g}"
                   + (", beyond the data range" if beyond else "") + ")")
        ax[2].axvline(data_range - pt_.size, ls="--", lw=0.8, color=ax[2].lines[-1].get_color())
        ax[2].axhline(crit["critical"], ls=":", color=ax[2].lines[-1].get_color())
        res[label] = {"turning_length": tl, "beyond_data_range": bool(beyond), **crit}
    ax[2].set_xlabel("CPT step")
    ax[2].set_ylabel("general loss")
    ax[2].set_title("critical point (dotted), end of the data range (dashed)")
    ax[2].legend(fontsize=7)
    ax[2].grid(alpha=0.3)
    save(a.out, "peak_lr", res, fig)


if __name__ == "__main__":
    main()
