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
    "schedules": (".schedules", None),
    "Areas": (".laws", 'Areas'),
    "areas": (".laws", 'areas'),
    "momentum": (".laws", 'momentum'),
    "AreaLaw": (".laws", 'AreaLaw'),
    "ScheduleLaw": (".laws", 'ScheduleLaw'),
    "CPTLaw": (".laws", 'CPTLaw'),
    "LAWS": (".laws", 'LAWS'),
    "Param": (".laws", 'Param'),
    "SharedCPTLaw": (".laws", 'SharedCPTLaw'),
    "replay_factors": (".laws", 'replay_factors'),
    "LawPair": (".laws", 'LawPair'),
    "LossPair": (".laws", 'LossPair'),
    "MultiPowerLaw": (".laws", 'MultiPowerLaw'),
    "MPLCPTLaw": (".laws", 'MPLCPTLaw'),
    "OpenCPTLaw": (".laws", 'OpenCPTLaw'),
    "PTLaw": (".laws", 'PTLaw'),
    "ReplayCPTLaw": (".laws", 'ReplayCPTLaw'),
    "SizeCPTLaw": (".laws", 'SizeCPTLaw'),
    "law_from_dict": (".laws", 'law_from_dict'),
    "predict": (".laws", 'predict'),
    "warmup_end": (".laws", 'warmup_end'),
    "PRESETS": (".laws", 'PRESETS'),
    "preset": (".laws", 'preset'),
    "replay_beta": (".laws", 'replay_beta'),
    "DataError": (".errors", 'DataError'),
    "DataWarning": (".errors", 'DataWarning'),
    "InputError": (".errors", 'InputError'),
    "InputTypeError": (".errors", 'InputTypeError'),
    "FitError": (".errors", 'FitError'),
    "errors": (".errors", None),
    "Run": (".data", 'Run'),
    "load_run": (".data", 'load_run'),
    "FitResult": (".fitting", 'FitResult'),
    "fit": (".fitting", 'fit'),
    "fit_batch": (".fitting", 'fit_batch'),
    "make_problem": (".fitting", 'make_problem'),
    "Plan": (".planning", 'Plan'),
    "baselines": (".planning", 'baselines'),
    "design": (".planning", 'design'),
    "evaluate": (".planning", 'evaluate'),
    "Evaluation": (".planning", 'Evaluation'),
    "check_law": (".laws", 'check_law'),
    "optax_schedule": (".planning", 'optax_schedule'),
    "pareto": (".planning", 'pareto'),
    "law_draws": (".planning", 'law_draws'),
    "compare": (".planning", 'compare'),
    "critical_point": (".laws", 'critical_point'),
    "loss_potential": (".laws", 'loss_potential'),
    "optimal_vs_weight": (".laws", 'optimal_vs_weight'),
    "turning_length": (".laws", 'turning_length'),
    "lab": (".lab", None),
    "files": (".files", None),
    "metrics": (".fitting", 'metrics'),
    "load_law": (".fitting", 'load_law'),
    "LawSource": (".fitting", 'LawSource'),
    "design_report": (".planning", 'design_report'),
    "DesignReport": (".planning", 'DesignReport'),
    "DESIGN_FILES": (".planning", 'DESIGN_FILES'),
    "prediction_report": (".planning", 'prediction_report'),
    "PredictionReport": (".planning", 'PredictionReport'),
    "run_errors": (".planning", 'run_errors'),
    "plot_fit": (".plotting", 'plot_fit'),
    "enable_compilation_cache": ("._cache", 'enable_compilation_cache'),
    "Tuner": (".tuning", 'Tuner'),
    "Recipe": (".tuning", 'Recipe'),
    "Space": (".tuning", 'Space'),
    "Trial": (".tuning", 'Trial'),
    "Recommendation": (".tuning", 'Recommendation'),
    "LAMS": (".tuning", 'LAMS'),
    "load_tune_study": (".tuning", 'load_tune_study'),
    "forecast": (".forecasting", 'forecast'),
    "forecast_cpt": (".forecasting", 'forecast_cpt'),
    "watch": (".forecasting", 'watch'),
    "Forecast": (".forecasting", 'Forecast'),
    "RealizedLaw": (".forecasting", 'RealizedLaw'),
    "realized_annealing": (".forecasting", 'realized_annealing'),
    "run_tune_study": (".tuning", 'run_tune_study'),
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
    from . import schedules as schedules
    from .laws import Areas as Areas
    from .laws import areas as areas
    from .laws import momentum as momentum
    from .laws import AreaLaw as AreaLaw
    from .laws import ScheduleLaw as ScheduleLaw
    from .laws import CPTLaw as CPTLaw
    from .laws import LAWS as LAWS
    from .laws import Param as Param
    from .laws import SharedCPTLaw as SharedCPTLaw
    from .laws import replay_factors as replay_factors
    from .laws import LawPair as LawPair
    from .laws import LossPair as LossPair
    from .laws import MultiPowerLaw as MultiPowerLaw
    from .laws import MPLCPTLaw as MPLCPTLaw
    from .laws import OpenCPTLaw as OpenCPTLaw
    from .laws import PTLaw as PTLaw
    from .laws import ReplayCPTLaw as ReplayCPTLaw
    from .laws import SizeCPTLaw as SizeCPTLaw
    from .laws import law_from_dict as law_from_dict
    from .laws import predict as predict
    from .laws import warmup_end as warmup_end
    from .laws import PRESETS as PRESETS
    from .laws import preset as preset
    from .laws import replay_beta as replay_beta
    from .errors import DataError as DataError
    from .errors import DataWarning as DataWarning
    from .errors import InputError as InputError
    from .errors import InputTypeError as InputTypeError
    from .errors import FitError as FitError
    from . import errors as errors
    from .data import Run as Run
    from .data import load_run as load_run
    from .fitting import FitResult as FitResult
    from .fitting import fit as fit
    from .fitting import fit_batch as fit_batch
    from .fitting import make_problem as make_problem
    from .planning import Plan as Plan
    from .planning import baselines as baselines
    from .planning import design as design
    from .planning import evaluate as evaluate
    from .planning import Evaluation as Evaluation
    from .laws import check_law as check_law
    from .planning import optax_schedule as optax_schedule
    from .planning import pareto as pareto
    from .planning import law_draws as law_draws
    from .planning import compare as compare
    from .laws import critical_point as critical_point
    from .laws import loss_potential as loss_potential
    from .laws import optimal_vs_weight as optimal_vs_weight
    from .laws import turning_length as turning_length
    from . import _lab as lab
    from . import files as files
    from .fitting import metrics as metrics
    from .fitting import load_law as load_law
    from .fitting import LawSource as LawSource
    from .planning import design_report as design_report
    from .planning import DesignReport as DesignReport
    from .planning import DESIGN_FILES as DESIGN_FILES
    from .planning import prediction_report as prediction_report
    from .planning import PredictionReport as PredictionReport
    from .planning import run_errors as run_errors
    from .plotting import plot_fit as plot_fit
    from ._cache import enable_compilation_cache as enable_compilation_cache
    from .tuning import Tuner as Tuner
    from .tuning import Recipe as Recipe
    from .tuning import Space as Space
    from .tuning import Trial as Trial
    from .tuning import Recommendation as Recommendation
    from .tuning import LAMS as LAMS
    from .tuning import load_tune_study as load_tune_study
    from .forecasting import forecast as forecast
    from .forecasting import forecast_cpt as forecast_cpt
    from .forecasting import watch as watch
    from .forecasting import Forecast as Forecast
    from .forecasting import RealizedLaw as RealizedLaw
    from .forecasting import realized_annealing as realized_annealing
    from .tuning import run_tune_study as run_tune_study
