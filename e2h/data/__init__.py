"""Data sources -> records: MATH (12k + MATH500), PRM800K, ProcessBench, splits, and ``e2h data prepare``.

Every loader takes a local path or a Hugging Face hub id and validates each row, so a malformed input fails
with its file, line and field named.
"""

from e2h.data.math import load_math500, load_math_train
from e2h.data.prm800k import RatedStep, iter_rated_steps, prm_examples, sft_examples
from e2h.data.processbench import ProcessBenchItem, load_processbench
from e2h.data.splits import HeldOut, select_levels, split_validation

__all__ = ["load_math_train", "load_math500", "RatedStep", "iter_rated_steps", "prm_examples", "sft_examples",
           "ProcessBenchItem", "load_processbench", "HeldOut", "select_levels", "split_validation"]
