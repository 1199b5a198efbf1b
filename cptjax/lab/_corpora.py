"""Text corpora every machine has, for the CPT lab (byte-level tokens).

General (PT) text: English prose that ships with CPython — the help texts of
``pydoc_data/topics.py`` and the docstrings of the standard library. Domain (CPT) text: the
standard library's Python source with its docstrings removed. Both come from one fixed, sorted
list of standard-library files (tests, site-packages and generated files excluded); validation is
held out *by file* (a stable hash of the relative path), so no training byte is ever validated on.
User text files can replace either set (``--general`` / ``--domain`` / ``--ood``).
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import os
import sysconfig
import tokenize

import numpy as np

from ..errors import InputError

__all__ = ["Corpus", "stdlib_files", "general_corpus", "domain_corpus", "files_corpus"]

VAL_SHARE = 20  # one file in 20 (by a stable hash of its path) is validation


@dataclasses.dataclass
class Corpus:
    """Training and validation bytes (uint8 token arrays) of one text distribution."""

    name: str
    train: np.ndarray
    val: np.ndarray
    n_files: tuple[int, int]

    def describe(self) -> str:
        return (f"{self.name}: {self.train.size / 1e6:.2f} MB train / {self.val.size / 1e6:.2f} MB "
                f"validation from {self.n_files[0]} / {self.n_files[1]} files")


def _is_val(rel: str) -> bool:
    return int(hashlib.sha256(rel.encode()).hexdigest(), 16) % VAL_SHARE == 0


def stdlib_files(root: str | None = None) -> list[tuple[str, str]]:
    """The fixed, sorted list of standard-library ``.py`` files: (relative path, full path);
    tests, ``site-packages``, ``idlelib``'s tests and the large generated ``pydoc_data`` excluded."""
    root = root or sysconfig.get_paths()["stdlib"]
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        parts = set(rel_dir.split(os.sep))
        if parts & {"site-packages", "test", "tests", "idle_test", "pydoc_data", "__pycache__",
                    "dist-packages", "lib2to3"} or rel_dir.startswith("config-"):
            dirnames[:] = []
            continue
        dirnames.sort()
        for f in sorted(filenames):
            if f.endswith(".py") and not f.startswith("test_"):
                out.append((os.path.normpath(os.path.join(rel_dir, f)), os.path.join(dirpath, f)))
    return sorted(out)


def _docstring_nodes(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                yield body[0]


def split_source(text: str) -> tuple[str, list[str]]:
    """(source with docstrings removed, the docstrings). Docstrings are cut out by their exact
    source span (the rest of the file, comments and layout included, is kept byte for byte)."""
    tree = ast.parse(text)
    lines = text.splitlines(keepends=True)
    offsets = np.concatenate([[0], np.cumsum([len(l.encode()) for l in lines])])
    raw = text.encode()
    spans, docs = [], []
    for node in _docstring_nodes(tree):
        a = offsets[node.lineno - 1] + node.col_offset
        b = offsets[node.end_lineno - 1] + node.end_col_offset
        spans.append((int(a), int(b)))
        docs.append(node.value.value)
    spans.sort()
    kept, pos = [], 0
    for a, b in spans:
        kept.append(raw[pos:a])
        pos = b
    kept.append(raw[pos:])
    return b"".join(kept).decode(), docs


def _read(path) -> str | None:
    try:
        with open(path, "rb") as fh:
            enc, _ = tokenize.detect_encoding(fh.readline)
        with open(path, encoding=enc) as fh:
            return fh.read()
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def _as_bytes(texts) -> np.ndarray:
    joined = "\n\n".join(t.strip("\n") for t in texts if t and t.strip())
    return np.frombuffer(joined.encode("utf-8", errors="replace"), np.uint8).copy()


def _stdlib_parts(root=None):
    """Per stdlib file: (relative path, source without docstrings, docstrings)."""
    out = []
    for rel, full in stdlib_files(root):
        text = _read(full)
        if text is None:
            continue
        try:
            src, docs = split_source(text)
        except (SyntaxError, ValueError):
            continue
        out.append((rel, src, docs))
    return out


def _pydoc_topics():
    from pydoc_data import topics

    return sorted(topics.topics.items())


def general_corpus(parts=None) -> Corpus:
    """English prose: pydoc topics (held out by topic name) + stdlib docstrings (by file)."""
    parts = _stdlib_parts() if parts is None else parts
    train, val, nf = [], [], [0, 0]
    for name, text in _pydoc_topics():
        v = _is_val("pydoc:" + name)
        (val if v else train).append(text)
        nf[v] += 1
    for rel, _, docs in parts:
        if docs:
            v = _is_val(rel)
            (val if v else train).extend(docs)
            nf[v] += 1
    return Corpus("general (CPython prose)", _as_bytes(train), _as_bytes(val), tuple(nf))


def domain_corpus(parts=None) -> Corpus:
    """Python source of the standard library without docstrings (held out by file)."""
    parts = _stdlib_parts() if parts is None else parts
    train, val, nf = [], [], [0, 0]
    for rel, src, _ in parts:
        v = _is_val(rel)
        (val if v else train).append(src)
        nf[v] += 1
    return Corpus("domain (CPython source)", _as_bytes(train), _as_bytes(val), tuple(nf))


def files_corpus(name: str, paths) -> Corpus:
    """A corpus from the user's text files, validation held out by file (at least one file each
    side when there are two or more; a single file is split 95/5 by position)."""
    texts = []
    for p in sorted(map(os.fspath, paths)):
        if not os.path.isfile(p):
            raise InputError(f"--{name}: {p}: no such file")
        with open(p, "rb") as fh:
            texts.append((p, fh.read().decode("utf-8", errors="replace")))
    if not texts:
        raise InputError(f"--{name}: no files given")
    if len(texts) == 1:
        b = _as_bytes([texts[0][1]])
        cut = int(b.size * 0.95)
        corpus = Corpus(name, b[:cut], b[cut:], (1, 1))
    else:
        flags = [_is_val(p) for p, _ in texts]
        if all(flags) or not any(flags):
            flags = [i == len(texts) - 1 for i in range(len(texts))]
        corpus = Corpus(name, _as_bytes([t for (_, t), v in zip(texts, flags) if not v]),
                        _as_bytes([t for (_, t), v in zip(texts, flags) if v]),
                        (flags.count(False), flags.count(True)))
    if corpus.train.size < 4096 or corpus.val.size < 1024:
        raise InputError(f"--{name}: too little text ({corpus.train.size} train / {corpus.val.size} "
                         "validation bytes); give at least a few kB")
    return corpus
