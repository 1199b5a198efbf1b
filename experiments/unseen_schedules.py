"""Fig. 10: the Setting A parameters predicting schedules they were not fitted on: WSD PT with a
linear CPT decay (no re-warmup) and WSD PT with a cosine CPT re-warmed to 10% of the PT peak.
Also the OOD sets of Fig. 9 as linear mixes of the predicted general and domain losses (Fig. 21
coefficients, Eq. 6)."""

import numpy as np

import cptjax
from cptjax import schedules as S
from experiments._common import args, plt, save

OOD = {"StackExchange": (-0.546, 1.853), "arXiv": (-0.609, 1.631), "Books": (0.611, 0.475),
       "Open-Web-Math": (-0.078, 1.2), "C4": (0.867, 0.152), "SlimPajama": (0.622, 0.385),
       "Stories": (1.409, -0.516), "PhilPapers": (-0.178, 1.505)}  # (λ'1 general, λ'2 domain)


def main():
    a = args(__doc__)
    law = cptjax.preset("setting-a")
    pt = S.wsd(40000, 2e-4, warmup=500, decay=0.2, final=2e-5)
    T = 5000 if a.quick else 20000
    cases = {"linear decay, no re-warmup": S.linear(T, 2e-5, final=0.0),
             "cosine re-warmed to 10% peak": S.cosine(T, 2e-5, warmup=500, final=0.0)}
    fig, ax = plt.subplots(1, 3, figsize=(16, 4))
    res = {}
    for name, cpt in cases.items():
        lr, n = S.join(pt, cpt)
        p = cptjax.predict(law, lr, n)
        g, d = np.asarray(p.general), np.asarray(p.domain)
        s = np.arange(1, lr.size + 1)
        ax[0].plot(s[30000:], g[30000:], label=name)
        ax[1].plot(s[30000:], d[30000:], label=name)
        res[name] = {"general_end": g[-1], "domain_end": d[-1], "general_transfer": g[n - 1],
                     "domain_transfer": d[n - 1]}
        if name.startswith("cosine"):
            k = slice(n - 1, None)
            for ood, (l1, l2) in OOD.items():
                y = l1 * g[k] + l2 * d[k]
                ax[2].plot(np.arange(y.size), y, label=ood)
                res[name][f"ood_{ood}_change"] = float(y[-1] - y[0])
    for x, t in zip(ax, ("general loss", "domain loss", "OOD losses (Eq. 6), re-warmed cosine CPT")):
        x.set_title(t)
        x.legend(fontsize=7)
        x.grid(alpha=0.3)
    ax[2].set_xlabel("CPT step")
    save(a.out, "unseen_schedules", res, fig)


if __name__ == "__main__":
    main()
