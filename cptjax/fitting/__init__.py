"""Fitting a law to runs: the problem (points, areas, masks), the Levenberg–Marquardt solver, the
batched search over starts and basins (``fit``, ``fit_batch``), the statistics and ``FitResult``
(provenance, save/load), and ``load_law`` for fit files and presets."""

from ._batch import fit, fit_batch
from ._lawfile import LawSource, load_law
from ._problem import FitProblem, make_problem
from ._solver import RESULTS, levenberg_marquardt
from ._stats import FitResult, metrics, provenance, unique_names
