"""Learning-rate schedules as plain per-step arrays.

Convention (docs/guide/laws.md): a schedule of ``steps`` = T optimizer steps is a float64 array ``lr`` with
``lr[i - 1]`` = η_i, the LR used at step i = 1..T.  Every constructor takes an optional linear
warmup of W steps, η_i = peak·i/W for i = 1..W, and its main shape runs over steps W+1..T with the
progress variable u = (i − W)/(T − W) ∈ (0, 1] (so it reaches ``final`` exactly at step T).
"""

from __future__ import annotations

import ast
import io
import math
import pathlib
import re

import numpy as np

from .errors import InputError

__all__ = [
    "constant", "cosine", "linear", "wsd", "multistep", "inverse_sqrt", "join", "parse",
    "from_file", "rewarm", "to_csv",
]

_SHAPES = ("linear", "exp", "cosine", "sqrt")


# Longest schedule built here: 10^7 steps (80 MB per float64 array; the areas need ~5 such arrays
# and a fit or design a few more). Longer runs are rare and better logged at a coarser step.
MAX_STEPS = 10_000_000
MAX_LR = 10.0  # no optimiser's learning rate is above this; a larger one is a units mistake
MIN_PEAK = 1e-12  # nor is a schedule's largest LR below this one


def _check(steps, peak, warmup, final=None, name="schedule"):
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise InputError(f"{name}: `steps` must be an integer >= 1, got {steps!r}")
    if steps > MAX_STEPS:
        raise InputError(f"{name}: `steps`={steps} is above the limit of {MAX_STEPS:,} steps")
    if not (isinstance(peak, (int, float, np.floating)) and math.isfinite(peak) and peak > 0):
        raise InputError(f"{name}: `peak` must be a finite number > 0, got {peak!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, (int, np.integer)) or not 0 <= warmup < steps:
        raise InputError(f"{name}: `warmup` must be an integer in [0, steps), got {warmup!r}")
    if final is not None and not (isinstance(final, (int, float, np.floating)) and not isinstance(final, bool)
                                  and math.isfinite(final) and 0 <= final):
        raise InputError(f"{name}: `final` must be a finite number >= 0, got {final!r}")
    if final is not None and final > peak:
        raise InputError(f"{name}: `final` ({final:g}) must not exceed `peak` ({peak:g})")


def _with_warmup(steps: int, peak: float, warmup: int, body) -> np.ndarray:
    """Warmup η_i = peak·i/W (i ≤ W), then ``body(u)`` with u = (i − W)/(T − W), i = W+1..T."""
    i = np.arange(1, steps + 1, dtype=np.float64)
    warm = peak * i[:warmup] / max(warmup, 1)
    u = (i[warmup:] - warmup) / (steps - warmup)
    return np.concatenate([warm, np.asarray(body(u), dtype=np.float64)])


def constant(steps: int, peak: float, warmup: int = 0) -> np.ndarray:
    """Constant LR: η_i = peak after the warmup.

    Examples:
        >>> constant(4, 1e-3, warmup=2).tolist()
        [0.0005, 0.001, 0.001, 0.001]
    """
    _check(steps, peak, warmup, name="constant")
    return _with_warmup(steps, peak, warmup, lambda u: np.full_like(u, peak))


def cosine(steps: int, peak: float, warmup: int = 0, final: float = 0.0) -> np.ndarray:
    """Cosine decay: η = final + (peak − final)·½(1 + cos πu), reaching ``final`` at step T.

    Examples:
        >>> cosine(3, 1.0).round(3).tolist()
        [0.75, 0.25, 0.0]
    """
    _check(steps, peak, warmup, final, name="cosine")
    return _with_warmup(steps, peak, warmup,
                        lambda u: final + (peak - final) * 0.5 * (1 + np.cos(np.pi * u)))


def linear(steps: int, peak: float, warmup: int = 0, final: float = 0.0) -> np.ndarray:
    """Linear decay: η = peak + (final − peak)·u, reaching ``final`` at step T."""
    _check(steps, peak, warmup, final, name="linear")
    return _with_warmup(steps, peak, warmup, lambda u: peak + (final - peak) * u)


def cooldown_curve(peak: float, final: float, u: np.ndarray, shape: str) -> np.ndarray:
    """The LR of a cooldown from ``peak`` to ``final`` at fractions ``u`` in [0, 1] of its length."""
    if shape == "linear":
        return peak + (final - peak) * u
    if shape == "exp":  # geometric interpolation peak → final
        return peak * (final / peak) ** u
    if shape == "cosine":
        return final + (peak - final) * 0.5 * (1 + np.cos(np.pi * u))
    if shape == "sqrt":  # 1 − √u
        return final + (peak - final) * (1 - np.sqrt(u))
    raise InputError(f"wsd: `shape` must be one of {_SHAPES}, got {shape!r}")


def wsd(steps: int, peak: float, warmup: int = 0, decay: float = 0.2, final: float = 0.0,
        shape: str = "linear") -> np.ndarray:
    """Warmup–stable–decay: hold ``peak`` to step T − D, then cool down to ``final`` at step T.

    D = round(decay·T).  For i in T−D+1..T, with v = (i − (T − D))/D:
    ``linear`` peak + (final − peak)·v; ``exp`` peak·(final/peak)^v (geometric, needs final > 0);
    ``cosine`` final + (peak − final)·½(1 + cos πv); ``sqrt`` final + (peak − final)·(1 − √v).

    Examples:
        >>> wsd(5, 1.0, decay=0.4, final=0.0).tolist()
        [1.0, 1.0, 1.0, 0.5, 0.0]
    """
    _check(steps, peak, warmup, final, name="wsd")
    if not 0 <= decay <= 1:
        raise InputError(f"wsd: `decay` must be a fraction in [0, 1], got {decay!r}")
    if shape not in _SHAPES:
        raise InputError(f"wsd: `shape` must be one of {_SHAPES}, got {shape!r}")
    if shape == "exp" and final <= 0:
        raise InputError("wsd: shape='exp' (geometric) needs `final` > 0")
    n_decay = int(round(decay * steps))
    if n_decay > steps - warmup:
        raise InputError(f"wsd: the decay ({n_decay} steps) overlaps the warmup ({warmup} steps)")
    lr = _with_warmup(steps, peak, warmup, lambda u: np.full_like(u, peak))
    if n_decay:
        v = np.arange(1, n_decay + 1, dtype=np.float64) / n_decay
        lr[steps - n_decay:] = cooldown_curve(peak, final, v, shape)
    return lr


def multistep(steps: int, peak: float, warmup: int = 0, milestones=(0.8, 0.9),
              factors=(0.316, 0.1)) -> np.ndarray:
    """Step decay: η = peak·factors[k−1] after milestone k (a fraction of T), e.g. DeepSeek's
    80%/90% steps to 31.6% and 10% of the peak. Step i is after milestone m when i > round(m·T).
    The final LR is ``peak·factors[-1]``."""
    _check(steps, peak, warmup, name="multistep")
    milestones, factors = tuple(np.atleast_1d(milestones)), tuple(np.atleast_1d(factors))
    if len(milestones) != len(factors):
        raise InputError("multistep: `milestones` and `factors` must have the same length")
    if any(not (isinstance(f, (int, float, np.number)) and math.isfinite(f) and f >= 0) for f in factors):
        raise InputError(f"multistep: `factors` must be finite numbers >= 0, got {factors}")
    if any(not 0 < m <= 1 for m in milestones) or list(milestones) != sorted(milestones):
        raise InputError(f"multistep: `milestones` must be increasing fractions in (0, 1], got {milestones}")
    if any(not (f >= 0 and math.isfinite(f)) for f in factors):
        raise InputError(f"multistep: `factors` must be finite and >= 0, got {factors}")
    lr = _with_warmup(steps, peak, warmup, lambda u: np.full_like(u, peak))
    i = np.arange(1, steps + 1)
    for m, f in zip(milestones, factors):
        lr[(i > round(m * steps)) & (i > warmup)] = peak * f
    return lr


def inverse_sqrt(steps: int, peak: float, warmup: int = 0, timescale: int | None = None,
                 decay: float = 0.0, final: float = 0.0) -> np.ndarray:
    """Inverse square root: η_i = peak·√(τ/(i − W + τ)) after warmup (τ = ``timescale``, default
    max(W, 1)), optionally with a linear cooldown to ``final`` over the last round(decay·T) steps."""
    _check(steps, peak, warmup, final, name="inverse_sqrt")
    tau = max(warmup, 1) if timescale is None else timescale
    if tau <= 0:
        raise InputError(f"inverse_sqrt: `timescale` must be > 0, got {timescale!r}")
    if not 0 <= decay <= 1:
        raise InputError(f"inverse_sqrt: `decay` must be a fraction in [0, 1], got {decay!r}")
    n = steps - warmup
    lr = _with_warmup(steps, peak, warmup, lambda u: peak * np.sqrt(tau / (u * n + tau - 1)))
    n_decay = int(round(decay * steps))
    if n_decay:
        if n_decay > n:
            raise InputError("inverse_sqrt: the decay overlaps the warmup")
        start = lr[steps - n_decay - 1]
        v = np.arange(1, n_decay + 1, dtype=np.float64) / n_decay
        lr[steps - n_decay:] = start + (final - start) * v
    return lr


def rewarm(main, start_lr, warmup: int):
    """Prefix a CPT schedule ``main`` with a linear re-warmup of ``warmup`` steps from the PT's
    last LR ``start_lr`` to ``main[0]``: step i (1-based) of it is start + (main[0] − start)·i/warmup.
    NumPy in, NumPy out; a JAX array (or tracer) in, JAX out (differentiable). The one re-warmup
    cptjax uses (designed plans, baselines, reference schedules)."""
    if not warmup:
        return main
    if isinstance(main, np.ndarray):
        xp = np
    else:
        import jax.numpy as xp
    ramp = xp.arange(1, warmup + 1, dtype=main.dtype) / warmup
    return xp.concatenate([start_lr + (main[0] - start_lr) * ramp, main])


def to_csv(lr) -> str:
    """A CPT schedule per step as CSV text, ``cpt_step,lr`` (1-based steps, every digit): the
    format of ``cptjax design``'s ``plan.csv`` and of ``cptjax tune``'s trial schedules, read
    back by ``file(...)``."""
    return "cpt_step,lr\n" + "".join(f"{i + 1},{v!r}\n" for i, v in enumerate(np.asarray(lr).tolist()))


def join(pt, cpt) -> tuple[np.ndarray, int]:
    """Join a PT and a CPT schedule into one array; returns ``(lr, n_pt)``.

    Examples:
        >>> lr, n_pt = join(constant(3, 1.0), constant(2, 0.5)); n_pt
        3
    """
    pt, cpt = _lr_array(pt, "pt"), _lr_array(cpt, "cpt")
    if pt.size == 0:
        raise InputError("join: the PT schedule is empty")
    return np.concatenate([pt, cpt]), int(pt.size)


def _lr_array(x, name) -> np.ndarray:
    """``x`` as a 1-D float64 LR array: real numbers, finite and non-negative (an error names ``name``)."""
    a = np.asarray(x)
    if a.dtype == bool or a.dtype.kind not in "fiu":
        raise InputError(f"join: `{name}` must be an array of LRs (real numbers), got dtype {a.dtype}")
    a = a.astype(np.float64)
    if a.ndim != 1:
        raise InputError(f"join: `{name}` must be a 1-D per-step LR array, got shape {a.shape}")
    if not np.isfinite(a).all() or (a < 0).any():
        raise InputError(f"join: `{name}` has a negative or non-finite LR")
    return a


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _read_npy(raw: bytes, path) -> np.ndarray:
    buf = io.BytesIO(raw)
    version = np.lib.format.read_magic(buf)
    fmt = np.lib.format
    shape, _, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(buf)
    if math.prod(shape) > MAX_STEPS or math.prod(shape) * dtype.itemsize > len(raw):
        raise InputError(f"file({path}): its header claims shape {shape}: above the limit of "
                         f"{MAX_STEPS:,} steps, or more than the file holds")
    return np.load(io.BytesIO(raw), allow_pickle=False)


def _read_json(raw: bytes, path):
    """A plan file from `cptjax design` (or any {"schedule": [...]})."""
    import json

    d = json.loads(raw.decode("utf-8-sig"))
    if not (isinstance(d, dict) and isinstance(d.get("schedule"), list)):
        raise InputError(f"file({path}): a JSON schedule needs a 'schedule' list of LRs")
    return d["schedule"]


def _read_csv(raw: bytes, path) -> np.ndarray:
    text = raw.decode("utf-8-sig")
    names = [c.strip() for c in text.split("\n", 1)[0].split(",")]
    if all(_is_number(c) for c in names):  # no header ("1e-4", "nan" are numbers: data)
        return np.loadtxt(io.StringIO(text), delimiter=",", ndmin=1)
    col = names.index("lr") if "lr" in names else (0 if len(names) == 1 else None)
    if col is None:
        raise InputError(f"file({path}): CSV has several columns and none named 'lr'")
    arr = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, usecols=col, ndmin=1)
    step = next((i for i, c in enumerate(names) if c.lower() in ("step", "cpt_step", "global_step",
                                                                   "iter", "iteration", "_step")), None)
    if step is not None:
        st = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, usecols=step, ndmin=1)
        if st.size > 1 and not np.all(np.diff(st) == 1):
            raise InputError(f"file({path}): its {names[step]!r} column skips steps (a log?): file() "
                             "needs one LR per step — read a training log with load_run (cptjax fit "
                             "LOG), or give the schedule in text form")
    return arr


def _checked_lrs(arr, path) -> np.ndarray:
    kind = np.asarray(arr).dtype.kind if isinstance(arr, np.ndarray) else None
    if kind is not None and kind not in "fiu":  # datetimes, strings, booleans, complex: not LRs
        raise InputError(f"file({path}): expected a numeric LR array, got dtype {arr.dtype}")
    try:
        arr = np.asarray(arr, np.float64)
    except (TypeError, ValueError):
        raise InputError(f"file({path}): expected a numeric LR array") from None
    if arr.ndim != 1 or arr.size == 0:
        raise InputError(f"file({path}): expected a non-empty 1-D LR array, got shape {arr.shape}")
    if arr.size > MAX_STEPS:
        raise InputError(f"file({path}): {arr.size} steps is above the limit of {MAX_STEPS:,}")
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        raise InputError(f"file({path}): the LR at step {int(np.argmax(bad)) + 1} is negative or "
                         "not finite")
    return arr


def from_file(path) -> np.ndarray:
    """Load a per-step LR array from ``.npy``, a plan ``.json`` or ``.csv``/``.txt`` (one column, or
    a column named ``lr``)."""
    if not str(path).strip():
        raise InputError("file(): give a path, e.g. file(lr.npy)")
    p = pathlib.Path(path)
    if not p.exists():
        raise InputError(f"file({path}): no such file")
    if p.is_dir():
        raise InputError(f"file({path}): is a folder, not a schedule file")
    from .files import read_bytes

    # bounded: a regular file of at most 256 MiB (a FIFO or device would never end)
    raw = read_bytes(p, f"file({path})", limit=256 << 20)
    reader = {".npy": _read_npy, ".json": _read_json}.get(p.suffix, _read_csv)
    try:
        arr = reader(raw, path)
    except ValueError as e:
        if str(e).startswith("file("):
            raise
        raise InputError(f"file({path}): could not read a numeric LR array ({e})") from None
    except (OSError, UnicodeDecodeError, EOFError, RecursionError, json_errors()) as e:
        raise InputError(f"file({path}): could not read it ({str(e)[:200]})") from None
    return _checked_lrs(arr, path)


def json_errors():
    import json

    return json.JSONDecodeError


_KINDS = {"constant": constant, "cosine": cosine, "linear": linear, "wsd": wsd,
          "multistep": multistep, "inverse_sqrt": inverse_sqrt}
_INT_ARGS = {"steps", "warmup", "timescale"}


def parse(text: str) -> np.ndarray:
    """Build a schedule from its text form, e.g. ``wsd(steps=40000,peak=2e-4,warmup=500,decay=0.2,final=2e-5)``
    or ``file(path/to/lr.npy)``. Keyword arguments only; errors name the bad part.

    Examples:
        >>> parse("constant(steps=3, peak=1e-4)").tolist()
        [0.0001, 0.0001, 0.0001]
    """
    if not isinstance(text, str):
        raise InputError(f"schedule: expected text like 'cosine(steps=1000,peak=1e-4)', got {str(text)[:80]!r}")
    shown = text if len(text) <= 120 else text[:100] + "…"  # an error names the text, not all of it
    m = re.fullmatch(r"\s*([A-Za-z_]\w*)\s*\((.*)\)\s*", text, flags=re.S)
    if not m:
        raise InputError(f"schedule {shown!r}: expected NAME(key=value,...), e.g. "
                         "'cosine(steps=1000,peak=1e-4)' or 'file(lr.npy)'")
    kind, body = m.group(1), m.group(2).strip()
    if kind == "file":
        return from_file(body.strip("'\""))
    if kind not in _KINDS:
        raise InputError(f"schedule {shown!r}: unknown schedule {kind!r}; known: "
                         f"{', '.join(sorted(_KINDS))}, file")
    kwargs = {}
    for part in filter(None, (p.strip() for p in _split_args(body))):
        key, eq, raw = part.partition("=")
        key, raw = key.strip(), raw.strip()
        if key in kwargs:
            raise InputError(f"schedule {shown!r}: {key!r} is given twice")
        if not eq or not key.isidentifier():
            raise InputError(f"schedule {shown!r}: bad argument {part!r}; expected key=value")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            if not raw.isidentifier():
                raise InputError(f"schedule {shown!r}: bad value in {part!r}; expected a number "
                                 "or a word such as shape=cosine") from None
            value = raw  # bare words such as shape=cosine
        if key in _INT_ARGS and isinstance(value, float) and value.is_integer():
            value = int(value)
        kwargs[key] = value
    try:
        lr = _KINDS[kind](**kwargs)
    except TypeError as e:
        raise InputError(f"schedule {shown!r}: {e}".replace("()", "")) from None
    except ValueError as e:
        raise InputError(f"schedule {shown!r}: {e}") from None
    if lr.size and float(np.max(lr)) > MAX_LR:
        raise InputError(f"schedule {shown!r}: its largest LR {float(np.max(lr)):g} is above {MAX_LR:g}: is it in raw "
                         "units (such as 2e-4)?")
    return lr


def _split_args(body: str):
    depth, cur = 0, ""
    for ch in body:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            yield cur
            cur = ""
        else:
            cur += ch
    yield cur
