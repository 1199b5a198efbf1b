"""Lab validation, the closed loop: fit the laws on lab runs, design CPT plans with them, train the
plans for real, and compare measured with predicted.

Stage ``plan`` (default when no trained runs are given): fit the shared-C law (lambda profiled) on
every no-replay run of the default study, and the replay law (Eq. 8, swapped shift factors,
lambda profiled) on its constant-PT runs with replay 0 / 0.25 / 0.5; then, for lambda1 in
{0.2, 0.5, 0.8}, run ``cptjax.design`` after the study's constant PT (3 000 steps at 2e-3) for a
1 500-step CPT budget at max LR 2e-3 — the default (WSD-family) plan, the free-form plan, design's
best baseline and a plain cosine from the peak, with replay fixed at 0, and with replay free — and
write the study file ``closed_loop.toml`` that trains each with three data-order seeds.

Stage ``report`` (``--runs DIR``, the folder ``cptjax lab closed_loop.toml --out DIR`` wrote):
the measured weighted final loss lambda1*L_general + (1 - lambda1)*L_domain (mean and sd over
seeds) beside the law's prediction, and whether the plan wins beyond seed noise, ties or loses.
"""

import json
import os
import pathlib

import numpy as np

from experiments._common import plt, save
from experiments.lab.prediction import load

import cptjax

HERE = pathlib.Path(__file__).resolve().parent
PLANS = HERE / "closed_loop"  # --eps E: HERE / f"closed_loop_eps{E:g}"
WEIGHTS = (0.2, 0.5, 0.8)
MAX_LR, STEPS = 2e-3, 1500
SEEDS = (0, 1, 2)


def fit_laws(runs, eps=0.0, form="cpt-shared"):
    no_replay = [r for n, r in runs.items() if (r.replay or 0) == 0 and not n.endswith("_s1")]
    opts = {} if form == "cpt-mpl" else {"lam": "profile", "eps": eps}
    pair = cptjax.LawPair(*(cptjax.fit(no_replay, form, c, **opts).law for c in ("general_loss", "domain_loss")))
    if eps or form != "cpt-shared":
        return pair, None
    with_replay = [r for n, r in runs.items() if n.startswith(("constant_", "pt-constant"))
                   and not n.endswith("_s1")]
    replay = cptjax.LawPair(*(cptjax.fit(with_replay, "replay", c, target=t, lam="profile").law
                              for t, c in (("general", "general_loss"), ("domain", "domain_loss"))))
    return pair, replay


def plan_stage(runs, out, eps=0.0, form="cpt-shared"):
    os.makedirs(PLANS, exist_ok=True)
    pair, replay_pair = fit_laws(runs, eps, form)
    pt = runs["pt-constant"].lr
    schedules, cases = {}, []
    modes = (("r0", pair, None),) + ((("rfree", replay_pair, "free"),) if replay_pair else ())
    for mode, law, rep in modes:
        for w in WEIGHTS:
            kw = dict(max_lr=MAX_LR, weight_general=w, replay=rep, iterations=3000)
            plan = cptjax.design(law, pt, STEPS, **kw)
            free = cptjax.design(law, pt, STEPS, shape="free", **kw)
            base = min(plan.baselines.values(), key=lambda b: b["objective"])
            cos = cptjax.schedules.cosine(STEPS, MAX_LR, final=0.0)
            r_cos = None if rep is None else 0.0
            cos_obj = cptjax.evaluate(law, pt, cos, r_cos, 1, w)[0]
            entries = {"plan": (plan.schedule, plan.replay, plan.objective),
                       "free": (free.schedule, free.replay, free.objective),
                       "baseline": (np.asarray(base["schedule"]), base["replay"], base["objective"]),
                       "cosine": (cos, r_cos, float(cos_obj))}
            for kind, (sched, r, pred) in entries.items():
                name = f"{mode}-w{w:g}-{kind}"
                path = PLANS / f"{name}.csv"
                np.savetxt(path, sched, header="lr", comments="", fmt="%.10e")
                schedules[name] = (path, 0.0 if r is None else float(r))
                cases.append({"mode": mode, "weight_general": w, "kind": kind, "name": name,
                              "replay": r, "predicted_objective": pred,
                              "baseline_name": base["name"] if kind == "baseline" else None,
                              "diagnostics": {"plan": plan.diagnostics, "free": free.diagnostics}.get(kind)})
    laws = {form: pair.to_dict(), "replay": replay_pair.to_dict() if replay_pair else None}
    toml = ['name = "closed-loop"', "seed = 0", "eval_interval = 100", "eval_batches = 8",
            '[model]', 'preset = "cpu"', "[pt]",
            f'constant = "{runs["pt-constant"].name and "constant(steps=3000,peak=2e-3,warmup=100)"}"',
            "[cpt]", f"steps = {STEPS}", "[cpt.schedules]"]
    rel = lambda p: os.path.relpath(p, HERE.parents[1])
    toml += [f'"{n}" = "file({rel(p)})"' for n, (p, _) in schedules.items()]
    for n, (_, r) in schedules.items():
        toml += ["[[cpt.grid]]", 'pt = ["constant"]', f'schedule = ["{n}"]', f"peak = [{MAX_LR}]",
                 f"replay = [{r!r}]", f"seed = {list(SEEDS)}"]
    from cptjax.files import atomic_write

    atomic_write(PLANS / "closed_loop.toml", "\n".join(toml) + "\n")
    atomic_write(PLANS / "laws.json", json.dumps(laws, indent=1))
    atomic_write(PLANS / "cases.json", json.dumps(cases, indent=1, default=float))
    print(f"wrote {PLANS}/closed_loop.toml ({len(schedules)} schedules x {len(SEEDS)} seeds)")


def report_stage(runs_dir, out):
    cases = json.loads((PLANS / "cases.json").read_text())
    runs = load(runs_dir)
    sched = {c["name"]: np.loadtxt(PLANS / f"{c['name']}.csv", skiprows=1) for c in cases}

    def trained(name, seed):  # a run of this schedule, or of an identical one (a subset was trained)
        for other in [name] + [n for n in sched if n != name and np.array_equal(sched[n], sched[name])]:
            key = next((k for k in runs if k.startswith(f"constant_{other}_") and k.endswith(f"_s{seed}")), None)
            if key is not None:
                return runs[key]
        return None

    rows = []
    for c in cases:
        w = c["weight_general"]
        finals = []
        for s in SEEDS:
            r = trained(c["name"], s)
            if r is None:
                continue
            g, d = r.losses["general_loss"][-1], r.losses["domain_loss"][-1]
            finals.append(w * g + (1 - w) * d)
        finals = np.array(finals)
        rows.append({**c, "measured_mean": float(finals.mean()) if finals.size else None,
                     "measured_sd": float(finals.std(ddof=1)) if finals.size > 1 else None,
                     "n_seeds": int(finals.size), "measured": finals.tolist()})
    verdicts = {}
    for mode in sorted({r["mode"] for r in rows}):
        for w in WEIGHTS:
            sel = {r["kind"]: r for r in rows if r["mode"] == mode and r["weight_general"] == w
                   and r["n_seeds"] > 1}
            if len(sel) < 4:  # this weight was not trained (or not with every schedule)
                continue
            p = sel["plan"]
            out_v = {}
            for other in ("baseline", "cosine", "free"):
                o = sel[other]
                diff = np.array(o["measured"]) - np.array(p["measured"])  # > 0: the plan wins
                se = np.sqrt(np.var(p["measured"], ddof=1) / len(p["measured"])
                             + np.var(o["measured"], ddof=1) / len(o["measured"]))
                gain = float(diff.mean())
                verdict = "wins" if gain > 2 * se else ("loses" if gain < -2 * se else "ties")
                out_v[other] = {"measured_gain": gain, "se": float(se), "verdict": verdict,
                                "predicted_gain": o["predicted_objective"] - p["predicted_objective"]}
            verdicts[f"{mode} w={w:g}"] = out_v
    result = {"rows": rows, "verdicts": verdicts}
    modes = sorted({r["mode"] for r in rows})
    fig, axes = plt.subplots(1, len(modes), figsize=(5.5 * len(modes), 4), squeeze=False)
    axes = axes[0]
    for ax, mode in zip(axes, modes):
        for i, kind in enumerate(("plan", "free", "baseline", "cosine")):
            sel = [r for r in rows if r["mode"] == mode and r["kind"] == kind]
            x = np.array([WEIGHTS.index(r["weight_general"]) for r in sel]) + 0.2 * i
            got = np.array([r["measured_mean"] is not None for r in sel], bool)
            ax.errorbar(x[got], [r["measured_mean"] for r, g in zip(sel, got) if g],
                        yerr=[r["measured_sd"] or 0 for r, g in zip(sel, got) if g], fmt="o",
                        color=f"C{i}", label=f"{kind} (measured)")
            ax.plot(x, [r["predicted_objective"] for r in sel], "x", color="k")
        ax.set_xticks(np.arange(len(WEIGHTS)) + 0.3, [f"lambda1={w}" for w in WEIGHTS])
        ax.set_title(f"{PLANS.name}, replay {'0' if mode == 'r0' else 'free'} (x: law's prediction)", fontsize=10)
        ax.set_ylabel("weighted final loss")
    axes[0].legend(fontsize=7)
    save(out, "lab_closed_loop" + ("" if PLANS.name == "closed_loop" else "_" + PLANS.name.split("_")[-1]),
         result, fig)
    for k, v in verdicts.items():
        print(k, {o: f"{x['verdict']} ({x['measured_gain']:+.4f} ± {x['se']:.4f}, predicted "
                     f"{x['predicted_gain']:+.4f})" for o, x in v.items()})


def main():
    import argparse
    import sys

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", default=None, help="trained closed-loop runs (report stage)")
    ap.add_argument("--study-runs", default=str(HERE / "runs"), help="the default study's runs")
    ap.add_argument("--out", default=str(HERE.parents[0] / "results"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--eps", type=float, default=0.0,
                    help="design with the LR-weighted S2 law (plans in closed_loop_eps<E>/, replay 0 only)")
    ap.add_argument("--law", default="cpt-shared", choices=["cpt-shared", "cpt-mpl"],
                    help="the law form to design with: cpt-shared (lambda profiled) or cpt-mpl (the MPL "
                         "annealing term; plans in closed_loop_mpl/, replay 0 only)")
    a = ap.parse_args(sys.argv[1:])
    os.makedirs(a.out, exist_ok=True)
    global PLANS
    if a.eps:
        PLANS = HERE / f"closed_loop_eps{a.eps:g}"
    if a.law == "cpt-mpl":
        PLANS = HERE / "closed_loop_mpl"
    if a.runs:
        report_stage(a.runs, a.out)
    else:
        plan_stage(load(a.study_runs), a.out, a.eps, a.law)


if __name__ == "__main__":
    main()
