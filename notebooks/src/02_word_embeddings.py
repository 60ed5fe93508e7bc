# %% [markdown]
# # 02 · Word embeddings: from token ids to vectors
#
# A language model reads numbers, not words. The tokenizer (lesson 01) turned the text into integer **ids**; the
# first layer of every Transformer turns each id into a vector of $d_\text{model}$ real numbers, its **embedding**.
# Everything the model later does — attention, the feed-forward network, the prediction of the next word — works on
# these vectors.
#
# **In this lesson you will**
#
# 1. see that an embedding layer is a **table lookup**, and derive that the lookup is the same as multiplying a
#    one-hot vector by the table: $\mathrm{one\_hot}(i)\,E = E_{i,:}$ — then check it on the thread;
# 2. look kindly at the source article's formula $\mathrm{softmax}(W \cdot \text{input})$ and see why the softmax does
#    not belong there;
# 3. compare **random** and **trained** embeddings: nearest neighbours and cosine similarity, with vectors computed
#    in a few seconds from Tiny Shakespeare (co-occurrence counts → PPMI → SVD);
# 4. learn why the original Transformer multiplies embeddings by $\sqrt{d_\text{model}}$, with the numbers;
# 5. **tie** the input embedding to the output layer ($\text{logits} = h\,E^\top$) and count the parameters it saves,
#    for GPT-2 small and for the thread.

# %% tags=["nbval-ignore-output"]
import lessons_lib

info = lessons_lib.setup(seed=0)

# %%
import collections
import re

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from lessons_lib import (
    GPT,
    TokenAndPositionEmbedding,
    check,
    gpt_param_count,
    load_tiny_shakespeare,
    show,
    show_source,
    sinusoidal_positional_encoding,
    softmax,
    thread,
)

# %% [markdown]
# ## 1 · An embedding is a table lookup
#
# The model owns a matrix $E$ with one row per token of the vocabulary:
#
# $$
# E \in \mathbb{R}^{V \times d_\text{model}}, \qquad \text{embedding of token } i = E_{i,:} \quad(\text{row } i).
# $$
#
# That is the whole layer: no bias, no activation. The rows start random and are trained, like every other weight,
# by backpropagating the language-model loss.
#
# ### The same thing as a matrix product
#
# Write token $i$ as a **one-hot** row vector $o^{(i)} \in \mathbb{R}^{V}$: $o^{(i)}_j = 1$ if $j = i$ and $0$
# otherwise (in symbols $o^{(i)}_j = \delta_{ij}$). Multiply it by $E$; entry $k$ of the product is
#
# $$
# \big(o^{(i)} E\big)_k \;=\; \sum_{j=1}^{V} o^{(i)}_j\, E_{jk} \;=\; \sum_{j=1}^{V} \delta_{ij}\, E_{jk} \;=\; E_{ik}.
# $$
#
# Every term of the sum vanishes except $j = i$, so the product *selects* row $i$. For a whole sequence, stack the
# one-hot rows into a matrix $O \in \{0,1\}^{T\times V}$ and $O E$ is the $T \times d_\text{model}$ matrix of
# embeddings, one row per token.
#
# So an embedding layer is a linear layer (without bias) applied to one-hot inputs. Libraries never build the
# one-hot matrix: it would cost $T\,V\,d_\text{model}$ multiply-adds (mostly by zero — GPT-2 has $V = 50\,257$) where
# indexing costs nothing. The matrix view is still worth having, because it tells us the **gradient**: by the usual
# rule for $Y = OE$,
#
# $$
# \frac{\partial L}{\partial E} = O^\top \frac{\partial L}{\partial Y},
# $$
#
# i.e. row $i$ of the gradient is the sum of the gradients of all positions where token $i$ occurs, and rows of
# tokens that do not occur in the batch get **zero**. Frameworks store this gradient sparsely (TensorFlow's
# `IndexedSlices`).
#
# ### On the thread
#
# The course's running example is the sentence *"to be or not to be"* with a six-word vocabulary and
# $d_\text{model} = 4$. Here are its ids, its one-hot matrix and its embedding table $E$ (the weights are rounded to
# one decimal, so you can redo everything on paper):

# %%
state = thread.forward()
E = thread.weights()["E"]
ids = state["ids"]

print("vocabulary:", {i: w for i, w in enumerate(thread.VOCAB)})
print("sentence:  ", thread.SENTENCE)
print("ids:       ", ids)
one_hot = np.eye(len(thread.VOCAB))[ids]  # row t is the one-hot vector of token t
show("one-hot O [T, V]", one_hot.astype(int))
show("embedding table E [V, d_model]", E)

# %% [markdown]
# The product $O E$, row by row, is the list of rows of $E$ picked by the ids. Note that rows 0 and 4 are the same:
# both tokens are *"to"*, and the embedding knows nothing about *where* a token stands (that is lesson 03).

# %%
embeddings_matmul = one_hot @ E  # the matrix view
embeddings_lookup = E[ids]  # the table lookup
show("O @ E", embeddings_matmul)

# exactly equal: each entry is 1·E_ik + zeros
assert np.array_equal(embeddings_matmul, embeddings_lookup)
assert np.allclose(embeddings_lookup, state["embeddings"])  # the thread's value, used by lesson 03
assert np.array_equal(embeddings_lookup[0], embeddings_lookup[4])  # "to" ... "to"
print("one_hot @ E == E[ids] == thread.forward()['embeddings']")

# %% [markdown]
# ### Check against TensorFlow and Keras
#
# The same numbers from three independent implementations: `keras.layers.Embedding` with our table copied in,
# TensorFlow's `tf.gather` (what the Keras layer does inside), and a float32 `tf.one_hot` matrix product.

# %%
keras_embedding = keras.layers.Embedding(input_dim=len(thread.VOCAB), output_dim=thread.D_MODEL)
keras_embedding.build((None, None))
keras_embedding.embeddings.assign(E)

from_keras = keras.ops.convert_to_numpy(keras_embedding(ids[None]))[0]  # [1, T] -> [1, T, d]
from_gather = tf.gather(tf.constant(E, tf.float32), ids).numpy()
from_tf_matmul = tf.matmul(
    tf.one_hot(ids, depth=len(thread.VOCAB)), tf.constant(E, tf.float32)
).numpy()

for name, value in [
    ("keras.layers.Embedding", from_keras),
    ("tf.gather", from_gather),
    ("tf.one_hot @ E", from_tf_matmul),
]:
    diff = np.max(np.abs(value - embeddings_lookup))
    assert diff <= 1e-5, (name, diff)
    print(f"{name:24s} max |diff| vs NumPy <= 1e-5: {diff <= 1e-5}")

# %% [markdown]
# And the gradient formula $\partial L/\partial E = O^\top\,\partial L/\partial Y$: take an arbitrary upstream
# gradient $G = \partial L / \partial Y$ (here $L = \sum_{t,k} G_{tk} Y_{tk}$, whose gradient with respect to $Y$ is
# exactly $G$) and let TensorFlow differentiate through the Keras layer.

# %%
G = np.round(np.random.default_rng(0).normal(size=(len(ids), thread.D_MODEL)), 1)
with tf.GradientTape() as tape:
    Y = keras_embedding(ids[None])[0]
    loss = tf.reduce_sum(Y * tf.constant(G, tf.float32))
grad_tf = tf.convert_to_tensor(
    tape.gradient(loss, keras_embedding.embeddings)
).numpy()  # IndexedSlices -> dense
grad_formula = one_hot.T @ G

show("dL/dE = O^T G (rows = vocabulary)", grad_formula)
assert np.max(np.abs(grad_tf - grad_formula)) <= 1e-5
assert np.allclose(grad_formula[[4, 5]], 0.0)  # "that", "is" do not occur: zero rows
assert np.allclose(grad_formula[0], G[0] + G[4])  # "to" occurs at positions 0 and 4
print("TensorFlow agrees; unused rows are zero; row 'to' = G[0] + G[4]")

# %% [markdown]
# ## 2 · A kind word about the source article: no softmax in an embedding
#
# The article (section 4.1) writes the embedding as
#
# $$
# \text{embedding}(W) = \mathrm{softmax}(W \cdot \text{input}).
# $$
#
# The first half is right! If $\text{input}$ is the one-hot column vector of a token and $W$ is the
# $d_\text{model} \times V$ table (our $E^\top$), then $W \cdot \text{input}$ is exactly the lookup we just derived.
# The softmax is the slip — probably borrowed from the *other* end of the model, where a softmax does turn the output
# scores into probabilities over the vocabulary (section 5 below and lesson 08). Applied to an embedding, it does
# three kinds of damage:
#
# 1. **Every coordinate becomes positive and they sum to 1.** The vectors are squeezed onto a simplex: no negative
#    directions, no way for two words to point in *opposite* directions.
# 2. **Softmax forgets shifts:** $\mathrm{softmax}(e + c\,\mathbf{1}) = \mathrm{softmax}(e)$ for any number $c$.
#    Two different words whose embeddings differ by a constant become the *same* input to the model.
# 3. **It saturates:** when one coordinate is much larger than the others, the output is almost one-hot and its
#    gradient almost zero — the layer stops learning.
#
# Here is the article's formula run on the thread's embedding table:


# %%
def article_embedding(token_ids, table):
    """The source article's formula, softmax(W · input), with W = table.T and input = one-hot (kept to show it)."""
    inputs = np.eye(table.shape[0])[token_ids].T  # one-hot columns, [V, T]
    return softmax(table.T @ inputs, axis=0).T  # softmax over the d_model coordinates -> [T, d]


squashed = article_embedding(ids, E)
show("the article's 'embeddings' of the thread", squashed)
assert (squashed > 0).all() and np.allclose(squashed.sum(axis=1), 1.0)


def cosine_matrix(a):
    unit = a / np.linalg.norm(a, axis=1, keepdims=True)
    return unit @ unit.T


show("cosine similarities between the 6 words, true embeddings", cosine_matrix(E), decimals=2)
show(
    "... and after the article's softmax (all positive, squeezed together)",
    cosine_matrix(softmax(E, axis=1)),
    decimals=2,
)
assert (cosine_matrix(E) < 0).any() and (cosine_matrix(softmax(E, axis=1)) > 0).all()

# %% [markdown]
# The shift problem, concretely: give *"that"* the embedding of *"to"* plus 0.5 in every coordinate. As vectors,
# they are different words. After the softmax the model could no longer tell them apart.

# %%
E_shifted = E.copy()
E_shifted[thread.VOCAB.index("that")] = E[thread.VOCAB.index("to")] + 0.5
to_that = [thread.VOCAB.index("to"), thread.VOCAB.index("that")]
print("lookup:            ", np.round(E_shifted[to_that], 3).tolist())
print("article's formula: ", np.round(article_embedding(np.array(to_that), E_shifted), 3).tolist())
assert not np.allclose(E_shifted[to_that[0]], E_shifted[to_that[1]])
assert np.allclose(*article_embedding(np.array(to_that), E_shifted))

# %% [markdown]
# **The correct version:** $\text{embedding}(i) = E_{i,:} = \mathrm{one\_hot}(i)\,E$ — a lookup, nothing after it.
#
# ## 3 · Random versus trained embeddings
#
# The thread's table is random: its rows carry no meaning, and the cosine similarities above are whatever the dice
# gave. Training is what puts words used in similar contexts close together. We measure closeness with the
# **cosine similarity**
#
# $$
# \cos(a, b) = \frac{a \cdot b}{\lVert a\rVert\,\lVert b\rVert} \in [-1, 1],
# $$
#
# which ignores length and looks only at direction; the **nearest neighbours** of a word are the words with the
# largest cosine to it.
#
# Training a language model takes minutes to hours. A much cheaper route to trained word vectors goes through the
# distributional hypothesis (*"you shall know a word by the company it keeps"*, Firth 1957), and gives vectors of the
# same kind: Levy & Goldberg (2014, "Neural word embedding as implicit matrix factorization") showed that word2vec's
# skip-gram with negative sampling implicitly factorizes a matrix of **pointwise mutual information** between words
# and their contexts. So we do the factorization explicitly:
#
# 1. count how often word $w$ appears within $\pm$`WINDOW` words of context word $c$: $\#(w, c)$;
# 2. turn counts into **positive PMI**,
#    $\mathrm{PPMI}(w, c) = \max\!\Big(0,\; \log \dfrac{P(w, c)}{P(w)\,P_{\alpha}(c)}\Big)$, which is large when $w$
#    and $c$ meet more often than chance; $P_\alpha(c) \propto \#(c)^{0.75}$ smooths the context counts, as word2vec
#    does (Levy, Goldberg & Dagan 2015);
# 3. keep the top `DIM` singular directions: $\mathrm{PPMI} \approx U_k S_k V_k^\top$, word vectors
#    $W = U_k S_k^{1/2}$.
#
# The corpus is Tiny Shakespeare (about 200 000 words), split into lower-case words — a word-level tokenizer, good
# enough for this experiment.

# %% tags=["parameters"]
VOCAB_SIZE = 3000  # most frequent words kept
WINDOW = 4  # context: words up to 4 positions to the left and right
DIM = 64  # embedding width
SEED = 0

# %%
text = load_tiny_shakespeare(progress=False)
words = re.findall(r"[a-z]+(?:'[a-z]+)?", text.lower())
counts = collections.Counter(words)
vocab = [w for w, _ in counts.most_common(VOCAB_SIZE)]
index = {w: i for i, w in enumerate(vocab)}
corpus_ids = np.array([index.get(w, -1) for w in words])  # -1: a rare word outside the vocabulary

print(
    f"{len(text):,} characters -> {len(words):,} words, {len(counts):,} distinct; keeping the {len(vocab):,} "
    f"most frequent ({np.mean(corpus_ids >= 0):.1%} of the running words)"
)
print("most frequent:", vocab[:12])
assert round(len(words), -4) == 200_000  # "about 200 000 words"

# %%
# 1. co-occurrence counts within the window (symmetric)
cooc = np.zeros((len(vocab), len(vocab)))
for offset in range(1, WINDOW + 1):
    left, right = corpus_ids[:-offset], corpus_ids[offset:]
    keep = (left >= 0) & (right >= 0)
    np.add.at(cooc, (left[keep], right[keep]), 1.0)
cooc = cooc + cooc.T

# 2. positive pointwise mutual information, with smoothed context probabilities. Pairs never seen (most of them)
#    would have PMI = log 0 = -inf, so their PPMI is 0: compute the logarithm for the observed pairs only.
total = cooc.sum()
p_word = cooc.sum(axis=1) / total
p_context = cooc.sum(axis=0) ** 0.75
p_context /= p_context.sum()
w_idx, c_idx = np.nonzero(cooc)
pmi_seen = np.log(cooc[w_idx, c_idx] / total / (p_word[w_idx] * p_context[c_idx]))
ppmi = np.zeros_like(cooc)
ppmi[w_idx, c_idx] = np.maximum(pmi_seen, 0.0)
del cooc, pmi_seen  # free memory: only the PPMI matrix is needed from here


# 3. truncated SVD. A full SVD of a 3000 x 3000 matrix takes about a minute on 2 cores; the randomized SVD of
#    Halko, Martinsson & Tropp (2011) finds the top DIM directions in a few seconds.
def randomized_svd(m, k, oversample=20, power_iterations=3, seed=0):
    rng = np.random.default_rng(seed)
    y = m @ rng.normal(size=(m.shape[1], k + oversample))
    for _ in range(power_iterations):
        q, _ = np.linalg.qr(y)
        y = m @ (m.T @ q)
    q, _ = np.linalg.qr(y)
    u_small, s, _ = np.linalg.svd(q.T @ m, full_matrices=False)
    return (q @ u_small)[:, :k], s[:k]


u, s = randomized_svd(ppmi, DIM, seed=SEED)
trained = u * np.sqrt(s)  # [VOCAB_SIZE, DIM]
# the same shape, no training
random_vectors = np.random.default_rng(SEED).normal(size=trained.shape)
print(
    "PPMI matrix:", ppmi.shape, f"({np.mean(ppmi > 0):.1%} non-zero); word vectors:", trained.shape
)

# %% [markdown]
# Now the nearest neighbours of a few words, with both tables:


# %%
def unit_rows(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def nearest(word, vectors, k=6):
    """The k words whose vectors have the largest cosine similarity with `word`'s (excluding itself)."""
    unit = unit_rows(vectors)
    sims = unit @ unit[index[word]]
    order = [j for j in np.argsort(-sims, kind="stable") if j != index[word]][:k]
    return [(vocab[j], round(float(sims[j]), 2)) for j in order]


neighbours = {}
for word in ["king", "love", "lord", "father", "night", "thou"]:
    neighbours[word] = [w for w, _ in nearest(word, trained)]
    print(f"{word:>7s}  trained: {', '.join(f'{w} {c:.2f}' for w, c in nearest(word, trained))}")
    print(
        f"{'':>7s}  random:  {', '.join(f'{w} {c:.2f}' for w, c in nearest(word, random_vectors))}"
    )
# the neighbours named below
assert {"richard", "edward"} <= set(neighbours["king"])
assert {"son", "brother", "daughter"} <= set(neighbours["father"])
assert {"day", "morrow"} <= set(neighbours["night"])
assert {"art", "dost", "hast"} <= set(neighbours["thou"])
assert {"dear", "lady", "as", "did"} <= set(neighbours["love"])

# %% [markdown]
# The trained neighbours make sense: *king* sits with the kings' names (the text's speaker labels read
# *"KING RICHARD III:"*, *"KING EDWARD IV:"*), *father* next to *son*, *brother*, *daughter*, *night* next to *day* and
# *morrow*, *thou* next to its verbs *art*, *dost*, *hast*. (*love* is used in so many ways that its neighbours are a
# mixed bag: *dear*, *lady*, but also *as* and *did* — 200 000 words is a small corpus.) The random neighbours are
# noise, and their cosines are those of random directions.
#
# How large is "random"? For two independent random vectors in $\mathbb{R}^{d}$, the cosine has mean 0 and standard
# deviation about $1/\sqrt{d}$ — here $1/8$. The best of 3000 such cosines is then around 0.4 (printed below), which
# is why the random neighbours above are not at zero. A few word pairs that *should* be similar make the contrast
# clear:

# %%
pairs = [
    ("king", "queen"),
    ("father", "son"),
    ("day", "night"),
    ("thou", "thee"),
    ("lord", "lady"),
    ("sword", "king"),
    ("night", "thou"),
]
cos_trained = {
    p: float(unit_rows(trained)[index[p[0]]] @ unit_rows(trained)[index[p[1]]]) for p in pairs
}
cos_random = {
    p: float(unit_rows(random_vectors)[index[p[0]]] @ unit_rows(random_vectors)[index[p[1]]])
    for p in pairs
}
print(f"{'pair':18s} {'trained':>8s} {'random':>8s}")
for p in pairs:
    print(f"{p[0] + ' / ' + p[1]:18s} {cos_trained[p]:8.2f} {cos_random[p]:8.2f}")

some_random = unit_rows(random_vectors[:1000]) @ unit_rows(random_vectors[:1000]).T
off_diagonal = some_random[~np.eye(1000, dtype=bool)]
print(
    f"\nrandom vectors, all pairs among the 1000 most frequent words: mean cosine {off_diagonal.mean():.3f}, "
    f"std {off_diagonal.std():.3f} (1/sqrt(DIM) = {1 / np.sqrt(DIM):.3f})"
)
best_random = np.mean([nearest(w, random_vectors, k=1)[0][1] for w in neighbours])
print(
    f"random vectors, the best cosine of each of the 6 words above, on average: {best_random:.2f}"
)
assert min(cos_trained[p] for p in pairs[:5]) > max(abs(cos_random[p]) for p in pairs[:5])
assert max(cos_trained[p] for p in pairs[5:]) < min(cos_trained[p] for p in pairs[:5])
assert abs(off_diagonal.std() - 1 / np.sqrt(DIM)) < 0.01
assert round(best_random, 1) == 0.4

# %% [markdown]
# The first five pairs belong together, and only the trained vectors know it. The last two are unrelated words as a
# control: there the trained cosines are small too — closeness is not handed out to everybody.
#
# A picture of the same thing: the cosine-similarity matrix of 16 words (left: trained, right: random), and the
# trained vectors of the same words projected on their first two principal components.

# %%
shown = [
    "king",
    "queen",
    "lord",
    "lady",
    "father",
    "son",
    "mother",
    "brother",
    "day",
    "night",
    "morning",
    "sleep",
    "thou",
    "thee",
    "sword",
    "blood",
]
rows = [index[w] for w in shown]

fig, axes = plt.subplots(1, 3, figsize=(17, 5.2), gridspec_kw={"width_ratios": [1, 1, 1.1]})
for ax, vectors, title in [
    (axes[0], trained, "trained (PPMI + SVD)"),
    (axes[1], random_vectors, "random"),
]:
    sims = cosine_matrix(vectors[rows])
    im = ax.imshow(sims, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(shown)), shown, rotation=90)
    ax.set_yticks(range(len(shown)), shown)
    ax.set_title(f"cosine similarity, {title}")
fig.colorbar(im, ax=axes[:2], shrink=0.8)

centred = trained[rows] - trained[rows].mean(axis=0)
_, _, vt = np.linalg.svd(centred, full_matrices=False)
xy = centred @ vt[:2].T  # PCA: the two main directions
axes[2].scatter(xy[:, 0], xy[:, 1], s=18)
for (x, y), w in zip(xy, shown):
    axes[2].annotate(w, (x, y), textcoords="offset points", xytext=(4, 3))
axes[2].set_title("trained vectors, first 2 principal components")
axes[2].set_xlabel("PC 1")
axes[2].set_ylabel("PC 2")
plt.show()

# %% [markdown]
# Inside a Transformer nobody computes PPMI: the table $E$ is trained by backpropagation together with the rest of
# the model (section 1's gradient $O^\top\,\partial L/\partial Y$). But it ends up with the same kind of geometry,
# because predicting the next word also rewards giving words that appear in similar contexts similar vectors.
#
# ## 4 · Why the original Transformer multiplies embeddings by $\sqrt{d_\text{model}}$
#
# Vaswani et al. (2017, sec. 3.4) write: *"In the embedding layers, we multiply those weights by
# $\sqrt{d_\text{model}}$."* The paper gives no reason. The usual explanation is about **scale**, and it is easy to
# check with numbers:
#
# * The embedding table is shared with the output layer (section 5), and implementations initialise it like an
#   output layer, with standard deviation $d_\text{model}^{-1/2}$ (tensor2tensor, fairseq). Then each coordinate has
#   variance $1/d_\text{model}$ and a whole embedding has squared length
#   $\mathbb{E}\lVert e\rVert^2 = d_\text{model}\cdot\frac{1}{d_\text{model}} = 1$.
# * The sinusoidal positional encoding (lesson 03), which is **added** to the embedding, is made of pairs
#   $(\sin\theta, \cos\theta)$ with $\sin^2\theta + \cos^2\theta = 1$: every position vector has squared length
#   exactly $d_\text{model}/2$, i.e. each coordinate has mean square $1/2$.
#
# With $d_\text{model} = 512$ the position vector would be $\sqrt{256} = 16$ times longer than the word vector, and
# the sum would mostly say *where* the token is, not *what* it is. Multiplying the embedding by
# $\sqrt{d_\text{model}}$ gives each coordinate variance 1: the word is now a little **larger** than its position
# ($\sqrt{512} \approx 22.6$ vs $16$).

# %%
d_model, n_tokens, n_positions = 512, 1000, 512
rng = np.random.default_rng(0)
E_init = rng.normal(0.0, d_model**-0.5, size=(n_tokens, d_model))  # init with std 1/sqrt(d_model)
PE = sinusoidal_positional_encoding(n_positions, d_model)


def describe_rows(name, a):
    print(
        f"{name:34s} mean square per coordinate {np.mean(a**2):8.4f}   "
        f"mean vector length {np.linalg.norm(a, axis=1).mean():6.2f}"
    )


describe_rows("token embeddings E (std d^-1/2)", E_init)
describe_rows("positional encodings PE", PE)
describe_rows("sqrt(d_model) * E", np.sqrt(d_model) * E_init)

# exactly sqrt(256) = 16 for every row
assert np.allclose(np.linalg.norm(PE, axis=1), np.sqrt(d_model / 2))
assert abs(np.linalg.norm(E_init, axis=1).mean() - 1.0) < 0.01

# %% [markdown]
# This is why `TokenAndPositionEmbedding` has a `scale` switch: with `scale=True` it computes
# $x_t = \sqrt{d_\text{model}}\,E_{\text{id}_t} + PE_t$. Here is its `call` (docstring left out). After the checks
# of its input, `self.token_embedding(ids)` is the lookup $E_{\text{id}_t}$ of section 1 (a `keras.layers.Embedding`),
# `if self.scale` multiplies it by $\sqrt{d_\text{model}}$, and the last lines add the positions: the rows
# `offset … offset + T − 1` of a learned table, or of the sinusoidal encoding of lesson 03.

# %%
show_source(TokenAndPositionEmbedding.call, docstring=False)

# %% [markdown]
# Checked against NumPy with the thread's table:

# %%
layer = TokenAndPositionEmbedding(
    len(thread.VOCAB), thread.MAX_LEN, thread.D_MODEL, positional="sinusoidal", scale=True
)
layer.build((1, None))
layer.embeddings.assign(E)
from_layer = keras.ops.convert_to_numpy(layer(ids[None]))[0]
by_hand = np.sqrt(thread.D_MODEL) * E[ids] + sinusoidal_positional_encoding(
    len(ids), thread.D_MODEL
)
assert np.max(np.abs(from_layer - by_hand)) <= 1e-5
print("TokenAndPositionEmbedding(scale=True) == sqrt(d_model) * E[ids] + PE   (max |diff| <= 1e-5)")

# %% [markdown]
# The scale is a convention that goes with that initialisation, not a law. The **thread does not scale**: its table
# was drawn with standard deviation 1, already the "scaled" size, so its words are already larger than its positions
# (mean square per coordinate about 1.4 vs 0.5). GPT-2 does not scale either: it *learns* its position table and
# starts both tables small, the positions at **half** the scale of the tokens. Its original TensorFlow code
# (`src/model.py` of the repository `openai/gpt-2`) creates them as
# `wte = tf.get_variable('wte', [n_vocab, n_embd], initializer=tf.random_normal_initializer(stddev=0.02))` and
# `wpe = tf.get_variable('wpe', [n_ctx, n_embd], initializer=tf.random_normal_initializer(stddev=0.01))`: standard
# deviation 0.02 for the token table, 0.01 for the position table. At $d_\text{model} = 768$ a word vector then starts
# about twice as long as a position vector, and both are short (about 0.55 and 0.28).

# %%
thread_ms_E, thread_ms_P = np.mean(E**2), np.mean(state["positions"] ** 2)
print(
    f"thread: mean square of E's coordinates {thread_ms_E:.2f}, of its positional encodings {thread_ms_P:.2f}"
)
assert round(thread_ms_E, 1) == 1.4 and round(thread_ms_P, 1) == 0.5

gpt2_init = np.random.default_rng(0)
wte = gpt2_init.normal(0.0, 0.02, size=(2000, 768))  # 2000 of GPT-2's 50 257 token rows
wpe = gpt2_init.normal(0.0, 0.01, size=(1024, 768))  # all 1024 position rows
length_wte, length_wpe = np.linalg.norm(wte, axis=1).mean(), np.linalg.norm(wpe, axis=1).mean()
print(
    f"GPT-2 at initialisation: token vectors {length_wte:.2f} long, position vectors {length_wpe:.2f} "
    f"(ratio {length_wte / length_wpe:.2f})"
)
assert round(length_wte, 2) == 0.55 and round(length_wpe, 2) == 0.28
assert round(length_wte / length_wpe, 1) == 2.0

# %% [markdown]
# ## 5 · Tying the input and output embeddings
#
# At the other end of the model, the final hidden vector $h_t \in \mathbb{R}^{d_\text{model}}$ of position $t$ has
# to become one score (**logit**) per vocabulary word, and a softmax turns the scores into probabilities for the next
# word. That needs a $d_\text{model} \times V$ output matrix — the same shape as $E^\top$. **Weight tying** (Press &
# Wolf 2017; Inan et al. 2017; used by the original Transformer, sec. 3.4, and by GPT-2) simply reuses the table:
#
# $$
# \text{logits}_t = h_t\,E^\top, \qquad \text{logit}_{t,w} = h_t \cdot E_{w,:}.
# $$
#
# Read the second form: the score of word $w$ is the dot product of the hidden state with $w$'s embedding. The model
# predicts a word by producing a vector that **points where that word's embedding points** — the input and the output
# side speak the same geometric language, and the table gets a training signal from both ends. (This is where the
# softmax of section 2 really belongs; lesson 08 computes the thread's logits and probabilities this way.)
#
# The saving is one whole $V \times d_\text{model}$ matrix. For GPT-2 small ($V = 50\,257$, context 1024,
# $d_\text{model} = 768$, 12 layers) and for the thread:

# %%
gpt2 = dict(vocab_size=50257, max_len=1024, d_model=768, num_layers=12)
thread_sizes = dict(
    vocab_size=len(thread.VOCAB),
    max_len=thread.MAX_LEN,
    d_model=thread.D_MODEL,
    num_layers=1,
    d_ff=thread.D_FF,
    positional="sinusoidal",
)

counted = {}
for name, sizes in [("GPT-2 small", gpt2), ("the thread", thread_sizes)]:
    tied = gpt_param_count(**sizes, tie_embeddings=True)
    untied = gpt_param_count(**sizes, tie_embeddings=False)
    saved = untied - tied
    counted[name] = (tied, untied, saved)
    assert saved == sizes["vocab_size"] * sizes["d_model"]
    print(
        f"{name:12s} untied {untied:>12,}   tied {tied:>12,}   saved V*d = {saved:>11,} "
        f"({saved / untied:.1%} of the untied model)"
    )
# the figures quoted below and in the summary: 124M tied, 163M untied, 38.6M saved; 276, 300, 24
tied, untied, saved = counted["GPT-2 small"]
assert (round(tied, -6), round(untied, -6), round(saved, -5)) == (124e6, 163e6, 38.6e6)
assert 0.2 < saved / untied < 0.25  # almost a quarter
assert counted["the thread"] == (276, 300, 24)

# %% [markdown]
# GPT-2 small's famous "124M" is the **tied** count; without tying it would be 163M, and almost a quarter of it would
# be a second copy of the vocabulary table. The saving matters most for small models with big vocabularies.
#
# The Keras `GPT` of `lessons_lib` ties by default: the thread's model has no separate output layer, and its
# parameter count is the tied one. Untied, Keras adds a `Dense` head of exactly $V \times d_\text{model}$ weights.

# %%
thread_model = thread.build_gpt()
untied_model = GPT(
    len(thread.VOCAB),
    thread.MAX_LEN,
    thread.D_MODEL,
    thread.NUM_HEADS,
    num_layers=1,
    d_ff=thread.D_FF,
    norm_first=False,
    activation="relu",
    positional="sinusoidal",
    tie_embeddings=False,
)
untied_model.build((1, None))
print("thread GPT (tied):  ", thread_model.count_params(), "parameters")
print("same GPT, untied:   ", untied_model.count_params(), "parameters")
assert thread_model.count_params() == gpt_param_count(**thread_sizes, tie_embeddings=True) == 276
assert (
    untied_model.count_params() - thread_model.count_params() == len(thread.VOCAB) * thread.D_MODEL
)

# %% [markdown]
# ## 6 · Exercises
#
# ### Exercise 1 — the lookup as a matrix product
#
# Write `embed_one_hot(ids, E)` that returns the embeddings of `ids` **without indexing `E`**: build the one-hot
# matrix (e.g. with `np.eye`) and multiply. The check compares it with `E[ids]` on the thread and on a larger random
# table, and it holds you to the rule: it passes your function each table as a `MultiplyOnlyTable`, an object that
# can be multiplied (`O @ E`, `np.matmul`, `np.dot`) and tells you its `shape`, but refuses to be indexed or turned
# into an array.


# %%
def embed_one_hot(ids, E):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
class MultiplyOnlyTable:
    """An embedding table that can be multiplied by a matrix on its left, and nothing else."""

    REFUSED = (
        "this table refuses to be indexed or turned into an array: E[ids] is the lookup the exercise asks "
        "you to avoid; build the one-hot matrix O and return O @ E"
    )

    def __init__(self, values):
        self._values = np.array(values, dtype=float)
        self.shape, self.dtype = self._values.shape, self._values.dtype

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, index):  # E[ids], E[ids, :], E[i] ...
        raise TypeError(self.REFUSED)

    def __array__(self, *args, **kwargs):  # np.asarray(E), np.take(E, ids), tf.gather(E, ids) ...
        raise TypeError(self.REFUSED)

    def _times(self, left):  # left @ E
        return np.asarray(left, dtype=float) @ self._values

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):  # O @ E, np.matmul(O, E)
        if ufunc is np.matmul and method == "__call__" and len(inputs) == 2 and inputs[1] is self:
            return self._times(inputs[0])
        raise TypeError(self.REFUSED)

    def __array_function__(self, func, types, args, kwargs):  # np.dot(O, E)
        if func is np.dot and len(args) == 2 and args[1] is self:
            return self._times(args[0])
        raise TypeError(self.REFUSED)

    def __rmatmul__(self, left):  # a TensorFlow tensor @ E
        return self._times(left)

    def lookup(self, token_ids):
        """The reference answer, E[ids]: the check's business, not yours."""
        return self._values[token_ids]


table_big = np.round(np.random.default_rng(1).normal(size=(50, 8)), 2)
lookup_cases = [
    (ids, MultiplyOnlyTable(E)),
    (np.array([3, 3, 0, 49, 7]), MultiplyOnlyTable(table_big)),
    (np.array([5]), MultiplyOnlyTable(E)),
]
check(
    embed_one_hot,
    lambda ids, table: table.lookup(ids),
    inputs=lookup_cases,
    hint=(
        "a one-hot row has a single 1, in the column of the token's id; multiplying it by E adds up "
        "1 × (that row of E) and 0 × every other row",
        "one_hot = np.eye(E.shape[0])[ids] (this indexes the identity matrix, not E) has shape [T, V]; "
        "return one_hot @ E",
    ),
)


# %% tags=["solution"]
def embed_one_hot(ids, E):
    one_hot = np.eye(E.shape[0])[ids]  # [T, V]: rows of the identity, no indexing of E
    return one_hot @ E  # [T, V] @ [V, d] -> [T, d]


assert check(embed_one_hot, lambda ids, table: table.lookup(ids), inputs=lookup_cases)
# ... and the check refuses the lookup that the exercise rules out
refused = check(
    lambda ids, E: E[ids], lambda ids, table: table.lookup(ids), inputs=lookup_cases, name="E[ids]"
)
assert refused is False

# %% [markdown]
# ### Exercise 2 — the gradient of the table, without a one-hot matrix
#
# Section 1 derived $\partial L/\partial E = O^\top G$ with $G = \partial L/\partial Y$. Frameworks never build $O$:
# they **add** row $t$ of $G$ into row $\text{id}_t$ of a zero matrix. Write `embedding_grad(ids, G, vocab_size)`
# that does exactly that, without a one-hot matrix. The check holds you to it: its last case has 2048 positions and
# a vocabulary of 4096, where $O$ takes 64 MiB (and `np.eye(vocab_size)` 128 MiB) but the gradient only 128 KiB, and
# it refuses an answer that allocated more than 2 MiB (16 times that gradient) while it ran.


# %%
def embedding_grad(ids, G, vocab_size):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
def grad_reference(ids, G, vocab_size):
    """O^T G without O, a third way: np.bincount sums column k of G over the positions of each id."""
    columns = [np.bincount(ids, weights=G[:, k], minlength=vocab_size) for k in range(G.shape[1])]
    return np.stack(columns, axis=1)


rng_grad = np.random.default_rng(2)
G_big = np.round(rng_grad.normal(size=(5, 8)), 2)
many_ids, G_many = (
    rng_grad.integers(0, 4096, size=2048),
    np.round(rng_grad.normal(size=(2048, 4)), 2),
)
grad_cases = [
    (ids, G, len(thread.VOCAB)),
    (np.array([3, 3, 0, 49, 7]), G_big, 50),
    (many_ids, G_many, 4096),  # O would be [2048, 4096]
]
MiB = 2**20
sizes_MiB = (2048 * 4096 * 8 / MiB, 4096 * 4096 * 8 / MiB, 4096 * 4 * 8 / MiB)
print(
    "last case, float64: O {:.0f} MiB, np.eye(4096) {:.0f} MiB, the gradient {:.3f} MiB".format(
        *sizes_MiB
    )
)
assert sizes_MiB == (64, 128, 0.125)  # 0.125 MiB = 128 KiB
check(
    embedding_grad,
    grad_reference,
    inputs=grad_cases,
    max_memory=2 * MiB,  # 16x the largest gradient; O alone would take 64 MiB
    hint=(
        "start from a zero [V, d] matrix and add row t of G into row ids[t], for every t; a token that "
        "occurs twice must receive both rows",
        "grad = np.zeros((vocab_size, G.shape[1])); np.add.at(grad, ids, G) (grad[ids] += G keeps only "
        "one of the rows of a repeated id)",
    ),
)


# %% tags=["solution"]
def embedding_grad(ids, G, vocab_size):
    grad = np.zeros((vocab_size, G.shape[1]))
    # unbuffered: repeated ids accumulate (grad[ids] += G would keep only the last one)
    np.add.at(grad, ids, G)
    return grad


assert check(embedding_grad, grad_reference, inputs=grad_cases, max_memory=2 * MiB)
# ... and the formula of section 1, which builds O, is refused on the large case
built_O = check(
    lambda ids, G, vocab_size: np.eye(vocab_size)[ids].T @ G,
    grad_reference,
    inputs=grad_cases,
    max_memory=2 * MiB,
    name="O^T G with O",
)
assert built_O is False

# %% [markdown]
# ### Exercise 3 — how much does tying save?
#
# Write `embedding_params(vocab_size, d_model, tied)`: the number of parameters in the input embedding **plus** the
# output layer (no bias), tied or not. Then use it to answer: for a model with a 32 000-token vocabulary and
# $d_\text{model} = 4096$, how many parameters does tying save?


# %%
def embedding_params(vocab_size, d_model, tied):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
def embedding_params_reference(vocab_size, d_model, tied):
    return vocab_size * d_model * (1 if tied else 2)


param_cases = [
    (6, 4, True),
    (6, 4, False),
    (50257, 768, True),
    (50257, 768, False),
    (32000, 4096, False),
]

check(
    embedding_params,
    embedding_params_reference,
    inputs=param_cases,
    hint=(
        "the input embedding is a V × d table; untied, the output layer has a second matrix of the same "
        "size, tied, it reuses the first",
        "return vocab_size * d_model * (1 if tied else 2)",
    ),
)


# %% tags=["solution"]
def embedding_params(vocab_size, d_model, tied):
    table = vocab_size * d_model
    return table if tied else 2 * table


assert check(
    embedding_params,
    embedding_params_reference,
    inputs=param_cases,
)
saving = embedding_params(32000, 4096, tied=False) - embedding_params(32000, 4096, tied=True)
print(f"tying saves {saving:,} parameters at V = 32,000, d_model = 4096")

# %% [markdown]
# ## Summary
#
# * An embedding layer is a table $E \in \mathbb{R}^{V\times d_\text{model}}$; the embedding of token $i$ is row $i$.
#   Mathematically it is $\mathrm{one\_hot}(i)\,E$ (a bias-free linear layer on one-hot inputs), which also gives the
#   gradient $O^\top\,\partial L/\partial Y$: only the rows of tokens in the batch are updated.
# * The thread: ids `[0, 1, 2, 3, 0, 1]` → `embeddings = E[ids]`; the two *"to"* rows are identical.
# * There is **no softmax** in an embedding (the source article's $\mathrm{softmax}(W\cdot\text{input})$): it would
#   force positive coordinates summing to 1, merge vectors that differ by a constant, and saturate. The softmax belongs
#   at the output, over the vocabulary.
# * Random embeddings have no structure (cosines around $0 \pm 1/\sqrt{d}$); trained ones put words used in similar
#   contexts close together. PPMI + SVD on Tiny Shakespeare shows this in seconds.
# * The original Transformer scales embeddings by $\sqrt{d_\text{model}}$ so that words (initialised with variance
#   $1/d_\text{model}$) are not drowned by the sinusoidal positions (squared length $d_\text{model}/2$). GPT-2 does not
#   scale: it learns both tables, initialised with standard deviation 0.02 (tokens) and 0.01 (positions).
# * **Tying** reuses $E$ as the output matrix, $\text{logits} = h\,E^\top$: GPT-2 small saves 38.6M of 163M
#   parameters; the thread saves 24 of 300.
#
# **Next:** lesson 03 adds the position of each token — `x = embeddings + positions` — because attention, on its own,
# cannot tell *"to be or not to be"* from any shuffle of it.
#
# **References.** Vaswani et al. (2017), *Attention Is All You Need*, sec. 3.4. Press & Wolf (2017), *Using the Output
# Embedding to Improve Language Models*. Inan, Khosravi & Socher (2017), *Tying Word Vectors and Word Classifiers*.
# Levy & Goldberg (2014), *Neural Word Embedding as Implicit Matrix Factorization*. Levy, Goldberg & Dagan (2015),
# *Improving Distributional Similarity with Lessons Learned from Word Embeddings*. Halko, Martinsson & Tropp (2011),
# *Finding Structure with Randomness*. Radford et al. (2019), *Language Models are Unsupervised Multitask Learners*
# (GPT-2).
