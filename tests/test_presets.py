import numpy as np
import pytest

import cptjax
from cptjax._presets import FIG12_WITH_0 as FIG12, FIG19


def test_all_presets_load_and_signs():
    for name in cptjax.PRESETS:
        law = cptjax.preset(name)
        assert law is not None
    for name in ("setting-a", "setting-b", "replay", "size"):
        p = cptjax.preset(name)
        assert p.general.B > 0 > p.domain.B  # inferred signs: general rises, domain falls
    with pytest.raises(ValueError, match="unknown preset 'fig99'"):
        cptjax.preset("fig99")


def test_replay_beta_is_a_least_squares_optimum():
    """The derived beta minimises the stated objective: check against a brute-force grid."""
    for target, k in (("general", 0), ("domain", 1)):
        beta = cptjax.replay_beta(target)
        L0, A, al, C1, C2, B, E, a1, a2 = FIG19[target]
        s = np.linspace(0, 6, 601)

        def sse(b):
            tot = 0.0
            for r, pair in FIG12.items():
                b12, e12, be12 = pair[k][5:]
                mix = 1 - np.exp(-a2 * (1 - r)) if target == "general" else np.exp(a2 * (1 - r)) - 1
                tot += np.sum((B * (1 - (1 + E * s) ** -b) * mix - b12 * (1 - (1 + e12 * s) ** -be12)) ** 2)
            return tot

        grid = np.geomspace(1e-4, 3, 20001)
        best = grid[np.argmin([sse(b) for b in grid])]
        assert beta == pytest.approx(best, rel=1e-3)
        assert cptjax.preset("replay")._asdict()[target].beta == beta
