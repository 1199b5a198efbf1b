"""Fig. 8: optimal loss potential, CPT peak LR and replay ratio against the balance weight λ1
(PT WSD 40K, CPT cosine 10K; Settings A and B for LP and peak, the replay preset for replay)."""

import numpy as np

import cptjax
from experiments._common import args, plt, save


def main():
    a = args(__doc__)
    w = np.linspace(0, 1, 6 if a.quick else 21)
    res = {"weights": w}
    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    for name in ("setting-a", "setting-b"):
        law = cptjax.preset(name)
        lp = cptjax.optimal_vs_weight(law, w, what="lp")
        pk = cptjax.optimal_vs_weight(law, w, what="peak")
        res[name] = {"optimal_lp": lp["optimum"], "optimal_peak": pk["optimum"]}
        ax[0].plot(w, lp["optimum"], "o-", label=name)
        ax[1].plot(w, pk["optimum"], "o-", label=name)
    for T in ([10000] if a.quick else [20000, 30000, 40000]):
        rp = cptjax.optimal_vs_weight(cptjax.preset("replay"), w, what="replay", cpt_steps=T)
        res[f"optimal_replay_{T}"] = rp["optimum"]
        ax[2].plot(w, rp["optimum"], "o-", label=f"{T // 1000}K CPT steps")
    ax[2].plot(w, w, "k:", label="same distribution (r = λ1)")
    for x, t in zip(ax, ("optimal loss potential", "optimal CPT peak LR", "optimal replay ratio")):
        x.set_xlabel("λ1 (weight of general loss)")
        x.set_title(t)
        x.legend(fontsize=7)
        x.grid(alpha=0.3)
    save(a.out, "balance", res, fig)


if __name__ == "__main__":
    main()
