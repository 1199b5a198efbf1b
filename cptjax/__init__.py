"""cptjax: predict, fit and optimise LLM continual pre-training loss curves in JAX."""

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
from ._laws import OpenCPTLaw as OpenCPTLaw
from ._laws import PTLaw as PTLaw
from ._laws import ReplayCPTLaw as ReplayCPTLaw
from ._laws import SizeCPTLaw as SizeCPTLaw
from ._laws import law_from_dict as law_from_dict
from ._laws import predict as predict
from ._presets import PRESETS as PRESETS
from ._presets import preset as preset
from ._presets import replay_beta as replay_beta

__version__ = "0.1.0"
from ._data import DataError as DataError
from ._data import DataWarning as DataWarning
from ._data import Run as Run
from ._data import load_run as load_run
from ._fit import FitResult as FitResult
from ._fit import fit as fit
from ._fit import fit_batch as fit_batch
from ._fit import make_problem as make_problem
from ._design import Plan as Plan
from ._design import baselines as baselines
from ._design import design as design
from ._design import evaluate as evaluate
from ._design import optax_schedule as optax_schedule
from ._design import pareto as pareto
from ._analysis import critical_point as critical_point
from ._analysis import loss_potential as loss_potential
from ._analysis import optimal_vs_weight as optimal_vs_weight
from ._analysis import turning_length as turning_length
