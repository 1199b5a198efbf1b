"""The tuner: an ask-and-tell hyper-parameter optimiser whose model is the law (``Tuner``), and the
tune study that runs it on the lab trainer or a user's command (``run_tune_study``)."""

from ._study import TUNE_EXAMPLE, load_tune_study, run_tune_study
from ._tuner import LAMS, Recipe, Recommendation, Space, Trial, Tuner
