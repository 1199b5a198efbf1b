"""Forecasts of a run while it trains: "if I cool down now (or at step k), the final loss will be X",
with a band, for PT runs (``forecast``, ``watch``) and CPT runs (``forecast_cpt``)."""

from ._forecast import COOLDOWN_SHAPES, Forecast, forecast, watch
from ._forecast_cpt import forecast_cpt
from ._realized import RealizedLaw, fit_realized, realized_annealing
