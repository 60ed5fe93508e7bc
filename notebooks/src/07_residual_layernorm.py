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
# 3. watch a 50-layer stack without the glue lose its signal and gradients (or blow them up), and keep them with it;
# 4. compare **post-norm** (the original paper, and the thread) with **pre-norm** (GPT-2, and `lessons_lib`'s default),
#    and check that `TransformerBlock` computes exactly the formulas of both.

# %% tags=["nbval-ignore-output"]
import lessons_lib

info = lessons_lib.setup(seed=0)

# %%
import contextlib
import io

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from lessons_lib import (
    TransformerBlock,
    block_weights,
    causal_mask,
    check,
    feed_forward,
    layer_norm,
    layer_norm_backward,
    multi_head_attention,
    show,
    show_source,
    thread,
    transformer_block,
)

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
ln_eps = {eps: layer_norm(almost_constant, eps=eps) for eps in (1e-5, 1e-3)}
for eps, out in ln_eps.items():
    print(f"eps={eps:g}: LN([1, 1.01, 0.99, 1]) = {np.round(out, 3) + 0.0}")
var_c = almost_constant.var()
shrink = np.abs(ln_eps[1e-5]).max() / np.abs(ln_eps[1e-3]).max()
print(f"σ² = {var_c:.1e}; eps=1e-3 makes the output {shrink:.2f}× smaller than eps=1e-5")
assert np.isclose(var_c, 5e-5) and np.isclose(shrink, np.sqrt((var_c + 1e-3) / (var_c + 1e-5)))
assert round(shrink, 1) == 4.2

# %% [markdown]
# With $\sigma^2 = 5\cdot10^{-5}$, $\epsilon = 10^{-3}$ dominates the denominator and shrinks the output by
# $\sqrt{(\sigma^2 + 10^{-3}) / (\sigma^2 + 10^{-5})} \approx 4.2$×, as printed: another reason to match `epsilon`
# when you copy weights between frameworks.
#
# The library's `layer_norm` is the formula above, line for line (the mean, the biased variance, then
# $\gamma \odot (x - \mu)/\sqrt{\sigma^2 + \epsilon} + \beta$); `_params` only fills in $\gamma = 1$, $\beta = 0$
# when they are not given and checks their shapes:

# %%
show_source(layer_norm)

# %% [markdown]
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
show("x (embeddings + positions)", x)
show("attn_out (lesson 05)", attn_out)

residual_1 = x + attn_out
show("residual_1 = x + attn_out", residual_1)
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
show("h1 = LN_1(residual_1)", h1)
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
show("ffn_out (lesson 06)", ffn_out)
residual_2 = h1 + ffn_out
show("residual_2 = h1 + ffn_out", residual_2)
block_out = layer_norm(residual_2, w["gamma_2"], w["beta_2"], eps=thread.EPS)
show("block_out = LN_2(residual_2)", block_out)

assert np.allclose(residual_2, state["residual_2"])
assert np.allclose(block_out, state["block_out"])

# %% [markdown]
# Two independent checks. The library's NumPy reference of a whole block, `transformer_block` (the thread's weights,
# 2 heads, post-norm, ReLU, causal mask), must give the same four intermediates; and the Keras layer
# `lessons_lib.TransformerBlock(norm_first=False)`, loaded with the thread's weights by `thread.load_into`, must return
# `block_out` when called on `x` with the causal mask:

# %%
reference = transformer_block(
    x, w, num_heads=2, norm_first=False, activation="relu", mask=causal_mask(6), epsilon=thread.EPS
)
for name, ours in (
    ("residual_1", residual_1),
    ("h1", h1),
    ("residual_2", residual_2),
    ("block_out", block_out),
):
    assert np.allclose(ours, reference[name], atol=1e-12), name
print("residual_1, h1, residual_2, block_out equal lessons_lib.transformer_block's ✓")

post_thread = thread.load_into(TransformerBlock(4, 2, 16, norm_first=False, activation="relu"))
keras_block_out = post_thread(x[None].astype("float32"), use_causal_mask=True).numpy()[0]
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
# The figures the plot shows, computed from the runs above (each line is quoted below):

# %%
plain, res, post, pre = (results[v] for v in VARIANTS)


def per_layer(rms):
    """Geometric-mean factor by which the activation RMS changes from one layer to the next."""
    return (rms[-1] / rms[0]) ** (1 / (len(rms) - 1))


def spread(g):
    return g.max() / g.min()


# plain stack: the gradient of layer l's weights is (roughly) its input times the gradient arriving at its output
inner = np.arange(
    1, N_LAYERS - 1
)  # layers with a previous layer (input) and a next layer (output gradient)
input_size, output_grad = plain[0][inner - 1], plain[1][inner + 1]
product = input_size * output_grad
print(
    f"plain        : activations ×{per_layer(plain[0]):.2f} per layer, {plain[0][-1]:.1e} at layer {N_LAYERS}"
)
print(
    f"               |dL/dh| at layer 1 is {plain[1][0] / plain[1][-1]:.1e} of the one at layer {N_LAYERS}"
)
print(
    f"               |dL/dW| between {plain[2].min():.1e} and {plain[2].max():.1e} at every layer "
    f"(a factor {spread(plain[2]):.1f} apart)"
)
print(
    f"               input RMS varies by {spread(input_size):.0e}, the gradient at the output by "
    f"{spread(output_grad):.0e}, their product only by {spread(product):.1f}"
)
print(
    f"residual only: activations ×{per_layer(res[0]):.2f} per layer, {res[0][-1]:.1e} at layer {N_LAYERS}; "
    f"|dL/dh| at layer 1 is {res[1][0] / res[1][-1]:.1e}× the one at layer {N_LAYERS}"
)
print(
    f"post-norm    : activation RMS {post[0].min():.2f}–{post[0].max():.2f}; |dL/dh| varies by {spread(post[1]):.1f}; "
    f"|dL/dW| at layer {N_LAYERS} / layer 1 = {post[2][-1] / post[2][0]:.1f}"
)
print(
    f"pre-norm     : activation RMS from {pre[0][0]:.1f} to {pre[0][-1]:.1f}; |dL/dh| varies by {spread(pre[1]):.1f}, "
    f"|dL/dW| by {spread(pre[2]):.1f}; |dL/dW| at layer {N_LAYERS} / layer 1 = {pre[2][-1] / pre[2][0]:.2f}"
)

if (N_LAYERS, D, N_TOKENS) == (50, 64, 32):  # the figures quoted below, for the default sizes
    assert (
        round(per_layer(plain[0]), 1) == 0.5 and 1e-16 < plain[0][-1] < 1e-14
    )  # the signal vanishes
    assert 1e-16 < plain[1][0] / plain[1][-1] < 1e-14  # so does dL/dh, towards the input
    assert (
        plain[2].max() < 1e-12 and spread(plain[2]) < 10
    )  # every weight gradient ~1e-14, no trend
    assert spread(input_size) > 1e10 and spread(output_grad) > 1e10 and spread(product) < 3
    assert round(per_layer(res[0]), 1) == 1.2 and 1e3 < res[0][-1] < 1e5  # exploding
    assert res[1][0] / res[1][-1] > 1e3
    assert np.allclose(post[0], 1.0, atol=1e-3) and round(spread(post[1])) == 3
    assert post[2][-1] > post[2][0]  # post-norm: larger weight gradients near the output
    assert round(pre[0][0]) == 1 and round(pre[0][-1]) == 5 and round(spread(pre[1])) == 6
    assert spread(pre[2]) < 10 and pre[2][-1] < pre[2][0]  # pre-norm: not larger at the top
    print(
        "\nthe signal dies without glue, explodes with residuals alone, stays put with residual + LayerNorm ✓"
    )

# %% [markdown]
# What the numbers say:
#
# * **plain**: each layer shrinks its input by about half (GELU halves small inputs, and the weights do not make up for
#   it), so after 50 layers the activations are $\sim 10^{-15}$: the **forward signal itself vanishes**. The gradient
#   reaching a layer's input vanishes in the other direction: at layer 1 it is $\sim 10^{-15}$ of the one at the top.
#   The third panel is what the optimizer sees, and it is flat: the gradient of a layer's weights is its input times
#   the gradient arriving at its output, $\partial L/\partial W_{1,l} = h_l^\top\big[(\partial L/\partial h_{l+1})
#   W_{2,l}^\top \odot \mathrm{GELU}'(h_l W_{1,l})\big]$. Near the input the first factor is fine and the second has
#   vanished; near the output it is the other way round; their product is about the same everywhere (each factor
#   varies by $10^{14}$, the product by less than 3). So every weight gradient, early or late, is $\sim 10^{-14}$:
#   no layer of this stack can learn, not just the early ones.
# * **residual only**: the identity path keeps everything alive, but each layer *adds* a vector to the stream, so the
#   activations grow by about 1.2× per layer to $\sim 10^4$, and the gradients grow with them as they flow back:
#   they **explode**.
# * **post-norm**: LayerNorm resets every layer's output to RMS 1; the gradient reaching a layer changes by only about a
#   factor of 3 over the 50 layers. The weight gradients are larger near the output than near the input — Xiong et al.
#   (2020) found exactly this for post-norm Transformers and traced to it the need for a learning-rate warm-up.
# * **pre-norm**: the stream is never normalized, so it grows, but slowly (its RMS goes from about 1 to about 5 over 50
#   layers: each layer adds a vector computed from a *normalized* input, so of bounded size, instead of one proportional
#   to the stream); the gradients stay within a small factor (about 6) everywhere, and are not larger at the top.

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
# `multi_head_attention` of lesson 05, `feed_forward` of lesson 06) using the block's own weights, read out under the
# thread's names by `block_weights`. The two formulas above are the last four lines of `block_numpy`.


# %%
def block_numpy(x, p, num_heads, norm_first, activation, eps):
    """One block from NumPy pieces, with a causal mask; p: the weights under the thread's names."""
    mask = causal_mask(x.shape[-2])
    biases = {f"b_{c.lower()}": p[f"b_{c}"] for c in "QKVO"}
    ln1 = lambda t: layer_norm(t, p["gamma_1"], p["beta_1"], eps=eps)
    ln2 = lambda t: layer_norm(t, p["gamma_2"], p["beta_2"], eps=eps)
    mha = lambda t: multi_head_attention(
        t, p["W_Q"], p["W_K"], p["W_V"], p["W_O"], num_heads, mask=mask, biases=biases
    )[0]
    ffn = lambda t: feed_forward(t, p["W_1"], p["b_1"], p["W_2"], p["b_2"], activation=activation)
    if norm_first:  # pre-norm
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
    p = block_weights(block)
    y_keras = block(x_rand.astype("float32"), use_causal_mask=True).numpy()
    y_numpy = block_numpy(x_rand, p, block.num_heads, norm_first, block.activation, block.epsilon)
    y_reference = transformer_block(
        x_rand, p, block.num_heads, norm_first, block.activation, causal_mask(5), block.epsilon
    )["block_out"]
    diff = np.abs(y_keras - y_numpy).max()
    name = "pre-norm " if norm_first else "post-norm"
    print(f"{name} TransformerBlock vs NumPy formula: max |diff| <= 1e-5: {bool(diff <= 1e-5)}")
    assert diff <= 1e-5 and np.allclose(y_numpy, y_reference, atol=1e-12)
    outputs[name.strip()] = y_numpy

print(
    "the two variants give different outputs:",
    not np.allclose(outputs["pre-norm"], outputs["post-norm"]),
)
print(
    "block_numpy equals the library's NumPy reference lessons_lib.transformer_block (both variants) ✓"
)

# %% [markdown]
# In the library both formulas are one method, `TransformerBlock.sublayer`, which the block calls once around
# attention and once around the FFN: `norm_first` picks `x + fn(norm(x))` (pre-norm) or `norm(x + fn(x))`
# (post-norm); `self.drop` is dropout, active only in training:

# %%
show_source(TransformerBlock.sublayer)

# %% [markdown]
# A visible difference between the two: a post-norm block's output is a LayerNorm output (with $\gamma=1, \beta=0$ every
# token would have mean 0, variance 1), while a pre-norm block's output is the raw residual stream, whose size keeps
# growing from block to block — hence the final LayerNorm of GPT-2-style models. On the thread:

# %%
pre_thread = thread.load_into(TransformerBlock(4, 2, 16, norm_first=True, activation="relu"))
pre_out = pre_thread(x[None].astype("float32"), use_causal_mask=True).numpy()[0]
print("post-norm block_out: per-token std", np.round(block_out.std(axis=-1), 3))
print("pre-norm  output   : per-token std", np.round(pre_out.std(axis=-1), 3))

# %% [markdown]
# ## Exercises
#
# ### Exercise 1 · LayerNorm from scratch
#
# Write `my_layer_norm(x, gamma, beta, eps)` for `x` of shape `[..., d]`, normalizing over the last axis, NumPy only
# (the check refuses `lessons_lib`'s `layer_norm` and Keras' `LayerNormalization`). Careful: the variance is the
# *biased* one (divide by $d$, not $d-1$), as in `np.var`'s default.


# %%
def my_layer_norm(x, gamma, beta, eps=1e-5):
    # YOUR CODE HERE
    raise NotImplementedError


# %%


LIBRARY_LN = ("lessons_lib", "layer_norm", "LayerNormalization")
ex_rng = np.random.default_rng(3)
ex1_inputs = [
    (state["residual_1"], w["gamma_1"], w["beta_1"], 1e-5),
    (ex_rng.normal(size=(2, 3, 5)) * 4, ex_rng.normal(size=5), ex_rng.normal(size=5), 1e-3),
]
check(
    my_layer_norm,
    layer_norm,
    inputs=ex1_inputs,
    hint=(
        "Each vector on its own: subtract its mean, divide by its standard deviation (with eps inside the square "
        "root), then scale by gamma and shift by beta.",
        "mean and variance over axis=-1 with keepdims=True; (x - mu) / np.sqrt(var + eps); then gamma * ... + beta",
    ),
    forbid=LIBRARY_LN,
)


# %% tags=["solution"]
def my_layer_norm(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


assert check(my_layer_norm, layer_norm, inputs=ex1_inputs, forbid=LIBRARY_LN)
with contextlib.redirect_stdout(io.StringIO()):  # the check refuses the library's own LayerNorm
    assert (
        check(lambda *a: layer_norm(*a), layer_norm, inputs=ex1_inputs, forbid=LIBRARY_LN) is False
    )

# %% [markdown]
# ### Exercise 2 · LayerNorm's backward pass
#
# Write `my_layer_norm_backward(x, grad_out, gamma, eps)` returning $\partial L / \partial x$ from the boxed formula of
# section 2, NumPy only. It is checked against `lessons_lib.layer_norm_backward` (which section 2 checked against
# TensorFlow and finite differences); the check refuses that function and `tf.GradientTape`.


# %%
def my_layer_norm_backward(x, grad_out, gamma, eps=1e-5):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
ex2_inputs = [
    (state["residual_2"], ex_rng.normal(size=(6, 4)), w["gamma_2"], 1e-5),
    (ex_rng.normal(size=(2, 3, 5)) * 4, ex_rng.normal(size=(2, 3, 5)), ex_rng.normal(size=5), 1e-3),
]
LIBRARY_BACKWARD = ("lessons_lib", "layer_norm_backward", "GradientTape", "gradient")
check(
    my_layer_norm_backward,
    layer_norm_backward,
    inputs=ex2_inputs,
    hint=(
        "Scale the incoming gradient by gamma, remove its mean and its component along x_hat, and divide by the "
        "input's standard deviation sigma_eps.",
        "g = gamma * grad_out; x_hat = (x - mu) / sigma; (g - mean(g) - x_hat * mean(g * x_hat)) / sigma, "
        "means over axis=-1 with keepdims=True",
    ),
    forbid=LIBRARY_BACKWARD,
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


assert check(
    my_layer_norm_backward, layer_norm_backward, inputs=ex2_inputs, forbid=LIBRARY_BACKWARD
)

# %% [markdown]
# ### Exercise 3 · The thread's block, pre-norm
#
# Write `thread_pre_norm(x)` that computes the thread's block **pre-norm** in NumPy, with the thread's weights
# (`thread.weights()`: `W_Q, W_K, W_V, W_O` without biases, 2 heads, causal mask; FFN `W_1, b_1, W_2, b_2` with ReLU;
# LayerNorms `gamma_1, beta_1, gamma_2, beta_2`, $\epsilon = 10^{-5}$), for `x` of shape `[T, 4]`. You may use
# `lessons_lib`'s pieces (`layer_norm`, `multi_head_attention`, `feed_forward`, `causal_mask`), but not a whole block:
# the check refuses `transformer_block`, `TransformerBlock` and `pre_thread`. It is checked against the Keras
# `TransformerBlock(norm_first=True)` loaded with the same weights (`pre_thread` above).


# %%
def thread_pre_norm(x):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
def reference_thread_pre_norm(x):
    return pre_thread(x[None].astype("float32"), use_causal_mask=True).numpy()[0].astype("float64")


WHOLE_BLOCK = (
    "transformer_block",
    "TransformerBlock",
    "pre_thread",
    "reference_thread_pre_norm",
    "sublayer",
)
check(
    thread_pre_norm,
    reference_thread_pre_norm,
    inputs=[x, state["block_out"]],
    atol=1e-5,
    hint=(
        "Pre-norm: each sublayer reads a normalized copy of the stream, and its output is added to the stream "
        "itself; the sums are never normalized.",
        "h = x + MHA(LN_1(x)) with multi_head_attention(..., num_heads=2, mask=causal_mask(len(x)))[0]; "
        "return h + feed_forward(LN_2(h), ..., activation='relu')",
    ),
    forbid=WHOLE_BLOCK,
)


# %% tags=["solution"]
def thread_pre_norm(x):
    tw = thread.weights()
    a = layer_norm(x, tw["gamma_1"], tw["beta_1"], eps=1e-5)
    attn_out, _ = multi_head_attention(
        a, tw["W_Q"], tw["W_K"], tw["W_V"], tw["W_O"], num_heads=2, mask=causal_mask(len(x))
    )
    h = x + attn_out
    f = layer_norm(h, tw["gamma_2"], tw["beta_2"], eps=1e-5)
    return h + feed_forward(f, tw["W_1"], tw["b_1"], tw["W_2"], tw["b_2"], activation="relu")


assert check(
    thread_pre_norm,
    reference_thread_pre_norm,
    inputs=[x, state["block_out"]],
    atol=1e-5,
    forbid=WHOLE_BLOCK,
)

# %% [markdown]
# ## Summary
#
# * **Residual connection**: $y = x + F(x)$; its Jacobian $I + \partial F/\partial x$ gives gradients a direct path
#   through any depth.
# * **LayerNorm**: per token, $\gamma \odot (x-\mu)/\sqrt{\sigma^2+\epsilon} + \beta$; its gradient
#   $\frac1{\sigma_\epsilon}(g - \bar g - \hat x\,\overline{g\odot\hat x})$ removes the mean and $\hat x$ directions and
#   divides by the input's scale. Checked against Keras (with `epsilon` matched: Keras' default is $10^{-3}$),
#   `tf.GradientTape` and finite differences.
# * **Measured** on 50 layers: plain → the signal dies ($10^{-15}$) and so does the gradient flowing back, which
#   leaves every layer's weight gradient at $\sim 10^{-14}$; residual only → activations and gradients explode
#   ($10^4$); residual + LayerNorm (post- or pre-norm) → everything stays within a small factor.
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
