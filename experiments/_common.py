"""Shared helpers for the experiment scripts: arguments, output folder, JSON + PNG writing."""

import argparse
import json
import os
import pathlib

import jax

jax.config.update("jax_enable_x64", True)

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402,F401
import numpy as np  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = pathlib.Path(os.environ.get("CPTJAX_DATA", ROOT.parent / "shared" / "data"))


def args(doc: str):
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--quick", action="store_true", help="CI-sized run (seconds, fewer points)")
    ap.add_argument("--out", default=str(ROOT / "experiments" / "results"), help="output folder")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    return a


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (np.ndarray, jax.Array)):
        return _plain(np.asarray(x).tolist())
    if isinstance(x, (np.floating, float)):
        return float(x) if np.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def save(out, name, result, fig=None):
    from cptjax.files import atomic_write

    atomic_write(os.path.join(out, name + ".json"), json.dumps(_plain(result), indent=1))
    if fig is not None:
        import io

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
        atomic_write(os.path.join(out, name + ".png"), buf.getvalue())
        plt.close(fig)
    print(f"wrote {out}/{name}.json" + (f" and {name}.png" if fig is not None else ""))
