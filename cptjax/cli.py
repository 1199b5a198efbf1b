"""The ``cptjax`` command: each command parses its arguments, makes one library call and prints
(the work lives in the library: ``design_report``, ``prediction_report``, ``fit``, ``run_tune_study``)."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import threading
import time

from .files import atomic_dir, atomic_write, check_output_dir, check_output_file, check_outputs, dumps, schedule_files


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
    """float64, and JAX's persistent compilation cache (``cptjax.enable_compilation_cache``), so a
    second command of the same shapes starts without compiling."""
    import jax

    import cptjax

    if x64:
        jax.config.update("jax_enable_x64", True)
    cptjax.enable_compilation_cache()


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


class _Rate:
    """A progress callback ``(done, total, value)`` that prints the rate and the ETA."""

    def __init__(self, what, quiet):
        self.what, self.quiet, self.t0, self.first = what, quiet, time.perf_counter(), None

    def __call__(self, done, total, value=None):
        now = time.perf_counter()
        if self.first is None:  # the first report includes compilation: rate from there on
            self.first = (now, done)
            rate_s, eta = "", ""
        else:
            t1, d1 = self.first
            rate = (done - d1) / max(now - t1, 1e-9)
            rate_s = f", {rate:.1f}/s"
            eta = f", ETA {max(total - done, 0) / rate:.0f} s" if rate > 0 else ""
        val = "" if value is None else f": objective {value:.6f}"
        progress(f"{self.what} {done}/{total}{val}{rate_s}{eta}", self.quiet)


def _parse_at(text):
    if text is None:
        return None
    try:
        parts = [s.strip() for s in text.split(",")]
        if not all(parts):
            raise ValueError
        return sorted({int(s) for s in parts})
    except ValueError:
        raise _Fail(f"--at: expected comma-separated integer steps, got {text!r}") from None


def _predict_run(args, law) -> int:
    import cptjax

    args.runs = [args.run]
    if args.loss_column is None and isinstance(law, cptjax.LawPair):
        raise _Fail("--run with a law pair needs --loss-column and a single law")
    run = _load_runs(args)[0]
    column = args.loss_column or next(iter(run.losses))
    res = {"law": args.law, "run": args.run, "column": column,
           **cptjax.run_errors(law, run, column, lam=args.lam, out=args.out)}
    if args.json:
        print(dumps(res, indent=2))
        return 0
    for k, v in res.items():
        if isinstance(v, dict):
            r2 = "n/a" if v["r2"] is None else f"{v['r2']:.5f}"
            print(f"{k}: mean rel err {100 * v['mean_rel_error']:.3f}%, max {100 * v['max_rel_error']:.3f}%, "
                  f"R2 {r2}, RMSE {v['rmse']:.4g} ({v['n_points']} points of {column!r} in {args.run})")
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
    at = _parse_at(args.at)
    _setup_jax()
    import cptjax

    t0 = time.perf_counter()
    law = cptjax.load_law(args.law)
    if args.run:
        return _predict_run(args, law)
    progress(f"law {args.law}: computing areas and losses", args.json)
    rep = cptjax.prediction_report(law, args.pt, args.cpt, at=at, replay=args.replay, size=args.size,
                                   lam=args.lam, every_step=bool(args.out), name=args.law)
    if args.out:
        rep.save(args.out)
        progress(f"wrote curves to {args.out}", args.json)
    if args.plot:
        rep.plot(args.plot, title=f"cptjax predict: {args.law}")
        progress(f"wrote plot to {args.plot}", args.json)
    if args.json:
        print(dumps(rep.to_dict(), indent=2))
    else:
        print(rep.summary())
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
                                        step_column=args.step_column, lr_column=args.lr_column,
                                        loss_columns=[args.loss_column] if args.loss_column else None,
                                        size=args.size, replay=args.replay))
        for w in caught:
            progress(f"warning: {w.message}", False)
    return runs


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
    progress(f"fitting {args.law} law to {column!r} of {len(runs)} run(s)", args.json)
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # the fit's warnings are printed once, below
        warnings.simplefilter("ignore", RuntimeWarning)
        res = cptjax.fit(runs, args.law, column, target=args.target, delta=args.delta,
                         max_iter=args.max_iter, lam=lam, eps=args.eps,
                         coarse=False if args.full_search else None)
    progress(f"{res.status} after {res.iterations} iterations in {time.perf_counter() - t0:.1f} s",
             args.json)
    if args.out:
        res.save(args.out)
        progress(f"wrote {args.out}", args.json)
    if args.plot:
        cptjax.plot_fit(res, runs, args.plot, title=f"cptjax fit: {args.law} law, {column}")
        progress(f"wrote {args.plot}", args.json)
    if args.json:
        print(dumps(res.to_dict(), indent=2))
    else:
        print(res.summary())
    return 0


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


def _check_design_args(args):
    _number("--weight-general", args.weight_general, 0, 1)
    _number("--max-lr", args.max_lr, 0, lo_open=True)
    _number("--cpt-steps", args.cpt_steps, 2)
    _number("--warmup", args.warmup, 0)
    if args.warmup >= args.cpt_steps:
        raise _Fail(f"--warmup ({args.warmup}) must be shorter than --cpt-steps ({args.cpt_steps})")
    _number("--knots", args.knots, 2)
    _number("--iterations", args.iterations, 1, 100_000)
    _number("--robust", args.robust, 0, 4096)
    _number("--cpt-steps", args.cpt_steps, 2, 200_000)
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
    from cptjax import DESIGN_FILES

    _no_clobber({f"--out {args.out}/{f}": os.path.join(args.out, f) for f in DESIGN_FILES},
                _law_files(args.law), schedules=(args.pt,))
    return replay


def cmd_design(args) -> int:
    replay = _check_design_args(args)
    _setup_jax()
    import cptjax

    law = args.law or ("replay" if replay is not None else "setting-a")
    progress(f"designing a {args.cpt_steps}-step CPT schedule with {law} "
             f"(lambda1={args.weight_general}, max_lr={args.max_lr}, replay={args.replay})", args.json)
    t0 = time.perf_counter()
    rep = cptjax.design_report(law, args.pt, args.cpt_steps, max_lr=args.max_lr,
                               weight_general=args.weight_general, replay=replay, warmup=args.warmup,
                               shape=args.shape, knots=args.knots, iterations=args.iterations,
                               robust=args.robust, progress=lambda m: progress(m, args.json),
                               step_progress=_Rate("design step", args.json))
    for w in rep.warnings:
        progress(f"warning: {w}", False)
    files = rep.save(args.out)
    progress(f"wrote {args.out}/ in {time.perf_counter() - t0:.1f} s", args.json)
    if args.json:
        print(dumps({**{k: v for k, v in rep.to_dict().items() if k != "pytorch_lr_per_step"},
                     "files": files}, indent=2))
    else:
        print(rep.summary())
    return 0


def _lab_study(args, _lab):
    """The study to train: a file, the quick one or the built-in one."""
    import tomllib

    if args.study and args.quick:
        raise _Fail("give a STUDY file or --quick, not both")
    if args.study:
        study = _lab.load_study(args.study, args.model)
    else:
        text = _lab.QUICK_STUDY if args.quick else _lab.DEFAULT_STUDY
        study = _lab.parse_study(tomllib.loads(text), "quick study" if args.quick else "default study",
                                 args.model)
    return study


def cmd_lab(args) -> int:
    from cptjax import lab as _lab

    if args.print_default:
        print(_lab.DEFAULT_STUDY, end="")
        return 0
    study = _lab_study(args, _lab)
    try:
        check_output_dir(args.out, "--out")
    except ValueError as e:
        raise _Fail(str(e)) from None
    outs = [r.name + ".csv" for r in study.runs] + [r.name + ".csv" for r in study.pt_runs()]
    _no_clobber({f"--out {args.out}/{f}": os.path.join(args.out, f) for f in outs + ["manifest.json"]},
                [args.study], args.general, args.domain, args.ood)
    _setup_jax(x64=False)  # the lab trains in float32; the cache still helps
    only = set(args.only) if args.only else None
    names = {r.name for r in list(study.runs) + list(study.pt_runs())}
    if only and only - names:
        raise _Fail(f"--only: unknown run(s) {sorted(only - names)}; the study has {sorted(names)}")
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


def cmd_tune(args) -> int:
    if args.print_example:
        from cptjax.tuning import TUNE_EXAMPLE

        print(TUNE_EXAMPLE, end="")
        return 0
    if not args.study:
        raise _Fail("give a STUDY.toml (see --print-example)")
    try:
        check_output_dir(args.out, "--out")
    except ValueError as e:
        raise _Fail(str(e)) from None
    _no_clobber({f"--out {args.out}/{f}": os.path.join(args.out, f) for f in ("journal.json", "report.json", "report.png")},
                [args.study])
    _setup_jax()
    import cptjax

    study = cptjax.load_tune_study(args.study)
    _number("--workers", args.workers, 1, integer=True)
    rep = cptjax.run_tune_study(study, args.out, progress=lambda m: progress(m, args.json), workers=args.workers)
    if args.json:
        print(dumps(rep, indent=2))
    else:
        r = rep["recommendation"]
        lo, hi = r["interval90"]
        na = lambda v, spec: "n/a (no law fitted)" if v is None else format(v, spec)
        print(f"recommended: {r['name']}: predicted objective {r['objective']:.5f} (90% [{lo:.5f}, "
              f"{hi:.5f}]), P(best) {na(r['p_best'], '.2f')}; general {na(r['general'], '.4f')}, domain "
              f"{na(r['domain'], '.4f')}; {len(rep['trials'])} trials, {rep['cpt_steps_spent']} CPT steps "
              f"spent; report in {args.out}/report.json")
    return 0


def cmd_forecast(args) -> int:
    import warnings

    refs = args.reference or []
    if any(os.path.realpath(p) == os.path.realpath(args.log) for r in refs for p in r.split(",")):
        raise _Fail(f"--reference: {args.log} is the log itself: give a finished run of the same model")
    _no_clobber({"--out": args.out, "--plot": args.plot}, [], [args.log] + refs, schedules=(args.schedule,))
    _out_file(args.out, "--out")
    _out_file(args.plot, "--plot")
    _number("--budget", args.budget, 1, integer=True)
    _number("--cooldown-steps", args.cooldown_steps, 1, integer=True)
    _number("--final", args.final, 0, 1 - 1e-12)
    _setup_jax()
    import cptjax

    _number("--weight-general", args.weight_general, 0, 1)
    _number("--n-pt", args.n_pt, 1, integer=True)
    if args.n_pt is not None and args.anneal == "realized":
        raise _Fail("--anneal realized: a CPT forecast (--n-pt) uses Eq. 4's annealing term; leave --anneal out")
    ref = (refs[0] if len(refs) == 1 else refs) or None
    opts = dict(budget=args.budget, schedule=args.schedule, cooldown=args.cooldown,
                cooldown_steps=args.cooldown_steps, final=args.final, reference=ref)
    with warnings.catch_warnings(record=True) as caught:  # one line each, as every command prints them
        warnings.simplefilter("always", cptjax.DataWarning)
        if args.n_pt is not None:  # a CPT run: both losses and the objective
            progress(f"fitting the CPT law to both losses of {args.log}", args.json)
            fc = cptjax.forecast_cpt(cptjax.load_run(args.log, n_pt=args.n_pt, schedule=args.schedule), general=args.general,
                                     domain=args.domain, weight_general=args.weight_general, **opts)
        else:
            progress(f"fitting the annealing law to {args.log}" + (f" with {len(refs)} reference(s)" if refs else ""),
                     args.json)
            fc = cptjax.forecast(args.log, column=args.column, anneal=args.anneal, **opts)
    for w in caught:
        progress(f"warning: {w.message}", args.json)
    if args.out:
        fc.save(args.out)
    if args.plot:
        fc.plot(args.plot)
    print(dumps(fc.to_dict(), indent=2) if args.json else fc.summary())
    return 0


def cmd_watch(args) -> int:
    refs = args.reference or []
    _no_clobber({"--plot": args.plot}, [], [args.log] + refs, schedules=(args.schedule,))
    _out_file(args.plot, "--plot")
    _number("--every", args.every, 1, integer=True)
    _number("--poll", args.poll, 0, lo_open=True)
    _setup_jax()
    import cptjax

    progress(f"watching {args.log} (a refit every {args.every} new losses; Ctrl-C stops)", False)
    for fc in cptjax.watch(args.log, column=args.column, every=args.every, poll=args.poll, budget=args.budget,
                           schedule=args.schedule, cooldown=args.cooldown, cooldown_steps=args.cooldown_steps,
                           final=args.final, reference=(refs[0] if len(refs) == 1 else refs) or None,
                           anneal=args.anneal):
        print(fc.line(), flush=True)
        if args.plot:
            fc.plot(args.plot)
    return 0


def _add_predict(sub) -> None:
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
    pr.add_argument("--step-column", default=None, help="with --run: the log's step column (e.g. iter)")
    pr.add_argument("--lr-column", default=None, help="with --run: the log's LR column (e.g. lr)")
    pr.set_defaults(func=cmd_predict)


def _add_fit(sub) -> None:
    fi = sub.add_parser(
        "fit", help="fit a law to loss logs (CSV, W&B, JSON Lines, Hugging Face, Lightning, Megatron, TensorBoard)",
        description="Fit one law to one loss column of one or more runs, parameters shared "
                    "across runs (fit all PT and CPT runs of one validation set together). "
                    "Objective: sum of Huber(delta) on log residuals; multi-start "
                    "Levenberg-Marquardt; standard errors from the Laplace/sandwich covariance.")
    fi.add_argument("runs", nargs="+", metavar="RUN", help="run logs: CSV (.csv, .csv.gz; plain, W&B export, Lightning metrics.csv), JSON Lines, "
                         "Hugging Face trainer_state.json, a Megatron-LM stdout log, TensorBoard events, cptjax .json")
    from cptjax import LAWS

    fi.add_argument("--law", default="cpt", choices=sorted(LAWS),
                    help="law to fit (default cpt): " + ", ".join(sorted(LAWS)))
    fi.add_argument("--loss-column", default=None, help="loss column to fit (default: the first)")
    fi.add_argument("--step-column", default=None,
                    help="the logs' step column when cptjax does not find it (e.g. iter, current_steps)")
    fi.add_argument("--lr-column", default=None,
                    help="the logs' LR column when cptjax does not find it (e.g. lr, learning-rate)")
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


def _add_design(sub) -> None:
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


def _add_lab(sub) -> None:
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


def _add_tune(sub) -> None:
    tu = sub.add_parser(
        "tune", help="tune a CPT recipe (peak LR, replay, schedule) with your trainer and the law",
        description="Run a tuning study: each trial trains a recipe with the study's 'train' command "
                    "template, the law is refitted on every curve, the next trial is chosen by "
                    "Thompson sampling over the law's parameter uncertainty. A journal in --out "
                    "lets a killed study resume.")
    tu.add_argument("study", nargs="?", default=None, help="study TOML (see --print-example)")
    tu.add_argument("--out", default="cptjax-tune", help="study folder (cptjax-tune)")
    tu.add_argument("--workers", type=int, default=1, help="trials run at once (1)")
    tu.add_argument("--print-example", action="store_true", help="print an example study and exit")
    tu.add_argument("--json", action="store_true", help="print the report as JSON")
    tu.set_defaults(func=cmd_tune)


def _forecast_args(fo) -> None:
    fo.add_argument("log", help="the training log so far (any format cptjax reads)")
    fo.add_argument("--column", default=None, help="the loss column (default: the only one, or 'loss')")
    fo.add_argument("--schedule", default=None,
                    help="the run's full schedule (text form or file(...)); it also gives the LR of a log that "
                         "records none, and is checked against a log's own LR (a warning where they differ)")
    fo.add_argument("--budget", type=int, default=None, help="planned total steps (default: the schedule's)")
    fo.add_argument("--cooldown", default="linear", choices=("linear", "1-sqrt", "cosine", "exp"),
                    help="cooldown shape (linear)")
    fo.add_argument("--cooldown-steps", type=int, default=None,
                    help="length of 'cool down now' (default 20%% of the budget, within the steps left in it)")
    fo.add_argument("--final", type=float, default=0.0, help="LR at the cooldown's end, as a fraction (0)")
    fo.add_argument("--reference", nargs="+", default=None, metavar="RUN|FIT",
                    help="finished runs of the same model (fitted jointly) or a fit JSON (its C)")
    fo.add_argument("--plot", default=None, help="write a figure (.png/.pdf/.svg)")
    fo.add_argument("--anneal", default="auto", choices=("auto", "realized", "eq1"),
                    help="the law's annealing term: 'realized' (each LR drop's gain realized by the LR area "
                         "after it), 'eq1' (Eq. 1's S2), or 'auto' (realized, else Eq. 1 where the peak LR is "
                         "outside the range it was calibrated on; the default). PT forecasts only: a CPT "
                         "forecast (--n-pt) uses Eq. 4")


def _add_forecast(sub) -> None:
    fo = sub.add_parser(
        "forecast", help="forecast a run's final loss: cool down now, at step k, or continue",
        description="Fit the annealing law (Eq. 1, with the realized annealing term: see --anneal) "
                    "to a training log so far and forecast the final "
                    "loss, with a 90% band, of: the run's own schedule (--schedule), stopping now, "
                    "cooling down now, and starting the cooldown at each step k of a budget "
                    "(--budget), with the best k. A log with no annealing does not identify the "
                    "cooldown's gain: give --reference (a finished run of the same model, or a fit "
                    "file), else a prior is used and the output says so.")
    _forecast_args(fo)
    fo.add_argument("--n-pt", type=int, default=None,
                    help="a CPT run: the PT length in the log's steps; forecasts both losses and the objective")
    fo.add_argument("--general", default="general_loss", help="(CPT) the general loss column")
    fo.add_argument("--domain", default="domain_loss", help="(CPT) the domain loss column")
    fo.add_argument("--weight-general", type=float, default=0.5, help="(CPT) λ1 of the objective (0.5)")
    fo.add_argument("--out", default=None, help="write the forecast as JSON")
    fo.add_argument("--json", action="store_true", help="print the forecast as JSON")
    fo.set_defaults(func=cmd_forecast)


def _add_watch(sub) -> None:
    wa = sub.add_parser(
        "watch", help="follow a growing training log and forecast as it trains",
        description="Re-read a training log every --poll seconds; each time it has --every new "
                    "logged losses, refit and print one line (step, loss, each alternative's "
                    "forecast with its band, the best cooldown start) and redraw --plot. Stop with "
                    "Ctrl-C (nothing is left half-written).")
    _forecast_args(wa)
    wa.add_argument("--every", type=int, default=20, help="refit every N new logged losses (20)")
    wa.add_argument("--poll", type=float, default=5.0, help="seconds between reads (5)")
    wa.set_defaults(func=cmd_watch)


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
    import cptjax  # the package's __init__ only: the version, without JAX

    p.add_argument("--version", action="version", version=f"cptjax {cptjax.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    for add in (_add_predict, _add_fit, _add_design, _add_lab, _add_tune, _add_forecast, _add_watch):
        add(sub)
    return p


_SIGNALS_ON = False


def _watch_signals():
    """SIGINT/SIGTERM at any moment — inside XLA compilation, the optimisation loop or plotting —
    end the command cleanly. Python's C-level handler writes the signal number to a wakeup pipe
    whichever thread receives it; a helper thread reads the pipe, removes the partial outputs in
    progress (``cptjax.files``) and exits with 130 / 143 at once, without unwinding a KeyboardInterrupt
    through JAX's native code (which crashed with a segmentation fault) and without waiting for a
    long compilation to return to the interpreter."""
    global _SIGNALS_ON
    import signal

    if _SIGNALS_ON or threading.current_thread() is not threading.main_thread():
        return
    r, w = os.pipe()
    os.set_blocking(w, False)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)  # the helper thread acts; the main thread ignores it
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)

    def wait():
        while True:
            data = os.read(r, 1)
            if not data:
                return
            sig = data[0]
            if sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                break
        from .files import cleanup_partial, set_written

        cleanup_partial()  # waits for renames in progress
        name = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}.get(sig, "hung up")
        done = ("its outputs had all been written (the set is complete)" if set_written() else
                "no output was left half-written (a command's outputs are written together or not at all)")
        try:
            sys.stderr.write(f"\ncptjax: {name}; {done}\n")
            sys.stderr.flush()
        except OSError:  # the terminal that hung up
            pass
        finally:
            os._exit(128 + sig)

    threading.Thread(target=wait, name="cptjax-signals", daemon=True).start()
    _SIGNALS_ON = True


# Commands whose outputs are one set (committed together); lab, tune and watch commit as they go
# (a study's finished runs, a journal, a refreshed figure must survive an interrupt).
_OUTPUT_SETS = (cmd_fit, cmd_predict, cmd_design, cmd_forecast)

# Exceptions that are the user's doing: the library's InputError (bad arguments, files, data), an
# OSError on a file the user named, bytes that are not text. Any other exception is a bug: exit 1.
_USER_ERRORS = (InputError, OSError, UnicodeError)


@contextlib.contextmanager
def _one_line_warnings():
    """A data warning the library raises while a command runs: one ``[cptjax] warning:`` line,
    once (not Python's two-line form with the source path, once per call site)."""
    import warnings

    from .errors import DataWarning

    seen, show = set(), warnings.showwarning

    def one_line(message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, DataWarning):
            return show(message, category, filename, lineno, file, line)
        if str(message) not in seen:
            seen.add(str(message))
            print(f"[cptjax] warning: {message}", file=sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.simplefilter("always", DataWarning)
        warnings.showwarning = one_line
        yield


def _no_empty_names(args):
    """A column name given empty (``--step-column ''``) is an error, not the default."""
    for key in ("step_column", "lr_column", "loss_column", "column", "general", "domain"):
        if getattr(args, key, None) == "" or (isinstance(getattr(args, key, None), str) and not getattr(args, key).strip()):
            raise InputError(f"--{key.replace('_', '-')}: give a column name (it is empty)")


def main(argv=None) -> int:
    """The ``cptjax`` command. Exit codes: 0 done, 2 a user error (one ``cptjax: error:`` line),
    1 an internal error (a bug: please report it), 130 / 143 interrupted / terminated.
    ``CPTJAX_DEBUG=1`` shows tracebacks."""
    if argv is None:  # the console script: handle signals in a helper thread
        _watch_signals()
    debug = os.environ.get("CPTJAX_DEBUG", "") not in ("", "0")
    try:
        args = build_parser().parse_args(argv)
        _no_empty_names(args)
        with _one_line_warnings():
            if args.func in _OUTPUT_SETS:  # their outputs (JSON, CSV, figure) land together or not at all
                from .files import output_set

                with output_set():
                    return args.func(args)
            return args.func(args)
    except SystemExit as e:  # --help, or argparse's own exit
        return e.code if isinstance(e.code, int) else 0
    except KeyboardInterrupt:
        from .files import cleanup_partial

        cleanup_partial()
        print("cptjax: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `cptjax predict | head`: the reader has what it wanted
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        except (OSError, ValueError):
            pass
        return 0
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
        if "RESOURCE_EXHAUSTED" in str(e) or "Out of memory" in str(e):  # XLA's out-of-memory
            print("cptjax: error: not enough memory for this problem (the accelerator or host ran out "
                  "while computing it): use a shorter schedule, fewer runs or fewer knots", file=sys.stderr)
            return 2
        print(f"cptjax: internal error: {type(e).__name__}: {e}\n"
              "This is a bug in cptjax; please report it to the cptjax maintainers with the command you ran "
              "(set CPTJAX_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
