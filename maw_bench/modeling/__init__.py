"""The HuggingFace encoder wrapper: plug MAW in, pool, encode, save and load."""

from maw_bench.modeling.encoder import Encoder, build_encoder, is_saved_encoder, load_encoder

__all__ = ["Encoder", "build_encoder", "is_saved_encoder", "load_encoder"]
