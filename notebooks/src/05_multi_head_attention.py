# %% [markdown]
# # 05 · Multi-head attention
#
# Lesson 04 computed one attention over the first two columns of $Q$, $K$ and $V$. A Transformer runs several such
# attentions side by side, each on its own slice of the model width, and then mixes their results with one more
# matrix, $W_O$. That is **multi-head attention** (Vaswani et al., 2017, *Attention Is All You Need*, §3.2.2).
#
# **In this lesson you will**
#
# 1. derive multi-head attention: split into heads ($[T, d_{model}] \to [h, T, d_k]$), attend in each head,
#    concatenate, project with $W_O$;
# 2. see where the source article goes wrong (it reshapes *after* concatenating and forgets $W_O$) and why it matters;
# 3. finish the thread's attention sublayer by hand: both heads, the concatenation, $W_O$ → `attn_out`;
# 4. check numerically that the heads are independent attentions over slices of the width — one big attention with
#    a block-diagonal mask;
# 5. count the parameters ($4 d_{model}^2 + 4 d_{model}$, whatever $h$ is);
# 6. check `lessons_lib.MultiHeadAttention` against `keras.layers.MultiHeadAttention` with copied weights: no mask,
#    causal mask, padding mask, cross-attention.

# %% tags=["nbval-ignore-output"]
import lessons_lib

info = lessons_lib.setup(seed=0)

# %%
import keras
import matplotlib.pyplot as plt
import numpy as np

from lessons_lib import (
    MultiHeadAttention,
    causal_mask,
    check,
    copy_to_keras_mha,
    merge_heads,
    multi_head_attention,
    scaled_dot_product_attention,
    show,
    show_source,
    softmax,
    split_heads,
    thread,
)

# %% [markdown]
# ## 1 · Why more than one head?
#
# One attention head computes, for every query position, **one** probability distribution over the keys and returns
# one weighted average of the values. If a word needs to look at two different places for two different reasons
# (say, the previous word *and* the subject of the sentence), one softmax has to compromise between them.
#
# Multi-head attention gives the model $h$ separate softmaxes. Each head gets its own, smaller query/key/value
# space of width $d_k = d_{model}/h$, so running $h$ heads costs about as much as one head of full width
# (Vaswani et al., 2017, §3.2.2: "due to the reduced dimension of each head, the total computational cost is
# similar to that of single-head attention with full dimensionality").

# %% [markdown]
# ## 2 · Derivation
#
# Take the input $X \in \mathbb{R}^{T \times d_{model}}$ (one row per token, as in lessons 02–04) and the three
# projections of lesson 04:
#
# $$Q = X W_Q,\qquad K = X W_K,\qquad V = X W_V, \qquad W_Q, W_K, W_V \in \mathbb{R}^{d_{model} \times d_{model}}.$$
#
# **Split.** Cut the columns into $h$ blocks of $d_k = d_{model}/h$. Head $i$ (counting from 0 as the code does; the
# paper writes $\mathrm{head}_1 \dots \mathrm{head}_h$) owns columns $i d_k, \dots, (i+1) d_k - 1$:
#
# $$Q^{(i)} = Q_{[:,\; i d_k : (i+1) d_k]} = X\, W_Q^{(i)}, \qquad W_Q^{(i)} = (W_Q)_{[:,\; i d_k : (i+1) d_k]},$$
#
# and the same for $K$ and $V$. So "a separate projection per head" and "one big projection, then slice the
# columns" are the same thing. In array terms the split is a reshape followed by a transpose:
#
# $$[T, d_{model}] \xrightarrow{\text{reshape}} [T, h, d_k] \xrightarrow{\text{transpose}} [h, T, d_k].$$
#
# (A reshape alone, straight to $[h, T, d_k]$, would be wrong: it would cut the *rows* and mix tokens.)
#
# **Attend, per head**, exactly as in lesson 04, with the causal mask $M$ ($0$ where key $j \le$ query $i$,
# $-\infty$ elsewhere) and the scale $\sqrt{d_k}$ of the *head* width:
#
# $$\mathrm{head}_i = \mathrm{softmax}\!\left(\frac{Q^{(i)} {K^{(i)}}^{\top}}{\sqrt{d_k}} + M\right) V^{(i)}
#   \in \mathbb{R}^{T \times d_k}.$$
#
# **Concatenate** the heads side by side (the inverse of the split: transpose back, then reshape) and
# **project** with the output matrix $W_O \in \mathbb{R}^{h d_k \times d_{model}}$:
#
# $$\mathrm{MultiHead}(X) = \mathrm{Concat}(\mathrm{head}_0, \dots, \mathrm{head}_{h-1})\, W_O \;(+\, b_O)
#   \in \mathbb{R}^{T \times d_{model}}.$$
#
# Writing $W_O^{(i)}$ for the rows $i d_k, \dots, (i+1) d_k - 1$ of $W_O$, block matrix multiplication gives
#
# $$\mathrm{Concat}(\mathrm{head}_0, \dots, \mathrm{head}_{h-1})\, W_O = \sum_{i=0}^{h-1} \mathrm{head}_i\, W_O^{(i)}:$$
#
# each head writes into the whole model width through its own slice of $W_O$, and the heads' contributions add up.
# **$W_O$ is where the heads meet.** Before it, head $i$'s result sits only in columns $i d_k \dots (i+1) d_k - 1$ and
# knows nothing of the other heads.
#
# | step | shape (one sequence) |
# |---|---|
# | $X$ | $[T, d_{model}]$ |
# | $Q, K, V$ | $[T, d_{model}]$ |
# | split → $Q^{(i)}, K^{(i)}, V^{(i)}$ stacked | $[h, T, d_k]$ |
# | scores, weights | $[h, T, T]$ |
# | head outputs | $[h, T, d_k]$ |
# | concat | $[T, h d_k] = [T, d_{model}]$ |
# | $\cdot W_O$ | $[T, d_{model}]$ |
#
# With a batch, every shape gets a leading $B$: scores are $[B, h, T_q, T_k]$.

# %% [markdown]
# ### A slip in the source article (error 4 in the course map)
#
# Section 4.2 of the article ends its derivation with (step 4, "拼接和维度调整", *concatenate and adjust the
# dimensions*):
#
# $$\text{output} = \text{Concat}(\text{output}_1, \dots, \text{output}_n), \qquad
#   \text{output} = \text{reshape}(\text{output}, [-1, n_{heads}, d_v]).$$
#
# The ingredients are right — there *is* a concatenation and there *is* a reshape — but two things got mixed up:
#
# * the reshape to $[\,\cdot\,, n_{heads}, d_v]$ is the **split**, and it belongs *before* attention (that is how the
#   per-head queries, keys and values are made). Done after the concatenation, it simply undoes the concatenation;
# * the output projection $W_O$ is missing. Without it the heads are never mixed, and the sublayer has
#   $3 d_{model}^2$ weights instead of $4 d_{model}^2$.
#
# We will run the article's version on the thread in §3.5 and compare.

# %% [markdown]
# ## 3 · The thread: both heads, concat, $W_O$
#
# We pick up where lesson 04 stopped. The sentence is "to be or not to be", $T = 6$, $d_{model} = 4$, $h = 2$ heads,
# so $d_k = 2$. $Q$, $K$, $V$ are the ones lesson 04 computed ($Q = X W_Q$ …); we read them from `thread.forward()`.

# %%
state = thread.forward()
w = thread.weights()
tokens = [thread.VOCAB[i] for i in state["ids"]]
T, d_model, h = len(tokens), thread.D_MODEL, thread.NUM_HEADS
d_k = d_model // h
print("tokens:", tokens, f"  T={T}, d_model={d_model}, h={h}, d_k={d_k}")
Q, K, V = state["Q"], state["K"], state["V"]
show("Q", Q)
show("K", K)
show("V", V)

# %% [markdown]
# ### 3.1 Split into heads
#
# Head 0 takes columns 0–1, head 1 takes columns 2–3. `split_heads` does the reshape + transpose of §2:

# %%
Q_heads, K_heads, V_heads = (split_heads(a, h) for a in (Q, K, V))
show("Q_heads", Q_heads)
assert Q_heads.shape == (h, T, d_k)
for i in range(h):
    cols = slice(i * d_k, (i + 1) * d_k)
    assert np.array_equal(Q_heads[i], Q[:, cols]) and np.array_equal(K_heads[i], K[:, cols])
    assert np.array_equal(V_heads[i], V[:, cols])
# a reshape alone would cut the rows instead: its "head 0" would be tokens 0-2 with all 4 columns, folded
show("plain reshape, 'head 0'", Q.reshape(h, T, d_k)[0])
assert not np.array_equal(Q.reshape(h, T, d_k), Q_heads)

# %% [markdown]
# ### 3.2 Attention in each head
#
# Head 0 is exactly lesson 04's computation. Head 1 is new, so here are its steps written out: scores, scale,
# causal mask, row softmax, weights times values.

# %%
mask = causal_mask(T)  # True = may attend (key j <= query i)
scores_1 = Q_heads[1] @ K_heads[1].T / np.sqrt(d_k)
show("head 1 scores  Q1 K1^T / sqrt(d_k)", scores_1)
weights_1 = softmax(np.where(mask, scores_1, -np.inf))
show("head 1 weights (causal, row softmax)", weights_1)
out_1 = weights_1 @ V_heads[1]
show("head 1 output", out_1)
assert np.allclose(weights_1.sum(axis=-1), 1.0)

# %% [markdown]
# The same for both heads at once: `scaled_dot_product_attention` (lesson 04) works over any leading dimensions,
# here the head axis, and broadcasts the $[T, T]$ mask to $[h, T, T]$.

# %%
head_outputs, attn_weights = scaled_dot_product_attention(Q_heads, K_heads, V_heads, mask=mask)
show("head_outputs", head_outputs)
assert np.allclose(head_outputs[1], out_1) and np.allclose(attn_weights[1], weights_1)

# head 0 is exactly lesson 04's single head: attention over columns 0-1 of Q, K, V
out_04, weights_04 = scaled_dot_product_attention(Q[:, :d_k], K[:, :d_k], V[:, :d_k], mask=mask)
assert np.allclose(head_outputs[0], out_04) and np.allclose(attn_weights[0], weights_04)
assert np.allclose(head_outputs, state["head_outputs"]) and np.allclose(
    attn_weights, state["weights"]
)
print("head 0 = lesson 04's attention output; both heads = thread.forward()['head_outputs'] ✓")

# %% [markdown]
# ### 3.3 Concatenate and project with $W_O$

# %%
concat = merge_heads(head_outputs)  # [h, T, d_k] -> [T, h*d_k]
show("concat = [head 0 | head 1]", concat)
assert np.array_equal(concat, np.concatenate([head_outputs[0], head_outputs[1]], axis=-1))
W_O = w["W_O"]
show("W_O", W_O, 1)
attn_out = concat @ W_O
show("attn_out = concat @ W_O", attn_out)
assert np.allclose(attn_out, state["attn_out"])
print("attn_out == thread.forward()['attn_out'] ✓")

# %% [markdown]
# Steps 3.1–3.3 are the course's NumPy reference `multi_head_attention` (project, split, attend, merge, $W_O$),
# which the later lessons call instead of writing them out again. On the thread it gives the same numbers:

# %%
ref_out, ref_weights = multi_head_attention(
    state["x"], w["W_Q"], w["W_K"], w["W_V"], W_O, num_heads=h, mask=mask
)
assert np.allclose(ref_out, attn_out, atol=1e-12) and np.allclose(
    ref_weights, attn_weights, atol=1e-12
)
print("lessons_lib.multi_head_attention(x, W_Q, W_K, W_V, W_O, 2, mask) == attn_out, weights ✓")

# %% [markdown]
# That is the thread's attention sublayer. For example, `attn_out[0, 0]` is
# `concat[0] · W_O[:, 0]`: you can check it on paper from the two rounded arrays above.
#
# ### 3.4 $W_O$ as a sum over heads
#
# The block identity of §2, $\mathrm{Concat}(\mathrm{head}_0, \mathrm{head}_1) W_O = \mathrm{head}_0 W_O^{(0)} +
# \mathrm{head}_1 W_O^{(1)}$, numerically:

# %%
contrib = [head_outputs[i] @ W_O[i * d_k : (i + 1) * d_k] for i in range(h)]
show("head 0's contribution  head_0 @ W_O[0:2]", contrib[0])
show("head 1's contribution  head_1 @ W_O[2:4]", contrib[1])
assert np.allclose(contrib[0] + contrib[1], attn_out)
print("sum of the contributions == attn_out ✓")

# %% [markdown]
# ### 3.5 The article's version, run on the same numbers
#
# The article concatenates, then reshapes to $[-1, n_{heads}, d_v]$, and stops. On the thread:

# %%
article_out = np.concatenate(list(head_outputs), axis=-1).reshape(
    -1, h, d_k
)  # Concat, then reshape
print("article's output shape:", article_out.shape, "  correct attn_out shape:", attn_out.shape)
# the reshape only undoes the concatenation: it gives back the heads (token-major), no new numbers
assert np.array_equal(article_out, head_outputs.transpose(1, 0, 2))
# and without W_O even the flattened result is just the concatenation, not the sublayer's output
print("max |concat - attn_out| =", round(float(np.abs(concat - attn_out).max()), 3))
assert not np.allclose(article_out.reshape(T, d_model), attn_out)

# %% [markdown]
# So the fix is small: **split before attention, concatenate after it, then multiply by $W_O$.**

# %% [markdown]
# ## 4 · Plot: what each head looks at
#
# Each row is a query token, each column a key; the numbers are the attention weights (rows sum to 1; the upper
# triangle is 0 because of the causal mask).

# %%
labels = [f"{i}:{t}" for i, t in enumerate(tokens)]
fig, axes = plt.subplots(1, h, figsize=(4.2 * h, 4), constrained_layout=True)
for i, ax in enumerate(axes):
    im = ax.imshow(attn_weights[i], vmin=0, vmax=1, cmap="viridis")
    ax.set_title(f"head {i}")
    ax.set_xticks(range(T), labels, rotation=45)
    ax.set_yticks(range(T), labels)
    ax.set_xlabel("key")
    if i == 0:
        ax.set_ylabel("query")
    for r in range(T):
        for c in range(r + 1):
            val = attn_weights[i, r, c]
            ax.text(
                c,
                r,
                f"{val:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="black" if val > 0.6 else "white",
            )
fig.colorbar(im, ax=axes, shrink=0.8, label="attention weight")
fig.suptitle("The thread's attention weights, one panel per head")
plt.show()

# %% [markdown]
# The two heads attend differently: the thread's weights are random (rounded to one decimal), so no head has
# "learned" anything, yet e.g. the query `2:or` puts almost all its weight on itself in head 0 but spreads it
# over `0:to`, `1:be`, `2:or` in head 1. After training, heads specialise (Clark et al., 2019, *What Does BERT Look
# At?*, find heads that attend to the previous token, to separators, or along syntactic relations).

# %%
print(
    "query 2:or, head 0:",
    np.round(attn_weights[0, 2, :3], 3),
    "  head 1:",
    np.round(attn_weights[1, 2, :3], 3),
)
assert attn_weights[0, 2, 2] > 0.99 and attn_weights[1, 2, :3].max() < 0.6

# %% [markdown]
# ### Explore the heads yourself
#
# The same weights in an interactive explorer (`lessons_lib.viz.AttentionExplorer`). **Hover** over a query token
# (a row) to see the keys it attends to in each head, **click** to pin it (click again to release; with the view
# focused, ↑/↓ move the pinned row), switch **heads** on and off to compare them side by side, and toggle the
# causal mask: blocked cells are drawn hatched. It runs entirely in your browser; a static copy of this notebook shows
# a picture of the selection instead.

# %% tags=["nbval-ignore-output"]
from lessons_lib import AttentionExplorer

heads_view = AttentionExplorer(
    attn_weights,
    tokens,
    query=2,
    title='the thread, "to be or not to be": both heads of the attention sublayer',
)
heads_view

# %% [markdown]
# What the explorer shows for the pinned query `2:or`, read from Python:

# %%
for head in range(h):
    top = heads_view.top_keys(2, head=head, k=2)
    print(
        f"head {head}: query 2 'or' attends most to",
        ", ".join(f"{j}:{tok} ({wt:.3f})" for j, tok, wt in top),
    )
assert heads_view.top_keys(2, head=0)[0][:2] == (2, "or") and heads_view.top_keys(2, head=1)[0][
    :2
] == (1, "be")
assert heads_view.mask_kind == "causal" and np.array_equal(heads_view.weights[0], attn_weights)

# %% [markdown]
# ## 5 · The heads are independent attentions over slices
#
# ### 5.1 One big attention with a block-diagonal mask
#
# Here is a way to see multi-head attention as *one* ordinary attention. Make $h \cdot T = 12$ "pseudo-tokens":
# copy the sequence once per head, and in copy $i$ keep only head $i$'s columns of $Q$, $K$, $V$ (zeros elsewhere):
#
# $$\tilde Q = \begin{pmatrix} Q^{(0)} & 0 \\ 0 & Q^{(1)} \end{pmatrix} \in \mathbb{R}^{hT \times d_{model}},
#   \quad \text{same for } \tilde K, \tilde V.$$
#
# Then $\tilde Q \tilde K^\top = \begin{pmatrix} Q^{(0)} {K^{(0)}}^\top & 0 \\ 0 & Q^{(1)} {K^{(1)}}^\top
# \end{pmatrix}$ is block-diagonal. Blocking everything outside the diagonal blocks (and, inside them, the future)
# with the mask $\tilde M = \mathrm{blockdiag}(M, M)$, one softmax over 12 keys gives exactly the two heads' weights,
# and adding up the $h$ row blocks of the output gives the concatenation.


# %%
def block_rows(a):
    """[T, d_model] -> [h*T, d_model]: copy i of the sequence keeps only head i's columns."""
    big = np.zeros((h * T, d_model))
    for i in range(h):
        big[i * T : (i + 1) * T, i * d_k : (i + 1) * d_k] = a[:, i * d_k : (i + 1) * d_k]
    return big


Q_big, K_big, V_big = block_rows(Q), block_rows(K), block_rows(V)
scores_big = Q_big @ K_big.T / np.sqrt(d_k)  # note: scaled by the head width d_k, not d_model
mask_big = np.kron(np.eye(h), mask).astype(bool)  # blockdiag(causal, causal)
weights_big = softmax(np.where(mask_big, scores_big, -np.inf))
out_big = weights_big @ V_big  # [h*T, d_model]

# the off-diagonal blocks of the scores are exactly zero (disjoint columns), before any masking
assert np.all(scores_big[:T, T:] == 0) and np.all(scores_big[T:, :T] == 0)
for i in range(h):
    rows = slice(i * T, (i + 1) * T)
    assert np.allclose(weights_big[rows, rows], attn_weights[i])
assert np.allclose(out_big.reshape(h, T, d_model).sum(axis=0), concat)
print("one attention over h*T pseudo-tokens with a block-diagonal mask == multi-head attention ✓")

# %%
fig, ax = plt.subplots(figsize=(5.2, 4.6))
im = ax.imshow(weights_big, vmin=0, vmax=1, cmap="viridis")
big_labels = [f"h{i} {t}" for i in range(h) for t in tokens]
ax.set_xticks(range(h * T), big_labels, rotation=90, fontsize=8)
ax.set_yticks(range(h * T), big_labels, fontsize=8)
ax.axhline(T - 0.5, color="white", lw=1)
ax.axvline(T - 0.5, color="white", lw=1)
ax.set_title("one 12×12 attention = two 6×6 heads")
fig.colorbar(im, ax=ax, label="attention weight")
plt.show()

# %% [markdown]
# Compare with a **single** head of full width $d_{model}$: its scores are
# $Q K^\top = \sum_i Q^{(i)} {K^{(i)}}^\top$, the *sum* of the heads' scores, pushed through *one* softmax.
# Multi-head attention keeps the terms apart and gives each its own softmax.

# %%
assert np.allclose(Q @ K.T, sum(Q_heads[i] @ K_heads[i].T for i in range(h)))
print("Q K^T == Q0 K0^T + Q1 K1^T ✓")

# %% [markdown]
# ### 5.2 Change one head, and only that head changes
#
# Zero head 1's columns (2–3) of $W_Q$, $W_K$ and $W_V$ and recompute. Head 0 does not move at all; head 1's
# output becomes 0 (its values are all zero). Only $W_O$ then spreads the change over every output column.

# %%
w_cut = thread.weights()
for name in ("W_Q", "W_K", "W_V"):
    w_cut[name][:, d_k : 2 * d_k] = 0.0
x = state["x"]
heads_cut, _ = scaled_dot_product_attention(
    *(split_heads(x @ w_cut[n], h) for n in ("W_Q", "W_K", "W_V")), mask=mask
)
show("head outputs after zeroing head 1's columns", heads_cut)
assert np.array_equal(heads_cut[0], head_outputs[0])  # bit for bit: head 0 never saw those columns
assert np.all(heads_cut[1] == 0)
attn_out_cut = merge_heads(heads_cut) @ W_O
assert np.all(np.abs(attn_out_cut - attn_out).max(axis=0) > 0.1)  # every output column changed
assert np.allclose(attn_out_cut, contrib[0])  # only head 0's contribution is left
print("head 0 unchanged, head 1 zero; after W_O every column of attn_out changed ✓")

# %% [markdown]
# ## 6 · Counting parameters
#
# $W_Q, W_K, W_V$ map $d_{model} \to h d_k = d_{model}$ and $W_O$ maps $h d_k \to d_{model}$: four
# $d_{model} \times d_{model}$ matrices, plus a bias of length $d_{model}$ for each:
#
# $$N_{\text{MHA}} = 4 d_{model}^2 + 4 d_{model} \quad(\text{biases}), \qquad 4 d_{model}^2 \quad(\text{no biases}).$$
#
# The number of heads does not appear: more heads means narrower heads, not more weights. The thread's sublayer
# ($d_{model} = 4$) has $4 \cdot 16 + 4 \cdot 4 = 80$ (its biases happen to be zero). GPT-2 small
# ($d_{model} = 768$) has $4 \cdot 768^2 + 4 \cdot 768 = 2\,362\,368$ per attention sublayer.
#
# Both layers below are built for $d_{model} = 8$ with $h = 1, 2, 4, 8$.


# %%
def mha_params(d_model, use_bias=True):
    return 4 * d_model**2 + (4 * d_model if use_bias else 0)


def build_ours(d_model, num_heads, x_shape, context_shape=None, use_bias=True):
    """A lessons_lib MultiHeadAttention, built with the shapes it will see."""
    layer = MultiHeadAttention(d_model, num_heads, use_bias=use_bias)
    layer.build(
        x_shape, context_shape
    )  # create the weights now, so that we can count and overwrite them
    return layer


def build_keras(num_heads, key_dim, x_shape, context_shape=None, use_bias=True):
    """keras.layers.MultiHeadAttention with key_dim = value_dim = d_k, output width = the query's width."""
    layer = keras.layers.MultiHeadAttention(num_heads=num_heads, key_dim=key_dim, use_bias=use_bias)
    layer.build(query_shape=x_shape, value_shape=context_shape or x_shape)
    return layer


print(f"{'d_model':>7} {'h':>2} {'bias':>5} {'formula':>8} {'lessons_lib':>12} {'keras':>6}")
for use_bias in (True, False):
    for heads in (1, 2, 4, 8):
        n_ours = build_ours(8, heads, (2, 5, 8), use_bias=use_bias).count_params()
        n_keras = build_keras(heads, 8 // heads, (2, 5, 8), use_bias=use_bias).count_params()
        print(
            f"{8:>7} {heads:>2} {str(use_bias):>5} {mha_params(8, use_bias):>8} {n_ours:>12} {n_keras:>6}"
        )
        assert n_ours == n_keras == mha_params(8, use_bias)
assert build_ours(4, 2, (1, 6, 4)).count_params() == mha_params(4) == 80
print("GPT-2 small, d_model=768:", f"{mha_params(768):,}")
assert mha_params(768) == 2_362_368  # quoted above

# %% [markdown]
# ## 7 · The code: `lessons_lib.MultiHeadAttention`
#
# The library's layer does §2 for a batch, with four `Dense` projections `.wq .wk .wv .wo` (kernels
# $[d_{model}, d_{model}]$, head $i$ = columns $i d_k \dots$). Its `call` projects the input and hands the heads
# to two methods. `split_heads` is §3.1 with a batch axis in front: reshape to $[B, T, h, d_k]$, then swap $T$
# and $h$.

# %%
show_source(MultiHeadAttention.split_heads)

# %% [markdown]
# `attend` is §3.2–3.3 for all heads at once: the first line is $Q^{(i)} {K^{(i)}}^\top / \sqrt{d_k}$ (the
# transpose swaps the last two axes, $T$ and $d_k$), `ops.where` applies the mask, the next two lines are the
# stable row softmax of lesson 04, `matmul(weights, v)` gives the head outputs $[B, h, T_q, d_k]$, and
# `self.wo(self.merge_heads(heads))` is the concatenation followed by $W_O$.

# %%
show_source(MultiHeadAttention.attend)

# %% [markdown]
# Loaded with the thread's weights by `thread.load_into` (the thread has no biases, so it sets them to 0), the
# layer reproduces `attn_out`:

# %%
layer = thread.load_into(MultiHeadAttention(d_model, h))
assert all(np.all(np.asarray(d.bias) == 0) for d in (layer.wq, layer.wk, layer.wv, layer.wo))
out, wts = layer(x[None].astype("float32"), use_causal_mask=True, return_attention=True)
print("output", tuple(out.shape), " weights", tuple(wts.shape), "  [batch, heads, T_q, T_k]")
assert np.abs(np.asarray(out)[0] - attn_out).max() <= 1e-5
assert np.abs(np.asarray(wts)[0] - attn_weights).max() <= 1e-5
print("lessons_lib.MultiHeadAttention on the thread == attn_out ✓")

# %% [markdown]
# ## 8 · Check against `keras.layers.MultiHeadAttention`
#
# Keras stores the same numbers in a head-aware layout: the query/key/value kernels are $[d_{model}, h, d_k]$,
# their biases $[h, d_k]$, the output kernel $[h, d_k, d_{model}]$ and its bias $[d_{model}]$. Because head $i$ is
# columns $i d_k \dots (i+1) d_k - 1$ in our kernels, a plain row-major `reshape` converts one layout into the other;
# `copy_to_keras_mha(ours, theirs)` does that for the four projections, through Keras' public `query_dense`,
# `key_dense`, `value_dense` and `output_dense`. The cell below also checks the reshape on one kernel.
#
# We test a random batch ($B = 2$, $T = 5$, $d_{model} = 8$, $h = 2$), with random biases so that the bias layout is
# tested too, and compare outputs and attention weights.

# %%
rng = np.random.default_rng(5)
B, T_r, D_r, H_r = 2, 5, 8, 2
dk_r = D_r // H_r
xb = rng.normal(size=(B, T_r, D_r)).astype("float32")


def randomize_biases(layer):
    for dense in (layer.wq, layer.wk, layer.wv, layer.wo):
        dense.bias.assign(rng.normal(0, 0.5, size=dense.bias.shape).astype("float32"))


def compare(name, ours_out, keras_out):
    (o1, a1), (o2, a2) = ours_out, keras_out
    d_out = float(np.abs(np.asarray(o1) - np.asarray(o2)).max())
    d_wts = float(np.abs(np.asarray(a1) - np.asarray(a2)).max())
    assert a1.shape == a2.shape and d_out <= 1e-5 and d_wts <= 1e-5, (name, d_out, d_wts)
    print(f"{name:<28} output {tuple(o1.shape)}, weights {tuple(a1.shape)}: max |diff| <= 1e-5 ✓")


ours = build_ours(D_r, H_r, xb.shape)
randomize_biases(ours)
theirs = build_keras(H_r, dk_r, xb.shape)
copy_to_keras_mha(ours, theirs)
# head 1's query kernel in Keras' layout is columns dk_r..2*dk_r-1 of ours
assert np.array_equal(
    np.asarray(theirs.query_dense.kernel)[:, 1], np.asarray(ours.wq.kernel)[:, dk_r : 2 * dk_r]
)

compare("no mask", ours(xb, return_attention=True), theirs(xb, xb, return_attention_scores=True))
compare(
    "causal mask",
    ours(xb, use_causal_mask=True, return_attention=True),
    theirs(xb, xb, use_causal_mask=True, return_attention_scores=True),
)

# %% [markdown]
# **Padding mask.** The second sequence has only 3 real tokens; positions 3 and 4 are padding that no query may
# attend to. Keras takes an `attention_mask` of shape $[B, T_q, T_k]$; ours takes any shape that broadcasts to
# $[B, h, T_q, T_k]$ — $[B, T_q, T_k]$ or just $[B, 1, T_k]$. Same convention: `True` = may attend.

# %%
lengths = np.array([5, 3])
key_ok = np.arange(T_r)[None, :] < lengths[:, None]  # [B, T_k]
pad_mask = np.repeat(key_ok[:, None, :], T_r, axis=1)  # [B, T_q, T_k]
print("padding mask of sequence 1 (query rows, key columns):\n", pad_mask[1].astype(int))

res_ours = ours(xb, mask=pad_mask, return_attention=True)
compare(
    "padding mask", res_ours, theirs(xb, xb, attention_mask=pad_mask, return_attention_scores=True)
)
compare(
    "padding mask [B, 1, T_k]",
    ours(xb, mask=key_ok[:, None, :], return_attention=True),
    theirs(xb, xb, attention_mask=pad_mask, return_attention_scores=True),
)
compare(
    "padding + causal",
    ours(xb, mask=pad_mask, use_causal_mask=True, return_attention=True),
    theirs(xb, xb, attention_mask=pad_mask, use_causal_mask=True, return_attention_scores=True),
)
assert np.all(np.asarray(res_ours[1])[1, :, :, 3:] == 0)  # padded keys get exactly zero weight
print("padded keys get weight exactly 0 ✓")

# %% [markdown]
# **Cross-attention.** With a second argument, `layer(x, context)`, the queries come from `x` and the keys and values
# from `context` (in an encoder–decoder Transformer: the decoder attends to the encoder's output). The sequences may
# have different lengths, so the weights are $[B, h, T_q, T_k]$ with $T_q = 5$, $T_k = 7$. Keras calls the context
# `value` (the key defaults to it).

# %%
ctx = rng.normal(size=(B, 7, D_r)).astype("float32")
ours_x = build_ours(D_r, H_r, xb.shape, ctx.shape)
randomize_biases(ours_x)
theirs_x = build_keras(H_r, dk_r, xb.shape, ctx.shape)
copy_to_keras_mha(ours_x, theirs_x)
compare(
    "cross-attention",
    ours_x(xb, ctx, return_attention=True),
    theirs_x(xb, ctx, return_attention_scores=True),
)
ctx_ok = np.arange(7)[None, :] < np.array([7, 4])[:, None]  # the second context has 4 real tokens
compare(
    "cross-attention + padding",
    ours_x(xb, ctx, mask=ctx_ok[:, None, :], return_attention=True),
    theirs_x(
        xb,
        ctx,
        attention_mask=np.repeat(ctx_ok[:, None, :], T_r, axis=1),
        return_attention_scores=True,
    ),
)

# %% [markdown]
# In cross-attention the query tokens and the key tokens are different sequences, so the weights are not square.
# The explorer takes both token lists (here just positions, the data is random) and the padding mask: the second
# context's padded keys 4–6 are blocked for every query.

# %% tags=["nbval-ignore-output"]
cross_view = AttentionExplorer.from_model(
    ours_x,
    xb,
    [f"x{i}" for i in range(T_r)],
    [f"c{j}" for j in range(7)],
    context=ctx,
    batch_index=1,
    call_kwargs={"mask": ctx_ok[:, None, :]},
    mask=np.repeat(ctx_ok[1][None, :], T_r, axis=0),
    query=0,
    title="cross-attention: 5 queries, 7 context keys (the last 3 are padding)",
)
cross_view

# %%
print("weights of one sequence as [layers, heads, T_q, T_k]:", cross_view.weights.shape)
print("query x0, head 0:", np.round(cross_view.row(0, head=0), 3))
assert cross_view.weights.shape == (1, H_r, T_r, 7) and np.all(cross_view.weights[..., 4:] == 0)

# %% [markdown]
# ## 9 · Exercises
#
# ### Exercise 1 — split and merge the heads
#
# Write `to_heads(x, num_heads)` ($[T, d_{model}] \to [h, T, d_k]$, head $i$ = columns $i d_k \dots$) and
# `from_heads(x)` ($[h, T, d_k] \to [T, h d_k]$, the heads side by side): your own `split_heads` and
# `merge_heads`. Each takes one `reshape` and one `transpose`; the check compares them with the library's.


# %%
def to_heads(x, num_heads):
    # YOUR CODE HERE
    raise NotImplementedError


def from_heads(x):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
cases_split = [(Q, 2), (np.arange(30.0).reshape(5, 6), 3), (rng.normal(size=(4, 12)), 4)]
cases_merge = [Q_heads, np.arange(24.0).reshape(3, 4, 2), rng.normal(size=(4, 3, 5))]
check(
    to_heads,
    split_heads,
    inputs=cases_split,
    hint=(
        "A reshape keeps the numbers in row order, so cut each row (token) into h pieces first, and only "
        "then bring the head axis to the front.",
        "x.reshape(T, h, d_k) and then .transpose(1, 0, 2)",
    ),
)
check(
    from_heads,
    merge_heads,
    inputs=cases_merge,
    hint=(
        "Undo to_heads in reverse order: put the token axis back in front, then join each token's h pieces.",
        "x.transpose(1, 0, 2) and then .reshape(T, h * d_k)",
    ),
)


# %% tags=["solution"]
def to_heads(x, num_heads):
    t, d = x.shape
    return x.reshape(t, num_heads, d // num_heads).transpose(1, 0, 2)


def from_heads(x):
    heads, t, dk = x.shape
    return x.transpose(1, 0, 2).reshape(t, heads * dk)


assert check(to_heads, split_heads, inputs=cases_split)
assert check(from_heads, merge_heads, inputs=cases_merge)

# %% [markdown]
# ### Exercise 2 — the whole multi-head forward pass in NumPy
#
# Write `mha_forward(x, W_Q, W_K, W_V, W_O, num_heads, causal)`: project, split, scaled scores per head
# (scale by $\sqrt{d_k}$, the head width!), causal mask if `causal`, row softmax, weights times values, merge,
# $W_O$. Return the output $[T, d_{model}]$. Use NumPy (and your `to_heads`/`from_heads` if you like); the
# check compares it with the library's `multi_head_attention` on the thread and on a random case with 4 heads,
# with and without the mask.


# %%
def mha_forward(x, W_Q, W_K, W_V, W_O, num_heads, causal=True):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
def reference_mha(x, W_Q, W_K, W_V, W_O, num_heads, causal=True):
    mask = causal_mask(len(x)) if causal else None
    return multi_head_attention(x, W_Q, W_K, W_V, W_O, num_heads, mask=mask)[0]  # the output only


w8 = [rng.normal(0, 0.5, size=(8, 8)) for _ in range(4)]
cases_mha = [
    (x, w["W_Q"], w["W_K"], w["W_V"], w["W_O"], 2, True),
    (rng.normal(size=(5, 8)), *w8, 4, False),
    (rng.normal(size=(5, 8)), *w8, 4, True),
]
assert np.allclose(reference_mha(*cases_mha[0]), state["attn_out"])
check(
    mha_forward,
    reference_mha,
    inputs=cases_mha,
    hint=(
        "Each head is lesson 04's attention on its own d_k columns, scaled by the square root of the head "
        "width d_k (not of d_model); the mask blocks scores before the softmax.",
        "q, k, v = (to_heads(x @ m, num_heads) for m in (W_Q, W_K, W_V)); scores = q @ k.transpose(0, 2, 1) "
        "/ np.sqrt(d_model // num_heads); np.where(mask, scores, -np.inf); softmax; from_heads(weights @ v) @ W_O",
    ),
)


# %% tags=["solution"]
def mha_forward(x, W_Q, W_K, W_V, W_O, num_heads, causal=True):
    t, d = x.shape
    d_k = d // num_heads
    q, k, v = (to_heads(x @ m, num_heads) for m in (W_Q, W_K, W_V))  # [h, T, d_k] each
    scores = q @ k.transpose(0, 2, 1) / np.sqrt(d_k)  # [h, T, T]
    if causal:
        scores = np.where(np.tril(np.ones((t, t), dtype=bool)), scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(axis=-1, keepdims=True)
    return from_heads(weights @ v) @ W_O


assert check(mha_forward, reference_mha, inputs=cases_mha)

# %% [markdown]
# ### Exercise 3 — switch a head off
#
# Write `without_head(head_outputs, W_O, i)`: the sublayer's output $\mathrm{Concat}(\mathrm{head}_0, \dots) W_O$
# when head `i`'s output is replaced by zeros. The sum of §2 gives it without any concatenation:
# $\sum_{j \ne i} \mathrm{head}_j W_O^{(j)}$, where $W_O^{(j)}$ are the rows $j d_k \dots (j+1) d_k - 1$ of $W_O$.
# (Switching heads off one at a time is how one asks "what does this head contribute?", e.g. Michel et al., 2019,
# *Are Sixteen Heads Really Better than One?*)


# %%
def without_head(head_outputs, W_O, i):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
def reference_without_head(head_outputs, W_O, i):
    kept = head_outputs.copy()
    kept[i] = 0.0
    return merge_heads(kept) @ W_O


cases_without = [
    (head_outputs, W_O, 0),
    (head_outputs, W_O, 1),
    (rng.normal(size=(4, 3, 2)), rng.normal(size=(8, 5)), 2),
]
check(
    without_head,
    reference_without_head,
    inputs=cases_without,
    hint=(
        "Each head writes into the output through its own block of d_k rows of W_O; leave out head i's "
        "term and add up the others.",
        "sum(head_outputs[j] @ W_O[j * d_k : (j + 1) * d_k] for j in range(h) if j != i), "
        "with h, T, d_k = head_outputs.shape",
    ),
)


# %% tags=["solution"]
def without_head(head_outputs, W_O, i):
    heads, t, dk = head_outputs.shape
    return sum(head_outputs[j] @ W_O[j * dk : (j + 1) * dk] for j in range(heads) if j != i)


assert check(without_head, reference_without_head, inputs=cases_without)
assert np.allclose(
    without_head(head_outputs, W_O, 0), contrib[1]
)  # the thread without head 0: head 1's share

# %% [markdown]
# ## Summary
#
# * Multi-head attention runs $h$ attentions side by side on slices of width $d_k = d_{model}/h$:
#   **split** ($[T, d_{model}] \to [h, T, d_k]$: reshape, then transpose), **attend** in each head (scale by
#   $\sqrt{d_k}$), **concatenate** ($[h, T, d_k] \to [T, d_{model}]$), **project** with $W_O$:
#   $\mathrm{MultiHead} = \mathrm{Concat}(\mathrm{head}_0, \dots, \mathrm{head}_{h-1}) W_O$.
# * The heads are independent until $W_O$: one attention over $hT$ pseudo-tokens with a block-diagonal mask is the
#   same computation, and changing one head's projection columns leaves the other heads bit-for-bit unchanged.
#   $W_O$ mixes them: $\mathrm{Concat}(\dots) W_O = \sum_i \mathrm{head}_i W_O^{(i)}$.
# * The source article reshapes after the concatenation (that reshape is the split, which belongs before attention)
#   and omits $W_O$; the correct order is split → attend → concat → $W_O$.
# * Parameters: $4 d_{model}^2 + 4 d_{model}$ with biases, independent of $h$ — checked against `lessons_lib` and
#   `keras.layers.MultiHeadAttention`.
# * `lessons_lib.MultiHeadAttention` matches `keras.layers.MultiHeadAttention` (copied weights; kernels reshaped to
#   $[d_{model}, h, d_k]$ and $[h, d_k, d_{model}]$) within $10^{-5}$, with no mask, a causal mask, a padding mask and
#   in cross-attention.
# * The thread: both heads, concatenated and multiplied by $W_O$, give `attn_out`; head 0 is lesson 04's head.
#   The library's NumPy reference `multi_head_attention` is the same computation in one call; later lessons use it.
# * `lessons_lib.viz.AttentionExplorer` shows weights `[layers, heads, T_q, T_k]` interactively: heads side by side,
#   a query's row on hover or click, the mask — also for cross-attention, where query and key tokens differ.
#
# **Next:** lesson 06 sends the thread through the position-wise feed-forward network. It starts from `h1`, the
# attention sublayer's output after the residual connection and LayerNorm (`h1 = LayerNorm(x + attn_out)`), which
# lesson 07 derives.
