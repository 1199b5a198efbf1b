"""Fig. 1/3-style PT -> CPT curves (Setting A preset) under constant, WSD and cosine schedules,
with the hidden PT curves: continuing PT on D_pt (Eq. 2: the general law without the shift term,
C2 = C1) and the D_cpt curve with the shift saturated (L0 + B + A·S1^-α − C·S2)."""

import numpy as np

import cptjax
from cptjax import schedules as S
from experiments._common import args, plt, save


def main():
    a = args(__doc__)
    scale = 4 if a.quick else 1
    T_pt, T_cpt = 40000 // scale, 20000 // scale
    law = cptjax.preset("setting-a")
    cases = {
        "constant": (S.constant(T_pt, 2e-4, warmup=500 // scale), S.constant(T_cpt, 2e-4)),
        "wsd": (S.wsd(T_pt, 2e-4, warmup=500 // scale, decay=0.2, final=2e-5),
                S.wsd(T_cpt, 2e-4, warmup=500 // scale, decay=0.2, final=2e-5)),
        "cosine": (S.cosine(T_pt, 2e-4, warmup=500 // scale, final=2e-5),
                   S.cosine(T_cpt, 2e-4, warmup=500 // scale, final=2e-5)),
    }
    fig, ax = plt.subplots(2, 3, figsize=(15, 7), sharex=True)
    res = {}
    for j, (name, (pt, cpt)) in enumerate(cases.items()):
        lr, n = S.join(pt, cpt)
        ar = cptjax.areas(lr, n)
        g, d = (np.asarray(law.general(ar)), np.asarray(law.domain(ar)))
        G = law.general
        hidden_pt = G.L0 + G.A * (ar.s1_pt + ar.s1_cpt) ** -G.alpha - G.C1 * (ar.s2_pt + ar.s2_cpt)
        D = law.domain
        hidden_cpt = D.L0 + D.B + D.A * (ar.s1_pt + ar.s1_cpt) ** -D.alpha - D.C2 * (ar.s2_pt + ar.s2_cpt)
        s = np.arange(1, lr.size + 1)
        k = slice(lr.size // 40, None)
        ax[0, j].plot(s[k], g[k], label="general (CPT)")
        ax[0, j].plot(s[k], np.asarray(hidden_pt)[k], "--", label="hidden PT on D_pt")
        ax[1, j].plot(s[k], d[k], "C1", label="domain (CPT)")
        ax[1, j].plot(s[k], np.asarray(hidden_cpt)[k], "C1--", label="hidden PT on D_cpt (shift saturated)")
        for i in range(2):
            ax[i, j].axvline(n, color="gray", ls=":")
            ax[i, j].legend(fontsize=7)
            ax[i, j].grid(alpha=0.3)
        ax[0, j].set_title(f"{name} PT + {name} CPT")
        ax[1, j].set_xlabel("step")
        res[name] = {"general_at_transfer": g[n - 1], "general_end": g[-1], "domain_at_transfer": d[n - 1],
                     "domain_end": d[-1], "general_peak": float(g[n:].max()),
                     "hidden_pt_end": float(hidden_pt[-1])}
    ax[0, 0].set_ylabel("general loss (D_pt)")
    ax[1, 0].set_ylabel("domain loss (D_cpt)")
    save(a.out, "paper_curves", res, fig)


if __name__ == "__main__":
    main()
