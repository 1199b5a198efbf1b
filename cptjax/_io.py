"""Every output cptjax writes goes through here: atomic files and folders (a temporary name in the
destination folder, renamed into place only when complete), modes that honour the umask, strict
JSON, and checks that an output can be written before any work starts.

Temporary paths in progress are registered, so that an interrupt (``cli``'s signal thread) can
remove them before the process exits: an interrupted or failed command leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import threading

__all__ = ["atomic_write", "atomic_dir", "check_output_file", "check_output_dir", "dumps",
           "cleanup_partial"]

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
    """Remove every temporary file and folder still in progress (called on interrupt)."""
    with _LOCK:
        paths = list(_PARTIAL)
        _PARTIAL.clear()
    for p in paths:
        try:
            shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.remove(p)
        except OSError:
            pass


def _parent(path) -> str:
    return os.path.dirname(os.path.abspath(path)) or "."


def check_output_file(path, what: str = "output") -> str:
    """Raise ``ValueError`` naming ``what`` unless ``path`` can be written as a file (its folder
    exists and is writable; the path is not a folder)."""
    path = os.fspath(path)
    if not path:
        raise ValueError(f"{what}: empty path")
    if os.path.isdir(path) or path.endswith((os.sep, "/")):
        raise ValueError(f"{what} {path}: is a folder; give a file name")
    if os.path.exists(path) and not os.path.isfile(path):
        raise ValueError(f"{what} {path}: exists and is not a regular file (a device or pipe?)")
    folder = _parent(path)
    if not os.path.isdir(folder):
        raise ValueError(f"{what} {path}: folder {folder} does not exist")
    _probe(folder, f"{what} {path}")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ValueError(f"{what} {path}: file exists and is not writable")
    return path


def _probe(folder, label):
    """Can a file be created in ``folder``? Tried for real: permission bits do not tell on a
    read-only file system, or for root."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".cptjax-probe.")
    except OSError as e:
        raise ValueError(f"{label}: folder {folder} is not writable ({e.strerror})") from None
    os.close(fd)
    os.remove(tmp)


def check_output_dir(path, what: str = "output folder") -> str:
    """Raise ``ValueError`` unless ``path`` can be made (or filled) as a folder."""
    path = os.fspath(path)
    if not path:
        raise ValueError(f"{what}: empty path")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{what} {path}: exists and is not a folder")
    folder = path if os.path.isdir(path) else _parent(path)
    if not os.path.isdir(folder):
        raise ValueError(f"{what} {path}: parent folder {folder} does not exist")
    _probe(folder, f"{what} {path}")
    return path


def atomic_write(path, data) -> None:
    """Write text or bytes to ``path`` via a temporary file in the same folder + rename: never a
    partly written file; the mode honours the umask (as ``open`` would)."""
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
            os.replace(tmp, path)
        except OSError as e:  # name the destination, not the temporary file
            raise ValueError(f"{path}: cannot write it ({e.strerror})") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
        _track(tmp, False)


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
        if not os.path.exists(path):
            os.replace(tmp, path)
        else:
            for name in os.listdir(tmp):
                os.replace(os.path.join(tmp, name), os.path.join(path, name))
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        _track(tmp, False)


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
