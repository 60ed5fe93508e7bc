# %% [markdown]
# # 06 · The position-wise feed-forward network
#
# Attention (lessons 04–05) lets every token *look at* the others. What it does not do is much *thinking* about
# what it found: apart from the softmax, an attention layer is linear in the values. The second sublayer of every
# Transformer block supplies the non-linear processing: a small two-layer neural network, the **feed-forward
# network (FFN)**, applied to each token on its own.
#
# **In this lesson you will**
#
# 1. write down the FFN, $\mathrm{FFN}(x) = W_2\,\mathrm{act}(W_1 x + b_1) + b_2$, and see why the source article's
#    extra ReLU on the outside is a mistake;
# 2. compare the two activations used in practice, ReLU (original Transformer) and GELU (BERT, GPT-2 and later),
#    with their derivatives, and the exact GELU with its tanh approximation;
# 3. check what *position-wise* means: the very same MLP on every token, no mixing between tokens;
# 4. count parameters: with the usual 4× expansion the FFN holds **two thirds** of a block's weight matrices;
# 5. push the thread through the FFN by hand (`h1 → ffn_hidden → ffn_out`) and check it against
#    `lessons_lib` and Keras.

# %% tags=["nbval-ignore-output"]
import lessons_lib

info = lessons_lib.setup(seed=0)

# %%
import contextlib
import io
from math import erf

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from lessons_lib import (
    FeedForward,
    MultiHeadAttention,
    TransformerBlock,
    block_param_count,
    check,
    feed_forward,
    gelu,
    gpt_param_count,
    relu,
    show,
    show_source,
    thread,
)

# %% [markdown]
# ## 1 · The formula
#
# For one token, a column vector $x \in \mathbb{R}^{d_\text{model}}$, the FFN of Vaswani et al. (2017, eq. 2) is
#
# $$
# \mathrm{FFN}(x) = W_2\,\mathrm{act}(W_1 x + b_1) + b_2,
# \qquad W_1 \in \mathbb{R}^{d_\text{ff}\times d_\text{model}},\;
#        W_2 \in \mathbb{R}^{d_\text{model}\times d_\text{ff}}.
# $$
#
# * $W_1$ **expands** the token from $d_\text{model}$ to $d_\text{ff}$ numbers (usually $d_\text{ff} = 4\,d_\text{model}$);
# * the activation, applied element by element, is the only non-linearity: ReLU, $\max(0, z)$, in the original
#   paper; GELU in BERT, GPT-2 and most later models;
# * $W_2$ **projects back** to $d_\text{model}$ so that the result can be added to the residual stream (lesson 07).
#
# The code of this course stores tokens as *rows* (an input is a matrix $X$ of shape $[T, d_\text{model}]$), so it
# writes the same thing with the matrices transposed, for all tokens at once:
#
# $$
# \mathrm{FFN}(X) = \mathrm{act}(X W_1 + b_1)\,W_2 + b_2,
# \qquad W_1: [d_\text{model}, d_\text{ff}],\; W_2: [d_\text{ff}, d_\text{model}].
# $$
#
# Note what is **not** there: there is no activation after $W_2$. The output of the FFN is an arbitrary vector —
# positive or negative in every coordinate — that is *added* to the token's representation.
#
# ### A kind word about the source article
#
# The article (section 4.1) writes the FFN as
#
# $$
# \mathrm{ffn}(x) = \mathrm{ReLU}\big(W_2\,\mathrm{ReLU}(W_1 x + b_1)\big) + b_2 .
# $$
#
# The inner ReLU is right; the **outer** one is an easy slip to make (many MLP diagrams end with an activation), but
# it changes what the layer can do: $\mathrm{ReLU}(\cdot) \ge 0$, so every output coordinate is *at least* $b_2$.
# Before the bias, the FFN could only ever *push a coordinate up*, never down. Since the FFN's output is added to the
# residual stream, that would mean a whole block can only move each token in one direction per coordinate. Let us see
# it on real numbers after meeting the thread.

# %% [markdown]
# ## 2 · The thread: where we are
#
# The thread (see lesson 02) is the sentence *"to be or not to be"*, 6 tokens, $d_\text{model} = 4$, pushed through one
# tiny Transformer block with fixed weights rounded to one decimal. Lesson 05 ended with the attention output
# `attn_out`. The block then adds it to its input and normalizes: `h1 = LayerNorm(x + attn_out)` — the
# *residual connection* and *LayerNorm* that **lesson 07 derives**. For now take `h1` as given: it is the input of the
# FFN, one 4-vector per token.
#
# The thread's FFN has $d_\text{ff} = 4 \cdot 4 = 16$ hidden units and uses ReLU, like the original paper.

# %%
state = thread.forward()
w = thread.weights()
h1 = state["h1"]
W_1, b_1, W_2, b_2 = w["W_1"], w["b_1"], w["W_2"], w["b_2"]

show("h1 (input of the FFN)", h1)
for name in ("W_1", "b_1", "W_2", "b_2"):
    show(name, w[name])

# %% [markdown]
# ### Step 1: expand and activate
#
# `z = h1 @ W_1 + b_1` gives every token 16 pre-activations; ReLU zeroes the negative ones. Let us do the first token
# (*"to"*) completely by hand, unit 1 (the second column of `W_1`):
#
# $z_{0,1} = h_{0,0} W_{0,1} + h_{0,1} W_{1,1} + h_{0,2} W_{2,1} + h_{0,3} W_{3,1} + b_1$.

# %%
z_01 = (
    h1[0, 0] * W_1[0, 1]
    + h1[0, 1] * W_1[1, 1]
    + h1[0, 2] * W_1[2, 1]
    + h1[0, 3] * W_1[3, 1]
    + b_1[1]
)
print(
    f"z[0,1] = {h1[0, 0]:.3f}*{W_1[0, 1]:.1f} + {h1[0, 1]:.3f}*{W_1[1, 1]:.1f} + {h1[0, 2]:.3f}*{W_1[2, 1]:.1f}"
    f" + {h1[0, 3]:.3f}*{W_1[3, 1]:.1f} + {b_1[1]:.1f} = {z_01:.3f}  -> ReLU -> {max(z_01, 0):.3f}"
)

z = h1 @ W_1 + b_1  # [6, 16] pre-activations
ffn_hidden = np.maximum(z, 0.0)  # ReLU
show("ffn_hidden = ReLU(h1 @ W_1 + b_1)", ffn_hidden)
n_zero = int((ffn_hidden == 0).sum())
print(
    f"\n{n_zero} of {ffn_hidden.size} hidden values are exactly 0 (ReLU switched those units off)"
)

assert np.isclose(z_01, z[0, 1])
assert np.allclose(ffn_hidden, state["ffn_hidden"])

words = thread.SENTENCE.split()
on = ffn_hidden > 0
for t, word in enumerate(words):
    print(f"token {t} {word!r:6}: units switched on {np.flatnonzero(on[t]).tolist()}")
share_8_15 = on[:, 8:].sum(axis=1) / on.sum(axis=1)
share_0_5 = on[:, :6].sum(axis=1) / on.sum(axis=1)
assert (share_8_15[:2] > 0.5).all() and (share_0_5[2:4] > 0.5).all()

# %% [markdown]
# Each token switches on its own subset of the 16 units: *"to"* (token 0) and *"be"* (token 1) light up mostly units
# 8–15, *"or"* and *"not"* (tokens 2, 3) mostly units 0–5. With trained weights such patterns are what interpretability
# research reads as "features" detected by the FFN; here the weights are random, so they mean nothing yet.
#
# ### Step 2: project back
#
# `ffn_out = ffn_hidden @ W_2 + b_2` — back to 4 numbers per token, with no activation.

# %%
ffn_out = ffn_hidden @ W_2 + b_2
show("ffn_out = ffn_hidden @ W_2 + b_2", ffn_out)

assert np.allclose(ffn_out, state["ffn_out"])
assert np.allclose(ffn_out, feed_forward(h1, W_1, b_1, W_2, b_2, activation="relu"))
print("\nmatches thread.forward()['ffn_out'] and lessons_lib.feed_forward ✓")

# %% [markdown]
# The library's NumPy reference `feed_forward` is these two steps. Most of it checks the shapes; its last line is
# the row form of §1, $\mathrm{act}(X W_1 + b_1)\,W_2 + b_2$, with nothing applied after $W_2$:

# %%
show_source(feed_forward)

# %% [markdown]
# ### The article's outer ReLU, on the thread
#
# Now the same weights with the article's formula, $\mathrm{ReLU}(\mathrm{ReLU}(h W_1 + b_1) W_2) + b_2$:


# %%
def article_ffn(x, w1, b1, w2, b2):
    """The source article's formula, with an extra ReLU after W_2 (do not use: shown to see what it breaks)."""
    return np.maximum(np.maximum(x @ w1 + b1, 0.0) @ w2, 0.0) + b2


wrong = article_ffn(h1, W_1, b_1, W_2, b_2)
show("article's FFN", wrong)
show("correct FFN", ffn_out)
show("b_2", b_2)
print(
    "negative entries: correct",
    int((ffn_out < 0).sum()),
    "of 24, article",
    int((wrong < 0).sum()),
    "of 24",
)
pinned = np.isclose(wrong, b_2)
print(
    "entries clipped to exactly b_2 by the outer ReLU:",
    int(pinned.sum()),
    "of 24; per column:",
    pinned.sum(axis=0),
)

assert (wrong >= b_2 - 1e-12).all()  # never below the bias
assert np.array_equal(pinned, ffn_out <= b_2)  # clipped exactly where the correct FFN is below b_2
assert (ffn_out < 0).sum() == 7 and (wrong < 0).sum() == 0 and pinned.sum() == 10
assert pinned[ffn_out < 0].all()  # every negative entry is among the clipped ones
assert round(ffn_out[4, 0], 3) == -0.745 and pinned[:, 2].sum() == 4 and b_2[2] == 0.2

# %% [markdown]
# Wherever the correct FFN goes below $b_2$ — 10 of the 24 entries, including all 7 negative ones such as $-0.745$
# for token 4, column 0 — the outer ReLU clips the $W_2$ part to $0$ and only $b_2$ is left. In column 2 the article's
# FFN outputs exactly $b_2 = 0.2$ for 4 tokens out of 6: whatever the input, that coordinate can only go up. The fix is
# to delete the outer ReLU — which is exactly what `lessons_lib.feed_forward` and `FeedForward` do.

# %% [markdown]
# ## 3 · The same numbers three more ways: Keras
#
# An independent check: load the thread's weights into `lessons_lib.FeedForward` (a Keras layer; `thread.load_into`
# copies them in) and into a plain `keras.Sequential` of two `Dense` layers, which is all an FFN is. Keras computes
# in float32, so we allow $10^{-5}$.

# %%
ffn_layer = thread.load_into(FeedForward(d_model=4, d_ff=16, activation="relu"))

mlp = keras.Sequential(
    [keras.Input((4,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(4)]
)
mlp.set_weights([W_1, b_1, W_2, b_2])

out_ffn_layer = ffn_layer(h1[None].astype("float32")).numpy()[0]  # [batch=1, T, d] -> [T, d]
out_mlp = mlp(h1.astype("float32")).numpy()

for name, out in (
    ("lessons_lib.FeedForward", out_ffn_layer),
    ("keras.Sequential(Dense, Dense)", out_mlp),
):
    diff = np.abs(out - ffn_out).max()
    print(f"{name:32s} max |diff| vs NumPy: {'<= 1e-5' if diff <= 1e-5 else diff}")
    assert diff <= 1e-5

# %% [markdown]
# The library's Keras layer, `FeedForward.call`, is one line of arithmetic: `self.w1` is a `Dense` layer with the
# activation built in, $\mathrm{act}(x W_1 + b_1)$, and `self.w2` a `Dense` layer without one, $(\cdot)\,W_2 + b_2$
# (the dropout acts only in training):

# %%
show_source(FeedForward.call)

# %% [markdown]
# And once more on a random batch, with GELU (the library's default activation), to make sure nothing in the check
# depends on the thread's particular numbers:

# %%
rng = np.random.default_rng(0)
xb = rng.normal(size=(2, 5, 8)).astype("float32")
ffn_gelu = FeedForward(d_model=8, d_ff=32)  # activation="gelu" (exact GELU)
yb = ffn_gelu(xb).numpy()
k1, c1 = ffn_gelu.w1.kernel.numpy(), ffn_gelu.w1.bias.numpy()
k2, c2 = ffn_gelu.w2.kernel.numpy(), ffn_gelu.w2.bias.numpy()
diff = np.abs(yb - feed_forward(xb.astype("float64"), k1, c1, k2, c2, activation="gelu")).max()
print("GELU FeedForward vs NumPy feed_forward, max |diff| <= 1e-5:", bool(diff <= 1e-5))
assert diff <= 1e-5

# %% [markdown]
# ## 4 · ReLU and GELU
#
# **ReLU** (Nair & Hinton, 2010): $\mathrm{ReLU}(z) = \max(0, z)$, derivative $1$ for $z>0$ and $0$ for $z<0$
# (frameworks use $0$ at $z=0$). Cheap, but a unit whose input is negative passes no gradient at all.
#
# **GELU** (Hendrycks & Gimpel, 2016) weights the input by the probability that a standard normal variable is
# below it:
#
# $$
# \mathrm{GELU}(z) = z\,\Phi(z) = \frac z2\left(1 + \operatorname{erf}\frac{z}{\sqrt 2}\right),
# \qquad
# \mathrm{GELU}'(z) = \Phi(z) + z\,\varphi(z),\quad \varphi(z) = \frac{e^{-z^2/2}}{\sqrt{2\pi}} .
# $$
#
# It is smooth, close to ReLU for large $|z|$, and slightly negative for negative $z$ (minimum about $-0.17$ at
# $z \approx -0.75$, computed below), so small negative inputs still pass a gradient. The same paper gives a
# **tanh approximation**, which avoids `erf`:
#
# $$
# \mathrm{GELU}_\text{tanh}(z) = \frac z2\left(1 + \tanh u\right),\quad u = \sqrt{2/\pi}\,\left(z + 0.044715\,z^3\right),
# \qquad
# \mathrm{GELU}_\text{tanh}'(z) = \frac{1 + \tanh u}{2} + \frac z2\,(1 - \tanh^2 u)\,\sqrt{2/\pi}\,(1 + 3\cdot 0.044715\,z^2).
# $$
#
# Which one did the famous models use? Their code says:
#
# * **GPT-2** uses the tanh form: `gelu` in `src/model.py` of
#   [openai/gpt-2](https://github.com/openai/gpt-2/blob/master/src/model.py) (from its first commit, February 2019) is
#   `0.5*x*(1+tf.tanh(np.sqrt(2/np.pi)*(x+0.044715*tf.pow(x, 3))))`.
# * **BERT**'s code first used the **exact** (erf) GELU and switched to the tanh approximation later: in
#   [google-research/bert](https://github.com/google-research/bert/blob/master/modeling.py), `gelu` in `modeling.py`
#   was `cdf = 0.5 * (1.0 + tf.erf(input_tensor / tf.sqrt(2.0)))` in the initial release (October 2018), and the
#   commit "Adding TF Hub support" (February 2019) replaced it with
#   `cdf = 0.5 * (1.0 + tf.tanh((np.sqrt(2 / np.pi) * (x + 0.044715 * tf.pow(x, 3)))))`.
#
# The next cell runs those three lines, transcribed to NumPy, and checks which GELU each one is. Then we code the
# derivatives from the formulas above and check them against TensorFlow's automatic differentiation of
# `keras.activations.gelu`.

# %%
zs = np.linspace(-4, 4, 801)
erf_np = np.vectorize(erf)
gpt2_gelu = 0.5 * zs * (1 + np.tanh(np.sqrt(2 / np.pi) * (zs + 0.044715 * zs**3)))
bert_2018_gelu = zs * (0.5 * (1.0 + erf_np(zs / np.sqrt(2.0))))
bert_2019_gelu = zs * (0.5 * (1.0 + np.tanh(np.sqrt(2 / np.pi) * (zs + 0.044715 * zs**3))))
for name, values in (
    ("GPT-2 (2019)", gpt2_gelu),
    ("BERT, first release (2018)", bert_2018_gelu),
    ("BERT, after Feb 2019", bert_2019_gelu),
):
    exact = np.allclose(values, gelu(zs), atol=1e-12)
    tanh = np.allclose(values, gelu(zs, approximate=True), atol=1e-12)
    print(f"{name:27s} exact GELU: {exact!s:5}  tanh approximation: {tanh}")
assert np.allclose(gpt2_gelu, gelu(zs, approximate=True), atol=1e-12)
assert np.allclose(bert_2018_gelu, gelu(zs), atol=1e-12)
assert np.allclose(bert_2019_gelu, gelu(zs, approximate=True), atol=1e-12)
assert not np.allclose(bert_2018_gelu, bert_2019_gelu, atol=1e-4)  # the switch changed the numbers

# %%
phi = np.exp(-(zs**2) / 2) / np.sqrt(2 * np.pi)
Phi = 0.5 * (1 + erf_np(zs / np.sqrt(2)))
u = np.sqrt(2 / np.pi) * (zs + 0.044715 * zs**3)

d_relu = (zs > 0).astype(float)
d_gelu = Phi + zs * phi
d_gelu_tanh = 0.5 * (1 + np.tanh(u)) + 0.5 * zs * (1 - np.tanh(u) ** 2) * np.sqrt(2 / np.pi) * (
    1 + 3 * 0.044715 * zs**2
)

# TensorFlow's autodiff of Keras' own GELU, exact and approximate
z_tf = tf.constant(zs)
with tf.GradientTape(persistent=True) as tape:
    tape.watch(z_tf)
    g_exact = keras.activations.gelu(z_tf, approximate=False)
    g_approx = keras.activations.gelu(z_tf, approximate=True)
assert np.allclose(g_exact.numpy(), gelu(zs), atol=1e-6)
assert np.allclose(g_approx.numpy(), gelu(zs, approximate=True), atol=1e-6)
assert np.allclose(tape.gradient(g_exact, z_tf).numpy(), d_gelu, atol=1e-6)
assert np.allclose(tape.gradient(g_approx, z_tf).numpy(), d_gelu_tanh, atol=1e-6)
print(
    "lessons_lib.gelu and our derivative formulas match keras.activations.gelu + tf.GradientTape ✓"
)

gap = np.abs(gelu(zs) - gelu(zs, approximate=True))
print(f"max |GELU - GELU_tanh| on [-4, 4]: {gap.max():.5f} at z = {zs[gap.argmax()]:.2f}")
print(f"min of GELU: {gelu(zs).min():.3f} at z = {zs[gelu(zs).argmin()]:.2f}")
crossing = zs[np.flatnonzero(np.diff(np.sign(d_gelu)))[0] + 1]  # where GELU' changes sign
print(
    f"max of GELU': {d_gelu.max():.3f} at z = {zs[d_gelu.argmax()]:.2f}; GELU' < 0 for z < {crossing:.2f}"
)
assert gap.max() < 5e-4
assert round(gelu(zs).min(), 2) == -0.17 and round(zs[gelu(zs).argmin()], 2) == -0.75
assert round(d_gelu.max(), 2) == 1.13 and round(zs[d_gelu.argmax()], 1) == 1.4
assert round(crossing, 2) == -0.75 and (d_gelu[zs < crossing] < 0).all()

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
axes[0].plot(zs, relu(zs), label="ReLU", lw=2)
axes[0].plot(zs, gelu(zs), label="GELU (exact)", lw=2)
axes[0].plot(zs, gelu(zs, approximate=True), "--", label="GELU (tanh approx.)", lw=1.5)
axes[0].set_title("activation")
axes[1].plot(zs, d_relu, label="ReLU'", lw=2)
axes[1].plot(zs, d_gelu, label="GELU' (exact)", lw=2)
axes[1].plot(zs, d_gelu_tanh, "--", label="GELU' (tanh approx.)", lw=1.5)
axes[1].set_title("derivative")
for ax in axes:
    ax.axhline(0, color="gray", lw=0.5)
    ax.axvline(0, color="gray", lw=0.5)
    ax.set_xlabel("z")
    ax.legend()
    ax.grid(alpha=0.3)
plt.tight_layout()
plt.show()

# %% [markdown]
# On this scale the two GELU curves cannot be told apart (they differ by less than $5\cdot 10^{-4}$, printed above); a
# model trained with one should still be run with the same one (BERT's switch changed its GELU by up to that much), but
# the choice barely matters. Note how GELU's derivative overshoots
# 1 a little (up to about 1.13 near $z \approx 1.4$) and dips below 0 left of $-0.75$ — GELU is not monotonic.
#
# For the thread we keep ReLU, as in the original paper. With GELU the same `h1` gives slightly different numbers:

# %%
print("ffn_out with GELU instead of ReLU:")
print(np.round(feed_forward(h1, W_1, b_1, W_2, b_2, activation="gelu"), 3))

# %% [markdown]
# ## 5 · Position-wise: one MLP, applied to every token separately
#
# "Position-wise" (Vaswani et al., 2017, §3.3) means the FFN treats the $T$ rows of $X$ as $T$ independent inputs,
# with the **same** weights for all of them. Row $t$ of the output depends on row $t$ of the input and on nothing
# else — not on other tokens, not on $t$ itself. (The paper's other description, "two convolutions with kernel size
# 1", says the same.) Two consequences we can test:
#
# 1. applying the FFN to each row separately and stacking the results gives the same matrix as applying it to $X$;
# 2. permuting the tokens permutes the outputs in the same way (the FFN is *permutation-equivariant*).

# %%
row_by_row = np.stack([feed_forward(h1[t : t + 1], W_1, b_1, W_2, b_2)[0] for t in range(len(h1))])
print("row by row == all at once:", np.allclose(row_by_row, ffn_out))

perm = np.array([5, 2, 0, 4, 1, 3])
permuted_out = feed_forward(h1[perm], W_1, b_1, W_2, b_2)
print("FFN(h1[perm]) == FFN(h1)[perm]:", np.allclose(permuted_out, ffn_out[perm]))

assert np.allclose(row_by_row, ffn_out) and np.allclose(permuted_out, ffn_out[perm])

# %% [markdown]
# The word *"to"* appears at positions 0 and 4 and *"be"* at 1 and 5, yet their FFN outputs differ. That is not the
# FFN's doing: their inputs `h1[0]` and `h1[4]` already differ, because positional encoding (lesson 03) and attention
# (lessons 04–05) mixed in where each token is and what came before it. Give the FFN two identical rows and it
# returns two identical rows:

# %%
print("h1[0] vs h1[4]:", np.round(h1[0], 3), np.round(h1[4], 3))
twins = feed_forward(np.stack([h1[0], h1[0]]), W_1, b_1, W_2, b_2)
assert np.array_equal(twins[0], twins[1])
print("FFN of two copies of h1[0]:\n", np.round(twins, 3))

# %% [markdown]
# This division of labour is the heart of the Transformer block: **attention moves information between tokens, the FFN
# transforms each token's vector**. It is also why the FFN is so cheap to parallelize: all $T$ tokens (and all
# sequences of a batch) are one big matrix product.

# %% [markdown]
# ## 6 · The 4× expansion and the FFN's share of the parameters
#
# With $d_\text{ff} = 4d$ (Vaswani et al. used $d = 512$, $d_\text{ff} = 2048$; GPT-2 small uses $768$ and $3072$):
#
# | sublayer | weight matrices | biases |
# |---|---|---|
# | attention: $W_Q, W_K, W_V, W_O$ | $4 \cdot d^2$ | $4d$ |
# | FFN: $W_1, W_2$ | $d \cdot 4d + 4d \cdot d = 8 d^2$ | $4d + d$ |
#
# so the FFN holds $8d^2 / (4d^2 + 8d^2) = 2/3$ of a block's matrix parameters, whatever $d$ is. (The two LayerNorms
# add $4d$ more, negligible for large $d$.) Let us count for the thread and for GPT-2 small, and let Keras count
# too.


# %%
def counts(d, d_ff, num_heads):
    ffn = FeedForward(d, d_ff)
    ffn.build((None, d))
    attn = MultiHeadAttention(d, num_heads)
    attn.build((None, None, d))
    block = TransformerBlock(d, num_heads, d_ff)
    block.build((None, None, d))
    return ffn.count_params(), attn.count_params(), block.count_params()


for name, d, d_ff, heads in (("thread", 4, 16, 2), ("GPT-2 small", 768, 3072, 12)):
    n_ffn, n_attn, n_block = counts(d, d_ff, heads)
    assert n_ffn == 2 * d * d_ff + d_ff + d and n_attn == 4 * d * d + 4 * d
    assert n_block == block_param_count(d, d_ff) == n_ffn + n_attn + 4 * d
    matrix_share = (2 * d * d_ff) / (2 * d * d_ff + 4 * d * d)
    print(
        f"{name:12s} d={d:4d} d_ff={d_ff:5d}: FFN {n_ffn:>10,}  attention {n_attn:>10,}  block {n_block:>10,}"
    )
    print(
        f"{'':12s} FFN share: {matrix_share:.4f} of the weight matrices, {n_ffn / n_block:.4f} of all block parameters"
    )
    assert np.isclose(matrix_share, 2 / 3)

# %% [markdown]
# For the whole of GPT-2 small (12 blocks, vocabulary 50,257, 1,024 learned positions, tied embeddings) the library's
# `gpt_param_count` gives the well-known 124.4 M parameters (Radford et al., 2019). The FFNs alone are almost half of
# them; most of the rest is the embedding table:

# %%
total = gpt_param_count(vocab_size=50257, max_len=1024, d_model=768, num_layers=12)
ffn_total = 12 * (2 * 768 * 3072 + 3072 + 768)
embed_total = 50257 * 768 + 1024 * 768
print(
    f"GPT-2 small: {total:,} parameters; FFNs {ffn_total:,} ({ffn_total / total:.1%}), "
    f"embeddings {embed_total:,} ({embed_total / total:.1%})"
)
assert total == 124_439_808
assert round(100 * ffn_total / total, 1) == 45.5 and embed_total > (total - ffn_total) / 2

# %% [markdown]
# ## Exercises
#
# ### Exercise 1 · An FFN with the tanh-approximate GELU
#
# Write `ffn_gelu_tanh(x, w1, b1, w2, b2)` for inputs `x` of shape `[..., d_model]`, using the tanh approximation of
# GELU from section 4, **without** `lessons_lib` (NumPy only). It is checked against
# `lessons_lib.feed_forward(..., activation="gelu_tanh")` on the thread and on a random batch.


# %%
def ffn_gelu_tanh(x, w1, b1, w2, b2):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
def reference_ffn_gelu_tanh(x, w1, b1, w2, b2):
    return feed_forward(x, w1, b1, w2, b2, activation="gelu_tanh")


LIBRARY_FFN = ("lessons_lib", "feed_forward", "gelu", "activation_fn", "FeedForward")

ex_rng = np.random.default_rng(1)
ex1_inputs = [
    (h1, W_1, b_1, W_2, b_2),
    (
        ex_rng.normal(size=(2, 3, 5)),
        ex_rng.normal(size=(5, 20)),
        ex_rng.normal(size=20),
        ex_rng.normal(size=(20, 5)),
        ex_rng.normal(size=5),
    ),
]
check(
    ffn_gelu_tanh,
    reference_ffn_gelu_tanh,
    inputs=ex1_inputs,
    hint=(
        "Expand with W_1 and b_1, apply the tanh form of GELU element by element, project back with W_2 and b_2; "
        "nothing is applied after W_2.",
        "z = x @ w1 + b1; hidden = 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3))); "
        "return hidden @ w2 + b2",
    ),
    forbid=LIBRARY_FFN,
)


# %% tags=["solution"]
def ffn_gelu_tanh(x, w1, b1, w2, b2):
    z = x @ w1 + b1
    hidden = 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3)))
    return hidden @ w2 + b2


assert check(ffn_gelu_tanh, reference_ffn_gelu_tanh, inputs=ex1_inputs, forbid=LIBRARY_FFN)


# the check refuses the library's own FFN, which the exercise rules out
def ffn_gelu_tanh_from_library(x, w1, b1, w2, b2):
    return feed_forward(x, w1, b1, w2, b2, activation="gelu_tanh")


with contextlib.redirect_stdout(io.StringIO()) as refused:
    verdict = check(
        ffn_gelu_tanh_from_library, reference_ffn_gelu_tanh, inputs=ex1_inputs, forbid=LIBRARY_FFN
    )
assert verdict is False and "the exercise asks you not to use" in refused.getvalue()

# %% [markdown]
# ### Exercise 2 · Count an FFN's parameters
#
# Write `ffn_param_count(d_model, d_ff, use_bias)` returning the number of trainable numbers in an FFN (both weight
# matrices, plus both bias vectors when `use_bias` is true). It is checked against Keras' own count for
# `FeedForward(d_model, d_ff, use_bias=use_bias)`. Then use it to answer: what fraction of a block's weight matrices
# would the FFN hold with a smaller expansion, $d_\text{ff} = 2d$ (take $d = 768$)?


# %%
def ffn_param_count(d_model, d_ff, use_bias=True):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
def reference_ffn_param_count(d_model, d_ff, use_bias=True):
    layer = FeedForward(d_model, d_ff, use_bias=use_bias)
    layer.build((None, d_model))
    return layer.count_params()


check(
    ffn_param_count,
    reference_ffn_param_count,
    inputs=[(4, 16, True), (768, 3072, True), (512, 2048, False), (10, 7, True)],
    hint=(
        "Count the entries of each weight matrix and, only when use_bias is true, of each bias vector.",
        "W_1 is d_model × d_ff, W_2 is d_ff × d_model; b_1 has d_ff numbers and b_2 has d_model",
    ),
)


# %% tags=["solution"]
def ffn_param_count(d_model, d_ff, use_bias=True):
    return 2 * d_model * d_ff + ((d_ff + d_model) if use_bias else 0)


check(
    ffn_param_count,
    reference_ffn_param_count,
    inputs=[(4, 16, True), (768, 3072, True), (512, 2048, False), (10, 7, True)],
)
share = ffn_param_count(768, 2 * 768, use_bias=False) / (
    ffn_param_count(768, 2 * 768, use_bias=False) + 4 * 768**2
)
print(
    f"d=768, d_ff=2d: the FFN holds {share:.3f} of the block's weight matrices (8d²·(2/4) = 4d², as much as attention)"
)

# %% [markdown]
# ## Summary
#
# * The FFN is $\mathrm{FFN}(x) = W_2\,\mathrm{act}(W_1 x + b_1) + b_2$ — in row form
#   $\mathrm{act}(X W_1 + b_1) W_2 + b_2$ — with **no** activation after $W_2$. The source article's outer ReLU would
#   keep every output $\ge b_2$: on the thread it clipped 10 of 24 entries, all 7 negative ones among them.
# * ReLU (original Transformer) is $\max(0,z)$; GELU $= z\,\Phi(z)$ (BERT, GPT-2, most LLMs) is smooth and lets small
#   negative inputs through; its tanh approximation differs from it by less than $5 \cdot 10^{-4}$. GPT-2's code uses
#   the tanh form; BERT's code first used the exact (erf) GELU and switched to the tanh form in February 2019.
# * Position-wise: the same MLP on every token, no mixing between tokens. Row by row equals all at once, and
#   permuting tokens permutes the outputs. Mixing is attention's job.
# * With $d_\text{ff} = 4d$ the FFN has $8d^2$ weights against attention's $4d^2$: **2/3 of a block's matrices**, and
#   45.5 % of all of GPT-2 small's parameters.
# * The thread: `h1` → `ffn_hidden` (ReLU, 6×16) → `ffn_out` (6×4), checked against `lessons_lib.feed_forward`,
#   `lessons_lib.FeedForward` and a `keras.Sequential` of two `Dense` layers.
#
# **Next:** [07 · Residual connections and LayerNorm](07_residual_layernorm.ipynb) derives where `h1` came from — the
# residual connection and LayerNorm — and finishes the block: `residual_2 = h1 + ffn_out`,
# `block_out = LayerNorm(residual_2)`.
#
# **References.** Vaswani et al. (2017), *Attention Is All You Need*, §3.3. Hendrycks & Gimpel (2016), *Gaussian
# Error Linear Units (GELUs)*. Nair & Hinton (2010), *Rectified Linear Units Improve Restricted Boltzmann Machines*.
# Radford et al. (2019), *Language Models are Unsupervised Multitask Learners* (GPT-2). Geva et al. (2021),
# *Transformer Feed-Forward Layers Are Key-Value Memories*.
