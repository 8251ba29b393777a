"""Data: ir_datasets ids, local BEIR folders, the built-in set, caps, negatives, leakage."""

from maw_bench.data.bundle import DatasetBundle
from maw_bench.data.leakage import check_leakage
from maw_bench.data.negatives import TrainingExample, build_examples
from maw_bench.data.registry import MSMARCO_EVAL, MSMARCO_TRAIN, load_bundle
from maw_bench.data.sampling import apply_caps

__all__ = [
    "DatasetBundle",
    "MSMARCO_EVAL",
    "MSMARCO_TRAIN",
    "TrainingExample",
    "apply_caps",
    "build_examples",
    "check_leakage",
    "load_bundle",
]
