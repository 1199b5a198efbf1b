"""Every output cptjax writes goes through here: atomic files and folders (a temporary name in the
destination folder, renamed into place only when complete), modes that honour the umask, strict
JSON, and checks that an output can be written before any work starts.

Temporary paths in progress are registered, so that an interrupt (``cli``'s signal thread) can
remove them before the process exits: an interrupted or failed command leaves nothing behind.
"""

from __future__ import annotations
from .errors import InputError

import contextlib
import json
import math
import os
import shutil
import tempfile
import threading

__all__ = ["atomic_write", "atomic_dir", "check_output_file", "check_output_dir", "dumps",
           "cleanup_partial", "check_outputs", "schedule_files", "read_bytes", "read_text",
           "MAX_INPUT_BYTES"]

# The most cptjax reads from one input file (after gunzip): far above any real log (a 10^7-step
# per-step log is ~300 MB of CSV), far below what would exhaust a machine.
MAX_INPUT_BYTES = 1 << 30

_PARTIAL: set[str] = set()
_LOCK = threading.Lock()


def _umask() -> int:
    try:  # Linux: read it without changing it
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _track(path, on: bool):
    with _LOCK:
        (_PARTIAL.add if on else _PARTIAL.discard)(path)


def cleanup_partial() -> None:
    """Remove every temporary file and folder still in progress (called on interrupt); waits for
    a set of outputs being renamed into place."""
    with _LOCK:
        paths = list(_PARTIAL)
        _PARTIAL.clear()
        for p in paths:
            _remove(p)


def _parent(path) -> str:
    return os.path.dirname(os.path.abspath(path)) or "."


def check_output_file(path, what: str = "output") -> str:
    """Raise ``ValueError`` naming ``what`` unless ``path`` can be written as a file (its folder
    exists and is writable; the path is not a folder)."""
    path = os.fspath(path)
    if not path:
        raise InputError(f"{what}: empty path")
    if os.path.isdir(path) or path.endswith((os.sep, "/")):
        raise InputError(f"{what} {path}: is a folder; give a file name")
    if os.path.exists(path) and not os.path.isfile(path):
        raise InputError(f"{what} {path}: exists and is not a regular file (a device or pipe?)")
    folder = _parent(path)
    if not os.path.isdir(folder):
        raise InputError(f"{what} {path}: folder {folder} does not exist")
    _probe(folder, f"{what} {path}")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise InputError(f"{what} {path}: file exists and is not writable")
    return path


def _probe(folder, label):
    """Can a file be created in ``folder``? Tried for real: permission bits do not tell on a
    read-only file system, or for root."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".cptjax-probe.")
    except OSError as e:
        raise InputError(f"{label}: folder {folder} is not writable ({e.strerror})") from None
    os.close(fd)
    os.remove(tmp)


def check_output_dir(path, what: str = "output folder") -> str:
    """Raise ``ValueError`` unless ``path`` can be made (or filled) as a folder."""
    path = os.fspath(path)
    if not path:
        raise InputError(f"{what}: empty path")
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"{what} {path}: exists and is not a folder")
    folder = path if os.path.isdir(path) else _parent(path)
    if not os.path.isdir(folder):
        raise InputError(f"{what} {path}: parent folder {folder} does not exist")
    _probe(folder, f"{what} {path}")
    return path


_STAGED: list | None = None  # inside output_set(): (temporary, destination) pairs to commit together


SET_WRITTEN = False  # the last output set was renamed into place in full (for the signal message)


def set_written() -> bool:
    """Whether the last `output_set` was renamed into place in full."""
    return SET_WRITTEN


@contextlib.contextmanager
def output_set():
    """Make every `atomic_write` and `atomic_dir` inside one set of outputs: each is
    written under its temporary name and all are renamed into place together when the block ends
    without an error — a command's JSON, CSV and figure are all there or none is. An interrupt
    that arrives while they are renamed waits for the renames (they hold the lock that
    `cleanup_partial` takes), so it never leaves half a set."""
    global _STAGED, SET_WRITTEN
    outer, _STAGED = _STAGED, []
    staged = _STAGED
    SET_WRITTEN = False
    try:
        yield
    except BaseException:
        for tmp, _ in staged:
            _remove(tmp)
            _track(tmp, False)
        raise
    finally:
        _STAGED = outer
    with _LOCK:
        for tmp, dest in staged:
            _commit(tmp, dest)
            _PARTIAL.discard(tmp)
        SET_WRITTEN = bool(staged)


def _remove(p):
    try:
        shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.remove(p)
    except OSError:
        pass


def _commit(tmp, dest):
    """Rename a finished temporary file or folder into place (a folder's files move into an
    existing ``dest``)."""
    try:
        if os.path.isdir(tmp) and os.path.isdir(dest):
            for name in os.listdir(tmp):
                os.replace(os.path.join(tmp, name), os.path.join(dest, name))
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except OSError as e:  # name the destination, not the temporary file
        _remove(tmp)
        raise InputError(f"{dest}: cannot write it ({e.strerror})") from None


def atomic_write(path, data) -> None:
    """Write text or bytes to ``path`` via a temporary file in the same folder + rename: never a
    partly written file; the mode honours the umask (as ``open`` would). Inside
    `output_set` the rename waits for the set."""
    path = os.fspath(path)
    check_output_file(path, "output")
    folder = _parent(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    _track(tmp, True)
    try:
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data.encode() if isinstance(data, str) else data)
            os.chmod(tmp, 0o666 & ~_umask())
        except OSError as e:  # name the destination, not the temporary file
            raise InputError(f"{path}: cannot write it ({e.strerror})") from None
        if _STAGED is not None:
            _STAGED.append((tmp, path))
            return
        _commit(tmp, path)
    except BaseException:
        _remove(tmp)
        _track(tmp, False)
        raise
    _track(tmp, False)


def read_bytes(path, what: str = "input", limit: int | None = None) -> bytes:
    """Read an input file, bounded: only a regular file (a device, FIFO or socket would never end),
    at most ``limit`` bytes (``MAX_INPUT_BYTES``), a ``.gz`` file unpacked to at most ``limit``
    bytes. Raises ``InputError`` naming the file."""
    import gzip
    import io
    import stat

    from .errors import InputError

    limit = MAX_INPUT_BYTES if limit is None else limit
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file ({what})") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read the {what} ({e.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path}: is a folder, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: not a regular file (a device, pipe or socket): give the {what} "
                         "as a file")
    if st.st_size > limit:
        raise InputError(f"{path}: {st.st_size} bytes, above the limit of {limit} bytes for a {what}")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as e:
        raise InputError(f"{path}: cannot read the {what} ({e.strerror})") from None
    if path.endswith(".gz") or raw[:2] == b"\x1f\x8b":
        try:
            d = gzip.GzipFile(fileobj=io.BytesIO(raw))
            out = d.read(limit + 1)
        except (OSError, EOFError, ValueError) as e:
            raise InputError(f"{path}: not a valid gzip file ({e})") from None
        if len(out) > limit:
            raise InputError(f"{path}: unpacks to more than {limit} bytes, the limit for a {what}")
        raw = out
    return raw


def read_text(path, what: str = "input", limit: int | None = None) -> str:
    """`read_bytes`, decoded: UTF-8 (a byte-order mark dropped) or UTF-16 with its BOM."""
    raw = read_bytes(path, what, limit)
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    elif raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", errors="replace")
    return raw.decode("utf-8", errors="replace")


def _same(a, b) -> bool:
    """Do two paths name the same file (symlinks, ``..`` and hard links included)?"""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def schedule_files(text) -> list[str]:
    """The paths a schedule in text form reads (``file(PATH)``), so that outputs can be checked
    against them."""
    import re

    return [m.strip() for m in re.findall(r"file\(([^)]*)\)", text or "") if m.strip()]


def check_outputs(outputs, inputs) -> None:
    """Refuse an output that would overwrite one of the inputs, or two outputs that are one file.

    ``outputs``: ``{what: path}`` (``what`` names the argument, e.g. ``"--out"``); a folder output
    is given as the files it will write. ``inputs``: paths that are read. Raises ``ValueError``
    naming both, before any work starts: ``cptjax fit run.csv --out run.csv`` must never replace
    the log with the fit.
    """
    outs = [(w, os.fspath(p)) for w, p in outputs.items() if p]
    ins = [os.fspath(p) for p in inputs if p]
    for what, out in outs:
        for src in ins:
            if _same(out, src):
                raise InputError(f"{what if out in what else f'{what} {out}'}: is one of the inputs ({src}); writing it would "
                                 "destroy that input: give another output path")
    for i, (w1, o1) in enumerate(outs):
        for w2, o2 in outs[i + 1:]:
            if _same(o1, o2):
                raise InputError(f"{w1} and {w2} name the same file ({o1}): give each its own path")


@contextlib.contextmanager
def atomic_dir(path):
    """Build a folder's files under a temporary sibling name; on success move them into ``path``
    (created if needed), on any failure or interrupt remove the temporary folder. Yields the
    temporary folder's path."""
    path = os.fspath(path)
    check_output_dir(path)
    parent = _parent(path)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(os.path.normpath(path))}.", suffix=".tmp")
    _track(tmp, True)
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
    except BaseException:
        _remove(tmp)
        _track(tmp, False)
        raise
    if _STAGED is not None:
        _STAGED.append((tmp, path))
        return
    with _LOCK:  # an interrupt waits for the files to be moved: never a mix of two runs
        _commit(tmp, path)
        _PARTIAL.discard(tmp)


def _finite(x):
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def dumps(obj, **kw) -> str:
    """Strict JSON (``allow_nan=False``): non-finite floats become ``null``, never a bare
    ``NaN``/``Infinity`` that other tools cannot read."""
    return json.dumps(_finite(obj), allow_nan=False, **kw)
