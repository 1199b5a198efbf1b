import os
import pathlib

import jax
import pytest

jax.config.update("jax_enable_x64", True)
# The suite's own compilation cache (commands run in-process and as subprocesses enable it): an
# entry left in ~/.cache by another JAX configuration or a concurrent writer aborted the process
# when read (XLA's deserializer fails hard), so the tests never read one they did not write.
if "CPTJAX_CACHE_DIR" not in os.environ and os.environ.get("CPTJAX_NO_CACHE", "") in ("", "0"):
    import tempfile

    os.environ["CPTJAX_CACHE_DIR"] = tempfile.mkdtemp(prefix="cptjax-test-cache-")

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"
DATA = SHARED / "data"


def need_data():
    """Skip when ../shared/data is absent, except under CI (CI=true), where it must be there."""
    if not DATA.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the shared data folder {DATA} is missing")
        pytest.skip(f"shared data not found at {DATA}")
    return DATA


@pytest.fixture
def data_dir():
    return need_data()


def need_module(name):
    """Import an optional extra's module; skip when it is not installed, except under CI
    (CI=true), where the test extra installs it and it must be there."""
    if os.environ.get("CI") == "true":
        import importlib

        return importlib.import_module(name)
    return pytest.importorskip(name)


def need_installed(name):
    """Like need_module, without importing it into this process (PyTorch stays out of pytest's)."""
    import importlib.util

    if importlib.util.find_spec(name) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {name} is not installed (the test extra installs it)")
        pytest.skip(f"{name} is not installed")


@pytest.fixture(autouse=True, scope="module")
def _fresh_jax_caches():
    """Drop JAX's in-memory compiled executables after each test module: the suite compiles
    thousands of kernels, and one pytest process holding all of them aborted inside XLA's compiler
    near the end of a fresh-clone run (never in a module run alone)."""
    yield
    jax.clear_caches()
