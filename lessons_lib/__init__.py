"""lessons_lib: what each lesson of "LLM Architecture: From Theory to Practice" builds, for later lessons to import.

Start every notebook with ``lessons_lib.setup(seed=0)``.
"""

from lessons_lib import thread  # noqa: F401  (the running example of lessons 02-08)
from lessons_lib.attention import (
    MultiHeadAttention,
    causal_mask,
    scaled_dot_product_attention,
    softmax,
)
from lessons_lib.block import TransformerBlock, block_param_count
from lessons_lib.checks import check
from lessons_lib.data import load_tiny_shakespeare, train_val_split
from lessons_lib.env import (
    DeviceInfo,
    seed_everything,
    setup,
)  # first: sets TF's log variables before TF loads
from lessons_lib.feedforward import FeedForward, feed_forward, gelu, relu
from lessons_lib.gpt import GPT, gpt_param_count
from lessons_lib.normalization import layer_norm, layer_norm_backward
from lessons_lib.positional import (
    TokenAndPositionEmbedding,
    apply_rope,
    sinusoidal_positional_encoding,
    sinusoidal_shift_matrix,
)
from lessons_lib.tokenizers import BPETokenizer, CharTokenizer, pad_and_truncate

__all__ = [
    "DeviceInfo",
    "setup",
    "seed_everything",
    "softmax",
    "causal_mask",
    "scaled_dot_product_attention",
    "MultiHeadAttention",
    "sinusoidal_positional_encoding",
    "sinusoidal_shift_matrix",
    "apply_rope",
    "TokenAndPositionEmbedding",
    "layer_norm",
    "layer_norm_backward",
    "feed_forward",
    "gelu",
    "relu",
    "FeedForward",
    "TransformerBlock",
    "block_param_count",
    "GPT",
    "gpt_param_count",
    "check",
    "load_tiny_shakespeare",
    "train_val_split",
    "CharTokenizer",
    "BPETokenizer",
    "pad_and_truncate",
    "thread",
]
__version__ = "0.1.0"
