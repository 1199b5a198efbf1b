"""Fig. 5: final domain loss against loss potential (PT final LR / peak), without re-warmup (CPT
continues from the PT final LR, linear to 0) and with re-warmup (to 10% of the PT peak, then
linear to 0), for 20K-50K CPT steps, Setting A preset."""

import numpy as np

import cptjax
from cptjax import schedules as S
from experiments._common import args, plt, save


def final_domain(law, pt, cpt):
    return float(cptjax.evaluate(law, pt, cpt)[2])


def main():
    a = args(__doc__)
    law = cptjax.preset("setting-a")
    lps = np.linspace(0.0, 1.0, 6 if a.quick else 21)
    steps = [20000, 50000] if a.quick else [20000, 30000, 40000, 50000]
    res = {"lp": lps, "no_rewarmup": {}, "rewarmup": {}}
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for T in steps:
        nr, rw = [], []
        for lp in lps:
            pt = S.wsd(40000, 2e-4, warmup=500, decay=0.2, final=lp * 2e-4) if lp < 1 else S.constant(40000, 2e-4, warmup=500)
            nr.append(final_domain(law, pt, S.linear(T, max(lp, 1e-9) * 2e-4, final=0.0)) if lp > 0 else np.nan)
            rw.append(final_domain(law, pt, S.linear(T, 2e-5, warmup=500, final=0.0)))
        res["no_rewarmup"][str(T)], res["rewarmup"][str(T)] = nr, rw
        ax[0].plot(100 * lps, nr, "o-", ms=3, label=f"{T // 1000}K CPT steps")
        ax[1].plot(100 * lps, rw, "o-", ms=3, label=f"{T // 1000}K CPT steps")
    for x, t in zip(ax, ("without re-warmup", "with re-warmup to 10% of peak")):
        x.set_xlabel("loss potential (%)")
        x.set_ylabel("final domain loss")
        x.set_title(t)
        x.legend()
        x.grid(alpha=0.3)
    save(a.out, "loss_potential", res, fig)


if __name__ == "__main__":
    main()
