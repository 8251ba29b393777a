"""Selection (docs/design.md section 2, step 5): strategy objects that turn router logits into depth weights.

=========  ==============================  ==================================
selection  training                        inference
=========  ==============================  ==================================
grpo       sample ``t ~ pi`` (hard), a     ``argmax pi`` (hard)
           group of ``G`` per sequence
gumbel     straight-through Gumbel-softmax ``argmax`` (hard)
soft       ``softmax(logits)`` mixture      the same mixture
uniform    ``1/D`` mixture, no router       the same
fixed:t    depth ``t``, no router           the same (hard)
=========  ==============================  ==================================

Every strategy is one small class registered under its name in ``STRATEGIES``; the
config validates ``maw.selection`` against this registry, so the list of choices is
written once. A strategy owns:

* ``needs_router``: whether the layer builds a :class:`DepthRouter`;
* ``pick(...)``: the weights (a mixture) or the choice (hard) at training and inference;
* ``group_size``: forward samples per training step (GRPO's group; 1 for the others);
* ``policy_loss(...)``: its extra training objective on the router (GRPO), or None.

A *hard* pick returns a ``choice`` so the layer computes only that slice; a mixture
returns ``weights`` and the layer builds the 5D tensor. To add a method, write one
class with these members and decorate it with :func:`register` (docs/extending.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F


@dataclass
class Pick:
    """What a strategy decided for one forward of one layer.

    ``weights``: ``(B, D)`` or ``(B, H, D)`` mixture weights, or None for a hard pick;
    ``choice``: ``(B,)`` or ``(B, H)`` depth indices, or None for a mixture;
    ``straight_through``: the weights are hard one-hot values with a soft gradient
    (the layer may then compute the chosen map with a graph and the others without).
    """

    weights: torch.Tensor | None = None
    choice: torch.Tensor | None = None
    straight_through: bool = False


@dataclass(frozen=True)
class SelectionParams:
    """The knobs strategies read (filled from ``maw.*`` by the modeling layer)."""

    tau: float = 1.0
    group_size: int = 4
    clip: float = 0.2
    kl: float = 0.02
    entropy: float = 0.01
    iterations: int = 1


class SelectionStrategy:
    """Base class: a mixture-free, router-free strategy that must override :meth:`pick`."""

    name: ClassVar[str] = ""
    needs_router: ClassVar[bool] = True
    takes_argument: ClassVar[bool] = False  # "fixed:<t>"-style names
    trains_policy: ClassVar[bool] = False  # has its own router objective (policy_loss)
    # constraints and settings a strategy declares, so the config validates it without naming it:
    replays_layers: ClassVar[bool] = False  # re-runs the MAW layers per sample: no recompute in backward
    # a sample's choice is a function of the shared logits and its pre-drawn uniforms alone, so the group's
    # choices are known after the first sample and samples that chose alike can share one forward
    choices_from_uniforms: ClassVar[bool] = False
    settings: ClassVar[str | None] = None  # the maw.<section> only this strategy reads (grpo, gumbel)
    uses_reward: ClassVar[bool] = False  # reads maw.reward
    # a control of a MAW arm: ``<arm>-<name>`` (``<arm>-<name><t>`` for each depth t when it takes an argument)
    is_control: ClassVar[bool] = False

    def __init__(self, depth: int, params: SelectionParams, argument: str | None = None) -> None:
        self.depth = depth
        self.params = params

    @classmethod
    def idle_settings(cls, settings, defaults) -> list[str]:
        """Warnings for settings of its own section (``maw.<settings>``: ``settings`` as set, ``defaults``) that
        cannot act as they are combined; the config lints with this, so it names no strategy."""
        return []

    @property
    def label(self) -> str:
        return self.name

    @property
    def group_size(self) -> int:
        """Forward samples per sequence in one training step."""
        return 1

    @property
    def policy_iterations(self) -> int:
        """Router updates per sampled group (GRPO's mu); 1 for strategies without a policy loss."""
        return 1

    def pick(
        self, logits: torch.Tensor | None, batch: int, training: bool, device: torch.device,
        uniforms: torch.Tensor | None = None, generator: torch.Generator | None = None,
    ) -> Pick:
        """Weights or a choice for ``batch`` sequences.

        ``uniforms``: pre-drawn numbers in [0, 1) for a sampled choice (GRPO's group);
        ``generator``: where any other randomness comes from (None: the global stream).
        Drawing routing noise from its own generator leaves the global stream, and so
        every dropout mask, the same as in the standard arm.
        """
        raise NotImplementedError

    def policy_loss(self, samples: list, first_iteration: bool) -> tuple[torch.Tensor, dict[str, float]] | None:
        """The strategy's own objective on its routers, from a group of samples (None: trained end to end)."""
        return None


STRATEGIES: dict[str, type[SelectionStrategy]] = {}


def register(cls: type[SelectionStrategy]) -> type[SelectionStrategy]:
    """Class decorator: make ``cls`` available as ``maw.selection: <cls.name>``."""
    if not cls.name or cls.name in STRATEGIES:
        raise ValueError(f"selection strategy name {cls.name!r} is empty or taken")
    STRATEGIES[cls.name] = cls
    return cls


def selection_choices() -> list[str]:
    """Every accepted spelling, for help texts and errors: ``grpo, ..., fixed:<t>``."""
    return [f"{n}:<t>" if c.takes_argument else n for n, c in STRATEGIES.items()]


def control_selections(depth: int) -> list[tuple[str, str]]:
    """``(arm suffix, maw.selection)`` of every control of a MAW arm with ``depth`` depths, in registry order:
    ``("-uniform", "uniform")``, then ``("-fixed0", "fixed:0")`` ... for each depth."""
    out = []
    for name, cls in STRATEGIES.items():
        if cls.is_control:
            out += ([(f"-{name}{t}", f"{name}:{t}") for t in range(depth)] if cls.takes_argument
                    else [(f"-{name}", name)])
    return out


def parse_selection(text: str, depth: int, params: SelectionParams | None = None) -> SelectionStrategy:
    """``'fixed:2' -> FixedSelection(t=2)``; a ``ValueError`` names the choices or the bad argument."""
    params = params or SelectionParams()
    name, _, arg = str(text).partition(":")
    cls = STRATEGIES.get(name)
    if cls is None or (cls.takes_argument != bool(arg)):
        raise ValueError(f"selection {text!r} is unknown; use one of {', '.join(selection_choices())}")
    return cls(depth, params, arg or None)


# ------------------------------------------------------------------------------ sampling
def sample_depths(
    logits: torch.Tensor, uniforms: torch.Tensor | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One draw from ``pi = softmax(logits)`` per row (sequence, or sequence and head).

    With ``uniforms`` (same leading shape as ``logits`` without the depth axis, values in
    [0, 1)) the draw is the inverse CDF at that point, so a caller can fix the random
    numbers of a draw in advance (GRPO's group replays the layer with the same dropout
    masks, so its depth draws cannot come from the same random stream).
    """
    probs = torch.softmax(logits.detach().float(), -1)
    if uniforms is None:
        flat = probs.reshape(-1, probs.shape[-1])
        return torch.multinomial(flat, 1, generator=generator).view(probs.shape[:-1])
    cdf = probs.cumsum(-1)
    u = uniforms.to(cdf.device, cdf.dtype).reshape(cdf.shape[:-1]).unsqueeze(-1)
    return (cdf <= u).sum(-1).clamp_max(probs.shape[-1] - 1)


def gumbel_softmax_hard(logits: torch.Tensor, tau: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``F.gumbel_softmax(hard=True)`` with the noise from ``generator``: one-hot forward, soft gradient."""
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=torch.float32)
    gumbels = -torch.log(-torch.log(u.clamp(1e-20, 1.0 - 1e-7)))
    soft = torch.softmax((logits.float() + gumbels) / tau, -1)
    hard = F.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
    return (hard - soft.detach() + soft).to(logits.dtype)


# ------------------------------------------------------------------------------ strategies
@register
class GRPOSelection(SelectionStrategy):
    """Sample a group of ``G`` depth choices per sequence; train the router with GRPO.

    Training: ``t ~ pi`` (hard, one draw per sample); inference: ``argmax pi``. The
    router's loss is the clipped-ratio objective of :mod:`maw_bench.maw.grpo`.
    """

    name = "grpo"
    trains_policy = True
    replays_layers = True
    choices_from_uniforms = True
    settings = "grpo"
    uses_reward = True

    @property
    def group_size(self) -> int:
        return self.params.group_size

    @property
    def policy_iterations(self) -> int:
        return self.params.iterations

    def pick(self, logits, batch, training, device, uniforms=None, generator=None) -> Pick:
        assert logits is not None
        if not training:
            return Pick(choice=logits.argmax(-1))
        return Pick(choice=sample_depths(logits, uniforms, generator))

    @classmethod
    def idle_settings(cls, settings, defaults) -> list[str]:
        if settings.iterations == 1 and settings.clip != defaults.clip:
            return ["maw.grpo.clip has no effect with maw.grpo.iterations=1 (the ratio is 1); set iterations > 1."]
        return []

    def policy_loss(self, samples, first_iteration):
        from maw_bench.maw.grpo import grpo_policy_loss

        return grpo_policy_loss(samples, self.params, first_iteration)


@register
class GumbelSelection(SelectionStrategy):
    """Straight-through Gumbel-softmax: hard one-hot forward, soft gradient; ``argmax`` at inference."""

    name = "gumbel"
    settings = "gumbel"

    def pick(self, logits, batch, training, device, uniforms=None, generator=None) -> Pick:
        assert logits is not None
        if not training:
            return Pick(choice=logits.argmax(-1))
        return Pick(weights=gumbel_softmax_hard(logits, self.params.tau, generator), straight_through=True)


@register
class SoftSelection(SelectionStrategy):
    """A learned mixture ``softmax(logits)`` of every depth, the same at inference."""

    name = "soft"

    def pick(self, logits, batch, training, device, uniforms=None, generator=None) -> Pick:
        assert logits is not None
        return Pick(weights=torch.softmax(logits, -1))


@register
class UniformSelection(SelectionStrategy):
    """Every depth at weight ``1/D``; no router (a control: "the split helps", not "the router helps")."""

    name = "uniform"
    is_control = True
    needs_router = False

    def pick(self, logits, batch, training, device, uniforms=None, generator=None) -> Pick:
        return Pick(weights=torch.full((batch, self.depth), 1.0 / self.depth, device=device))


@register
class FixedSelection(SelectionStrategy):
    """Always depth ``t``; no router (a control, and with ``depth=1`` the standard arm)."""

    name = "fixed"
    is_control = True
    needs_router = False
    takes_argument = True

    def __init__(self, depth: int, params: SelectionParams, argument: str | None = None) -> None:
        super().__init__(depth, params, argument)
        try:
            self.t = int(argument or "")
        except ValueError:
            raise ValueError(f"selection 'fixed:{argument}': the depth index after 'fixed:' must be an integer") from None
        if not 0 <= self.t < depth:
            raise ValueError(f"selection 'fixed:{self.t}' needs 0 <= t < maw.depth={depth}; lower t or raise the depth")

    @property
    def label(self) -> str:
        return f"fixed:{self.t}"

    def pick(self, logits, batch, training, device, uniforms=None, generator=None) -> Pick:
        return Pick(choice=torch.full((batch,), self.t, dtype=torch.long, device=device))

