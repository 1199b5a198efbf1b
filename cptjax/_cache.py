"""JAX's persistent compilation cache for cptjax's kernels."""

from __future__ import annotations

import os

__all__ = ["enable_compilation_cache", "cache_dir"]


def cache_dir() -> str | None:
    """The cache folder: ``CPTJAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/cptjax/jax`` (``~/.cache``);
    ``None`` when ``CPTJAX_NO_CACHE`` is set (not ``0``)."""
    if os.environ.get("CPTJAX_NO_CACHE", "") not in ("", "0"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get("CPTJAX_CACHE_DIR") or os.path.join(base, "cptjax", "jax")


def enable_compilation_cache(folder: str | None = None) -> str | None:
    """Keep compiled kernels on disk so that a new process fits and designs without compiling
    again (a fresh ``fit_batch`` of 1 000 problems: compilation is most of its time). The
    ``cptjax`` command calls it; library users call it once after importing JAX. ``folder``
    defaults to `cache_dir`. Returns the folder, or ``None`` when turned off or not
    writable (then every process compiles, as JAX does by default)."""
    import jax

    folder = folder or cache_dir()
    if folder is None:
        return None
    try:
        os.makedirs(folder, exist_ok=True)
        if not os.access(folder, os.W_OK):
            return None
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder
