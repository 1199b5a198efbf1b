"""Laws by name or file: ``load_law(spec)`` reads a preset, a law JSON, a fit file, or a pair of
fit files ``GENERAL.json,DOMAIN.json``, checked completely when read, with what the design needs
to know about them (covariances, the range of the data they were fitted on)."""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

import numpy as np

from ..laws import LawPair, law_from_dict
from ..laws import preset, preset_data_range, preset_lr_max
from ._stats import FitResult
from ..errors import InputError
from ..files import read_text

__all__ = ["load_law", "LawSource"]


class LawSource(NamedTuple):
    """A law with what its source says about it (``load_law(spec, details=True)``).

    ``cov``: the parameter covariance of a fit file (``None`` for a preset or a bare law), or a
    ``(general, domain)`` pair of them for a pair; ``data_range``: joined steps of the longest run
    it was fitted on; ``lr_max``: the largest LR in those runs; ``area_range``: the CPT-area span
    of the fitted runs (per law of a pair); ``name``: the spec it came from; ``column``: the loss
    column of a fit file."""

    law: Any
    cov: Any
    data_range: int | None
    lr_max: float | None
    area_range: Any
    name: str
    column: str | None = None  # the loss column a fit file was fitted to


def _one(spec) -> LawSource:
    if not (spec.endswith(".json") or os.path.exists(spec)):
        law = preset(spec)
        none = (None, None) if isinstance(law, LawPair) else None
        return LawSource(law, none, preset_data_range(spec), preset_lr_max(spec), none, spec)
    text = read_text(spec, "law file", limit=64 << 20)
    try:
        d = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise InputError(f"{spec}: not valid JSON ({str(e)[:200]})") from None
    if isinstance(d, dict) and isinstance(d.get("law"), dict):  # a fit file
        fit = FitResult.from_dict(d, source=spec)
        if fit.status == "non-finite" or not all(np.isfinite(list(fit.params.values()))):
            raise InputError(f"{spec}: this fit did not reach finite parameters (status {fit.status}): "
                             "refit before using it as a law")
        p = fit.provenance
        cov = fit.cov if np.all(np.isfinite(fit.cov)) else None
        return LawSource(fit.law, cov, p.get("data_range"),
                         p["lr_range"][1] if p.get("lr_range") else None, p.get("area_range"), spec, fit.column)
    try:
        law = law_from_dict(d)
    except (ValueError, TypeError, RecursionError) as e:
        raise InputError(f"{spec}: {e}") from None
    none = (None, None) if isinstance(law, LawPair) else None
    return LawSource(law, none, None, None, none, spec)


def load_law(spec: str, *, details: bool = False):
    """A law from a preset name (``setting-a``, ``replay``, …), a JSON file (a fit file written by
    ``cptjax fit`` / ``FitResult.save``, or a law's ``to_dict``), or a general/domain pair from two
    fit files ``"GENERAL.json,DOMAIN.json"``.

    Returns the law (or `LawPair`); with ``details=True`` a `LawSource` that also
    carries the covariances and the fitted data's range. Raises ``InputError`` naming the file and
    key for anything malformed.

    Examples:
        >>> load_law("setting-a").general.kind
        'cpt'
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise InputError(f"load_law: give a preset name or a file path, got {type(spec).__name__}")
    spec = os.fspath(spec)
    if "," in spec:
        parts = [p.strip() for p in spec.split(",")]
        if len(parts) != 2 or not all(parts):
            raise InputError(f"{spec}: give one law, or two fit files GENERAL.json,DOMAIN.json")
        g, d = (_one(p) for p in parts)
        if isinstance(g.law, LawPair) or isinstance(d.law, LawPair):
            raise InputError(f"{spec}: each of the two files must hold one law")
        _check_order(parts, (g.column, d.column), spec)
        pick = lambda a, b: min((v for v in (a, b) if v), default=None)
        src = LawSource(LawPair(g.law, d.law), (g.cov, d.cov), pick(g.data_range, d.data_range),
                        pick(g.lr_max, d.lr_max), (g.area_range, d.area_range), spec)
        _check_pair(src.law, spec)
    else:
        src = _one(spec)
        if isinstance(src.law, LawPair):
            _check_pair(src.law, spec)
    return src if details else src.law


def _check_order(parts, columns, spec):
    """GENERAL.json,DOMAIN.json: not one file twice, and not the other way round (a fit file
    records the loss column it was fitted to)."""
    if os.path.exists(parts[0]) and os.path.exists(parts[1]) and os.path.samefile(parts[0], parts[1]):
        raise InputError(f"{spec}: the same fit file twice; give the general loss's fit, then the domain loss's")
    g, d = (str(c or "").lower() for c in columns)
    if "domain" in g and "general" in d:
        raise InputError(f"{spec}: the first file is fitted to {g!r} and the second to {d!r}: the order "
                         "is GENERAL.json,DOMAIN.json")


def _check_pair(pair, spec):
    for name, l in zip(("general", "domain"), pair):
        if l.kind in ("pt", "mpl"):
            raise InputError(f"{spec}: the {name} law is a pre-training law ({l.kind!r}); a general/"
                             "domain pair needs CPT laws (cpt, cpt-shared, cpt-mpl, replay, size, open)")
