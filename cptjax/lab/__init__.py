"""The lab: a small GPT trained on real text (general: CPython's standard library prose and code;
domain: another corpus), PT then CPT branches, to test the laws' advice in real training."""

from ._corpora import Corpus, domain_corpus, files_corpus, general_corpus, stdlib_files
from ._train import (DEFAULT_STUDY, MODELS, QUICK_STUDY, ModelConfig, RunSpec, Study, init_params,
                     load_corpora, load_study, loss_fn, parse_study, run_study, train_run)
