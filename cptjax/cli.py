"""The ``cptjax`` command: argument parsing and printing only (the maths lives in the modules)."""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time

from ._io import (atomic_dir, atomic_write, check_output_dir, check_output_file, check_outputs, dumps,
                  schedule_files)

np = None  # numpy, imported by main() once the signal handling is in place

DEFAULT_PT = "wsd(steps=40000,peak=2e-4,warmup=500,decay=0.2,final=2e-5)"
DEFAULT_CPT = "cosine(steps=10000,peak=1e-4,warmup=500,final=0)"


from .errors import InputError


class _Fail(InputError):
    """A user error found by the command line itself: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on the one error path (``cptjax: error: ...``, exit 2)."""

    def error(self, message):
        raise _Fail(f"{self.prog.removeprefix('cptjax').strip() + ': ' if self.prog != 'cptjax' else ''}{message}")


def _setup_jax(x64: bool = True):
    """float64, and JAX's persistent compilation cache in the user's cache folder, so a second
    command of the same shapes starts without compiling (``CPTJAX_NO_CACHE=1`` turns it off,
    ``CPTJAX_CACHE_DIR`` moves it)."""
    import jax

    if x64:
        jax.config.update("jax_enable_x64", True)
    if os.environ.get("CPTJAX_NO_CACHE", "") not in ("", "0"):
        return
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.environ.get("CPTJAX_CACHE_DIR") or os.path.join(base, "cptjax", "jax")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return  # no writable cache folder: compile every time
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)



def _number(name, value, lo=None, hi=None, *, lo_open=False, integer=False):
    """Check a numeric argument: finite, within [lo, hi] (lo excluded when ``lo_open``)."""
    if value is None:
        return None
    if not math.isfinite(value):
        raise _Fail(f"{name} must be a finite number, got {value}")
    if integer and value != int(value):
        raise _Fail(f"{name} must be an integer, got {value}")
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise _Fail(f"{name} must be {'>' if lo_open else '>='} {lo:g}, got {value:g}")
    if hi is not None and value > hi:
        raise _Fail(f"{name} must be <= {hi:g}, got {value:g}")
    return value


_PLOT_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg", "eps", "ps", "tif", "tiff", "webp")


def _out_file(path, name):
    if path is not None:
        try:
            check_output_file(path, name)
        except ValueError as e:
            raise _Fail(str(e)) from None
        ext = os.path.splitext(path)[1].lower().lstrip(".")
        if name == "--plot" and ext not in _PLOT_FORMATS:
            raise _Fail(f"--plot {path}: give a figure file ending in one of "
                        f"{', '.join('.' + f for f in _PLOT_FORMATS)}")
    return path


def _law_files(spec):
    return [p.strip() for p in (spec or "").split(",") if p.strip() and os.path.exists(p.strip())]


def _no_clobber(outputs, *inputs, schedules=()):
    """Outputs must not be inputs (nor one another): checked before any work."""
    paths = [p for group in inputs for p in (group or [])]
    paths += [f for text in schedules for f in schedule_files(text)]
    try:
        check_outputs(outputs, paths)
    except ValueError as e:
        raise _Fail(str(e)) from None


def progress(msg: str, quiet: bool = False):
    """Print a stage message to stderr (machine output stays on stdout)."""
    if not quiet:
        print(f"[cptjax] {msg}", file=sys.stderr, flush=True)


def load_law(spec: str, with_cov: bool = False):
    """A law from a preset name or a JSON file (a fitted law, or a law's ``to_dict``); or a pair
    from two fit files ``GENERAL.json,DOMAIN.json``. ``with_cov``: also return the parameter
    covariance(s) the fit files carry (``None`` where there is none)."""
    import json

    import cptjax

    if "," in spec:
        parts = [p.strip() for p in spec.split(",")]
        if len(parts) != 2 or not all(parts):
            raise _Fail(f"--law {spec}: give one law, or two fit files GENERAL.json,DOMAIN.json")
        (g, cg), (d, cd) = (load_law(p, True) for p in parts)
        if isinstance(g, cptjax.LawPair) or isinstance(d, cptjax.LawPair):
            raise _Fail(f"--law {spec}: each of the two files must hold one law")
        pair = cptjax.LawPair(g, d)
        return (pair, (cg, cd)) if with_cov else pair
    if spec.endswith(".json") or os.path.exists(spec):
        if not os.path.exists(spec):
            raise _Fail(f"{spec}: no such law file")
        if os.path.isdir(spec):
            raise _Fail(f"{spec}: is a folder, not a law file")
        try:
            with open(spec, encoding="utf-8") as fh:
                d = json.load(fh)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise _Fail(f"{spec}: not valid JSON ({e})") from None
        except OSError as e:
            raise _Fail(f"{spec}: cannot read ({e.strerror})") from None
        cov = None
        if isinstance(d, dict) and isinstance(d.get("law"), dict):
            cov = d.get("cov")
            d = d["law"]
        try:
            law = cptjax.law_from_dict(d)
        except (ValueError, TypeError) as e:
            raise _Fail(f"{spec}: {e}") from None
        if cov is not None:
            try:
                cov = np.asarray(cov, np.float64)
                n = len(law.param_names())
                if cov.shape != (n, n) or not np.all(np.isfinite(cov)):
                    cov = None
            except (TypeError, ValueError):
                cov = None
        if with_cov:
            return law, (cov if not isinstance(law, cptjax.LawPair) else (None, None))
        return law
    law = cptjax.preset(spec)
    return (law, (None, None) if isinstance(law, cptjax.LawPair) else None) if with_cov else law


def _table(rows, cols, fmt):
    widths = [max(len(c), *(len(fmt[i](r[i])) for r in rows)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(fmt[i](r[i]).rjust(w) for i, w in enumerate(widths)) for r in rows]
    return "\n".join(lines)


def _parse_steps(text, T, n_pt):
    if text is None:
        start = n_pt if n_pt < T else 0
        picks = ([n_pt] if start else []) + [start + max(1, round(f * (T - start)))
                                              for f in (0.05, 0.25, 0.5, 0.75, 1.0)]
        return sorted({min(max(s, 1), T) for s in picks})
    try:
        steps = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise _Fail(f"--at: expected comma-separated integer steps, got {text!r}") from None
    bad = [s for s in steps if not 1 <= s <= T]
    if bad or not steps:
        raise _Fail(f"--at: steps must lie in 1..{T} (joined PT+CPT steps), got {bad or text!r}")
    return steps


def _predict_run(args, law) -> int:
    import cptjax

    args.runs = [args.run]
    if args.loss_column is None and isinstance(law, cptjax.LawPair):
        raise _Fail("--run with a law pair needs --loss-column and a single law")
    run = _load_runs(args)[0]
    column = args.loss_column or next(iter(run.losses))
    ix, y = run.points(column)
    laws = law if isinstance(law, cptjax.LawPair) else (law,)
    res = {"law": args.law, "run": args.run, "column": column}
    names = ("general", "domain") if len(laws) == 2 else ("loss",)
    preds = {}
    for name, l in zip(names, laws):
        preds[name] = np.asarray(cptjax.predict(
            l, run.lr, run.n_pt, idx=ix, replay=run.replay if "replay" in l.uses else None,
            size=run.size if "size" in l.uses else None, lam=args.lam))
        res[name] = _errors(preds[name], y)
    if args.out:  # one file with every law's prediction beside the observed loss
        rows = zip(ix + 1, y, *(preds[n] for n in names))
        body = "\n".join(",".join([str(s), repr(float(o))] + [repr(float(q)) for q in qs])
                         for s, o, *qs in rows)
        atomic_write(args.out, "step,observed," + ",".join(f"predicted_{n}" for n in names)
                     + "\n" + body + "\n")
    if args.json:
        print(dumps(res, indent=2))
    else:
        for k, v in res.items():
            if isinstance(v, dict):
                print(f"{k}: mean rel err {100 * v['mean_rel_error']:.3f}%, max "
                      f"{100 * v['max_rel_error']:.3f}%, R2 {v['r2']:.5f}, RMSE {v['rmse']:.4g} "
                      f"({v['n_points']} points of {column!r} in {args.run})")
    return 0


def cmd_predict(args) -> int:
    _no_clobber({"--out": args.out, "--plot": args.plot}, _law_files(args.law), [args.run],
                schedules=(args.pt, args.cpt, args.schedule))
    _out_file(args.out, "--out")
    _out_file(args.plot, "--plot")
    _number("--replay", args.replay, 0, 1)
    _number("--size", args.size, 0, lo_open=True)
    _number("--lam", args.lam, 0, 1 - 1e-12, lo_open=True)
    _number("--n-pt", args.n_pt, 0, integer=True)
    _setup_jax()
    import cptjax

    t0 = time.perf_counter()
    law = load_law(args.law)
    if args.run:
        return _predict_run(args, law)
    pt = cptjax.schedules.parse(args.pt)
    cpt = cptjax.schedules.parse(args.cpt) if args.cpt else np.zeros(0)
    lr, n_pt = cptjax.schedules.join(pt, cpt)
    T = lr.size
    progress(f"law {args.law}; PT {n_pt} steps + CPT {T - n_pt} steps; computing areas and losses",
             args.json)
    at = _parse_steps(args.at, T, n_pt)
    steps = np.arange(1, T + 1)
    laws = list(law) if isinstance(law, cptjax.LawPair) else [law]
    if any(l.needs_schedule for l in laws) and not args.out and T > 4000:
        # Schedule laws cost O(steps x decrements) per curve: the table's steps and 2 000 for the plot.
        steps = np.unique(np.concatenate([np.linspace(1, T, 2000).round().astype(int), at, [T]]))
        progress(f"{laws[0].kind} takes the schedule itself (cost per step ~ its LR decrements): "
                 f"evaluating {steps.size} of {T} steps (--out evaluates every step)", args.json)
    pred = cptjax.predict(law, lr, n_pt, idx=steps - 1, replay=args.replay, size=args.size, lam=args.lam)
    names = ("general", "domain") if isinstance(pred, cptjax.LossPair) else ("loss",)
    curves = {n: np.asarray(v) for n, v in zip(names, pred if isinstance(pred, tuple) else (pred,))}
    for n, c in curves.items():
        bad = ~np.isfinite(c)
        if bad.any():
            raise _Fail(f"{args.law}: the law predicts a non-finite {n} loss from step "
                        f"{int(steps[np.argmax(bad)])}: check its parameters and the schedule")
    pos = np.searchsorted(steps, at)
    rows = [(s, s - n_pt, lr[s - 1], *(curves[n][i] for n in names)) for s, i in zip(at, pos)]
    result = {
        "law": args.law, "pt": args.pt, "cpt": args.cpt, "n_pt": n_pt, "steps": T,
        "replay": args.replay, "size": args.size, "lam": args.lam,
        "table": [{"step": int(r[0]), "cpt_step": int(r[1]),
                   **dict(zip(("lr", *names), map(float, r[2:])))} for r in rows],
        "final": {n: float(curves[n][-1]) for n in names},
    }
    if args.out:
        if args.out.endswith(".json"):
            atomic_write(args.out, dumps({**result, "curves": {
                "step": steps.tolist(), "lr": lr.tolist(),
                **{n: curves[n].tolist() for n in names}}}))
        else:
            body = "\n".join(",".join([str(s), str(s - n_pt), repr(float(lr[s - 1]))]
                                      + [f"{curves[n][i]:.10g}" for n in names]) for i, s in enumerate(steps))
            atomic_write(args.out, "step,cpt_step,lr," + ",".join(names) + "\n" + body + "\n")
        progress(f"wrote curves to {args.out}", args.json)
    if args.plot:
        from . import _plot

        _plot.prediction(steps, lr, curves, n_pt, args.plot,
                         title=f"cptjax predict: {args.law}")
        progress(f"wrote plot to {args.plot}", args.json)
    if args.json:
        print(dumps(result, indent=2))
    else:
        fmt = [str, str, lambda v: f"{v:.3g}"] + [lambda v: f"{v:.5f}"] * len(names)
        print(_table(rows, ["step", "cpt_step", "lr", *names], fmt))
        progress(f"done in {time.perf_counter() - t0:.2f} s", False)
    return 0


def _load_runs(args):
    import warnings

    import cptjax

    runs = []
    for path in args.runs:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", cptjax.DataWarning)
            runs.append(cptjax.load_run(path, schedule=args.schedule, n_pt=args.n_pt,
                                        loss_columns=[args.loss_column] if args.loss_column else None,
                                        size=args.size, replay=args.replay))
        for w in caught:
            progress(f"warning: {w.message}", False)
    return runs


def _errors(pred, obs):
    rel = np.abs(pred - obs) / obs
    ss = np.sum((obs - obs.mean()) ** 2)
    return {"mean_rel_error": float(rel.mean()), "max_rel_error": float(rel.max()),
            "r2": float(1 - np.sum((pred - obs) ** 2) / ss) if ss > 0 else float("nan"),
            "rmse": float(np.sqrt(np.mean((pred - obs) ** 2))), "n_points": int(obs.size)}


def cmd_fit(args) -> int:
    _no_clobber({"--out": args.out, "--plot": args.plot}, args.runs, schedules=(args.schedule,))
    _out_file(args.out, "--out")
    _out_file(args.plot, "--plot")
    _number("--delta", args.delta, 0, lo_open=True)
    _number("--max-iter", args.max_iter, 1, integer=True)
    _number("--replay", args.replay, 0, 1)
    _number("--size", args.size, 0, lo_open=True)
    _number("--n-pt", args.n_pt, 0, integer=True)
    _number("--eps", args.eps, 0, 0.99)
    lam = _lam(args.lam)
    _setup_jax()
    import warnings

    import cptjax

    runs = _load_runs(args)
    column = args.loss_column or next(iter(runs[0].losses))
    progress(f"fitting {args.law} law to {column!r} of {len(runs)} run(s) "
             f"({sum(int(np.isfinite(r.losses[column]).sum()) for r in runs if column in r.losses)} points)",
             args.json)
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # the fit's warnings are printed once, below
        warnings.simplefilter("ignore", RuntimeWarning)
        res = cptjax.fit(runs, args.law, column, target=args.target, delta=args.delta,
                         max_iter=args.max_iter, lam=lam, eps=args.eps,
                         coarse=False if args.full_search else None)
    if res.status == "non-finite" or not all(math.isfinite(v) for v in res.params.values()):
        raise _Fail(f"the fit of {args.law!r} to {column!r} did not reach finite parameters (status "
                    f"{res.status}): check the runs' LR and loss columns (is the LR logged in "
                    "raw units, and not all zero?)")
    progress(f"{res.status} after {res.iterations} iterations in {time.perf_counter() - t0:.1f} s",
             args.json)
    out = res.to_dict()
    out["runs"] = [r.name for r in runs]
    out["data_range"] = max(int(r.lr.size) for r in runs)
    out["lr_range"] = [float(min(r.lr[r.lr > 0].min() if (r.lr > 0).any() else 0.0 for r in runs)),
                       float(max(r.lr.max() for r in runs))]
    if not res.law.needs_schedule:
        out["area_range"] = _area_range(res.law, runs, column)
    out["data_report"] = {r.name: r.report for r in runs}
    if args.out:
        atomic_write(args.out, dumps(out, indent=2))
        progress(f"wrote {args.out}", args.json)
    if args.plot:
        from . import _plot

        series = []
        for r in runs:
            ix, y = r.points(column)
            p = np.asarray(cptjax.predict(res.law, r.lr, r.n_pt, idx=ix, replay=r.replay
                                          if "replay" in res.law.uses else None,
                                          size=r.size if "size" in res.law.uses else None))
            series.append((r.name, ix + 1, y, p))
        _plot.fit(series, args.plot, title=f"cptjax fit: {args.law} law, {column}")
        progress(f"wrote {args.plot}", args.json)
    if args.json:
        print(dumps(out, indent=2))
        return 0
    rows = [(k, v, res.stderr[k]) for k, v in res.params.items()]
    print(_table(rows, ["param", "value", "stderr"],
                 [str, lambda v: f"{v:.6g}", lambda v: f"{v:.3g}"]))
    print(f"status {res.status}; iterations {res.iterations}; points {res.n_points}; "
          f"huber {res.objective:.4g}; R2 {res.r2:.5f}; RMSE {res.rmse:.4g}; "
          f"mean rel err {100 * res.mean_rel_error:.3f}%; max {100 * res.max_rel_error:.3f}%"
          + (f"; lam {res.law.lam:g}" if hasattr(res.law, "lam") else ""))
    for w in res.warnings:
        print(f"warning: {w}")
    return 0


def _area_range(law, runs, column):
    """The span of the CPT areas (S1_cpt, S2_cpt) over the fitted runs' logged CPT points, with the
    law's λ and ε: the coordinates in which the law sees a schedule, so a plan beyond them is an
    extrapolation whatever its LR range."""
    from ._areas import areas_numpy

    s1, s2 = [], []
    for r in runs:
        ix, _ = r.points(column)
        ix = ix[ix >= r.n_pt]
        if ix.size:
            a = areas_numpy(r.lr, r.n_pt, law.lam, eps=law.eps, idx=ix)
            s1.append(a.s1_cpt)
            s2.append(a.s2_cpt)
    if not s1:
        return None
    s1, s2 = np.concatenate(s1), np.concatenate(s2)
    return {"s1_cpt": [float(s1.min()), float(s1.max())], "s2_cpt": [float(s2.min()), float(s2.max())]}


def _outside_areas(law, pt, plan, ranges):
    """Warnings for a plan whose final CPT areas lie beyond those of the runs a law was fitted on."""
    from ._areas import areas_numpy

    out = []
    for (name, l), rng in zip(zip(("general", "domain"), law), ranges):
        if not rng:
            continue
        a = areas_numpy(np.concatenate([pt, plan]), pt.size, l.lam, eps=l.eps, idx=[pt.size + plan.size - 1])
        for key, label in (("s1_cpt", "forward area S1_cpt"), ("s2_cpt", "annealing area S2_cpt")):
            v, (lo, hi) = float(getattr(a, key)[0]), rng[key]
            if v > hi + 0.05 * abs(hi) or v < lo - 0.05 * abs(lo):
                out.append(f"the plan's {label} ({v:.4g}) lies outside the fitted runs' range "
                           f"[{lo:.4g}, {hi:.4g}] ({name} law): its shape is an extrapolation")
    return out


def _lam(text):
    if text is None or text == "profile":
        return text
    try:
        v = float(text)
    except ValueError:
        raise _Fail(f"--lam: expected a number in (0, 1) or 'profile', got {text!r}") from None
    if not 0 < v < 1:
        raise _Fail(f"--lam: the momentum decay must be in (0, 1), got {v}")
    return v


def _area_ranges(spec):
    """[general, domain] CPT-area spans saved by `cptjax fit` (two fit files), else Nones."""
    import json

    parts = [p.strip() for p in spec.split(",")]
    if len(parts) != 2:
        return [None, None]
    out = []
    for p in parts:
        try:
            with open(p, encoding="utf-8") as fh:
                d = json.load(fh)
        except (OSError, ValueError):
            d = None
        out.append(d.get("area_range") if isinstance(d, dict) else None)
    return out


def _law_range(spec):
    """(steps, largest LR) of the data a law was fitted on: from a fit JSON, or the preset's."""
    import json

    from ._presets import preset_data_range, preset_lr_max

    if "," in spec:  # two fit files: the stricter range of the two
        ranges = [_law_range(p.strip()) for p in spec.split(",")]
        pick = lambda vals: min((v for v in vals if v), default=None)
        return pick([r[0] for r in ranges]), pick([r[1] for r in ranges])
    if os.path.isfile(spec):
        with open(spec, encoding="utf-8") as fh:
            d = json.load(fh)
        lr = d.get("lr_range") if isinstance(d, dict) else None
        return (d.get("data_range") if isinstance(d, dict) else None), (lr[1] if lr else None)
    return preset_data_range(spec), preset_lr_max(spec)


def _check_design_args(args):
    _number("--weight-general", args.weight_general, 0, 1)
    _number("--max-lr", args.max_lr, 0, lo_open=True)
    _number("--cpt-steps", args.cpt_steps, 2)
    _number("--warmup", args.warmup, 0)
    if args.warmup >= args.cpt_steps:
        raise _Fail(f"--warmup ({args.warmup}) must be shorter than --cpt-steps ({args.cpt_steps})")
    _number("--knots", args.knots, 2)
    _number("--iterations", args.iterations, 1)
    _number("--robust", args.robust, 0, 4096)
    if args.cpt_steps > 10_000_000:
        raise _Fail(f"--cpt-steps {args.cpt_steps} is above the limit of 10,000,000 steps")
    if args.replay is None or args.replay == "free":
        replay = args.replay
    else:
        try:
            replay = float(args.replay)
        except ValueError:
            raise _Fail(f"--replay must be 'free' or a ratio in [0, 1], got {args.replay!r}") from None
        _number("--replay", replay, 0, 1)
    try:
        check_output_dir(args.out, "--out")
    except ValueError as e:
        raise _Fail(str(e)) from None
    _no_clobber({f"--out {args.out}/{f}": os.path.join(args.out, f) for f in _DESIGN_FILES},
                _law_files(args.law), schedules=(args.pt,))
    return replay


_DESIGN_FILES = ("plan.csv", "plan.npy", "plan.json", "free_plan.csv", "free_plan.npy", "free_plan.json",
                 "plan_pytorch.py", "report.json", "design.png")


def cmd_design(args) -> int:
    replay = _check_design_args(args)
    _setup_jax()
    import cptjax

    law_name = args.law or ("replay" if replay is not None else "setting-a")
    law, covs = load_law(law_name, with_cov=True)
    if not isinstance(law, cptjax.LawPair):
        raise _Fail(f"{law_name}: design needs a general+domain law pair (a CPT preset or a JSON "
                    "with 'general' and 'domain')")
    if replay not in (None, "free") and not any("replay" in l.uses for l in law):
        raise _Fail(f"--replay: the law {law_name} has no replay ratio (it predicts the same losses "
                    "for every ratio); use --law replay or a fit of the replay law")
    pt = cptjax.schedules.parse(args.pt)
    data_range, lr_max = _law_range(law_name)
    if lr_max and args.max_lr > 10 * lr_max:
        raise _Fail(f"--max-lr {args.max_lr:g} is {args.max_lr / lr_max:.3g}x the largest LR the law "
                    f"was fitted on ({lr_max:g}): its predictions there are not trustworthy")
    if lr_max and args.max_lr > lr_max * (1 + 1e-9):
        progress(f"warning: --max-lr {args.max_lr:g} is above the largest LR the law was fitted on "
                 f"({lr_max:g}): the plan may rely on extrapolation", False)
    t0 = time.perf_counter()

    def show(done, total, value):
        progress(f"step {done}/{total}: plan objective {value:.6f}", args.json)

    progress(f"designing a {args.cpt_steps}-step CPT schedule with {law_name} "
             f"(lambda1={args.weight_general}, max_lr={args.max_lr}, replay={args.replay})", args.json)
    kw = dict(max_lr=args.max_lr, replay=replay, warmup=args.warmup, knots=args.knots,
              iterations=args.iterations, data_range=data_range)
    weights = [0.1, 0.3, 0.5, 0.7, 0.9]
    progress(f"optimising the plan ({args.shape.upper()} family: no dead tail) and a Pareto front over lambda1 = "
             + ", ".join(map(str, weights)) + " together (vmapped)", args.json)
    has_cov = all(c is not None for c in covs)
    draws = cptjax.law_draws(law, covs, n=256, seed=0) if has_cov else None
    if args.robust and not has_cov:
        raise _Fail("--robust needs parameter covariances: pass two fit files --law GENERAL.json,DOMAIN.json")
    try:
        if args.robust:
            progress(f"robust plan: minimising the mean objective over {args.robust} parameter draws",
                     args.json)
            kw["draws"] = cptjax.law_draws(law, covs, n=args.robust, seed=1)
        plans = cptjax.pareto(law, pt, args.cpt_steps, weights + [args.weight_general], progress=show,
                              shape=args.shape, **kw)
        kw.pop("draws", None)
        progress("optimising the free-form plan (what the law alone prefers), for comparison", args.json)
        free = cptjax.design(law, pt, args.cpt_steps, weight_general=args.weight_general, shape="free",
                             progress=show, **kw)
    except ValueError as e:
        raise _Fail(str(e)) from None
    plan, front = plans[-1], plans[:-1]
    if not math.isfinite(plan.objective):
        raise _Fail("the design ended with a non-finite objective (status non-finite): check the "
                    "law's parameters and the PT schedule")
    front_d = [{"weight_general": w, "general": p.general, "domain": p.domain, "objective": p.objective,
                "replay": p.replay} for w, p in zip(weights, front)]
    best = min(plan.baselines.values(), key=lambda b: b["objective"])
    cos = cptjax.schedules.cosine(args.cpt_steps, args.max_lr, warmup=args.warmup, final=0.0)
    cos[: args.warmup] = float(pt[-1]) + (cos[args.warmup] - float(pt[-1])) * np.arange(1, args.warmup + 1) / max(args.warmup, 1)
    r0 = None if replay is None else (plan.replay if replay == "free" else replay)
    scheds = {"plan": plan.schedule, "best baseline": np.asarray(best["schedule"]), "cosine": cos,
              "free-form plan": free.schedule}
    reps = {"plan": plan.replay, "best baseline": best["replay"], "cosine": r0, "free-form plan": free.replay}
    progress("uncertainty: " + ("256 parameter draws from the fits' covariance and " if has_cov else "")
             + "law variants (momentum decay lambda)", args.json)
    unc = cptjax.compare(law, pt, scheds, weight_general=args.weight_general, replays=reps, draws=draws,
                         reference=("plan", "best baseline"))
    unc["best_baseline"] = best["name"]
    shape_warnings = _outside_areas(law, pt, plan.schedule, _area_ranges(law_name))
    for w in shape_warnings:
        progress(f"warning: {w}", False)
    bands = None
    if draws is not None:  # the plan's predicted curves under the parameter draws: a 90% band
        import jax

        from ._design import pt_states

        from ._design import _cpt_losses

        states, T = pt_states(law, pt), plan.schedule.size
        # Schedule laws cost O(steps x decrements) per curve: their band at ~200 steps, interpolated.
        at = (np.unique(np.linspace(0, T - 1, min(T, 200)).round().astype(int))
              if any(l.needs_schedule for l in law) else np.arange(T))
        cond = {"replay": plan.replay} if "replay" in law.general.uses else {}
        cur = jax.vmap(lambda lp: [_cpt_losses(l, s, jax.numpy.asarray(plan.schedule), cond, at)
                                   for l, s in zip(lp, states)])(draws)
        bands = tuple(np.interp(np.arange(T), at, np.nanquantile(np.asarray(c), q, axis=0))
                      for c in cur for q in (0.05, 0.95))
    files = [os.path.join(args.out, f) for f in _DESIGN_FILES]
    result = {"law": law_name, "pt": args.pt, "cpt_steps": args.cpt_steps, "max_lr": args.max_lr,
              "plan": {k: v for k, v in plan.to_dict().items() if k != "schedule"},
              "free_plan": {k: v for k, v in free.to_dict().items() if k not in ("schedule", "baselines")},
              "uncertainty": unc, "pytorch_lr_per_step": plan.schedule.tolist(), "pareto": front_d,
              "warnings": shape_warnings, "files": files}
    from . import _plot

    with atomic_dir(args.out) as tmp:
        plan.save(os.path.join(tmp, "plan"))
        free.save(os.path.join(tmp, "free_plan"))
        atomic_write(os.path.join(tmp, "plan_pytorch.py"), _PYTORCH_EXPORT)
        atomic_write(os.path.join(tmp, "report.json"), dumps(result, indent=2))
        _plot.design(plan, front_d, os.path.join(tmp, "design.png"), free=free, bands=bands)
    progress(f"wrote {args.out}/ in {time.perf_counter() - t0:.1f} s", args.json)
    if args.json:
        print(dumps({k: v for k, v in result.items() if k != "pytorch_lr_per_step"}, indent=2))
        return 0
    rep = lambda r: "-" if r is None else f"{r:.3f}"
    rows = [("plan (" + plan.source + ")", plan.objective, plan.general, plan.domain, rep(plan.replay)),
            ("free-form plan", free.objective, free.general, free.domain, rep(free.replay))]
    rows += [(b["name"], b["objective"], b["general"], b["domain"], rep(b["replay"]))
             for b in plan.baselines.values()]
    print(_table(rows, ["schedule", "objective", "general", "domain", "replay"],
                 [str] + [lambda v: f"{v:.5f}"] * 3 + [str]))
    d, fd = plan.diagnostics, free.diagnostics
    print(f"plan: predicted gain over the best baseline {d['gain_vs_best_baseline']:+.5f} "
          f"({100 * d['gain_vs_best_baseline_rel']:+.3f}%); {100 * d['share_below_1pct_of_peak']:.1f}% of "
          f"steps below 1% of its peak, credited {d['objective_credited_to_steps_below_1pct']:.5f}")
    dead = fd["share_below_1pct_of_peak"] > 0.01 and fd["objective_credited_to_steps_below_1pct"] > 0
    print(f"free-form plan: {100 * fd['share_below_1pct_of_peak']:.1f}% of steps below 1% of its peak, "
          f"credited {fd['objective_credited_to_steps_below_1pct']:.5f} of objective"
          + (": the law over-credits such steps (experiments/README.md, the closed loop); train the "
             "plan, not this" if dead else " (no dead tail; still a shape the fitted runs may not cover)"))
    if "gain" in unc:
        g = unc["gain"]
        print(f"uncertainty ({g['n_draws']} parameter draws): gain over {best['name']} "
              f"{g['mean']:+.5f}, 95% interval [{g['lo95']:+.5f}, {g['hi95']:+.5f}]; "
              f"P(plan beats it) = {g['p_plan_wins']:.2f}")
    else:
        wins = unc.get("plan_wins_in_variants")
        print(f"uncertainty: {law_name} carries no parameter covariance (fit your runs and pass "
              "--law GENERAL.json,DOMAIN.json for a gain interval)"
              + (f"; over the law variants below, P(plan beats {best['name']}) = {wins} = "
                 f"{unc['p_plan_wins_variants']:.2f}" if wins else ""))
    if unc["regret"]:
        print(f"law variants (lambda 0.999..0.98; S2 weighted by LR^0.1, ^0.2): the plan beats {best['name']} "
              f"in {unc['plan_wins_in_variants']}; worst-case regret: " + ", ".join(
                  f"{k} {v:.5f}" for k, v in unc["worst_regret"].items()))
    else:
        print("law variants: none for this law (the variants change the momentum decay and S2 weight of area laws)")
    if plan.note:
        print("note:", plan.note)
    return 0


_PYTORCH_EXPORT = '''"""The designed CPT schedule for PyTorch: a LambdaLR over plan.npy (written by cptjax design).

    optimizer = torch.optim.AdamW(model.parameters(), lr=1.0)   # base LR 1: the lambda gives the LR
    scheduler = make_scheduler(optimizer)                        # call scheduler.step() after each step

Hugging Face Trainer: Trainer(..., optimizers=(optimizer, make_scheduler(optimizer))).
Step i of CPT (1-based, as trainers log it) uses plan[i - 1]; after the plan the last LR is held.
"""
import os

import numpy as np
import torch

PLAN = np.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "plan.npy"))


def lr_at(step: int) -> float:
    return float(PLAN[min(step, PLAN.size - 1)])


def make_scheduler(optimizer):
    base = optimizer.param_groups[0]["lr"]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_at(step) / base)
'''



def cmd_lab(args) -> int:
    import tomllib

    from . import _lab

    if args.print_default:
        print(_lab.DEFAULT_STUDY, end="")
        return 0
    if args.study and args.quick:
        raise _Fail("give a STUDY file or --quick, not both")
    if args.study:
        study = _lab.load_study(args.study, args.model)
    else:
        text = _lab.QUICK_STUDY if args.quick else _lab.DEFAULT_STUDY
        study = _lab.parse_study(tomllib.loads(text), "quick study" if args.quick else "default study",
                                 args.model)
    try:
        check_output_dir(args.out, "--out")
    except ValueError as e:
        raise _Fail(str(e)) from None
    outs = [r.name + ".csv" for r in study.runs] + [r.name + ".csv" for r in study.pt_runs()]
    _no_clobber({f"--out {args.out}/{f}": os.path.join(args.out, f) for f in outs + ["manifest.json"]},
                [args.study], args.general, args.domain, args.ood)
    _setup_jax(x64=False)  # the lab trains in float32; the cache still helps
    only = set(args.only) if args.only else None
    if only:
        names = {r.name for r in study.runs} | {r.name for r in study.pt_runs()}
        bad = sorted(only - names)
        if bad:
            raise _Fail(f"--only: unknown run(s) {bad}; the study has {sorted(names)}")
    corpora = _lab.load_corpora(args.general, args.domain, args.ood)
    for c in corpora.values():
        progress(c.describe(), args.json)
    n = len(study.runs) + len(study.pt)
    progress(f"study {study.name!r}: {len(study.pt)} PT + {len(study.runs)} CPT runs, model "
             f"{study.model.n_params() / 1e6:.2f}M parameters; writing to {args.out}/", args.json)
    t0 = time.perf_counter()
    manifest = _lab.run_study(study, args.out, corpora=corpora, quiet=args.json, only=only)
    progress(f"{n} runs done in {time.perf_counter() - t0:.1f} s; fit them with "
             f"'cptjax fit {args.out}/*.csv --loss-column domain_loss'", args.json)
    if args.json:
        print(dumps(manifest, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="cptjax",
        description="Predict, fit and optimise LLM continual pre-training (CPT) loss curves with "
                    "the CPT scaling law (Wang et al. 2025) in JAX.",
        epilog="Schedules are given in text form, e.g. "
               "'wsd(steps=40000,peak=2e-4,warmup=500,decay=0.2,final=2e-5)', "
               "'cosine(steps=10000,peak=1e-4,warmup=500,final=0)', 'constant(steps=N,peak=X)', "
               "'linear(...)', 'multistep(...)', 'inverse_sqrt(...)', or 'file(lr.npy)'. "
               "Run 'cptjax COMMAND --help' for each command.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    pr = sub.add_parser(
        "predict", help="predict general and domain loss curves for a PT+CPT schedule",
        description="Predict the loss at every step of a joined PT+CPT schedule with a law (a "
                    "preset or a fitted JSON), print a table at chosen steps, and optionally write "
                    "the curves and a plot.")
    pr.add_argument("law", nargs="?", default="setting-a",
                    help="preset name (setting-a, setting-b, replay, size, mpl-25m, mpl-100m, "
                         "mpl-400m) or a law JSON file (default: setting-a)")
    pr.add_argument("--pt", default=DEFAULT_PT, help=f"PT schedule (default: {DEFAULT_PT})")
    pr.add_argument("--cpt", default=DEFAULT_CPT,
                    help=f"CPT schedule; '' for none (default: {DEFAULT_CPT})")
    pr.add_argument("--replay", type=float, default=None,
                    help="replay ratio r_pt in [0, 1] (laws with replay, e.g. the 'replay' preset)")
    pr.add_argument("--size", type=float, default=None,
                    help="model size N in millions of parameters (the 'size' law)")
    pr.add_argument("--lam", type=float, default=None,
                    help="momentum decay lambda (default: the law's own, 0.999 for the presets)")
    pr.add_argument("--at", default=None,
                    help="comma-separated joined steps for the table (default: transfer point and "
                         "5%%, 25%%, 50%%, 75%%, 100%% of CPT)")
    pr.add_argument("--out", default=None, help="write every step's curves to this .csv or .json")
    pr.add_argument("--plot", default=None, help="write a PNG of both curves with the transfer marked")
    pr.add_argument("--json", action="store_true", help="print machine-readable JSON to stdout")
    pr.add_argument("--run", default=None,
                    help="a held-out run (CSV/JSON): predict its logged steps and report errors "
                         "against its observed loss (uses --schedule/--n-pt/--loss-column)")
    pr.add_argument("--schedule", default=None, help="with --run: the run's schedule in text form")
    pr.add_argument("--n-pt", type=int, default=None, help="with --run: its number of PT steps")
    pr.add_argument("--loss-column", default=None, help="with --run: the loss column to compare")
    pr.set_defaults(func=cmd_predict)

    fi = sub.add_parser(
        "fit", help="fit a law to loss logs (CSV, W&B CSV export, JSON)",
        description="Fit one law to one loss column of one or more runs, parameters shared "
                    "across runs (fit all PT and CPT runs of one validation set together). "
                    "Objective: sum of Huber(delta) on log residuals; multi-start "
                    "Levenberg-Marquardt; standard errors from the Laplace/sandwich covariance.")
    fi.add_argument("runs", nargs="+", metavar="RUN", help="run files: .csv, .csv.gz or .json")
    from ._laws import LAWS

    fi.add_argument("--law", default="cpt", choices=sorted(LAWS),
                    help="law to fit (default cpt): " + ", ".join(sorted(LAWS)))
    fi.add_argument("--loss-column", default=None, help="loss column to fit (default: the first)")
    fi.add_argument("--target", default="general", choices=["general", "domain"],
                    help="validation set kind (the replay law's form depends on it)")
    fi.add_argument("--schedule", default=None,
                    help="schedule in text form for runs without a usable LR column")
    fi.add_argument("--n-pt", type=int, default=None, help="number of PT steps in each run")
    fi.add_argument("--replay", type=float, default=None, help="replay ratio of the runs")
    fi.add_argument("--size", type=float, default=None, help="model size (millions) of the runs")
    fi.add_argument("--delta", type=float, default=1e-3, help="Huber delta on log loss (1e-3)")
    fi.add_argument("--max-iter", type=int, default=200, help="iteration cap per start (200)")
    fi.add_argument("--eps", type=float, default=0.0,
                    help="LR weight of the annealing area, S2 = sum m_i*eta_i^eps (CPT paper App. J; "
                         "0 = the plain law, 0.1-0.2 stop zero-LR steps earning credit)")
    fi.add_argument("--lam", default=None,
                    help="momentum decay lambda of the areas: a number in (0, 1) (default 0.999) or "
                         "'profile' (fit at 0.9..0.999 and keep the best objective)")
    fi.add_argument("--full-search", action="store_true",
                    help="search on every point even for MPL-type fits of more than 1M (point, "
                         "decrement) pairs (default: search on a thinned copy, polish on all points)")
    fi.add_argument("--out", default=None, help="write the fit as JSON (loadable by predict)")
    fi.add_argument("--plot", default=None, help="PNG of data vs fit with a residual panel")
    fi.add_argument("--json", action="store_true", help="print machine-readable JSON to stdout")
    fi.set_defaults(func=cmd_fit)

    de = sub.add_parser(
        "design", help="optimise the CPT schedule and replay ratio (the main job)",
        description="Design the CPT learning-rate schedule (and replay ratio) that minimises "
                    "lambda1*L_general + (1-lambda1)*L_domain at the end of CPT, by gradient "
                    "(optax Adam), and compare it with the best constant/cosine/WSD baselines. "
                    "Writes plan.csv/.npy/.json, report.json and design.png to --out.")
    de.add_argument("--law", default=None,
                    help="preset, a law JSON with general+domain, or two fit files "
                         "GENERAL.json,DOMAIN.json (their covariances give the plan's uncertainty) "
                         "(default: setting-a, or replay when --replay is given)")
    de.add_argument("--pt", default=DEFAULT_PT, help=f"PT history schedule (default: {DEFAULT_PT})")
    de.add_argument("--cpt-steps", type=int, default=10000, help="CPT budget in steps (10000)")
    de.add_argument("--max-lr", type=float, default=2e-4, help="upper bound on the CPT LR (2e-4)")
    de.add_argument("--weight-general", type=float, default=0.5, help="lambda1 in [0, 1] (0.5)")
    de.add_argument("--replay", default=None, help="'free' to optimise the replay ratio, or a value")
    de.add_argument("--warmup", type=int, default=500, help="fixed re-warmup length (500)")
    de.add_argument("--shape", default="wsd", choices=["wsd", "cosine"],
                    help="the plan's family: wsd (free peak, cooldown length >= 10%% of the budget and "
                         "shape; default) or cosine (free peak and final LR); a free-form plan is "
                         "always designed beside it for comparison")
    de.add_argument("--knots", type=int, default=64, help="schedule knots (64)")
    de.add_argument("--iterations", type=int, default=2000, help="max Adam steps, rounded up to a multiple of 100 (2000)")
    de.add_argument("--robust", type=int, default=0, metavar="N",
                    help="minimise the mean objective over N parameter draws from the fits' "
                         "covariance (needs --law GENERAL.json,DOMAIN.json)")
    de.add_argument("--out", default="cptjax-design", help="report folder (cptjax-design)")
    de.add_argument("--json", action="store_true", help="print machine-readable JSON to stdout")
    de.set_defaults(func=cmd_design)

    la = sub.add_parser(
        "lab", help="train real PT + CPT runs of a small GPT (the CPT lab)",
        description="Train a small byte-level GPT (JAX/optax) on English prose (PT), then continue "
                    "it on Python source (CPT) under every schedule, peak LR and replay ratio of a "
                    "study file; write one run file per run (read by 'cptjax fit' without flags) "
                    "and a manifest. Finished runs are skipped; a killed study resumes from its "
                    "checkpoints.")
    la.add_argument("study", nargs="?", default=None,
                    help="study TOML file (default: the built-in study; see --print-default)")
    la.add_argument("--out", default="cptjax-lab", help="output folder (cptjax-lab)")
    la.add_argument("--quick", action="store_true", help="a tiny smoke study (about a minute)")
    la.add_argument("--model", default=None, choices=["tiny", "cpu", "gpu"],
                    help="model size preset (overrides the study's)")
    la.add_argument("--general", nargs="+", default=None, metavar="PATH",
                    help="your own general (PT) text files instead of CPython's prose")
    la.add_argument("--domain", nargs="+", default=None, metavar="PATH",
                    help="your own domain (CPT) text files instead of CPython's source")
    la.add_argument("--ood", nargs="+", default=None, metavar="PATH",
                    help="an out-of-domain validation set (Eq. 6), also evaluated")
    la.add_argument("--only", nargs="+", default=None, metavar="RUN", help="train only these runs")
    la.add_argument("--print-default", action="store_true", help="print the built-in study and exit")
    la.add_argument("--json", action="store_true", help="print the manifest as JSON")
    la.set_defaults(func=cmd_lab)
    return p


_SIGNALS_ON = False


def _watch_signals():
    """SIGINT/SIGTERM at any moment — inside XLA compilation, the optimisation loop or plotting —
    end the command cleanly. Python's C-level handler writes the signal number to a wakeup pipe
    whichever thread receives it; a helper thread reads the pipe, removes the partial outputs in
    progress (``_io``) and exits with 130 / 143 at once, without unwinding a KeyboardInterrupt
    through JAX's native code (which crashed with a segmentation fault) and without waiting for a
    long compilation to return to the interpreter."""
    global _SIGNALS_ON
    import signal

    if _SIGNALS_ON or threading.current_thread() is not threading.main_thread():
        return
    r, w = os.pipe()
    os.set_blocking(w, False)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)  # the helper thread acts; the main thread ignores it
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)

    def wait():
        while True:
            data = os.read(r, 1)
            if not data:
                return
            sig = data[0]
            if sig in (signal.SIGINT, signal.SIGTERM):
                break
        from ._io import cleanup_partial

        cleanup_partial()
        name = "interrupted" if sig == signal.SIGINT else "terminated"
        try:
            sys.stderr.write(f"\ncptjax: {name}; no output was left half-written\n")
            sys.stderr.flush()
        finally:
            os._exit(130 if sig == signal.SIGINT else 143)

    threading.Thread(target=wait, name="cptjax-signals", daemon=True).start()
    _SIGNALS_ON = True


# Exceptions that are the user's doing: the library's InputError (bad arguments, files, data), an
# OSError on a file the user named, bytes that are not text. Any other exception is a bug: exit 1.
_USER_ERRORS = (InputError, OSError, UnicodeError)


def main(argv=None) -> int:
    """The ``cptjax`` command. Exit codes: 0 done, 2 a user error (one ``cptjax: error:`` line),
    1 an internal error (a bug: please report it), 130 / 143 interrupted / terminated.
    ``CPTJAX_DEBUG=1`` shows tracebacks."""
    global np
    if argv is None:  # the console script: handle signals in a helper thread
        _watch_signals()
    import numpy

    np = numpy
    debug = os.environ.get("CPTJAX_DEBUG", "") not in ("", "0")
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except SystemExit as e:  # --help, or argparse's own exit
        return e.code if isinstance(e.code, int) else 0
    except KeyboardInterrupt:
        from ._io import cleanup_partial

        cleanup_partial()
        print("cptjax: interrupted", file=sys.stderr)
        return 130
    except _USER_ERRORS as e:
        if debug:
            raise
        msg = str(e) if not isinstance(e, OSError) or not e.filename else f"{e.filename}: {e.strerror}"
        print(f"cptjax: error: {msg.strip() or type(e).__name__}", file=sys.stderr)
        return 2
    except MemoryError:
        if debug:
            raise
        print("cptjax: error: not enough memory for this problem: use a shorter schedule or fewer "
              "runs", file=sys.stderr)
        return 2
    except Exception as e:  # a bug in cptjax
        if debug:
            raise
        print(f"cptjax: internal error: {type(e).__name__}: {e}\n"
              "This is a bug in cptjax; please report it to the cptjax maintainers with the command you ran "
              "(set CPTJAX_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
