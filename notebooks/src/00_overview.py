# %% [markdown]
# # 00 · Overview: how a Transformer language model is built
#
# Welcome to **LLM Architecture: From Theory to Practice**. Over the next lessons we build a small GPT-style
# language model piece by piece: every formula is derived, computed by hand on numbers small enough to check with a
# pencil, checked against an independent implementation (NumPy ↔ TensorFlow ↔ Keras), and then kept in a small
# library, `lessons_lib`, that the later lessons import.
#
# This first lesson gives you the whole picture before we zoom in. We run the complete pipeline **once**, end to
# end, on a real line of Shakespeare, and look at the shape of the data at every arrow.
#
# **By the end of this lesson you can**
#
# 1. say why Transformers replaced recurrent networks (RNNs) — parallel computation over positions and a direct
#    path between any two tokens — and show it with a measurement;
# 2. name the stages of a Transformer language model (input data → preprocessing → embedding → self-attention →
#    feed-forward network → output layer) and the tensor shape that flows along each arrow;
# 3. explain why an **untrained** model predicts every character with probability ≈ $1/V$ and starts with a loss of
#    $\ln V$;
# 4. use the course: exercises that check themselves, the GPU (if any), Binder, and the lesson map.

# %% tags=["nbval-ignore-output"]
import lessons_lib

info = lessons_lib.setup(seed=0)

# %%
import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from keras import ops
from matplotlib.patches import FancyBboxPatch, Rectangle

from lessons_lib import (
    GPT,
    CharTokenizer,
    FeedForward,
    MultiHeadAttention,
    TokenAndPositionEmbedding,
    TransformerBlock,
    block_param_count,
    block_weights,
    causal_mask,
    check,
    gpt_param_count,
    layer_norm,
    load_tiny_shakespeare,
    show_source,
    transformer_block,
)

# %% [markdown]
# ## 1. Why Transformers replaced RNNs
#
# Before 2017 the standard model for text was the **recurrent neural network**. It reads one token at a time and
# carries a hidden state $h_t$ from step to step:
#
# $$h_t = \tanh\left(h_{t-1} W_h + x_t W_x\right).$$
#
# That one line has two consequences.
#
# * **It is sequential.** $h_t$ needs $h_{t-1}$, which needs $h_{t-2}$, … A sequence of $T$ tokens takes $T$
#   steps one after the other, however many processor cores you have.
# * **Distant tokens are far apart.** Token $j$ can influence position $i > j$ only through the $i - j$ steps in
#   between. The gradient $\partial h_i / \partial x_j$ is a *product* of $i - j$ Jacobian matrices, so it tends to
#   shrink or grow geometrically with the distance: the **vanishing / exploding gradient** problem (Bengio, Simard
#   & Frasconi, 1994; Pascanu, Mikolov & Bengio, 2013). LSTMs (Hochreiter & Schmidhuber, 1997) soften it, but they
#   are still sequential.
#
# **Self-attention** (Vaswani et al., 2017, *Attention Is All You Need*) computes every output position directly
# from *all* input positions:
#
# $$\text{out}_i = \sum_j A_{ij}\, v_j, \qquad A = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right),$$
#
# one matrix product for all positions at once, with a path of length 1 between any two tokens. The paper's
# Table 1 sums it up ($n$ = sequence length, $d$ = model width):
#
# | layer | work per layer | sequential steps | longest path between two tokens |
# |---|---|---|---|
# | recurrent | $O(n\,d^2)$ | $O(n)$ | $O(n)$ |
# | self-attention | $O(n^2 d)$ | $O(1)$ | $O(1)$ |
#
# The price is the $n^2$: attention compares every pair of positions, which is why context lengths are limited.
#
# ### A small measurement: how much does a token $d$ steps back still matter?
#
# We take a random RNN and a random (causal) self-attention layer, feed both the same random sequence of 64
# vectors, and measure $\lVert \partial\, \text{output}_{63} / \partial x_{63-d} \rVert$, the size of the gradient
# that connects the last output to the input $d$ positions earlier. For the RNN we write the Jacobian product out
# in NumPy; for attention we let TensorFlow compute it. The RNN is tried with recurrent weights $W_h = g\,Q$
# ($Q$ a random orthogonal matrix) at two gains $g$.

# %%
T_DEMO, WIDTH = 64, 32
rng = np.random.default_rng(0)
X_demo = rng.normal(size=(T_DEMO, WIDTH)).astype("float32")
W_x = rng.normal(size=(WIDTH, WIDTH)) / np.sqrt(WIDTH)
Q_orth = np.linalg.qr(rng.normal(size=(WIDTH, WIDTH)))[0]


def rnn_influence(gain):
    """||d h_last / d x_(last-d)|| for d = 0..T-1, for h_t = tanh(h_(t-1) W_h + x_t W_x) with W_h = gain * Q."""
    W_h = gain * Q_orth
    h, states = np.zeros(WIDTH), []
    for x_t in X_demo:
        h = np.tanh(h @ W_h + x_t @ W_x)
        states.append(h)
    J = np.eye(WIDTH)  # d h_last / d h_t, starting at t = last
    norms = []
    for h_t in reversed(states):
        D = np.diag(1.0 - h_t**2)  # tanh'(pre-activation) = 1 - h_t^2
        norms.append(np.linalg.norm(W_x @ D @ J))
        J = Q_orth @ D @ J * gain  # one more step back: multiply by W_h D
    return np.array(norms)


def attention_influence():
    """||d out_last / d x_(last-d)|| for one random causal self-attention layer (lessons_lib, 1 head)."""
    mha = MultiHeadAttention(WIDTH, num_heads=1)
    x = tf.constant(X_demo[None])
    with tf.GradientTape() as tape:
        tape.watch(x)
        out_last = mha(x, use_causal_mask=True)[0, -1]  # [WIDTH]
    jac = tape.jacobian(out_last, x).numpy()[:, 0]  # [WIDTH, T, WIDTH]
    return np.linalg.norm(jac, axis=(0, 2))[::-1]  # index d = distance back


influence = {
    "RNN, g = 1 (vanishing)": rnn_influence(1.0),
    "RNN, g = 3 (exploding)": rnn_influence(3.0),
    "self-attention": attention_influence(),
}
distances = [1, 10, 30, 60]
print(f"{'distance d':<24}" + "".join(f"{d:>10}" for d in distances))
for name, values in influence.items():
    print(f"{name:<24}" + "".join(f"{values[d]:>10.1e}" for d in distances))

# %%
fig, ax = plt.subplots(figsize=(7, 3.6))
for (name, values), style in zip(influence.items(), ("-", "--", "-")):
    ax.semilogy(
        np.arange(1, T_DEMO), values[1:], style, label=name, lw=2 if "attention" in name else 1.5
    )
ax.set_xlabel("distance d between input and output position")
ax.set_ylabel(r"$\| \partial\, \mathrm{out}_{63} / \partial x_{63-d} \|$")
ax.set_title("Gradient reaching a token d positions back (random weights)")
ax.legend()
ax.grid(alpha=0.3)
plt.tight_layout()
plt.show()

# %% [markdown]
# Is there a **trend with distance**? Fit a straight line to $\log_{10}$ of each curve against $d = 1 \dots 63$: its
# slope says by what factor the influence changes over the whole range, and the correlation $r$ between $d$ and
# $\log_{10}$ influence says how much of the curve the trend explains ($r = \pm 1$: a perfect geometric trend,
# $r = 0$: none). For attention we also ask how often a correlation at least as large arises **by chance**: shuffle
# the distances 2000 times and count ($p$, a permutation test).


# %%
def trend(values):
    """The fitted factor by which values[d] changes from d = 1 to d = 63 (log-linear fit), and Pearson's r."""
    d_back, log_values = np.arange(1, T_DEMO), np.log10(values[1:])
    slope = np.polyfit(d_back, log_values, 1)[0]
    return 10.0 ** (slope * (d_back[-1] - d_back[0])), np.corrcoef(d_back, log_values)[0, 1]


trends = {name: trend(values) for name, values in influence.items()}
print(f"{'':<24}{'fitted change, d = 1 -> 63':>28}{'r':>8}")
for name, (factor, r) in trends.items():
    print(f"{name:<24}{factor:>28.1e}{r:>8.2f}")

log_attn = np.log10(influence["self-attention"][1:])
r_attn = trends["self-attention"][1]
rng_perm = np.random.default_rng(1)
r_shuffled = [np.corrcoef(rng_perm.permutation(T_DEMO - 1), log_attn)[0, 1] for _ in range(2000)]
p_value = np.mean(np.abs(r_shuffled) >= abs(r_attn))
print(
    f"\nself-attention: |r| >= {abs(r_attn):.2f} in {p_value:.0%} of 2000 shuffles of the distances"
)

rnn_small, rnn_big, attn = influence.values()
assert rnn_small[60] < 1e-6 * rnn_small[1]  # the signal from 60 steps back has all but vanished
assert rnn_big[60] > 1e3 * rnn_big[1]  # ... or blown up
assert trends["RNN, g = 1 (vanishing)"][1] < -0.99 and trends["RNN, g = 3 (exploding)"][1] > 0.99
# attention: no trend with distance. The fitted line changes by less than a factor 3 over the whole range
# (the RNNs' change by many powers of ten), and its correlation is one that shuffled distances give by chance.
assert 1 / 3 < trends["self-attention"][0] < 3
assert p_value > 0.05

# %% [markdown]
# The RNN's curves are straight lines on a log scale ($|r| > 0.99$): geometric decay or growth with distance, exactly
# what a product of $d$ matrices does. Training such a network to use a word 60 positions back is like hearing a
# whisper through 60 walls. The attention curve jumps around (its random weights happen to like some positions more
# than others) but shows **no trend with distance**: its fitted line changes by less than a factor 3 from $d = 1$ to
# $d = 63$, and its weak correlation is one that shuffled distances produce by chance. Position 63 is wired directly
# to position 3, just as to position 62. Training makes those weights meaningful; the *architecture* already
# guarantees the short path.
#
# *(The article this course is based on makes the same two points in its sections 3.1 and 3.3 — parallel
# computation and long-range dependencies. Here you have seen them measured.)*

# %% [markdown]
# ## 2. The pipeline
#
# The source article (section 2) draws a language model as a chain of six stages. Here it is, translated, with
# the lesson that builds each stage:
#
# ```
#   input data ─► preprocessor ─► word embedding ─► self-attention ─► feed-forward network ─► output layer
#   输入数据        预处理器          词嵌入              自注意力机制         前馈神经网络              输出层
#   (text)         (lesson 01)      (02, 03)            (04, 05)            (06)                     (08)
# ```
#
# | stage | 中文 | what it does | lesson |
# |---|---|---|---|
# | input data | 输入数据 | a large amount of raw text (here: Tiny Shakespeare) | 00, 01 |
# | preprocessor | 预处理器 | cuts the text into **tokens** and maps each to an integer **id** | 01 |
# | word embedding | 词嵌入 | looks up a learned vector for each id, and adds position information | 02, 03 |
# | self-attention | 自注意力机制 | lets every position gather information from the positions before it | 04, 05 |
# | feed-forward network | 前馈神经网络 | transforms each position's vector separately, with the same small MLP | 06 |
# | output layer | 输出层 | turns each vector into a score (**logit**) per vocabulary token, and a softmax into probabilities | 08 |
#
# Two things the six boxes leave out, which we add (lessons 03, 07 and 08):
#
# * **Positional encoding.** Attention by itself does not know the order of the tokens, so position information
#   is added to the embeddings (the article lists this as step 2 of its section 3.2).
# * **Residual connections and LayerNorm, and repetition.** Attention and the FFN are each wrapped as
#   $x + \mathrm{sublayer}(\mathrm{LN}(x))$. The pair forms one **Transformer block**, and real models stack
#   $N$ of them (12 in GPT-2 small, 96 in GPT-3). Here we use one block.
#
# The model we build is a **decoder-only** (GPT-style) language model: at each position it predicts the *next*
# token, and a causal mask stops it from looking ahead. (The original Transformer was an encoder–decoder for
# translation; BERT is encoder-only and is used for understanding tasks such as classification, not on its own for
# translation or generation; GPT-3 is decoder-only.) Lessons 11 and 12 build the encoder too: the same blocks
# without the causal mask, read by a classifier and by a question-answering head; lesson 13 joins an encoder and a
# decoder with cross-attention and translates English into Spanish.

# %% [markdown]
# ## 3. The pipeline, run once on a real sentence
#
# The model's weights are **random**: nothing is trained in this lesson. Everything it predicts is therefore
# gibberish, until lesson 09 trains it. What we *can* see already is how the data flows and what shape it has.
#
# ### 3.1 Input data: Tiny Shakespeare
#
# The course trains on *Tiny Shakespeare* (about 1.1 million characters of Shakespeare's plays, collected by
# Andrej Karpathy for char-rnn). `load_tiny_shakespeare()` downloads it once, checks its SHA-256, and caches it.

# %%
text = load_tiny_shakespeare()
print(f"{len(text):,} characters; the first 100:")
print(text[:100])

sentence = "Before we proceed any further, hear me speak."
assert sentence in text
print(
    f"Our sentence ({len(sentence)} characters, at offset {text.index(sentence)}):", repr(sentence)
)

# %% [markdown]
# ### 3.2 Preprocessing: characters → ids
#
# The simplest tokenizer uses one token per character. Its vocabulary is the sorted set of distinct characters
# of the corpus, and each character's id is its position in that list. Lesson 01 builds this tokenizer and a
# better one (byte-pair encoding).

# %%
tok = CharTokenizer.from_text(text)
V = tok.vocab_size
print("vocabulary size V =", V)
print("vocabulary:", "".join(tok.tokens).replace("\n", "\\n"))

ids_list = tok.encode(sentence)
print("ids:", ids_list)
assert tok.decode(ids_list) == sentence  # the round trip is exact
assert V == 65

ids = np.array([ids_list], dtype="int32")  # a batch of one sequence: [batch, T]
T = ids.shape[1]
print("ids shape [batch, T]:", ids.shape)

# %% [markdown]
# ### 3.3 Embedding: ids → vectors
#
# Each id selects one row of a learned table $E$ of shape $[V, d_{\text{model}}]$ — a lookup, the same as
# multiplying a one-hot vector by $E$ (lesson 02). A second learned table $P$ adds a vector per position
# (lesson 03): $x_t = E[\text{id}_t] + P[t]$.
#
# Our model's sizes are tiny so that everything runs in seconds on a laptop:

# %%
D_MODEL, NUM_HEADS, D_FF, MAX_LEN = 64, 4, 256, 128  # d_ff = 4 * d_model, as in the paper and GPT-2

embed = TokenAndPositionEmbedding(V, MAX_LEN, D_MODEL, positional="learned")
x = embed(ids)
print("x = E[ids] + P[:T]   shape [batch, T, d_model]:", tuple(x.shape))

# %% [markdown]
# ### 3.4 Self-attention, 3.5 FFN, 3.6 residual + LayerNorm: one Transformer block
#
# We create one `TransformerBlock` and, to see every arrow, run its parts one by one. It is a **pre-norm** block
# (as in GPT-2; lesson 07 compares it with the original paper's post-norm):
#
# $$h = x + \mathrm{MHA}(\mathrm{LN}_1(x)), \qquad y = h + \mathrm{FFN}(\mathrm{LN}_2(h)).$$
#
# * **Multi-head self-attention** (lessons 04–05) with 4 heads of size $d_k = 64/4 = 16$ and a **causal mask**:
#   position $t$ may only look at positions $0 \dots t$, because its job is to predict token $t+1$. Like positions,
#   **heads are counted from 0** throughout the course: the four heads here are head 0, head 1, head 2 and head 3,
#   and head $i$'s weights are `weights[:, i]` in the code.
# * **Feed-forward network** (lesson 06): $\mathrm{FFN}(x) = \mathrm{GELU}(x W_1 + b_1) W_2 + b_2$, widening
#   each vector from 64 to 256 numbers and back.
# * **Residual connection + LayerNorm** (lesson 07): each sublayer *adds* its result to its input.

# %%
block = TransformerBlock(D_MODEL, NUM_HEADS, D_FF, norm_first=True, activation="gelu")
block.build(x.shape)  # creates the weights
# its two sublayers
assert isinstance(block.attn, MultiHeadAttention) and isinstance(block.ffn, FeedForward)

attn_out, attn_weights = block.attn(block.ln1(x), use_causal_mask=True, return_attention=True)
h = x + attn_out  # residual connection around attention
ffn_hidden = block.ffn.w1(block.ln2(h))  # GELU(LN2(h) W1 + b1): the wide hidden layer
ffn_out = block.ffn.w2(ffn_hidden)
y = h + ffn_out  # residual connection around the FFN

print("attention weights  [batch, heads, T_query, T_key]:", tuple(attn_weights.shape))
print("attention output   [batch, T, d_model]:           ", tuple(attn_out.shape))
print("FFN hidden layer   [batch, T, d_ff]:              ", tuple(ffn_hidden.shape))
print("block output y     [batch, T, d_model]:           ", tuple(y.shape))

# the same block in one call gives the same result
y_block = block(x, use_causal_mask=True)
assert np.max(np.abs(y_block.numpy() - y.numpy())) <= 1e-5

w = attn_weights.numpy()
assert np.allclose(w.sum(axis=-1), 1.0, atol=1e-5)  # each row of weights sums to 1
assert np.all(w[..., ~causal_mask(T)] == 0.0)  # no position looks at the future

# %% [markdown]
# ### 3.7 Output layer: vectors → logits → probabilities
#
# A final LayerNorm, then a score (**logit**) for every token of the vocabulary: $z = \mathrm{LN}_f(y)\,E^\top$.
# Multiplying by the *transposed embedding table* reuses $E$ as the output matrix ("tied embeddings", Press & Wolf,
# 2017, as in GPT-2): the logit of token $v$ is the dot product of the position's vector with $v$'s embedding.
# A softmax over the vocabulary turns logits into probabilities:
#
# $$p(\text{next token} = v) = \frac{e^{z_v}}{\sum_{u=1}^{V} e^{z_u}}.$$

# %%
ln_f = keras.layers.LayerNormalization(epsilon=1e-5)
logits = ops.matmul(ln_f(y), ops.transpose(embed.embeddings))  # [batch, T, V]
probs = ops.softmax(logits, axis=-1)
print("logits [batch, T, V]:", tuple(logits.shape))
print("probs  [batch, T, V]:", tuple(probs.shape))
assert np.allclose(probs.numpy().sum(axis=-1), 1.0, atol=1e-5)

# %% [markdown]
# ### 3.8 The shape at every arrow
#
# The table below is generated from the tensors we just computed, together with the number of learned parameters
# each stage owns.


# %%
def n_params(*layers):
    return sum(int(np.prod(v.shape)) for layer in layers for v in layer.weights)


rows = [  # (stage, tensor, shape, axes, learned parameters of the stage, 中文)
    ("input data", "text", f"str, {len(sentence)} chars", "", 0, "输入数据"),
    ("preprocessor", "ids", str(ids.shape), "[batch, T]", 0, "预处理器"),
    (
        "embedding",
        "x = E[ids] + P[t]",
        str(tuple(x.shape)),
        "[batch, T, d_model]",
        n_params(embed),
        "词嵌入 + 位置编码",
    ),
    (
        "self-attention",
        "weights A",
        str(tuple(attn_weights.shape)),
        "[batch, heads, T, T]",
        n_params(block.attn),
        "自注意力机制",
    ),
    (
        "",
        "h = x + MHA(LN1(x))",
        str(tuple(h.shape)),
        "[batch, T, d_model]",
        n_params(block.ln1),
        "残差连接 + 层归一化",
    ),
    (
        "feed-forward",
        "GELU(LN2(h) W1 + b1)",
        str(tuple(ffn_hidden.shape)),
        "[batch, T, d_ff]",
        n_params(block.ffn),
        "前馈神经网络",
    ),
    (
        "",
        "y = h + FFN(LN2(h))",
        str(tuple(y.shape)),
        "[batch, T, d_model]",
        n_params(block.ln2),
        "残差连接 + 层归一化",
    ),
    (
        "output layer",
        "logits = LN_f(y) E^T",
        str(tuple(logits.shape)),
        "[batch, T, V]",
        n_params(ln_f),
        "输出层",
    ),
    ("", "probs = softmax(logits)", str(tuple(probs.shape)), "[batch, T, V]", 0, ""),
]
header = ("stage", "tensor", "shape", "axes", "params", "中文")
widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(5)]


def table_line(r):
    cells = [f"{r[i]!s:<{widths[i]}}" for i in range(4)] + [f"{r[4]!s:>{widths[4]}}", r[5]]
    return "  ".join(cells).rstrip()


print(table_line(header))
print("-" * (sum(widths) + 2 * 5 + 8))
for r in rows:
    print(table_line(r))
total = sum(r[4] for r in rows)
print(f"\ntotal learned parameters: {total:,} (the output layer reuses E, so it adds none)")
assert total == gpt_param_count(V, MAX_LEN, D_MODEL, num_layers=1, d_ff=D_FF)
assert n_params(block) == block_param_count(D_MODEL, D_FF)

# %% [markdown]
# Notice that the shape stays $[1, 45, 64]$ through the whole block: attention and the FFN take a vector per
# position and return a vector per position of the same size. That is what lets us stack blocks, and what makes
# the residual additions $x + \ldots$ possible. Only the attention weights are $T \times T$ — the $n^2$ of
# section 1 — and only the FFN's hidden layer is wider.

# %% [markdown]
# ### 3.9 What an untrained model says
#
# At the last position (after "speak.") the model predicts the next character. The corpus continues with a
# newline. Here are the model's five favourite characters, their probabilities, and how they compare with
# the uniform guess $1/V = 1/65 \approx 0.0154$:

# %%
p_last = probs.numpy()[0, -1]
true_next = text[text.index(sentence) + len(sentence)]
print(f"{'next char':<10}{'p':>8}{'p x V':>8}")
for v in np.argsort(-p_last)[:5]:
    print(f"{tok.tokens[v]!r:<10}{p_last[v]:>8.3f}{p_last[v] * V:>8.2f}")
print(f"\ntrue next character {true_next!r}: p = {p_last[tok.encode(true_next)[0]]:.3f}")
print(
    f"largest / smallest probability at this position: {p_last.max() * V:.2f}/V and {p_last.min() * V:.2f}/V"
)
assert np.all((p_last > 1 / (3 * V)) & (p_last < 3 / V))  # all within a factor 3 of uniform
assert p_last.max() * V < 2  # none even twice as likely as chance

# %% [markdown]
# Nearly uniform: no character is even twice as likely as chance. Why? The embedding table starts with
# small random numbers (uniform in $[-0.05, 0.05]$), so every logit is a dot product of small numbers, close to 0,
# and $\mathrm{softmax}(z) \approx \mathrm{softmax}(0) = 1/V$ for every token.
#
# **The initial loss.** A language model is trained to minimise the **cross-entropy**: the average, over positions,
# of $-\ln p(\text{the true next token})$. If every probability is $1/V$, that is $-\ln(1/V) = \ln V$. So before
# training the loss should be close to $\ln 65 \approx 4.17$ — a useful sanity check at the start of every training
# run (a much larger initial loss means the model is *confidently* wrong, which usually points to a bug or a bad
# initialisation).

# %%
targets = ids[0, 1:]  # position t predicts the character at t + 1
p_true = probs.numpy()[0, :-1][np.arange(T - 1), targets]
loss = float(np.mean(-np.log(p_true)))
loss_keras = float(
    ops.mean(
        keras.losses.sparse_categorical_crossentropy(targets, logits[0, :-1], from_logits=True)
    )
)
print(f"cross-entropy of the untrained model on the sentence: {loss:.3f}")
print(f"ln V = ln {V}:                                         {np.log(V):.3f}")
print(f"perplexity exp(loss) = {np.exp(loss):.1f}  (like guessing among ~{V} characters)")
assert abs(loss - loss_keras) < 1e-4
assert abs(loss - np.log(V)) / np.log(V) < 0.10

# %% [markdown]
# And if we ask the model to continue the sentence, always choosing the most probable next character ("greedy
# decoding", lesson 10), we get — as promised — gibberish:


# %%
def generate_greedy(prompt, n_new):
    """Append the most probable next character n_new times (a preview of lesson 10)."""
    seq = tok.encode(prompt)
    for _ in range(n_new):
        window = np.array([seq[-MAX_LEN:]], dtype="int32")
        z = ops.matmul(
            ln_f(block(embed(window), use_causal_mask=True)), ops.transpose(embed.embeddings)
        )
        seq.append(int(np.argmax(z.numpy()[0, -1])))
    return tok.decode(seq)


print(repr(generate_greedy("Before we proceed", 30)))

# %% [markdown]
# ### 3.10 A check: the same forward pass in plain NumPy
#
# Nothing above is magic. Here is the whole pipeline again, written with NumPy and the reference functions of
# `lessons_lib`, each derived in its own lesson: the block is `transformer_block` (lessons 07–08; its attention is
# `multi_head_attention`, lesson 05), which takes the block's weights as a dict of NumPy arrays (`block_weights`
# reads them out of the Keras block) and returns every intermediate. It must give the same logits, and the same
# intermediates as the step-by-step run of section 3.4. And the assembled model, `lessons_lib.GPT` (lesson 08), with
# the same weights copied in, must agree too.


# %%
def numpy_forward(ids_row):
    """Embedding -> pre-norm block -> final LayerNorm -> tied output layer, in NumPy; (logits, block steps)."""
    E = embed.token_embedding.embeddings.numpy()
    P = embed.position_embedding.embeddings.numpy()
    t = len(ids_row)
    x = E[ids_row] + P[:t]  # embedding + positions   [T, d]
    steps = transformer_block(
        x, block_weights(block), NUM_HEADS, norm_first=True, activation="gelu", mask=causal_mask(t)
    )
    gamma_f, beta_f = (v.numpy() for v in ln_f.weights)
    return layer_norm(steps["block_out"], gamma_f, beta_f) @ E.T, steps  # output layer   [T, V]


logits_np, steps_np = numpy_forward(ids[0])
diff_np = np.max(np.abs(logits_np - logits.numpy()[0]))
for name, ours in [
    ("weights", w[0]),
    ("residual_1", h.numpy()[0]),
    ("ffn_hidden", ffn_hidden.numpy()[0]),
    ("block_out", y.numpy()[0]),
]:
    assert np.max(np.abs(steps_np[name] - ours)) <= 1e-5, name  # section 3.4, step by step

gpt = GPT(V, MAX_LEN, D_MODEL, NUM_HEADS, num_layers=1, d_ff=D_FF)
gpt(ids)  # build, then copy our weights in
gpt.embed.set_weights(embed.get_weights())
gpt.blocks[0].set_weights(block.get_weights())
gpt.ln_f.set_weights(ln_f.get_weights())
diff_gpt = np.max(np.abs(gpt(ids).numpy() - logits.numpy()))

print("max |logits(NumPy) - logits(Keras)|           ≤ 1e-5:", diff_np <= 1e-5)
print("max |logits(lessons_lib.GPT) - logits(Keras)| ≤ 1e-5:", diff_gpt <= 1e-5)
assert diff_np <= 1e-5 and diff_gpt <= 1e-5

# %% [markdown]
# That assembled model, `lessons_lib.GPT`, is short enough to read now. Its `call` (docstring left out) is the
# pipeline of section 2: embedding (and dropout, used only in training), the blocks, each with its causal mask, then
# `self.logits`, the final LayerNorm and the tied output layer of section 3.7. Lesson 08 builds it; every lesson
# shows the part of `lessons_lib` it builds the same way, with `show_source`.

# %%
show_source(GPT.call, docstring=False)

# %% [markdown]
# ### 3.11 Two pictures
#
# First the pipeline we just ran, with the shapes measured above on its arrows. Then the attention weights of the
# random model for heads 0 and 1 (heads 2 and 3 look alike): row $t$ shows how much position $t$ (the query) takes
# from each position up to $t$ (the keys).


# %%
def draw_pipeline(stages, arrow_labels, block=(3, 4)):
    """Boxes and arrows. stages = [(title, detail)]; arrow_labels[i] labels the arrow leaving stage i (the last
    arrow leads out of the picture); the stages numbered `block` are framed as one Transformer block."""
    box_w, gap, box_h = 1.6, 1.1, 1.1
    xs = [i * (box_w + gap) for i in range(len(stages))]
    fig, ax = plt.subplots(figsize=(16, 3.2))
    colours = ["#eeeeee", "#dde8f7", "#dbeedd", "#fbe3c8", "#fbe3c8", "#ecdcf3"]
    for xpos, (title, detail), colour in zip(xs, stages, colours):
        ax.add_patch(
            FancyBboxPatch(
                (xpos, 0), box_w, box_h, boxstyle="round,pad=0.04", fc=colour, ec="#444444"
            )
        )
        ax.text(
            xpos + box_w / 2, 0.72, title, ha="center", va="center", fontsize=10.5, weight="bold"
        )
        ax.text(xpos + box_w / 2, 0.33, detail, ha="center", va="center", fontsize=8.5)
    for xpos, label in zip(xs, arrow_labels):
        start, end = xpos + box_w + 0.06, xpos + box_w + gap - 0.06
        ax.annotate(
            "",
            xy=(end, box_h / 2),
            xytext=(start, box_h / 2),
            arrowprops=dict(arrowstyle="-|>", lw=1.4, color="#333333"),
        )
        ax.text(
            (start + end) / 2,
            box_h / 2 + 0.08,
            label,
            ha="center",
            va="bottom",
            fontsize=8.5,
            color="#1f4e9c",
        )
    left, right = xs[block[0]] - 0.1, xs[block[1]] + box_w + 0.1
    ax.add_patch(
        Rectangle(
            (left, -0.62), right - left, box_h + 0.82, fill=False, ls="--", ec="#b85c00", lw=1.3
        )
    )
    ax.text(
        (left + right) / 2,
        -0.32,
        "Transformer block (× N in real models):\neach sublayer is x + sublayer(LN(x))",
        ha="center",
        va="center",
        fontsize=8.5,
        color="#b85c00",
    )
    ax.set_xlim(-0.1, xs[-1] + box_w + gap + 0.1)
    ax.set_ylim(-0.7, 1.4)
    ax.axis("off")
    return fig, ax


shape = lambda t: str(tuple(t.shape))
stages = [
    ("input data", f"{len(sentence)} characters"),
    ("preprocessor", f"chars → ids, V={V}"),
    ("embedding", "E[ids] + P[t]"),
    ("self-attention", f"{NUM_HEADS} heads, causal"),
    ("feed-forward", f"{D_MODEL}→{D_FF}→{D_MODEL}, GELU"),
    ("output layer", r"LN, $\cdot\, E^\top$, softmax"),
]
arrows = [
    "text",
    f"ids\n{shape(ids)}",
    f"x\n{shape(x)}",
    f"h\n{shape(h)}",
    f"y\n{shape(y)}",
    f"probs\n{shape(probs)}",
]
fig, ax = draw_pipeline(stages, arrows)
ax.set_title(
    "The pipeline of a Transformer language model, with the shapes of our run", fontsize=11
)
plt.show()

# %%
labels = [c if c != " " else "␣" for c in sentence]
fig, axs = plt.subplots(1, 2, figsize=(13, 6.4), constrained_layout=True)
for head, ax in enumerate(axs):
    im = ax.imshow(w[0, head], cmap="viridis", vmin=0, vmax=1)
    ax.set_title(f"head {head} (of heads 0–{NUM_HEADS - 1})")
    ax.set_xticks(range(T), labels, fontsize=7)
    ax.set_yticks(range(T), labels, fontsize=7)
    ax.set_xlabel("key (the position looked at)")
axs[0].set_ylabel("query (the position looking)")
fig.colorbar(im, ax=axs, shrink=0.85, label="attention weight")
fig.suptitle(
    "Causal self-attention weights of the untrained model: random, and zero above the diagonal"
)
plt.show()

# %% [markdown]
# The upper triangle is exactly zero — the causal mask at work. Everything else is arbitrary: with random weights
# some positions happen to score higher than others. After training (lesson 09) the heads learn useful patterns,
# such as looking at the previous character or at the start of the current word.

# %% [markdown]
# ## 4. How to use this course
#
# **Running the notebooks.** Each lesson is a Jupyter notebook in `notebooks/`; run it top to bottom
# (*Run → Run All Cells*). Each one runs in at most about 3 minutes on two CPU cores, with less than 1.5 GB of
# memory. Most need well under a minute; lesson 09, which trains a model for a couple of minutes, takes longest. The
# README's lesson table lists the time and memory measured for each.
#
# * *On your computer*: `python -m pip install -r requirements.txt`, then `jupyter lab` and open
#   `notebooks/00_overview.ipynb`.
# * *On Binder* (nothing to install): the repository's `binder/` folder tells mybinder.org how to build the
#   environment; launch it from the Binder badge of the README. The first start takes a few minutes, and Binder
#   forgets your edits when the session ends, so download any notebook you want to keep.
# * *On a GPU*: nothing to change. The first cell, `lessons_lib.setup(seed=0)`, seeds every random number
#   generator, finds the GPU if TensorFlow sees one (the CPU otherwise) and prints a one-line banner saying which it
#   uses. Only the training lessons are noticeably faster on a GPU.
#
# **The library.** Whatever a lesson derives ends up in `lessons_lib` (one small module per concept, e.g.
# `lessons_lib/attention.py`), so the next lesson can simply import it. Each lesson shows you the code it adds, with
# `show_source` (as section 3.10 did for `GPT.call`), and you can read the rest whenever you like: it is written to
# be read.
#
# **Exercises with self-check.** Every lesson has at least two exercises. Each is three cells:
#
# 1. a **stub** to fill in (`# YOUR CODE HERE`, then `raise NotImplementedError` — delete that line);
# 2. a **check** cell calling `check(your_function, reference, inputs=[...])`, which prints
#    `✓` when every case matches, `… not attempted yet` while the stub is untouched, and `✗` with a precise
#    diagnosis (the failing input, shape, largest difference) otherwise, followed by a hint: first one about the
#    idea, and, if it still fails when you try again, one about the code;
# 3. a hidden **solution** cell (collapsed; click to expand it once you have tried).
#
# Here is a first, tiny one.
#
# ### Exercise 1 — the loss of a uniform guess
#
# Write `uniform_loss(vocab_size)`: the cross-entropy (natural log) of a model that gives every one of
# `vocab_size` tokens the same probability. It is the loss we met in section 3.9.


# %%
def uniform_loss(vocab_size):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
def reference_uniform_loss(vocab_size):
    """Keras' cross-entropy for all-zero logits (softmax of zeros = the uniform distribution)."""
    zero_logits = np.zeros((1, vocab_size), dtype="float64")
    return float(
        keras.losses.sparse_categorical_crossentropy(np.array([0]), zero_logits, from_logits=True)[
            0
        ]
    )


check(
    uniform_loss,
    reference_uniform_loss,
    inputs=[65, 2, 256, 50257],
    atol=1e-5,
    hint=(
        "the loss is −ln p(true token), and here p = 1/V for every token; the course's logarithms are "
        "natural logarithms",
        "return float(-np.log(1.0 / vocab_size)) (np.log is the natural logarithm)",
    ),
)

# %% [markdown]
# This is what a **wrong** answer looks like — say, a logarithm in base 2 instead of base $e$:

# %%
verdict = check(
    lambda V: float(np.log2(V)),
    reference_uniform_loss,
    inputs=[65, 2, 256, 50257],
    atol=1e-5,
    name="uniform_loss (base 2)",
    hint="the loss is −ln p(true token) with the natural logarithm, here with p = 1/V",
)
assert verdict is False  # check returns True (✓), False (✗) or None (not attempted yet)


# %% tags=["solution"]
def uniform_loss(vocab_size):
    return float(-np.log(1.0 / vocab_size))  # = ln(vocab_size)


assert check(uniform_loss, reference_uniform_loss, inputs=[65, 2, 256, 50257], atol=1e-5)

# %% [markdown]
# **Interactive views.** Lessons 03, 04, 05, 08 and 09 have interactive figures from `lessons_lib.viz`: the
# positional-encoding explorer, the softmax and scale explorer (a temperature slider), the attention explorer (hover
# over a token, pick the heads). They are [anywidget](https://anywidget.dev) views whose JavaScript ships with the
# course, so nothing is fetched from the internet and hovering or sliding needs no round trip to Python. Run the
# cell in JupyterLab 4 or Notebook 7 to get the live view. Every view also stores a still picture (PNG) and a text
# summary of the same numbers, which is what you see in a static rendering (GitHub, nbconvert) or before you run the
# cell. Lesson 10's text generator (a prompt box, sliders and a *Generate* button) is built with ipywidgets and
# needs a running kernel.
#
# **Longer runs.** Some lessons read their sizes from a cell tagged `parameters` (papermill can override it), and the
# stored outputs come from those defaults. They are not shortened runs: in lesson 09, which trains the model, the
# default is the full reference run that produced the checkpoint shipped with the course. `llm-course run --full`,
# the instructors' runner, reruns every notebook and lets lesson 09 train longer; it reports each notebook's time
# and peak memory.

# %% [markdown]
# ## 5. The lesson map
#
# | # | lesson | what you build | article section |
# |---|---|---|---|
# | 00 | [Overview](00_overview.ipynb) | the whole pipeline, run once; why Transformers | 1, 2 |
# | 01 | [Tokenization](01_tokenization.ipynb) | character and BPE tokenizers | 2 (preprocessor) |
# | 02 | [Word embeddings](02_word_embeddings.ipynb) | the embedding table, one-hot · E = lookup | 3.2, 4.1 |
# | 03 | [Positional encoding](03_positional_encoding.ipynb) | sinusoidal and learned positions | 3.2 |
# | 04 | [Self-attention by hand](04_self_attention.ipynb) | $\mathrm{softmax}(QK^\top/\sqrt{d_k})V$, scaling, causal mask | 4.1–4.3, 5.2 |
# | 05 | [Multi-head attention](05_multi_head_attention.ipynb) | split heads, concatenate, $W_O$ | 3.2, 4.2 |
# | 06 | [Feed-forward network](06_feed_forward.ipynb) | $\mathrm{act}(xW_1 + b_1)W_2 + b_2$, ReLU and GELU | 3.2, 4.1 |
# | 07 | [Residual + LayerNorm](07_residual_layernorm.ipynb) | residual connections, LayerNorm, pre- vs post-norm | 3.2 |
# | 08 | [Transformer block and tiny GPT](08_transformer_block_gpt.ipynb) | the block, stacking, output layer, a GPT | 3.1–3.2 |
# | 09 | [Training a GPT](09_training_gpt.ipynb) | a 0.8 M-parameter GPT trained on Tiny Shakespeare | 5 |
# | 10 | [Text generation](10_text_generation.ipynb) | greedy, temperature, top-k, top-p sampling; a KV cache | 3.4, 6 |
# | 11 | [Text classification](11_text_classification.ipynb) | an encoder (no causal mask, a padding mask), pooling, a spam classifier against baselines; masked-LM pretraining, then fine-tuning | 3.4, 6 |
# | 12 | [Question answering](12_question_answering.ipynb) | extractive span QA on bAbI: start/end logits, span decoding, exact match; does attention find the evidence? | 3.4, 6, 8.3 |
# | 13 | [Machine translation](13_machine_translation.ipynb) | an encoder–decoder with cross-attention, the three masks, the label shift; greedy and beam search with a KV cache; BLEU and chrF; alignments | 3.4, 6.2 |
# | 14 | [What it costs and how it scales](14_cost_and_scaling.ipynb) | parameters, bytes and FLOPs counted, then measured; attention's $T^2$; a GRU against a Transformer block; a scaling-law experiment; data-parallel training with `tf.distribute` | 3.3, 8.3 |
# | 15 | [Making it smaller](15_compression.ipynb) | int8 and int4 quantization derived and checked against Keras; the tied-head pitfall; a LiteRT int8 model for deployment; magnitude and structured pruning; knowledge distillation into a 7.5× smaller student | 8.2 |
#
# Lessons 02–08 share a **running example**, "the thread": the sentence *to be or not to be* with a 6-word
# vocabulary, $d_{\text{model}} = 4$, 2 heads and fixed weights rounded to one decimal
# (`from lessons_lib import thread`). Each lesson computes its own step of the thread by hand, starting exactly
# where the previous lesson stopped, so by lesson 08 you will have computed a whole Transformer on paper.

# %% [markdown]
# ## 6. About the source article
#
# The course follows the structure of a Chinese article, 《大规模语言模型架构：从理论到实践》 ("Large language model
# architecture: from theory to practice"): its background (section 1), the pipeline (section 2, used above), the
# algorithm steps, the mathematics, a worked example, code, applications and trends. The article's overall story is
# sound, but several of its formulas, its worked example and its code are wrong. The course teaches the correct
# version and, where a lesson covers an error, shows it once, kindly, with the fix:
#
# | the article says | correct | lesson |
# |---|---|---|
# | embedding $= \mathrm{softmax}(W \cdot \text{input})$ | a table lookup $E[\text{id}]$ (no softmax) | 02 |
# | attention $= \mathrm{softmax}(Q \cdot K/\sqrt{d_k})V$ | $\mathrm{softmax}(QK^\top/\sqrt{d_k})V$, softmax over each row | 04 |
# | worked example 4.3 and code 5.2 | shapes do not match, numbers do not follow, the code cannot run | 04 |
# | concatenate the heads, then reshape (no $W_O$) | split heads before attention, concatenate after, multiply by $W_O$ | 05 |
# | $\mathrm{FFN} = \mathrm{ReLU}(W_2\,\mathrm{ReLU}(W_1x + b_1)) + b_2$ | $W_2\,\mathrm{act}(W_1 x + b_1) + b_2$, no outer activation | 06 |
# | GPT-3 and BERT both translate well (section 6) | BERT is encoder-only: it encodes text but does not generate it, so it does not translate on its own; GPT-3 is decoder-only | 00 (section 2), 13 |
#
# Reading the Chinese original alongside the course? The [中文 ↔ English glossary](../docs/glossary.md) lists every
# term (自注意力机制 = self-attention, 前馈神经网络 = feed-forward network, 层归一化 = layer normalization, …).

# %% [markdown]
# ## 7. More exercises
#
# ### Exercise 2 — cross-entropy from logits
#
# Write `next_token_loss(logits, targets)`: the mean cross-entropy for `logits` of shape `[T, V]` and integer
# `targets` of shape `[T]`, i.e. the mean over $t$ of $-\ln \mathrm{softmax}(z_t)[\text{targets}_t]$. Return a
# Python `float`. Work with **log-probabilities** directly:
# $\ln \mathrm{softmax}(z)_v = z_v - m - \ln \sum_u e^{z_u - m}$ with $m = \max_u z_u$, so that large logits do not
# overflow (the check includes logits in the thousands, where `np.exp` alone gives `inf`).


# %%
def next_token_loss(logits, targets):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
def reference_next_token_loss(logits, targets):
    per_position = keras.losses.sparse_categorical_crossentropy(
        targets, logits.astype("float64"), from_logits=True
    )
    return float(ops.mean(per_position))


rng_ex = np.random.default_rng(1)
loss_cases = [
    (logits.numpy()[0, :-1], targets),  # our untrained model
    (np.zeros((3, 65)), np.array([0, 1, 2])),  # uniform: ln 65
    (np.array([[1000.0, 1001.0, 1002.0], [5.0, -5.0, 0.0]]), np.array([2, 1])),  # large logits
    (rng_ex.normal(size=(10, 7)) * 3, rng_ex.integers(0, 7, size=10)),
]
check(
    next_token_loss,
    reference_next_token_loss,
    inputs=loss_cases,
    atol=1e-5,
    hint=(
        "compute log-probabilities, never probabilities: subtract each row's maximum before exp, then take "
        "−log p of each position's target and average over the positions",
        "m = z.max(axis=-1, keepdims=True); logp = z - m - np.log(np.exp(z - m).sum(axis=-1, "
        "keepdims=True)); return float(-logp[np.arange(len(targets)), targets].mean())",
    ),
)


# %% tags=["solution"]
def next_token_loss(logits, targets):
    z = np.asarray(logits, dtype=np.float64)
    m = z.max(axis=-1, keepdims=True)
    log_probs = z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))
    return float(-log_probs[np.arange(len(targets)), targets].mean())


assert check(next_token_loss, reference_next_token_loss, inputs=loss_cases, atol=1e-5)

# %% [markdown]
# ### Exercise 3 — follow the shapes
#
# Write `pipeline_shapes(batch, T, vocab_size, d_model, num_heads, d_ff)`: a `dict` giving the shape (a tuple) of
# each tensor of section 3 for a batch of `batch` sequences of `T` tokens, worked out from the arguments (no model
# needs to run: the shapes follow from the sizes). Keys: `"ids"`, `"x"`, `"attention_weights"`, `"ffn_hidden"`,
# `"block_out"`, `"logits"`. The check *runs* the `lessons_lib` layers on zeros and reads the shapes off the
# results.


# %%
def pipeline_shapes(batch, T, vocab_size, d_model, num_heads, d_ff):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
def measured_shapes(batch, T, vocab_size, d_model, num_heads, d_ff):
    """Run freshly built layers on a batch of zeros and report the shapes they produce."""
    ids_ = np.zeros((batch, T), dtype="int32")
    emb_ = TokenAndPositionEmbedding(vocab_size, max(T, 1), d_model)
    blk_ = TransformerBlock(d_model, num_heads, d_ff)
    x_ = emb_(ids_)
    y_, w_ = blk_(x_, use_causal_mask=True, return_attention=True)
    logits_ = ops.matmul(y_, ops.transpose(emb_.embeddings))
    return {
        "ids": ids_.shape,
        "x": tuple(x_.shape),
        "attention_weights": tuple(w_.shape),
        "ffn_hidden": tuple(blk_.ffn.w1(x_).shape),
        "block_out": tuple(y_.shape),
        "logits": tuple(logits_.shape),
    }


shape_cases = [
    (1, T, V, D_MODEL, NUM_HEADS, D_FF),
    (8, 16, 100, 32, 2, 64),
    (2, 5, 50257, 12, 3, 48),
]
check(
    pipeline_shapes,
    measured_shapes,
    inputs=shape_cases,
    hint=(
        "everything keeps [batch, T, ...]; attention adds a heads axis and is T x T; the FFN widens to "
        "d_ff; the output layer scores every vocabulary token",
        "ids (batch, T); x and block_out (batch, T, d_model); attention_weights (batch, num_heads, T, T); "
        "ffn_hidden (batch, T, d_ff); logits (batch, T, vocab_size)",
    ),
)


# %% tags=["solution"]
def pipeline_shapes(batch, T, vocab_size, d_model, num_heads, d_ff):
    return {
        "ids": (batch, T),
        "x": (batch, T, d_model),
        "attention_weights": (batch, num_heads, T, T),
        "ffn_hidden": (batch, T, d_ff),
        "block_out": (batch, T, d_model),
        "logits": (batch, T, vocab_size),
    }


assert check(pipeline_shapes, measured_shapes, inputs=shape_cases)

# %% [markdown]
# ## Summary
#
# * RNNs process tokens one after another, and the gradient between two tokens is a product of as many Jacobians
#   as there are steps between them: it vanishes or explodes with distance (measured in section 1).
#   Self-attention computes all positions in parallel and connects any two tokens in one step; its price is
#   $n^2$ work in the sequence length.
# * A Transformer language model is a pipeline: **text → ids** (tokenizer) **→ vectors** (embedding + position)
#   **→ Transformer blocks** (causal multi-head self-attention and a feed-forward network, each with a residual
#   connection and LayerNorm) **→ logits over the vocabulary → softmax**.
# * Shapes: `[batch, T]` ids → `[batch, T, d_model]` all the way through the blocks (attention weights are
#   `[batch, heads, T, T]`, the FFN's hidden layer `[batch, T, d_ff]`) → `[batch, T, V]` logits.
# * An untrained model predicts every token with probability ≈ $1/V$; its cross-entropy is ≈ $\ln V$
#   (4.17 for our 65 characters). Check this at the start of every training run.
# * The whole forward pass is a few lines with the NumPy references of `lessons_lib` (`transformer_block` for the
#   block); the Keras layers and `lessons_lib.GPT` compute exactly the same thing.
# * Heads, like positions, are counted from 0 throughout the course.
#
# **Next:** [01 · Tokenization](01_tokenization.ipynb) — how text becomes the ids we fed the model, with a
# character tokenizer and byte-pair encoding.
