"""Integrations with the libraries users already run (each an optional extra):

- `cptjax.integrations.optuna` — the law as an Optuna sampler (``pip install cptjax[optuna]``).
- `cptjax.integrations.hooks` — the live forecast in any training loop (JAX/optax, PyTorch).
- `cptjax.integrations.transformers` — the same as a Hugging Face ``TrainerCallback``
  (``pip install cptjax[transformers]``).
- `cptjax.integrations.lightning` — the same as a PyTorch Lightning ``Callback``
  (``pip install cptjax[lightning]``).
"""
