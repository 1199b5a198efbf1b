#!/usr/bin/env bash
# What a user installs: build the sdist and the wheel, install the wheel (no checkout, no test
# extra) in a fresh venv, and use it from a directory outside the tree.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python -m build --outdir "$work/dist" "$src" >/dev/null
ls "$work/dist"
python3 -m venv "$work/venv"
. "$work/venv/bin/activate"
pip install -q --upgrade pip >/dev/null 2>&1 || true
pip install -q "$work"/dist/cptjax-*.whl pytest
cp "$src/.ci/installed/test_package.py" "$work/"
cd "$work"
CPTJAX_SOURCE="$src" python -m pytest -q -p no:cacheprovider test_package.py
bash "$src/.ci/installed/smoke.sh"
