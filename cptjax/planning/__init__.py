"""Planning with a fitted law pair: schedule design by optax (``design``), the baselines and Pareto
front, parameter draws and P(win) (``law_draws``, ``compare``), and the reports a command writes
(``design_report``, ``prediction_report``)."""

from ._design import (Evaluation, Plan, baselines, cap_cov, compare, cpt_losses, design, evaluate,
                      law_draws, optax_schedule, param_draws, pareto, pt_states)
from ._prediction import PredictionReport, default_steps, prediction_report, run_errors
from ._report import DESIGN_FILES, DesignReport, design_report
