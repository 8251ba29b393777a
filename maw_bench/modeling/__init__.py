"""The HuggingFace encoder wrapper: plug MAW in, pool, encode, save and load."""

from maw_bench.modeling.encoder import Encoder, EncoderOutput, build_encoder
from maw_bench.modeling.saving import is_saved_encoder, load_encoder, save_encoder

__all__ = ["Encoder", "EncoderOutput", "build_encoder", "is_saved_encoder", "load_encoder", "save_encoder"]
