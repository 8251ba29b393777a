"""MAW attention itself: scores, router, selection and the GRPO objective.

Nothing here knows about retrieval or HuggingFace; ``maw_bench.modeling`` plugs it in.
"""

from maw_bench.maw.attention import MAWAttention, RouteRecord, StandardAttention
from maw_bench.maw.grpo import GRPOStats, group_advantages, grpo_objective
from maw_bench.maw.router import DepthRouter
from maw_bench.maw.selection import Selection, parse_selection, sample_depths

__all__ = [
    "DepthRouter",
    "GRPOStats",
    "MAWAttention",
    "RouteRecord",
    "Selection",
    "StandardAttention",
    "group_advantages",
    "grpo_objective",
    "parse_selection",
    "sample_depths",
]
