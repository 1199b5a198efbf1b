"""The ``cptjax`` command: argument parsing and printing only (the maths lives in the modules)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

DEFAULT_PT = "wsd(steps=40000,peak=2e-4,warmup=500,decay=0.2,final=2e-5)"
DEFAULT_CPT = "cosine(steps=10000,peak=1e-4,warmup=500,final=0)"


class _Fail(Exception):
    """A user error: printed as one line, exit code 2."""


def _x64():
    import jax

    jax.config.update("jax_enable_x64", True)


def atomic_write(path: str, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file + rename: never a partly written file."""
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise _Fail(f"{path}: directory {d} does not exist")
    fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def progress(msg: str, quiet: bool = False):
    """Print a stage message to stderr (machine output stays on stdout)."""
    if not quiet:
        print(f"[cptjax] {msg}", file=sys.stderr, flush=True)


def load_law(spec: str):
    """A law from a preset name or a JSON file (a fitted law, or a law's ``to_dict``)."""
    import cptjax

    if spec.endswith(".json") or os.path.exists(spec):
        if not os.path.exists(spec):
            raise _Fail(f"{spec}: no such law file")
        try:
            with open(spec) as fh:
                d = json.load(fh)
        except json.JSONDecodeError as e:
            raise _Fail(f"{spec}: not valid JSON ({e})") from None
        d = d.get("law", d) if isinstance(d.get("law"), dict) else d
        try:
            return cptjax.law_from_dict(d)
        except ValueError as e:
            raise _Fail(f"{spec}: {e}") from None
    return cptjax.preset(spec)


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


def cmd_predict(args) -> int:
    _x64()
    import cptjax

    t0 = time.perf_counter()
    law = load_law(args.law)
    pt = cptjax.schedules.parse(args.pt)
    cpt = cptjax.schedules.parse(args.cpt) if args.cpt else np.zeros(0)
    lr, n_pt = cptjax.schedules.join(pt, cpt)
    T = lr.size
    progress(f"law {args.law}; PT {n_pt} steps + CPT {T - n_pt} steps; computing areas and losses",
             args.json)
    pred = cptjax.predict(law, lr, n_pt, replay=args.replay, size=args.size, lam=args.lam)
    names = ("general", "domain") if isinstance(pred, cptjax.LossPair) else ("loss",)
    curves = {n: np.asarray(v) for n, v in zip(names, pred if isinstance(pred, tuple) else (pred,))}
    steps = np.arange(1, T + 1)
    at = _parse_steps(args.at, T, n_pt)
    rows = [(s, s - n_pt, lr[s - 1], *(curves[n][s - 1] for n in names)) for s in at]
    result = {
        "law": args.law, "pt": args.pt, "cpt": args.cpt, "n_pt": n_pt, "steps": T,
        "replay": args.replay, "size": args.size, "lam": args.lam,
        "table": [{"step": int(r[0]), "cpt_step": int(r[1]),
                   **dict(zip(("lr", *names), map(float, r[2:])))} for r in rows],
        "final": {n: float(curves[n][-1]) for n in names},
    }
    if args.out:
        if args.out.endswith(".json"):
            atomic_write(args.out, json.dumps({**result, "curves": {
                "step": steps.tolist(), "lr": lr.tolist(),
                **{n: curves[n].tolist() for n in names}}}))
        else:
            body = "\n".join(",".join([str(s), str(s - n_pt), repr(float(lr[s - 1]))]
                                      + [f"{curves[n][s - 1]:.10g}" for n in names]) for s in steps)
            atomic_write(args.out, "step,cpt_step,lr," + ",".join(names) + "\n" + body + "\n")
        progress(f"wrote curves to {args.out}", args.json)
    if args.plot:
        from . import _plot

        _plot.prediction(steps, lr, curves, n_pt, args.plot,
                         title=f"cptjax predict: {args.law}")
        progress(f"wrote plot to {args.plot}", args.json)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        fmt = [str, str, lambda v: f"{v:.3g}"] + [lambda v: f"{v:.5f}"] * len(names)
        print(_table(rows, ["step", "cpt_step", "lr", *names], fmt))
        progress(f"done in {time.perf_counter() - t0:.2f} s", False)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
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
    pr.add_argument("--lam", type=float, default=0.999, help="momentum decay lambda (default 0.999)")
    pr.add_argument("--at", default=None,
                    help="comma-separated joined steps for the table (default: transfer point and "
                         "5%%, 25%%, 50%%, 75%%, 100%% of CPT)")
    pr.add_argument("--out", default=None, help="write every step's curves to this .csv or .json")
    pr.add_argument("--plot", default=None, help="write a PNG of both curves with the transfer marked")
    pr.add_argument("--json", action="store_true", help="print machine-readable JSON to stdout")
    pr.set_defaults(func=cmd_predict)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (_Fail, ValueError) as e:
        print(f"cptjax: error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"cptjax: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cptjax: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
