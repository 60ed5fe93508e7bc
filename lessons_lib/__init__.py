"""lessons_lib: what each lesson of the course builds, for later lessons to import.

Start every notebook with ``lessons_lib.setup(seed=0)``, then import lesson names from here::

    from lessons_lib import MultiHeadAttention, check, show, show_source

Names are loaded on first use (PEP 562): ``from lessons_lib import BPETokenizer`` imports the
tokenizer module alone and never waits for TensorFlow; the names that need TensorFlow import it
(quietly) when they are first used.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> the module that defines it (one module per concept)
_EXPORTS: dict[str, str] = {
    # env: a reproducible, quiet start
    "DeviceInfo": "env",
    "setup": "env",
    "seed_everything": "env",
    # display: printing arrays and showing the library's own code in a lesson
    "show": "display",
    "show_source": "display",
    # lesson 01
    "BPETokenizer": "tokenizers",
    "CharTokenizer": "tokenizers",
    "pad_and_truncate": "tokenizers",
    "load_tiny_shakespeare": "data",
    "train_val_split": "data",
    # lessons 02-03
    "TokenAndPositionEmbedding": "positional",
    "apply_rope": "positional",
    "sinusoidal_positional_encoding": "positional",
    "sinusoidal_shift_matrix": "positional",
    # lessons 04-05
    "softmax": "attention",
    "causal_mask": "attention",
    "scaled_dot_product_attention": "attention",
    "MultiHeadAttention": "attention",
    "split_heads": "attention",
    "merge_heads": "attention",
    "multi_head_attention": "attention",
    "attention_steps": "attention",
    "copy_to_keras_mha": "attention",
    # lessons 06-07
    "feed_forward": "feedforward",
    "gelu": "feedforward",
    "relu": "feedforward",
    "FeedForward": "feedforward",
    "layer_norm": "normalization",
    "layer_norm_backward": "normalization",
    # lesson 08
    "TransformerBlock": "block",
    "block_param_count": "block",
    "transformer_block": "block",
    "block_weights": "block",
    "load_block_weights": "block",
    "GPT": "gpt",
    "gpt_param_count": "gpt",
    # exercises
    "check": "checks",
}
_SUBMODULES = ("thread",)  # the running example of lessons 02-08, used as `lessons_lib.thread`

__all__ = sorted(_EXPORTS) + list(_SUBMODULES)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"lessons_lib.{_EXPORTS[name]}"), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"lessons_lib.{name}")
    else:
        raise AttributeError(f"module 'lessons_lib' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
