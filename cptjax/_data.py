"""Runs and loss logs: loading and validation at the edge, with errors that name the file,
column and row."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import json
import math
import os
import warnings

import numpy as np

from . import _schedules

__all__ = ["Run", "load_run", "DataError", "DataWarning"]

MIN_POINTS = 5


class DataError(ValueError):
    """Bad user data; the message names the file, column and row."""


class DataWarning(UserWarning):
    """Data that was repaired (dropped rows, rebuilt LR) and how."""


@dataclasses.dataclass
class Run:
    """One training run: the dense per-step schedule and its logged losses.

    Attributes:
        name: a label (file name).
        lr: dense per-step LR of the joined PT+CPT run (``lr[i-1]`` = η_i).
        n_pt: number of PT steps (``len(lr)`` for a PT-only run).
        steps: logged steps (1-based optimizer steps, sorted, unique).
        losses: ``{column: array aligned with steps}``; NaN where a column has no value.
        size: model size N (millions), optional. replay: replay ratio r_pt, optional.
        report: what loading repaired (counts), for the user.
    """

    name: str
    lr: np.ndarray
    n_pt: int
    steps: np.ndarray
    losses: dict
    size: float | None = None
    replay: float | None = None
    report: dict = dataclasses.field(default_factory=dict)

    def points(self, column: str):
        """(array indices, observed loss) of the valid points of one loss column."""
        if column not in self.losses:
            raise DataError(f"{self.name}: no loss column {column!r}; have {sorted(self.losses)}")
        y = self.losses[column]
        ok = np.isfinite(y)
        if ok.sum() < MIN_POINTS:
            raise DataError(f"{self.name}: column {column!r} has {int(ok.sum())} valid points; "
                            f"at least {MIN_POINTS} are needed to fit")
        return self.steps[ok] - 1, y[ok]

    def to_dict(self):
        return {"name": self.name, "lr": self.lr.tolist(), "n_pt": self.n_pt,
                "steps": self.steps.tolist(),
                "losses": {k: [None if not math.isfinite(x) else x for x in v.tolist()]
                           for k, v in self.losses.items()},
                "size": self.size, "replay": self.replay}


def atomic_write(path, data) -> None:
    """Write text or bytes to ``path`` via a temp file + rename: never a partly written file."""
    import tempfile

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise DataError(f"{path}: directory {folder} does not exist")
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _open_text(path):
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    raw = open(path, "rb").read()
    if path.endswith(".gz"):
        raw = gzip.decompress(raw)
    if raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark (spreadsheet exports)
        raw = raw[3:]
    return raw.decode("utf-8", errors="replace")


_META_KEYS = {"n_pt": int, "replay": float, "size": float}


def _csv_meta(path, text):
    """Leading ``# key: value`` lines (as ``cptjax lab`` writes them): n_pt, replay and size are
    read; other keys are kept as comments. Returns (meta, the text after them)."""
    meta, lines = {}, text.splitlines(keepends=True)
    i = 0
    while i < len(lines) and lines[i].lstrip().startswith("#"):
        key, sep, val = lines[i].lstrip()[1:].partition(":")
        key = key.strip()
        if sep and key in _META_KEYS:
            try:
                meta[key] = _META_KEYS[key](val.strip())
            except ValueError:
                raise DataError(f"{path}: line {i + 1}: '# {key}:' needs a number, got "
                                f"{val.strip()!r}") from None
        i += 1
    return meta, "".join(lines[i:])


def _delimiter(path, text):
    """',' unless the header is clearly separated by ';' or tabs (some locales' spreadsheets)."""
    first = text.split("\n", 1)[0]
    if "," in first:
        return ","
    for d in (";", "\t"):
        if d in first:
            return d
    return ","


def _float(cell):
    cell = cell.strip()
    if cell == "" or cell.lower() in ("nan", "none", "null"):
        return math.nan
    return float(cell)


def _rebuild_lr(path, steps, lr_vals, total):
    """Dense LR from a sparse log: linear interpolation between logged steps; before the first
    logged step, a linear ramp from 0 (a warmup) is assumed; after the last, the LR is held."""
    ok = np.isfinite(lr_vals)
    s, v = steps[ok], lr_vals[ok]
    if s.size == 0:
        raise DataError(f"{path}: the LR column has no values")
    if (v < 0).any():
        bad = int(s[np.argmax(v < 0)])
        raise DataError(f"{path}: negative LR at step {bad}")
    grid = np.arange(1, total + 1)
    if s.size == total and np.array_equal(s, grid):
        return v.astype(np.float64), {}
    xs, ys = np.concatenate([[0], s]), np.concatenate([[0.0], v])
    if s[0] == 0:
        xs, ys = s, v
    lr = np.interp(grid, xs, ys)
    gaps = np.diff(s)
    report = {"lr_rebuilt": "linear interpolation between logged steps",
              "lr_max_gap": int(gaps.max()) if gaps.size else 0}
    changing = np.abs(np.diff(v)) > 1e-3 * np.abs(v).max()
    if gaps.size and (gaps[changing] > 100).any():
        warnings.warn(f"{path}: the LR is logged only every {int(gaps[changing].max())} steps where "
                      "it changes; S2 (momentum timescale ~1/(1-lambda) = 1000 steps) may be "
                      "inaccurate: pass the schedule in text form instead", DataWarning, stacklevel=3)
    return lr, report


def load_run(path, *, schedule=None, n_pt=None, step_column=None, lr_column=None,
             loss_columns=None, size=None, replay=None, total_steps=None) -> Run:
    """Load a run from CSV (``.csv``/``.csv.gz``, plain or W&B export) or JSON.

    CSV: a step column (``step`` or W&B ``_step``), an LR column (``lr`` or
    ``optim/learning_rate_group0``) unless ``schedule`` (text form or array) is given, and loss
    columns (default: every other numeric column whose name contains ``loss`` — or, for W&B,
    ``eval/*/CrossEntropyLoss``). A row with an empty loss cell only gives the LR. Resumed runs
    (unsorted or duplicated steps) keep the last row of each step; NaN/inf/non-positive losses are
    dropped; both are counted in ``run.report`` and warned about.

    JSON: ``{"lr": [...] | "schedule": "...", "n_pt": int, "steps": [...], "losses": {...}}``.
    """
    path = os.fspath(path)
    name = os.path.basename(path)
    if path.endswith(".json"):
        try:
            d = json.loads(_open_text(path))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON ({e})") from None
        for key in ("steps", "losses"):
            if key not in d:
                raise DataError(f"{path}: missing key {key!r}")
        lr = d.get("lr", d.get("schedule")) if schedule is None else schedule
        if lr is None:
            raise DataError(f"{path}: needs 'lr' (array) or 'schedule' (text form)")
        lr = _schedules.parse(lr) if isinstance(lr, str) else np.asarray(lr, np.float64)
        steps = np.asarray(d["steps"], np.int64)
        cols = {k: np.array([math.nan if x is None else x for x in v], np.float64)
                for k, v in d["losses"].items()}
        for k, v in cols.items():
            if v.shape != steps.shape:
                raise DataError(f"{path}: loss {k!r} has {v.size} values for {steps.size} steps")
        return _finish(path, name, lr, d.get("n_pt", n_pt), steps, cols,
                       d.get("size", size), d.get("replay", replay), {})

    text = _open_text(path)
    meta, text = _csv_meta(path, text)
    n_pt = meta.get("n_pt", n_pt) if n_pt is None else n_pt
    replay = meta.get("replay", replay) if replay is None else replay
    size = meta.get("size", size) if size is None else size
    reader = csv.reader(io.StringIO(text), delimiter=_delimiter(path, text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataError(f"{path}: empty file") from None
    sc = step_column or next((c for c in ("step", "_step", "Step", "steps") if c in header), None)
    if sc is None or sc not in header:
        raise DataError(f"{path}: missing step column (looked for {step_column or 'step, _step'}); "
                        f"columns are {header[:8]}{'...' if len(header) > 8 else ''}")
    lc = lr_column or next((c for c in ("lr", "learning_rate", "optim/learning_rate_group0")
                            if c in header), None)
    if schedule is None and (lc is None or lc not in header):
        raise DataError(f"{path}: missing LR column (looked for {lr_column or 'lr, optim/learning_rate_group0'}) "
                        "and no schedule given")
    if loss_columns is None:
        loss_columns = [c for c in header if c.endswith("CrossEntropyLoss") and c.startswith("eval/")]
        loss_columns = loss_columns or [c for c in header if "loss" in c.lower() and c not in (sc, lc)]
        if not loss_columns:
            raise DataError(f"{path}: no loss columns found; name them with loss_columns / --loss-column")
    for c in loss_columns:
        if c not in header:
            raise DataError(f"{path}: missing loss column {c!r}")
    idx = {c: header.index(c) for c in header}
    rows_steps, rows_lr, rows_loss = [], [], {c: [] for c in loss_columns}
    for rn, row in enumerate(reader, start=2):
        if not row or all(not x.strip() for x in row):
            continue
        try:
            step = _float(row[idx[sc]])
            if not math.isfinite(step):
                continue
            rows_steps.append(int(round(step)))
            rows_lr.append(_float(row[idx[lc]]) if schedule is None else math.nan)
            for c in loss_columns:
                rows_loss[c].append(_float(row[idx[c]]) if idx[c] < len(row) else math.nan)
        except (ValueError, IndexError):
            raise DataError(f"{path}: row {rn}: could not read a number "
                            f"(columns {sc!r}, {lc!r}, {loss_columns})") from None
    steps = np.asarray(rows_steps, np.int64)
    if steps.size == 0:
        raise DataError(f"{path}: no data rows")
    # Resumed runs: keep the last row of each step, then sort.
    report = {}
    order = np.arange(steps.size)
    last = {s: i for i, s in zip(order, steps)}
    keep = np.array(sorted(last.values(), key=lambda i: steps[i]))
    n_dup = steps.size - keep.size
    if n_dup or np.any(np.diff(steps) < 0):
        report["duplicate_steps_dropped"] = int(n_dup)
        warnings.warn(f"{path}: unsorted or repeated steps (a resumed run?); kept the last row of "
                      f"each step ({n_dup} rows dropped)", DataWarning, stacklevel=2)
    steps = steps[keep]
    lrv = np.asarray(rows_lr, np.float64)[keep]
    cols = {c: np.asarray(v, np.float64)[keep] for c, v in rows_loss.items()}
    if (steps < 0).any():
        raise DataError(f"{path}: negative step {int(steps.min())} in column {sc!r}")
    if schedule is not None:
        lr = _schedules.parse(schedule) if isinstance(schedule, str) else np.asarray(schedule, np.float64)
    else:
        total = int(total_steps or steps.max())
        lr, rep = _rebuild_lr(path, steps, lrv, total)
        report.update(rep)
    return _finish(path, name, lr, n_pt, steps, cols, size, replay, report)


def _finish(path, name, lr, n_pt, steps, cols, size, replay, report):
    lr = np.asarray(lr, np.float64)
    if lr.ndim != 1 or lr.size == 0:
        raise DataError(f"{path}: the schedule is empty")
    if not np.isfinite(lr).all() or (lr < 0).any():
        raise DataError(f"{path}: the schedule has a negative or non-finite LR")
    n_pt = lr.size if n_pt is None else int(n_pt)
    if not 0 <= n_pt <= lr.size:
        raise DataError(f"{path}: n_pt = {n_pt} is outside [0, {lr.size}]")
    # Steps are 1-based; a log that starts at step 0 (before any update) has no defined S1.
    zero = steps < 1
    late = steps > lr.size
    if late.any():
        raise DataError(f"{path}: logged step {int(steps[late][0])} is beyond the schedule's "
                        f"{lr.size} steps")
    if zero.any():
        report["step0_rows_dropped"] = int(zero.sum())
        steps = steps[~zero]
        cols = {k: v[~zero] for k, v in cols.items()}
    dropped = {}
    for k, v in cols.items():
        bad = ~np.isfinite(v) | (v <= 0)
        nonempty_bad = (np.isfinite(v) & (v <= 0)) | np.isinf(v)
        if nonempty_bad.any():
            dropped[k] = int(nonempty_bad.sum())
        cols[k] = np.where(bad, np.nan, v)
    if dropped:
        report["bad_losses_dropped"] = dropped
        warnings.warn(f"{path}: dropped non-finite or non-positive losses {dropped}", DataWarning,
                      stacklevel=3)
    if size is not None and not float(size) > 0:
        raise DataError(f"{path}: size must be > 0 (millions of parameters), got {size}")
    if replay is not None and not 0 <= float(replay) <= 1:
        raise DataError(f"{path}: replay ratio must be in [0, 1], got {replay}")
    return Run(name, lr, n_pt, steps, cols, None if size is None else float(size),
               None if replay is None else float(replay), report)
