"""Runs and loss logs: loading and validation at the edge, with errors that name the file,
column and row."""

from __future__ import annotations
from ..files import read_text

import collections
import csv
import dataclasses
import io
import json
import math
import os
import re
import warnings

import numpy as np

from .. import schedules as _schedules
from ..errors import DataError, DataWarning, InputError, InputTypeError

__all__ = ["Run", "load_run", "DataError", "DataWarning"]

MIN_POINTS = 5




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
        # A loss logged before any LR was applied (a warmup from 0 logged at its first step) has
        # S1 = 0, where no law is defined: left out, with a warning.
        s1 = np.cumsum(self.lr)[np.clip(self.steps - 1, 0, self.lr.size - 1)]
        zero = ok & (s1 <= 0)
        if zero.any():
            warnings.warn(f"{self.name}: {int(zero.sum())} logged loss(es) of {column!r} at steps where no LR "
                          f"has been applied yet (LR 0 so far, e.g. step {int(self.steps[zero][0])}) are "
                          "left out: the laws are not defined there", DataWarning, stacklevel=3)
            ok = ok & ~zero
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


def _open_text(path):
    """The text of a run file: a regular file, bounded (``cptjax.files.read_text``); a UTF-8 byte-order
    mark (spreadsheet exports) and UTF-16 (some Windows exports) are read."""
    try:
        return read_text(path, "run file")
    except InputError as e:
        raise DataError(str(e)) from None


_META_KEYS = {"n_pt": int, "replay": float, "size": float}
# Column names a log's step and LR go by (W&B, Hugging Face, Lightning, plain scripts); an LR column
# may also be any "<group>/lr" or "<group>/learning_rate" (e.g. W&B's "train/learning_rate").
# A run's own step counter comes before W&B's ``_step`` (which counts log calls, not optimizer steps)
# and a panel export's ``Step`` (which may be either): ``iter`` (nanoGPT), ``current_steps``
# (LLaMA-Factory), ``iteration`` (Megatron).
_STEP_NAMES = ("step", "global_step", "train/global_step", "trainer/global_step", "iter", "iteration",
               "current_steps", "_step", "Step", "steps")
_LR_NAMES = ("lr", "learning_rate", "learning-rate", "optim/learning_rate_group0")
_LR_SUFFIXES = ("/lr", "/learning_rate")
_LR_LOOKED_FOR = "lr, learning_rate, learning-rate, optim/learning_rate_group0, */lr, */learning_rate, lr-*"


def _lr_name(names):
    """The LR column (CSV) or tag (TensorBoard) among ``names``, or None."""
    return next((c for c in _LR_NAMES if c in names),
                next((c for c in names if _lightning_lr(c) or c.endswith(_LR_SUFFIXES)), None))


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
    """',' unless the header is clearly separated by ';' or tabs (some locales' spreadsheets), or
    only by spaces (``None``: runs of whitespace, as numpy.savetxt and many scripts write)."""
    first = text.split("\n", 1)[0]
    if "," in first:
        return ","
    for d in (";", "\t"):
        if d in first:
            return d
    return None if len(first.split()) > 1 else ","


def _rows(text, delimiter):
    """The CSV text's rows as lists of cells."""
    if delimiter is None:
        return (line.split() for line in text.split("\n"))
    return csv.reader(io.StringIO(text), delimiter=delimiter)


def _jsonl_rows(path, text):
    """A JSON Lines log (one object per line, as many training loops and W&B's
    ``wandb-history.jsonl`` write): the header (every key, nested objects flattened with '/', in
    order of first appearance) and the rows as cells."""
    recs = []
    for i, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except (ValueError, RecursionError) as e:
            raise DataError(f"{path}: line {i}: not valid JSON ({getattr(e, 'msg', None) or str(e)[:100]})") from None
        if not isinstance(d, dict):
            raise DataError(f"{path}: line {i}: expected a JSON object per line")
        recs.append(_flatten(d))
    header = list(dict.fromkeys(k for r in recs for k in r))
    cell = lambda v: "" if v is None else "x" if isinstance(v, (bool, list)) else str(v)
    return header, ([cell(r.get(k)) if k in r else "" for k in header] for r in recs)


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _float(cell):
    cell = cell.strip()
    if cell == "" or cell.lower() in ("nan", "none", "null"):
        return math.nan
    return float(cell)


def _lr_cell(cell: str, schedule) -> float:
    """A logged LR; with a schedule given it is only compared, so a cell that is not a number is
    left out rather than refused."""
    if schedule is None:
        return _float(cell)
    try:
        return _float(cell)
    except (ValueError, OverflowError):
        return math.nan


def _number_cell(cell: str) -> bool:
    try:
        _float(cell)
        return True
    except (ValueError, OverflowError):
        return False


def _rebuild_lr(path, steps, lr_vals, total):
    """Dense LR from a sparse log: linear interpolation between logged steps; before the first
    logged step, a linear ramp from 0 (a warmup) is assumed; after the last, the LR is held."""
    if np.isinf(lr_vals).any():
        raise DataError(f"{path}: infinite LR at step {int(steps[np.argmax(np.isinf(lr_vals))])}")
    ok = np.isfinite(lr_vals)  # NaN / empty cells: not logged at that step
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
    if s[0] > 100 and v[0] > 0:
        warnings.warn(f"{path}: the LR is first logged at step {int(s[0])}; before it a linear warmup "
                      f"from 0 is assumed, which sets S1 — if it differs, pass the schedule in text "
                      "form", DataWarning, stacklevel=3)
    # A large change between two logs, steeper than the intervals on both sides (e.g. a step
    # change between flat parts; a warmup or a decay logged often enough is not one): a step
    # change or a ramp? The log cannot tell; the rebuild assumes a ramp.
    slope = np.abs(np.diff(v)) / np.maximum(gaps, 1)
    first = v[0] / s[0] if s[0] > 0 else 0.0  # the assumed warmup ramp before the first log
    side = np.maximum(np.r_[first, slope[:-1]], np.r_[slope[1:], 0.0]) if gaps.size else slope
    jump = (np.abs(np.diff(v)) > 0.1 * np.abs(v).max()) & (gaps > 1) & (slope > 3 * side)
    if jump.any():
        i = int(np.argmax(jump))
        warnings.warn(f"{path}: the LR changes from {v[i]:.3g} to {v[i + 1]:.3g} between logged steps "
                      f"{int(s[i])} and {int(s[i + 1])}; rebuilt as a linear ramp — if it is a step "
                      "change (or any other shape), pass the schedule in text form", DataWarning, stacklevel=3)
    return lr, report


def load_run(path, *, schedule=None, n_pt=None, step_column=None, lr_column=None,
             loss_columns=None, size=None, replay=None, total_steps=None) -> Run:
    """Load a run: CSV (``.csv``/``.csv.gz``: plain, W&B export, or PyTorch Lightning
    ``metrics.csv``), JSON Lines, a Megatron-LM text log, a Hugging Face ``trainer_state.json``, a TensorBoard event file
    (``*tfevents*``, optional extra ``cptjax[tensorboard]``), or cptjax's JSON. The format is
    recorded in ``run.report["format"]``.

    CSV (``,``/``;``/tab/space separated, UTF-8 or UTF-16) or JSON Lines (``.jsonl``: one object
    per log call, nested objects flattened with ``/``): a step column (``step``, ``global_step``,
    ``train/global_step``, W&B ``_step``/``Step``), an LR column (``lr``, ``learning_rate``,
    ``optim/learning_rate_group0``, any ``*/lr`` or ``*/learning_rate``, Lightning ``lr-*``)
    unless ``schedule`` (text form or array) is given, and loss
    columns (default: every other numeric column whose name contains ``loss`` — or, for W&B,
    ``eval/*/CrossEntropyLoss``). A row with an empty loss cell only gives the LR. Resumed runs
    (unsorted or duplicated steps) keep the last row of each step; NaN/inf/non-positive losses are
    dropped; both are counted in ``run.report`` and warned about.

    JSON: ``{"lr": [...] | "schedule": "...", "n_pt": int, "steps": [...], "losses": {...}}``.
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise InputTypeError(f"load_run: `path` must be a file path, got {type(path).__name__}")
    path = os.fsdecode(os.fspath(path))
    if not path.strip():
        raise InputError("load_run: the path is empty")
    if os.path.isdir(path):  # a TensorBoard log folder (Lightning: lightning_logs/version_0/)
        path = _newest_event_file(path)
    name = os.path.basename(path)
    kw = dict(schedule=schedule, n_pt=n_pt, size=size, replay=replay, total_steps=total_steps)
    if "tfevents" in name:
        return _tensorboard_run(path, name, loss_columns, lr_column, **kw)
    if path.endswith(".json"):
        try:
            d = json.loads(_open_text(path))
        except (ValueError, RecursionError) as e:
            raise DataError(f"{path}: not valid JSON ({e})") from None
        if isinstance(d, dict) and "log_history" in d:
            return _hf_run(path, name, d, loss_columns, **kw)
        return _cptjax_json_run(path, name, d, **kw)
    text = _open_text(path)
    if _MEGATRON_TRAIN.search(text):
        return _megatron_run(path, name, text, loss_columns, **kw)
    return _csv_run(path, name, text, step_column, lr_column, loss_columns, **kw)


def _newest_event_file(folder) -> str:
    """The most recently written TensorBoard event file in ``folder`` or its subfolders (a run
    that restarted writes a new one; the newest is the one growing)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(dirs)[:100]
        found += [os.path.join(root, f) for f in files if "tfevents" in f]
        if len(found) > 10_000:
            break
    if not found:
        raise DataError(f"{folder} is a folder with no TensorBoard event files (*tfevents*) in it; give a log file")
    return max(found, key=lambda f: (os.path.getmtime(f), f))


def _cptjax_json_run(path, name, d, *, schedule, n_pt, size, replay, total_steps):
    """cptjax's own JSON run: ``{"lr": [...] | "schedule": "...", "n_pt", "steps", "losses"}``."""
    if not isinstance(d, dict):
        raise DataError(f"{path}: a JSON run must be an object with 'steps', 'losses' and 'lr'")
    for key in ("steps", "losses"):
        if key not in d:
            raise DataError(f"{path}: missing key {key!r}")
    lr = d.get("lr", d.get("schedule")) if schedule is None else schedule
    if lr is None:
        raise DataError(f"{path}: needs 'lr' (array) or 'schedule' (text form)")
    try:
        lr = _schedules.parse(lr) if isinstance(lr, str) else np.asarray(lr, np.float64)
    except (TypeError, ValueError) as e:
        raise DataError(f"{path}: bad 'lr' / 'schedule' ({e})") from None
    if not isinstance(d["losses"], dict) or not isinstance(d["steps"], list):
        raise DataError(f"{path}: 'losses' must be an object of lists and 'steps' a list")
    if not d["losses"]:
        raise DataError(f"{path}: 'losses' has no columns")
    if any(isinstance(x, bool) for x in d["steps"]) or (isinstance(d.get("lr"), list)
                                                        and any(isinstance(x, bool) for x in d["lr"])):
        raise DataError(f"{path}: 'steps' and 'lr' must be numbers, not true/false")
    try:
        # a true/false (or null) where a loss belongs is left out, counted below, never read as 1/0
        cols = {k: np.array([math.nan if x is None or isinstance(x, bool) else x for x in v], np.float64)
                for k, v in d["losses"].items()}
        steps = np.asarray(d["steps"], np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: 'steps' and every loss must be lists of numbers") from None
    nan_json = {k: int(sum(1 for x in v if isinstance(x, bool) or (isinstance(x, float) and math.isnan(x))))
                for k, v in d["losses"].items()}
    if steps.ndim != 1 or not np.all(np.isfinite(steps)) or np.any(steps != np.round(steps)):
        raise DataError(f"{path}: 'steps' must be a list of integers")
    if steps.size and np.abs(steps).max() > _schedules.MAX_STEPS:
        raise DataError(f"{path}: a step is above the limit of {_schedules.MAX_STEPS:,}")
    steps = steps.astype(np.int64)
    for k, v in cols.items():
        if v.shape != steps.shape:
            raise DataError(f"{path}: loss {k!r} has {v.size} values for {steps.size} steps")
    if np.unique(steps).size < steps.size:  # a resumed run: the last row of each step is kept
        cols = {k: _last_per_step(steps, v)[1] for k, v in cols.items()}
        steps = np.unique(steps)
    meta = {}
    for key in ("n_pt", "size", "replay"):
        v = d.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise DataError(f"{path}: {key!r} must be a number, got {v!r}")
        meta[key] = v
    return _finish(path, name, lr, meta["n_pt"] if meta["n_pt"] is not None else n_pt, steps, cols,
                   meta["size"] if meta["size"] is not None else size,
                   meta["replay"] if meta["replay"] is not None else replay,
                   {"nan_cells": {k: n for k, n in nan_json.items() if n}})


def _csv_run(path, name, text, step_column, lr_column, loss_columns, *, schedule, n_pt, size, replay,
             total_steps):
    """A delimited text log (CSV, W&B, Lightning; ``# key: value`` header lines) or JSON Lines."""
    meta, text = _csv_meta(path, text.replace("\r\n", "\n").replace("\r", "\n"))
    if n_pt is not None and meta.get("n_pt") not in (None, n_pt):
        warnings.warn(f"{path}: n_pt = {n_pt} given, the file's header says n_pt: {meta['n_pt']}; {n_pt} is used",
                      DataWarning, stacklevel=3)
    n_pt = meta.get("n_pt", n_pt) if n_pt is None else n_pt
    replay = meta.get("replay", replay) if replay is None else replay
    size = meta.get("size", size) if size is None else size
    header, reader = _header_and_rows(path, name, text)
    sc, lc, loss_columns = _columns(path, header, step_column, lr_column, loss_columns, schedule)
    idx = {}
    for i, c in enumerate(header):
        idx.setdefault(c, i)
    rows_steps, rows_lr, rows_loss = [], [], {c: [] for c in loss_columns}
    nan_cells = {c: 0 for c in loss_columns}
    no_step = []  # rows whose step is not a finite number (e.g. an 'inf' or 'nan' cell)
    try:
        for rn, row in enumerate(reader, start=2):
            if not row or all(not x.strip() for x in row):
                continue
            try:
                step = _float(row[idx[sc]])
                if not math.isfinite(step):
                    no_step.append((rn, row[idx[sc]].strip()))
                    continue
                if step != round(step):
                    raise DataError(f"{path}: row {rn}: step {row[idx[sc]].strip()!r} (column {sc!r}) "
                                    "is not a whole number")
                rows_steps.append(int(round(step)))
                rows_lr.append(_lr_cell(row[idx[lc]], schedule) if lc in idx and idx[lc] < len(row) else math.nan)
                for c in loss_columns:
                    cell = row[idx[c]] if idx[c] < len(row) else ""
                    nan_cells[c] += cell.strip().lower() == "nan"
                    rows_loss[c].append(_float(cell))
            except DataError:
                raise
            except (ValueError, IndexError, OverflowError):
                cells = [row[idx[c]].strip() for c in [sc, lc, *loss_columns] if c in idx and idx[c] < len(row)]
                bad = next((c for c in cells if not _number_cell(c)), None)
                hint = ("a repeated header (an appended, resumed log?)" if row and row[idx[sc]].strip() == sc
                        else "a decimal comma or a thousands separator?"
                        if bad and "," in bad and re.fullmatch(r"[\d.,\s'eE+-]+", bad)
                        else "")
                raise DataError(f"{path}: row {rn}: could not read a number" + (f" ({bad!r})" if bad else "")
                                + f" in columns {sc!r}, {lc!r}, {loss_columns}" + (f": {hint}" if hint else "")) from None
    except csv.Error as e:
        raise DataError(f"{path}: not a readable CSV file ({e})") from None
    if no_step:
        warnings.warn(f"{path}: {len(no_step)} row(s) without a finite step in column {sc!r} were left out "
                      f"(first: row {no_step[0][0]}, {no_step[0][1]!r})", DataWarning, stacklevel=3)
    if sc == "Step" and step_column is None and any(" - " in c for c in idx):
        _panel_step_warning(path, rows_steps)
    # PyTorch Lightning's LearningRateMonitor logs at global step g the LR of the next update.
    shift = 1 if lc is not None and lc.startswith("lr-") else 0
    fmt = "jsonl" if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")) else "csv"
    report = {"format": "lightning" if shift else fmt, "nan_cells": {c: n for c, n in nan_cells.items() if n}}
    return _assemble(path, name, rows_steps, rows_lr, rows_loss, report, schedule=schedule, n_pt=n_pt,
                     size=size, replay=replay, total_steps=total_steps, lr_shift=shift)


def _panel_step_warning(path, steps):
    """A W&B panel export ("Step", "<run> - <metric>"): its Step is the panel's x-axis, W&B's own
    step, which counts log calls unless the run logged its own step; say so, louder when it runs
    0, 1, 2, … (a log index, not the training step)."""
    s = np.asarray(steps)
    index = s.size > 2 and s.min() in (0, 1) and bool(np.all(np.diff(np.sort(s)) == 1))
    warnings.warn(f"{path}: a W&B panel export; its 'Step' column is W&B's step axis, which counts log calls "
                  "unless the run logged its own step" + (
                      f" — here it runs {int(s.min())}, {int(s.min()) + 1}, {int(s.min()) + 2}, …, a log index: if the "
                      "run did not log every optimizer step, these are not training steps; export the panel "
                      "against the run's own step (or the run's history with its step column, --step-column)"
                      if index else ""), DataWarning, stacklevel=4)


def _header_and_rows(path, name, text):
    """The header and an iterator over the rows (lists of cells) of a delimited file or JSON Lines."""
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
        header, reader = _jsonl_rows(path, text)
        if not header:
            raise DataError(f"{path}: empty file")
    else:
        reader = _rows(text, _delimiter(path, text))
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataError(f"{path}: empty file") from None
        except csv.Error as e:
            raise DataError(f"{path}: not a readable CSV file ({e})") from None
    return header, reader


def _columns(path, header, step_column, lr_column, loss_columns, schedule):
    """The step, LR and loss columns of a header (given, or found by name), each checked."""
    counts = collections.Counter(header)
    twice = sorted(h for h, n in counts.items() if h and n > 1)
    if twice:
        raise DataError(f"{path}: column(s) {twice} appear more than once in the header: rename them")
    sc = step_column or next((c for c in _STEP_NAMES if c in header), None)
    if sc is None or sc not in header:
        raise DataError(f"{path}: missing step column (looked for {step_column or ', '.join(_STEP_NAMES)}); "
                        f"columns are {header[:8]}{'...' if len(header) > 8 else ''}; name it with "
                        "--step-column (step_column=)")
    lc = lr_column or _lr_name(header)
    if schedule is None and (lc is None or lc not in header):
        raise DataError(f"{path}: missing LR column (looked for {lr_column or _LR_LOOKED_FOR}) "
                        "and no schedule given: name it with --lr-column (lr_column=) or give the "
                        "schedule with --schedule")
    if loss_columns is None:
        loss_columns = [c for c in header if c.endswith("CrossEntropyLoss") and c.startswith("eval/")]
        # Lightning's step-level validation metrics (val_loss_step) are logged against a validation
        # batch counter, not the training step: left out unless named.
        loss_columns = loss_columns or [c for c in header if "loss" in c.lower() and c not in (sc, lc)
                                        and not (c.lower().startswith("val") and c.endswith("_step"))
                                        and not c.endswith(("__MIN", "__MAX"))  # a W&B panel's band
                                        and "scale" not in c.lower()]  # fp16's loss_scale is not a loss
        if not loss_columns:
            raise DataError(f"{path}: no loss columns found; name them with loss_columns / --loss-column")
    for c in loss_columns:
        if c not in header:
            raise DataError(f"{path}: missing loss column {c!r}")
        if c in (sc, lc):
            raise DataError(f"{path}: loss column {c!r} is the log's {'step' if c == sc else 'LR'} column")
    return sc, lc, loss_columns


_MEGATRON_TRAIN = re.compile(r"\biteration\s+(\d+)\s*/\s*\d+\s*\|(.*)")
_MEGATRON_VALID = re.compile(r"validation loss at iteration\s+(\d+)[^|]*\|(.*)")


def _megatron_run(path, name, text, loss_columns, **kw):
    """A Megatron-LM (or GPT-NeoX / NeMo-Megatron) text log: training lines ``iteration N/ M |
    … | learning rate: X | … | lm loss: Y | …`` and validation lines ``validation loss at
    iteration N | lm loss value: Y | …``. Columns: every training field with ``loss`` in its name
    (not ``loss scale``), and ``validation <name>`` for each validation ``<name> value``. The LR
    logged at iteration N is the optimizer's after that iteration's scheduler step, i.e. the LR of
    iteration N + 1 (as Lightning's monitor)."""
    rows_steps, rows_lr, recs = [], [], []
    for line in text.splitlines():
        m = _MEGATRON_VALID.search(line)
        train = m is None
        m = m or _MEGATRON_TRAIN.search(line)
        if m is None:
            continue
        fields = {}
        for part in m.group(2).split("|"):
            key, sep, val = part.partition(":")
            key = key.strip()
            if not sep or not key:
                continue
            try:
                fields[key] = float(val.strip())
            except ValueError:
                continue  # e.g. a timestamp or a word
        if train:
            rec = {k: v for k, v in fields.items() if "loss" in k and "scale" not in k}
            lr = fields.get("learning rate", math.nan)
        else:
            rec = {f"validation {k[:-len(' value')]}": v for k, v in fields.items() if k.endswith(" value")}
            lr = math.nan
        rows_steps.append(int(m.group(1)))
        rows_lr.append(lr)
        recs.append(rec)
    cols = list(dict.fromkeys(k for r in recs for k in r))
    if loss_columns is not None:
        missing = [c for c in loss_columns if c not in cols]
        if missing:
            raise DataError(f"{path}: missing loss column(s) {missing}; the log has {cols}")
        cols = list(loss_columns)
    if not cols:
        raise DataError(f"{path}: a Megatron log with no loss field (looked for '… loss: X' and "
                        "'validation loss at iteration N | … value: X')")
    if kw.get("schedule") is None and not np.isfinite(rows_lr).any():
        raise DataError(f"{path}: a Megatron log with no 'learning rate:' field and no schedule given")
    rows_loss = {c: [r.get(c, math.nan) for r in recs] for c in cols}
    return _assemble(path, name, rows_steps, rows_lr, rows_loss, {"format": "megatron", "nan_cells": {}},
                     lr_shift=1, **kw)


def _lightning_lr(name):
    """A Lightning ``LearningRateMonitor`` LR column (``lr-AdamW``, ``lr-AdamW/pg1``), not the
    momentum or weight decay it also logs with ``log_momentum`` / ``log_weight_decay``."""
    return name.startswith("lr-") and not name.endswith(("-momentum", "-weight_decay", "-beta1"))


def _hf_run(path, name, d, loss_columns, **kw):
    """A Hugging Face ``Trainer`` ``trainer_state.json``: ``log_history`` entries with ``step``,
    the training ``loss`` and ``learning_rate`` every ``logging_steps``, and ``eval_*loss``
    entries. The LR logged at step s is the one step s used (checked against the real Trainer's
    scheduler, tests/fixtures); the sparse records are interpolated to every step."""
    hist = d.get("log_history")
    if not isinstance(hist, list):
        raise DataError(f"{path}: 'log_history' must be a list of log entries")
    cols = set()
    for e in hist:
        if isinstance(e, dict):
            cols |= {k for k in e if (k == "loss" or (k.startswith("eval_") and "loss" in k))}
    cols = sorted(cols) if loss_columns is None else list(loss_columns)
    if not cols:
        raise DataError(f"{path}: no loss in 'log_history' (looked for 'loss' and 'eval_*loss')")
    steps, lrs, losses = [], [], {c: [] for c in cols}
    odd = collections.Counter()  # values present but not numbers: left out, and said so

    def number(key, v):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        if v is not None:
            odd[key] += 1
        return math.nan

    no_step = 0
    for i, e in enumerate(hist):
        if not isinstance(e, dict) or "step" not in e:
            no_step += isinstance(e, dict) and any(c in e for c in cols)
            continue
        st = e["step"]
        if isinstance(st, bool) or not isinstance(st, (int, float)) or not math.isfinite(st) or st != round(st):
            raise DataError(f"{path}: log_history[{i}]: 'step' must be a whole number, got {st!r}")
        steps.append(int(st))
        lr_key = "learning_rate" if "learning_rate" in e else "lr"  # a custom Trainer may log "lr"
        lrs.append(number(lr_key, e.get(lr_key)))
        for c in cols:
            losses[c].append(number(c, e.get(c)))
    if no_step:
        warnings.warn(f"{path}: {no_step} log_history entr{'y' if no_step == 1 else 'ies'} with a loss but no 'step' "
                      "were left out", DataWarning, stacklevel=3)
    if odd:
        warnings.warn(f"{path}: log_history values that are not numbers were left out: "
                      + ", ".join(f"{n} × {k!r}" for k, n in sorted(odd.items())), DataWarning, stacklevel=3)
    missing = [c for c in cols if all(math.isnan(v) for v in losses[c])]
    if missing:
        raise DataError(f"{path}: no values for loss column(s) {missing}")
    gs = d.get("global_step")
    gs = gs if isinstance(gs, int) and not isinstance(gs, bool) else None
    if gs is not None and steps and gs < max(steps):
        raise DataError(f"{path}: 'global_step' ({gs}) is below the largest logged step ({max(steps)})")
    kw["total_steps"] = kw.get("total_steps") or gs
    return _assemble(path, name, steps, lrs, losses, {"format": "huggingface"}, **kw)


def _tensorboard_run(path, name, loss_columns, lr_column, **kw):
    """A TensorBoard event file (the optional extra ``cptjax[tensorboard]`` reads it): scalar tags
    with ``loss`` in their name are loss columns; the LR tag is ``lr_column``, or
    ``train/learning_rate`` / ``learning_rate`` (Hugging Face: the LR of that step) or ``lr-*``
    (Lightning's LearningRateMonitor: the LR of the next step)."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        raise DataError(f"{path}: reading TensorBoard event files needs the optional extra: "
                        "pip install 'cptjax[tensorboard]'") from None
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    try:
        acc = EventAccumulator(path, size_guidance={"scalars": 0})
        acc.Reload()
        tags = acc.Tags().get("scalars", [])
    except Exception as e:  # the reader raises many types on a corrupt file
        raise DataError(f"{path}: not a readable TensorBoard event file ({type(e).__name__})") from None
    lr_tag = lr_column or _lr_name(tags)
    if kw["schedule"] is None and lr_tag not in tags:
        raise DataError(f"{path}: no LR tag (looked for {_LR_LOOKED_FOR}); "
                        f"tags are {tags[:8]}")
    # Megatron-LM also logs "lm loss vs samples" / "vs tokens" (another x-axis): left out unless named.
    cols = list(loss_columns) if loss_columns else [t for t in tags if "loss" in t.lower() and t != lr_tag
                                                    and " vs " not in t and "scale" not in t.lower()]
    for c in cols:
        if c not in tags:
            raise DataError(f"{path}: no scalar tag {c!r}; tags are {tags[:8]}")
    if not cols:
        raise DataError(f"{path}: no loss tags; tags are {tags[:8]}")
    steps, lrs, losses = [], [], {c: [] for c in cols}
    for tag in ([lr_tag] if lr_tag in tags else []) + cols:
        for ev in acc.Scalars(tag):
            steps.append(int(ev.step))
            lrs.append(float(ev.value) if tag == lr_tag else math.nan)
            for c in cols:
                losses[c].append(float(ev.value) if tag == c else math.nan)
    shift = 1 if lr_tag and lr_tag.startswith("lr-") else 0
    order = np.argsort(np.asarray(steps), kind="stable")  # tags are read one after another
    pick = lambda xs: [xs[i] for i in order]
    return _assemble(path, name, pick(steps), pick(lrs), {c: pick(v) for c, v in losses.items()},
                     {"format": "tensorboard"}, lr_shift=shift, **kw)


def _last_per_step(steps, v):
    """Per unique step (sorted), the last finite value of ``v`` in file order (NaN if none): a
    resumed run's later rows win, and loggers that write one row per metric (Lightning) merge."""
    u = np.unique(steps)
    out = np.full(u.size, np.nan)
    ok = ~np.isnan(v)  # ±inf is a (bad) logged value: kept here, counted and dropped later
    if ok.any():
        s, x = steps[ok][::-1], v[ok][::-1]
        rs, ri = np.unique(s, return_index=True)
        out[np.searchsorted(u, rs)] = x[ri]
    return u, out


def _assemble(path, name, rows_steps, rows_lr, rows_loss, report, *, schedule, n_pt, size, replay,
              total_steps, lr_shift=0):
    """Records (one per logged row, in file order) → a `Run`: rows of the same step merged,
    the dense LR rebuilt (``lr_shift``: the LR logged at step g is that of step g + shift)."""
    if not rows_steps:
        raise DataError(f"{path}: no data rows")
    big = max(rows_steps, key=abs)
    if abs(big) > _schedules.MAX_STEPS:
        raise DataError(f"{path}: step {big} is outside 0..{_schedules.MAX_STEPS:,}")
    steps = np.asarray(rows_steps, np.int64)
    if (steps < 0).any():
        raise DataError(f"{path}: negative step {int(steps.min())}")
    if steps.max() + lr_shift > _schedules.MAX_STEPS:
        raise DataError(f"{path}: step {int(steps.max())} is above the limit of "
                        f"{_schedules.MAX_STEPS:,} steps")
    # Rows that carry none of the chosen values (another metric's rows, e.g. Lightning's validation
    # rows on their own counter) do not make the steps "go backwards".
    carry = np.isfinite(np.asarray(rows_lr, np.float64)) if len(rows_lr) == steps.size else np.ones(steps.size, bool)
    for v in rows_loss.values():
        carry = carry | np.isfinite(np.asarray(v, np.float64))
    if np.any(np.diff(steps[carry]) < 0):
        report["unsorted_steps"] = True
        warnings.warn(f"{path}: steps go backwards (a resumed run?); kept the last value logged "
                      "for each step", DataWarning, stacklevel=3)
    u = np.unique(steps)
    cols = {c: _last_per_step(steps, np.asarray(v, np.float64))[1] for c, v in rows_loss.items()}
    if steps.size > u.size and report.get("format") == "csv":
        report["duplicate_steps_merged"] = int(steps.size - u.size)
    has_loss = np.zeros(u.size, bool)
    for v in cols.values():
        has_loss |= ~np.isnan(v)
    if schedule is not None:
        try:
            lr = _schedules.parse(schedule) if isinstance(schedule, str) else np.asarray(schedule, np.float64)
        except (TypeError, ValueError) as e:
            raise DataError(f"{path}: bad schedule ({e})") from None
        _check_against_log(path, lr, steps + lr_shift, np.asarray(rows_lr, np.float64))
    else:
        _, lrv = _last_per_step(steps, np.asarray(rows_lr, np.float64))
        lr_steps = u + lr_shift
        total = int(total_steps or max(u[has_loss].max() if has_loss.any() else 0, lr_steps.max()))
        if total > _schedules.MAX_STEPS:  # e.g. a trainer state's global_step of 10^9
            raise DataError(f"{path}: the run's length ({total:,} steps, from its total/global step) is "
                            f"above the limit of {_schedules.MAX_STEPS:,} steps")
        lr, rep = _rebuild_lr(path, lr_steps, lrv, max(total, 1))
        report.update(rep)
    keep = has_loss if has_loss.any() else np.ones(u.size, bool)
    return _finish(path, name, lr, n_pt, u[keep], {c: v[keep] for c, v in cols.items()}, size, replay,
                   report)


def _check_against_log(path, lr, steps, logged):
    """A schedule given for a log that records its own LR: warn where the two disagree (by more
    than 5% of the logged peak at more than a tenth of the logged points) — the schedule is used."""
    if logged.size != steps.size:
        return
    lr = np.asarray(lr, np.float64).ravel()
    ok = np.isfinite(logged) & (steps >= 1) & (steps <= lr.size)
    if ok.sum() < 3 or lr.size == 0:
        return
    s, v = steps[ok], logged[ok]
    off = np.abs(lr[s - 1] - v) > 0.05 * np.abs(v).max()
    if off.sum() > max(1, 0.1 * off.size):
        i = int(np.argmax(off))
        warnings.warn(f"{path}: the schedule given disagrees with the log's own LR at {int(off.sum())} of "
                      f"{off.size} logged steps (first at step {int(s[i])}: logged {v[i]:.3g}, schedule "
                      f"{lr[s[i] - 1]:.3g}); the schedule is used — check that it is this run's",
                      DataWarning, stacklevel=3)


def _finish(path, name, lr, n_pt, steps, cols, size, replay, report):
    lr = np.asarray(lr, np.float64)
    if lr.ndim != 1 or lr.size == 0:
        raise DataError(f"{path}: the schedule is empty")
    if not np.isfinite(lr).all() or (lr < 0).any():
        raise DataError(f"{path}: the schedule has a negative or non-finite LR")
    if not (lr > 0).any():
        raise DataError(f"{path}: the LR is zero at every step, so the areas are zero and no law can "
                        "be fitted (is the LR logged, and in raw units such as 2e-4?)")
    if not _schedules.MIN_PEAK < lr.max() <= _schedules.MAX_LR:
        raise DataError(f"{path}: the largest LR is {lr.max():g}, outside ({_schedules.MIN_PEAK:g}, "
                        f"{_schedules.MAX_LR:g}]: is the LR column in raw units (such as 2e-4)?")
    if isinstance(n_pt, float) and not (math.isfinite(n_pt) and n_pt == int(n_pt)):
        raise DataError(f"{path}: n_pt must be an integer, got {n_pt}")
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
    if steps.size == 0:
        raise DataError(f"{path}: no logged step after step 0 (a loss at step 0 precedes every "
                        "update and is not used)")
    dropped = {}
    nan_cells = report.pop("nan_cells", {})
    for k, v in cols.items():
        bad = ~np.isfinite(v) | (v <= 0)
        n_bad = int(((np.isfinite(v) & (v <= 0)) | np.isinf(v)).sum()) + nan_cells.get(k, 0)
        if n_bad:
            dropped[k] = n_bad
        cols[k] = np.where(bad, np.nan, v)
    if dropped:
        report["bad_losses_dropped"] = dropped
        warnings.warn(f"{path}: dropped non-finite or non-positive losses {dropped}", DataWarning,
                      stacklevel=3)
    if size is not None and not (math.isfinite(float(size)) and float(size) > 0):
        raise DataError(f"{path}: size must be > 0 (millions of parameters), got {size}")
    if replay is not None and not 0 <= float(replay) <= 1:
        raise DataError(f"{path}: replay ratio must be in [0, 1], got {replay}")
    return Run(name, lr, n_pt, steps, cols, None if size is None else float(size),
               None if replay is None else float(replay), report)
