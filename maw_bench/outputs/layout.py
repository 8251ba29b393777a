"""The output layout, in one place: the file names maw-bench writes and reads back, and the reference arm.

Commands, reports and checks name these constants, never the strings, so a folder written by one
command is found by every other (``report``, ``study``, ``sweep``, the ownership check of
``outputs/folders.py``).
"""

from __future__ import annotations

RUN_FILE = "run.json"  # a training run folder: {"arms": [...], "created", "data", ...}
MANIFEST_FILE = "manifest.json"  # RUN/<arm>/: versions, commit, seed, datasets, device, wall time, params_added
MODEL_DIR = "model"  # RUN/<arm>/model: the saved encoder (load_encoder)
# everything training writes into RUN/<arm>/ (what `train --overwrite` may remove; a user's file there stays)
ARM_ENTRIES = ("config.yaml", MANIFEST_FILE, MODEL_DIR, "checkpoints", "sentence-transformers", "train_log.jsonl",
               "tensorboard", "wandb")
METRICS_FILE = "metrics.json"  # an evaluation folder (schema in evaluation/pipeline.py)
PER_QUERY_FILE = "per_query.csv"  # an evaluation's per-query scores
STUDY_FILE = "study.json"  # a study folder: arms, seeds, controls, datasets, config
SWEEP_FILE = "sweep.json"  # a sweep folder: name, datasets, grid, cells
CELL_FILE = "cell.json"  # SWEEP/cells/<name>/cell.json, written when the cell is finished
REFERENCE_ARM = "standard"  # what every other arm is compared with
