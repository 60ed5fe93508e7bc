# %% [markdown]
# # 14 · What it costs and how it scales
#
# The source article praises the Transformer for two strengths, **parallel computation** and **long-range
# dependencies** (section 3.3), names its weaknesses in the same breath (**compute grows quickly, storage needs are
# large**), and lists **compute resources** as the first challenge of the field (section 8.3). This lesson turns those
# sentences into numbers you can compute *before* running a model, and then checks every prediction against a
# measurement on the machine in front of you.
#
# **Goals.** By the end of this lesson you can
#
# 1. count a GPT's parameters and the **bytes** they take in float32, bfloat16 and int8 (the baby GPT, GPT-2 small,
#    GPT-3 175 B), and what training adds on top;
# 2. derive the **FLOPs per token** of a forward pass ($\approx 2N$ plus an attention term that grows with $T$) and
#    the **$6ND$** rule for training, from the matrix shapes of lessons 05–08, and check the count against
#    TensorFlow's own profiler;
# 3. size the **KV cache**, and see what multi-query and grouped-query attention do to it;
# 4. measure attention's **$T^2$** in time and in memory, and name what the field does about it;
# 5. measure **step time against predicted FLOPs** and explain where the achieved FLOP/s is not constant;
# 6. measure the article's central claim, **parallel vs sequential**: a GRU against a Transformer block;
# 7. run a **scaling-law experiment** of your own and set its exponent beside the published ones;
# 8. derive **data parallelism**, and train the GPT on several devices with `tf.distribute`, matching single-device
#    training to $10^{-6}$.
#
# ```text
#   count (§1–§3)            predict (§2)              measure (§4–§6)            scale (§7–§9)
#   N, bytes, KV cache  ──►  FLOPs = 2N + 4LTd   ──►  seconds, peak memory  ──►  L(N) ∝ N^-α,  R replicas
# ```

# %% tags=["nbval-ignore-output"]
import lessons_lib

info = lessons_lib.setup(seed=0)

# %%
import contextlib
import io
import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from lessons_lib import (
    DistributedTrainer,
    compare_with_single_device,
    fit_dtype_trap,
    split_cpu,
    BABY_GPT_ARCH,
    DTYPE_BYTES,
    FULL_SWEEP,
    GPT2_SMALL,
    GPT3_175B,
    KAPLAN_ALPHA_C,
    KAPLAN_ALPHA_N,
    LESSON_SWEEP,
    SCALING_LAW_JSON,
    SCALING_SIZES,
    Architecture,
    attention_peak_memory,
    attention_seconds,
    check,
    describe_config,
    fit_power_law,
    graph_flops,
    loglog_slope,
    mean_final_losses,
    non_embedding_params,
    recurrent_vs_attention,
    scaled_dot_product_attention,
    scores_bytes,
    show_source,
    step_seconds,
    sweep,
    total_params,
    training_compute,
)
from lessons_lib.training import BABY_GPT, BABY_TRAIN, ModelConfig

ROOT = Path(lessons_lib.__file__).resolve().parents[1]
COST_JSON = ROOT / "benchmarks" / "results" / "cost.json"
DISTRIBUTED_JSON = ROOT / "benchmarks" / "results" / "distributed.json"
saved = json.loads(COST_JSON.read_text())  # bench_cost.py's figures, plotted beside the live ones
devices = split_cpu(2)  # §9 trains on two logical CPU devices: before TensorFlow's first operation

# %% [markdown]
# ### How long this notebook runs
#
# The default run takes about three minutes on 2 CPU cores: every measurement is made live on small sizes, and the
# same measurements over larger sizes, made by `python benchmarks/bench_cost.py --json benchmarks/results/cost.json`
# and `python benchmarks/scaling_law.py`, are read from their JSON files and plotted beside them. Timings on a shared
# machine move by up to 2× between runs, so the lesson compares **slopes and ratios measured in one run**, never a
# number of milliseconds. With `FULL = True` (what `llm-course run --full` passes) §4 measures attention up to
# $T = 4{,}096$ and §7 trains the full sweep here (about 15 minutes).

# %% tags=["parameters"]
FULL = False  # True: attention up to T = 4,096 and the full scaling sweep here (~15 minutes)

# %% [markdown]
# ## 1 · Counting parameters and bytes
#
# Lesson 08 §4 counted a GPT's parameters from its equations: a block has $4d^2$ in attention ($W_Q, W_K, W_V, W_O$),
# $2\,d\,d_{ff} = 8d^2$ in the FFN, and a few vectors, so
#
# $$ N_{total} \;=\; \underbrace{V d}_{\text{tokens}} + \underbrace{T_{max}\, d}_{\text{positions}}
#    + L\,(12 d^2 + \text{biases, LayerNorms}) + \text{LN}_f . $$
#
# Kaplan et al. (2020) call the part outside the two tables the **non-embedding** parameters, $N \approx 12\,L\,d^2$;
# it is the $N$ of the scaling laws (§7). Memory is the count times the bytes per number: 4 in float32, 2 in
# bfloat16 or float16, 1 in int8 (lesson 15 quantizes to it). `Architecture` holds the shapes and does the
# arithmetic; here it is for three models (GPT-3's shapes are the paper's Table 2.1):

# %%
models = (BABY_GPT_ARCH, GPT2_SMALL, GPT3_175B)
print(
    f"{'':12} {'parameters':>17} {'non-embedding':>17} "
    + " ".join(f"{k:>10}" for k in ("float32", "bfloat16", "int8"))
)
for a in models:
    sizes = " ".join(
        f"{a.bytes(k) / 1e6:8.1f} MB" if a.bytes(k) < 1e9 else f"{a.bytes(k) / 1e9:8.1f} GB"
        for k in ("float32", "bfloat16", "int8")
    )
    print(f"{a.name:12} {a.params:>17,} {a.non_embedding_params:>17,} {sizes}")

baby = BABY_GPT.build()
assert Architecture.of(baby).params == baby.count_params() == 804_096  # the formula = Keras' count
assert round(BABY_GPT_ARCH.bytes("float32") / 1e6, 1) == 3.2
assert GPT2_SMALL.params == 124_439_808
assert round(GPT3_175B.params / 1e9, 1) == 174.6
assert round(GPT3_175B.bytes("bfloat16") / 1e9) == 349

# %% [markdown]
# The baby GPT fits in 3.2 MB; GPT-3's **174.6 B** parameters (the "175 B" of its name) take **349 GB** in bfloat16 —
# more than four 80 GB accelerators hold, for the weights alone. Training needs more: a gradient for every weight
# and, with Adam, two moment estimates. Mixed-precision training with Adam keeps 16 bytes per parameter (2 for the
# bfloat16 weights, 2 for their gradients, 12 for float32 copies of the weights and both moments; Rajbhandari et al.,
# 2020, "ZeRO", §3.1):

# %%
ADAM_MIXED_BYTES = 2 + 2 + 3 * 4  # weights, gradients (16-bit); float32 weights, m, v
for a in models:
    print(f"{a.name:12} training state ≈ {ADAM_MIXED_BYTES * a.params / 1e9:10,.3f} GB")
assert round(ADAM_MIXED_BYTES * GPT3_175B.params / 1e12, 1) == 2.8

# %% [markdown]
# **2.8 TB** of training state for GPT-3, before a single activation is stored: one reason training is spread over
# many devices (§8–§9).

# %% [markdown]
# ## 2 · FLOPs per token, and the $6ND$ rule
#
# A product of a row vector $[1, a]$ and a matrix $[a, b]$ takes $a \cdot b$ multiplications and as many additions:
# $2ab$ floating-point operations (**FLOPs**). A token going forward through the model meets every weight matrix once,
# so the projections and the FFN cost $2 \times$ their parameter count; the output layer (tied or not) multiplies by
# the $d \times V$ table once more. Attention adds a term that depends on the context: the token's query meets $T$
# keys ($q K^\top$: $2Td$ per layer) and its weights meet $T$ values ($aV$: $2Td$ again). Per token,
#
# $$ C_{forward} \;\approx\; 2\,N_{matmul} + 4\,L\,T\,d, \qquad N_{matmul} = L\,(4d^2 + 2\,d\,d_{ff}) + d\,V . $$
#
# Kaplan et al. (2020, eq. 2.2) write $C_{forward} \approx 2N + 2\,n_{layer}\,n_{ctx}\,d_{attn}$; counting both
# products over the full $T \times T$ matrix, as our layer computes them (the causal mask zeroes half of it *after*
# it is computed), gives our $4LTd$. The **backward pass** costs about twice the forward: each product $Y = XW$
# needs one product for $\partial L / \partial X$ and one for $\partial L / \partial W$. So a training step costs
# $\approx 3 \times$ the forward pass, $\approx 6N$ FLOPs per token, and training on $D$ tokens costs
#
# $$ C \;\approx\; 6\,N\,D . $$
#
# The count term by term for the baby GPT at its full context, $T = 64$:

# %%
d, L, V, T = 128, 4, 65, 64
per_token = {
    "W_Q, W_K, W_V, W_O": 2 * L * 4 * d * d,
    "FFN W_1, W_2": 2 * L * 2 * d * 4 * d,
    "output layer": 2 * d * V,
    "q·K and a·V": 4 * L * T * d,
}
for term, f in per_token.items():
    print(f"{term:20} {f:>10,} FLOPs per token")
print(f"{'total':20} {sum(per_token.values()):>10,}")
assert sum(per_token.values()) == BABY_GPT_ARCH.forward_flops_per_token()["total"] == 1_720_576

# %% [markdown]
# About **1.7 MFLOPs per token**, 92 % of it in the weight matrices. Is the formula right? TensorFlow can count for
# itself: its profiler reads the traced graph of the model's call and adds up the FLOPs of each operation from its
# shapes. That is an independent check: it knows nothing of our formula.

# %%
show_source(graph_flops)

# %%
for cfg, (b, t) in (
    (BABY_GPT, (12, 64)),
    (BABY_GPT, (2, 32)),
    (ModelConfig(d_model=64, num_layers=2), (4, 64)),
):
    model = baby if cfg is BABY_GPT else cfg.build()
    predicted = Architecture.of(cfg).forward_flops(b, t)
    counted = graph_flops(model, b, t)
    everything = graph_flops(model, b, t, matmuls_only=False)
    print(
        f"d={cfg.d_model:3} L={cfg.num_layers} [B={b:2}, T={t}]: formula {predicted:>12,} | profiler (products) {counted:>12,} | all ops {everything:>12,} (+{100 * (everything / counted - 1):.1f} %)"
    )
    assert predicted == counted
    assert everything / counted < 1.05

# %% [markdown]
# The formula equals the profiler's count of the matrix products **exactly**, and the element-wise work the formula
# leaves out (softmax, LayerNorm, GELU, the residual additions) adds under 5 %. Now the budgets:

# %%
baby_tokens = BABY_TRAIN.max_steps * BABY_TRAIN.batch_size * BABY_GPT.max_len
baby_c = training_compute(BABY_GPT_ARCH.params, baby_tokens)
gpt3_c = training_compute(
    GPT3_175B.params, 300 * 10**9
)  # GPT-3 saw 300 B tokens (Brown et al., 2020)
pf_day = 1e15 * 86_400
print(f"baby GPT: {baby_tokens:,} tokens → 6ND = {baby_c:.2e} FLOPs")
print(f"GPT-3:    300 B tokens → 6ND = {gpt3_c:.2e} FLOPs = {gpt3_c / pf_day:,.0f} petaflop/s-days")
assert round(gpt3_c / 1e23, 2) == 3.14 and round(gpt3_c / pf_day, -1) == 3640

# %% [markdown]
# $6ND$ gives GPT-3 **$3.14 \times 10^{23}$** FLOPs, about **3,640 petaflop/s-days**: the figures Brown et al. (2020,
# Table D.1) report for it. The attention term is small for these models, because $T$ is small next to $d$: it
# equals the weight term when $4LTd = 24Ld^2$, that is $T = 6d$ (ignoring the output layer). Its share of the
# forward pass at each model's full context:

# %%
for a in models:
    f = a.forward_flops_per_token()
    print(
        f"{a.name:12} T = {a.max_len:5}: attention {100 * f['attention'] / f['total']:4.1f} % of {f['total']:.3g} FLOPs per token; T = 6d = {6 * a.d_model:,}"
    )
shares = {
    a.name: a.forward_flops_per_token()["attention"] / a.forward_flops_per_token()["total"]
    for a in models
}
assert round(100 * shares["GPT-2 small"], 1) == 13.3 and round(100 * shares["GPT-3 175B"], 1) == 2.7

# %% [markdown]
# ## 3 · The KV cache
#
# Generation (lesson 10 §4) keeps every layer's keys and values for the tokens so far, so each new token costs
# $2 \cdot L \cdot h_{kv} \cdot d_k$ numbers of memory, $h_{kv} d_k = d$ for ordinary multi-head attention:

# %%
show_source(Architecture.kv_cache_bytes_per_token)

# %%
for a, dtype in ((BABY_GPT_ARCH, "float32"), (GPT2_SMALL, "float16"), (GPT3_175B, "float16")):
    per = a.kv_cache_bytes_per_token(dtype)
    print(
        f"{a.name:12} {dtype:8}: {per / 1024:6,.0f} KiB per token, {per * a.max_len / 2**20:7,.1f} MiB for one full context of {a.max_len:,}"
    )
assert BABY_GPT_ARCH.kv_cache_bytes_per_token() == 4096
assert GPT3_175B.kv_cache_bytes_per_token("float16") * 2048 == 9 * 2**30

# %% [markdown]
# GPT-3 needs **9 GiB** of cache for one sequence of 2,048 tokens; a batch of 32 such sequences needs more memory
# than the weights. This is why recent models share keys and values between heads. **Multi-query attention**
# (Shazeer, 2019) keeps one key/value head for all $h$ query heads; **grouped-query attention** (Ainslie et al., 2023)
# keeps $G$ groups. Llama 2 70B (Touvron et al., 2023) has 80 layers, $d = 8{,}192$, 64 query heads and 8 key/value
# heads:

# %%
llama_shapes = dict(vocab_size=32_000, max_len=4096, d_model=8192, num_layers=80, num_heads=64)
mha = Architecture("70B, 64 KV heads", **llama_shapes)
gqa = Architecture("70B, 8 KV heads", **llama_shapes, kv_heads=8)
mqa = Architecture("70B, 1 KV head", **llama_shapes, kv_heads=1)
for a in (mha, gqa, mqa):
    print(
        f"{a.name:18} {a.kv_cache_bytes_per_token('float16') / 1024:7.0f} KiB per token (float16)"
    )
assert (
    mha.kv_cache_bytes_per_token("float16")
    == 8 * gqa.kv_cache_bytes_per_token("float16")
    == 64 * mqa.kv_cache_bytes_per_token("float16")
)

# %% [markdown]
# Eight key/value heads instead of 64 cut the cache **8×**, from 2,560 KiB to 320 KiB per token.

# %% [markdown]
# ## 4 · Attention's $T^2$
#
# One attention layer computes the scores $QK^\top$ of every query with every key: a tensor of $B \cdot h \cdot T^2$
# numbers. Its FLOPs grow as $T^2$ and, unless the implementation avoids storing it, so does its memory. With
# $h = 4$ heads in float32 the scores of one sequence take $4 \cdot 4 \cdot T^2$ bytes: 16 MiB at $T = 1{,}024$,
# 256 MiB at $4{,}096$.
#
# Time is measured in this kernel. Peak memory is measured in a fresh Python process, because this kernel keeps memory
# it has used before (TensorFlow reuses freed buffers), which would hide new allocations. The default run measures up
# to $T = 2{,}048$; the benchmark (and `FULL`) to $4{,}096$:

# %%
show_source(attention_peak_memory, docstring=False)

# %% tags=["nbval-ignore-output"]
att_lengths = [128, 256, 512, 1024, 2048] + ([4096] if FULL else [])
mem_lengths = [256, 1024, 2048] + ([4096] if FULL else [])
att_time = attention_seconds(att_lengths, repeats=3)
att_mem = attention_peak_memory(mem_lengths)
for t in mem_lengths:
    print(
        f"T = {t:5}: scores {scores_bytes(1, 4, t) / 2**20:6.1f} MiB predicted, peak +{att_mem[t] / 2**20:6.1f} MiB measured"
    )
mem_slope = loglog_slope([1024, 2048], [att_mem[t] for t in (1024, 2048)])
time_slope = loglog_slope(att_lengths[2:], [att_time[t] for t in att_lengths[2:]])
print(f"log-log slopes from T = {att_lengths[2]}: time {time_slope:.1f}, memory {mem_slope:.1f}")

# %%
sa = saved["attention"]  # the benchmark, in a fresh process, up to T = 4,096
bench_mem = dict(zip(sa["lengths"], sa["peak_bytes"]))
for t in (1024, 2048):
    assert 0.9 < att_mem[t] / scores_bytes(1, 4, t) < 1.3, (t, att_mem[t])
for t in (1024, 2048, 4096):
    assert 0.9 < bench_mem[t] / scores_bytes(1, 4, t) < 1.3, (t, bench_mem[t])
print(
    f"benchmark (T = 1,024 … 4,096): time {sa['time_slope']:.1f}, memory {sa['memory_slope']:.1f}; "
    f"at T = 4,096: peak +{bench_mem[4096] / 2**20:.0f} MiB for a {scores_bytes(1, 4, 4096) / 2**20:.0f} MiB scores tensor"
)
assert 1.6 < mem_slope < 2.2 and 1.3 < time_slope < 2.7 and 1.8 < sa["memory_slope"] < 2.2

# %% [markdown]
# The peak memory follows the scores tensor within a few per cent at $T \ge 1{,}024$ (the rest is the $Q, K, V$
# projections, which grow as $T$), and both slopes are close to **2**: doubling the context quadruples the cost of
# every attention layer. Below a few hundred tokens the $T$-linear work (the projections, fixed costs) dominates and
# the slope is smaller.

# %% tags=["nbval-ignore-output"]
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
axes[0].loglog(sa["lengths"], sa["seconds"], "o-", label="benchmark (cost.json)")
axes[0].loglog(att_lengths, [att_time[t] for t in att_lengths], "x--", label="this run")
axes[0].set(
    xlabel="sequence length T",
    ylabel="seconds (forward)",
    title=f"one attention layer: time (slope {sa['time_slope']:.1f})",
)
axes[1].loglog(
    sa["lengths"], np.array(sa["peak_bytes"]) / 2**20, "o-", label="measured peak (cost.json)"
)
axes[1].loglog(
    sa["lengths"], np.array(sa["scores_bytes"]) / 2**20, "k:", label="scores tensor B·h·T²·4 bytes"
)
axes[1].set(
    xlabel="sequence length T", ylabel="MiB", title=f"peak memory (slope {sa['memory_slope']:.1f})"
)
for ax in axes:
    ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# **What the field does about it.**
#
# * **FlashAttention** (Dao et al., 2022) computes *exact* attention without ever storing the $T \times T$ matrix: it
#   processes the keys in blocks that fit in the accelerator's fast on-chip memory and keeps a running softmax, so
#   its memory is **linear in $T$**. The paper reports a 3× speed-up training GPT-2 (sequence length 1 K) and 15 %
#   end to end on BERT-large, because it moves far less data. Exercise 2 builds the memory half of the idea in NumPy.
# * **Sliding-window attention** lets each token attend to the last $W$ tokens only (Longformer, Beltagy et al.,
#   2020; Mistral 7B, Jiang et al., 2023, with $W = 4{,}096$): the cost becomes $T \cdot W$ and the KV cache a rolling
#   buffer of $W$ entries, which Mistral's paper reports saves 8× cache memory at 32 K tokens.
# * **Multi-query and grouped-query attention** (§3) shrink the KV cache, which dominates memory during generation.

# %% [markdown]
# ## 5 · Counts against measurements
#
# A prediction in FLOPs becomes a prediction in seconds through the machine's rate: $t \approx C / R$. If the count
# is right and the machine ran at a fixed rate $R$, then FLOPs per step divided by seconds per step would be the same
# for every model. Here is one training step (forward, backward, a plain SGD update) of three widths at two sequence
# lengths, timed as the median of a few steps:

# %%
show_source(step_seconds, docstring=False)

# %% tags=["nbval-ignore-output"]
live_steps = []
for d_, layers in ((32, 2), (128, 4), (256, 4)):
    cfg = ModelConfig(d_model=d_, num_layers=layers, max_len=128)
    model, arch = cfg.build(), Architecture.of(cfg)
    for t in (32, 128):
        s = step_seconds(model, 8, t, repeats=3)
        flops = arch.training_flops(8, t)
        live_steps.append(
            dict(d_model=d_, seq_len=t, seconds=s, flops=flops, gflops_per_s=flops / s / 1e9)
        )
        print(
            f"d={d_:3} L={layers} T={t:3}: {flops / 1e9:6.3f} GFLOP predicted, {1e3 * s:7.1f} ms → {flops / s / 1e9:5.1f} GFLOP/s"
        )
del model

# %%
rate = {(r["d_model"], r["seq_len"]): r["gflops_per_s"] for r in live_steps}
assert rate[(256, 128)] > 2 * rate[(32, 32)]  # large products run far closer to the cores' peak
print(
    f"benchmarks/results/cost.json: {saved['meta']['command']} ({saved['meta']['date']}, {saved['meta']['machine']})"
)

# %% tags=["nbval-ignore-output"]
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for rows, marker, label in (
    (saved["steps"], "o", "benchmark (cost.json)"),
    (live_steps, "x", "this run"),
):
    axes[0].loglog([r["flops"] for r in rows], [r["seconds"] for r in rows], marker, label=label)
    axes[1].semilogx(
        [r["flops"] for r in rows], [r["gflops_per_s"] for r in rows], marker, label=label
    )
axes[0].set(
    xlabel="predicted FLOPs per training step",
    ylabel="measured seconds per step",
    title="time follows the count",
)
axes[1].set(
    xlabel="predicted FLOPs per training step",
    ylabel="achieved GFLOP/s",
    title="but the rate is not constant",
)
for ax in axes:
    ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# Time grows with the predicted FLOPs, but the achieved rate is **not** constant: small models reach a fraction of
# the rate of large ones. Two things the count leaves out explain it. Each operation has a **fixed cost** (launching
# it, reading its inputs from memory), and a training step has hundreds of them whatever their size; and a small
# matrix product cannot keep the cores' vector units busy. Fitting $t = t_0 + C / R$ to the benchmark separates the
# two: $t_0$ is the fixed cost per step, $R$ the rate of the large products.

# %%
c_ = np.array([r["flops"] for r in saved["steps"]], dtype=float)
t_ = np.array([r["seconds"] for r in saved["steps"]])
slope, t0 = np.polyfit(c_, t_, 1)
print(f"t ≈ {1e3 * t0:.1f} ms + C / ({1 / slope / 1e9:.0f} GFLOP/s)  (benchmark, {len(c_)} steps)")
print(
    f"the rates it measured: {min(r['gflops_per_s'] for r in saved['steps']):.1f} … {max(r['gflops_per_s'] for r in saved['steps']):.1f} GFLOP/s"
)
assert slope > 0 and t0 > 0

# %% [markdown]
# At long sequence lengths a second effect appears: the $T \times T$ scores go through the softmax and the mask —
# element-wise work that the FLOP count ignores and that moves more memory than it computes, the term §4 measured alone.
#
# With a rate in hand, the count predicts what a model would cost here. At the benchmark's best rate, training
# GPT-3 on this machine would take:

# %%
best = max(r["gflops_per_s"] for r in saved["steps"]) * 1e9
years = gpt3_c / best / (365.25 * 86_400)
print(f"GPT-3: {gpt3_c:.2e} FLOPs at {best / 1e9:.0f} GFLOP/s → {years:,.0f} years")
assert years > 10_000

# %% [markdown]
# ## 6 · Parallel vs sequential
#
# The article's central claim (section 3.3) is that the Transformer computes in parallel where a recurrent network
# cannot. Vaswani et al. (2017, Table 1) put it in three columns, for a sequence of length $n$ and width $d$:
#
# | layer          | work per layer      | sequential steps | longest path between two tokens |
# |----------------|---------------------|------------------|---------------------------------|
# | self-attention | $O(n^2 \cdot d)$    | $O(1)$           | $O(1)$                          |
# | recurrent      | $O(n \cdot d^2)$    | $O(n)$           | $O(n)$                          |
#
# A GRU must compute $h_1$ before $h_2$: $T$ steps one after the other, each a small product. A Transformer block
# computes all $T$ positions in one product per weight matrix, and token 1 reaches token $T$ in one attention step
# instead of $T - 1$ recurrent ones. But attention does $T^2$ work. Which wins, and where? Measure forward + backward
# of a Keras GRU and of the course's Transformer block with about the same number of parameters:

# %% tags=["nbval-ignore-output"]
rnn_lengths = [16, 64, 128, 256]
rnn = recurrent_vs_attention(rnn_lengths, batch=8, repeats=3)
print(
    f"GRU: {rnn['gru_units']} units, {rnn['gru_params']:,} parameters; Transformer block: {rnn['transformer_params']:,} parameters"
)
for t, g, b in zip(rnn_lengths, rnn["gru"], rnn["transformer"]):
    print(
        f"T = {t:4}: GRU {1e3 * g:7.1f} ms ({t:4} sequential steps) | block {1e3 * b:6.1f} ms (1 step) | GRU / block {g / b:4.1f}"
    )
gru_slope = loglog_slope(rnn_lengths[1:], rnn["gru"][1:])
print(f"GRU time against T: log-log slope {gru_slope:.1f}")

# %%
assert abs(rnn["gru_params"] - rnn["transformer_params"]) / rnn["transformer_params"] < 0.01
ratio = {t: g / b for t, g, b in zip(rnn_lengths, rnn["gru"], rnn["transformer"])}
assert ratio[64] > 1.0 and ratio[128] > 1.0  # the block is faster at these lengths
assert 0.6 < gru_slope < 1.4  # the GRU's time grows linearly: one step per token
sr = saved["recurrent"]
bench_ratio = {t: g / b for t, g, b in zip(sr["lengths"], sr["gru"], sr["transformer"])}
print("benchmark, GRU / block:", ", ".join(f"T = {t}: {r:.1f}" for t, r in bench_ratio.items()))
assert (
    min(bench_ratio[t] for t in (64, 128, 256, 512)) > 1.5
)  # about twice as fast from T = 64 to 512
assert bench_ratio[1024] < 0.75 * max(bench_ratio.values())  # ... and the gap closes at T = 1,024

# %% tags=["nbval-ignore-output"]
fig, ax = plt.subplots(figsize=(6, 4))
ax.loglog(sr["lengths"], sr["gru"], "o-", label="GRU (cost.json)")
ax.loglog(sr["lengths"], sr["transformer"], "s-", label="Transformer block (cost.json)")
ax.loglog(rnn_lengths, rnn["gru"], "x--", color="C0", label="GRU (this run)")
ax.loglog(rnn_lengths, rnn["transformer"], "x--", color="C1", label="block (this run)")
ax.set(
    xlabel="sequence length T",
    ylabel="seconds, forward + backward",
    title="sequential vs parallel, same parameters",
)
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# On these two CPU cores the GRU's time grows linearly with $T$ — one step per token — and in the benchmark the block
# is about **twice as fast from $T = 64$ to $512$**, even though its attention does $T^2$ work: $T$ small sequential
# products waste the cores, a few large products use them. At $T = 1{,}024$ the block's $T^2$ term has caught up and
# the two are even; beyond it the GRU would win on time (the block still has the shorter path). On a GPU, with
# thousands of cores idle during each of a GRU's steps, the block's advantage is much larger (cuDNN's fused GRU
# narrows it somewhat); the measurement here shows the direction on a CPU, not a GPU's size of the effect. The path
# length is not measured in seconds: it is why attention learns dependencies between distant tokens more easily
# (lesson 12's answer token reads its evidence in one layer).

# %% [markdown]
# ## 7 · A scaling-law experiment
#
# Kaplan et al. (2020) trained Transformers from $10^3$ to $10^9$ non-embedding parameters and found that the test
# loss falls as a **power law** in each of model size, data and compute when the other two do not hold it back:
#
# $$ L(N) = \left(\frac{N_c}{N}\right)^{\alpha_N}, \quad \alpha_N \approx 0.076; \qquad
#    L(C_{min}) = \left(\frac{C_c}{C_{min}}\right)^{\alpha_C}, \quad \alpha_C \approx 0.050 \;\;\text{(their eqs. 1.1, 1.3)}. $$
#
# On log–log axes a power law is a straight line of slope $-\alpha$. Hoffmann et al. (2022, "Chinchilla") fitted
# $L(N, D) = E + A/N^{0.34} + B/D^{0.28}$ and concluded that, for a fixed compute budget, parameters and tokens should
# grow together, about **20 tokens per parameter**. Can we see a power law on Tiny Shakespeare? The experiment: GPTs
# of 10 k to 804 k parameters (the largest is the baby GPT), all trained with the same recipe for the same number of
# steps, and their validation loss against $N$:

# %%
print(f"{'size':>12} {'parameters':>11} {'non-embedding':>14}")
for cfg in SCALING_SIZES:
    print(f"{describe_config(cfg):>12} {total_params(cfg):>11,} {non_embedding_params(cfg):>14,}")
assert total_params(SCALING_SIZES[-1]) == BABY_GPT_ARCH.params
show_source(fit_power_law)

# %% [markdown]
# The default run re-measures a reduced sweep here (the four smallest sizes, 300 steps each); the full sweep
# (all six sizes, 2,000 steps each, two seeds) was made by `python benchmarks/scaling_law.py` and is read from its
# JSON.

# %% tags=["nbval-ignore-output"]
sweep_cfg = FULL_SWEEP if FULL else LESSON_SWEEP
live = sweep(
    sweep_cfg,
    callback=lambda r: print(
        f"{r.name:>12}: N = {r.non_embedding_params:>7,}, D/N = {r.tokens_per_param:5.1f}, val loss {r.val_loss:.3f}"
    ),
)
live_sizes = mean_final_losses(live)
n_live = [v["non_embedding_params"] for v in live_sizes.values()]
l_live = [v["val_loss"] for v in live_sizes.values()]
_, alpha_live = fit_power_law(n_live, l_live)
print(
    f"this run: {len(n_live)} sizes × {sweep_cfg.steps} steps, fitted exponent α = {alpha_live:.3f}"
)

# %%
assert all(np.diff(l_live) < 0), l_live  # every larger model reaches a lower loss
assert 0.01 < alpha_live < 0.3

scaling = json.loads(SCALING_LAW_JSON.read_text())
sizes_full = scaling["sizes"]
n_full = [v["non_embedding_params"] for v in sizes_full.values()]
l_full = [v["val_loss"] for v in sizes_full.values()]
a_full, alpha_full = fit_power_law(n_full, l_full)
stored = scaling["fit_vs_non_embedding_params"]
assert math.isclose(
    alpha_full, stored["alpha"], rel_tol=1e-6
)  # the stored fit, recomputed from its losses
_, alpha_c = fit_power_law(*scaling["compute_frontier"].values())
assert math.isclose(alpha_c, scaling["fit_vs_compute_frontier"]["alpha"], rel_tol=1e-6)
print(f"benchmark: {scaling['command']}")
print(
    f"  {len(n_full)} sizes, seeds {scaling['protocol']['seeds']}: α_N = {alpha_full:.3f} (Kaplan: {KAPLAN_ALPHA_N}), α_C = {alpha_c:.3f} on the compute frontier (Kaplan: {KAPLAN_ALPHA_C})"
)
for name, v in sizes_full.items():
    print(
        f"  {name:>12}: N = {v['non_embedding_params']:>7,}, D / N_total = {v['tokens_per_param']:6.1f}, val loss {v['val_loss']:.3f}"
    )

# %% tags=["nbval-ignore-output"]
fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
ax = axes[0]
ax.loglog(n_full, l_full, "o", label="full sweep (scaling_law.json)")
ns = np.geomspace(min(n_full), max(n_full), 50)
ax.loglog(ns, a_full * ns**-alpha_full, "-", label=f"fit: L ∝ N^−{alpha_full:.3f}")
ax.loglog(n_live, l_live, "x", label=f"this run ({sweep_cfg.steps} steps)")
ax.set(
    xlabel="non-embedding parameters N",
    ylabel="validation loss (nats per character)",
    title="loss against model size",
)
ax.legend()
ax = axes[1]
for run in scaling["runs"]:
    if run["seed"] == scaling["protocol"]["seeds"][0]:
        ax.loglog(run["eval_compute"], run["val_curve"], "-", lw=1, label=run["name"])
fc, fl = scaling["compute_frontier"]["compute"], scaling["compute_frontier"]["val_loss"]
ax.loglog(fc, fl, "k--", lw=2, label="compute frontier")
ax.set(
    xlabel="training compute C = 6ND (FLOPs)",
    ylabel="validation loss",
    title="loss against compute",
)
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %%
ratios = [v["tokens_per_param"] for v in sizes_full.values()]
names = list(sizes_full)
every = scaling["protocol"]["eval_every"]
drop = {
    r["name"]: r["val_curve"][-1 - 500 // every] - r["val_curve"][-1]
    for r in scaling["runs"]
    if r["seed"] == 0
}
print(
    f"D / N_total from {ratios[0]:.0f} ({names[0]}) to {ratios[-1]:.1f} ({names[-1]}, the baby GPT); Chinchilla's optimum ≈ 20"
)
print(
    f"loss drop over the last 500 steps (seed 0): {names[0]} {drop[names[0]]:.3f}, {names[-1]} {drop[names[-1]]:.3f}"
)
assert round(alpha_full, 3) == 0.057 and round(alpha_c, 3) == 0.059
assert round(ratios[0]) == 152 and round(ratios[-1], 1) == 1.9
assert drop[names[-1]] > 2 * drop[names[0]]

# %% [markdown]
# **What the experiment shows.** Over two decades of model size, on log–log axes, the loss falls on a nearly straight
# line: a power law with exponent **$\alpha_N = 0.057$** against non-embedding parameters, and **$\alpha_C = 0.059$**
# along the compute frontier. Kaplan et al.'s are 0.076 and 0.050 — the same order, from a corpus of one megabyte
# of characters instead of billions of web tokens, with models a thousand times smaller. Three cautions before
# reading more into it:
#
# * **Every size saw the same data** (2,000 steps × 12 × 64 = 1.54 M characters), so the tokens per parameter fall
#   from 152 for the smallest model to **1.9** for the baby GPT, against Chinchilla's ~20 at the compute optimum.
#   The large models are far from converged: their loss was still falling over the last 500 steps more than twice as
#   fast as the smallest's. Our exponent is that of $L(N)$ at a fixed $D$, not Kaplan's converged $\alpha_N$, and
#   Chinchilla's advice applies: the baby GPT would reach a lower loss for the same compute as a smaller model trained
#   on more data.
# * **One learning rate for all sizes.** Kaplan and Chinchilla tune it per size; small models usually tolerate larger
#   rates, so our smallest models may be a little worse than they could be.
# * **Chinchilla's $\alpha = 0.34$ is not comparable directly**: it belongs to $L = E + A/N^\alpha + B/D^\beta$, with
#   an irreducible loss $E$ taken out first. Our sizes are too few, and too far from the floor, to estimate an $E$.

# %% [markdown]
# ## 8 · Data parallelism, derived
#
# When a model is too slow to train on one device, the simplest remedy is to give $R$ devices a copy of the whole
# model each and split every batch between them. Why does that compute the same thing? The loss of a batch of $B$
# examples is a mean, so its gradient is a sum over examples, and a sum can be cut into pieces:
#
# $$ \nabla_\theta L \;=\; \nabla_\theta \frac{1}{B}\sum_{b=1}^{B} \ell_b
#    \;=\; \sum_{r=1}^{R} \underbrace{\frac{1}{B} \sum_{b \in \text{shard } r} \nabla_\theta \ell_b}_{g_r:\ \text{replica } r}. $$
#
# Replica $r$ computes $g_r$, the gradient of **its shard's summed loss divided by the global batch size $B$**; an
# **all-reduce** adds the $g_r$ of all replicas and hands every replica the sum; every replica applies the same update
# to the same weights, so the copies never drift apart. (Averaging each shard's *mean*-loss gradient gives the same
# result only when the shards are equal in size.) On a tiny softmax regression, in NumPy, with TensorFlow's autodiff
# as the reference:

# %%
rng = np.random.default_rng(1)
X = rng.normal(size=(8, 5))
y = rng.integers(0, 3, size=8)
W = 0.5 * rng.normal(size=(5, 3))


def shard_gradient(W, X, y, global_batch):
    """Gradient of (sum of this shard's cross-entropies) / global_batch for logits X @ W."""
    logits = X @ W
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0  # ∂ℓ/∂logits = softmax − one-hot
    return X.T @ p / global_batch


full = shard_gradient(W, X, y, 8)
replicas = [shard_gradient(W, X[:4], y[:4], 8), shard_gradient(W, X[4:], y[4:], 8)]
all_reduced = replicas[0] + replicas[1]

import tensorflow as tf  # noqa: E402  (the reference: TensorFlow's autodiff of the mean loss)

W_tf = tf.Variable(W)
with tf.GradientTape() as tape:
    loss = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=tf.constant(X) @ W_tf)
    )
reference = tape.gradient(loss, W_tf).numpy()
print(
    f"full batch = autodiff to 1e-12: {np.allclose(full, reference, rtol=0, atol=1e-12)}; "
    f"sum of the two replicas' gradients = full batch to 1e-15: {np.allclose(all_reduced, full, rtol=0, atol=1e-15)}"
)
assert np.allclose(full, reference, rtol=0, atol=1e-12) and np.allclose(
    all_reduced, full, rtol=0, atol=1e-15
)

uneven = [shard_gradient(W, X[:3], y[:3], 3), shard_gradient(W, X[3:], y[3:], 5)]  # shard means
print(
    f"mean of the shard means (3 + 5 examples): max error {np.abs((uneven[0] + uneven[1]) / 2 - full).max():.3f}"
)
assert np.abs((uneven[0] + uneven[1]) / 2 - full).max() > 1e-2

# %% [markdown]
# The all-reduced gradient equals the full batch's to rounding; the mean of unequal shards' means does not.
#
# **Gradient clipping is where this goes wrong in practice.** Clipping by global norm (lesson 09 §4) rescales the
# whole gradient, $g \leftarrow g \cdot \min(1, c / \lVert g \rVert)$: a function of the *sum*, not of each part. If
# each replica clips its own $g_r$ before the all-reduce, the result is a different update whenever a norm exceeds
# $c$:


# %%
def clip(g, c):
    return g * min(1.0, c / np.linalg.norm(g))


c = 0.2
right = clip(all_reduced, c)  # sum, then clip
wrong = clip(replicas[0], c) + clip(replicas[1], c)  # each replica clips its part, then the sum
print(
    f"‖g‖ = {np.linalg.norm(all_reduced):.3f}, ‖g_1‖ = {np.linalg.norm(replicas[0]):.3f}, ‖g_2‖ = {np.linalg.norm(replicas[1]):.3f}; threshold {c}"
)
print(f"max |clip per replica − clip of the sum| = {np.abs(wrong - right).max():.3f}")
assert np.isclose(np.linalg.norm(right), c) and np.abs(wrong - right).max() > 1e-2

# %% [markdown]
# ## 9 · `tf.distribute`: training the GPT on several devices
#
# TensorFlow's `tf.distribute` strategies run the replicas and the all-reduce for us:
#
# * **`MirroredStrategy`**: one process, one replica per device (every GPU of one machine), the weights mirrored on
#   each, gradients all-reduced between them.
# * **`MultiWorkerMirroredStrategy`**: the same across machines, one process ("worker") per machine; each is told the
#   addresses of all workers and its own index by the `TF_CONFIG` environment variable, and the all-reduce runs over
#   the network.
#
# This machine has no GPUs, so the lesson splits its CPU into **two logical devices** (the imports cell called
# `split_cpu(2)`; it must run before TensorFlow's first operation). Two logical devices on the same two cores show
# that distributed training computes *the same thing*; they cannot show a speed-up, because both replicas share the
# same cores. `DistributedTrainer` is lesson 09's training step rewritten for a strategy. The step each replica runs:

# %%
show_source(DistributedTrainer._replica_step, docstring=False)

# %% [markdown]
# It follows §8: each replica's loss is its shard's sum divided by the *global* number of tokens, `all_reduce(SUM)`
# gives every replica the full-batch gradient, clipping uses that sum's norm. The global batch is drawn as in lesson
# 09 (same seed, same windows) and replica $r$ takes rows $r \cdot B/R \ldots (r+1) \cdot B/R$. So the distributed run
# should reproduce the single-device one step for step. Five steps of a small GPT, on one device and on two:

# %% tags=["nbval-ignore-output"]
same = compare_with_single_device("mirrored", steps=5, devices=2)
print(
    f"{same['replicas']} replicas, global batch {same['global_batch']}: largest difference in the 5 losses {same['max_loss_diff']:.1e}, in the final weights {same['max_weight_diff']:.1e}"
)

# %%
# float32 rounding: ~1e-6 here; the margin leaves room for a GPU, where the one-device reference rounds differently
assert same["replicas"] == 2 and same["max_loss_diff"] < 2e-5 and same["max_weight_diff"] < 2e-5

# %% [markdown]
# The two runs agree to float32 rounding, about $10^{-6}$: adding two half-batch gradients rounds differently from
# one full-batch sum, and nothing else differs. The same check on two worker *processes* (`MultiWorkerMirroredStrategy`
# on 127.0.0.1, one CPU each) is in the test suite and in `benchmarks/results/distributed.json`, made by the command
# it records:

# %%
dist = json.loads(DISTRIBUTED_JSON.read_text())
print(dist["command"])
for name, r in dist["equivalence"].items():
    print(f"  {name:34} losses {r['max_loss_diff']:.1e}, weights {r['max_weight_diff']:.1e}")
assert all(
    r["max_loss_diff"] < 1e-5 and r["max_weight_diff"] < 1e-5 for r in dist["equivalence"].values()
)

# %% [markdown]
# To train on several GPUs or machines yourself: `python -m lessons_lib.training --strategy mirrored` (all GPUs of one
# machine) or `--strategy multi-worker` with `TF_CONFIG` set on each machine; the README's section "Training on
# several devices or machines" has the commands. `--compare` also trains on one device and prints the differences.
#
# ### Four traps, measured
#
# **(a) Clipping per replica.** Keras 3's optimizers, asked to clip by global norm under a strategy, clip each
# replica's gradient *before* the all-reduce (§8 showed why that is a different update). `DistributedTrainer` with
# `clip="per-replica"` lets Keras do exactly that:

# %% tags=["nbval-ignore-output"]
naive = compare_with_single_device("mirrored", steps=5, devices=2, clip="per-replica")
print(
    f"sum → clip → average: weights differ by {same['max_weight_diff']:.1e}; clip per replica, then sum: {naive['max_weight_diff']:.1e}"
)

# %%
assert naive["max_weight_diff"] > 5 * same["max_weight_diff"] and naive["max_weight_diff"] > 5e-5
trap = dist["traps"]["a_clipping"]
print(
    f"(benchmark: first-batch ‖∇L‖ = {trap['full_batch_grad_norm']:.2f} > clip {trap['grad_clip']}, replicas' norms {', '.join(f'{n:.2f}' for n in trap['replica_grad_norms'])})"
)

# %% [markdown]
# **(b) `fit` turns token ids into floats.** Under `MirroredStrategy`, Keras' `fit` builds the model on the first
# batch *averaged over the replicas* — so int32 token ids arrive as float32, and the embedding lookup refuses them:

# %% tags=["nbval-ignore-output"]
dtype_trap = fit_dtype_trap(devices=2)

# %%
for name in ("no strategy", "MirroredStrategy"):
    r = dtype_trap[name]
    print(
        f"{name:17}: the model saw {sorted(set(r['dtypes_seen_by_model']))}; error: {(r['error'] or 'none')[:110]}"
    )
assert "float32" in dtype_trap["MirroredStrategy"]["dtypes_seen_by_model"]
assert dtype_trap["no strategy"]["error"] is None and dtype_trap["MirroredStrategy"]["error"]

# %% [markdown]
# **(c) `fit` under `MultiWorkerMirroredStrategy` fails**, even for a one-layer model on float data (an open upstream
# problem; the JSON links the issues). **(d) `keras.distribution.DataParallel` does nothing on TensorFlow**: Keras'
# distribution API is implemented for JAX, and on the TensorFlow backend setting it is accepted without a word while
# the variables stay on one device and `fit` runs one replica. Both measured by `benchmarks/distributed_equivalence.py`:

# %%
c_, d_ = dist["traps"]["c_fit_multi_worker"], dist["traps"]["d_keras_distribution_data_parallel"]
print(
    f"(c) {len(c_['workers'])} workers, fit ok: {[w['ok'] for w in c_['workers']]}; {c_['workers'][0]['error'][:100]}"
)
print(
    f"(d) {d_['distribution_set']}: variable on {d_['variable_device'].split('/')[-1]}, distributed: {d_['variable_is_distributed']}, fit replicas: {d_['fit_replicas']}"
)
print("upstream:", *dist["upstream"]["c_fit_multi_worker"])
assert (
    not any(w["ok"] for w in c_["workers"])
    and not d_["variable_is_distributed"]
    and d_["fit_replicas"] == 1
)

# %% [markdown]
# So the course's distributed path writes its own step (as above) instead of `fit`, and uses `tf.distribute`
# directly instead of `keras.distribution`.

# %% [markdown]
# ## 10 · Exercises
#
# ### Exercise 1 — predict the memory before you run
#
# Write `my_kv_cache_bytes(arch, batch, seq_len, dtype)`: the bytes of the KV cache of `batch` sequences of
# `seq_len` tokens for an `Architecture` (its `num_layers`, `num_heads`, `d_model` and `kv_heads`, which is `None`
# for ordinary multi-head attention), with `dtype` one of `DTYPE_BYTES`'s keys. Without the library's
# `kv_cache_bytes_per_token`.


# %%
def my_kv_cache_bytes(arch, batch, seq_len, dtype):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
kv_cases = [
    (BABY_GPT_ARCH, 12, 64, "float32"),
    (GPT3_175B, 1, 2048, "float16"),
    (gqa, 4, 4096, "bfloat16"),
    (mqa, 2, 100, "int8"),
]


def reference_kv(arch, batch, seq_len, dtype):
    return arch.kv_cache_bytes_per_token(dtype) * batch * seq_len


check(
    my_kv_cache_bytes,
    reference_kv,
    inputs=kv_cases,
    name="my_kv_cache_bytes",
    hint=(
        "Each layer keeps one key and one value vector per token, each of h_kv · d_k numbers (d_k = d_model / num_heads).",
        "kv = arch.kv_heads or arch.num_heads; 2 * arch.num_layers * kv * (arch.d_model // arch.num_heads) * DTYPE_BYTES[dtype] * batch * seq_len",
    ),
    forbid=("kv_cache_bytes_per_token", "reference_kv"),
)


# %% tags=["solution"]
def my_kv_cache_bytes(arch, batch, seq_len, dtype):
    kv = arch.kv_heads or arch.num_heads
    return (
        2
        * arch.num_layers
        * kv
        * (arch.d_model // arch.num_heads)
        * DTYPE_BYTES[dtype]
        * batch
        * seq_len
    )


assert check(
    my_kv_cache_bytes,
    reference_kv,
    inputs=kv_cases,
    forbid=("kv_cache_bytes_per_token", "reference_kv"),
)

# %% [markdown]
# ### Exercise 2 — attention without the $T \times T$ matrix
#
# The memory half of FlashAttention's idea: compute causal attention for a block of `block` queries at a time, so the
# largest scores array is `[block, T]` instead of `[T, T]`. Write `blocked_attention(q, k, v, block)` for one head
# (`q, k, v` of shape `[T, d_k]`) returning the same `[T, d_k]` output as full causal attention. The check measures
# your function's peak NumPy allocation and refuses one that builds the whole $T \times T$ matrix.


# %%
def blocked_attention(q, k, v, block):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
rng = np.random.default_rng(0)
T_ex, d_ex = 512, 16
qkv = [rng.normal(size=(T_ex, d_ex)) for _ in range(3)]


def full_attention(q, k, v, block):
    """Causal attention through the whole [T, T] matrix: lesson 04's NumPy reference."""
    causal = np.tril(np.ones((len(q), len(k)), dtype=bool))
    return scaled_dot_product_attention(q, k, v, mask=causal)[0]


attention_cases = [(*qkv, 64), (*qkv, 100), (qkv[0][:7], qkv[1][:7], qkv[2][:7], 3)]
check(
    blocked_attention,
    full_attention,
    inputs=attention_cases,
    name="blocked_attention",
    atol=1e-9,
    max_memory=T_ex * T_ex * 8,  # less than one [T, T] float64 array (2 MiB)
    forbid=("full_attention", "scaled_dot_product_attention"),
    hint=(
        "Loop over query rows i0 … i0 + block; their scores against all keys are a [block, T] array; mask the keys after each query (j > i) before the softmax.",
        "for i0 in range(0, T, block): s = q[i0:i0+block] @ k.T / sqrt(d_k); s[j > i] = -inf; out[i0:i0+block] = softmax(s) @ v",
    ),
)


# %% tags=["solution"]
def blocked_attention(q, k, v, block):
    t_, d_k = q.shape
    out = np.empty_like(q)
    keys = np.arange(t_)
    for i0 in range(0, t_, block):
        rows = np.arange(i0, min(i0 + block, t_))
        s = q[rows] @ k.T / np.sqrt(d_k)
        s[keys[None, :] > rows[:, None]] = -np.inf
        w = np.exp(s - s.max(-1, keepdims=True))
        out[rows] = (w / w.sum(-1, keepdims=True)) @ v
    return out


assert check(
    blocked_attention,
    full_attention,
    inputs=attention_cases,
    atol=1e-9,
    max_memory=T_ex * T_ex * 8,
    forbid=("full_attention", "scaled_dot_product_attention"),
)
with contextlib.redirect_stdout(io.StringIO()):  # the full matrix is refused by the memory limit
    assert (
        check(
            full_attention,
            full_attention,
            inputs=attention_cases[:1],
            max_memory=T_ex * T_ex * 8,
        )
        is False
    )

# %% [markdown]
# ### Exercise 3 — a compute-optimal model
#
# Chinchilla's rule (Hoffmann et al., 2022): at the compute optimum a model sees about 20 tokens per parameter.
# Write `compute_optimal(compute)`: the `(params, tokens)` pair with $D = 20N$ and $6ND$ equal to `compute` (floats).


# %%
def compute_optimal(compute):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
def reference_optimal(compute):
    n = math.sqrt(compute / (6 * 20))
    return n, 20 * n


check(
    compute_optimal,
    reference_optimal,
    inputs=[1e18, gpt3_c, 5.76e23],
    name="compute_optimal",
    rtol=1e-9,
    hint=("Put D = 20 N into C = 6 N D and solve for N.", "N = sqrt(C / 120), D = 20 N"),
    forbid=("reference_optimal",),
)


# %% tags=["solution"]
def compute_optimal(compute):
    n = (compute / 120) ** 0.5
    return n, 20 * n


assert check(
    compute_optimal,
    reference_optimal,
    inputs=[1e18, gpt3_c, 5.76e23],
    rtol=1e-9,
    forbid=("reference_optimal",),
)
n_opt, d_opt = compute_optimal(gpt3_c)
print(
    f"GPT-3's compute, spent Chinchilla's way: {n_opt / 1e9:.0f} B parameters on {d_opt / 1e12:.2f} T tokens"
)
assert 45 < n_opt / 1e9 < 55

# %% [markdown]
# ## Summary
#
# * **Count before you run.** Parameters $N_{total} = Vd + T_{max}d + L(12d^2 + \dots)$; bytes = count × 4 / 2 / 1
#   for float32 / bfloat16 / int8; mixed-precision Adam training keeps about 16 bytes per parameter (GPT-3: 349 GB of
#   bfloat16 weights, 2.8 TB of training state).
# * **FLOPs.** A forward pass costs $2N_{matmul} + 4LTd$ per token (checked exactly against TensorFlow's profiler);
#   training ≈ 3 × forward, so $C \approx 6ND$ (GPT-3: $3.14 \times 10^{23}$ FLOPs). Attention's share is small while
#   $T \ll 6d$.
# * **The KV cache** grows by $2 L\, h_{kv} d_k$ numbers per token (GPT-3: 9 GiB per 2,048-token sequence); grouped-
#   and multi-query attention divide it by $h / h_{kv}$.
# * **Measured.** Time follows the FLOP count, but the achieved rate is not constant: fixed per-operation costs and
#   small products keep small models far from the cores' peak. One attention layer's time and peak memory grow as
#   $T^2$ (slopes ≈ 2; the peak memory is the scores tensor, within a few per cent). FlashAttention removes the $T^2$
#   memory without approximating; sliding windows and multi-query attention shrink the rest.
# * **Parallel beats sequential** here too, up to a point: with the same parameters, a Transformer block's forward +
#   backward is about twice as fast as a GRU's from $T = 64$ to $512$ on two CPU cores, because the GRU takes $T$
#   small steps one after another; at $T = 1{,}024$ attention's $T^2$ has caught up.
# * **Scaling.** Six GPTs from 10 k to 804 k parameters, trained on the same 1.54 M characters, fall on a power law
#   with $\alpha_N = 0.057$ ($\alpha_C = 0.059$ on the compute frontier; Kaplan et al.: 0.076 and 0.050). With the same
#   data for every size the large models are under-trained: 1.9 tokens per parameter for the baby GPT, against
#   Chinchilla's ~20.
# * **Data parallelism.** Each replica computes the gradient of its shard's summed loss over the *global* batch; an
#   all-reduce sum is the full-batch gradient. Anything non-linear (global-norm clipping) must follow the sum.
#
# **Next:** lesson 15 makes a trained model smaller and faster — quantization, pruning, distillation — and measures
# what each costs in quality.
