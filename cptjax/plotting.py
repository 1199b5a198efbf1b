"""Matplotlib figures (imported lazily by the CLI; the maths never imports this)."""

from __future__ import annotations

import os

import numpy as np

from .errors import InputError


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path) -> None:
    """Write ``fig`` atomically (temp file + rename, see ``cptjax.files``): a failed or interrupted save
    leaves no partial file; errors name ``path``, not the temporary file."""
    import io

    from .files import atomic_write

    buf = io.BytesIO()
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    try:
        fig.savefig(buf, format=fmt, dpi=120, bbox_inches="tight")
    except ValueError as e:
        raise InputError(f"plot {path}: {e}") from None
    finally:
        pyplot().close(fig)
    atomic_write(path, buf.getvalue())


def prediction(steps, lr, curves: dict, n_pt: int | None, path, title: str = "", observed=None):
    """Loss curves (one line per entry of ``curves``, at ``steps``) with the LR (every step) below
    and the transfer point marked; ``observed`` = {name: (steps, loss)} adds data points."""
    plt = pyplot()
    fig, (ax, axl) = plt.subplots(2, 1, figsize=(8, 6), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    for name, y in curves.items():
        ax.plot(steps, y, label=f"{name} (predicted)")
    for name, (s, y) in (observed or {}).items():
        ax.plot(s, y, ".", ms=3, label=f"{name} (observed)")
    # The law diverges as S1 -> 0 in the first steps: scale the axis to the rest of the run.
    tail = [np.asarray(y)[len(y) // 50:] for y in curves.values()]
    tail += [np.asarray(y) for _, y in (observed or {}).values()]
    lo, hi = min(float(np.nanmin(t)) for t in tail), max(float(np.nanmax(t)) for t in tail)
    pad = 0.05 * (hi - lo or 1.0)
    ax.set_ylim(lo - pad, hi + pad)
    axl.plot(np.arange(1, len(lr) + 1), lr, color="k", lw=1)  # every step (curves may be sampled)
    for a in (ax, axl):
        if n_pt is not None and 0 < n_pt < len(lr):
            a.axvline(n_pt, color="gray", ls="--", lw=1)
    if n_pt is not None and 0 < n_pt < len(lr):
        ax.annotate("transfer", (n_pt, ax.get_ylim()[1]), xytext=(4, -12),
                    textcoords="offset points", color="gray")
    ax.set_ylabel("loss")
    ax.legend()
    ax.set_title(title)
    ax.grid(alpha=0.3)
    axl.set_ylabel("LR")
    axl.set_xlabel("step")
    axl.grid(alpha=0.3)
    save(fig, path)


def fit(series, path, title: str = ""):
    """Data vs fit per run, residual panel below. ``series`` = [(name, steps, observed, fitted)]."""
    plt = pyplot()
    fig, (ax, axr) = plt.subplots(2, 1, figsize=(8, 6), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    for i, (name, s, y, f) in enumerate(series):
        c = f"C{i % 10}"
        ax.plot(s, y, ".", ms=3, color=c, alpha=0.6, label=f"{name} (data)")
        ax.plot(s, f, "-", lw=1.2, color=c)
        axr.plot(s, 100 * (f - y) / y, ".", ms=2, color=c)
    allf = np.concatenate([np.concatenate([y, f]) for _, _, y, f in series])
    lo, hi = np.percentile(allf, [0.5, 99.5])
    ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    axr.axhline(0, color="k", lw=0.8)
    axr.set_ylabel("residual %")
    axr.set_xlabel("step")
    axr.grid(alpha=0.3)
    save(fig, path)


def design(plan, front, path, free=None, bands=None):
    """Schedule (plan, free-form plan) vs baselines, predicted curves (with a 90% band over the
    parameter draws when ``bands`` = (general lo, hi, domain lo, hi)), and the Pareto front."""
    plt = pyplot()
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    t = np.arange(1, plan.schedule.size + 1)
    ax[0].plot(t, plan.schedule, "k", lw=2, label=f"plan ({plan.source})")
    if free is not None:
        ax[0].plot(t, free.schedule, "k:", lw=1.5, label="free-form plan (not recommended)")
    for b in plan.baselines.values():
        ax[0].plot(t, b["schedule"], lw=1, label=b["name"])
    ax[0].set_xlabel("CPT step")
    ax[0].set_ylabel("LR")
    ax[0].legend(fontsize=7)
    ax[0].set_title("CPT schedule")
    g, d = (np.asarray(x)[plan.n_pt:] for x in plan.curves)
    ax[1].plot(t, g, label="general (D_pt)")
    ax[1].plot(t, d, label="domain (D_cpt)")
    if bands is not None:
        ax[1].fill_between(t, bands[0], bands[1], color="C0", alpha=0.2, label="90% band (parameter draws)")
        ax[1].fill_between(t, bands[2], bands[3], color="C1", alpha=0.2)
    if free is not None:
        fg, fdm = (np.asarray(x)[free.n_pt:] for x in free.curves)
        ax[1].plot(t, fg, ":", color="C0", label="general, free-form plan")
        ax[1].plot(t, fdm, ":", color="C1", label="domain, free-form plan")
    ax[1].set_xlabel("CPT step")
    ax[1].set_ylabel("predicted loss")
    ax[1].legend()
    ax[1].set_title("predicted curves")
    ax[2].plot([f["general"] for f in front], [f["domain"] for f in front], "o-")
    for f in front:
        ax[2].annotate(f"λ1={f['weight_general']}", (f["general"], f["domain"]), fontsize=7)
    ax[2].set_xlabel("final general loss")
    ax[2].set_ylabel("final domain loss")
    ax[2].set_title("Pareto front")
    for a in ax:
        a.grid(alpha=0.3)
    save(fig, path)


def plot_fit(res, runs, path, title: str = "") -> None:
    """Data against a fit (`FitResult`) for each run, with a residual panel."""
    from .laws import predict
    from .fitting import unique_names

    series = []
    for r, name in zip(runs, unique_names([r.name for r in runs])):
        ix, y = r.points(res.column)
        p = np.asarray(predict(res.law, r.lr, r.n_pt, idx=ix,
                               replay=r.replay if "replay" in res.law.uses else None,
                               size=r.size if "size" in res.law.uses else None))
        series.append((name, ix + 1, y, p))
    fit(series, path, title=title)
