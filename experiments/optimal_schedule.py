"""PT-only schedule design against MPL's published optimised schedule (MultiPowerLaw 100M).

Eq. 1 is fitted on the MPL training split; cptjax.design then optimises the 21 840 post-warmup
steps of a 24 000-step run (max LR 3e-4, monotone, the upstream 2160-step warmup as the fixed
history), minimising the final loss. The result is compared with upstream's optimised schedule
(optimized_schedules/100.npy, designed with their MPL fit): shape statistics, and the final loss
each schedule gets under Eq. 1 (ours) and under the published MPL 100M parameters."""

import numpy as np

import cptjax
from experiments.datasets import MPL_TRAIN, mpl_run
from experiments._common import DATA, args, plt, save


def shape(s, peak=3e-4):
    return {"frac_steps_above_90pct_peak": float(np.mean(s > 0.9 * peak)),
            "first_step_below_50pct": int(np.argmax(s < 0.5 * peak)) + 1 if (s < 0.5 * peak).any() else None,
            "final_lr": float(s[-1]), "mean_lr": float(s.mean())}


def main():
    a = args(__doc__)
    eq1 = cptjax.fit([mpl_run(DATA, "100", n) for n in MPL_TRAIN], "pt", "loss").law
    warm = np.linspace(0, 3e-4, 2160)  # upstream warmup (np.linspace(0, peak, 2160))
    T = 21840
    plan = cptjax.design(cptjax.LawPair(eq1, eq1), warm, T, max_lr=3e-4, knots=64 if a.quick else 256,
                         iterations=500 if a.quick else 4000)
    free = cptjax.design(cptjax.LawPair(eq1, eq1), warm, T, max_lr=3e-4, knots=64 if a.quick else 256,
                         iterations=500 if a.quick else 4000, shape="free")
    theirs = np.load(DATA / "MultiPowerLaw" / "optimized_schedules" / "100.npy")
    mpl = cptjax.preset("mpl-100m")
    res = {}
    for name, s in (("cptjax (Eq. 1)", plan.schedule), ("cptjax free-form (Eq. 1)", free.schedule),
                    ("MPL upstream", theirs)):
        lr = np.concatenate([warm, s])
        res[name] = {**shape(s), "frac_steps_below_1pct_peak": float(np.mean(s < 0.01 * s.max())),
                     "final_loss_eq1": float(cptjax.predict(eq1, lr, idx=[lr.size - 1])[0]),
                     "final_loss_mpl100m": float(mpl(lr, np.array([lr.size - 1]))[0])}
    res["eq1_params"] = eq1.to_dict()
    res["plan_source"] = plan.source
    fig, ax = plt.subplots(figsize=(7, 4))
    t = np.arange(2161, 24001)
    ax.plot(t, plan.schedule, label=f"cptjax, Eq. 1 (final loss {res['cptjax (Eq. 1)']['final_loss_eq1']:.4f})")
    ax.plot(t, free.schedule, ":", label=f"cptjax free-form (final loss {res['cptjax free-form (Eq. 1)']['final_loss_eq1']:.4f})")
    ax.plot(t, theirs, label=f"MPL upstream (final loss under MPL {res['MPL upstream']['final_loss_mpl100m']:.4f})")
    ax.set_xlabel("step")
    ax.set_ylabel("LR")
    ax.set_title("Optimised schedules, 100M, 24K steps")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save(a.out, "optimal_schedule", res, fig)


if __name__ == "__main__":
    main()
