# %% [markdown]
# # 08 · The full Transformer block, and a tiny GPT forward pass
#
# Lessons 02–07 built every part of a Transformer block by hand: embeddings, positions, attention, heads, the
# feed-forward network, residual connections and LayerNorm. In this lesson we **put the whole model together** and
# run a complete forward pass of a GPT-style language model: token ids in, a probability for every possible next
# token out.
#
# **Goals.** By the end of this lesson you can
#
# 1. write the equations of a decoder-only (GPT) language model, from token ids to next-token probabilities,
#    and say what the final LayerNorm and the *tied* output layer $\text{logits} = h\,E^\top$ do;
# 2. follow the shape of every tensor through the model (a table generated from a real model);
# 3. count the parameters of a GPT with a formula, term by term, and check it against Keras' `count_params()`
#    — for a tiny model, a "baby GPT" and GPT-2 small (124 M);
# 4. finish **the thread**: final LayerNorm → logits over our 6 words → softmax, by hand, and check that the
#    Keras model `thread.build_gpt()` gives the same numbers;
# 5. check our `TransformerBlock` against a block built only from `keras.layers` (pre-norm and post-norm);
# 6. show that a GPT is *causal*: changing a later token never changes the predictions at earlier positions.
#
# Where we are in the pipeline:
#
# ```text
# ids ─► embedding E[ids] ─► + positions ─► [ block 1 ] ─► … ─► [ block N ] ─► final LN ─► h Eᵀ ─► softmax
#  02          02               03            04–07                 07            08        08       08
# ```

# %% tags=["nbval-ignore-output"]
import lessons_lib

info = lessons_lib.setup(seed=0)

# %%
import contextlib
import io

import keras
import matplotlib.pyplot as plt
import numpy as np
from keras import ops

from lessons_lib import (
    GPT,
    TransformerBlock,
    block_param_count,
    block_weights,
    causal_mask,
    check,
    copy_to_keras_mha,
    gpt_param_count,
    layer_norm,
    show,
    show_source,
    softmax,
    thread,
    transformer_block,
)

# %% [markdown]
# ## 1. The model in five equations
#
# A GPT (Radford et al., 2018, 2019) is a stack of Transformer blocks with a **causal** mask, so the vector at
# position $t$ can only look at tokens $0, \dots, t$. For token ids $\text{ids} = (i_0, \dots, i_{T-1})$:
#
# $$
# \begin{aligned}
# x^{(0)} &= E[\text{ids}] + P_{0:T}
#   && \text{token embedding (lesson 02) plus positions (lesson 03)}, &&[T, d_{model}]\\
# x^{(l)} &= \mathrm{Block}_l\big(x^{(l-1)}\big), \quad l = 1, \dots, N
#   && \text{causal attention + FFN, each with residual and LayerNorm (04–07)}, &&[T, d_{model}]\\
# h &= \mathrm{LN}_f\big(x^{(N)}\big)
#   && \text{final LayerNorm}, &&[T, d_{model}]\\
# \text{logits} &= h\,E^\top
#   && \text{output layer, tied to the embedding table}, &&[T, V]\\
# p(\text{next token} = v \mid \text{tokens } 0..t) &= \mathrm{softmax}(\text{logits}_t)_v
#   && \text{one distribution per position}, &&[T, V]
# \end{aligned}
# $$
#
# Three details deserve a word.
#
# * **The final LayerNorm.** In a *pre-norm* block, $y = h + \mathrm{FFN}(\mathrm{LN}(h))$: the output of the last
#   block is an un-normalized sum of residuals whose size grows with depth. GPT-2 therefore added one more
#   LayerNorm after the last block (Radford et al., 2019, sec. 2.3). In a *post-norm* block (the original paper, and
#   our thread) the block already ends with a LayerNorm; while that LayerNorm still has $\gamma = 1$, $\beta = 0$
#   (untrained, as in the thread) $\mathrm{LN}_f$ is almost the identity, and otherwise it is not — we will see both.
# * **Tied embeddings.** The output layer needs a matrix $W_{out}$ of shape $[d_{model}, V]$ that scores every word.
#   The embedding table $E$ has shape $[V, d_{model}]$, so $E^\top$ fits, and using it saves $V \cdot d_{model}$
#   parameters (Press & Wolf, 2017; Inan et al., 2017; GPT-2 does this). Then
#   $\text{logits}_{t,v} = h_t \cdot E_v$: the score of word $v$ is the dot product of the model's final vector with
#   that word's own embedding — "how much does $h_t$ look like word $v$?".
# * **Every position predicts.** The logits at position $t$ are the model's guess for token $t+1$. One forward pass
#   over $T$ tokens gives $T$ predictions at once; lesson 09 trains on all of them together. That only makes sense
#   because of the causal mask: position $t$ must not see token $t+1$, the answer it is asked to predict.
#
# *About the source article.* Its overview diagram goes `输入数据 → 预处理器 → 词嵌入 → 自注意力机制 → 前馈神经网络 →
# 输出层` (input → preprocessor → embedding → self-attention → FFN → output layer). That is the right order, but three
# things are missing from it, and all three matter: the **positional encoding** added to the embeddings, the
# **residual connections and LayerNorms** around each sublayer, and the fact that attention + FFN form one **block
# that is repeated $N$ times**. The "output layer" (输出层) is, in a GPT, the final LayerNorm, the product with
# $E^\top$ and a softmax over the vocabulary — exactly what this lesson builds. (The article also lists GPT-3 next to
# BERT; GPT-3 is the decoder-only kind of model we build here, BERT is encoder-only.)

# %% [markdown]
# ## 2. Finishing the thread: final LayerNorm → logits → probabilities
#
# Lesson 07 stopped at `block_out`, the output of the thread's single post-norm block: one 4-number vector for each
# word of "to be or not to be".

# %%
s = thread.forward()
W = thread.weights()
words = thread.SENTENCE.split()
print("vocabulary:", thread.VOCAB)
print("ids       :", s["ids"])
show("block_out (where lesson 07 stopped)", s["block_out"])

# %% [markdown]
# **Step 1: the final LayerNorm** (with the thread's $\gamma_f = 1$, $\beta_f = 0$, $\epsilon = 10^{-5}$):
# $\;\text{final}_t = \gamma_f \odot \dfrac{x_t - \mu_t}{\sqrt{\sigma_t^2 + \epsilon}} + \beta_f$.

# %%
x = s["block_out"]
mu = x.mean(axis=-1, keepdims=True)
var = x.var(axis=-1, keepdims=True)
final = W["gamma_f"] * (x - mu) / np.sqrt(var + thread.EPS) + W["beta_f"]
print("mean of each row    :", np.round(mu.ravel(), 3) + 0.0)  # + 0.0 turns -0.0 into 0.0
print("variance of each row:", np.round(var.ravel(), 3))
show("final", final)
assert np.allclose(final, s["final"], atol=1e-12)
change = np.abs(final - x).max()
print(f"max |final - block_out| = {change:.1e}")
assert change < 5e-6 and round(change * 1e6) == 3

# %% [markdown]
# The rows of `block_out` already have mean 0 and variance $\approx 1$: the thread's block is post-norm, so it ends
# with a LayerNorm, and normalizing a normalized vector changes it only through $\epsilon$ (by the
# $3 \cdot 10^{-6}$ printed above).
#
# That holds only because the thread's $\mathrm{LN}_2$ still has its initial $\gamma_2 = 1$, $\beta_2 = 0$ (the
# weights are untrained). A post-norm block really ends with $\gamma_2 \odot \hat x + \beta_2$, and as soon as
# $\gamma_2 \ne 1$ or $\beta_2 \ne 0$ its rows no longer have mean 0 and variance 1. Give $\mathrm{LN}_2$ other
# values, as training does, and the final LayerNorm normalizes them away:

# %%
residual_2 = s["residual_2"]
gamma_2 = np.array([1.5, 0.5, 1.0, 2.0])  # any values other than 1 and 0 will do
beta_2 = np.array([0.3, -0.2, 0.0, 0.1])
block_out_trained = layer_norm(residual_2, gamma_2, beta_2, eps=thread.EPS)
final_trained = layer_norm(block_out_trained, W["gamma_f"], W["beta_f"], eps=thread.EPS)
print(
    "per-row mean of block_out with these γ₂, β₂:",
    np.round(block_out_trained.mean(axis=-1), 3) + 0.0,
)
print("per-row std                               :", np.round(block_out_trained.std(axis=-1), 3))
change_trained = np.abs(final_trained - block_out_trained).max()
print(
    f"max |LN_f(block_out) - block_out| = {change_trained:.3f}   (with γ₂ = 1, β₂ = 0: {change:.1e})"
)
assert round(change_trained, 2) == 0.95 and change < 5e-6
# only gamma_2 = 1 and beta_2 = 0 make LN_f the identity: a uniform scale alone already breaks it
scaled = layer_norm(residual_2, 2 * np.ones(4), np.zeros(4), eps=thread.EPS)
assert np.abs(layer_norm(scaled, eps=thread.EPS) - scaled).max() > 0.5

# %% [markdown]
# So "the final LayerNorm is nearly the identity after post-norm blocks" is a fact about *untrained* post-norm
# blocks, whose last LayerNorm has $\gamma = 1$, $\beta = 0$; with other values (even $\gamma_2 = 2$ everywhere, which
# it scales back down) $\mathrm{LN}_f$ changes the vectors. The final LayerNorm earns its keep above all in
# **pre-norm** models like GPT-2, the library's default, whose blocks end with an un-normalized residual sum. We keep
# it in the thread so the thread has the same structure as every GPT.
#
# **Step 2: the output layer**, tied to the embedding table: $\text{logits} = \text{final}\;E^\top$, shape
# $[6, 4] \times [4, 6] = [6, 6]$ — one row per position, one column per word of the vocabulary. Here is $E$ again
# (lesson 02), one row per word:

# %%
E = W["E"]
for word, row in zip(thread.VOCAB, E):
    print(f"E[{word!r:6}] = {row}")
logits = final @ E.T
print("\ncolumns:", " ".join(thread.VOCAB))
show("logits = final @ E.T   (rows: positions)", logits)
assert np.allclose(logits, s["logits"], atol=1e-12)

# %% [markdown]
# One entry by hand: the score of the word "be" (column 1) at the last position (row 5) is the dot product of
# $\text{final}_5$ with $E_{\text{be}}$.

# %%
t, v = 5, thread.VOCAB.index("be")
terms = final[t] * E[v]
print(" + ".join(f"({a:.3f})·({b:.1f})" for a, b in zip(final[t], E[v])), f"= {terms.sum():.3f}")
assert np.isclose(terms.sum(), logits[t, v])

# %% [markdown]
# **Step 3: softmax over the vocabulary**, one row at a time (each row becomes a probability distribution over the
# 6 words):

# %%
probs = softmax(logits, axis=-1)
show("probs (rows sum to 1)", probs)
assert np.allclose(probs.sum(axis=-1), 1.0)
assert np.allclose(probs, s["probs"], atol=1e-12)
print("✓ final, logits and probs equal thread.forward()['final'], ['logits'], ['probs']")

# %% [markdown]
# ### The same numbers from the Keras model
#
# `thread.build_gpt()` is a `lessons_lib.GPT` with one post-norm block, ReLU, sinusoidal positions and tied
# embeddings, loaded with the thread's weights. It runs in float32, so we expect agreement to about $10^{-6}$.

# %%
gpt_thread = thread.build_gpt()
keras_logits = ops.convert_to_numpy(gpt_thread(s["ids"][None]))[
    0
]  # add a batch axis, then remove it
keras_probs = ops.convert_to_numpy(ops.softmax(keras_logits, axis=-1))
diff_logits = np.abs(keras_logits - s["logits"]).max()
diff_probs = np.abs(keras_probs - s["probs"]).max()
print("Keras logits shape:", keras_logits.shape)
print("max |Keras logits - NumPy logits| < 1e-5:", bool(diff_logits < 1e-5))
print("max |Keras probs  - NumPy probs | < 1e-5:", bool(diff_probs < 1e-5))
assert diff_logits < 1e-5 and diff_probs < 1e-5

# %% [markdown]
# The model's forward pass is `GPT.call`: the first equation of §1 (`self.embed`: $E[\text{ids}] + P$), the loop
# over the blocks (the second, each with the causal mask), then `self.logits`, which holds the last two steps we just
# did by hand — the final LayerNorm `ln_f` and the product with $E^\top$ (or with a separate matrix when untied):

# %%
show_source(GPT.call)

# %%
show_source(GPT.logits)

# %% [markdown]
# ### What does the thread predict?
#
# Each row of `probs` is a guess for the *next* word, given the words up to that position:

# %%
for t in range(len(words)):
    best = int(probs[t].argmax())
    print(f"{' '.join(words[: t + 1]):>20} → {thread.VOCAB[best]!r:7} (p = {probs[t, best]:.3f})")
next_word = thread.VOCAB[int(probs[-1].argmax())]
assert next_word == "be" and round(100 * probs[-1].max()) == 92
repeats = [t for t in range(len(words)) if probs[t].argmax() == s["ids"][t]]
print("positions whose prediction is the word just read:", repeats)
assert repeats == [1, 4, 5]

# %% [markdown]
# After "to be or not to be" the model says **"be"**, with 92 % confidence. Don't read anything into it: the weights
# are **random** (drawn once from a seeded generator and rounded to one decimal), nobody has taught this model
# anything yet. The confidence is just as meaningless as the choice. (A random model with tied embeddings often
# "predicts" the word it has just read: $h_t$ still resembles the embedding $E_{i_t}$ of its own input token,
# and the logit $h_t \cdot E_v$ is large for the $E_v$ that $h_t$ resembles — here at positions 1, 4 and 5.)
# Hamlet would say "that", and a trained model should too: **training, in lesson 09**, adjusts every weight
# so that these probabilities match the text the model reads.

# %%
fig, ax = plt.subplots(figsize=(6, 3))
bars = ax.bar(
    thread.VOCAB, probs[-1], color=["C1" if w == next_word else "C0" for w in thread.VOCAB]
)
ax.bar_label(bars, labels=[f"{p:.3f}" for p in probs[-1]], fontsize=8)
ax.set_ylim(0, 1.05)
ax.set_ylabel("probability")
ax.set_title('p(next word | "to be or not to be") — random weights, untrained')
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 3. Shapes through a tiny GPT
#
# The thread has a single block and a single sentence. A real GPT processes a **batch** of sequences through
# **several** blocks. Let us follow one batch through a small model — batch $B = 2$, $T = 8$ tokens, a vocabulary
# of $V = 65$ (the characters of Tiny Shakespeare), $d_{model} = 32$, $h = 4$ heads ($d_k = 8$),
# $d_{ff} = 4\,d_{model} = 128$, $N = 2$ pre-norm blocks — and record the shape of every intermediate tensor.
# The embeddings and the output layer come from the model's own sublayers; each block runs through the library's
# NumPy reference `transformer_block` (lesson 07's block, which returns every intermediate) with that block's
# weights (`block_weights`). At the end we check that we reproduced `model(ids)`.

# %%
B, T, V, D, H, N = 2, 8, 65, 32, 4, 2
sizes = {"B": B, "T": T, "V": V, "d_model": D, "h": H, "d_k": D // H, "d_ff": 4 * D}
tiny = GPT(
    vocab_size=V, max_len=T, d_model=D, num_heads=H, num_layers=N
)  # pre-norm, GELU, learned positions
ids = np.random.default_rng(0).integers(0, V, size=(B, T))
tiny.build(ids.shape)  # create all the weights
show("ids", ids)


# %%
rows = []  # (stage, symbolic shape, tensor)
SUP = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def record(stage, symbolic, tensor):
    rows.append((stage, symbolic, tuple(tensor.shape)))


record("token ids", "B, T", ids)
tok = tiny.embed.token_embedding(ids)
record("token embeddings E[ids]", "B, T, d_model", tok)
pos = tiny.embed.position_embedding(ops.arange(T))
record("position embeddings P[0:T]", "T, d_model", pos)
x = ops.convert_to_numpy(tok + pos[None]).astype("float64")
record("x⁽⁰⁾ = E[ids] + P", "B, T, d_model", x)
for l, block in enumerate(tiny.blocks, start=1):
    # lesson 07's block, as the library's NumPy reference: every intermediate, with this block's weights
    steps = transformer_block(x, block_weights(block), H, norm_first=True, mask=causal_mask(T))
    y = steps["block_out"]
    assert np.allclose(y, block(x, use_causal_mask=True), atol=1e-5)  # we reproduced the block
    if l == 1:  # show every step of the first block; the others have the same shapes
        for stage, sym, key in (
            ("LN₁(x)", "B, T, d_model", "attn_in"),
            ("Q = LN₁(x) W_Q (K, V alike)", "B, T, d_model", "Q"),
            ("Q, K, V split into heads", "B, h, T, d_k", "Q_heads"),
            ("attention weights (causal)", "B, h, T, T", "weights"),
            ("head outputs = weights · V", "B, h, T, d_k", "head_outputs"),
            ("concat of the heads", "B, T, d_model", "concat"),
            ("attention output = concat W_O", "B, T, d_model", "attn_out"),
            ("x + attention", "B, T, d_model", "residual_1"),
            ("FFN hidden act(LN₂(·) W₁ + b₁)", "B, T, d_ff", "ffn_hidden"),
            ("FFN output", "B, T, d_model", "ffn_out"),
        ):
            record(f"  block 1: {stage}", sym, steps[key])
    record(f"x⁽{str(l).translate(SUP)}⁾ = block {l} output", "B, T, d_model", y)
    x = y
h_final = tiny.ln_f(x)
record("h = LN_f(x⁽ᴺ⁾)", "B, T, d_model", h_final)
logits_tiny = ops.matmul(h_final, ops.transpose(tiny.embed.embeddings))
record("logits = h Eᵀ", "B, T, V", logits_tiny)
probs_tiny = ops.softmax(logits_tiny, axis=-1)
record("probabilities = softmax(logits)", "B, T, V", probs_tiny)
assert np.allclose(logits_tiny, tiny(ids), atol=1e-5)  # ... and the whole model


def markdown_table(header, body):
    """A Markdown pipe table as plain text, columns padded to line up."""
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    return "\n".join(
        [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, body)]
    )


table = []
for stage, symbolic, actual in rows:
    expected = tuple(sizes[n] for n in symbolic.split(", "))
    assert expected == actual, (stage, expected, actual)
    table.append((stage, f"[{symbolic}]", actual))
print(f"B={B}, T={T}, V={V}, d_model={D}, h={H}, d_k={D // H}, d_ff={4 * D}, N={N} blocks\n")
print(markdown_table(("stage", "shape (symbols)", "shape (actual)"), table))

# %% [markdown]
# Read the table from top to bottom and notice:
#
# * the width $d_{model}$ is the same from the first embedding to the last block — that is what lets us stack
#   blocks and add residuals;
# * only two places leave it: the heads ($[B, h, T, d_k]$, with $h \cdot d_k = d_{model}$) and the FFN's hidden
#   layer ($d_{ff}$); the attention weights are the only $T \times T$ tensor;
# * the output layer turns $d_{model}$ into $V$: one score per vocabulary entry, at every position of every sequence.
#
# The library's block, whose steps we just traced, is `TransformerBlock.call`. After checking its input it calls
# `_sublayer` twice (lesson 07 derived that one): once with self-attention, once with the FFN, each wrapped in a
# residual and a LayerNorm (before the sublayer when `norm_first`, after it otherwise); a cross-attention sublayer
# sits between them only in an encoder–decoder block.

# %%
show_source(TransformerBlock.call)

# %% [markdown]
# ## 4. Counting parameters
#
# Where do the parameters live? Go through the equations of section 1 and count the numbers each one learns
# ($d = d_{model}$, $L$ = number of blocks, biases optional):
#
# | part | weights | biases / LayerNorm shift |
# |---|---|---|
# | token embedding $E$ | $V d$ | – |
# | learned positions $P$ (0 if sinusoidal) | $T_{max}\, d$ | – |
# | per block: $W_Q, W_K, W_V, W_O$ | $4 d^2$ | $4d$ |
# | per block: FFN $W_1, W_2$ | $d\,d_{ff} + d_{ff}\,d = 2 d\, d_{ff}$ | $d_{ff} + d$ |
# | per block: $\mathrm{LN}_1, \mathrm{LN}_2$ ($\gamma$, $\beta$) | $2d$ | $2d$ |
# | final $\mathrm{LN}_f$ | $d$ | $d$ |
# | output layer | $0$ if tied ($E^\top$), else $d V$ | – |
#
# Adding it up (with biases, tied, learned positions, $d_{ff} = 4d$):
#
# $$ N_{params} = \underbrace{V d + T_{max} d}_{\text{embeddings}}
#    + L\,\big(\underbrace{4d^2 + 4d}_{\text{attention}} + \underbrace{8d^2 + 5d}_{\text{FFN}}
#    + \underbrace{4d}_{\text{2 LN}}\big) + \underbrace{2d}_{\mathrm{LN}_f}
#    = (V + T_{max})\,d + L\,(12 d^2 + 13 d) + 2d. $$
#
# The block term $12 d^2$ is the famous rule of thumb: a GPT block has about $12\,d_{model}^2$ parameters, a third in
# attention and two thirds in the FFN. `lessons_lib.gpt_param_count` implements this formula (with the variants).
# Two independent checks: Keras' `model.count_params()`, and counting the **actual variables** of each
# component of a built model, term by term.


# %%
def count_by_component(model):
    """Sum the sizes of a built GPT's variables, grouped by component (embedding, attention, FFN, LayerNorm, head)."""
    groups = {
        "token embedding": 0,
        "positions": 0,
        "attention": 0,
        "FFN": 0,
        "LayerNorms": 0,
        "output head": 0,
    }
    for var in model.weights:
        path = var.path.split("/", 1)[1]  # drop the model's own name
        n = int(np.prod(var.shape))
        if path.startswith("embed/token"):
            groups["token embedding"] += n
        elif path.startswith("embed/position"):
            groups["positions"] += n
        elif "/attn/" in path:
            groups["attention"] += n
        elif "/ffn/" in path:
            groups["FFN"] += n
        elif "ln" in path.split("/")[-2]:
            groups["LayerNorms"] += n
        elif path.startswith("head"):
            groups["output head"] += n
        else:
            raise ValueError(f"unexpected variable {var.path}")
    return groups


def terms_by_formula(V, T_max, d, L, d_ff=None, use_bias=True, tie=True, positional="learned"):
    """The same grouping, from the table above."""
    d_ff = 4 * d if d_ff is None else d_ff
    return {
        "token embedding": V * d,
        "positions": T_max * d if positional == "learned" else 0,
        "attention": L * (4 * d * d + (4 * d if use_bias else 0)),
        "FFN": L * (2 * d * d_ff + ((d_ff + d) if use_bias else 0)),
        "LayerNorms": (2 * L + 1) * (2 * d if use_bias else d),
        "output head": 0 if tie else d * V,
    }


print(f"{'term':16} {'by formula':>11} {'model variables':>16}")
by_vars, by_formula = count_by_component(tiny), terms_by_formula(V, T, D, N)
for term in by_formula:
    print(f"{term:16} {by_formula[term]:>11,} {by_vars[term]:>16,}")
    assert by_formula[term] == by_vars[term]
print(f"{'total':16} {sum(by_formula.values()):>11,} {sum(by_vars.values()):>16,}")

# %% [markdown]
# Now several configurations, each counted three ways: the library's formula `gpt_param_count`, the per-term table
# above, and Keras' `count_params()` on a built model. The "baby GPT" is the size of the character-level model
# the course trains later (no biases anywhere, `use_bias=False`, so each LayerNorm has only $\gamma$). GPT-2 small
# has the same structure at $V = 50257$, $T_{max} = 1024$, $d = 768$, $L = 12$ (12 heads; the head count does not
# change the count, since $h \cdot d_k = d$); we count it with the formula only, building it would take ~0.5 GB.

# %%
configs = [  # name, GPT keyword arguments, build it?
    (
        "thread (post-norm, sinusoidal)",
        dict(
            vocab_size=6,
            max_len=8,
            d_model=4,
            num_heads=2,
            num_layers=1,
            d_ff=16,
            positional="sinusoidal",
        ),
        True,
    ),
    (
        "tiny (section 3)",
        dict(vocab_size=65, max_len=8, d_model=32, num_heads=4, num_layers=2),
        True,
    ),
    (
        "tiny, untied head",
        dict(vocab_size=65, max_len=8, d_model=32, num_heads=4, num_layers=2, tie_embeddings=False),
        True,
    ),
    (
        "baby GPT, no biases",
        dict(vocab_size=65, max_len=64, d_model=128, num_heads=4, num_layers=4, use_bias=False),
        True,
    ),
    (
        "GPT-2 small",
        dict(vocab_size=50257, max_len=1024, d_model=768, num_heads=12, num_layers=12),
        False,
    ),
]
counts = {}
print(f"{'model':32} {'gpt_param_count':>16} {'term table':>12} {'count_params()':>15}")
for name, kw, build in configs:
    formula = gpt_param_count(
        kw["vocab_size"],
        kw["max_len"],
        kw["d_model"],
        kw["num_layers"],
        d_ff=kw.get("d_ff"),
        use_bias=kw.get("use_bias", True),
        tie_embeddings=kw.get("tie_embeddings", True),
        positional=kw.get("positional", "learned"),
    )
    terms = sum(
        terms_by_formula(
            kw["vocab_size"],
            kw["max_len"],
            kw["d_model"],
            kw["num_layers"],
            kw.get("d_ff"),
            kw.get("use_bias", True),
            kw.get("tie_embeddings", True),
            kw.get("positional", "learned"),
        ).values()
    )
    assert formula == terms
    keras_count = "(not built)"
    if build:
        if name.startswith("thread"):
            model = thread.build_gpt()  # already built, with the thread's weights
        else:
            model = GPT(**kw)
            model.build((1, kw["max_len"]))
        keras_count = model.count_params()
        assert keras_count == formula, (name, keras_count, formula)
        keras_count = f"{keras_count:,}"
    counts[name] = formula
    print(f"{name:32} {formula:>16,} {terms:>12,} {keras_count:>15}")
assert counts["GPT-2 small"] == 124_439_808

# %% [markdown]
# GPT-2 small has **124,439,808** parameters. (The GPT-2 paper's table lists it as "117M"; the released model, counted
# as above, has 124 M.) The formula, term by term:
#
# $$ \underbrace{50257 \cdot 768}_{38{,}597{,}376} + \underbrace{1024 \cdot 768}_{786{,}432}
#    + 12 \cdot \underbrace{(12 \cdot 768^2 + 13 \cdot 768)}_{7{,}087{,}872} + \underbrace{2 \cdot 768}_{1{,}536}
#    = 124{,}439{,}808. $$
#
# Where the parameters live differs a lot between a small and a large model:

# %%
shares = {}  # model -> {term: percent}
for name, V_, T_, d_, L_, bias in (
    ("baby GPT", 65, 64, 128, 4, False),
    ("GPT-2 small", 50257, 1024, 768, 12, True),
):
    terms = terms_by_formula(V_, T_, d_, L_, use_bias=bias)
    total = sum(terms.values())
    print(f"{name} ({total:,} parameters)")
    for term, n in terms.items():
        print(f"  {term:16} {n:>12,}  {100 * n / total:5.1f} %")
    per_block_ln = 2 * d_ if bias else d_  # one LayerNorm
    blocks = terms["attention"] + terms["FFN"] + 2 * L_ * per_block_ln
    assert block_param_count(d_, 4 * d_, bias) * L_ == blocks
    shares[name] = {term: 100 * n / total for term, n in terms.items()}
    shares[name]["in the blocks"] = 100 * blocks / total

untied_extra = 50257 * 768  # an untied output matrix [d_model, V]
print(
    f"\nin the blocks: baby GPT {shares['baby GPT']['in the blocks']:.1f} %, GPT-2 small "
    f"{shares['GPT-2 small']['in the blocks']:.1f} %; an untied GPT-2 head: {untied_extra / 1e6:.1f} M more"
)
assert round(shares["baby GPT"]["in the blocks"]) == 98
assert round(shares["GPT-2 small"]["token embedding"]) == 31 and round(untied_extra / 1e5) == 386

# %% [markdown]
# The same shares as a stacked bar, one bar per model (the LayerNorms are too thin to see):

# %%
fig, ax = plt.subplots(figsize=(8, 2.6))
models = list(shares)
left = np.zeros(len(models))
for i, term in enumerate(("token embedding", "positions", "attention", "FFN", "LayerNorms")):
    widths = np.array([shares[m][term] for m in models])
    bars = ax.barh(models, widths, left=left, color=f"C{i}", label=term)
    ax.bar_label(
        bars,
        labels=[f"{w:.0f} %" if w >= 4 else "" for w in widths],
        label_type="center",
        fontsize=8,
    )
    left += widths
assert np.allclose(left, 100)  # the five terms are the whole (tied) model
ax.set_xlim(0, 100)
ax.set_xlabel("share of the parameters (%)")
ax.invert_yaxis()
ax.legend(ncol=5, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
ax.set_title("Where the parameters live (tied embeddings)", pad=24)
plt.tight_layout()
plt.show()

# %% [markdown]
# In the baby GPT almost everything (98 %) is in the blocks: 65 characters need a tiny embedding table. In GPT-2
# small, with 50,257 tokens, the token embedding alone is **31 %** of the model — and without tying, an untied output
# layer would add another 38.6 M. That is why tying was worth doing (Press & Wolf, 2017).

# %% [markdown]
# ## 5. Our block against a block built from `keras.layers`
#
# `lessons_lib.TransformerBlock` writes attention out by hand (lesson 05). As an independent reference, here is the
# same block assembled only from stock Keras layers: `keras.layers.MultiHeadAttention`, `LayerNormalization` and
# `Dense`. Two details to get right:
#
# * Keras' `LayerNormalization` uses $\epsilon = 10^{-3}$ by default; ours (like PyTorch and GPT-2) uses $10^{-5}$.
# * Keras' `MultiHeadAttention` stores each projection per head: the query kernel has shape $[d, h, d_k]$ instead of
#   $[d, d]$, the output kernel $[h, d_k, d]$. Since head $i$ is columns $i d_k \dots (i+1) d_k - 1$ of our
#   $W_Q$ (and rows of our $W_O$), a plain `reshape` converts one into the other; `lessons_lib.copy_to_keras_mha`
#   (lesson 05) does exactly that.


# %%
class KerasLayersBlock(keras.layers.Layer):
    """A Transformer block from stock Keras layers only (causal self-attention), pre- or post-norm."""

    def __init__(
        self,
        d_model,
        num_heads,
        d_ff,
        norm_first=True,
        activation="gelu",
        epsilon=1e-5,
        causal=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.norm_first = norm_first
        self.causal = causal
        self.mha = keras.layers.MultiHeadAttention(
            num_heads=num_heads, key_dim=d_model // num_heads
        )
        self.ln1 = keras.layers.LayerNormalization(epsilon=epsilon)
        self.ln2 = keras.layers.LayerNormalization(epsilon=epsilon)
        self.dense1 = keras.layers.Dense(
            d_ff, activation=activation
        )  # "gelu" = exact GELU, like ours
        self.dense2 = keras.layers.Dense(d_model)

    def call(self, x):
        ffn = lambda t: self.dense2(self.dense1(t))
        if self.norm_first:  # GPT-2: x + sublayer(LN(x))
            a = self.ln1(x)
            h = x + self.mha(a, a, use_causal_mask=self.causal)
            return h + ffn(self.ln2(h))
        h = self.ln1(
            x + self.mha(x, x, use_causal_mask=self.causal)
        )  # original paper: LN(x + sublayer(x))
        return self.ln2(h + ffn(h))


def copy_weights(ours, ref):
    """Copy every weight of a lessons_lib.TransformerBlock into a KerasLayersBlock."""
    copy_to_keras_mha(ours.attn, ref.mha)  # the reshapes above, through Keras' public sublayers
    for mine, theirs in ((ours.ln1, ref.ln1), (ours.ln2, ref.ln2)):
        theirs.gamma.assign(mine.gamma)
        theirs.beta.assign(mine.beta)
    for mine, theirs in ((ours.ffn.w1, ref.dense1), (ours.ffn.w2, ref.dense2)):
        theirs.kernel.assign(mine.kernel)
        theirs.bias.assign(mine.bias)


rng = np.random.default_rng(8)
x_test = rng.normal(size=(B, T, D)).astype("float32")
for norm_first in (True, False):
    ours = TransformerBlock(D, H, 4 * D, norm_first=norm_first, activation="gelu")
    ours.build(x_test.shape)
    for var in (
        ours.weights
    ):  # random values everywhere, so biases, γ and β are really tested (not 0s and 1s)
        base = 1.0 if var.path.endswith("gamma") else 0.0
        var.assign(base + rng.normal(0.0, 0.3, size=var.shape))
    ref = KerasLayersBlock(D, H, 4 * D, norm_first=norm_first, activation="gelu")
    ref(x_test)  # build it, then overwrite its weights
    assert len(ref.weights) == len(ours.weights)
    copy_weights(ours, ref)
    diff = np.abs(
        ops.convert_to_numpy(ours(x_test, use_causal_mask=True)) - ops.convert_to_numpy(ref(x_test))
    ).max()
    kind = "pre-norm " if norm_first else "post-norm"
    print(
        f"{kind}: {len(ours.weights)} variables copied, max |ours - keras.layers| ≤ 1e-5: {bool(diff <= 1e-5)}"
    )
    assert diff <= 1e-5

# %% [markdown]
# Both variants agree with the stock-Keras block to float32 precision. The two details above are not pedantry —
# get either wrong and the blocks disagree far beyond $10^{-5}$ (here with the post-norm block from the last loop):

# %%
for label, options in (
    ("Keras' default epsilon 1e-3", dict(epsilon=1e-3)),
    ("no causal mask", dict(causal=False)),
):
    wrong = KerasLayersBlock(D, H, 4 * D, norm_first=False, activation="gelu", **options)
    wrong(x_test)
    copy_weights(ours, wrong)
    diff = np.abs(
        ops.convert_to_numpy(ours(x_test, use_causal_mask=True))
        - ops.convert_to_numpy(wrong(x_test))
    ).max()
    print(f"{label:28}: max |difference| > 1e-4: {bool(diff > 1e-4)}")
    assert diff > 1e-4

# %% [markdown]
# ## 6. A GPT is causal: the future cannot change the past
#
# Position $t$ predicts token $t+1$, so it must not peek at tokens after $t$. Every block masks attention to later
# positions, the FFN and LayerNorms act on each position separately, and so **nothing after position $t$ can reach
# the logits at $t$**. Let us test it on the tiny GPT: change token 5 and look at how much the logits move at each
# position.

# %%
seq = ids[:1].copy()
changed = seq.copy()
changed[0, 5] = (seq[0, 5] + 1) % V
print("original:", seq[0])
print("changed :", changed[0], "(position 5)")
move = np.abs(ops.convert_to_numpy(tiny(changed)) - ops.convert_to_numpy(tiny(seq)))[0].max(axis=-1)
print("max |Δ logits| per position:", np.round(move, 3))
assert move[:5].max() <= 1e-6 and move[5:].min() > 1e-3

# %% [markdown]
# Positions 0–4 do not move at all; positions 5, 6, 7 (which do see the new token) change. To see that it is the
# mask that does this, run the same blocks **without** the causal mask: then every position sees every token, and
# changing token 5 moves all the logits — such a model could "predict" the next token by reading it.


# %%
def forward_without_causal_mask(model, ids):
    x = model.embed(ids)
    for block in model.blocks:
        x = block(x, use_causal_mask=False)
    return ops.matmul(model.ln_f(x), ops.transpose(model.embed.embeddings))


move_unmasked = np.abs(
    ops.convert_to_numpy(forward_without_causal_mask(tiny, changed))
    - ops.convert_to_numpy(forward_without_causal_mask(tiny, seq))
)[0].max(axis=-1)
print("without the mask, max |Δ logits| per position:", np.round(move_unmasked, 3))
assert move_unmasked.min() > 1e-3

# %% [markdown]
# ## 7. Attention in every layer and head
#
# `GPT(...)(ids, return_attention=True)` also returns the attention weights of every block, shape
# $[B, L, h, T, T]$. Here they are for the first sequence of the tiny (random, untrained) GPT. Layers and heads are
# counted from 0, as everywhere in the course (the code's `blocks[0]` is block 1 of the equations in §1).

# %%
_, attention = tiny(ids, return_attention=True)
attention = ops.convert_to_numpy(attention)
print("attention weights shape [B, layers, heads, T, T]:", attention.shape)
assert attention.shape == (B, N, H, T, T)
assert np.allclose(attention.sum(axis=-1), 1.0, atol=1e-5)  # each row is a distribution over keys
assert np.all(np.triu(attention, k=1) == 0.0)  # nothing above the diagonal: causal

fig, axes = plt.subplots(N, H, figsize=(2.6 * H, 2.6 * N), sharex=True, sharey=True)
for l in range(N):
    for head in range(H):
        ax = axes[l, head]
        im = ax.imshow(attention[0, l, head], cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"layer {l}, head {head}", fontsize=9)
        ax.set_xticks(range(T))
        ax.set_yticks(range(T))
        ax.tick_params(labelsize=7)
    axes[l, 0].set_ylabel("query position")
for ax in axes[-1]:
    ax.set_xlabel("key position")
fig.colorbar(im, ax=axes, shrink=0.8, label="attention weight")
fig.suptitle("Tiny random GPT: causal attention weights (sequence 0)")
plt.show()

# %% [markdown]
# Every map is lower-triangular (the causal mask), and row $t$ spreads its weight over positions $0..t$; the first
# row always puts all of it on position 0, the only token it may see. With random weights the patterns have no
# meaning yet — after training, heads specialise (attending to the previous token, to the start of a word, …).

# %% [markdown]
# The same weights, interactively: `AttentionExplorer.from_model(model, ids)` calls `model(ids,
# return_attention=True)` and shows one sequence of the batch. Pick a **layer**, switch **heads** on and off (they
# are drawn side by side), hover over or click a query position to see the keys it attends to, and toggle the causal
# mask. The tokens are the random ids themselves. Like the plot above, the explorer counts layers and heads from 0.

# %% tags=["nbval-ignore-output"]
from lessons_lib import AttentionExplorer

gpt_view = AttentionExplorer.from_model(
    tiny,
    ids,
    batch_index=0,
    heads="all",
    query=T - 1,
    title="tiny random GPT, sequence 0: every layer and head",
)
gpt_view

# %%
print(
    "explorer:",
    gpt_view.num_layers,
    "layers x",
    gpt_view.num_heads,
    "heads,",
    gpt_view.mask_kind,
    "mask",
)
for layer in range(N):
    best = [gpt_view.top_keys(T - 1, layer=layer, head=hd, k=1)[0][0] for hd in range(H)]
    print(f"layer {layer}: the last position attends most to positions {best} (heads 0..{H - 1})")
assert gpt_view.mask_kind == "causal" and np.allclose(gpt_view.weights, attention[0], atol=1e-6)

# %% [markdown]
# ## 8. Exercises
#
# ### Exercise 1 — count the parameters yourself
#
# Write `my_gpt_param_count(vocab_size, max_len, d_model, num_layers, d_ff=None, use_bias=True,
# tie_embeddings=True, positional="learned")` from the table of section 4, without calling `gpt_param_count`,
# `block_param_count` or Keras' `count_params` (the check refuses them). Remember: `d_ff` defaults to `4 * d_model`; without biases each LayerNorm keeps only
# $\gamma$; sinusoidal positions have no parameters; an untied output layer is a $d \times V$ matrix without bias.


# %%
def my_gpt_param_count(
    vocab_size,
    max_len,
    d_model,
    num_layers,
    d_ff=None,
    use_bias=True,
    tie_embeddings=True,
    positional="learned",
):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
param_cases = [
    (65, 8, 32, 2),
    (65, 64, 128, 4, None, False),
    (6, 8, 4, 1, 16, True, True, "sinusoidal"),
    (65, 8, 32, 2, None, True, False),
    (50257, 1024, 768, 12),
    (50257, 1024, 768, 12, None, True, False),
]
COUNTERS = ("gpt_param_count", "block_param_count", "count_params")


check(
    my_gpt_param_count,
    gpt_param_count,
    inputs=param_cases,
    hint=(
        "Go down the table of section 4: the embeddings, then one block's attention, FFN and two LayerNorms "
        "(times the number of blocks), the final LayerNorm, and the output matrix only when it is not tied.",
        "per block: 4d² (+4d) for attention, 2·d·d_ff (+d_ff+d) for the FFN, 2 LayerNorms of 2d (or d); "
        "positions add max_len·d only when learned; an untied head adds d·V",
    ),
    forbid=COUNTERS,
)


# %% tags=["solution"]
def my_gpt_param_count(
    vocab_size,
    max_len,
    d_model,
    num_layers,
    d_ff=None,
    use_bias=True,
    tie_embeddings=True,
    positional="learned",
):
    d, f = d_model, 4 * d_model if d_ff is None else d_ff
    layer_norm_size = 2 * d if use_bias else d  # γ and β, or γ only
    attention = 4 * d * d + (4 * d if use_bias else 0)  # W_Q, W_K, W_V, W_O (+ biases)
    ffn = d * f + f * d + ((f + d) if use_bias else 0)  # W_1, W_2 (+ b_1, b_2)
    block = attention + ffn + 2 * layer_norm_size
    embeddings = vocab_size * d + (max_len * d if positional == "learned" else 0)
    head = 0 if tie_embeddings else d * vocab_size
    return embeddings + num_layers * block + layer_norm_size + head


assert check(my_gpt_param_count, gpt_param_count, inputs=param_cases, forbid=COUNTERS)

# %% [markdown]
# ### Exercise 2 — the thread's output layer from `block_out`
#
# Write `output_layer(block_out, E, gamma, beta, eps=1e-5)` that returns the pair `(logits, probs)`: the final
# LayerNorm (written out with `mean` and `var`, not `lessons_lib.layer_norm`), the tied output layer and a row-wise
# softmax (subtract each row's maximum before `np.exp`; not `lessons_lib.softmax`). The check refuses the library's
# `layer_norm` and `softmax`, and runs it on the thread, on a random case with non-trivial $\gamma$ and $\beta$, and on
# one whose logits are in the thousands (where an `np.exp` without the maximum subtracted overflows).


# %%
def output_layer(block_out, E, gamma, beta, eps=1e-5):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
def reference_output_layer(block_out, E, gamma, beta, eps=1e-5):
    logits_ref = layer_norm(block_out, gamma, beta, eps) @ E.T
    return logits_ref, softmax(logits_ref, axis=-1)


case_rng = np.random.default_rng(1)
output_cases = [
    (s["block_out"], W["E"], W["gamma_f"], W["beta_f"]),
    (
        case_rng.normal(size=(3, 5)),
        case_rng.normal(size=(7, 5)),
        1 + 0.5 * case_rng.normal(size=5),
        case_rng.normal(size=5),
    ),
    (s["block_out"], 500 * W["E"], W["gamma_f"], W["beta_f"]),  # logits up to about 2,000
]
LIBRARY_LN_SOFTMAX = ("lessons_lib", "layer_norm", "softmax", "LayerNormalization")
check(
    output_layer,
    reference_output_layer,
    inputs=output_cases,
    hint=(
        "Three steps, each row on its own: normalize (mean and variance over the features), score every word "
        "with the tied embedding table, and turn each row of scores into probabilities without overflowing.",
        "mu, var over axis=-1 with keepdims=True; logits = h @ E.T ([T, V]); "
        "e = np.exp(logits - logits.max(axis=-1, keepdims=True)); probs = e / e.sum(axis=-1, keepdims=True)",
    ),
    forbid=LIBRARY_LN_SOFTMAX,
)


# %% tags=["solution"]
def output_layer(block_out, E, gamma, beta, eps=1e-5):
    mu = block_out.mean(axis=-1, keepdims=True)
    var = block_out.var(axis=-1, keepdims=True)
    h = gamma * (block_out - mu) / np.sqrt(var + eps) + beta  # final LayerNorm
    logits = h @ E.T  # tied output layer
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return logits, e / e.sum(axis=-1, keepdims=True)


assert check(output_layer, reference_output_layer, inputs=output_cases, forbid=LIBRARY_LN_SOFTMAX)


# the check refuses an overflowing softmax and the library's own functions, which the exercise rules out
def output_layer_naive_softmax(block_out, E, gamma, beta, eps=1e-5):
    mu, var = block_out.mean(axis=-1, keepdims=True), block_out.var(axis=-1, keepdims=True)
    logits = (gamma * (block_out - mu) / np.sqrt(var + eps) + beta) @ E.T
    return logits, np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)


def output_layer_from_library(block_out, E, gamma, beta, eps=1e-5):
    logits = layer_norm(block_out, gamma, beta, eps) @ E.T
    return logits, softmax(logits, axis=-1)


for wrong in (output_layer_naive_softmax, output_layer_from_library):
    with np.errstate(over="ignore", invalid="ignore"), contextlib.redirect_stdout(io.StringIO()):
        verdict = check(
            wrong, reference_output_layer, inputs=output_cases, forbid=LIBRARY_LN_SOFTMAX
        )
    assert verdict is False

# %% [markdown]
# ## Summary
#
# The whole GPT forward pass, with the thread's sizes ($T = 6$, $d_{model} = 4$, $V = 6$) and the lesson that built
# each step:
#
# ```text
#  "to be or not to be"
#        │ tokenize (02)                                   ids               [T]
#        ▼
#  E[ids]  +  P[0:T]   (02, 03)                            x⁽⁰⁾              [T, d_model]
#        │
#  ┌─────▼─────────────────── block l = 1..N (04–07) ───────────────────────┐
#  │  Q, K, V = x W_Q, x W_K, x W_V ─► split heads         [h, T, d_k]      │
#  │  softmax(Q Kᵀ / √d_k + causal mask) V ─► concat W_O   [T, d_model]     │
#  │  residual + LayerNorm  (pre-norm: LN before, post-norm: LN after)      │
#  │  FFN: act(x W₁ + b₁) W₂ + b₂                          [T, d_ff]→[T, d] │
#  │  residual + LayerNorm                                 x⁽ˡ⁾ [T, d_model]│
#  └─────┬──────────────────────────────────────────────────────────────────┘
#        ▼
#  h = LN_f(x⁽ᴺ⁾)                  (08)                    [T, d_model]
#  logits = h Eᵀ   (tied output)   (08)                    [T, V]
#  p = softmax(logits) per row     (08)                    [T, V]  → row t: p(token t+1 | tokens 0..t)
# ```
#
# * A GPT is embedding + positions, $N$ causal Transformer blocks, a final LayerNorm and a tied output layer.
#   After post-norm blocks the final LayerNorm is nearly the identity only while the last block's $\mathrm{LN}_2$
#   has $\gamma = 1$, $\beta = 0$ (the thread's untrained weights; with other values it changed the thread's vectors
#   by up to 0.95); with pre-norm (GPT-2) it is essential.
# * Tying $W_{out} = E^\top$ makes each logit a dot product between the model's vector and a word's embedding, and
#   saves $V\,d_{model}$ parameters — 38.6 M of GPT-2 small's 124.4 M.
# * Parameters: $(V + T_{max})\,d + L\,(12 d^2 + 13 d) + 2d$ with biases and $d_{ff} = 4d$; checked against
#   `count_params()` and against each component's variables.
# * Our block equals a block built from `keras.layers` (pre- and post-norm, causal) to $10^{-5}$, and the thread's
#   NumPy numbers equal the Keras `GPT`'s.
# * The causal mask makes the logits at position $t$ independent of every later token, so one pass gives $T$
#   honest next-token predictions.
# * The thread predicts "be" after "to be or not to be" — with **random** weights, so it means nothing yet.
# * `AttentionExplorer.from_model(gpt, ids)` shows every layer's and head's attention weights interactively.
#
# **Next: training (lesson 09).** We measure how wrong those probabilities are with the cross-entropy loss, and
# let gradient descent adjust every one of the parameters we just counted.
#
# *References.* Vaswani et al. (2017), *Attention Is All You Need*. Radford et al. (2018), *Improving Language
# Understanding by Generative Pre-Training*. Radford et al. (2019), *Language Models are Unsupervised Multitask
# Learners*. Press & Wolf (2017), *Using the Output Embedding to Improve Language Models*. Inan, Khosravi & Socher
# (2017), *Tying Word Vectors and Word Classifiers*. Xiong et al. (2020), *On Layer Normalization in the Transformer
# Architecture*.
