"""The laws: the areas S1/S2 of a schedule (the one place the recurrence lives), the PT/CPT law
classes and their registry, the published presets, and the analyses built on a law pair.

Data flows in from ``cptjax.schedules`` (LR arrays); the fitting, planning, tuning and forecasting
rooms import these names, never this room's private modules.
"""

from ._analysis import critical_point, loss_potential, optimal_vs_weight, turning_length
from ._areas import (Areas, areas, areas_numpy, check_lam, check_schedule, continue_areas, momentum,
                     pt_state, widen)
from ._laws import (LAM, LAWS, AreaLaw, CPTLaw, ScheduleLaw, LawPair, LossPair, MPLCPTLaw, MultiPowerLaw, OpenCPTLaw, Param,
                    PTLaw, ReplayCPTLaw, SharedCPTLaw, SizeCPTLaw, check_law, law_from_dict, predict,
                    replay_factors, warmup_end)
from ._presets import PRESETS, preset, preset_data_range, preset_lr_max, replay_beta
