# %% [markdown]
# # 03 · Positional encoding: telling the model *where* each token is
#
# After lesson 02 every token is a vector — but the two *"to"*s of *"to be or not to be"* got the **same** vector, and
# nothing in the embeddings says which word came first. Will attention (lesson 04) sort that out by itself? It will
# not: attention treats its input as a *set*. This lesson proves it, then adds the missing information.
#
# **In this lesson you will**
#
# 1. show, by derivation and numerically, that attention without positions is **permutation-equivariant**:
#    shuffle the tokens and the outputs are shuffled the same way, nothing else changes;
# 2. build the **sinusoidal** encoding of the original Transformer,
#    $PE_{pos,2i} = \sin(pos\,\omega_i)$, $PE_{pos,2i+1} = \cos(pos\,\omega_i)$, and look at it;
# 3. derive that $PE_{pos+k}$ is a **rotation** of $PE_{pos}$ that depends on $k$ only, and check it;
# 4. meet **learned** positions (GPT-2) and their hard limit, `max_len`;
# 5. derive **RoPE**, the rotary encoding of most modern LLMs, and check that the attention score
#    $\langle \mathrm{RoPE}(q, m), \mathrm{RoPE}(k, n)\rangle$ depends only on $m - n$;
# 6. advance the thread one step: `x = embeddings + positions`.

# %% tags=["nbval-ignore-output"]
import lessons_lib

info = lessons_lib.setup(seed=0)

# %%
import re

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from lessons_lib import (
    MultiHeadAttention,
    TokenAndPositionEmbedding,
    apply_rope,
    causal_mask,
    check,
    multi_head_attention,
    scaled_dot_product_attention,
    show,
    show_source,
    sinusoidal_positional_encoding,
    sinusoidal_shift_matrix,
    thread,
)

# %% [markdown]
# ## 1 · Attention cannot see order
#
# Self-attention (lesson 04 derives it) maps the $T \times d_\text{model}$ matrix $X$ of token vectors to
#
# $$
# \mathrm{Attn}(X) = \mathrm{softmax}\!\Big(\frac{Q K^\top}{\sqrt{d_k}}\Big) V, \qquad Q = XW_Q,\; K = XW_K,\; V = XW_V,
# $$
#
# with the softmax over each row. Shuffle the tokens: a permutation matrix $P$ (a reordering of the rows of the
# identity) turns $X$ into $PX$. Then $Q' = PXW_Q = PQ$, likewise $K' = PK$, $V' = PV$, and
#
# $$
# \frac{Q'K'^\top}{\sqrt{d_k}} = P\,\frac{QK^\top}{\sqrt{d_k}}\,P^\top .
# $$
#
# Multiplying by $P$ on the left reorders the rows of the score matrix and by $P^\top$ on the right reorders the
# columns; a row-wise softmax does not care about either (it reorders its outputs the same way). So the weights become
# $PAP^\top$, and since $P^\top P = I$,
#
# $$
# \mathrm{Attn}(PX) = PAP^\top\,PV = P\,AV = P\,\mathrm{Attn}(X).
# $$
#
# Shuffling the input only shuffles the output: attention is **permutation-equivariant**. To it, *"to be or not to
# be"* and *"not to be or to be"* are the same bag of words. Let us check it on the thread's embeddings (lesson 02's
# last step), with the thread's $W_Q, W_K, W_V$, one head, no mask:

# %%
state = thread.forward()
w = thread.weights()
emb = state["embeddings"]  # [T, d_model], no positions yet
words = thread.SENTENCE.split()
perm = np.array([3, 0, 1, 2, 4, 5])  # "not to be or to be"
print("original:", " ".join(words))
print("shuffled:", " ".join(words[i] for i in perm))


def self_attention(x):
    out, _ = scaled_dot_product_attention(x @ w["W_Q"], x @ w["W_K"], x @ w["W_V"])
    return out


out = self_attention(emb)
out_shuffled = self_attention(emb[perm])
show("Attn(X)", out)
show("Attn(PX)", out_shuffled)
assert np.allclose(out_shuffled, out[perm])  # Attn(PX) = P Attn(X)
assert np.allclose(out[0], out[4])  # both "to"s get the same output
print("Attn(PX) == P Attn(X); and the two 'to's (rows 0 and 4) have identical outputs")

# %% [markdown]
# The same holds for full multi-head attention layers, whatever their weights: `lessons_lib.MultiHeadAttention` and
# Keras' own `keras.layers.MultiHeadAttention`, freshly initialised (projections, biases and $W_O$ are all applied to
# each token separately, so they cannot break the symmetry either).

# %%
x32 = emb[None].astype("float32")  # [batch=1, T, d_model]
ours = MultiHeadAttention(d_model=thread.D_MODEL, num_heads=thread.NUM_HEADS)
theirs = keras.layers.MultiHeadAttention(num_heads=thread.NUM_HEADS, key_dim=thread.D_K)
for name, attend in [
    ("lessons_lib.MultiHeadAttention", lambda x: ours(x)),
    ("keras.layers.MultiHeadAttention", lambda x: theirs(x, x)),
]:
    y = keras.ops.convert_to_numpy(attend(x32))[0]
    y_shuffled = keras.ops.convert_to_numpy(attend(x32[:, perm]))[0]
    diff = np.max(np.abs(y_shuffled - y[perm]))
    assert diff <= 1e-5, (name, diff)
    print(f"{name:32s} max |layer(PX) - P layer(X)| <= 1e-5: {diff <= 1e-5}")

# %% [markdown]
# *An aside on the causal mask.* A GPT decoder adds a causal mask (token $t$ sees tokens $0..t$ only), which does
# break the full symmetry. But **one** attention layer still does not give order back: its output at position $t$
# depends on the **set** of tokens $0..t$, not on their order. Check it with the thread's causal attention layer
# (its two heads and $W_O$, as lesson 05 will build it; here through the NumPy reference `multi_head_attention`):
# *"to be or"* and *"be to or"* give the same output at *"or"*.
#
# That holds for one layer only. Stack a second causal layer and the order shows. After the first layer,
# position 0 has seen one token and position 1 two, so swapping tokens 0 and 1 changes *what* those two positions
# hold, not only *where*: in *"to be or"* position 0 holds "to" alone, in *"be to or"* it holds "be" alone. The
# second layer's output at position 2 reads those different vectors and changes. (This is how a causal model
# without any positional encoding can still infer position information; Haviv et al. 2022 show that it does, e.g.
# by counting how many tokens it sees.)


# %%
def causal_attention(x):
    """The thread's causal multi-head self-attention layer (2 heads, W_O), in NumPy."""
    out, _ = multi_head_attention(
        x, w["W_Q"], w["W_K"], w["W_V"], w["W_O"], thread.NUM_HEADS, mask=causal_mask(len(x))
    )
    return out


x_a, x_b = emb[[0, 1, 2]], emb[[1, 0, 2]]  # "to be or" vs "be to or"
one_a, one_b = causal_attention(x_a), causal_attention(x_b)
two_a, two_b = causal_attention(one_a), causal_attention(one_b)
change_one = np.linalg.norm(one_a[2] - one_b[2])
change_two = np.linalg.norm(two_a[2] - two_b[2])
print("one layer,  output at 'or':", np.round(one_a[2], 3), "vs", np.round(one_b[2], 3))
print("two layers, output at 'or':", np.round(two_a[2], 3), "vs", np.round(two_b[2], 3))
print(
    "|change| at 'or' after swapping 'to' and 'be':",
    f"one layer {change_one:.3f}, two layers {change_two:.2f}",
)
assert np.allclose(one_a[2], one_b[2])  # one layer: the set of tokens 0..2 is all that counts
# ... but positions 0, 1 now hold different vectors
assert not np.allclose(one_a[:2], one_b[[1, 0]])
assert round(change_two, 2) == 1.15  # two layers: the order shows

# %% [markdown]
# ## 2 · The sinusoidal encoding
#
# Vaswani et al. (2017, sec. 3.5) **add** to each token vector a fixed vector that depends only on its position:
#
# $$
# PE_{pos,\,2i} = \sin(pos\,\omega_i), \qquad PE_{pos,\,2i+1} = \cos(pos\,\omega_i), \qquad
# \omega_i = \frac{1}{10000^{2i/d_\text{model}}}, \quad i = 0, \dots, \tfrac{d_\text{model}}{2} - 1 .
# $$
#
# Columns come in (sin, cos) pairs, **interleaved**: even columns sine, odd columns cosine, pair $i$ turning at
# angular frequency $\omega_i$, with the wavelength $2\pi/\omega_i = 2\pi \cdot 10000^{2i/d_\text{model}}$ positions.
# The first pair turns fast ($\omega_0 = 1$ radian per position, a wavelength of $2\pi \approx 6.3$ positions); each
# next pair turns slower. The last pair, $i = d_\text{model}/2 - 1$, has the longest wavelength,
# $2\pi \cdot 10000^{(d_\text{model}-2)/d_\text{model}}$: always **below** $2\pi \cdot 10000 \approx 62\,832$, and the
# further below the smaller $d_\text{model}$ is (the cell below computes it: about 47 000 positions for the
# $d_\text{model} = 64$ of our plots, 628 for the thread).
# Like the hands of a clock — seconds, minutes, hours — the fast pairs tell neighbouring positions apart and the slow
# ones tell where we are on a large scale. Every value lies in $[-1, 1]$, and since $\sin^2 + \cos^2 = 1$ every position
# vector has the same length $\sqrt{d_\text{model}/2}$.
#
# **The thread, by hand.** $d_\text{model} = 4$ gives two pairs: $\omega_0 = 10000^{0} = 1$ and
# $\omega_1 = 10000^{-2/4} = 1/100$. So
# $PE_{pos} = \big(\sin pos,\; \cos pos,\; \sin \tfrac{pos}{100},\; \cos \tfrac{pos}{100}\big)$, e.g.
# $PE_1 = (\sin 1, \cos 1, \sin 0.01, \cos 0.01) = (0.841, 0.540, 0.010, 1.000)$.

# %%
T, d = len(state["ids"]), thread.D_MODEL
omega = 10000.0 ** (-np.arange(0, d, 2) / d)
print("omega:", omega)
pe_hand = np.array(
    [
        [np.sin(p * omega[0]), np.cos(p * omega[0]), np.sin(p * omega[1]), np.cos(p * omega[1])]
        for p in range(T)
    ]
)
show("PE for positions 0..5", pe_hand)

assert np.allclose(pe_hand, sinusoidal_positional_encoding(T, d))
assert np.allclose(pe_hand, state["positions"])
assert np.round(pe_hand[1], 3).tolist() == [0.841, 0.54, 0.01, 1.0]
print("== sinusoidal_positional_encoding(6, 4) == thread.forward()['positions']")

# the longest wavelength, that of the last pair, 2π · 10000^((d − 2)/d), against 2π · 10000
longest = {dm: 2 * np.pi / (10000.0 ** (-(dm - 2) / dm)) for dm in (4, 64, 512)}
for dm, wavelength in longest.items():
    print(
        f"d_model = {dm:3d}: longest wavelength {wavelength:9,.1f} positions",
        f"(2π · 10000 = {2 * np.pi * 1e4:,.1f})",
    )
assert all(wavelength < 2 * np.pi * 1e4 for wavelength in longest.values())
assert round(longest[4], 1) == 628.3 and round(longest[64], -3) == 47_000
assert np.isclose(longest[4], 2 * np.pi / omega[-1])

# %% [markdown]
# ### The code
#
# `sinusoidal_positional_encoding` (docstring left out) is the equation above in a few lines: `frequencies` gives
# $\omega_i = 10000^{-2i/d_\text{model}}$, `angles[pos, i]` is $pos\,\omega_i$ (a broadcast outer product), and the
# sines and cosines fill the even and odd columns.

# %%
show_source(sinusoidal_positional_encoding, docstring=False)

# %% [markdown]
# An independent check in TensorFlow (float32), written differently: compute sine and cosine blocks, then interleave
# them by stacking on a new last axis and reshaping.


# %%
def sinusoidal_tf(length, d_model):
    pos = tf.range(length, dtype=tf.float32)[:, None]
    om = tf.pow(10000.0, -tf.range(0, d_model, 2, dtype=tf.float32) / d_model)[None, :]
    angles = pos * om  # [length, d_model/2]
    return tf.reshape(tf.stack([tf.sin(angles), tf.cos(angles)], axis=-1), (length, d_model))


for length, d_model in [(6, 4), (64, 64), (128, 512)]:
    diff = np.max(
        np.abs(
            sinusoidal_tf(length, d_model).numpy() - sinusoidal_positional_encoding(length, d_model)
        )
    )
    assert diff <= 1e-5, diff
    print(f"PE({length}, {d_model}): TensorFlow vs NumPy max |diff| <= 1e-5: {diff <= 1e-5}")

# %% [markdown]
# ## 3 · A shift by $k$ is a rotation
#
# Why sines and cosines? The paper's reason: *"for any fixed offset $k$, $PE_{pos+k}$ can be represented as a linear
# function of $PE_{pos}$"*, which should make it easy to attend by **relative** position. The angle-addition formulas
# show it. Write $a = pos\,\omega_i$ and $b = k\,\omega_i$:
#
# $$
# \begin{aligned}
# \sin(a + b) &= \sin a \cos b + \cos a \sin b,\\
# \cos(a + b) &= \cos a \cos b - \sin a \sin b,
# \end{aligned}
# \qquad\Longrightarrow\qquad
# \begin{pmatrix} PE_{pos+k,\,2i} \\ PE_{pos+k,\,2i+1} \end{pmatrix}
# = \begin{pmatrix} \cos k\omega_i & \sin k\omega_i \\ -\sin k\omega_i & \cos k\omega_i \end{pmatrix}
#   \begin{pmatrix} PE_{pos,\,2i} \\ PE_{pos,\,2i+1} \end{pmatrix}.
# $$
#
# Each pair is **rotated** by the angle $k\omega_i$; stacking the $2\times 2$ blocks on the diagonal gives a matrix
# $R_k$ with $PE_{pos+k} = R_k\,PE_{pos}$ (column vectors) for **every** $pos$: it depends on the offset only.
# `sinusoidal_shift_matrix(k, d_model)` builds $R_k$. With rows as positions the statement reads
# `PE[k:] == PE[:-k] @ R_k.T`:

# %%
pe64 = sinusoidal_positional_encoding(64, 64)
for k in [1, 5, 17, 40]:
    R = sinusoidal_shift_matrix(k, 64)
    assert np.allclose(pe64[k:], pe64[:-k] @ R.T)  # every position moved by k, with one matrix
    assert np.allclose(R @ R.T, np.eye(64))  # a rotation: orthogonal, keeps lengths
    print(f"k = {k:2d}: PE[pos + k] == R_k PE[pos] for all {64 - k} positions; R_k is orthogonal")

print()
show("the thread's R_1 (d_model = 4)", sinusoidal_shift_matrix(1, 4))
assert np.allclose(sinusoidal_shift_matrix(1, 4) @ state["positions"][2], state["positions"][3])

# %% [markdown]
# A consequence we can plot: the dot product of two position vectors depends only on their distance. Using the
# rotation (or directly $\sin a \sin b + \cos a \cos b = \cos(a - b)$),
#
# $$
# PE_{pos} \cdot PE_{pos+k} = \sum_{i=0}^{d_\text{model}/2 - 1} \cos(k\,\omega_i),
# $$
#
# the same for every $pos$, largest ($d_\text{model}/2$) at $k = 0$, symmetric in $k$ (it cannot tell *before* from
# *after*), and falling off, with ripples, as the distance grows (it stays well above zero here, its smallest value is
# printed below: the slow pairs hardly turn in 32 positions, so their cosines stay close to 1).
#
# Left: the encoding itself, 64 positions × 64 dimensions — fast stripes on the left (small $i$), slow on the right.
# Right: $PE_{32} \cdot PE_{32+k}$ against the offset $k$.

# %%
offsets = np.arange(-32, 32)
dots = pe64[32] @ pe64[32 + offsets].T
assert np.allclose(
    dots, np.cos(np.outer(offsets, 10000.0 ** (-np.arange(0, 64, 2) / 64))).sum(axis=1)
)
assert np.allclose(pe64[10] @ pe64[15], pe64[40] @ pe64[45])  # same distance, same dot product
assert dots.argmax() == 32 and np.isclose(dots.max(), 32.0)  # offset 0, value d_model / 2
assert np.allclose(dots[1:], dots[1:][::-1])  # symmetric: k and -k give the same
print(f"PE[32] · PE[32 + k] for |k| <= 32: from {dots.min():.2f} to {dots.max():.2f}")
assert dots.min() > 10  # well above zero

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
im = ax1.imshow(pe64, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
ax1.set_xlabel("dimension (even: sin, odd: cos)")
ax1.set_ylabel("position")
ax1.set_title("sinusoidal PE, 64 positions x 64 dims")
fig.colorbar(im, ax=ax1)
ax2.plot(offsets, dots, marker=".")
ax2.axhline(0, color="grey", lw=0.5)
ax2.set_xlabel("offset k")
ax2.set_ylabel("PE[32] · PE[32 + k]")
ax2.set_title("dot product depends only on the distance (d_model = 64)")
plt.show()

# %% [markdown]
# ### Explore it yourself
#
# `lessons_lib.viz.PositionalExplorer` draws the same two pictures live: pick which dimensions to draw (even =
# sine, odd = cosine; low dimensions turn fast, high ones slowly), a reference position $p$ and a second position
# $q$, and watch $PE_p \cdot PE_q$ move along the dot-product-vs-distance curve. It runs in the browser without
# calling back into Python. (Exported copies of this notebook show a still picture and a text summary instead.)

# %% tags=["nbval-ignore-output"]
from lessons_lib import PositionalExplorer

explorer = PositionalExplorer(
    max_len=64, d_model=64, dims=(0, 1, 10, 40), reference=32, position=40
)
explorer

# %% [markdown]
# The explorer computes its curve with the same `sinusoidal_positional_encoding`, so it must agree with the numbers
# above — and each dimension pair $(2i, 2i+1)$ has wavelength $2\pi / \omega_i = 2\pi \cdot 10000^{2i/d}$:

# %%
assert np.allclose(explorer.dot_products(32), pe64[32] @ pe64.T)
print(
    "wavelengths of dims 0, 10, 40, 63:",
    [round(explorer.wavelength(d), 1) for d in (0, 10, 40, 63)],
)
assert np.isclose(explorer.wavelength(0), 2 * np.pi)
# the last pair: the longest, below 2π · 10000
assert np.isclose(explorer.wavelength(63), longest[64])

# %% [markdown]
# ## 4 · Learned positions, and their limit
#
# GPT-2 (like BERT) does not use a formula: it **learns** a second table $P \in \mathbb{R}^{T_\text{max} \times
# d_\text{model}}$, one row per position, trained with the rest of the model, and adds row $t$ to token $t$:
# $x_t = E_{\text{id}_t} + P_t$. It is a lookup exactly like the token embedding — indexed by position instead of id.
# `TokenAndPositionEmbedding(positional="learned")` has both tables; here with the thread's sizes and random
# weights, checked against NumPy:

# %%
learned = TokenAndPositionEmbedding(
    vocab_size=len(thread.VOCAB), max_len=thread.MAX_LEN, d_model=d, positional="learned"
)
learned.build((1, None))
E_tab = keras.ops.convert_to_numpy(learned.token_embedding.embeddings)
P_tab = keras.ops.convert_to_numpy(learned.position_embedding.embeddings)
print(
    "token table:",
    E_tab.shape,
    " position table:",
    P_tab.shape,
    " parameters:",
    learned.count_params(),
)
assert learned.count_params() == len(thread.VOCAB) * d + thread.MAX_LEN * d

ids = state["ids"]
got = keras.ops.convert_to_numpy(learned(ids[None]))[0]
assert np.max(np.abs(got - (E_tab[ids] + P_tab[: len(ids)]))) <= 1e-5
print("learned layer == E[ids] + P[0:T]   (max |diff| <= 1e-5)")

# %% [markdown]
# The price is a hard **limit**: the table has `max_len` rows and there is no row for position `max_len`. GPT-2 has
# 1024 rows (786 432 parameters at $d_\text{model} = 768$), so it cannot read a 1025-token text at all, and a row that
# training never reached stays untrained. The layer says so instead of failing deep inside TensorFlow:

# %%
nine_tokens = np.array([[0, 1, 2, 3, 0, 1, 2, 3, 0]])  # one more than max_len = 8
try:
    learned(nine_tokens)
except ValueError as err:
    # Keras wraps errors raised inside a layer with extra context; keep the layer's own message
    message = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # drop terminal colour codes
    print("ValueError:", next(line for line in message.splitlines() if "max_len" in line))

print("GPT-2's position table:", f"{1024 * 768:,}", "parameters")
print(
    "the sinusoidal formula has no such table, e.g. position 100 000:",
    np.round(sinusoidal_positional_encoding(100_001, d)[-1], 3),
)

# %% [markdown]
# The formula can be evaluated at any position (the layer precomputes it only up to its own `max_len`), but a model
# trained on short texts does not automatically *understand* much longer ones: Press et al. (2022, ALiBi) measured that
# sinusoidal models degrade quickly beyond their training length. Which brings us to the modern answer.
#
# ## 5 · RoPE: rotate instead of add
#
# Attention only ever uses token positions through the scores $q_m \cdot k_n$ (query at position $m$, key at $n$).
# With an *added* encoding, $(x_m + PE_m)\,W_Q \cdot (x_n + PE_n)\,W_K$ expands into four terms, two of which mix a
# token with the **absolute** position of the other. Rotary position embedding (RoPE; Su et al. 2021, "RoFormer")
# instead makes the score depend on the **relative** position $m - n$ by construction, and is used by GPT-NeoX,
# PaLM, LLaMA and most open LLMs since.
#
# **The construction.** Split $q \in \mathbb{R}^{d}$ into $d/2$ pairs $(q_{2i}, q_{2i+1})$ and rotate pair $i$ by the
# angle $m\,\omega_i$ (the same frequencies as the sinusoidal encoding):
#
# $$
# \mathrm{RoPE}(q, m)_{[2i,\,2i+1]} = R(m\omega_i) \begin{pmatrix} q_{2i} \\ q_{2i+1} \end{pmatrix}, \qquad
# R(\theta) = \begin{pmatrix} \cos\theta & -\sin\theta \\ \sin\theta & \cos\theta \end{pmatrix}.
# $$
#
# Do the same to the key $k$ with its own position $n$. Rotation matrices satisfy $R(\alpha)^\top = R(-\alpha)$ and
# $R(\alpha)R(\beta) = R(\alpha + \beta)$, so for each pair
#
# $$
# \big(R(m\omega_i)\,q_{[i]}\big)^\top \big(R(n\omega_i)\,k_{[i]}\big) = q_{[i]}^\top R(-m\omega_i) R(n\omega_i)\,k_{[i]}
#   = q_{[i]}^\top R\big((n - m)\,\omega_i\big)\,k_{[i]},
# $$
#
# and summing over the pairs, $\langle \mathrm{RoPE}(q, m), \mathrm{RoPE}(k, n)\rangle$ is a function of $q$, $k$ and
# $m - n$ only. In complex numbers it is one line: pair $i$ is $z = q_{2i} + \mathrm{i}\,q_{2i+1}$, the rotation is
# multiplication by $e^{\mathrm{i} m\omega_i}$, and
# $\mathrm{Re}\big[z_q e^{\mathrm{i}m\omega}\,\overline{z_k e^{\mathrm{i}n\omega}}\big]
#  = \mathrm{Re}\big[z_q \bar z_k\, e^{\mathrm{i}(m-n)\omega}\big]$.
#
# Nothing is added to $x$: RoPE is applied to the queries and keys **inside every attention layer**, after $W_Q$
# and $W_K$; the values are not rotated. `apply_rope(x, positions)` implements it with adjacent pairs, as in the
# RoFormer paper (several codebases pair dimension $i$ with $i + d/2$ instead; that is the same thing up to a fixed
# reordering of the features).
#
# **Two sign conventions.** The two rotation matrices of this lesson have opposite signs. This $R(\theta)$ is the
# standard one, which turns a pair written $(x, y)$ counter-clockwise by $\theta$. The $2 \times 2$ block of $R_k$ in
# section 3, $\begin{pmatrix} \cos k\omega_i & \sin k\omega_i \\ -\sin k\omega_i & \cos k\omega_i \end{pmatrix}$, is
# $R(-k\omega_i)$ in this notation. Both advance the angle by $k\omega_i$. The difference is the order of the pair:
# section 3 writes it $(\sin, \cos)$, i.e. $(y, x)$, and swapping the two coordinates flips the sign of a rotation.
# Written as $(\cos, \sin)$, the shift of section 3 is $R(+k\omega_i)$, the very matrix RoPE uses. Checked with one
# pair ($d_\text{model} = 2$, so $\omega_0 = 1$) and $k = 3$:


# %%
def rotation(theta):
    """R(θ), the standard rotation used by RoPE: counter-clockwise on a pair (x, y)."""
    return np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])


k_shift, p0 = 3, 5
block = sinusoidal_shift_matrix(k_shift, 2)  # section 3's R_k, acting on (sin, cos)
swap = np.array([[0.0, 1.0], [1.0, 0.0]])  # (sin, cos) <-> (cos, sin)
show("section 3's R_3 (pair (sin, cos))", block)
show("R(3) of RoPE (pair (x, y))", rotation(k_shift))
assert np.allclose(block, rotation(-k_shift))  # opposite signs ...
assert np.allclose(swap @ block @ swap, rotation(k_shift))  # ... because of the order of the pair


def sin_cos(p):
    return np.array([np.sin(p), np.cos(p)])


assert np.allclose(block @ sin_cos(p0), sin_cos(p0 + k_shift))  # both move position 5 to 8
assert np.allclose(rotation(k_shift) @ sin_cos(p0)[::-1], sin_cos(p0 + k_shift)[::-1])
print("R_3 (section 3) = R(-3) in RoPE's convention; with the pair reordered it is R(+3)")

# %% [markdown]
# First, `apply_rope` against an independent implementation with NumPy complex numbers:


# %%
def rope_complex(x, positions):
    dim = x.shape[-1]
    om = 10000.0 ** (-np.arange(0, dim, 2) / dim)
    z = x[..., 0::2] + 1j * x[..., 1::2]  # pairs as complex numbers
    # rotate pair i by pos * omega_i
    z = z * np.exp(1j * np.asarray(positions)[:, None] * om[None, :])
    out = np.empty_like(x)
    out[..., 0::2], out[..., 1::2] = z.real, z.imag
    return out


rng = np.random.default_rng(0)
x_test = rng.normal(size=(10, 8))
positions = np.arange(10) * 3 + 2
assert np.allclose(apply_rope(x_test, positions), rope_complex(x_test, positions))
assert np.allclose(
    np.linalg.norm(apply_rope(x_test, positions), axis=1), np.linalg.norm(x_test, axis=1)
)
print("apply_rope == complex-number rotation; lengths are unchanged")

# %% [markdown]
# Now the property itself. Take one query vector $q$ and one key vector $k$ and put them at every pair of positions
# $m, n \in \{0, \dots, 15\}$. With RoPE the score matrix $S_{mn} = \langle \mathrm{RoPE}(q, m), \mathrm{RoPE}(k,
# n)\rangle$ must be constant along each diagonal ($m - n$ fixed). With the additive sinusoidal encoding instead
# ($S_{mn} = (q + PE_m)\cdot(k + PE_n)$, no projections, to keep it simple) it is not.

# %%
q_vec, k_vec = rng.normal(size=8), rng.normal(size=8)
n_pos = 16
pos = np.arange(n_pos)
q_rot = apply_rope(np.tile(q_vec, (n_pos, 1)), pos)  # q placed at positions 0..15
k_rot = apply_rope(np.tile(k_vec, (n_pos, 1)), pos)  # k placed at positions 0..15
S_rope = q_rot @ k_rot.T  # S[m, n]
pe8 = sinusoidal_positional_encoding(n_pos, 8)
S_add = (q_vec + pe8) @ (k_vec + pe8).T

for name, S in [("RoPE", S_rope), ("added sinusoidal", S_add)]:
    spread = max(np.ptp(np.diagonal(S, offset=o)) for o in range(-n_pos + 2, n_pos - 1))
    print(
        f"{name:17s} S[3,1] = {S[3, 1]:7.3f}, S[10,8] = {S[10, 8]:7.3f}; "
        f"largest spread along a diagonal: {spread:.3f}"
    )

assert all(
    np.allclose(np.diagonal(S_rope, offset=o), np.diagonal(S_rope, offset=o)[0])
    for o in range(-n_pos + 1, n_pos)
)
assert np.isclose(S_rope[5, 5], q_vec @ k_vec)  # same position: the plain dot product
assert not np.isclose(S_add[3, 1], S_add[10, 8])

fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
for ax, S, title in [
    (axes[0], S_rope, "RoPE: constant along diagonals"),
    (axes[1], S_add, "added PE: depends on absolute m, n"),
]:
    im = ax.imshow(S, cmap="RdBu_r", vmin=-np.abs(S).max(), vmax=np.abs(S).max())
    ax.set_xlabel("key position n")
    ax.set_ylabel("query position m")
    ax.set_title(title)
    fig.colorbar(im, ax=ax)
plt.show()

# %% [markdown]
# ## 6 · The thread: `x = embeddings + positions`
#
# The thread follows the original paper: sinusoidal encoding, **added** to the embeddings, no $\sqrt{d_\text{model}}$
# scaling (lesson 02 explains why it does not need one). Here is the step by hand, to two decimals so you can check the
# additions yourself:

# %%
embeddings = state["embeddings"]  # from lesson 02
positions = sinusoidal_positional_encoding(len(state["ids"]), thread.D_MODEL)
x = embeddings + positions

show("embeddings (lesson 02)", embeddings, decimals=2)
show("+ positions", positions, decimals=2)
show("= x", x, decimals=2)

assert np.allclose(x, state["x"])
assert not np.allclose(x[0], x[4])  # the two "to"s are different inputs now
print("x == thread.forward()['x']; rows 0 and 4 ('to', 'to') now differ")

# %% [markdown]
# The Keras layers agree: `TokenAndPositionEmbedding(positional="sinusoidal")` with the thread's table copied in, and
# the embedding layer of the thread's whole Keras model, `thread.build_gpt()` (lesson 08 runs the rest of it).

# %%
sinusoidal_layer = TokenAndPositionEmbedding(
    len(thread.VOCAB), thread.MAX_LEN, thread.D_MODEL, positional="sinusoidal"
)
sinusoidal_layer.build((1, None))
sinusoidal_layer.embeddings.assign(w["E"])
model = thread.build_gpt()
for name, layer in [
    ("TokenAndPositionEmbedding", sinusoidal_layer),
    ("thread.build_gpt().embed", model.embed),
]:
    diff = np.max(np.abs(keras.ops.convert_to_numpy(layer(state["ids"][None]))[0] - x))
    assert diff <= 1e-5, (name, diff)
    print(f"{name:26s} max |diff| vs NumPy x <= 1e-5: {diff <= 1e-5}")

# %% [markdown]
# And the symmetry of section 1 is gone: attention on the shuffled sentence, with positions added *after* shuffling
# (position 0 is whatever word now comes first), is no longer the shuffled attention output.

# %%
x_shuffled = embeddings[perm] + positions
print(
    "max |Attn(shuffled + PE) - P Attn(x)| =",
    np.round(np.max(np.abs(self_attention(x_shuffled) - self_attention(x)[perm])), 3),
)
assert not np.allclose(self_attention(x_shuffled), self_attention(x)[perm])

# %% [markdown]
# ## 7 · Exercises
#
# ### Exercise 1 — the sinusoidal encoding
#
# Write `sinusoidal_pe(length, d_model)` returning the `[length, d_model]` matrix with
# `PE[pos, 2i] = sin(pos·ω_i)`, `PE[pos, 2i+1] = cos(pos·ω_i)`, `ω_i = 10000^(-2i/d_model)`. Try to avoid Python
# loops: build the `[length, d_model/2]` matrix of angles with broadcasting, then fill the even and odd columns.


# %%
def sinusoidal_pe(length, d_model):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
check(
    sinusoidal_pe,
    sinusoidal_positional_encoding,
    inputs=[(6, 4), (64, 64), (10, 8), (1, 2)],
    hint=(
        "every entry is sin or cos of pos · ω_i: a [length, d_model/2] table of angles, one row per position "
        "and one column per pair, gives all of them at once",
        "omega = 10000.0 ** (-np.arange(0, d_model, 2) / d_model); angles = np.arange(length)[:, None] * "
        "omega[None, :]; pe[:, 0::2] = np.sin(angles); pe[:, 1::2] = np.cos(angles)",
    ),
)


# %% tags=["solution"]
def sinusoidal_pe(length, d_model):
    omega = 10000.0 ** (-np.arange(0, d_model, 2) / d_model)  # [d_model/2]
    angles = np.arange(length)[:, None] * omega[None, :]  # [length, d_model/2]
    pe = np.zeros((length, d_model))
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles)
    return pe


assert check(
    sinusoidal_pe, sinusoidal_positional_encoding, inputs=[(6, 4), (64, 64), (10, 8), (1, 2)]
)

# %% [markdown]
# ### Exercise 2 — the dot product as a function of distance
#
# Section 3 derived $PE_{pos}\cdot PE_{pos+k} = \sum_i \cos(k\,\omega_i)$. Write `pe_dot(k, d_model)` that computes
# this closed form **without** building any positional encoding. The check compares it with the dot product of two
# rows of the real encoding, 7 and $7 + k$ apart, and holds you to the rule: its last case has $k = 100\,000$, where
# the encoding table up to position $7 + k$ takes about 50 MiB but the closed form needs a few hundred bytes, and it
# refuses an answer that allocated more than 1 MiB.


# %%
def pe_dot(k, d_model):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
def pe_dot_reference(k, d_model):
    pe = sinusoidal_positional_encoding(7 + k + 1, d_model)
    return float(pe[7] @ pe[7 + k])


dot_cases = [(0, 4), (1, 4), (5, 64), (100, 512), (100_000, 64)]
table_MiB = (7 + 100_000 + 1) * 64 * 8 / 2**20  # the float64 encoding up to position 7 + k
print(f"last case: the encoding table up to position 7 + k would take {table_MiB:.0f} MiB")
assert round(table_MiB) == 49
check(
    pe_dot,
    pe_dot_reference,
    inputs=dot_cases,
    max_memory=2**20,  # 1 MiB; the table of the last case would take 49 MiB
    hint=(
        "each (sin, cos) pair contributes sin(a)·sin(b) + cos(a)·cos(b) = cos(a − b) = cos(k · ω_i): the "
        "positions drop out, only the offset k and the frequencies remain",
        "omega = 10000.0 ** (-np.arange(0, d_model, 2) / d_model); return float(np.sum(np.cos(k * omega)))",
    ),
)


# %% tags=["solution"]
def pe_dot(k, d_model):
    omega = 10000.0 ** (-np.arange(0, d_model, 2) / d_model)
    return float(np.sum(np.cos(k * omega)))


assert check(pe_dot, pe_dot_reference, inputs=dot_cases, max_memory=2**20)
# ... and the check refuses the dot product of two rows of the full encoding
built_table = check(
    lambda k, d_model: pe_dot_reference(k, d_model),
    pe_dot_reference,
    inputs=dot_cases,
    max_memory=2**20,
    name="PE[7] · PE[7 + k] from the table",
)
assert built_table is False

# %% [markdown]
# ### Exercise 3 — RoPE with rotation matrices
#
# Write `rope(x, positions)` for `x` of shape `[T, d]`: rotate each pair $(x_{t,2i}, x_{t,2i+1})$ by the angle
# `positions[t] * ω_i` with $R(\theta) = \begin{pmatrix}\cos\theta & -\sin\theta\\ \sin\theta & \cos\theta
# \end{pmatrix}$. The check compares with `apply_rope`, on the thread's queries (`thread.forward()["Q"]`) and on a
# random `[10, 8]` input.


# %%
def rope(x, positions):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
rope_cases = [(state["Q"], np.arange(6)), (x_test, positions), (x_test[:1], np.array([1000]))]
check(
    rope,
    apply_rope,
    inputs=rope_cases,
    hint=(
        "R(θ) (x_even, x_odd) = (cos θ · x_even − sin θ · x_odd, sin θ · x_even + cos θ · x_odd), with "
        "one angle per (position, pair): positions[t] · ω_i",
        "angles = positions[:, None] * omega[None, :]; even, odd = x[:, 0::2], x[:, 1::2]; "
        "out[:, 0::2] = even * cos - odd * sin; out[:, 1::2] = even * sin + odd * cos",
    ),
)


# %% tags=["solution"]
def rope(x, positions):
    dim = x.shape[-1]
    omega = 10000.0 ** (-np.arange(0, dim, 2) / dim)
    angles = np.asarray(positions)[:, None] * omega[None, :]  # [T, d/2]
    cos, sin = np.cos(angles), np.sin(angles)
    even, odd = x[:, 0::2], x[:, 1::2]
    out = np.empty_like(x)
    out[:, 0::2] = even * cos - odd * sin  # first row of R(theta)
    out[:, 1::2] = even * sin + odd * cos  # second row of R(theta)
    return out


assert check(rope, apply_rope, inputs=rope_cases)

# %% [markdown]
# ## Summary
#
# * Without positions, attention is **permutation-equivariant**: $\mathrm{Attn}(PX) = P\,\mathrm{Attn}(X)$ (proved
#   with $P^\top P = I$, checked on NumPy, `lessons_lib` and Keras attention). Identical tokens get identical outputs.
# * A causal mask does not give order back to **one** attention layer (its output at $t$ depends on the set of tokens
#   $0..t$), but a stack of two causal layers does see order: swapping two tokens changes the second layer's output.
# * The **sinusoidal** encoding adds $PE_{pos} = (\sin pos\,\omega_0, \cos pos\,\omega_0, \sin pos\,\omega_1, \dots)$,
#   $\omega_i = 10000^{-2i/d_\text{model}}$: fast and slow "clock hands", every vector of length
#   $\sqrt{d_\text{model}/2}$.
# * By the angle-addition formulas, $PE_{pos+k} = R_k\,PE_{pos}$ with a rotation $R_k$ that depends on $k$ only;
#   hence $PE_{pos}\cdot PE_{pos+k} = \sum_i\cos k\omega_i$ depends on the distance only.
# * **Learned** positions (GPT-2, BERT) are a second lookup table, flexible but limited to `max_len` positions.
# * **RoPE** rotates queries and keys instead of adding anything, so that
#   $\langle\mathrm{RoPE}(q,m), \mathrm{RoPE}(k,n)\rangle$ depends only on $m - n$.
# * The thread: `x = embeddings + positions` (printed above), the input of the first Transformer block.
#
# **Next:** lesson 04 turns `x` into queries, keys and values and computes self-attention for the thread's head 0.
#
# **References.** Vaswani et al. (2017), *Attention Is All You Need*, sec. 3.5. Radford et al. (2019), GPT-2.
# Su et al. (2021), *RoFormer: Enhanced Transformer with Rotary Position Embedding*. Press, Smith & Lewis (2022),
# *Train Short, Test Long: Attention with Linear Biases Enables Input Length Extrapolation* (ALiBi). Haviv et al.
# (2022), *Transformer Language Models without Positional Encodings Still Learn Positional Information*.
