# %% [markdown]
# # 07 · Residual connections and LayerNorm
#
# Lessons 04–06 built the two sublayers of a Transformer block: multi-head attention and the feed-forward network.
# What turns them into a block that can be stacked dozens of times is two small pieces of glue around each sublayer:
#
# * a **residual connection** (He et al., 2016): the sublayer's output is *added* to its input, $x + F(x)$;
# * **layer normalization** (Ba, Kiros & Hinton, 2016): every token vector is rescaled to mean 0 and variance 1.
#
# The source article says they are there "to prevent vanishing and exploding gradients" (section 3.2). That is right,
# and in this lesson we *measure* it.
#
# **In this lesson you will**
#
# 1. derive LayerNorm and its gradient, and check both against Keras / TensorFlow and against finite differences;
# 2. finish the thread's block by hand: `residual_1 → h1 → residual_2 → block_out`;
# 3. watch a 50-layer stack without the glue lose (or blow up) its gradients, and keep them with it;
# 4. compare **post-norm** (the original paper, and the thread) with **pre-norm** (GPT-2, and `lessons_lib`'s default),
#    and check that `TransformerBlock` computes exactly the formulas of both.

# %% tags=["nbval-ignore-output"]
import lessons_lib

info = lessons_lib.setup(seed=0)

# %%
import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from lessons_lib import TransformerBlock, causal_mask, feed_forward, layer_norm, layer_norm_backward
from lessons_lib import scaled_dot_product_attention, thread
from lessons_lib.checks import check

np.set_printoptions(precision=3, suppress=True, linewidth=120)

# %% [markdown]
# ## 1 · Residual connections
#
# A residual sublayer computes $y = x + F(x)$ instead of $y = F(x)$: the sublayer only has to learn a *correction*
# to its input. Its Jacobian is
#
# $$
# \frac{\partial y}{\partial x} = I + \frac{\partial F}{\partial x}.
# $$
#
# Through $L$ stacked sublayers the gradient is multiplied by $\prod_l (I + J_l)$. Expanding the product, one term is
# the identity itself: there is always a direct path from the loss to every layer, however deep. Without the residual
# the product is $\prod_l J_l$, and a product of 50 matrices whose typical gain is a little below (or above) 1 shrinks
# (or grows) geometrically: the **vanishing** (or **exploding**) gradient.
#
# Residuals also keep the *forward* signal alive, but they have a cost: each layer *adds* to the vector, so with
# nothing to stop it the vector's size grows from layer to layer. That is one of the jobs of LayerNorm.
#
# ## 2 · Layer normalization
#
# LayerNorm works on **one token vector at a time**, across its $d$ features (not across the batch, unlike BatchNorm;
# so it behaves the same in training and inference and for any batch size or sequence length):
#
# $$
# \mu = \frac1d\sum_{j=1}^d x_j,\qquad
# \sigma^2 = \frac1d\sum_{j=1}^d (x_j-\mu)^2,\qquad
# \hat x_j = \frac{x_j - \mu}{\sqrt{\sigma^2 + \epsilon}},\qquad
# y_j = \gamma_j\,\hat x_j + \beta_j .
# $$
#
# * $\hat x$ has mean 0 and variance $\sigma^2/(\sigma^2+\epsilon) \approx 1$, whatever the scale of $x$;
# * $\epsilon$ (PyTorch and `lessons_lib` use $10^{-5}$; Keras defaults to $10^{-3}$!) only prevents a division by zero
#   for a (nearly) constant vector;
# * the learned $\gamma$ (gain, initialised to 1) and $\beta$ (bias, initialised to 0) let the model undo the
#   normalization where it helps.
#
# Two consequences worth remembering: LayerNorm is invariant to shifting and rescaling its input,
# $\mathrm{LN}(a x + b\mathbf 1) = \mathrm{LN}(x)$ for $a > 0$ (up to $\epsilon$), and every output vector (with
# $\gamma = 1, \beta = 0$) lies on a sphere of radius $\sqrt d$ in the plane of zero-mean vectors.

# %%
rng = np.random.default_rng(0)
v = rng.normal(size=4)
print("x             :", np.round(v, 3))
print("LN(x)         :", np.round(layer_norm(v), 3))
print("LN(100 x + 7) :", np.round(layer_norm(100 * v + 7), 3))
print(
    "mean, variance, norm of LN(x):",
    np.round(layer_norm(v).mean(), 6) + 0.0,
    np.round(layer_norm(v).var(), 4),
    np.round(np.linalg.norm(layer_norm(v)), 4),
    "(sqrt(4) = 2)",
)
assert np.allclose(layer_norm(100 * v + 7), layer_norm(v), atol=1e-4)

# %% [markdown]
# ### The gradient
#
# For one token let $\sigma_\epsilon = \sqrt{\sigma^2 + \epsilon}$, and write $g = \gamma \odot \frac{\partial L}{\partial y}$
# for the gradient that reaches $\hat x$. We need $\partial \hat x_i / \partial x_j$. From the definitions,
#
# $$
# \frac{\partial \mu}{\partial x_j} = \frac1d,\qquad
# \frac{\partial \sigma^2}{\partial x_j} = \frac2d\sum_i (x_i-\mu)\Big(\delta_{ij} - \frac1d\Big)
# = \frac2d\,(x_j-\mu) - \frac{2}{d^2}\sum_i (x_i - \mu) = \frac2d\,(x_j-\mu)
# $$
#
# (the deviations $x_i - \mu$ sum to zero), so
# $\partial \sigma_\epsilon / \partial x_j = (x_j - \mu)/(d\,\sigma_\epsilon) = \hat x_j / d$. Then, with the quotient rule,
#
# $$
# \frac{\partial \hat x_i}{\partial x_j}
# = \frac{\delta_{ij} - \tfrac1d}{\sigma_\epsilon} - \frac{x_i - \mu}{\sigma_\epsilon^2}\,\frac{\hat x_j}{d}
# = \frac{1}{\sigma_\epsilon}\Big(\delta_{ij} - \frac1d - \frac{\hat x_i \hat x_j}{d}\Big).
# $$
#
# Summing against $g_i$ gives the backward formula that `lessons_lib.layer_norm_backward` implements:
#
# $$
# \boxed{\;\frac{\partial L}{\partial x} = \frac{1}{\sigma_\epsilon}\Big(g - \overline{g} - \hat x\;\overline{g\odot\hat x}\Big)\;}
# \qquad\text{(bars are means over the } d \text{ features)},
# \qquad
# \frac{\partial L}{\partial \gamma} = \sum_\text{tokens} \frac{\partial L}{\partial y}\odot \hat x,
# \quad
# \frac{\partial L}{\partial \beta} = \sum_\text{tokens} \frac{\partial L}{\partial y}.
# $$
#
# Read it: LayerNorm's backward pass removes from the incoming gradient its mean and its component along $\hat x$
# (exactly the two directions the output cannot move in, by the invariance above), and divides by the input's scale
# $\sigma_\epsilon$. A layer whose input has grown 10× large receives 10× smaller gradients: the size of the
# activations no longer multiplies into the gradient.
#
# ### Check 1 · the forward pass against `keras.layers.LayerNormalization`
#
# Keras' default `epsilon` is `1e-3`; to compare we must pass `epsilon=1e-5`. We also give $\gamma$ and $\beta$ random
# values so that they are part of the test.

# %%
x_ln = rng.normal(size=(2, 3, 6)) * 3 + 1  # [batch, T, d]
gamma, beta = 1 + 0.5 * rng.normal(size=6), rng.normal(size=6)

keras_ln = keras.layers.LayerNormalization(epsilon=1e-5)
keras_ln.build(x_ln.shape)
keras_ln.gamma.assign(gamma)
keras_ln.beta.assign(beta)
diff = np.abs(
    keras_ln(x_ln.astype("float32")).numpy() - layer_norm(x_ln, gamma, beta, eps=1e-5)
).max()
print(
    "layer_norm vs keras.layers.LayerNormalization(epsilon=1e-5): max |diff| <= 1e-5:",
    bool(diff <= 1e-5),
)
assert diff <= 1e-5

# What epsilon does: nothing visible for a vector of normal size, a lot for a nearly constant one.
almost_constant = np.array([1.0, 1.01, 0.99, 1.0])
for eps in (1e-5, 1e-3):
    print(
        f"eps={eps:g}: LN([1, 1.01, 0.99, 1]) = {np.round(layer_norm(almost_constant, eps=eps), 3)}"
    )

# %% [markdown]
# With $\sigma^2 = 5\cdot10^{-5}$, $\epsilon = 10^{-3}$ dominates the denominator and shrinks the output about
# 4.6×: another reason to match `epsilon` when you copy weights between frameworks.
#
# ### Check 2 · the backward formula against `tf.GradientTape` and finite differences
#
# Take the loss $L = \sum G \odot \mathrm{LN}(x)$ for a fixed random $G$, so that $\partial L / \partial y = G$.
# TensorFlow differentiates Keras' LayerNorm automatically (float64 here, to compare tightly); the central difference
# $\big(L(x + h e_k) - L(x - h e_k)\big)/2h$ needs nothing but the forward pass.

# %%
G = rng.normal(size=x_ln.shape)  # dL/dy

x_var = tf.Variable(x_ln)
keras_ln64 = keras.layers.LayerNormalization(epsilon=1e-5, dtype="float64")
keras_ln64.build(x_ln.shape)
keras_ln64.gamma.assign(gamma)
keras_ln64.beta.assign(beta)
with tf.GradientTape() as tape:
    loss = tf.reduce_sum(G * keras_ln64(x_var))
grad_x_tf, grad_gamma_tf, grad_beta_tf = tape.gradient(
    loss, [x_var, keras_ln64.gamma, keras_ln64.beta]
)

grad_x = layer_norm_backward(x_ln, G, gamma, eps=1e-5)
x_hat = layer_norm(x_ln, eps=1e-5)
grad_gamma = (G * x_hat).reshape(-1, 6).sum(axis=0)
grad_beta = G.reshape(-1, 6).sum(axis=0)


def loss_np(x):
    return float((G * layer_norm(x, gamma, beta, eps=1e-5)).sum())


h = 1e-6
grad_fd = np.zeros_like(x_ln)
for k in np.ndindex(x_ln.shape):
    e = np.zeros_like(x_ln)
    e[k] = h
    grad_fd[k] = (loss_np(x_ln + e) - loss_np(x_ln - e)) / (2 * h)

d_tape = np.abs(grad_x - grad_x_tf.numpy()).max()
d_fd = np.abs(grad_x - grad_fd).max()
d_params = max(
    np.abs(grad_gamma - grad_gamma_tf.numpy()).max(), np.abs(grad_beta - grad_beta_tf.numpy()).max()
)
print(f"dL/dx   : formula vs tf.GradientTape  max |diff| < 1e-12: {d_tape < 1e-12}")
print(f"dL/dx   : formula vs finite diff.     max |diff| < 1e-7 : {d_fd < 1e-7}")
print(f"dL/dγ, dL/dβ: formula vs tf.GradientTape max |diff| < 1e-12: {d_params < 1e-12}")
assert d_tape < 1e-12 and d_fd < 1e-7 and d_params < 1e-12

print("\neach token's gradient sums to 0               :", np.allclose(grad_x.sum(axis=-1), 0))
print(
    "and is orthogonal to x_hat (up to an O(eps) term):",
    np.allclose((grad_x * x_hat).sum(axis=-1), 0, atol=1e-4),
)

# %% [markdown]
# ## 3 · The thread: finishing the block (post-norm)
#
# The thread's block is **post-norm**, as in the original paper (Vaswani et al., 2017, §3.1: "the output of each
# sub-layer is $\mathrm{LayerNorm}(x + \mathrm{Sublayer}(x))$"):
#
# $$
# \texttt{residual\_1} = x + \texttt{attn\_out},\quad
# \texttt{h1} = \mathrm{LN}_1(\texttt{residual\_1}),\quad
# \texttt{residual\_2} = \texttt{h1} + \texttt{ffn\_out},\quad
# \texttt{block\_out} = \mathrm{LN}_2(\texttt{residual\_2}).
# $$
#
# Its LayerNorms are freshly initialised ($\gamma = 1$, $\beta = 0$, $\epsilon = 10^{-5}$). We start from `x`
# (lesson 03) and `attn_out` (lesson 05).

# %%
state = thread.forward()
w = thread.weights()
x, attn_out = state["x"], state["attn_out"]
print("x (embeddings + positions)\n", np.round(x, 3))
print("attn_out (lesson 05)\n", np.round(attn_out, 3))

residual_1 = x + attn_out
print("\nresidual_1 = x + attn_out\n", np.round(residual_1, 3))
assert np.allclose(residual_1, state["residual_1"])

# %% [markdown]
# LayerNorm of the first token (*"to"*), by hand:

# %%
r0 = residual_1[0]
mu0 = r0.sum() / 4
var0 = ((r0 - mu0) ** 2).sum() / 4
h1_0 = (r0 - mu0) / np.sqrt(var0 + thread.EPS)
print("residual_1[0]       =", np.round(r0, 3))
print(f"mean μ              = ({' + '.join(f'{t:.3f}' for t in r0)}) / 4 = {mu0:.3f}")
print("deviations x - μ    =", np.round(r0 - mu0, 3))
print(
    f"variance σ²         = mean of squared deviations = {var0:.3f},  sqrt(σ² + 1e-5) = {np.sqrt(var0 + 1e-5):.3f}"
)
print("h1[0] = (x - μ) / σ =", np.round(h1_0, 3))

# %%
h1 = layer_norm(residual_1, w["gamma_1"], w["beta_1"], eps=thread.EPS)
print("h1 = LN_1(residual_1)\n", np.round(h1, 3))
print(
    "per-token mean:",
    np.round(h1.mean(axis=-1), 3) + 0.0,
    " per-token variance:",
    np.round(h1.var(axis=-1), 3),
)
assert np.allclose(h1[0], h1_0)
assert np.allclose(h1, state["h1"])
print("\nthis is exactly the h1 that lesson 06 fed into the FFN ✓")

# %% [markdown]
# Lesson 06 turned `h1` into `ffn_out`. The second residual and LayerNorm close the block:

# %%
ffn_out = state["ffn_out"]
print("ffn_out (lesson 06)\n", np.round(ffn_out, 3))
residual_2 = h1 + ffn_out
print("\nresidual_2 = h1 + ffn_out\n", np.round(residual_2, 3))
block_out = layer_norm(residual_2, w["gamma_2"], w["beta_2"], eps=thread.EPS)
print("\nblock_out = LN_2(residual_2)\n", np.round(block_out, 3))

assert np.allclose(residual_2, state["residual_2"])
assert np.allclose(block_out, state["block_out"])

# %% [markdown]
# An independent check: the thread's Keras model (`thread.build_gpt()`, lesson 08) holds the same weights in a
# `lessons_lib.TransformerBlock(norm_first=False)`. Called on `x` with the causal mask, its block must return
# `block_out`:

# %%
gpt = thread.build_gpt()
keras_block_out = gpt.blocks[0](x[None].astype("float32"), use_causal_mask=True).numpy()[0]
diff = np.abs(keras_block_out - block_out).max()
print("Keras post-norm block vs NumPy block_out: max |diff| <= 1e-5:", bool(diff <= 1e-5))
assert diff <= 1e-5

# %% [markdown]
# ## 4 · Measuring it: a 50-layer stack with and without the glue
#
# Now the claim in numbers. We stack $L = 50$ sublayers, each an FFN like lesson 06's,
# $F_l(h) = \mathrm{GELU}(h\,W_{1,l})\,W_{2,l}$ ($d = 64$, $d_\text{ff} = 256$, weights drawn with the common
# "LeCun" scale, standard deviation $1/\sqrt{\text{fan-in}}$), and wire them four ways:
#
# | variant | one layer |
# |---|---|
# | plain | $h \leftarrow F(h)$ |
# | residual only | $h \leftarrow h + F(h)$ |
# | residual + LN, **post-norm** | $h \leftarrow \mathrm{LN}(h + F(h))$ |
# | residual + LN, **pre-norm** | $h \leftarrow h + F(\mathrm{LN}(h))$ |
#
# We feed 32 random tokens, take a random linear read-out of the last layer as the loss, and record, per layer $l$:
# the size (root mean square) of the activations, the norm of the gradient $\partial L/\partial h_l$ that reaches the
# layer's input, and the norm of the gradient for its weights $\partial L/\partial W_{1,l}$ (what the optimizer sees).
# Float64, so that even $10^{-15}$ is measured faithfully.

# %% tags=["parameters"]
N_LAYERS = 50
D = 64
N_TOKENS = 32

# %%
VARIANTS = ("plain", "residual only", "post-norm", "pre-norm")


def tf_layer_norm(t, eps=1e-5):
    mu = tf.reduce_mean(t, axis=-1, keepdims=True)
    var = tf.reduce_mean((t - mu) ** 2, axis=-1, keepdims=True)
    return (t - mu) / tf.sqrt(var + eps)


def deep_stack(variant, n_layers=N_LAYERS, d=D, n_tokens=N_TOKENS, seed=0):
    """Activation RMS, |dL/dh_l| and |dL/dW1_l| for every layer of one variant (same weights for all variants)."""
    r = np.random.default_rng(seed)
    w1 = [tf.Variable(r.normal(0, 1 / np.sqrt(d), (d, 4 * d))) for _ in range(n_layers)]
    w2 = [tf.Variable(r.normal(0, 1 / np.sqrt(4 * d), (4 * d, d))) for _ in range(n_layers)]
    h = tf.constant(r.normal(size=(n_tokens, d)))
    readout = tf.constant(r.normal(size=d))

    def sub(t, l):
        return tf.nn.gelu(t @ w1[l], approximate=False) @ w2[l]

    inputs = []
    with tf.GradientTape() as tape:
        for l in range(n_layers):
            tape.watch(h)
            inputs.append(h)
            if variant == "plain":
                h = sub(h, l)
            elif variant == "residual only":
                h = h + sub(h, l)
            elif variant == "post-norm":
                h = tf_layer_norm(h + sub(h, l))
            elif variant == "pre-norm":
                h = h + sub(tf_layer_norm(h), l)
        loss = tf.reduce_mean(tf.linalg.matvec(h, readout))
    grads = tape.gradient(loss, inputs + w1)
    rms = np.array(
        [float(tf.sqrt(tf.reduce_mean(t**2))) for t in inputs[1:] + [h]]
    )  # outputs of layers 1..L
    g_h = np.array([float(tf.norm(g)) for g in grads[:n_layers]])
    g_w = np.array([float(tf.norm(g)) for g in grads[n_layers:]])
    return rms, g_h, g_w


results = {v: deep_stack(v) for v in VARIANTS}
print(
    f"{'variant':14s} {'act RMS L1':>11s} {'act RMS L' + str(N_LAYERS):>11s} {'|dL/dh| L1':>11s}"
    f" {'|dL/dh| L' + str(N_LAYERS):>11s} {'|dL/dW| L1':>11s} {'|dL/dW| L' + str(N_LAYERS):>11s}"
    f" {'max/min |dL/dh|':>16s}"
)
for v, (rms, g_h, g_w) in results.items():
    print(
        f"{v:14s} {rms[0]:11.1e} {rms[-1]:11.1e} {g_h[0]:11.1e} {g_h[-1]:11.1e} {g_w[0]:11.1e} {g_w[-1]:11.1e}"
        f" {g_h.max() / g_h.min():16.1e}"
    )

# %%
layers = np.arange(1, N_LAYERS + 1)
fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
titles = (
    "activation size (RMS of layer output)",
    "gradient reaching the layer, |dL/dh_l|",
    "gradient of the layer's weights, |dL/dW_l|",
)
for ax, title, k in zip(axes, titles, range(3)):
    for v in VARIANTS:
        ax.semilogy(layers, results[v][k], label=v, lw=2)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("layer")
    ax.grid(alpha=0.3, which="both")
axes[0].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# What the numbers say:
#
# * **plain**: each layer shrinks its input by about half (GELU halves small inputs, and the weights do not make up for
#   it), so after 50 layers the activations are $\sim 10^{-15}$, and the gradient reaching the first layer is
#   $10^{-15}$ of the one at the top: it has **vanished**. No optimizer can train the early layers with that.
# * **residual only**: the identity path keeps everything alive, but each layer *adds* a vector to the stream, so the
#   activations grow by a constant factor per layer to $\sim 10^4$, and the gradients grow with them as they flow back:
#   they **explode**.
# * **post-norm**: LayerNorm resets every layer's output to RMS 1; the gradient reaching a layer changes by only about a
#   factor of 3 over the 50 layers. The weight gradients are somewhat larger near the output than near the input — Xiong et al. (2020)
#   found exactly this for post-norm Transformers and traced to it the need for a learning-rate warm-up.
# * **pre-norm**: the stream is never normalized, so it grows, but slowly (its RMS goes from about 1 to about 5 over 50
#   layers: each layer adds a vector computed from a *normalized* input, so of bounded size, instead of one proportional
#   to the stream); the gradients stay within a small factor (about 6) everywhere, and are not larger at the top.

# %%
if N_LAYERS >= 30:  # the facts above, for the default sizes
    plain, res, post, pre = (results[v] for v in VARIANTS)
    assert plain[1][0] / plain[1][-1] < 1e-10 and plain[0][-1] < 1e-10  # vanishing
    assert res[1][0] / res[1][-1] > 1e3 and res[0][-1] > 1e3  # exploding
    for rms, g_h, g_w in (post, pre):  # well behaved
        assert g_h.max() / g_h.min() < 10 and g_w.max() / g_w.min() < 10 and rms.max() < 10
    assert post[2][-1] > post[2][0] and pre[2][-1] < pre[2][0]
    print(
        "vanishing without glue, exploding with residuals alone, stable with residual + LayerNorm ✓"
    )

# %% [markdown]
# ## 5 · Post-norm or pre-norm?
#
# $$
# \text{post-norm (Vaswani et al., 2017):}\quad h = \mathrm{LN}_1\big(x + \mathrm{MHA}(x)\big),\qquad y = \mathrm{LN}_2\big(h + \mathrm{FFN}(h)\big)
# $$
# $$
# \text{pre-norm (GPT-2; Xiong et al., 2020):}\quad h = x + \mathrm{MHA}\big(\mathrm{LN}_1(x)\big),\qquad y = h + \mathrm{FFN}\big(\mathrm{LN}_2(h)\big)
# $$
#
# In **post-norm** every path from the output back to the input goes through a LayerNorm per sublayer; in **pre-norm**
# the additions form a clean **residual stream** $x \to h \to y$ on which nothing but sums happen, and each sublayer
# reads a normalized copy of it. Xiong et al. (2020) showed that at initialization post-norm's gradients near the output
# are large, which is why the original Transformer needed a carefully tuned learning-rate warm-up, while pre-norm
# trains stably without one. GPT-2 moved LayerNorm to the input of each sublayer and added one final LayerNorm after the
# last block (Radford et al., 2019) — needed because the pre-norm stream itself is never normalized (lesson 08 applies
# it). Most LLMs since have been pre-norm, so **`lessons_lib.TransformerBlock` defaults to pre-norm
# (`norm_first=True`)**; the thread uses `norm_first=False` to follow the paper and the article.
#
# ### Does `TransformerBlock` compute exactly these formulas?
#
# We build both variants with random weights — *including* random LayerNorm $\gamma, \beta$ and random biases, so that
# nothing hides behind a 1 or a 0 — and recompute each from NumPy pieces of `lessons_lib` (`layer_norm`,
# `scaled_dot_product_attention`, `feed_forward`) using the block's own weights.


# %%
def numpy_weights(layer):
    return {v.path.split("/", 1)[1]: np.asarray(v.numpy(), dtype=np.float64) for v in layer.weights}


def mha_numpy(x, p, num_heads):
    """Multi-head self-attention with a causal mask, x [batch, T, d], weights p from a TransformerBlock."""
    b, t, d = x.shape
    split = lambda m: m.reshape(b, t, num_heads, d // num_heads).transpose(
        0, 2, 1, 3
    )  # [b, heads, T, d_k]
    q, k, v = (split(x @ p[f"attn/{n}/kernel"] + p[f"attn/{n}/bias"]) for n in ("wq", "wk", "wv"))
    heads, _ = scaled_dot_product_attention(q, k, v, mask=causal_mask(t))
    concat = heads.transpose(0, 2, 1, 3).reshape(b, t, d)
    return concat @ p["attn/wo/kernel"] + p["attn/wo/bias"]


def block_numpy(x, block):
    p = numpy_weights(block)
    ln1 = lambda t: layer_norm(t, p["ln1/gamma"], p["ln1/beta"], eps=block.epsilon)
    ln2 = lambda t: layer_norm(t, p["ln2/gamma"], p["ln2/beta"], eps=block.epsilon)
    mha = lambda t: mha_numpy(t, p, block.num_heads)
    ffn = lambda t: feed_forward(
        t,
        p["ffn/w1/kernel"],
        p["ffn/w1/bias"],
        p["ffn/w2/kernel"],
        p["ffn/w2/bias"],
        activation=block.activation,
    )
    if block.norm_first:  # pre-norm
        h = x + mha(ln1(x))
        return h + ffn(ln2(h))
    h = ln1(x + mha(x))  # post-norm
    return ln2(h + ffn(h))


x_rand = np.random.default_rng(1).normal(size=(2, 5, 8))
outputs = {}
for norm_first in (True, False):
    block = TransformerBlock(d_model=8, num_heads=2, d_ff=32, norm_first=norm_first)  # GELU
    block.build((None, None, 8))
    r = np.random.default_rng(2)
    for var in block.weights:
        base = 1.0 if var.path.endswith("gamma") else 0.0
        var.assign(base + 0.4 * r.normal(size=var.shape))
    y_keras = block(x_rand.astype("float32"), use_causal_mask=True).numpy()
    y_numpy = block_numpy(x_rand, block)
    diff = np.abs(y_keras - y_numpy).max()
    name = "pre-norm " if norm_first else "post-norm"
    print(f"{name} TransformerBlock vs NumPy formula: max |diff| <= 1e-5: {bool(diff <= 1e-5)}")
    assert diff <= 1e-5
    outputs[name.strip()] = y_numpy

print(
    "the two variants give different outputs:",
    not np.allclose(outputs["pre-norm"], outputs["post-norm"]),
)

# %% [markdown]
# A visible difference between the two: a post-norm block's output is a LayerNorm output (with $\gamma=1, \beta=0$ every
# token would have mean 0, variance 1), while a pre-norm block's output is the raw residual stream, whose size keeps
# growing from block to block — hence the final LayerNorm of GPT-2-style models. On the thread:

# %%
pre_thread = TransformerBlock(4, 2, 16, norm_first=True, activation="relu")
pre_thread.build((None, None, 4))


def load_thread_weights(block):
    """Copy the thread's weights into a TransformerBlock(4, 2, 16, activation='relu') (attention has no biases)."""
    tw = thread.weights()
    for dense, name in (
        (block.attn.wq, "W_Q"),
        (block.attn.wk, "W_K"),
        (block.attn.wv, "W_V"),
        (block.attn.wo, "W_O"),
    ):
        dense.kernel.assign(tw[name])
        dense.bias.assign(np.zeros(4))
    block.ffn.w1.kernel.assign(tw["W_1"])
    block.ffn.w1.bias.assign(tw["b_1"])
    block.ffn.w2.kernel.assign(tw["W_2"])
    block.ffn.w2.bias.assign(tw["b_2"])
    for ln, s in ((block.ln1, "1"), (block.ln2, "2")):
        ln.gamma.assign(tw[f"gamma_{s}"])
        ln.beta.assign(tw[f"beta_{s}"])


load_thread_weights(pre_thread)
pre_out = pre_thread(x[None].astype("float32"), use_causal_mask=True).numpy()[0]
print("post-norm block_out: per-token std", np.round(block_out.std(axis=-1), 3))
print("pre-norm  output   : per-token std", np.round(pre_out.std(axis=-1), 3))

# %% [markdown]
# ## Exercises
#
# ### Exercise 1 · LayerNorm from scratch
#
# Write `my_layer_norm(x, gamma, beta, eps)` for `x` of shape `[..., d]`, normalizing over the last axis, NumPy only.
# Careful: the variance is the *biased* one (divide by $d$, not $d-1$), as in `np.var`'s default.


# %%
def my_layer_norm(x, gamma, beta, eps=1e-5):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
ex_rng = np.random.default_rng(3)
ex1_inputs = [
    (state["residual_1"], w["gamma_1"], w["beta_1"], 1e-5),
    (ex_rng.normal(size=(2, 3, 5)) * 4, ex_rng.normal(size=5), ex_rng.normal(size=5), 1e-3),
]
check(
    my_layer_norm,
    layer_norm,
    inputs=ex1_inputs,
    hint="mean and variance over axis=-1 with keepdims=True; divide by sqrt(var + eps); then gamma * ... + beta",
)


# %% tags=["solution"]
def my_layer_norm(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


assert check(my_layer_norm, layer_norm, inputs=ex1_inputs)

# %% [markdown]
# ### Exercise 2 · LayerNorm's backward pass
#
# Write `my_layer_norm_backward(x, grad_out, gamma, eps)` returning $\partial L / \partial x$ from the boxed formula of
# section 2. It is checked against `lessons_lib.layer_norm_backward` (which section 2 checked against TensorFlow and
# finite differences).


# %%
def my_layer_norm_backward(x, grad_out, gamma, eps=1e-5):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
ex2_inputs = [
    (state["residual_2"], ex_rng.normal(size=(6, 4)), w["gamma_2"], 1e-5),
    (ex_rng.normal(size=(2, 3, 5)) * 4, ex_rng.normal(size=(2, 3, 5)), ex_rng.normal(size=5), 1e-3),
]
check(
    my_layer_norm_backward,
    layer_norm_backward,
    inputs=ex2_inputs,
    hint="g = gamma * grad_out; x_hat = (x - mu) / sigma; (g - mean(g) - x_hat * mean(g * x_hat)) / sigma, "
    "means over axis=-1 with keepdims=True",
)


# %% tags=["solution"]
def my_layer_norm_backward(x, grad_out, gamma, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    sigma = np.sqrt(x.var(axis=-1, keepdims=True) + eps)
    x_hat = (x - mu) / sigma
    g = gamma * grad_out
    return (
        g - g.mean(axis=-1, keepdims=True) - x_hat * (g * x_hat).mean(axis=-1, keepdims=True)
    ) / sigma


assert check(my_layer_norm_backward, layer_norm_backward, inputs=ex2_inputs)

# %% [markdown]
# ### Exercise 3 · The thread's block, pre-norm
#
# Write `thread_pre_norm(x)` that computes the thread's block **pre-norm** in NumPy, with the thread's weights
# (`thread.weights()`: `W_Q, W_K, W_V, W_O` without biases, 2 heads, causal mask; FFN `W_1, b_1, W_2, b_2` with ReLU;
# LayerNorms `gamma_1, beta_1, gamma_2, beta_2`, $\epsilon = 10^{-5}$), for `x` of shape `[T, 4]`. You may use any
# `lessons_lib` function and `thread.split_heads` / `thread.merge_heads`. It is checked against the Keras
# `TransformerBlock(norm_first=True)` loaded with the same weights (`pre_thread` above).


# %%
def thread_pre_norm(x):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
def reference_thread_pre_norm(x):
    return pre_thread(x[None].astype("float32"), use_causal_mask=True).numpy()[0].astype("float64")


check(
    thread_pre_norm,
    reference_thread_pre_norm,
    inputs=[x, state["block_out"]],
    atol=1e-5,
    hint="h = x + attention(LN_1(x)); y = h + FFN(LN_2(h)) — the sums are NOT normalized",
)


# %% tags=["solution"]
def thread_pre_norm(x):
    tw = thread.weights()
    a = layer_norm(x, tw["gamma_1"], tw["beta_1"], eps=1e-5)
    q, k, v = (thread.split_heads(a @ tw[n]) for n in ("W_Q", "W_K", "W_V"))
    heads, _ = scaled_dot_product_attention(q, k, v, mask=causal_mask(len(x)))
    h = x + thread.merge_heads(heads) @ tw["W_O"]
    f = layer_norm(h, tw["gamma_2"], tw["beta_2"], eps=1e-5)
    return h + feed_forward(f, tw["W_1"], tw["b_1"], tw["W_2"], tw["b_2"], activation="relu")


assert check(thread_pre_norm, reference_thread_pre_norm, inputs=[x, state["block_out"]], atol=1e-5)

# %% [markdown]
# ## Summary
#
# * **Residual connection**: $y = x + F(x)$; its Jacobian $I + \partial F/\partial x$ gives gradients a direct path
#   through any depth.
# * **LayerNorm**: per token, $\gamma \odot (x-\mu)/\sqrt{\sigma^2+\epsilon} + \beta$; its gradient
#   $\frac1{\sigma_\epsilon}(g - \bar g - \hat x\,\overline{g\odot\hat x})$ removes the mean and $\hat x$ directions and
#   divides by the input's scale. Checked against Keras (with `epsilon` matched: Keras' default is $10^{-3}$),
#   `tf.GradientTape` and finite differences.
# * **Measured** on 50 layers: plain → gradients vanish ($10^{-15}$); residual only → activations and gradients
#   explode ($10^4$); residual + LayerNorm (post- or pre-norm) → everything stays within a small factor.
# * **Post-norm** $\mathrm{LN}(x + F(x))$ is the original paper's and the thread's; **pre-norm** $x + F(\mathrm{LN}(x))$
#   keeps a clean residual stream and trains without warm-up (Xiong et al., 2020): GPT-2 and `lessons_lib`'s default
#   (`norm_first=True`). `TransformerBlock` matches both formulas.
# * The thread: `residual_1 = x + attn_out` → `h1` (the FFN's input in lesson 06) → `residual_2 = h1 + ffn_out` →
#   `block_out`, all checked against `thread.forward()` and against the Keras block.
#
# **Next:** [08 · The full Transformer block, and a tiny GPT forward pass](08_transformer_block_gpt.ipynb) applies the
# final LayerNorm and the output layer (`logits = final @ Eᵀ`, tied to the embedding table), turns the logits into
# next-token probabilities, and checks the whole thread against `thread.build_gpt()`.
#
# **References.** He, Zhang, Ren & Sun (2016), *Deep Residual Learning for Image Recognition*. Ba, Kiros & Hinton
# (2016), *Layer Normalization*. Vaswani et al. (2017), *Attention Is All You Need*. Radford et al. (2019),
# *Language Models are Unsupervised Multitask Learners* (GPT-2). Xiong et al. (2020), *On Layer Normalization in the
# Transformer Architecture*.
