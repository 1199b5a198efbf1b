"""Loaders for the shared real-data sets used by tests and experiments (schedules rebuilt exactly
as the upstream projects define them)."""

from __future__ import annotations

import csv
import gzip
import os
import warnings

import numpy as np

from cptjax import schedules as S
from cptjax import Run, load_run

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


OLMO_SIZES = {"190M": 190354176, "370M": 371262464, "760M": 758220288, "1B": 1279395840,
              "3B": 3169537280}
OLMO_DOMAINS = ("c4_en", "dolma_books", "dolma_common-crawl", "dolma_pes2o", "dolma_reddit",
                "dolma_stack", "dolma_wiki", "ice", "m2d2_s2orc", "pile", "wikitext_103")


def _olmo_file(data_dir, kind, size, mult):
    folder = {"cosine": "peteish-moreeval", "const": "peteish-moreeval-const",
              "decay": "peteish-moreeval-decay"}[kind]
    return os.path.join(data_dir, "OLMo-ladder-peteish", "data", folder, f"{size}-{mult}xC.csv.gz")


def olmo_run(data_dir, size: str, kind: str, mult: str, min_step: int = 1000):
    """An OLMo ladder run with its schedule rebuilt from the upstream definitions (README of the
    data): warmup round(N / batch_tokens) steps; cosine to 0.1·peak at the last step; constant;
    or the WSD cooldown branch (constant, then linear to 0.1·peak over the last 10% of steps,
    with ``n_pt`` = the step where the decay starts, so the branch is a 'CPT' continuation of the
    constant run with no data shift). Points before ``min_step`` (the warmup transient, where
    the constant runs have no log) are left out."""
    path = _olmo_file(data_dir, kind, size, mult)
    cols = [f"eval/{d}-validation/CrossEntropyLoss" for d in OLMO_DOMAINS]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = load_run(path, loss_columns=cols)  # also reads the logged LR (sparse)
    peak = float(np.nanmax(raw.lr))
    with gzip.open(path, "rt") as fh:
        r = csv.DictReader(fh)
        row = next(r)
        batch = float(row["batch_size_in_tokens"])
    warm = int(round(OLMO_SIZES[size] / batch))
    T = int(raw.steps.max())
    n_pt = T
    if kind == "cosine":
        lr = S.cosine(T, peak, warmup=warm, final=0.1 * peak)
    elif kind == "const":
        lr = S.constant(T, peak, warmup=warm)
    else:
        n_decay = int(round(0.1 * T))
        lr = S.wsd(T, peak, warmup=warm, decay=n_decay / T, final=0.1 * peak)
        n_pt = T - n_decay
    early = raw.steps < min_step
    losses = {d: np.where(early, np.nan, raw.losses[c]) for d, c in zip(OLMO_DOMAINS, cols)}
    # how well the rebuilt schedule matches the logged LR
    logged = ~np.isnan(raw.lr[raw.steps - 1])
    err = float(np.max(np.abs(lr[raw.steps - 1] - raw.lr[raw.steps - 1])) / peak) if logged.any() else float("nan")
    return Run(f"{size}-{kind}-{mult}xC", lr, n_pt, raw.steps, losses, report={"lr_max_rel_error": err})
