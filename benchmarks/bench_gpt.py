"""Speed of the reference ("baby GPT") configuration: our train step vs the same model built from
keras.layers (and vs our step without XLA), and generation with vs without the KV cache. Prints
medians and ratios measured in the same run.

    python benchmarks/bench_gpt.py [--steps 150] [--warmup 20]

Architecture of both models: 4 pre-norm blocks (causal self-attention, GELU FFN), d_model 128, 4
heads, block 64, batch 12, no biases, tied embeddings, AdamW + clipping, XLA-compiled train step
(``jit_compile=True``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import lessons_lib  # noqa: E402  (first: it imports TensorFlow without the load-time oneDNN notice)
from lessons_lib.cost import Architecture  # noqa: E402
from lessons_lib.generation import Generator  # noqa: E402
from lessons_lib.training import (
    BABY_GPT,
    BABY_TRAIN,
    make_optimizer,
    random_windows,  # noqa: E402
    train_step_function,
)


def keras_layers_gpt(cfg=BABY_GPT) -> keras.Model:
    """The same architecture from stock keras.layers (MultiHeadAttention, LayerNormalization, Dense,
    Embedding)."""
    ids = keras.Input((cfg.max_len,), dtype="int32")
    tok = keras.layers.Embedding(cfg.vocab_size, cfg.d_model, name="tok")
    pos = keras.layers.Embedding(cfg.max_len, cfg.d_model, name="pos")
    positions = keras.ops.zeros_like(ids) + keras.ops.arange(
        cfg.max_len, dtype="int32"
    )  # symbolic, [B, T]
    x = tok(ids) + pos(positions)
    for i in range(cfg.num_layers):
        h = keras.layers.LayerNormalization(epsilon=1e-5, center=False)(x)
        h = keras.layers.MultiHeadAttention(
            cfg.num_heads, cfg.d_model // cfg.num_heads, use_bias=False
        )(h, h, use_causal_mask=True)
        x = x + h
        h = keras.layers.LayerNormalization(epsilon=1e-5, center=False)(x)
        h = keras.layers.Dense(4 * cfg.d_model, activation="gelu", use_bias=False)(h)
        x = x + keras.layers.Dense(cfg.d_model, use_bias=False)(h)
    h = keras.layers.LayerNormalization(epsilon=1e-5, center=False)(x)
    logits = keras.ops.matmul(h, keras.ops.transpose(tok.embeddings))
    return keras.Model(ids, logits)


def make_train_step(model, jit_compile: bool = True):
    """The course's training step (AdamW with its settings) for ``model``, XLA-compiled unless
    ``jit_compile=False``."""
    opt = make_optimizer(model, BABY_TRAIN)
    opt.build(model.trainable_variables)
    return train_step_function(model, opt, jit_compile)


def time_train_steps(steps: dict, n: int, warmup: int, block: int = 10) -> dict[str, float]:
    """Median wall time (ms) per step of each compiled step function, interleaved in blocks of
    ``block`` steps so that both see the same machine load."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, BABY_GPT.vocab_size, size=200_000).astype(np.int32)
    batches = [
        random_windows(data, BABY_GPT.max_len, BABY_TRAIN.batch_size, rng) for _ in range(block)
    ]
    for step in steps.values():
        for x, y in batches[:warmup] if warmup <= block else batches * (warmup // block):
            float(step(x, y))
    times: dict[str, list[float]] = {name: [] for name in steps}
    while min(len(t) for t in times.values()) < n:
        for name, step in steps.items():
            for x, y in batches:
                t0 = time.perf_counter()
                float(step(x, y))
                times[name].append(time.perf_counter() - t0)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def train_step_flops(cfg=BABY_GPT, batch_size: int = BABY_TRAIN.batch_size) -> float:
    """Floating-point operations of the matrix products in one training step (2 per multiply-add).

    Per token, the forward pass multiplies by W_Q, W_K, W_V, W_O (4 d²), the FFN (2 d·d_ff) in each
    of the L blocks, the tied output matrix (d·V), and computes QKᵀ and AV over all T keys (2 T·d
    per block, masked entries included, as the code computes them). The backward pass costs twice
    the forward (a gradient for each operand). Lesson 14 §2 derives it: `Architecture` counts it."""
    return Architecture.of(cfg).training_flops(batch_size, cfg.max_len)


def ffn_matmul_gflops(tokens: int, d: int, d_ff: int, pairs: int = 16, repeats: int = 30) -> float:
    """GFLOP/s that these cores sustain on products of this model's size: ``pairs`` times the FFN's
    two products, ``[tokens, d]·[d, d_ff]`` then ``[tokens, d_ff]·[d_ff, d]``, chained in one XLA
    program (so that call overhead does not count), float32."""
    x = tf.random.normal((tokens, d))
    w1 = tf.random.normal((pairs, d, d_ff), stddev=d**-0.5)
    w2 = tf.random.normal((pairs, d_ff, d), stddev=d_ff**-0.5)

    @tf.function(jit_compile=True)
    def chain(x, w1, w2):
        for i in range(pairs):
            x = tf.matmul(tf.matmul(x, w1[i]), w2[i])
        return tf.reduce_sum(x)

    for _ in range(3):
        float(chain(x, w1, w2))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        float(chain(x, w1, w2))
        times.append(time.perf_counter() - t0)
    return 2 * 2 * pairs * tokens * d * d_ff / statistics.median(times) / 1e9


def time_generation(gen: Generator, n: int, use_cache: bool, repeats: int) -> float:
    """Median tokens/s for ``n`` new tokens from a 16-token prompt (sampling, fixed seed)."""
    prompt = np.arange(16, dtype=np.int32) % BABY_GPT.vocab_size
    gen.generate(prompt, 4, use_cache=use_cache)  # compile
    rates = []
    for r in range(repeats):
        t0 = time.perf_counter()
        gen.generate(prompt, n, use_cache=use_cache, seed=r)
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    info = lessons_lib.setup(seed=0, verbose=False)
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {info.device}; "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, Python {sys.version.split()[0]}"
    )

    ours = BABY_GPT.build()
    ref = keras_layers_gpt()
    assert ours.count_params() == ref.count_params(), (ours.count_params(), ref.count_params())
    print(f"parameters: {ours.count_params():,} (both models)")
    t = time_train_steps(
        {
            "ours": make_train_step(ours),
            "keras": make_train_step(ref),
            "ours, no XLA": make_train_step(BABY_GPT.build(), jit_compile=False),
        },
        a.steps,
        a.warmup,
    )
    t_ours, t_ref, t_graph = t["ours"], t["keras"], t["ours, no XLA"]
    print(
        f"train step, median of {a.steps}: lessons_lib GPT {t_ours:.1f} ms | "
        f"keras.layers GPT {t_ref:.1f} ms | ratio ours/keras {t_ours / t_ref:.2f}"
    )
    print(
        f"train step without XLA (tf.function graph only): {t_graph:.1f} ms | "
        f"XLA speed-up {t_graph / t_ours:.2f}x"
    )
    flops = train_step_flops()
    tokens = BABY_TRAIN.batch_size * BABY_GPT.max_len
    ceiling = ffn_matmul_gflops(tokens, BABY_GPT.d_model, 4 * BABY_GPT.d_model)
    print(
        f"matrix products per train step: {flops / 1e9:.2f} GFLOP -> "
        f"ours sustains {flops / t_ours / 1e6:.0f} GFLOP/s; "
        f"chained products of the FFN's sizes alone run at {ceiling:.0f} GFLOP/s "
        f"(step time at that rate: {flops / ceiling / 1e6:.1f} ms)"
    )

    gen = Generator(ours)
    for n in (64, 256):
        no_cache, cache = [], []
        for r in range(a.repeats):  # interleaved, one run of each per round
            no_cache.append(time_generation(gen, n, False, 1))
            cache.append(time_generation(gen, n, True, 1))
        no_cache, cache = statistics.median(no_cache), statistics.median(cache)
        print(
            f"generate {n} tokens: no cache {no_cache:.0f} tok/s | KV cache {cache:.0f} tok/s | "
            f"speed-up {cache / no_cache:.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
