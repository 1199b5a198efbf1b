"""Integrations with the libraries users already run (each an optional extra):

- :mod:`cptjax.integrations.optuna` — the law as an Optuna sampler (``pip install cptjax[optuna]``).
"""
