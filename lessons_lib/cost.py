"""What a decoder-only Transformer costs before it runs: parameters, bytes, FLOPs, the KV cache.

Derived in lesson 14 §1–§3 from the matrix shapes of lessons 05–08. For a GPT with vocabulary V,
context T, width d, L blocks and an FFN of width d_ff (4d by default):

    parameters   N_total = V·d + T·d + L·(4d² + 2·d·d_ff + biases, LayerNorms) + LN_f
    bytes        N_total · (4 for float32, 2 for bfloat16/float16, 1 for int8)

A matrix product ``[1, a] @ [a, b]`` costs a·b multiplications and a·b additions: 2·a·b FLOPs. A
token passing forward through the model multiplies by every weight matrix once, and attends to the
T tokens of its window:

    forward FLOPs per token  ≈ 2·N_matmul + 4·L·T·d,   N_matmul = L·(4d² + 2·d·d_ff) + d·V

(``N_matmul`` counts the projections W_Q, W_K, W_V, W_O, the FFN's W_1, W_2 and the output layer;
4·L·T·d is QKᵀ and the weighted sum of V, each 2·T·d per token and layer). Kaplan et al. (2020,
eq. 2.2) write C_forward ≈ 2N + 2·n_layer·n_ctx·d_attn with N the non-embedding parameters. The
backward pass costs about twice the forward pass (a gradient for the inputs and one for the
weights of every product), so training costs ≈ 3 × forward ≈ 6·N FLOPs per token and

    training compute  C ≈ 6 · N · D      for D training tokens.

Generation keeps each layer's keys and values (lesson 10 §4):

    KV-cache bytes per token = 2 · L · (h_kv · d_k) · bytes per number

with h_kv = h key/value heads (multi-query attention has 1, grouped-query attention G).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lessons_lib._validate import describe, positive_int
from lessons_lib.gpt import gpt_param_count

#: Bytes per number of the formats lesson 14 §1 compares.
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}


def dtype_bytes(dtype: str) -> int:
    """Bytes per number of ``dtype`` (``"float32"``, ``"float16"``, ``"bfloat16"``, ``"int8"``)."""
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype must be one of {sorted(DTYPE_BYTES)}, got {dtype!r}")
    return DTYPE_BYTES[dtype]


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A decoder-only Transformer described by its shapes (lesson 14 §1).

    The counts are those of the course's `GPT` (pre-norm blocks, learned positions, tied
    embeddings by default), so ``Architecture.of(model).params == model.count_params()``.

    Args:
        name: a label for tables.
        vocab_size, max_len, d_model, num_layers, num_heads: V, T, d, L, h.
        d_ff: FFN width (default 4·d_model).
        use_bias: biases in the projections and LayerNorms (GPT-2 and GPT-3 have them).
        tie_embeddings: the output layer reuses the token table (no extra parameters).
        kv_heads: key/value heads h_kv for the KV cache (default h; 1 is multi-query attention).
        positional: ``"learned"`` (a T·d position table) or ``"sinusoidal"`` (no parameters).
    """

    name: str
    vocab_size: int
    max_len: int
    d_model: int
    num_layers: int
    num_heads: int
    d_ff: int | None = None
    use_bias: bool = True
    tie_embeddings: bool = True
    kv_heads: int | None = None
    positional: str = "learned"

    def __post_init__(self) -> None:
        for field in ("vocab_size", "max_len", "d_model", "num_layers", "num_heads"):
            positive_int(getattr(self, field), field)
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model must be divisible by num_heads: d_model={self.d_model}, "
                f"num_heads={self.num_heads}"
            )
        if self.d_ff is not None:
            positive_int(self.d_ff, "d_ff")
        if self.positional not in ("learned", "sinusoidal"):
            raise ValueError(
                f"positional must be 'learned' or 'sinusoidal', got {self.positional!r}"
            )
        if self.kv_heads is not None:
            positive_int(self.kv_heads, "kv_heads")
            if self.num_heads % self.kv_heads:
                raise ValueError(
                    f"num_heads must be a multiple of kv_heads (each key/value head serves a group "
                    f"of query heads): num_heads={self.num_heads}, kv_heads={self.kv_heads}"
                )

    @classmethod
    def of(cls, model: Any, name: str | None = None) -> Architecture:
        """The architecture of a course `GPT` or of a `lessons_lib.training.ModelConfig`."""
        needed = ("vocab_size", "max_len", "d_model", "num_heads", "num_layers")
        if not all(hasattr(model, k) for k in needed):
            raise TypeError(f"expected a GPT or a ModelConfig, got {describe(model)}")
        d_ff = getattr(model, "d_ff", None)
        return cls(
            name=name or type(model).__name__,
            vocab_size=model.vocab_size,
            max_len=model.max_len,
            d_model=model.d_model,
            num_layers=model.num_layers,
            num_heads=model.num_heads,
            d_ff=d_ff,
            use_bias=model.use_bias,
            tie_embeddings=model.tie_embeddings,
            positional=getattr(model, "positional", "learned"),
        )

    @property
    def ffn_width(self) -> int:
        """d_ff (4·d_model unless given)."""
        return 4 * self.d_model if self.d_ff is None else self.d_ff

    @property
    def params(self) -> int:
        """All parameters (lesson 08 §4's `gpt_param_count`)."""
        return gpt_param_count(
            self.vocab_size,
            self.max_len,
            self.d_model,
            self.num_layers,
            d_ff=self.ffn_width,
            use_bias=self.use_bias,
            tie_embeddings=self.tie_embeddings,
            positional=self.positional,
        )

    @property
    def embedding_params(self) -> int:
        """The vocabulary and position tables: V·d + T·d (+ d·V for an untied output layer).

        Sinusoidal positions have no table (T·d is then 0)."""
        positions = self.max_len if self.positional == "learned" else 0
        tables = (self.vocab_size + positions) * self.d_model
        return tables if self.tie_embeddings else tables + self.d_model * self.vocab_size

    @property
    def non_embedding_params(self) -> int:
        """Kaplan et al.'s N: the blocks and the final LayerNorm, every parameter but the tables."""
        return self.params - self.embedding_params

    @property
    def matmul_params(self) -> int:
        """The weights a token is multiplied by in a forward pass: L·(4d² + 2·d·d_ff) + d·V.

        The output layer's d·V is counted even when tied (the table is used twice, so it costs
        twice); biases, LayerNorms and the embedding lookup cost no products.
        """
        d, L = self.d_model, self.num_layers
        return L * (4 * d * d + 2 * d * self.ffn_width) + d * self.vocab_size

    def bytes(self, dtype: str = "float32") -> int:
        """Memory of the weights alone: ``params × bytes per number`` (lesson 14 §1)."""
        return self.params * dtype_bytes(dtype)

    def forward_flops_per_token(self, context: int | None = None) -> dict[str, int]:
        """FLOPs of one token's forward pass, by term (lesson 14 §2).

        ``"matmuls"`` = 2·N_matmul (every weight once: a multiply and an add), ``"attention"`` =
        4·L·T·d for a window of T = ``context`` tokens (default ``max_len``): QKᵀ and the weighted
        sum of V over the full T × T matrix, as the course's layer computes it (a causal mask
        sets half of it to zero after computing it). ``"total"`` is their sum.
        """
        t = self.max_len if context is None else positive_int(context, "context")
        terms = {
            "matmuls": 2 * self.matmul_params,
            "attention": 4 * self.num_layers * t * self.d_model,
        }
        terms["total"] = terms["matmuls"] + terms["attention"]
        return terms

    def forward_flops(self, batch: int, seq_len: int) -> int:
        """FLOPs of a forward pass over ``[batch, seq_len]`` ids: B·T·(2·N_matmul + 4·L·T·d)."""
        b, t = positive_int(batch, "batch"), positive_int(seq_len, "seq_len")
        return b * t * self.forward_flops_per_token(t)["total"]

    def training_flops(self, batch: int, seq_len: int) -> int:
        """FLOPs of one training step (forward + backward ≈ 3 × forward; lesson 14 §2)."""
        return 3 * self.forward_flops(batch, seq_len)

    def kv_cache_bytes_per_token(self, dtype: str = "float32") -> int:
        """Bytes the KV cache grows by per generated token: 2·L·h_kv·d_k·bytes (lesson 14 §3)."""
        kv = self.num_heads if self.kv_heads is None else self.kv_heads
        d_k = self.d_model // self.num_heads
        return 2 * self.num_layers * kv * d_k * dtype_bytes(dtype)


def training_compute(params: int, tokens: int) -> float:
    """The 6·N·D rule: FLOPs to train ``params`` parameters on ``tokens`` tokens (lesson 14 §2)."""
    return 6.0 * positive_int(params, "params") * positive_int(tokens, "tokens")


#: The baby GPT of lesson 09 (``lessons_lib.training.BABY_GPT``): 804,096 parameters.
BABY_GPT_ARCH = Architecture(
    "baby GPT", vocab_size=65, max_len=64, d_model=128, num_layers=4, num_heads=4, use_bias=False
)
#: GPT-2 small (Radford et al., 2019; the released 124 M model).
GPT2_SMALL = Architecture(
    "GPT-2 small", vocab_size=50257, max_len=1024, d_model=768, num_layers=12, num_heads=12
)
#: GPT-3 175 B (Brown et al., 2020, Table 2.1: 96 layers, d_model 12,288, 96 heads, context 2,048).
GPT3_175B = Architecture(
    "GPT-3 175B", vocab_size=50257, max_len=2048, d_model=12288, num_layers=96, num_heads=96
)


def graph_flops(model: Any, batch: int, seq_len: int, matmuls_only: bool = True) -> int:
    """FLOPs of ``model``'s forward pass as TensorFlow's profiler counts them (lesson 14 §2).

    The independent check of `Architecture.forward_flops`: the model's call is traced for
    ``[batch, seq_len]`` int32 ids and the profiler adds up the FLOPs of every operation in the
    graph from its shapes. With ``matmuls_only`` only the matrix products (``MatMul``,
    ``BatchMatMul*``, ``Einsum``) count, as in the formula; otherwise the element-wise work too
    (softmax, LayerNorm, GELU).
    """
    from tensorflow.python.profiler import model_analyzer, option_builder

    from lessons_lib._backend import tf

    b, t = positive_int(batch, "batch"), positive_int(seq_len, "seq_len")
    fn = tf.function(lambda ids: model(ids, training=False))
    graph = fn.get_concrete_function(tf.TensorSpec([b, t], tf.int32)).graph
    opts = option_builder.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    if matmuls_only:
        opts["account_type_regexes"] = ["MatMul", "BatchMatMul.*", "Einsum"]
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # the v1 profiler warns about its own deprecated helpers
    try:
        return int(model_analyzer.profile(graph=graph, options=opts).total_float_ops)
    finally:
        logger.setLevel(level)
