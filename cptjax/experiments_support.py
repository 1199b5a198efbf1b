"""Loaders for the shared real-data sets used by tests and experiments (schedules rebuilt exactly
as the upstream projects define them)."""

from __future__ import annotations

import os
import warnings

from . import _schedules as S
from ._data import load_run

MPL_TRAIN = ("cosine_24000", "constant_24000", "wsdcon_9")
MPL_TEST = ("constant_72000", "cosine_72000", "wsd_20000_24000", "wsdld_20000_24000", "wsdcon_3",
            "wsdcon_18")


def mpl_schedule(name: str):
    """MultiPowerLaw schedules: peak 3e-4, linear warmup over 2160 steps (README of the data)."""
    W, peak = 2160, 3e-4
    if name.startswith("constant"):
        return S.constant(int(name.split("_")[1]), peak, warmup=W)
    if name.startswith("cosine"):
        return S.cosine(int(name.split("_")[1]), peak, warmup=W, final=3e-5)
    if name.startswith("wsdcon"):
        lr = S.constant(16000, peak, warmup=W)
        lr[8000:] = int(name.split("_")[1]) * 1e-5
        return lr
    if name.startswith("wsdld"):
        return S.wsd(24000, peak, warmup=W, decay=4000 / 24000, final=3e-5)
    if name.startswith("wsd"):
        return S.wsd(24000, peak, warmup=W, decay=4000 / 24000, final=3e-5, shape="exp")
    raise ValueError(f"unknown MultiPowerLaw curve {name!r}")


def mpl_run(data_dir, size: str, name: str):
    path = os.path.join(data_dir, "MultiPowerLaw", "loss_curve_repo", f"csv_{size}", f"{name}.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_run(path, schedule=mpl_schedule(name), loss_columns=["loss"])
