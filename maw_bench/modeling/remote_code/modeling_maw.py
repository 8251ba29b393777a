"""A MAW encoder exported by maw-bench: the HuggingFace backbone with MAW attention plugged in.

Shipped verbatim next to the weights with the modules it imports (``maw_*.py``, ``mech_*.py``, ``model_*.py``:
copies of maw-bench's ``maw/``, ``mechanisms/`` and its ``plug`` and attention-interface modules), so that

    AutoModel.from_pretrained(path, trust_remote_code=True)
    SentenceTransformer(path, trust_remote_code=True)

rebuild the trained model without maw-bench installed. ``forward`` returns the
token states (``last_hidden_state``); the sentence embedding is pooled from them as the
folder's ``1_Pooling`` says (mean, CLS or last token) and L2-normalised where it has
``2_Normalize`` (what the sentence-transformers modules of the folder do).
At inference every MAW layer makes its selection's inference choice (GRPO and
Gumbel: the router's argmax depth; fixed: its depth; soft and uniform: the mixture).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from transformers import AutoModel, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput

from .configuration_maw import MAWEncoderConfig
from .maw_attention import MAWAttention
from .model_interface import IMPLEMENTATION, use_interface
from .model_plug import plug


def _backbone(config) -> nn.Module:
    try:
        return AutoModel.from_config(config, add_pooling_layer=False)
    except TypeError:  # model classes without a pooler
        return AutoModel.from_config(config)


class MAWEncoderModel(PreTrainedModel):
    config_class = MAWEncoderConfig
    base_model_prefix = "maw_encoder"
    supports_gradient_checkpointing = False

    def __init__(self, config: MAWEncoderConfig) -> None:
        super().__init__(config)
        self.backbone = _backbone(config.backbone_config())
        # the arm, built by maw-bench's own plug function (shipped as model_plug.py) from the spec it exported
        self.blocks = plug(self.backbone, config.arm)
        self.post_init()

    def initialize_weights(self) -> None:
        """HF's initialisation, then the MAW layers' depth tables (non-persistent buffers the backbone's
        ``_init_weights`` does not know; ``from_pretrained`` allocates them empty)."""
        super().initialize_weights()
        for module in self.modules():
            if isinstance(module, MAWAttention):
                module.reset_buffers()

    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.backbone.set_input_embeddings(value)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        if self.config.arm.get("sites") and self.backbone.config._attn_implementation != IMPLEMENTATION:
            use_interface(self.backbone)  # a loader that chose another kernel would skip the mechanisms
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        if len(self.blocks):
            mask = attention_mask.bool()[:, None, None, :]
            for block in self.blocks:
                hidden = block(hidden, mask)
        return BaseModelOutput(last_hidden_state=hidden)
