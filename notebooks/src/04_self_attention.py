# %% [markdown]
# # 04 · Self-attention, worked by hand
#
# Self-attention is the one place in a Transformer where tokens talk to each other. Everything else (embeddings,
# the feed-forward network, LayerNorm) works on each position separately. In this lesson we take the formula
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}}\right) V$$
#
# (Vaswani et al., 2017, *Attention Is All You Need*, eq. 1) and compute it on paper-sized numbers, one step at a
# time, until nothing about it is mysterious.
#
# **By the end of this lesson you can**
#
# 1. compute $Q, K, V$, the scores $QK^\top$, the scaling, the row softmax and the weighted sum of values by hand;
# 2. check a hand computation against `lessons_lib`, plain TensorFlow ops and `keras.layers.MultiHeadAttention`;
# 3. explain *why* the scores are divided by $\sqrt{d_k}$ — and show what goes wrong (saturation, vanishing
#    gradients) when they are not;
# 4. apply a causal mask so that a token cannot look at the future;
# 5. carry the course's running example (the *thread*) from $x$ to the output of attention head 0;
# 6. spot and fix the mistakes in the source article's worked example (section 4.3) and code (section 5.2).
#
# Conventions: one token per **row**. $X$ is $[T, d_{\text{model}}]$, $W_Q$ is $[d_{\text{model}}, d_k]$, and
# $Q = X W_Q$ — the same layout as a Keras `Dense` layer.

# %% tags=["nbval-ignore-output"]
import lessons_lib

info = lessons_lib.setup(seed=0)

# %%
import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from lessons_lib import (
    MultiHeadAttention,
    causal_mask,
    check,
    copy_to_keras_mha,
    multi_head_attention,
    scaled_dot_product_attention,
    show,
    show_source,
    softmax,
    thread,
)

# %% tags=["parameters"]
# Sizes of the random experiments in the "why sqrt(d_k)" section (papermill may override them).
N_PAIRS = 20_000  # dot products sampled per d_k for the variance table and histograms
N_TRIALS = 500  # random (query, keys) draws per d_k for the saturation plot
N_KEYS = 8  # keys per query in the saturation experiment

# %% [markdown]
# ## 1. The formula, piece by piece
#
# For a sequence of $T$ tokens with vectors $x_1, \dots, x_T$ (the rows of $X$):
#
# * each token asks a **query** $q_i = x_i W_Q$ ("what am I looking for?"),
# * offers a **key** $k_j = x_j W_K$ ("what do I contain?"),
# * and a **value** $v_j = x_j W_V$ ("what do I hand over if you pick me?").
#
# The **score** of query $i$ against key $j$ is the dot product $q_i \cdot k_j$. All of them at once form the
# $T \times T$ matrix $S = Q K^\top$ (note the transpose: row $i$ of $Q$ meets row $j$ of $K$). Scores are divided
# by $\sqrt{d_k}$, turned into **weights** with a softmax over each row (over the keys),
#
# $$A_{ij} = \frac{\exp(S_{ij}/\sqrt{d_k})}{\sum_{j'} \exp(S_{ij'}/\sqrt{d_k})}, \qquad \sum_j A_{ij} = 1,$$
#
# and each token's output is the weighted average of the values: $\text{out}_i = \sum_j A_{ij} v_j$, i.e.
# $\text{out} = A V$.
#
# | step | formula | shape |
# |---|---|---|
# | projections | $Q = XW_Q,\ K = XW_K,\ V = XW_V$ | $[T, d_k]$, $[T, d_k]$, $[T, d_v]$ |
# | scores | $S = QK^\top$ | $[T, T]$ |
# | scaling | $S / \sqrt{d_k}$ | $[T, T]$ |
# | weights | $A = \mathrm{softmax}_{\text{row}}(S/\sqrt{d_k})$ | $[T, T]$, rows sum to 1 |
# | output | $AV$ | $[T, d_v]$ |

# %% [markdown]
# ## 2. A worked example: 3 tokens, $d_k = 3$
#
# Three tokens, each a 3-number vector, and three small projection matrices of 0s, 1s, 2s and 3s, so that every
# product can be checked in your head. (In a real model these numbers are learned; here we simply choose them.)

# %%
X = np.array(
    [
        [1, 0, 1],  # token 1
        [0, 2, 0],  # token 2
        [1, 1, 0],
    ],  # token 3
    dtype=np.float64,
)
W_Q = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=np.float64)
W_K = np.array([[0, 1, 1], [1, 0, 0], [1, 1, 0]], dtype=np.float64)
W_V = np.array([[1, 0, 0], [0, 2, 0], [0, 0, 3]], dtype=np.float64)
d_k = W_Q.shape[1]
show("X", X)
show("W_Q", W_Q)
show("W_K", W_K)
show("W_V", W_V)

# %% [markdown]
# ### Step 1 — queries, keys, values
#
# Each row of $Q$ is a row of $X$ times $W_Q$. For example token 1's query is
# $[1, 0, 1] W_Q = 1\cdot[1,0,1] + 0\cdot[0,1,0] + 1\cdot[1,0,0] = [2, 0, 1]$.

# %%
Q = X @ W_Q
K = X @ W_K
V = X @ W_V
show("Q = X W_Q", Q)
show("K = X W_K", K)
show("V = X W_V", V)
assert np.array_equal(Q[0], [2, 0, 1])

# %% [markdown]
# ### Step 2 — scores $QK^\top$
#
# Entry $(i, j)$ is $q_i \cdot k_j$. For instance $q_1 \cdot k_2 = [2,0,1]\cdot[2,0,0] = 4$.

# %%
S = Q @ K.T
show("S = Q K^T", S)
for i in range(3):
    for j in range(3):
        assert S[i, j] == sum(
            Q[i, c] * K[j, c] for c in range(d_k)
        )  # entry by entry: a dot product
assert S[0, 1] == 4

# %% [markdown]
# ### Step 3 — divide by $\sqrt{d_k} = \sqrt 3 \approx 1.732$
#
# (Section 3 explains where this number comes from.)

# %%
S_scaled = S / np.sqrt(d_k)
print(f"sqrt(d_k) = {np.sqrt(d_k):.3f}\n")
show("S / sqrt(d_k)", S_scaled)

# %% [markdown]
# ### Step 4 — the row softmax
#
# Exponentiate every scaled score, add up each row, divide each row by its sum. The softmax runs along each row
# because each row belongs to one query: it distributes that query's attention over the keys.

# %%
E = np.exp(S_scaled)
row_sums = E.sum(axis=1, keepdims=True)
A = E / row_sums
show("exp(S / sqrt(d_k))", E)
show("row sums", row_sums)
show("A = exp / row sum  (attention weights)", A)
print("each row of A sums to", np.round(A.sum(axis=1), 6))
assert np.allclose(A.sum(axis=1), 1.0)
assert np.round(A[0, 1], 3) == 0.471 and np.round(A[1, 1], 2) == 0.07  # quoted in the text below

# %% [markdown]
# Token 1 gives most of its attention (0.471) to token 2: its query $[2,0,1]$ lines up best with key $[2,0,0]$.
# Token 2 has a score of 0 with key 2 and so gives token 2 only 7% of its attention.
#
# A practical detail: implementations subtract each row's maximum before exponentiating. It cancels in the
# division, so the weights are the same, but it keeps $e^{s}$ from overflowing when the scores are large (we will
# meet scores in the thousands in the errata section).

# %%
E_stable = np.exp(S_scaled - S_scaled.max(axis=1, keepdims=True))
show("exp(S/sqrt(d_k) - row max)", E_stable)
A_stable = E_stable / E_stable.sum(axis=1, keepdims=True)
assert np.allclose(A_stable, A, atol=1e-15)
print("same weights after subtracting the row maximum:", np.allclose(A_stable, A, atol=1e-15))

# %% [markdown]
# This is the course's `softmax`, which every later lesson imports. Its last three lines are the two cells above:
# `z = x - max(x)` is the shift, and `e / sum(e)` divides each row by its sum (`axis=-1`: over the keys).

# %%
show_source(softmax)

# %% [markdown]
# ### Step 5 — weights times values
#
# Each output row is a weighted average of the rows of $V$. Token 1:
# $0.264\,[1,0,3] + 0.471\,[0,4,0] + 0.264\,[1,2,0] = [0.529, 2.413, 0.793]$.

# %%
out = A @ V
show("out = A V", out)
assert np.allclose(out[0], A[0, 0] * V[0] + A[0, 1] * V[1] + A[0, 2] * V[2])
assert np.array_equal(np.round(out[0], 3), [0.529, 2.413, 0.793])  # quoted in the text above
hand_qkv = (Q, K, V)  # kept for exercise 2 (section 6 reuses the names Q, K, V)

# %% [markdown]
# Because the weights in a row are non-negative and sum to 1, every output is a **convex combination** of the value
# vectors: each output column lies between the smallest and largest entry of that column of $V$. Keep this in mind —
# it will help us spot an impossible result in the errata section.

# %%
assert np.all(out >= V.min(axis=0) - 1e-12) and np.all(out <= V.max(axis=0) + 1e-12)
print("column minima of V:", V.min(axis=0), " column maxima of V:", V.max(axis=0))
print("every output column lies in that range:", True)

# %% [markdown]
# ### The code: `scaled_dot_product_attention`
#
# Steps 2–5 are the library's NumPy reference. Most of it checks the shapes and says what was expected; the
# equations are the last lines: `_scores(q, k)` is steps 2–3, `q @ swapaxes(k, -1, -2) / np.sqrt(d_k)` (the
# transpose of the last two axes, so it works over any leading batch or head axes), `softmax(scores)` is step 4
# and `weights @ v` step 5. The two mask lines in between are section 4.

# %%
show_source(scaled_dot_product_attention)

# %% [markdown]
# ### Checking the hand computation three independent ways
#
# 1. `lessons_lib.scaled_dot_product_attention` (the course's NumPy reference);
# 2. plain TensorFlow ops (`tf.matmul`, `tf.nn.softmax`) in float32;
# 3. `keras.layers.MultiHeadAttention(num_heads=1, key_dim=3)` with our matrices copied into it. We put them in a
#    one-head `lessons_lib.MultiHeadAttention`, with the identity as its output projection and no biases (so that
#    the layer returns $AV$ itself), and `copy_to_keras_mha` copies them into Keras, which stores the kernels in a
#    head-aware layout, `[d_model, heads, key_dim]` (lesson 05 §8 explains the copy).

# %%
TOL = 1e-5

lib_out, lib_A = scaled_dot_product_attention(Q, K, V)

tQ, tK, tV = (tf.constant(m, dtype=tf.float32) for m in (Q, K, V))
tf_A = tf.nn.softmax(
    tf.matmul(tQ, tK, transpose_b=True) / tf.sqrt(tf.constant(d_k, tf.float32)), axis=-1
)
tf_out = tf.matmul(tf_A, tV)

x_batch = X[None].astype("float32")  # [batch=1, T=3, d_model=3]
one_head = MultiHeadAttention(d_model=3, num_heads=1, use_bias=False)
one_head.build(x_batch.shape)
for dense, matrix in (
    (one_head.wq, W_Q),
    (one_head.wk, W_K),
    (one_head.wv, W_V),
    (one_head.wo, np.eye(3)),
):
    dense.kernel.assign(matrix)
mha = keras.layers.MultiHeadAttention(num_heads=1, key_dim=3, use_bias=False)
mha(x_batch, x_batch)  # build the layer once, then overwrite its weights
copy_to_keras_mha(one_head, mha)
assert np.array_equal(np.asarray(mha.query_dense.kernel)[:, 0], W_Q)  # [d_model, heads=1, key_dim]
keras_out, keras_A = mha(x_batch, x_batch, return_attention_scores=True)

for name, (got_out, got_A) in {
    "lessons_lib": (lib_out, lib_A),
    "tf ops": (tf_out.numpy(), tf_A.numpy()),
    "keras MHA": (keras_out.numpy()[0], keras_A.numpy()[0, 0]),
}.items():
    d_out = np.max(np.abs(got_out - out))
    d_A = np.max(np.abs(got_A - A))
    assert d_out <= TOL and d_A <= TOL, (name, d_out, d_A)
    print(
        f"{name:12s} weights and output agree with the hand computation (max abs diff <= {TOL:g})"
    )

# %% [markdown]
# ## 3. Why divide by $\sqrt{d_k}$?
#
# Suppose the components of a query $q$ and a key $k$ are independent random numbers with mean 0 and variance 1
# (roughly what a well-initialised network produces). Each product $q_c k_c$ then has mean
# $\mathbb E[q_c]\,\mathbb E[k_c] = 0$ and variance
#
# $$\operatorname{Var}(q_c k_c) = \mathbb E[q_c^2 k_c^2] - (\mathbb E[q_c k_c])^2 = \mathbb E[q_c^2]\,\mathbb E[k_c^2] - 0 = 1 .$$
#
# The dot product is a sum of $d_k$ such independent terms, and variances of independent terms add:
#
# $$\operatorname{Var}(q \cdot k) = \sum_{c=1}^{d_k} \operatorname{Var}(q_c k_c) = d_k,
#   \qquad \operatorname{std}(q\cdot k) = \sqrt{d_k}.$$
#
# So the scores grow like $\sqrt{d_k}$, and dividing by $\sqrt{d_k}$ brings them back to variance 1 whatever the
# head size (this is the argument of footnote 4 in Vaswani et al., 2017). Let us check it with random numbers.

# %%
rng = np.random.default_rng(0)
dims = [1, 4, 16, 64, 256, 1024]
print(" d_k   Var(q.k)   Var(q.k)/d_k   Var(q.k / sqrt(d_k))")
samples = {}
for dk in dims:
    q = rng.standard_normal((N_PAIRS, dk))
    k = rng.standard_normal((N_PAIRS, dk))
    dots = np.einsum("nc,nc->n", q, k)
    samples[dk] = dots
    print(
        f"{dk:4d}  {dots.var():9.1f}   {dots.var() / dk:10.2f}     {(dots / np.sqrt(dk)).var():10.2f}"
    )
    assert abs(dots.var() / dk - 1) < 0.1 and abs((dots / np.sqrt(dk)).var() - 1) < 0.1

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
bins_raw = np.linspace(-100, 100, 101)
bins_scaled = np.linspace(-5, 5, 101)
for dk in (4, 64, 1024):
    axes[0].hist(samples[dk], bins=bins_raw, histtype="step", density=True, label=f"d_k = {dk}")
    axes[1].hist(
        samples[dk] / np.sqrt(dk),
        bins=bins_scaled,
        histtype="step",
        density=True,
        label=f"d_k = {dk}",
    )
axes[0].set(
    title=r"raw scores $q\cdot k$: spread grows like $\sqrt{d_k}$", xlabel="score", ylabel="density"
)
axes[1].set(
    title=r"scaled scores $q\cdot k/\sqrt{d_k}$: same spread for every $d_k$", xlabel="score"
)
for ax in axes:
    ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ### What goes wrong without the scaling: saturation and vanishing gradients
#
# Large scores push the softmax towards a one-hot vector: one key takes (almost) all the weight. That is bad for
# learning, because the softmax's derivative vanishes there. Writing $p = \mathrm{softmax}(s)$,
#
# $$\frac{\partial p_i}{\partial s_j} = p_i(\delta_{ij} - p_j)
#   \quad\Longrightarrow\quad J = \frac{\partial p}{\partial s} = \mathrm{diag}(p) - p p^\top .$$
#
# If $p$ is one-hot, $p = e_m$, then $J = \mathrm{diag}(e_m) - e_m e_m^\top = 0$: nudging any score changes
# nothing, so no gradient flows back to $W_Q$ and $W_K$. First let us make sure the formula is right by asking
# TensorFlow's automatic differentiation (`tf.GradientTape`) for the same Jacobian.


# %%
def softmax_jacobian(p):
    """Analytic Jacobian d softmax / d scores = diag(p) - p p^T for one probability vector p."""
    return np.diag(p) - np.outer(p, p)


s_example = tf.constant([1.0, 2.0, 0.5, -1.0], dtype=tf.float64)
with tf.GradientTape() as tape:
    tape.watch(s_example)
    p_example = tf.nn.softmax(s_example)
J_tape = tape.jacobian(p_example, s_example).numpy()
J_formula = softmax_jacobian(p_example.numpy())
show("Jacobian from tf.GradientTape", J_tape)
assert np.max(np.abs(J_tape - J_formula)) < 1e-12
print("diag(p) - p p^T agrees with tf.GradientTape: True")

# %% [markdown]
# Now the experiment: for each $d_k$, draw a random query and `N_KEYS` random keys (unit-variance components),
# compute the softmax of the raw scores and of the scaled scores, and record the largest weight and the size
# (Frobenius norm) of the Jacobian, averaged over `N_TRIALS` draws.

# %%
rng = np.random.default_rng(1)
dims = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
stats = {"raw": ([], []), "scaled": ([], [])}
for dk in dims:
    q = rng.standard_normal((N_TRIALS, 1, dk))
    k = rng.standard_normal((N_TRIALS, N_KEYS, dk))
    raw = np.einsum("tqc,tkc->tk", q, k)
    for kind, scores in (("raw", raw), ("scaled", raw / np.sqrt(dk))):
        p = softmax(scores, axis=-1)
        jac_norms = [np.linalg.norm(softmax_jacobian(row)) for row in p]
        stats[kind][0].append(p.max(axis=-1).mean())
        stats[kind][1].append(np.mean(jac_norms))

print(" d_k   max weight (raw / scaled)   ||J|| (raw / scaled)")
for i, dk in enumerate(dims):
    print(
        f"{dk:4d}   {stats['raw'][0][i]:.3f} / {stats['scaled'][0][i]:.3f}"
        f"              {stats['raw'][1][i]:.3f} / {stats['scaled'][1][i]:.3f}"
    )
assert stats["raw"][0][-1] > 0.95 and stats["raw"][1][-1] < 0.1  # saturated, gradient nearly gone
assert (
    max(stats["scaled"][0]) - min(stats["scaled"][0][2:]) < 0.15
)  # scaled: about the same for all d_k

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for kind, style in (("raw", "o-"), ("scaled", "s-")):
    label = r"$QK^\top$ (no scaling)" if kind == "raw" else r"$QK^\top/\sqrt{d_k}$"
    axes[0].plot(dims, stats[kind][0], style, label=label)
    axes[1].plot(dims, stats[kind][1], style, label=label)
axes[0].axhline(1 / N_KEYS, color="gray", lw=0.8, ls="--", label=f"uniform (1/{N_KEYS})")
axes[0].set(
    xscale="log",
    xlabel="$d_k$",
    ylabel="mean largest weight",
    title="softmax saturates without scaling",
)
axes[1].set(
    xscale="log",
    xlabel="$d_k$",
    ylabel=r"mean $\|\mathrm{diag}(p) - pp^\top\|_F$",
    title="...and its gradient vanishes",
)
for ax in axes:
    ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# Without the scaling, the larger the head, the closer each row of weights is to one-hot and the smaller the
# gradient that reaches $W_Q$ and $W_K$. With it, the weights and the gradient behave the same for every $d_k$.

# %% [markdown]
# ### Try it: the scaling and the temperature
#
# The explorer below takes **one row** of raw scores — one query against 8 keys, $d_k = 64$, unit-variance
# components, exactly like the experiment above — and shows the weights
# $p = \mathrm{softmax}\big(s / (\tau\sqrt{d_k})\big)$ as bars. Things to try:
#
# * untick **divide by √d_k**: the softmax saturates (one bar takes everything) and the entropy drops to about 0;
# * move the **d_k** slider: a larger divisor flattens the weights, a smaller one sharpens them;
# * move the **temperature** $\tau$, a second divisor that you will meet again when sampling text from a language
#   model: $\tau < 1$ sharpens, $\tau > 1$ flattens, $\tau \to \infty$ gives the uniform distribution.
#
# The readout gives the **entropy** $H(p) = -\sum_i p_i \log p_i$ (0 for a one-hot row, $\log 8 \approx 2.079$ for
# a uniform one), the top weight, and the size of the Jacobian $\|\mathrm{diag}(p) - pp^\top\|_F$ — the gradient
# factor of the previous section. The curve on the right is the entropy for every temperature. Everything is
# recomputed in your browser as you drag; a static copy of this notebook (HTML, GitHub) shows a picture of the
# default settings instead.

# %% tags=["nbval-ignore-output"]
from lessons_lib import SoftmaxExplorer

rng = np.random.default_rng(3)
q_64 = rng.standard_normal(64)  # one query, d_k = 64 unit-variance components
row_64 = rng.standard_normal((8, 64)) @ q_64  # its raw scores against 8 random keys
explore_scale = SoftmaxExplorer(
    row_64, [f"key {j}" for j in range(8)], d_k=64, title="one query against 8 keys, d_k = 64"
)
explore_scale

# %% [markdown]
# The same numbers, computed in Python (this cell resets the explorer to the scaled softmax at $\tau = 1$):

# %%
print("raw scores:", np.round(row_64, 1))
for scale in (True, False):
    explore_scale.select(scale=scale, temperature=1.0, d_k=64)
    p = explore_scale.distribution()
    print(
        f"divide by sqrt(d_k): {str(scale):5}  entropy {explore_scale.entropy():.2f} nats (max {np.log(8):.2f}), "
        f"top weight {p.max():.2f}, saturated: {explore_scale.is_saturated()}"
    )
    assert explore_scale.is_saturated() == (not scale)
explore_scale.select(scale=True)

# %% [markdown]
# ## 4. The causal mask
#
# A language model predicts the next token, so while reading token $i$ it must not peek at tokens $j > i$. The
# **causal mask** is a lower-triangular boolean matrix: `True` means "query $i$ **may attend** to key $j$" (the
# course's and Keras' convention). Blocked scores are replaced by $-\infty$ (in practice a very negative number,
# `lessons_lib` uses $-10^9$) before the softmax, so $e^{-\infty} = 0$ and blocked weights are **exactly** zero,
# while each row still sums to 1 over the allowed keys.

# %%
mask = causal_mask(3)
print("causal_mask(3)  (True = may attend)")
print(mask, end="\n\n")

S_masked = np.where(mask, S_scaled, -np.inf)
E_masked = np.exp(S_masked)  # exp(-inf) = 0 exactly
A_causal = E_masked / E_masked.sum(axis=1, keepdims=True)
show("masked scaled scores (-inf = blocked)", S_masked)
show("exp(masked scores)", E_masked)
show("row sums", E_masked.sum(axis=1, keepdims=True))
show("causal weights", A_causal)
show("causal output = weights V", A_causal @ V)

lib_out_c, lib_A_c = scaled_dot_product_attention(Q, K, V, mask=mask)
keras_out_c, keras_A_c = mha(x_batch, x_batch, return_attention_scores=True, use_causal_mask=True)
assert np.all(lib_A_c[~mask] == 0.0) and np.all(
    keras_A_c.numpy()[0, 0][~mask] == 0.0
)  # exactly zero
assert np.max(np.abs(lib_A_c - A_causal)) <= TOL and np.max(np.abs(lib_out_c - A_causal @ V)) <= TOL
assert np.max(np.abs(keras_A_c.numpy()[0, 0] - A_causal)) <= TOL
assert np.max(np.abs(keras_out_c.numpy()[0] - A_causal @ V)) <= TOL
print(
    "blocked weights are exactly 0 in lessons_lib and in Keras; both agree with the hand computation"
)

# %% [markdown]
# Token 1 can only see itself, so its output is just $v_1$; token 2 splits its attention between tokens 1 and 2;
# token 3 sees everything, exactly as before.

# %% [markdown]
# ## 5. The thread: attention head 0
#
# Back to the course's running example, the sentence *"to be or not to be"* with $d_{\text{model}} = 4$. Lesson 03
# ended with $x$ = embeddings + positions. The thread's block has **2 heads** of size $d_k = 2$: each head uses
# its own 2 columns of $Q = xW_Q$, $K = xW_K$, $V = xW_V$. Here we compute **head 0** (columns 0–1) by hand, with
# the causal mask. Heads are counted from 0: in lesson 05 this is head 0 of the thread's two heads, and we will add
# head 1 (columns 2–3) and $W_O$.

# %%
state = thread.forward()
w = thread.weights()
words = thread.SENTENCE.split()
x = state["x"]
assert thread.NUM_HEADS == 2 and thread.D_K == 2 and thread.D_MODEL == 4  # quoted above
show("x (from lesson 03)", x)
show("W_Q", w["W_Q"], 1)
show("W_K", w["W_K"], 1)
show("W_V", w["W_V"], 1)

# %%
Q_t, K_t, V_t = x @ w["W_Q"], x @ w["W_K"], x @ w["W_V"]
show("Q = x W_Q", Q_t)
show("K = x W_K", K_t)
show("V = x W_V", V_t)
for name, mine in (("Q", Q_t), ("K", K_t), ("V", V_t)):
    assert np.allclose(mine, state[name], atol=1e-12)

dk_t = thread.D_K
Q0, K0, V0 = Q_t[:, 0:dk_t], K_t[:, 0:dk_t], V_t[:, 0:dk_t]  # head 0 = columns 0..d_k-1
for name, mine in (("Q_heads", Q0), ("K_heads", K0), ("V_heads", V0)):
    assert np.allclose(mine, state[name][0], atol=1e-12)
show("Q head 0", Q0)
show("K head 0", K0)
show("V head 0", V0)

# %%
S0 = Q0 @ K0.T
S0_scaled = S0 / np.sqrt(dk_t)
show("scores Q0 K0^T", S0)
show(f"scaled scores (/ sqrt({dk_t}) = {np.sqrt(dk_t):.3f})", S0_scaled)
assert np.allclose(S0_scaled, state["scores"][0], atol=1e-12)

mask_t = causal_mask(len(words))
S0_masked = np.where(mask_t, S0_scaled, -np.inf)
E0 = np.exp(S0_masked)
sums0 = E0.sum(axis=1, keepdims=True)
A0 = E0 / sums0
out0 = A0 @ V0
show("exp(masked scaled scores)", E0)
show("row sums", sums0)
show("weights (head 0)", A0)
show("head 0 output = weights V0", out0)

assert np.array_equal(mask_t, state["mask"])
assert np.allclose(A0, state["weights"][0], atol=1e-12)
assert np.allclose(out0, state["head_outputs"][0], atol=1e-12)
assert np.all(A0[~mask_t] == 0.0)
print("matches thread.forward()['weights'][0] and ['head_outputs'][0]")
assert np.round(A0[2, 2], 3) == 0.999  # quoted below the plot
assert np.array_equal(np.round(S0_scaled[2, :3], 2), [-3.34, -3.11, 4.37])

# %%
fig, ax = plt.subplots(figsize=(4.8, 4))
im = ax.imshow(A0, cmap="Blues", vmin=0, vmax=1)
ax.set_xticks(range(len(words)), [f"{i}:{t}" for i, t in enumerate(words)], rotation=45)
ax.set_yticks(range(len(words)), [f"{i}:{t}" for i, t in enumerate(words)])
for i in range(len(words)):
    for j in range(len(words)):
        if mask_t[i, j]:
            ax.text(
                j,
                i,
                f"{A0[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if A0[i, j] > 0.6 else "black",
            )
ax.set(
    xlabel="key (attended to)",
    ylabel="query (attending)",
    title="thread, head 0: causal attention weights",
)
fig.colorbar(im, ax=ax, fraction=0.046)
plt.tight_layout()
plt.show()

# %% [markdown]
# Reading the picture: row 0 ("to") can only see itself. The third token "or" puts 0.999 of its weight on itself
# — its scaled score with itself (4.37) is far above its scores with "to" and "be" (−3.34, −3.11), a small taste
# of saturation in a model with only random weights. Blank cells are blocked by the mask (weight exactly 0).

# %% [markdown]
# ## 6. Errata: the source article's example (4.3) and code (5.2)
#
# The course grew out of an article that explains the same formula. Its sections 4.3 and 5.2 contain a worked
# example and a code listing that do not hold together. Mistakes like these are easy to make when a derivation is
# typed rather than computed — which is exactly why this course checks every number with code. Going through them
# carefully is a good exercise, and each one teaches something.
#
# **First, the formula.** The article writes $\mathrm{softmax}(Q \cdot K/\sqrt{d_k})\,V$. The product needs a
# transpose, $QK^\top$, so that row $i$ of $Q$ is dotted with row $j$ of $K$, and the softmax is taken over each
# row (over the keys), as in section 2 above.
#
# ### 6.1 The worked example of section 4.3
#
# The article takes $\text{input} = [1, 2, 3, 4, 5]$ and $W = \begin{bmatrix}0&1&2\\3&4&5\\6&7&8\end{bmatrix}$ and
# sets $Q = K = V = W \cdot \text{input}$. Let us try.

# %%
article_input = np.array([1, 2, 3, 4, 5], dtype=np.float64)
article_W = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]], dtype=np.float64)
try:
    article_W @ article_input
except ValueError as err:
    print("W @ input  ->  ValueError:", err)
else:
    raise AssertionError("expected a shape error")
try:
    article_W.dot(article_input)
except ValueError as err:
    print("W.dot(input)  ->  ValueError:", err)

# %% [markdown]
# **Step 1 breaks:** a $3\times3$ matrix can only multiply a 3-vector; `input` has 5 numbers.
#
# **Step 2 does not follow.** The article's $Q = K = V$ is the $3\times3$ matrix below. A matrix times a vector is a
# *vector*, never a $3\times3$ matrix; even taking 3 of the 5 inputs, or multiplying $W$ by itself, we get
# something else:

# %%
article_Q = np.array([[0, 7, 18], [15, 31, 51], [36, 59, 82]], dtype=np.float64)
show("the article's Q = K = V", article_Q, 0)
show("W @ input[:3]", article_W @ article_input[:3], 0)
show("W @ input[2:]", article_W @ article_input[2:], 0)
show("W @ W", article_W @ article_W, 0)
assert not np.array_equal(article_W @ article_W, article_Q)

# %% [markdown]
# **Step 3: the weights.** Let us still take the article's $Q = K = V$ as given and compute
# $\mathrm{softmax}(QK^\top/\sqrt 3)$ correctly. The article reports
# $\begin{bmatrix}0.2&0.5&0.3\\0.4&0.4&0.2\\0.3&0.2&0.5\end{bmatrix}$.

# %%
article_K = article_V = article_Q
scores_43 = article_Q @ article_K.T / np.sqrt(3)
show("Q K^T / sqrt(3)", scores_43, 1)

with np.errstate(over="ignore", invalid="ignore"):  # the naive formula overflows on purpose here
    naive = np.exp(scores_43) / np.exp(scores_43).sum(axis=1, keepdims=True)
show("naive softmax (exp first): exp(6640) overflows to inf, inf/inf = nan", naive)

true_w_43 = softmax(scores_43, axis=-1)
show("true softmax(Q K^T / sqrt(3)) (stable)", true_w_43)
assert np.isnan(naive).any()
assert np.allclose(true_w_43, [[0, 0, 1]] * 3, atol=1e-100)  # one-hot, to 100 decimal places

literal_w_43 = softmax(
    article_Q @ article_K / np.sqrt(3), axis=-1
)  # the article's Q.K without transpose
assert np.allclose(literal_w_43, [[0, 0, 1]] * 3, atol=1e-100)
print(
    "Q K (no transpose, as literally written) gives the same one-hot rows:",
    np.round(literal_w_43, 3).tolist(),
)

# %% [markdown]
# The scores are in the hundreds and thousands, so differences between them of hundreds become factors like
# $e^{-435} \approx 10^{-189}$ after exponentiation (computed below): every row is one-hot on the third key.
# The $\sqrt 3$ is far too small a correction here — the scaling argument of section 3 assumes unit-variance
# components, while these entries go up to 82. This is the saturation of section 3 in its most extreme form, and
# the gradient is gone:

# %%
gap = scores_43[0, 2] - scores_43[0, 1]
print(
    f"row 1: the largest score beats the next one by {gap:.1f}, so the runner-up gets e^-{gap:.1f} "
    f"= {np.exp(-gap):.1e} of the top key's weight\n"
)
for i, p in enumerate(true_w_43):
    print(
        f"row {i + 1}: weights {p[0]:.1e}, {p[1]:.1e}, {p[2]:.1e}   "
        f"largest entry of |diag(p) - p p^T| = {np.abs(softmax_jacobian(p)).max():.1e}"
    )
assert all(np.abs(softmax_jacobian(p)).max() < 1e-100 for p in true_w_43)
assert round(gap) == 435 and round(np.log10(np.exp(-gap))) == -189  # quoted above
show("true output = softmax(...) V: every token copies the last value", true_w_43 @ article_V, 1)

# %% [markdown]
# Explore the article's three rows of $QK^\top$ with the explorer of section 3. With $d_k = 3$ every row is
# one-hot and its entropy 0. Drag $d_k$ all the way to 4096 (dividing by 64): still one-hot. Only when the divisor
# reaches the thousands (add a temperature of about 100) do the weights spread out. No $\sqrt{d_k}$ can rescue
# scores whose spread is hundreds of times too large; the real fix is inputs and weights of a sensible size, as in
# section 2.

# %% tags=["nbval-ignore-output"]
explore_article = SoftmaxExplorer(
    article_Q @ article_K.T,
    ["key 1", "key 2", "key 3"],
    d_k=3,
    row_labels=["row 1", "row 2", "row 3"],
    title="the article's worked example (4.3): softmax(Q Kᵀ / √3)",
)
explore_article

# %%
for r in range(3):
    explore_article.select(row=r, d_k=3, temperature=1.0)
    print(
        f"row {r + 1}: scores {explore_article.scores[r]}, entropy {explore_article.entropy():.3f}, "
        f"saturated: {explore_article.is_saturated()}"
    )
    assert explore_article.is_saturated()
explore_article.select(row=0, d_k=4096)
print(f"row 1 divided by sqrt(4096) = 64: top weight {explore_article.distribution().max():.4f}")
assert explore_article.is_saturated()
explore_article.select(temperature=100.0)
print(f"... and by a further 100: weights {np.round(explore_article.distribution(), 3)}")
assert not explore_article.is_saturated()
explore_article.select(row=0, d_k=3, temperature=1.0)

# %% [markdown]
# **Step 4: the output.** Even if we accept the article's weights, its output is not weights $\times V$:

# %%
claimed_w_43 = np.array([[0.2, 0.5, 0.3], [0.4, 0.4, 0.2], [0.3, 0.2, 0.5]])
claimed_out_43 = np.array([[1.8, 6.9, 10.5], [4.8, 9.7, 15.1], [2.7, 4.3, 6.9]])
recomputed = claimed_w_43 @ article_V
show("the article's weights @ V", recomputed, 1)
show("the article's claimed output", claimed_out_43, 1)
print("row 1 recomputed:", np.round(recomputed[0], 1), " claimed:", claimed_out_43[0])
assert np.allclose(recomputed[0], [18.3, 34.6, 53.7])

col_min = article_V.min(axis=0)
print("\nsmallest entry of each column of V:", col_min)
print(
    "claimed output entries below their column's minimum:",
    int((claimed_out_43 < col_min).sum()),
    "of 9",
)
assert np.all(claimed_out_43[:, 2] < col_min[2])
assert article_V[:, 2].tolist() == [18, 51, 82] and claimed_out_43[:, 2].tolist() == [
    10.5,
    15.1,
    6.9,
]

# %% [markdown]
# The last check is the convex-combination argument of section 2: every output must lie between the smallest and
# the largest value in each column of $V$. Column 3 of $V$ is $(18, 51, 82)$, yet the claimed outputs in that column
# are 10.5, 15.1 and 6.9 — **no** set of attention weights could produce them.
#
# The consistent version of this example is section 2 of this lesson: 3 tokens, $d_k = 3$, small numbers, and every
# step checked against three independent implementations.

# %% [markdown]
# ### 6.2 The code of section 5.2
#
# Here is the article's listing, copied exactly. Running it raises an error on the first product (the cell is
# tagged `raises-exception`, so the notebook carries on).

# %% tags=["raises-exception"]
import numpy as np
import tensorflow as tf

# 词嵌入维度
d_v = 128
# 自注意力头数
n_heads = 8

# 初始化权重矩阵
W = np.random.normal(size=(d_v, d_v))
W_Q = np.random.normal(size=(d_v, d_v))
W_K = np.random.normal(size=(d_v, d_v))
W_V = np.random.normal(size=(d_v, d_v))

# 输入向量
input = np.array([1, 2, 3, 4, 5])

# 计算查询、键和值
Q = W_Q.dot(input)
K = W_K.dot(input)
V = W_V.dot(input)

# 计算注意力权重
scores = np.exp(Q.dot(K) / np.sqrt(d_v))
scores = scores / np.linalg.norm(scores, axis=1, keepdims=True)

# 计算输出
output = scores.dot(V)

print(output)

# %% [markdown]
# `W_Q` is $128\times128$ and `input` has 5 numbers, so `W_Q.dot(input)` cannot be computed. (The listing also
# rebinds Python's built-in `input`; we restore it below.) Suppose we patch this one problem by giving it a
# 128-number input. The next lines then break, one after the other:

# %%
del input  # give Python its built-in input() back
rng = np.random.default_rng(0)
W_Q, W_K, W_V = (rng.normal(size=(d_v, d_v)) for _ in range(3))
x128 = rng.normal(size=d_v)  # a patched input: one vector of 128 numbers
Q, K, V = W_Q.dot(x128), W_K.dot(x128), W_V.dot(x128)
print("Q, K, V shapes:", Q.shape, K.shape, V.shape, " -> one vector each: there is only ONE token")
print("Q.dot(K) is a single number, shape", np.shape(Q.dot(K)), "- not a T x T score matrix")
with np.errstate(over="ignore"):
    patched_scores = np.exp(Q.dot(K) / np.sqrt(d_v))
try:
    np.linalg.norm(patched_scores, axis=1, keepdims=True)
except Exception as err:  # numpy raises a numpy.exceptions.AxisError here
    print("np.linalg.norm(scores, axis=1)  ->", type(err).__name__ + ":", err)
else:
    raise AssertionError("expected an axis error")

e = np.exp(np.array([1.0, 2.0, 3.0]))
print(
    "\nand dividing by the L2 norm does not make weights that sum to 1:",
    f"sum(e / ||e||) = {np.sum(e / np.linalg.norm(e)):.3f}, sum(e / sum(e)) = {np.sum(e / e.sum()):.3f}",
)

# %% [markdown]
# So the listing has, in order:
#
# 1. a 5-number input multiplied by $128\times128$ matrices (shape error);
# 2. a single vector where there should be one row **per token**, so `Q.dot(K)` is one number, not a score matrix;
# 3. the exponentials divided by their L2 norm instead of their sum (the softmax needs the sum);
# 4. `axis=1` on something that has no axis 1;
# 5. `n_heads` and `W` defined but never used — nothing in it is multi-head;
# 6. and its printed "result" (section 5.4) is the $3\times3$ matrix of section 4.3, which 128-dimensional vectors
#    could not produce.
#
# **A corrected version.** We read `[1, 2, 3, 4, 5]` as five token ids, look them up in an embedding table
# (lesson 02) to get $X$ of shape $[5, 128]$, and then do what the article intended: 8 heads of $d_k = 16$, each
# computing $\mathrm{softmax}(Q_hK_h^\top/\sqrt{d_k})V_h$, concatenated and multiplied by an output matrix — the
# article's unused `W` is exactly the $W_O$ that lesson 05 introduces. We scale the random weights by
# $1/\sqrt{d_{\text{model}}}$ so that $Q$ and $K$ have unit-variance components, the assumption behind the
# $\sqrt{d_k}$ scaling (with plain $\mathcal N(0,1)$ weights the scores would saturate, as in 6.1).

# %%
rng = np.random.default_rng(0)
d_model, n_heads, vocab_size = 128, 8, 10
d_head = d_model // n_heads  # 16
token_ids = np.array([1, 2, 3, 4, 5])  # five tokens
embedding_table = rng.normal(size=(vocab_size, d_model))
W_Q, W_K, W_V, W_O = (rng.normal(size=(d_model, d_model)) / np.sqrt(d_model) for _ in range(4))

X_52 = embedding_table[token_ids]  # [5, 128]: one row per token
Q, K, V = X_52 @ W_Q, X_52 @ W_K, X_52 @ W_V  # [5, 128] each
heads = []
for h in range(n_heads):
    cols = slice(h * d_head, (h + 1) * d_head)
    scores = Q[:, cols] @ K[:, cols].T / np.sqrt(d_head)  # [5, 5]
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    weights = weights / weights.sum(axis=1, keepdims=True)  # softmax over each row
    heads.append(weights @ V[:, cols])  # [5, 16]
output = np.concatenate(heads, axis=1) @ W_O  # [5, 128]

print("output shape:", output.shape)
print("first 4 numbers of each token's output:")
print(np.round(output[:, :4], 3))

# %% [markdown]
# And the usual independent checks: the same weights in `lessons_lib.MultiHeadAttention`, copied from it into
# `keras.layers.MultiHeadAttention(num_heads=8, key_dim=16)` by `copy_to_keras_mha`, and given to the course's
# NumPy reference `multi_head_attention` (lesson 05 derives it).

# %%
x_52 = X_52[None].astype("float32")
lib_mha = MultiHeadAttention(d_model, n_heads, use_bias=False)
lib_mha(x_52)
for dense, matrix in ((lib_mha.wq, W_Q), (lib_mha.wk, W_K), (lib_mha.wv, W_V), (lib_mha.wo, W_O)):
    dense.kernel.assign(matrix)
keras_mha = keras.layers.MultiHeadAttention(num_heads=n_heads, key_dim=d_head, use_bias=False)
keras_mha(x_52, x_52)
copy_to_keras_mha(lib_mha, keras_mha)

for name, layer_out in (
    ("keras.layers.MultiHeadAttention", keras_mha(x_52, x_52).numpy()[0]),
    ("lessons_lib.MultiHeadAttention", lib_mha(x_52).numpy()[0]),
    (
        "lessons_lib.multi_head_attention",
        multi_head_attention(X_52, W_Q, W_K, W_V, W_O, n_heads)[0],
    ),
):
    diff = np.max(np.abs(layer_out - output))
    assert diff <= TOL, (name, diff)
    print(f"{name}: agrees with the corrected NumPy code (max abs diff <= {TOL:g})")

# %% [markdown]
# ## 7. Exercises
#
# Each exercise has a stub to fill in, a check cell that tells you whether your answer is right, and a hidden
# solution cell (click to expand it once you have tried).
#
# ### Exercise 1 — a numerically stable softmax
#
# Write `stable_softmax(x)`: the softmax over the **last** axis of an array of any shape. It must not overflow for
# large inputs such as the article's scores of section 6.1 (the check includes `[1000, 1001, 1002]`).


# %%
def stable_softmax(x):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
softmax_cases = [
    np.array([1.0, 2.0, 3.0]),
    np.array([1000.0, 1001.0, 1002.0]),
    np.zeros((2, 4)),
    scores_43,
    np.array([[-1e4, 0.0, 1e4], [5.0, 5.0, -5.0]]),
]
check(
    stable_softmax,
    lambda x: softmax(x, axis=-1),
    inputs=softmax_cases,
    hint=(
        "Subtracting the same number from every score of a row does not change its softmax; choose the "
        "number that keeps every exponent at or below 0.",
        "e = np.exp(x - x.max(axis=-1, keepdims=True)), then divide e by e.sum(axis=-1, keepdims=True)",
    ),
)


# %% tags=["solution"]
def stable_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


assert check(stable_softmax, lambda x: softmax(x, axis=-1), inputs=softmax_cases)

# %% [markdown]
# ### Exercise 2 — attention from scratch
#
# Write `attention(q, k, v)` returning `(output, weights)` for `q: [T_q, d_k]`, `k: [T_k, d_k]`, `v: [T_k, d_v]`,
# i.e. $\mathrm{softmax}(qk^\top/\sqrt{d_k})$ and weights $\times v$. (You may use your `stable_softmax` or
# `lessons_lib.softmax`.) The check includes the worked example of section 2 and a case where $T_q \ne T_k$.


# %%
def attention(q, k, v):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
rng_ex = np.random.default_rng(42)
attention_cases = [
    hand_qkv,  # section 2's example
    (Q_t[:, :2], K_t[:, :2], V_t[:, :2]),  # the thread, head 0
    (rng_ex.normal(size=(2, 5)), rng_ex.normal(size=(4, 5)), rng_ex.normal(size=(4, 3))),
]
check(
    attention,
    lambda q, k, v: scaled_dot_product_attention(q, k, v),
    inputs=attention_cases,
    hint=(
        "Score every query against every key, divide by the square root of the key width, turn each row "
        "into weights with a softmax over the keys, and average the values with those weights.",
        "scores = q @ k.T / np.sqrt(q.shape[-1]); weights = softmax(scores, axis=-1); "
        "return weights @ v, weights",
    ),
)


# %% tags=["solution"]
def attention(q, k, v):
    scores = q @ k.T / np.sqrt(q.shape[-1])
    weights = softmax(scores, axis=-1)
    return weights @ v, weights


assert check(
    attention, lambda q, k, v: scaled_dot_product_attention(q, k, v), inputs=attention_cases
)

# %% [markdown]
# ### Exercise 3 — apply a causal mask
#
# Write `causal_weights(scores)`: given a square matrix of (already scaled) scores, return the attention weights
# with the causal mask applied — weights above the diagonal must be **exactly** 0 and every row must sum to 1.
# The check includes large scores, blocked ones and allowed ones (a row whose allowed scores are 1000 and 1001), so
# the softmax must not overflow.


# %%
def causal_weights(scores):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
def reference_causal_weights(scores):
    t = scores.shape[-1]
    return softmax(np.where(causal_mask(t), scores, -np.inf), axis=-1)


causal_cases = [
    S_scaled,
    S0_scaled,
    np.array([[0.0, 1e4], [3.0, -2.0]]),  # a large blocked score
    np.array([[1000.0, 1e4], [1000.0, 1001.0]]),  # large allowed scores: exp(1000) overflows
]
check(
    causal_weights,
    reference_causal_weights,
    inputs=causal_cases,
    atol=0.0,
    rtol=1e-9,
    hint=(
        "A blocked score must become minus infinity before the softmax, so that its weight is exactly 0; "
        "and the softmax must be the stable one of exercise 1, because allowed scores can be large too.",
        "allowed = np.tril(np.ones((T, T), dtype=bool)); masked = np.where(allowed, scores, -np.inf); "
        "subtract masked.max(axis=-1, keepdims=True) before np.exp",
    ),
)


# %% tags=["solution"]
def causal_weights(scores):
    t = scores.shape[-1]
    allowed = np.tril(np.ones((t, t), dtype=bool))
    masked = np.where(allowed, scores, -np.inf)
    e = np.exp(masked - masked.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


assert check(causal_weights, reference_causal_weights, inputs=causal_cases, atol=0.0, rtol=1e-9)
assert np.all(causal_weights(S0_scaled)[~causal_mask(6)] == 0.0)
assert np.allclose(causal_weights(causal_cases[3])[1], [0.269, 0.731], atol=5e-4)


# the check refuses a softmax that skips the row maximum: exp(1000) = inf, and inf / inf = nan
def naive_causal_weights(scores):
    t = scores.shape[-1]
    e = np.exp(np.where(np.tril(np.ones((t, t), dtype=bool)), scores, -np.inf))
    return e / e.sum(axis=-1, keepdims=True)


with np.errstate(over="ignore", invalid="ignore"):
    refused = check(
        naive_causal_weights, reference_causal_weights, inputs=causal_cases, atol=0.0, rtol=1e-9
    )
assert refused is False

# %% [markdown]
# ## Summary
#
# * Self-attention: $Q = XW_Q$, $K = XW_K$, $V = XW_V$; scores $QK^\top$ (**with** the transpose), divided by
#   $\sqrt{d_k}$; a softmax over each row (over the keys); output = weights $\times V$. Each output row is a convex
#   combination of the value rows.
# * We computed a 3-token, $d_k = 3$ example by hand and got the same numbers from `lessons_lib`, TensorFlow ops and
#   `keras.layers.MultiHeadAttention` (max abs diff $\le 10^{-5}$).
# * With unit-variance components, $\operatorname{Var}(q\cdot k) = d_k$. Dividing by $\sqrt{d_k}$ keeps the scores
#   at variance 1; without it the softmax saturates towards one-hot and its Jacobian $\mathrm{diag}(p) - pp^\top$
#   (the gradient) vanishes.
# * The causal mask (`True` = may attend) sets blocked scores to $-\infty$, so blocked weights are exactly 0.
# * `lessons_lib.viz.SoftmaxExplorer` shows a row of scores under any temperature and $\sqrt{d_k}$: saturation means
#   entropy near 0, a top weight near 1 and a vanishing Jacobian — the article's example is saturated beyond rescue.
# * The thread: head 0 of "to be or not to be" gives `thread.forward()["weights"][0]` and `["head_outputs"][0]`.
# * Errata: the article's 4.3 example cannot multiply its shapes, its true weights are one-hot rows (scores in the
#   thousands), and its output is not weights $\times V$ (row 1 would be $[18.3, 34.6, 53.7]$); its 5.2 code
#   raises a shape error and would then fail at `axis=1`. The corrected code computes real multi-head attention and
#   matches Keras.
#
# **Next:** lesson 05 runs both heads of the thread side by side, concatenates them and applies $W_O$ —
# multi-head attention.
