"""Decoding speed of an encoder–decoder Transformer (lesson 13): greedy and beam search, each with
and without the KV cache, in one run. Prints sentences per second, the cache's speed-up and the
largest logit difference between the two paths (they compute the same thing).

    python benchmarks/bench_translation.py [--sentences 64] [--max-lengths 8 16 32] [--beam 4]
    python benchmarks/bench_translation.py --smoke      # a few seconds: every line, tiny sizes

The model is lesson 13's size (2 + 2 pre-norm blocks, d_model 64, 4 heads, vocabularies of 2,000,
max_len 32), untrained. Its ``<eos>`` embedding row is set to 0 so that an untrained model never
writes ``<eos>`` (its logit, 0, stays below the largest of 2,000 random logits): every sentence is
decoded to ``max_length`` tokens, and the speed-up is measured at exactly that target length.

* KV cache: the source is encoded once, each decoder block's cross-attention keys and values are
  computed once, and each step runs the decoder on one new token (`Decoder.decode_step`).
* No cache: each step runs the whole model (encoder included) on the source and the prefix so far.

Both are ``tf.function`` graphs (``--jit``: XLA-compiled, both paths; the warm-up round compiles
every shape); each figure is the median of ``--repeats`` rounds after one warm-up round.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

import lessons_lib
from lessons_lib._backend import keras, tf  # TensorFlow without its load-time notices
from lessons_lib.decoding import Translator
from lessons_lib.seq2seq import EncoderDecoder

FULL = dict(vocab=2000, max_len=32, d_model=64, heads=4, layers=2)
SMOKE = dict(vocab=50, max_len=8, d_model=16, heads=2, layers=1)


def build_model(vocab: int, max_len: int, d_model: int, heads: int, layers: int):
    """An untrained model whose <eos> is never the most likely token (see the module docstring)."""
    keras.utils.set_random_seed(0)
    model = EncoderDecoder(vocab, vocab, max_len, d_model, heads, layers, layers)
    ids = np.full((1, 1), model.bos_id, dtype=np.int32)
    model(ids, ids)
    table = model.decoder.embed.embeddings
    table.assign(tf.tensor_scatter_nd_update(table, [[model.eos_id]], tf.zeros((1, d_model))))
    return model


def time_search(run, repeats: int) -> dict:
    """Run ``run()`` once to warm up (tracing), then ``repeats`` times; median seconds."""
    run()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sentences", type=int, default=64, help="sentences per batch")
    p.add_argument("--source-len", type=int, default=8, help="source tokens per sentence")
    p.add_argument("--max-lengths", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--beam", type=int, default=4, help="beam width")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds per figure")
    p.add_argument("--jit", action="store_true", help="XLA-compile the model calls (both paths)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, one round: for the tests")
    p.add_argument("--json", help="also write the figures (and this command) to this file")
    a = p.parse_args()
    size = SMOKE if a.smoke else FULL
    if a.smoke:
        a.sentences, a.source_len, a.max_lengths, a.repeats = 4, 4, [size["max_len"]], 1
    info = lessons_lib.setup(seed=0, verbose=False)
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {info.device}; "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, Python {sys.version.split()[0]}"
    )
    model = build_model(**size)
    print(
        f"model: {size['layers']}+{size['layers']} blocks, d_model {size['d_model']}, "
        f"{size['heads']} heads, vocabularies {size['vocab']:,}/{size['vocab']:,}, max_len "
        f"{size['max_len']} (untrained, <eos> never written); parameters: "
        f"{model.count_params():,}"
    )
    translator = Translator(model, jit_compile=a.jit)
    rng = np.random.default_rng(0)
    src = rng.integers(4, size["vocab"], size=(a.sentences, a.source_len)).astype(np.int32)
    print(
        f"batch: {a.sentences} sentences of {a.source_len} source tokens; beam width {a.beam}, "
        f"length penalty 0.6; median of {a.repeats} round(s){'; XLA' if a.jit else ''}"
        + ("; smoke mode: sizes too small for the speeds to mean anything" if a.smoke else "")
    )
    longest = max(a.max_lengths)
    _, cached = translator.greedy(src, longest, return_logits=True)
    _, full = translator.greedy(src, longest, use_cache=False, return_logits=True)
    diff = float(np.abs(cached - full).max())
    print(f"cached logits = recomputed: max |difference| {diff:.1e} (greedy, max_length {longest})")
    results = []
    for max_length in a.max_lengths:
        searches = {
            "greedy": lambda c, n=max_length: translator.greedy(src, n, use_cache=c),
            f"beam {a.beam}": lambda c, n=max_length: translator.beam_search(
                src, a.beam, n, use_cache=c
            ),
        }
        for name, search in searches.items():
            lengths = [h.length for h in search(True)]
            no_cache = time_search(lambda s=search: s(False), a.repeats)
            cache = time_search(lambda s=search: s(True), a.repeats)
            rate = {"no_cache": a.sentences / no_cache, "cache": a.sentences / cache}
            print(
                f"{name}, max_length {max_length}: no cache {rate['no_cache']:.1f} sent/s | "
                f"KV cache {rate['cache']:.1f} sent/s | speed-up {no_cache / cache:.2f}x "
                f"(mean length {np.mean(lengths):.1f})"
            )
            results.append(
                {
                    "search": name,
                    "max_length": max_length,
                    "sentences_per_s": rate,
                    "speed_up": no_cache / cache,
                    "mean_length": float(np.mean(lengths)),
                }
            )
    if a.json:
        out = {
            "command": "python benchmarks/bench_translation.py " + " ".join(sys.argv[1:]),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {info.device}",
            "model": size,
            "parameters": model.count_params(),
            "sentences": a.sentences,
            "max_logit_difference": diff,
            "results": results,
        }
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
