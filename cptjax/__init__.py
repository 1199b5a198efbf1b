"""cptjax: predict, fit and optimise LLM continual pre-training loss curves in JAX.

Public names are imported on first use (PEP 562), so that ``import cptjax.cli`` starts in
milliseconds and the command can install its signal handling before JAX loads.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# name -> (module, attribute); attribute None: the module itself
_EXPORTS = {
    "schedules": ("._schedules", None),
    "Areas": ("._areas", 'Areas'),
    "areas": ("._areas", 'areas'),
    "momentum": ("._areas", 'momentum'),
    "CPTLaw": ("._laws", 'CPTLaw'),
    "LAWS": ("._laws", 'LAWS'),
    "Param": ("._laws", 'Param'),
    "SharedCPTLaw": ("._laws", 'SharedCPTLaw'),
    "replay_factors": ("._laws", 'replay_factors'),
    "LawPair": ("._laws", 'LawPair'),
    "LossPair": ("._laws", 'LossPair'),
    "MultiPowerLaw": ("._laws", 'MultiPowerLaw'),
    "MPLCPTLaw": ("._laws", 'MPLCPTLaw'),
    "OpenCPTLaw": ("._laws", 'OpenCPTLaw'),
    "PTLaw": ("._laws", 'PTLaw'),
    "ReplayCPTLaw": ("._laws", 'ReplayCPTLaw'),
    "SizeCPTLaw": ("._laws", 'SizeCPTLaw'),
    "law_from_dict": ("._laws", 'law_from_dict'),
    "predict": ("._laws", 'predict'),
    "warmup_end": ("._laws", 'warmup_end'),
    "PRESETS": ("._presets", 'PRESETS'),
    "preset": ("._presets", 'preset'),
    "replay_beta": ("._presets", 'replay_beta'),
    "DataError": (".errors", 'DataError'),
    "DataWarning": (".errors", 'DataWarning'),
    "InputError": (".errors", 'InputError'),
    "InputTypeError": (".errors", 'InputTypeError'),
    "FitError": (".errors", 'FitError'),
    "errors": (".errors", None),
    "Run": ("._data", 'Run'),
    "load_run": ("._data", 'load_run'),
    "FitResult": ("._stats", 'FitResult'),
    "fit": ("._batch", 'fit'),
    "fit_batch": ("._batch", 'fit_batch'),
    "make_problem": ("._fit", 'make_problem'),
    "Plan": ("._design", 'Plan'),
    "baselines": ("._design", 'baselines'),
    "design": ("._design", 'design'),
    "evaluate": ("._design", 'evaluate'),
    "Evaluation": ("._design", 'Evaluation'),
    "check_law": ("._laws", 'check_law'),
    "optax_schedule": ("._design", 'optax_schedule'),
    "pareto": ("._design", 'pareto'),
    "law_draws": ("._design", 'law_draws'),
    "compare": ("._design", 'compare'),
    "critical_point": ("._analysis", 'critical_point'),
    "loss_potential": ("._analysis", 'loss_potential'),
    "optimal_vs_weight": ("._analysis", 'optimal_vs_weight'),
    "turning_length": ("._analysis", 'turning_length'),
    "lab": ("._lab", None),
    "files": (".files", None),
    "metrics": ("._stats", 'metrics'),
    "load_law": ("._lawfile", 'load_law'),
    "LawSource": ("._lawfile", 'LawSource'),
    "design_report": ("._report", 'design_report'),
    "DesignReport": ("._report", 'DesignReport'),
    "DESIGN_FILES": ("._report", 'DESIGN_FILES'),
    "prediction_report": ("._prediction", 'prediction_report'),
    "PredictionReport": ("._prediction", 'PredictionReport'),
    "run_errors": ("._prediction", 'run_errors'),
    "plot_fit": ("._plot", 'plot_fit'),
    "enable_compilation_cache": ("._cache", 'enable_compilation_cache'),
    "Tuner": ("._tune", 'Tuner'),
    "Recipe": ("._tune", 'Recipe'),
    "Space": ("._tune", 'Space'),
    "Trial": ("._tune", 'Trial'),
    "Recommendation": ("._tune", 'Recommendation'),
    "LAMS": ("._tune", 'LAMS'),
    "load_tune_study": ("._tune_study", 'load_tune_study'),
    "forecast": ("._forecast", 'forecast'),
    "forecast_cpt": ("._forecast_cpt", 'forecast_cpt'),
    "watch": ("._forecast", 'watch'),
    "Forecast": ("._forecast", 'Forecast'),
    "run_tune_study": ("._tune_study", 'run_tune_study'),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cptjax' has no attribute {name!r}")
    module, attr = _EXPORTS[name]
    value = importlib.import_module(module, __name__)
    value = value if attr is None else getattr(value, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # the same names, for static analysis (tests/test_api.py keeps them in step)
    from . import _schedules as schedules
    from ._areas import Areas as Areas
    from ._areas import areas as areas
    from ._areas import momentum as momentum
    from ._laws import CPTLaw as CPTLaw
    from ._laws import LAWS as LAWS
    from ._laws import Param as Param
    from ._laws import SharedCPTLaw as SharedCPTLaw
    from ._laws import replay_factors as replay_factors
    from ._laws import LawPair as LawPair
    from ._laws import LossPair as LossPair
    from ._laws import MultiPowerLaw as MultiPowerLaw
    from ._laws import MPLCPTLaw as MPLCPTLaw
    from ._laws import OpenCPTLaw as OpenCPTLaw
    from ._laws import PTLaw as PTLaw
    from ._laws import ReplayCPTLaw as ReplayCPTLaw
    from ._laws import SizeCPTLaw as SizeCPTLaw
    from ._laws import law_from_dict as law_from_dict
    from ._laws import predict as predict
    from ._laws import warmup_end as warmup_end
    from ._presets import PRESETS as PRESETS
    from ._presets import preset as preset
    from ._presets import replay_beta as replay_beta
    from .errors import DataError as DataError
    from .errors import DataWarning as DataWarning
    from .errors import InputError as InputError
    from .errors import InputTypeError as InputTypeError
    from .errors import FitError as FitError
    from . import errors as errors
    from ._data import Run as Run
    from ._data import load_run as load_run
    from ._stats import FitResult as FitResult
    from ._batch import fit as fit
    from ._batch import fit_batch as fit_batch
    from ._fit import make_problem as make_problem
    from ._design import Plan as Plan
    from ._design import baselines as baselines
    from ._design import design as design
    from ._design import evaluate as evaluate
    from ._design import Evaluation as Evaluation
    from ._laws import check_law as check_law
    from ._design import optax_schedule as optax_schedule
    from ._design import pareto as pareto
    from ._design import law_draws as law_draws
    from ._design import compare as compare
    from ._analysis import critical_point as critical_point
    from ._analysis import loss_potential as loss_potential
    from ._analysis import optimal_vs_weight as optimal_vs_weight
    from ._analysis import turning_length as turning_length
    from . import _lab as lab
    from . import files as files
    from ._stats import metrics as metrics
    from ._lawfile import load_law as load_law
    from ._lawfile import LawSource as LawSource
    from ._report import design_report as design_report
    from ._report import DesignReport as DesignReport
    from ._report import DESIGN_FILES as DESIGN_FILES
    from ._prediction import prediction_report as prediction_report
    from ._prediction import PredictionReport as PredictionReport
    from ._prediction import run_errors as run_errors
    from ._plot import plot_fit as plot_fit
    from ._cache import enable_compilation_cache as enable_compilation_cache
    from ._tune import Tuner as Tuner
    from ._tune import Recipe as Recipe
    from ._tune import Space as Space
    from ._tune import Trial as Trial
    from ._tune import Recommendation as Recommendation
    from ._tune import LAMS as LAMS
    from ._tune_study import load_tune_study as load_tune_study
    from ._forecast import forecast as forecast
    from ._forecast_cpt import forecast_cpt as forecast_cpt
    from ._forecast import watch as watch
    from ._forecast import Forecast as Forecast
    from ._tune_study import run_tune_study as run_tune_study
