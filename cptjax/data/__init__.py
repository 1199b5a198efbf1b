"""Training logs → ``Run``: the readers (CSV, JSONL, Megatron stdout, Hugging Face, Lightning,
TensorBoard, W&B), the LR rebuilt from a schedule where a log lacks it, and the checks on what was
read (every error names the file, column and row)."""

from ._runs import Run, load_run
