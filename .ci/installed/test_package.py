"""The installed package is whole: every module of the source tree is in it and imports, every
public name resolves, the version is one. Run by .ci/installed.sh from outside the tree, in a
fresh venv holding only the wheel (CPTJAX_SOURCE names the checkout it was built from)."""

import importlib
import os
import pathlib
import pkgutil
import re
import subprocess
import sys

import pytest

import cptjax

SOURCE = pathlib.Path(os.environ["CPTJAX_SOURCE"])
OPTIONAL = {"cptjax.integrations.optuna": "optuna", "cptjax.integrations.transformers": "transformers",
            "cptjax.integrations.lightning": "lightning"}  # extras, not installed here


def test_not_the_checkout():
    assert SOURCE.resolve() not in pathlib.Path(cptjax.__file__).resolve().parents, cptjax.__file__


def test_every_source_module_is_installed():
    root = pathlib.Path(cptjax.__file__).parent
    want = {p.relative_to(SOURCE).with_suffix("").as_posix() for p in (SOURCE / "cptjax").rglob("*.py")}
    have = {p.relative_to(root.parent).with_suffix("").as_posix() for p in root.rglob("*.py")}
    assert want - have == set(), f"missing from the wheel: {sorted(want - have)}"
    assert (root / "py.typed").is_file()


def test_every_module_imports():
    names = [m.name for m in pkgutil.walk_packages(cptjax.__path__, "cptjax.")]
    assert {"cptjax.laws", "cptjax.fitting", "cptjax.tuning", "cptjax.forecasting"} <= set(names)
    for name in names:
        if name in OPTIONAL:
            continue
        importlib.import_module(name)


@pytest.mark.parametrize("name", sorted(cptjax.__all__))
def test_public_name_resolves(name):
    assert getattr(cptjax, name) is not None


def test_one_version():
    pyproject = (SOURCE / "pyproject.toml").read_text()
    assert re.search(r'^dynamic = \["version"\]', pyproject, re.M), "the version lives in cptjax/__init__.py"
    out = subprocess.run(["cptjax", "--version"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"cptjax {cptjax.__version__}"
    from importlib.metadata import version

    assert version("cptjax") == cptjax.__version__
