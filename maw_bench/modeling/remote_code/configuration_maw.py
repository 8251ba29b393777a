"""Configuration of a MAW encoder exported by maw-bench (loaded with ``trust_remote_code=True``).

Shipped verbatim next to the weights; needs only ``transformers``. It holds the
backbone's own config (``backbone``) and the arm's spec (``arm``): what ``model_plug.py`` builds on it.
"""

from __future__ import annotations

from transformers import AutoConfig, PretrainedConfig

# shape attributes copied from the backbone, so tools that read ``config.hidden_size`` find them
_SHAPE = ("hidden_size", "num_attention_heads", "num_hidden_layers", "max_position_embeddings", "vocab_size")


class MAWEncoderConfig(PretrainedConfig):
    model_type = "maw_encoder"

    def __init__(self, backbone: dict | None = None, arm: dict | None = None, **kwargs) -> None:
        self.backbone = dict(backbone or {})
        # how the arm sits in the backbone, as maw-bench's modeling/plug.py reads it (MAW options and layers,
        # mechanism, appended blocks, attention-interface sites)
        self.arm = dict(arm or {})
        for key in _SHAPE:
            if key in self.backbone:
                kwargs.setdefault(key, self.backbone[key])
        super().__init__(**kwargs)

    def backbone_config(self) -> PretrainedConfig:
        """The HuggingFace config of the encoder MAW is plugged into."""
        values = dict(self.backbone)
        return AutoConfig.for_model(values.pop("model_type"), **values)
