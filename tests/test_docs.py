"""Every code example of README.md and docs/ runs, and the documentation builds in strict mode.

A page's fenced ``python`` blocks run in order in one namespace, and its ``console`` blocks' ``$ ``
lines as commands, all in one fresh folder per page: a later block may use what an earlier one
wrote. A ``cptjax ...`` line runs in this process (``cli.main``, exactly what the console script
calls, sharing the compiled kernels of the page's Python blocks); the installed console script
itself is exercised by .ci/installed.sh. Other fences (``text``, ``toml``) are not examples.
"""

import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

from conftest import need_module

from cptjax import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)


def blocks(page: pathlib.Path):
    """(language, code, line) of each fenced block of the page."""
    text = page.read_text(encoding="utf-8")
    return [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]


def test_the_collector_sees_the_examples():
    # the README shows each job in Python, and a page's blocks are found whole
    langs = [lang for lang, _, _ in blocks(ROOT / "README.md")]
    assert langs.count("python") >= 5 and "console" in langs, langs
    code = {lang: c for lang, c, _ in blocks(ROOT / "docs" / "guide" / "laws.md")}
    assert code["python"].startswith("import jax") and code["python"].rstrip().endswith("atol=1e-7)")


def run_page(page: pathlib.Path, folder: pathlib.Path, env: dict) -> None:
    """Run the page's examples in ``folder`` (the current directory)."""
    namespace = {"__name__": "__main__"}
    for lang, code, line in blocks(page):
        where = f"{page.relative_to(ROOT)}:{line}"
        if lang == "python":
            exec(compile(code, where, "exec"), namespace)
        elif lang == "console":
            for cmd in (l[2:] for l in code.splitlines() if l.startswith("$ ")):
                argv = shlex.split(cmd)
                if argv[0] == "cptjax":
                    assert cli.main(argv[1:]) == 0, f"{where}: {cmd}"
                    continue
                out = subprocess.run(cmd, shell=True, cwd=folder, env=env, capture_output=True, text=True,
                                     timeout=600)
                assert out.returncode == 0, f"{where}: {cmd}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"


def test_examples_run(tmp_path, monkeypatch):
    # One test, the pages in turn in one process: pages that show the same job with the same shapes
    # (the README and the guide) compile its kernels once. A failure names the page and line.
    monkeypatch.setenv("MPLBACKEND", "Agg")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    ran = 0
    for page in PAGES:
        if not any(lang in ("python", "console") for lang, _, _ in blocks(page)):
            continue
        folder = tmp_path / page.relative_to(ROOT).with_suffix("").as_posix().replace("/", "-")
        folder.mkdir()
        monkeypatch.chdir(folder)
        run_page(page, folder, env)
        ran += 1
    assert ran >= 8, ran


def test_docs_build_strict(tmp_path):
    need_module("mkdocs")
    need_module("mkdocstrings")
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"),
                          "-d", str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    html = (tmp_path / "site" / "reference" / "fitting" / "index.html").read_text(encoding="utf-8")
    assert "fit_batch" in html and "Levenberg" in html  # the reference is built from the docstrings


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in (ROOT / "docs").rglob("*.md"):
        assert str(page.relative_to(ROOT / "docs")) in nav, page
