"""MAW attention itself: scores, router, selection strategies and the GRPO objective.

Nothing here knows about retrieval or HuggingFace; ``maw_bench.modeling`` plugs it in.
"""

from maw_bench.maw.attention import VARIANTS, MAWAttention, RouteRecord, RouteRecorder, StandardAttention
from maw_bench.maw.grpo import GRPOStats, PolicySamples, group_advantages, grpo_objective, grpo_policy_loss
from maw_bench.maw.router import DepthRouter
from maw_bench.maw.selection import (
    STRATEGIES,
    Pick,
    SelectionParams,
    SelectionStrategy,
    parse_selection,
    register,
    sample_depths,
    selection_choices,
)

__all__ = [
    "STRATEGIES",
    "VARIANTS",
    "DepthRouter",
    "GRPOStats",
    "MAWAttention",
    "Pick",
    "PolicySamples",
    "RouteRecord",
    "RouteRecorder",
    "SelectionParams",
    "SelectionStrategy",
    "StandardAttention",
    "group_advantages",
    "grpo_objective",
    "grpo_policy_loss",
    "parse_selection",
    "register",
    "sample_depths",
    "selection_choices",
]
