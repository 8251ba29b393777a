"""Configuration of a MAW encoder exported by maw-bench (loaded with ``trust_remote_code=True``).

Shipped verbatim next to the weights; needs only ``transformers``. It holds the
backbone's own config (``backbone``) and how MAW sits in it: the ``MAWAttention``
options, the encoder layers whose self-attention MAW replaces, and any blocks
appended on top.
"""

from __future__ import annotations

from transformers import AutoConfig, PretrainedConfig

# shape attributes copied from the backbone, so tools that read ``config.hidden_size`` find them
_SHAPE = ("hidden_size", "num_attention_heads", "num_hidden_layers", "max_position_embeddings", "vocab_size")


class MAWEncoderConfig(PretrainedConfig):
    model_type = "maw_encoder"

    def __init__(
        self,
        backbone: dict | None = None,
        maw_options: dict | None = None,
        maw_layers: list[int] | None = None,
        appended: dict | None = None,
        mechanism: dict | None = None,
        **kwargs,
    ) -> None:
        self.backbone = dict(backbone or {})
        self.maw_options = dict(maw_options) if maw_options else None
        self.maw_layers = list(maw_layers or [])
        # {"num_blocks", "num_heads", "dropout", "eps", "maw": bool} or None
        self.appended = dict(appended) if appended else None
        # {"name": gated | diff, "layers": [...], "settings": maw-bench's attention section} or None
        self.mechanism = dict(mechanism) if mechanism else None
        for key in _SHAPE:
            if key in self.backbone:
                kwargs.setdefault(key, self.backbone[key])
        super().__init__(**kwargs)

    def backbone_config(self) -> PretrainedConfig:
        """The HuggingFace config of the encoder MAW is plugged into."""
        values = dict(self.backbone)
        return AutoConfig.for_model(values.pop("model_type"), **values)
