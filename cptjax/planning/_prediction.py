"""What ``cptjax predict`` reports, as library calls: a law's curves for a joined PT+CPT schedule
(`prediction_report`) and a law's errors on a held-out run (`run_errors`)."""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import schedules as _schedules
from ..files import atomic_write, dumps
from ..laws import LawPair, LossPair, predict
from ..fitting import metrics
from ..errors import InputError

__all__ = ["prediction_report", "PredictionReport", "run_errors", "default_steps"]


def default_steps(T: int, n_pt: int) -> list:
    """The transfer point and 5, 25, 50, 75, 100% of CPT (1-based joined steps)."""
    start = n_pt if n_pt < T else 0
    picks = ([n_pt] if start else []) + [start + max(1, round(f * (T - start))) for f in (0.05, 0.25, 0.5, 0.75, 1.0)]
    return sorted({min(max(s, 1), T) for s in picks})


@dataclasses.dataclass
class PredictionReport:
    """Predicted curves (``curves``: name -> loss at ``steps``, 1-based joined steps) and a table."""

    meta: dict
    lr: np.ndarray
    n_pt: int
    steps: np.ndarray
    curves: dict
    at: list

    def table(self) -> list:
        pos = np.searchsorted(self.steps, self.at)
        return [{"step": int(s), "cpt_step": int(s - self.n_pt), "lr": float(self.lr[s - 1]),
                 **{n: float(c[i]) for n, c in self.curves.items()}} for s, i in zip(self.at, pos)]

    def to_dict(self) -> dict:
        return {**self.meta, "n_pt": self.n_pt, "steps": int(self.lr.size), "table": self.table(),
                "final": {n: float(c[-1]) for n, c in self.curves.items()}}

    def save(self, path) -> None:
        """Every evaluated step's curves: ``.json`` (with the report) or CSV (atomically)."""
        path = str(path)
        if path.endswith(".json"):
            atomic_write(path, dumps({**self.to_dict(), "curves": {
                "step": self.steps.tolist(), "lr": self.lr.tolist(),
                **{n: c.tolist() for n, c in self.curves.items()}}}))
            return
        body = "\n".join(",".join([str(s), str(s - self.n_pt), repr(float(self.lr[s - 1]))]
                                  + [f"{c[i]:.10g}" for c in self.curves.values()])
                         for i, s in enumerate(self.steps))
        atomic_write(path, "step,cpt_step,lr," + ",".join(self.curves) + "\n" + body + "\n")

    def plot(self, path, title: str = "") -> None:
        from .. import plotting as _plot

        _plot.prediction(self.steps, self.lr, self.curves, self.n_pt, path, title=title)

    def summary(self) -> str:
        rows = self.table()
        cols = ["step", "cpt_step", "lr", *self.curves]
        cells = [[str(r["step"]), str(r["cpt_step"]), f"{r['lr']:.3g}", *(f"{r[n]:.5f}" for n in self.curves)]
                 for r in rows]
        w = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(cols)]
        return "\n".join(["  ".join(c.rjust(k) for c, k in zip(cols, w))]
                         + ["  ".join(x.rjust(k) for x, k in zip(r, w)) for r in cells])


def prediction_report(law, pt, cpt=None, *, at=None, replay=None, size=None, lam=None,
                      every_step: bool = True, name: str = "law", texts=(None, None)) -> PredictionReport:
    """A law's (or pair's) predicted curves for the PT schedule ``pt`` joined to ``cpt`` (arrays or
    text form), the table at 1-based joined steps ``at`` (default `default_steps`).
    Schedule laws (``mpl``, ``cpt-mpl``) cost O(steps × decrements) per curve: with
    ``every_step=False`` and more than 4 000 steps they are evaluated at ~2 000 steps and ``at``.
    A non-finite prediction raises ``InputError`` naming the step."""
    texts = (pt if isinstance(pt, str) else texts[0], cpt if isinstance(cpt, str) else texts[1])
    schedule = lambda x: _schedules.parse(x) if isinstance(x, str) else np.asarray(x, np.float64)
    pt, cpt = schedule(pt), schedule(cpt) if cpt is not None and len(cpt) else np.zeros(0)
    lr, n_pt = _schedules.join(pt, cpt)
    T = lr.size
    at = default_steps(T, n_pt) if at is None else sorted({int(s) for s in at})
    bad = [s for s in at if not 1 <= s <= T]
    if bad or not at:
        raise InputError(f"at (--at): steps must lie in 1..{T} (joined PT+CPT steps), got {bad or at}")
    steps = np.arange(1, T + 1)
    laws = list(law) if isinstance(law, LawPair) else [law]
    if any(l.needs_schedule for l in laws) and not every_step and T > 4000:
        steps = np.unique(np.concatenate([np.linspace(1, T, 2000).round().astype(int), at, [T]]))
    pred = predict(law, lr, n_pt, idx=steps - 1, replay=replay, size=size, lam=lam)
    names = ("general", "domain") if isinstance(pred, LossPair) else ("loss",)
    curves = {n: np.asarray(v) for n, v in zip(names, pred if isinstance(pred, tuple) else (pred,))}
    for n, c in curves.items():
        nonfinite = ~np.isfinite(c)
        if nonfinite.any():
            raise InputError(f"{name}: the law predicts a non-finite {n} loss from step "
                             f"{int(steps[np.argmax(nonfinite)])}: check its parameters and the schedule")
    meta = {"law": name, "pt": texts[0], "cpt": texts[1], "replay": replay, "size": size, "lam": lam}
    return PredictionReport(meta, lr, n_pt, steps, curves, at)


def run_errors(law, run, column, *, lam=None, out=None) -> dict:
    """A law's (or pair's) errors on a held-out run's logged ``column`` (`metrics` per law);
    ``out``: also write step, observed and predicted losses as CSV."""
    ix, y = run.points(column)
    laws = law if isinstance(law, LawPair) else (law,)
    names = ("general", "domain") if len(laws) == 2 else ("loss",)
    preds, res = {}, {}
    for n, l in zip(names, laws):
        preds[n] = np.asarray(predict(l, run.lr, run.n_pt, idx=ix, lam=lam,
                                      replay=run.replay if "replay" in l.uses else None,
                                      size=run.size if "size" in l.uses else None))
        res[n] = metrics(preds[n], y)
    if out:
        rows = zip(ix + 1, y, *(preds[n] for n in names))
        body = "\n".join(",".join([str(s), repr(float(o))] + [repr(float(q)) for q in qs]) for s, o, *qs in rows)
        atomic_write(out, "step,observed," + ",".join(f"predicted_{n}" for n in names) + "\n" + body + "\n")
    return res
