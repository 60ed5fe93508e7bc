# %% [markdown]
# # 15 · Making it smaller: quantization, pruning and distillation
#
# The source article closes with the field's trends (section 8.2), and the first one it names is **model
# compression**: "to lower the models' compute and storage needs, researchers are exploring compression techniques
# such as knowledge distillation and pruning". A third technique, **quantization**, is how almost every large
# language model is served today. This lesson takes the baby GPT trained in lesson 09 and makes it smaller in all
# three ways, and measures each one: what it costs in validation loss, and what it buys in bytes and milliseconds.
#
# **Goals.** By the end of this lesson you can
#
# 1. say what a model's size is made of, and which of its parts each technique shrinks;
# 2. derive **symmetric per-channel quantization** to int8 and int4, bound its rounding error, and check your NumPy
#    against Keras' quantized layers;
# 3. quantize the GPT with Keras, and explain the **tied-head pitfall**: a quantized model whose output head silently
#    reads the int8 table without its scale;
# 4. export a **deployable int8 model** with LiteRT, run it without TensorFlow, and explain why quantizing the
#    activations too (full-integer quantization) hurts this model;
# 5. **prune** weights by magnitude, fine-tune while keeping the zeros, and explain why unstructured sparsity shrinks
#    neither a dense file nor a dense matrix product;
# 6. prune whole **FFN neurons** into a genuinely smaller, faster GPT;
# 7. derive **knowledge distillation** (and its $\tau^2$ factor) and train a student with 7.5 times fewer parameters
#    than its teacher;
# 8. read one **trade-off picture**: every variant's size and speed against its loss.
#
# ```text
#   the trained baby GPT (3.2 MB, loss 1.92)
#      ├── fewer bits per weight   quantization  (§2–§4)   int8, int4, LiteRT
#      ├── fewer weights           pruning       (§5–§6)   zeros, or smaller matrices
#      └── a smaller model         distillation  (§7)      a student taught by the GPT
#                                         └──►  size, latency and loss of each (§8)
# ```

# %% tags=["nbval-ignore-output"]
import lessons_lib

info = lessons_lib.setup(seed=0)

# %%
import dataclasses
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from lessons_lib import (
    STUDENT,
    STUDENT_TRAIN,
    DistillationTrainer,
    LiteRTModel,
    MaskedTrainer,
    activation_ranges,
    check,
    compressed_bytes,
    dense_bytes,
    distillation_loss,
    distillation_loss_numpy,
    export_litert,
    ffn_neuron_importance,
    fine_tune_config,
    gpt_param_count,
    keras_distiller_default_loss,
    keras_distiller_losses,
    keras_int_weights,
    litert_loss,
    magnitude_masks,
    median_seconds,
    naive_tied_logits,
    prune,
    prune_ffn,
    quantization_error,
    quantize_gpt,
    quantize_whole_model,
    quantize_weights,
    dequantize_weights,
    show,
    show_source,
    sparsity,
    weight_bytes,
)
from lessons_lib.training import (
    BABY_GPT,
    evaluate_loss,
    evaluation_windows,
    load_checkpoint,
    shakespeare_splits,
)

ROOT = Path(lessons_lib.__file__).resolve().parents[1]
COMPRESSION_JSON = ROOT / "benchmarks" / "results" / "compression.json"
saved = json.loads(
    COMPRESSION_JSON.read_text()
)  # bench_compression.py's figures (full validation split)


def bench_loss(name):
    """A variant's validation loss on the whole split, as the benchmark measured it."""
    return saved["variants"][name]["loss"]


train_ids, val_ids = shakespeare_splits()

# %% [markdown]
# ### How long this notebook runs
#
# About three minutes on 2 CPU cores. Every variant is built and measured live, but its validation loss is measured on
# the first `EVAL_WINDOWS` windows of the validation split (the same windows for every variant, so the comparison is
# fair), and the fine-tunes and distillations are short. The benchmark,
# `python benchmarks/bench_compression.py --json benchmarks/results/compression.json`, measures every variant on the
# **whole** validation split with longer training, alone on the machine; §8 reads its results. Timings move by up to
# 2× on a shared machine, so the lesson compares **ratios measured in one run**, never a number of milliseconds.
# `FULL = True` (what `llm-course run --full` passes) evaluates on the whole split and trains as long as the
# benchmark (about 10 minutes).

# %% tags=["parameters"]
FULL = False  # True: the whole validation split and the benchmark's training lengths (~10 minutes)

# %%
EVAL_WINDOWS = None if FULL else 256
FINE_TUNE_STEPS = 200 if FULL else 60
DISTILL_STEPS = 600 if FULL else 150
JIT = FULL  # XLA: ~4 s more to compile each trainer, no faster per step at these sizes on 2 cores


def val_loss(model):
    """The loss on the lesson's validation windows (the whole split with FULL)."""
    return evaluate_loss(model, val_ids, max_windows=EVAL_WINDOWS)


def teacher():
    """A fresh copy of the trained baby GPT (lesson 09's checkpoint)."""
    model = BABY_GPT.build()
    load_checkpoint(model)
    return model


gpt = teacher()
base_loss = val_loss(gpt)
print(
    f"the baby GPT: {gpt.count_params():,} parameters, loss {base_loss:.3f} on the lesson's windows"
)
assert 1.8 < base_loss < 2.1

# %% [markdown]
# ## 1 · What a model's size is made of
#
# A model's size in bytes is its number of parameters times the bytes each one takes (lesson 14 §1). The baby GPT's
# parameters sit in four kinds of tensor; counting them by kind shows where compression must act:

# %%
kinds = {
    "matrix products (attention, FFN)": 0,
    "token table": 0,
    "position table": 0,
    "LayerNorm gains": 0,
}
for v in gpt.weights:
    path = v.path
    if "token_embedding" in path:
        kinds["token table"] += int(np.prod(v.shape))
    elif "position_embedding" in path:
        kinds["position table"] += int(np.prod(v.shape))
    elif "ln" in path.split("/")[-2]:
        kinds["LayerNorm gains"] += int(np.prod(v.shape))
    else:
        kinds["matrix products (attention, FFN)"] += int(np.prod(v.shape))
total = sum(kinds.values())
for k, n in kinds.items():
    print(f"{k:34} {n:>8,}  {100 * n / total:5.1f} %  {4 * n / 1e6:5.2f} MB in float32")
assert total == gpt.count_params() == 804_096
matmul_share = kinds["matrix products (attention, FFN)"] / total
assert round(100 * matmul_share, 1) == 97.8

# %% [markdown]
# Almost all of it, 97.8 %, is the weight matrices of the blocks' matrix products, $W_Q, W_K, W_V, W_O$ and the FFN's
# $W_1, W_2$: that is where each technique acts. **Quantization** stores each of those numbers in fewer bits,
# **pruning** removes some of them, **distillation** trains a model that has fewer of them to begin with.
#
# Bytes are not only disk space. Generating one token at batch size 1 reads every weight once (lesson 10 §5) and does
# two FLOPs with it (lesson 14 §2): far too little arithmetic per byte to keep a processor busy, so the time per token
# is set by how fast the weights stream from memory. A model a quarter the size in bytes generates up to four times
# faster on the same memory — one reason why large models are served in 8 or 4 bits.

# %% [markdown]
# ## 2 · Rounding one matrix
#
# **Symmetric per-channel quantization.** To store a weight matrix $W \in \mathbb{R}^{d_{in} \times d_{out}}$ in
# $b$-bit integers, give each output channel (column) $j$ its own scale $s_j$, chosen so that the column's largest
# magnitude maps to the largest integer $q_{max} = 2^{b-1} - 1$ (127 for int8, 7 for int4):
#
# $$ s_j = \frac{\max_i |W_{ij}|}{q_{max}}, \qquad
#    q_{ij} = \operatorname{clip}\!\Big(\operatorname{round}\big(W_{ij} / s_j\big),\, -q_{max},\, q_{max}\Big),
#    \qquad \hat W_{ij} = s_j\, q_{ij}. $$
#
# Rounding moves a number by at most half a step, so every weight's error is bounded by its column's half-step,
# $|W_{ij} - \hat W_{ij}| \le s_j / 2$. And the product needs no dequantized matrix: since $s_j$ is constant down a
# column,
#
# $$ (x \hat W)_j = \sum_i x_i\, s_j\, q_{ij} = s_j \,(x\, q)_j , $$
#
# so the integer product $x\,q$ is computed first and each output is multiplied by its scale once. That is why the
# scale belongs to the *output* channel: a scale per input row could not be factored out of the sum. "Symmetric"
# means zero stays exactly zero (no offset; the *asymmetric* variant adds a zero point, for values that are
# mostly of one sign). Exercise 1 does the whole product in integers.
#
# A small example, worked by hand: the two columns of a $3 \times 2$ matrix have largest magnitudes $0.9$ and $0.02$,
# so their int8 steps are $s_1 = 0.9 / 127 = 0.00709$ and $s_2 = 0.02/127 = 0.000157$. The entry $-0.40$ becomes
# $\operatorname{round}(-0.40 / 0.00709) = \operatorname{round}(-56.4) = -56$, and $0.012$ becomes
# $\operatorname{round}(76.2) = 76$.

# %%
w_small = np.array([[0.90, 0.012], [-0.40, -0.020], [0.10, 0.005]], dtype=np.float32)
q_small, s_small = quantize_weights(w_small, bits=8)
show("scales s_j", s_small, decimals=6)
show("q", q_small)
show("dequantized ŵ", dequantize_weights(q_small, s_small), decimals=4)
np.testing.assert_array_equal(q_small, [[127, 76], [-56, -127], [14, 32]])
assert np.abs(w_small - dequantize_weights(q_small, s_small)).max() <= s_small.max() / 2
q_tensor, s_tensor = quantize_weights(w_small.reshape(-1, 1), bits=8)  # one scale for all six
show("q with one scale for the whole matrix", q_tensor.reshape(3, 2))
np.testing.assert_array_equal(q_tensor.reshape(3, 2)[:, 1], [2, -3, 1])

# %% [markdown]
# With one scale for the whole matrix (per tensor), the second column's values are all within three steps of
# $0.00709$ and round to $2, -3, 1$: the column of small weights keeps almost nothing of its shape (its $0.012$ and
# $0.005$ differ by a factor 2.4; as $2$ and $1$, by 2). Per-channel scales cost one float per column and keep every
# column's own resolution.
#
# The library's code is the formula:

# %%
show_source(quantize_weights, docstring=False)

# %% [markdown]
# Now a real matrix: the first FFN projection $W_1$ of block 0, $128 \times 512$. The histogram shows the rounding
# errors relative to each column's step; int4 has 18 times fewer levels ($7$ against $127$), so its errors are 18
# times larger:

# %%
w1 = gpt.blocks[0].ffn.w1.kernel.numpy()
errors = {bits: quantization_error(w1, bits=bits) for bits in (8, 4)}
for bits, e in errors.items():
    print(
        f"int{bits}: max |w − ŵ| {e['max_abs']:.2e} (bound s/2: {e['max_bound']:.2e}), "
        f"mean {e['mean_abs']:.2e}, relative ‖w − ŵ‖/‖w‖ {e['relative']:.4f}"
    )
    assert e["max_abs"] <= e["max_bound"] * (1 + 1e-6)
assert 10 < errors[4]["mean_abs"] / errors[8]["mean_abs"] < 25

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
for ax, bits in zip(axes, (8, 4)):
    q_, s_ = quantize_weights(w1, bits=bits)
    ax.hist(((w1 - dequantize_weights(q_, s_)) / s_).ravel(), bins=60)
    ax.set(
        title=f"int{bits}: rounding error / step",
        xlabel="(w − ŵ) / s_j  (always within ±½)",
        ylabel="weights",
    )
plt.tight_layout()
plt.show()

# %% [markdown]
# The errors are spread evenly over $[-\tfrac12, \tfrac12]$ of a step, as rounding errors are. The check against an
# independent implementation: Keras 3 quantizes a `Dense` layer in place with `layer.quantize("int8")` (and
# `"int4"`, which packs two 4-bit numbers in a byte). Built with the same kernel, its stored integers and scales are
# ours. (Keras' default int4 is a different scheme — a scale and a zero point per block of 128 inputs — so the
# comparison asks for one block per column, `block_size=-1`, which is §2's per-channel scheme.)

# %%
import keras

keras_configs = {8: None, 4: keras.quantizers.Int4QuantizationConfig(block_size=-1)}
for bits in (8, 4):
    dense = keras.layers.Dense(512, use_bias=False)
    dense.build((None, 128))
    dense.kernel.assign(w1)
    dense.quantize(f"int{bits}", config=keras_configs[bits])
    q_keras, s_keras = keras_int_weights(dense)
    q_ours, s_ours = quantize_weights(w1, bits=bits)
    np.testing.assert_array_equal(q_keras, q_ours)
    np.testing.assert_allclose(s_keras, s_ours, rtol=1e-6)
    x_ = np.random.default_rng(0).normal(size=(4, 128)).astype(np.float32)
    if bits == 8:  # int8 also rounds the input, one scale per row (below); int4 keeps it float
        q_x, s_x = quantize_weights(x_, bits=8, axis=0)
        expected = (q_x.astype(np.float32) @ q_ours) * s_x * s_ours
    else:
        expected = (x_ @ q_ours) * s_ours
    np.testing.assert_allclose(np.asarray(dense(x_)), expected, rtol=1e-4, atol=1e-4)
    print(f"int{bits}: Keras' integers and scales = ours, and so is its output")

# %% [markdown]
# One thing Keras does beyond the weights: its int8 `Dense` layer also quantizes its **input** to int8 on the fly,
# one scale $s_x$ per row (per token), so that the product itself runs on integers. Its output is therefore
# $s_x\, s_j\, (q_x\, q)_j$, with $q_x$ the rounded input: §2's formula applied to $x$ with the row as the channel.
# Its int4 layer keeps the input in float32 and only stores the weights in 4 bits (*weight-only* quantization):
# $s_j\,(x\, q)_j$. The assertions above check both.

# %% [markdown]
# ## 3 · Quantizing the GPT in Keras, and the tied-head pitfall
#
# Keras 3 quantizes a whole model with one call, `model.quantize("int8")`: every layer that knows how
# (`Dense`, `EinsumDense`, `Embedding`) replaces its float kernel by integers and scales. The baby GPT has one layer
# that is read in two places: the token table $E$ is the embedding at the bottom **and**, transposed, the output
# head at the top (tied embeddings, lesson 02 §5; lesson 08 §2: $\text{logits} = \text{LN}_f(x)\,E^\top$). The
# `Embedding` layer knows how to look up rows of its quantized table — it multiplies them by their scales — but
# the head is our code, `GPT.logits`, which reads the table itself. Reading the integers without their scales is
# what a naive head does:

# %%
x_eval, y_eval = evaluation_windows(val_ids, gpt.max_len)
x_eval, y_eval = x_eval[:64], y_eval[:64]
whole = teacher()
quantize_whole_model(
    whole, "int8"
)  # model.quantize("int8"): everything Keras can quantize, the table too


def lm_loss_np(logits, targets):
    """Mean next-token cross-entropy of logits [B, T, V] against targets [B, T] (lesson 09 §3)."""
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return float(-np.take_along_axis(logp, targets[..., None], -1).mean())


naive = lm_loss_np(np.asarray(naive_tied_logits(whole, x_eval)), y_eval)
right = lm_loss_np(np.asarray(whole(x_eval)), y_eval)
reference = lm_loss_np(np.asarray(gpt(x_eval)), y_eval)
print(f"float32 head: loss {reference:.2f}")
print(f"int8 table read without its scales: loss {naive:.0f}")
print(f"int8 table with its scales (the library's GPT.logits): loss {right:.2f}")
assert naive > 100 and abs(right - reference) < 0.05

# %% [markdown]
# A loss in the hundreds, and no error: the integers are up to 127 where the float table's entries are below one, so
# every logit is about a hundred times too large and the softmax is almost one-hot on the wrong tokens. Nothing in
# the shapes or the dtypes tells that anything went wrong — a **silent wrong answer**, the worst kind. The course's
# `GPT.logits` therefore asks the embedding layer whether it is quantized and, if it is, multiplies each row of the
# table by its scale before the product:

# %%
show_source(lessons_lib.GPT.logits, docstring=False)

# %% [markdown]
# `quantize_gpt` is the library's way to quantize a GPT: it quantizes the matrix products only (the `Dense` layers
# of attention and the FFN, 97.8 % of the parameters) and leaves the two tables in float32, so the head stays exact
# and nothing depends on who reads the table. It refuses a model that is not built, a mode it does not know, and a
# model that is already quantized (quantizing twice would round the integers again). A quantized model must be
# quantized *before* `load_weights` when it is reloaded: the file holds integers and scales, and only a quantized
# layer has variables for them.

# %%
show_source(quantize_gpt, docstring=False)

# %%
variants = {}  # name → dict(bytes=…, loss=…, seconds=…): every variant of this lesson, for §8
x_batch = np.asarray(x_eval[:32])  # one batch of 32 windows of 64 tokens: the latency test


def keras_seconds(model):
    """Median seconds of one forward pass of `x_batch` through a compiled Keras model."""
    forward = tf.function(lambda ids: model(ids, training=False))
    return median_seconds(lambda: forward(x_batch), repeats=7)


variants["float32 (Keras)"] = dict(
    bytes=weight_bytes(gpt), loss=base_loss, seconds=keras_seconds(gpt), params=gpt.count_params()
)
for mode in ("int8", "int4"):
    model = teacher()
    quantized = quantize_gpt(model, mode)
    variants[f"{mode} (Keras)"] = dict(
        bytes=weight_bytes(model),
        loss=val_loss(model),
        seconds=keras_seconds(model),
        params=gpt.count_params(),
    )
    print(f"{mode}: {len(quantized)} layers quantized, e.g. {quantized[0].split('/', 1)[1]}")
del model, whole

# %%
for name, v in variants.items():
    print(f"{name:18} {v['bytes'] / 1e6:5.2f} MB   loss {v['loss']:.3f}")
f32, i8, i4 = (variants[k] for k in ("float32 (Keras)", "int8 (Keras)", "int4 (Keras)"))
assert i8["bytes"] < 0.3 * f32["bytes"] and i4["bytes"] < 0.2 * f32["bytes"]
assert abs(i8["loss"] - f32["loss"]) < 0.01 and 0 < i4["loss"] - f32["loss"] < 0.3

# %% tags=["nbval-ignore-output"]
for name, v in variants.items():
    print(f"{name:18} {1e3 * v['seconds']:6.1f} ms per batch of 32 × 64 tokens")

# %% [markdown]
# int8 costs nothing visible in loss and takes about a quarter of the bytes (the scales and the float tables are
# the rest); int4 halves the bytes again, and the loss rises by about a hundredth — seven levels per sign are few. The time, though, does not improve: on this CPU TensorFlow's
# integer matrix product (and the extra work of quantizing every input on the fly) is *slower* than its float32
# one. Keras' quantization saves memory and disk here, not time. A fast int8 model needs a runtime built for it.

# %% [markdown]
# ## 4 · A deployable int8 model
#
# **LiteRT** (formerly TensorFlow Lite) is Google's runtime for running models on phones, microcontrollers and
# plain CPUs: a model is converted to one flat file, and a small interpreter — the `ai-edge-litert` package, which
# does not need TensorFlow — runs it with kernels written for int8 (XNNPACK on x86 and Arm). Keras exports to it
# with `model.export(path, format="litert")`; the converter's options choose what is quantized
# (see the [LiteRT quantization guide](https://ai.google.dev/edge/litert/models/post_training_quantization)):
#
# | conversion | weights | activations | what it needs |
# |---|---|---|---|
# | float32 | float32 | float32 | nothing |
# | **dynamic range** | int8, per channel (§2) | quantized on the fly, per batch | nothing |
# | full integer | int8 | int8 with **fixed** ranges | a calibration set |
#
# `export_litert` wraps the three conversions for a GPT (a fixed batch of 32 windows of 64 tokens: the interpreter
# runs fixed shapes), and `LiteRTModel` runs an exported file on any number of windows:

# %%
show_source(export_litert, docstring=False)

# %%
out_dir = Path("litert_models")
out_dir.mkdir(exist_ok=True)
calibration = evaluation_windows(train_ids, gpt.max_len)[0][:64]
lite = {}
for mode in ("float32", "dynamic_int8", "full_int8"):
    path = export_litert(
        gpt, out_dir / f"baby_gpt_{mode}.tflite", mode=mode, representative=calibration
    )
    lite[mode] = LiteRTModel(path)
    variants[f"LiteRT {mode}"] = dict(
        bytes=lite[mode].bytes,
        loss=litert_loss(lite[mode], val_ids, max_windows=EVAL_WINDOWS),
        seconds=median_seconds(lambda: lite[mode](x_batch), repeats=7),
        params=gpt.count_params(),
    )
np.testing.assert_allclose(lite["float32"](x_batch), np.asarray(gpt(x_batch)), atol=1e-4)
print("LiteRT float32 computes the Keras model's logits (to 1e-4)")

# %%
for name in ("float32 (Keras)", "LiteRT float32", "LiteRT dynamic_int8", "LiteRT full_int8"):
    v = variants[name]
    print(f"{name:20} {v['bytes'] / 1e6:5.2f} MB   loss {v['loss']:.3f}")
dyn = variants["LiteRT dynamic_int8"]
assert dyn["bytes"] < f32["bytes"] / 3 and abs(dyn["loss"] - f32["loss"]) < 0.01
assert variants["LiteRT full_int8"]["loss"] > f32["loss"] + 0.3

# %% tags=["nbval-ignore-output"]
for name in ("float32 (Keras)", "LiteRT float32", "LiteRT dynamic_int8", "LiteRT full_int8"):
    v = variants[name]
    print(
        f"{name:20} {1e3 * v['seconds']:6.1f} ms   {f32['seconds'] / v['seconds']:4.1f}× float32 Keras"
    )

# %% [markdown]
# The dynamic-range model is the deployable one: under a third of the bytes, the loss unchanged to the third
# decimal, and faster than the float32 Keras model on the same batch (live timings on a shared machine are only
# indicative; §8 reads the ratios the benchmark measured alone). Two things make it fast: the interpreter's kernels
# (LiteRT float32 is already faster than Keras here: no graph runtime around small operations) and the int8
# products themselves.
#
# **Why full-integer quantization hurts.** It also rounds every *activation* to int8, with one scale per tensor
# fixed in advance from the calibration set: the tensor's largest magnitude on the calibration windows becomes 127.
# A tensor whose values are mostly small but sometimes huge gives its typical values only a handful of levels.
# `activation_ranges` measures, for the input of every matrix product and for the attention scores, the largest
# magnitude against the 99.9th percentile; here are the four worst ratios, and the worst of the rest:

# %%
ranges = activation_ranges(gpt, calibration)
by_ratio = sorted(ranges.items(), key=lambda kv: kv[1]["ratio"], reverse=True)
for name, r in by_ratio[:4]:
    print(
        f"{name:26} max |x| {r['max_abs']:9.3g}   99.9 % {r['p999']:6.2f}   ratio {r['ratio']:9.3g}"
    )
name, r = next((n, r) for n, r in by_ratio if not n.endswith("masked_scores"))
print(f"{name:26} max |x| {r['max_abs']:9.3g}   99.9 % {r['p999']:6.2f}   ratio {r['ratio']:9.3g}")
assert all(n.endswith("masked_scores") for n, _ in by_ratio[:4]) and r["ratio"] < 5

# %% [markdown]
# The ordinary activations are tame: no input of a matrix product has a maximum more than a few times its 99.9th
# percentile. (Large models are different: beyond a few billion parameters some hidden features grow outliers a
# hundred times larger than the rest, which is what LLM.int8() (Dettmers et al., 2022) and SmoothQuant (Xiao et al.,
# 2023) were built to handle.) The culprit here is the **causal mask**. Lesson 04 masks a blocked score by replacing
# it with $-10^9$, so that its exponential is exactly zero. In float32 that is harmless; in one int8 range it is a
# disaster: the range must reach $10^9$, its step is $10^9/127 \approx 8 \times 10^6$, and every real score — all
# between about $-30$ and $30$ — rounds to the same integer, 0. Attention becomes a plain average over the past.
# NumPy shows it on block 0's attention of one window (its scores, recovered from the weights up to a per-row
# constant that the softmax ignores):

# %%
_, attn = gpt(x_eval[:1], return_attention=True)
w_true = np.asarray(attn)[0, 0, 0]  # block 0, head 0: [T, T]
allowed = np.tril(np.ones_like(w_true, dtype=bool))
scores = np.where(
    allowed, np.log(np.maximum(w_true, 1e-30)), -1e9
)  # the tensor the int8 model sees
q_scores, s_scores = quantize_weights(
    scores.reshape(-1, 1), bits=8
)  # one scale for the whole tensor
rounded = dequantize_weights(q_scores, s_scores).reshape(scores.shape)
w_int8 = np.exp(rounded - rounded.max(-1, keepdims=True))
w_int8 /= w_int8.sum(-1, keepdims=True)
uniform = allowed / allowed.sum(-1, keepdims=True)
print(f"int8 step of the masked scores: {s_scores.item():.3g}")
print(f"distinct values among the real scores after rounding: {np.unique(rounded[allowed]).size}")
print(f"max |weights − uniform| after rounding: {np.abs(w_int8 - uniform).max():.1e}")
assert np.unique(rounded[allowed]).size == 1 and np.allclose(w_int8, uniform)

# %% [markdown]
# The benchmark repeats the full-integer export with the mask's fill set to $-30$ instead of $-10^9$ (still far below
# every real score here, so the float model is unchanged): the loss comes back to within a few thousandths of
# float32. The lesson: a full-integer model needs every tensor's range to be meaningful — masks, padding, sentinel
# values included — and a calibration set that shows it the real ranges. Dynamic-range quantization avoids the
# question by choosing each activation's scale at run time, from the values actually there.

# %%
fixed = saved["full_int8_mask_fill"]
print(
    f"benchmark, whole split: full int8 {bench_loss('LiteRT full_int8'):.4f} with the −1e9 fill, "
    f"{fixed['loss']:.4f} with a fill of −{abs(fixed['fill']):g}; float32 {bench_loss('float32 (Keras)'):.4f}"
)
assert (
    fixed["loss"] - bench_loss("float32 (Keras)")
    < 0.02
    < bench_loss("LiteRT full_int8") - fixed["loss"]
)

# %% [markdown]
# ## 5 · Unstructured magnitude pruning
#
# A trained network has many weights near zero, and setting them to zero changes its output little. **Magnitude
# pruning** (Han et al., 2015, *Learning both Weights and Connections*) removes the fraction $p$ of weights with the
# smallest $|w|$ — the simplest of the criteria, and hard to beat (LeCun et al.'s *Optimal Brain Damage*, 1990, used
# second derivatives instead). A **mask** $m$ records which weights stay, and the pruned matrix is $W \odot m$:
#
# $$ m_{ij} = \begin{cases} 1 & |W_{ij}| \ge \theta_p \\ 0 & \text{otherwise} \end{cases}, \qquad
#    \theta_p = \text{the } p\text{-quantile of } |W| . $$
#
# The library prunes the same matrices §1 counted (attention and FFN), each with its own threshold; the tied table is
# left alone, since it is also the output head.

# %%
show_source(magnitude_masks, docstring=False)

# %%
pruned_losses = {}
for fraction in (0.3, 0.5, 0.7, 0.9):
    model = teacher()
    masks = prune(model, fraction)
    assert abs(sparsity(model) - fraction) < 1e-3
    pruned_losses[fraction] = val_loss(model)
    print(f"{100 * fraction:3.0f} % of the weights zero: loss {pruned_losses[fraction]:.3f}")
losses_ = [base_loss] + list(pruned_losses.values())
assert all(a <= b + 1e-3 for a, b in zip(losses_, losses_[1:]))  # more zeros, more loss
assert pruned_losses[0.3] - base_loss < 0.05 and pruned_losses[0.9] - base_loss > 0.8

# %% [markdown]
# A third of the weights go for about a hundredth of loss, half of them for under a tenth; beyond that the loss
# climbs steeply. A short **fine-tune** lets the remaining weights make up for the missing ones. It must keep the
# zeros: Adam's update is normalised per weight, so it moves every weight by about the learning rate whatever the
# size of its gradient, and one step would revive every pruned weight. The `MaskedTrainer` multiplies by the mask
# after every optimiser step, inside the compiled step:

# %%
show_source(MaskedTrainer.__init__, docstring=False)

# %%
fine_tuned = {}
for label, fraction in (("50 % pruned", 0.5), ("unpruned", None)):
    model = teacher()
    masks = prune(model, fraction) if fraction else None
    trainer = MaskedTrainer(
        model, masks, train_ids, val_ids, cfg=fine_tune_config(FINE_TUNE_STEPS), jit_compile=JIT
    )
    trainer.fit(FINE_TUNE_STEPS, eval_every=FINE_TUNE_STEPS, eval_windows=32, progress=False)
    fine_tuned[label] = val_loss(model)
    if fraction:
        assert abs(sparsity(model) - fraction) < 1e-3  # the zeros survived the fine-tune
        pruned_50 = model
print(
    f"after {FINE_TUNE_STEPS} fine-tuning steps: 50 % pruned {fine_tuned['50 % pruned']:.3f}, "
    f"unpruned {fine_tuned['unpruned']:.3f} (before: {pruned_losses[0.5]:.3f} and {base_loss:.3f})"
)
assert fine_tuned["50 % pruned"] < pruned_losses[0.5] - 0.02
assert fine_tuned["50 % pruned"] - fine_tuned["unpruned"] < 0.05

# %% [markdown]
# **What the zeros buy.** A zero stored in a dense float32 matrix still takes four bytes, and a dense matrix
# product still multiplies by it. The file of the 50 % pruned model is exactly as large as the original's; only a
# general-purpose compressor notices the zeros:

# %%
sizes = {
    name: (dense_bytes(m), compressed_bytes(m))
    for name, m in (("original", gpt), ("50 % pruned", pruned_50))
}
for name, (d, c) in sizes.items():
    print(f"{name:12} weights file {d / 1e6:5.2f} MB, zlib-compressed {c / 1e6:5.2f} MB")
assert sizes["original"][0] == sizes["50 % pruned"][0]
assert sizes["50 % pruned"][1] < 0.8 * sizes["original"][1]

# %% tags=["nbval-ignore-output"]
t_dense = keras_seconds(gpt)
t_pruned = keras_seconds(pruned_50)
print(f"forward pass: original {1e3 * t_dense:.1f} ms, 50 % pruned {1e3 * t_pruned:.1f} ms")
variants["50 % pruned, fine-tuned"] = dict(
    bytes=weight_bytes(pruned_50),
    loss=fine_tuned["50 % pruned"],
    seconds=t_pruned,
    params=gpt.count_params(),
)

# %% [markdown]
# The same time: a dense kernel does not skip zeros. Unstructured sparsity pays only with a **sparse format** (values
# plus indices, which at 50 % is no smaller than the dense matrix) and kernels that skip the zeros, which need high
# sparsity to beat a dense product. Hardware vendors therefore support a *structured* pattern: NVIDIA's Ampere GPUs
# run **2:4 sparsity** (two of every four consecutive weights zero) at up to twice the dense speed (Mishra et al.,
# 2021; Exercise 2 builds such a mask). The other way is to remove whole rows and columns, so that the matrices
# themselves get smaller.

# %% [markdown]
# ## 6 · Structured pruning: fewer FFN neurons
#
# The FFN (lesson 06) is $\text{act}(x W_1) W_2$: hidden neuron $j$ reads column $j$ of $W_1$ and writes row $j$ of
# $W_2$, and nothing else touches it. Removing the neuron removes that column and that row, and the FFN with the
# remaining $d_{ff}' < d_{ff}$ neurons computes exactly what the full FFN computes with the removed neurons set to
# zero:
#
# $$ \text{act}(x W_1) W_2 = \sum_{j=1}^{d_{ff}} \text{act}(x W_{1,:j})\, W_{2,j:}
#    \;\approx\; \sum_{j \in \text{kept}} \text{act}(x W_{1,:j})\, W_{2,j:} . $$
#
# Which neurons to keep? A neuron's contribution $\text{act}(x W_{1,:j})\,W_{2,j:}$ is bounded by the size of what
# it reads and what it writes, so one score is $\lVert W_{1,:j} \rVert \cdot \lVert W_{2,j:} \rVert$, from the
# weights alone. A better one looks at data: the mean size of the neuron's activation on some training windows
# times $\lVert W_{2,j:} \rVert$ — a neuron with large weights that rarely fires matters little. `prune_ffn` keeps
# the highest-scoring neurons of every block, builds a **new, smaller GPT** (its `d_ff` is the number kept), and
# copies the kept weights into it; every other weight is copied unchanged.

# %%
show_source(prune_ffn, docstring=False)

# %%
scoring = {
    "weights": ffn_neuron_importance(gpt),
    "activations": ffn_neuron_importance(gpt, train_ids),  # 32 training windows
}
structured = {}
for keep in (256, 128):
    for how, scores in scoring.items():
        small = prune_ffn(gpt, keep, importance=scores)
        structured[keep, how] = dict(model=small, loss=val_loss(small))
    assert small.count_params() == gpt_param_count(65, 64, 128, 4, d_ff=keep, use_bias=False)
    print(
        f"d_ff 512 → {keep}: {small.count_params():,} parameters, loss "
        f"{structured[keep, 'weights']['loss']:.3f} (weight score), "
        f"{structured[keep, 'activations']['loss']:.3f} (activation score)"
    )
assert all(
    structured[k, "activations"]["loss"] < structured[k, "weights"]["loss"] for k in (256, 128)
)
assert structured[256, "activations"]["loss"] < structured[128, "activations"]["loss"]

# %% [markdown]
# Half of the FFN neurons are a third of the parameters. The cut costs more loss than unstructured pruning at the
# same count (a whole neuron goes, not just its small weights), but the model is now genuinely smaller — in its file
# and in every product. A fine-tune recovers much of the loss; then the forward pass is timed:

# %%
small = structured[128, "activations"]["model"]
trainer = MaskedTrainer(
    small, None, train_ids, val_ids, cfg=fine_tune_config(FINE_TUNE_STEPS), jit_compile=JIT
)
trainer.fit(FINE_TUNE_STEPS, eval_every=FINE_TUNE_STEPS, eval_windows=32, progress=False)
tuned_128 = val_loss(small)
print(f"d_ff 128 after {FINE_TUNE_STEPS} steps: loss {tuned_128:.3f}")
assert tuned_128 < structured[128, "activations"]["loss"] - 0.2
variants["FFN pruned to 128, fine-tuned"] = dict(
    bytes=weight_bytes(small),
    loss=tuned_128,
    seconds=keras_seconds(small),
    params=small.count_params(),
)
assert dense_bytes(small) < 0.6 * dense_bytes(gpt)

# %% tags=["nbval-ignore-output"]
print(
    f"forward pass: d_ff 512 {1e3 * keras_seconds(gpt):.1f} ms, d_ff 128 "
    f"{1e3 * variants['FFN pruned to 128, fine-tuned']['seconds']:.1f} ms"
)

# %% [markdown]
# ## 7 · Knowledge distillation
#
# Pruning and quantization start from the big model and take things away. **Distillation** (Hinton, Vinyals &
# Dean, 2015) trains a small model — the **student** — from scratch, but not only on the data's labels: it also learns
# to match the **teacher's** output distribution. For the next character after "th", the label says only "e"; the
# teacher says "e" 0.7, "a" 0.1, "i" 0.08, "o" 0.05 …, which tells the student how the characters resemble each other
# for this context. Hinton et al. call this the *dark knowledge* in the teacher's small probabilities.
#
# **The loss.** Both models' logits $z$ are divided by a **temperature** $\tau$ before the softmax,
# $p_\tau = \operatorname{softmax}(z/\tau)$; $\tau > 1$ flattens the distributions, so that the small probabilities
# weigh more. The student minimises a mix of the KL divergence to the teacher and the ordinary cross-entropy on the
# labels $y$:
#
# $$ \mathcal{L} = \alpha\, \tau^2\, \mathrm{KL}\!\left(p_\tau^{T} \,\middle\|\, p_\tau^{S}\right)
#    + (1 - \alpha)\, \mathrm{CE}\!\left(y,\, p_1^{S}\right), \qquad
#    \mathrm{KL}(p \,\|\, q) = \sum_k p_k \log \frac{p_k}{q_k} . $$
#
# **Why $\tau^2$.** Differentiate the KL term with respect to a student logit. The teacher's part is a constant and
# $\partial \log p^S_{\tau,k'} / \partial z^S_k = (\delta_{kk'} - p^S_{\tau,k}) / \tau$, so
#
# $$ \frac{\partial\, \mathrm{KL}}{\partial z^S_k} = \frac{1}{\tau}\left(p^S_{\tau,k} - p^T_{\tau,k}\right). $$
#
# For large $\tau$, $p_{\tau,k} \approx (1 + z_k/\tau)/V$ for zero-mean logits over $V$ classes, so the gradient is
# $\approx (z^S_k - z^T_k) / (V\tau^2)$: it shrinks as $1/\tau^2$. Multiplying the term by $\tau^2$ keeps its
# gradient on the same scale whatever the temperature, so that $\alpha$ means the same thing at every $\tau$
# (Hinton et al., §2). The gradient of the whole loss is
# $\alpha\,\tau\,(p^S_\tau - p^T_\tau) + (1-\alpha)(p^S_1 - \text{onehot}(y))$ per token — checked below against
# automatic differentiation, after the NumPy reference is checked against the TensorFlow loss the training uses.

# %%
show_source(distillation_loss, docstring=False)

# %%
rng = np.random.default_rng(0)
z_s, z_t = 2 * rng.normal(size=(2, 3, 5, 65)).astype(np.float32)  # logits [batch 3, T 5, V 65]
labels = rng.integers(0, 65, size=(3, 5)).astype(np.int32)
for tau, alpha in ((1.0, 1.0), (2.0, 0.5), (4.0, 0.9)):
    ours = distillation_loss_numpy(z_s, z_t, labels, temperature=tau, alpha=alpha)
    np.testing.assert_allclose(
        float(distillation_loss(z_s, z_t, labels, temperature=tau, alpha=alpha)), ours, rtol=1e-5
    )
    zs = tf.Variable(z_s)
    with tf.GradientTape() as tape:
        loss = distillation_loss(zs, z_t, labels, temperature=tau, alpha=alpha)
    grad = tape.gradient(loss, zs).numpy()
    p_s, p_t = (np.exp(z / tau) / np.exp(z / tau).sum(-1, keepdims=True) for z in (z_s, z_t))
    p_1 = np.exp(z_s) / np.exp(z_s).sum(-1, keepdims=True)
    formula = (alpha * tau * (p_s - p_t) + (1 - alpha) * (p_1 - np.eye(65)[labels])) / labels.size
    np.testing.assert_allclose(grad, formula, atol=1e-6)
    print(f"τ = {tau}, α = {alpha}: loss {ours:.4f}; NumPy = TensorFlow, gradient = the formula")

# %% [markdown]
# **The student** has half the width and half the layers of its teacher:

# %%
student_params = gpt_param_count(
    STUDENT.vocab_size, STUDENT.max_len, STUDENT.d_model, STUDENT.num_layers, use_bias=False
)
print(
    f"student: d_model {STUDENT.d_model}, {STUDENT.num_layers} layers, {student_params:,} parameters — "
    f"{gpt.count_params() / student_params:.1f}× fewer than the teacher's {gpt.count_params():,}"
)
assert gpt.count_params() / student_params > 5

# %% [markdown]
# Three students start from the same initial weights and see the same batches: one learns from the labels only
# ($\alpha = 0$, ordinary training), one from the teacher only ($\alpha = 1$), one from both ($\alpha = 0.5$). The
# teacher runs on every batch without gradients. Here they train for `DISTILL_STEPS` steps (each with a learning-rate
# schedule that ends at its last step); the benchmark trains the same three for 600 steps (and a fourth at
# $\tau = 2$), and its curves are drawn beside:

# %%
students = {}
distill_cfg = dataclasses.replace(  # STUDENT_TRAIN's schedule, ending at the last step
    STUDENT_TRAIN,
    max_steps=DISTILL_STEPS,
    decay_steps=DISTILL_STEPS,
    warmup_steps=DISTILL_STEPS // 20,
)
for label, alpha in (
    ("labels only (α = 0)", 0.0),
    ("teacher only (α = 1)", 1.0),
    ("mixed (α = 0.5)", 0.5),
):
    student = STUDENT.build(seed=0)
    trainer = DistillationTrainer(
        student,
        gpt,
        train_ids,
        val_ids,
        cfg=distill_cfg,
        temperature=1.0,
        alpha=alpha,
        jit_compile=JIT,
    )
    history = trainer.fit(DISTILL_STEPS, eval_every=50, eval_windows=64, progress=False)
    students[label] = dict(model=student, history=history, loss=val_loss(student))
    print(f"{label:22} loss after {DISTILL_STEPS} steps: {students[label]['loss']:.3f}")
live = [students[k]["loss"] for k in students]
assert (
    live[1] < live[2] < live[0]
)  # teacher only, mixed, labels only: the order of the benchmark's 600 steps
curves = saved["distillation"]["curves"]
final = {k: c["val_loss"][-1] for k, c in curves.items()}
print(
    f"benchmark, {saved['distillation']['steps']} steps: "
    + ", ".join(f"{k} {v:.3f}" for k, v in final.items())
)
assert final["teacher only"] < final["mixed"] < final["labels only"] - 0.05
for label in ("labels only (α = 0)", "mixed (α = 0.5)"):
    m = students[label]["model"]
    variants[f"student, {label}"] = dict(
        bytes=weight_bytes(m),
        loss=students[label]["loss"],
        seconds=keras_seconds(m),
        params=m.count_params(),
    )

# %%
fig, ax = plt.subplots(figsize=(7, 4))
for label, s in students.items():
    ax.plot(
        s["history"]["eval_step"], s["history"]["val_loss"], "o-", ms=3, label=f"{label}, this run"
    )
for label, curve in saved["distillation"]["curves"].items():
    ax.plot(curve["step"], curve["val_loss"], "--", label=f"{label}, benchmark")
ax.axhline(saved["variants"]["float32 (Keras)"]["loss"], color="k", lw=0.8, label="the teacher")
ax.set(
    xlabel="training step",
    ylabel="validation loss",
    title="a 7.5× smaller student, taught three ways",
)
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# In both runs the student that learns from the teacher alone beats the one that learns from the labels — on the
# labels' own measure, the validation cross-entropy, with the same steps and the same batches — and the mixed one
# lies between. The teacher's distribution is a richer target than a one-hot label: 65 numbers per position instead
# of one, and smoother, so the gradients are less noisy. The temperature is $\tau = 1$ here: at $\tau = 2$ the
# benchmark's student ends *worse* than the labels-only one (below). The course has not measured why. A
# plausible reading: flattening the distribution makes the student spend its few parameters on the teacher's
# smallest probabilities, which the validation loss at $\tau = 1$ barely rewards; Hinton et al.'s large
# temperatures were for classifiers with very confident teachers, whose small probabilities carry most of the
# information. Temperature is a hyperparameter to measure, not a constant.

# %%
tau2, labels_600 = (bench_loss(k) for k in ("student, teacher only, τ = 2", "student, labels only"))
print(f"benchmark, whole split: teacher only at τ = 2 {tau2:.3f}, labels only {labels_600:.3f}")
assert tau2 > labels_600

# %%
show_source(keras_distiller_default_loss, docstring=False)

# %%
z_student = np.asarray(students["labels only (α = 0)"]["model"](x_eval[:8]))
z_teacher = np.asarray(gpt(x_eval[:8]))
pitfall = keras_distiller_losses(z_student, z_teacher, temperature=2.0)
print(
    f"Keras' default: {pitfall['keras_default']:.1f}   "
    f"τ² · KL on probabilities: {pitfall['kl_on_probabilities']:.2f}"
)
assert pitfall["keras_default"] > 10 * pitfall["kl_on_probabilities"]

# %% [markdown]
# ## 8 · The trade-off picture
#
# Every variant of this lesson is a point: how many bytes it needs and how fast it runs, against how much loss it
# gives up. The benchmark measured each on the whole validation split, alone on the machine, and with the longer
# training lengths; the crosses are this run's measurements on the lesson's windows.

# %%
print(f"benchmarks/results/compression.json: {saved['meta']['command']}")
print(f"({saved['meta']['date']}, {saved['meta']['machine']})\n")
print(
    f"{'variant':32} {'parameters':>10} {'MB':>6} {'× smaller':>9} {'ms/batch':>9} {'× faster':>8} {'val loss':>9}"
)
for name, v in saved["variants"].items():
    print(
        f"{name:32} {v['params']:>10,} {v['bytes'] / 1e6:6.2f} {v['size_ratio']:9.1f} "
        f"{1e3 * v['seconds']:9.1f} {v['speedup']:8.1f} {v['loss']:9.4f}"
    )
bench = saved["variants"]
deploy, teacher_loss = bench["LiteRT dynamic_int8"], bench_loss("float32 (Keras)")
assert deploy["speedup"] >= 2 and deploy["size_ratio"] >= 3
assert deploy["loss"] - teacher_loss <= 0.005
runtime_share = bench["LiteRT float32"]["speedup"]  # the runtime alone, before any int8
assert 1 < runtime_share < deploy["speedup"]
assert bench["int8 (Keras)"]["speedup"] < 1 < bench["FFN pruned to 256, fine-tuned"]["speedup"]
assert 1.4 < bench["FFN pruned to 256, fine-tuned"]["size_ratio"] < 1.6
assert (
    bench["student, teacher only"]["speedup"] > 2
    and round(bench["student, teacher only"]["size_ratio"], 1) == 7.5
)
assert (
    bench_loss("student, teacher only") - teacher_loss
    < (bench_loss("student, labels only") - teacher_loss) / 1.5
)
fastest = min(bench, key=lambda k: bench[k]["seconds"])
assert (
    fastest == min(bench, key=lambda k: bench[k]["bytes"]) == "student, mixed + LiteRT dynamic_int8"
)

# %% tags=["nbval-ignore-output"]
fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
for ax, key, xlabel in (
    (axes[0], "bytes", "MB of weights"),
    (axes[1], "seconds", "ms per batch of 32 × 64"),
):
    scale = 1e-6 if key == "bytes" else 1e3
    for name, v in bench.items():
        ax.scatter(v[key] * scale, v["loss"], s=30)
        ax.annotate(
            name, (v[key] * scale, v["loss"]), fontsize=7, xytext=(3, 3), textcoords="offset points"
        )
    live = [v for v in variants.values()]
    ax.scatter(
        [v[key] * scale for v in live],
        [v["loss"] for v in live],
        marker="x",
        c="gray",
        label="this run",
    )
    ax.set(xscale="log", xlabel=xlabel)
    ax.legend(fontsize=8)
axes[0].set(ylabel="validation loss (benchmark: whole split)", title="smaller …")
axes[1].set(title="… and faster")
plt.tight_layout()
plt.show()

# %% [markdown]
# How to read it:
#
# * **The deployable model** is LiteRT's dynamic-range int8: under a third of the bytes, the loss unchanged within
#   a thousandth on the whole validation split, and between two and three times faster than the float32 Keras model.
#   Part of the speed is the runtime (LiteRT float32 alone is already faster than Keras on these small operations),
#   part the int8 products. Keras' own int8 is as small but slower: on this CPU its integer product does not pay.
# * **Pruning** buys little here. Unstructured zeros change neither the file nor the time; removing FFN neurons gives
#   a real but modest gain (half the neurons: 1.5× smaller, about 1.3× faster after a fine-tune), because attention
#   and the tables stay whole.
# * **Distillation** makes the smallest models: the student has 7.5× fewer parameters and runs about three times
#   faster, and the one taught by the teacher is much closer to it than the same model trained on the labels. And
#   the techniques compose: the distilled student exported to LiteRT int8 is the smallest and fastest point of all.
#
# None of the points is free: every step down in size moved the loss up, and only the product measured on real
# data tells by how much. That is the whole method of this lesson — derive it, build it, then measure both axes.

# %% [markdown]
# ## 9 · Exercises
#
# ### Exercise 1 — a matrix product in integers
#
# Write `int8_matmul(x, w)`: quantize each row of `x [n, d_in]` and each column of `w [d_in, d_out]` to int8 with
# symmetric scales (§2), multiply the integers **as integers** (int32 accumulators, so nothing overflows: 127 · 127 ·
# d_in fits), and rescale the result by the row and column scales. It must equal what Keras' int8 `Dense` layer
# computes. You may use `quantize_weights`.


# %%
def int8_matmul(x, w):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
rng = np.random.default_rng(1)
matmul_cases = [
    (rng.normal(size=(4, 128)).astype(np.float32), w1),
    (rng.normal(size=(1, 16)).astype(np.float32), rng.normal(size=(16, 3)).astype(np.float32)),
]


def keras_int8_dense(x, w):
    """Keras' own int8 Dense layer with kernel w (no bias), applied to x."""
    layer = keras.layers.Dense(w.shape[1], use_bias=False)
    layer.build((None, w.shape[0]))
    layer.kernel.assign(w)
    layer.quantize("int8")
    return np.asarray(layer(x))


check(
    int8_matmul,
    keras_int8_dense,
    inputs=matmul_cases,
    name="int8_matmul",
    atol=1e-4,
    rtol=1e-4,
    forbid=("keras_int8_dense", "keras"),
    hint=(
        "Rows of x get one scale each: quantize_weights(x, 8, axis=0); columns of w: quantize_weights(w, 8, axis=-1).",
        "qx, sx = quantize_weights(x, 8, axis=0); qw, sw = quantize_weights(w, 8); return (qx.astype(np.int32) @ qw.astype(np.int32)) * sx * sw",
    ),
)


# %% tags=["solution"]
def int8_matmul(x, w):
    qx, sx = quantize_weights(x, 8, axis=0)  # one scale per row: [n, 1]
    qw, sw = quantize_weights(w, 8, axis=-1)  # one scale per column: [1, d_out]
    return (qx.astype(np.int32) @ qw.astype(np.int32)).astype(np.float32) * sx * sw


assert check(
    int8_matmul,
    keras_int8_dense,
    inputs=matmul_cases,
    atol=1e-4,
    rtol=1e-4,
    forbid=("keras_int8_dense",),
)

# %% [markdown]
# ### Exercise 2 — a 2:4 sparsity mask
#
# NVIDIA's sparse tensor cores skip zeros when exactly two of every four consecutive weights along the input
# dimension are zero. Write `two_four_mask(w)`: for `w [d_in, d_out]` (with `d_in` divisible by 4), a boolean mask
# of the same shape that keeps, in every column, the two largest $|w|$ of each group of rows $4g \dots 4g+3$.


# %%
def two_four_mask(w):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
mask_cases = [w1, rng.normal(size=(8, 3))]


def reference_two_four(w):
    groups = np.abs(w).reshape(w.shape[0] // 4, 4, w.shape[1])
    ranks = groups.argsort(axis=1).argsort(axis=1)  # 0 = smallest of the four
    return (ranks >= 2).reshape(w.shape)


check(
    two_four_mask,
    reference_two_four,
    inputs=mask_cases,
    name="two_four_mask",
    forbid=("reference_two_four",),
    hint=(
        "Reshape |w| to [d_in / 4, 4, d_out]: the axis of length 4 holds each group.",
        "g = np.abs(w).reshape(-1, 4, w.shape[1]); keep = g >= np.sort(g, axis=1)[:, 2:3]; return keep.reshape(w.shape)",
    ),
)


# %% tags=["solution"]
def two_four_mask(w):
    groups = np.abs(w).reshape(-1, 4, w.shape[1])
    second_largest = np.sort(groups, axis=1)[:, 2:3]
    return (groups >= second_largest).reshape(w.shape)


assert check(two_four_mask, reference_two_four, inputs=mask_cases, forbid=("reference_two_four",))
m24 = two_four_mask(w1)
assert m24.mean() == 0.5
print(
    f"a 2:4 mask on W_1 keeps {m24.mean():.0%}; relative error of W_1 ⊙ m: "
    f"{np.linalg.norm(w1 - w1 * m24) / np.linalg.norm(w1):.3f} "
    f"(unstructured 50 %: {np.linalg.norm(w1 - w1 * (np.abs(w1) >= np.median(np.abs(w1)))) / np.linalg.norm(w1):.3f})"
)

# %% [markdown]
# ### Exercise 3 — the distillation term
#
# Write `kd_term(student_logits, teacher_logits, temperature)`: the soft part of §7's loss without its $\alpha$,
# $\tau^2 \cdot \mathrm{KL}(p^T_\tau \,\|\, p^S_\tau)$, averaged over all positions (logits `[..., V]`), in NumPy.
# Compute the logarithms stably (subtract each row's maximum before `exp`).


# %%
def kd_term(student_logits, teacher_logits, temperature):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
kd_cases = [(z_s, z_t, 1.0), (z_s, z_t, 2.0), (100 * z_s, 100 * z_t, 3.0)]


def reference_kd(student_logits, teacher_logits, temperature):
    targets = np.zeros(
        student_logits.shape[:-1], dtype=np.int32
    )  # unused: α = 1 keeps the soft part only
    return distillation_loss_numpy(
        student_logits, teacher_logits, targets, temperature=temperature, alpha=1.0
    )


check(
    kd_term,
    reference_kd,
    inputs=kd_cases,
    name="kd_term",
    rtol=1e-5,
    atol=1e-6,
    forbid=("distillation_loss", "reference_kd", "soft_kl"),
    hint=(
        "log p_τ = z/τ − max − log Σ exp(z/τ − max), for both models; KL = Σ_k p_T (log p_T − log p_S) per position.",
        "def logp(z): z = z / temperature; z = z - z.max(-1, keepdims=True); return z - np.log(np.exp(z).sum(-1, keepdims=True)); then temperature**2 * (np.exp(lt) * (lt - ls)).sum(-1).mean()",
    ),
)


# %% tags=["solution"]
def kd_term(student_logits, teacher_logits, temperature):
    def log_softmax(z):
        z = np.asarray(z, np.float64) / temperature
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    log_s, log_t = log_softmax(student_logits), log_softmax(teacher_logits)
    return temperature**2 * float((np.exp(log_t) * (log_t - log_s)).sum(-1).mean())


assert check(
    kd_term,
    reference_kd,
    inputs=kd_cases,
    rtol=1e-5,
    atol=1e-6,
    forbid=("distillation_loss", "reference_kd"),
)

# %% [markdown]
# ## Summary
#
# * **Size is mostly matrices.** 97.8 % of the baby GPT's parameters are the weights of its matrix products; that is
#   where quantization and pruning act, and where distillation saves by training a smaller model.
# * **Quantization.** Symmetric per-channel int8 stores $q = \operatorname{round}(W / s)$ with one scale per output
#   channel, $s_j = \max_i |W_{ij}| / 127$; every error is at most $s_j/2$, and the scale factors out of the product,
#   so the integers multiply as integers. Keras' int8 and int4 layers hold exactly these integers. int8 costs no
#   visible loss, int4 about a hundredth.
# * **Silent wrong answers hide in shared weights.** Quantizing the tied token table and reading it in the head
#   without its scales gives a loss in the hundreds and no error; the course's `GPT.logits` reads the table through
#   the embedding layer, and `quantize_gpt` leaves the tables in float32.
# * **Deploying int8.** LiteRT's dynamic-range int8 model is under a third of the size, within a thousandth of the
#   loss, and two to three times faster than float32 Keras on two cores, with an interpreter that needs no TensorFlow.
#   Full-integer quantization failed here because of one tensor: the causal mask's $-10^9$ fill, which leaves all real
#   attention scores on a single int8 level. Every tensor's range must mean something.
# * **Pruning.** Half of the weights can be zeroed for under a tenth of loss, and a short fine-tune that keeps the
#   zeros recovers it; but zeros shrink only a compressed file, not a dense one or a dense product. Removing whole
#   FFN neurons builds a genuinely smaller GPT, and an activation-based score chooses the neurons far better than
#   the weights alone.
# * **Distillation.** The loss $\alpha\tau^2\mathrm{KL}(p^T_\tau \| p^S_\tau) + (1-\alpha)\mathrm{CE}$; the $\tau^2$
#   keeps the soft term's gradient, $\tau(p^S_\tau - p^T_\tau)$, on the scale of the hard one's. A student with 7.5×
#   fewer parameters, taught by the GPT, ends much closer to it than the same student trained on the labels.
#
# **Where next:** this is the last lesson. The README lists further reading, and every lesson's benchmark can be
# re-run on your own machine: its ratios are the ones to compare.
