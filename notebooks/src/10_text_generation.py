# %% [markdown]
# # 10 · Text generation: decoding strategies and the KV cache
#
# Lesson 09 trained a small GPT on Tiny Shakespeare. The model does one thing: given the text so far, it returns a
# **score (logit) for every possible next character**. Turning those scores into text is a separate decision, the
# *decoding strategy*, and it changes the result as much as the model does. The source article lists text
# generation (写诗、写故事、生成对话: poems, stories, dialogue) among the main applications of language models
# (sections 3.4 and 6.4) without saying how it is done; this lesson does exactly that.
#
# **By the end of this lesson you can**
#
# 1. write the generation loop of a decoder-only model and say why it is a loop;
# 2. derive **greedy** decoding, **temperature**, **top-k** (Fan et al., 2018) and **top-p / nucleus** sampling
#    (Holtzman et al., 2020), compute each by hand on four logits, and see which part of the trained model's
#    distribution each one keeps;
# 3. generate text with each strategy, and play with them in a small app;
# 4. explain what a **KV cache** stores and why that is enough, compute its size $2\,L\,B\,h\,T\,d_k$, and check
#    that it gives the same logits as recomputing everything — and measure how much time it saves;
# 5. handle a text longer than the model's window (keep the **last** `max_len` tokens, not the first!);
# 6. recognise the clear errors that bad settings produce.
#
# Where we are: the model is finished and trained. Everything in this lesson happens *after* the last arrow.
#
# ```text
# ids ─► E[ids] + P ─► N × block ─► LN_f ─► h Eᵀ = logits ─► softmax ─►  choose one token  ─► append, repeat
#                                 (lessons 02–09)                         (this lesson)
# ```

# %% tags=["nbval-ignore-output"]
import lessons_lib

info = lessons_lib.setup(seed=0)

# %%
import dataclasses
import re
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from IPython.display import display

from lessons_lib import (
    BABY_GPT,
    GPT,
    CharTokenizer,
    Generator,
    MultiHeadAttention,
    check,
    generate_text,
    load_checkpoint,
    load_tiny_shakespeare,
    next_token_distribution,
    sample_next,
    scaled_dot_product_attention,
    show_source,
    top_k_filter,
    top_p_filter,
    train_val_split,
)


def visible(c: str) -> str:
    """A character as it can be printed in a table: newline as ⏎, space as ␣."""
    return {"\n": "⏎", " ": "␣"}.get(c, c)


# %% [markdown]
# ## 0. The trained model
#
# We load the "baby GPT" of lesson 09 (4 layers, 4 heads, $d_{model} = 128$, a window of `max_len` = 64
# characters) from the checkpoint shipped with the course, and rebuild its character tokenizer from the corpus.
# `load_checkpoint` first checks that the checkpoint was made for exactly this configuration.

# %%
text = load_tiny_shakespeare(progress=False)
tokenizer = CharTokenizer.from_text(text)
model = BABY_GPT.build()
meta = load_checkpoint(model)
V, max_len = tokenizer.vocab_size, model.max_len

print(f"vocabulary: {V} characters; max_len: {max_len}; parameters: {model.count_params():,}")
print(
    f"checkpoint: {meta['steps']} training steps, validation loss {meta['val_loss']:.3f} "
    f"(a uniform guess would be ln {V} = {np.log(V):.3f})"
)
assert meta["vocab"] == "".join(tokenizer.tokens)  # the ids mean the same characters as in training
assert meta["val_loss"] < 2.0

# %% [markdown]
# ## 1. The generation loop
#
# A language model factorises the probability of a text into next-token probabilities (the chain rule):
#
# $$p(x_1, \dots, x_N) = \prod_{t=1}^{N} p_\theta(x_t \mid x_{<t}).$$
#
# That tells us how to *produce* text: one token at a time.
#
# 1. Run the model on the tokens so far, $x_{<t}$, and take the logits at the **last** position:
#    $z \in \mathbb{R}^V$.
# 2. Turn $z$ into a choice of next token $x_t$ — **the decoding strategy**.
# 3. Append $x_t$ and go back to 1.
#
# Each new token depends on the previous choices, so the loop cannot be parallelised over time. Everything in this
# lesson is about step 2 (which token?) and about making step 1 cheap (the KV cache, section 5).
#
# We work the strategies out by hand on a toy vocabulary of four tokens `a b c d` with logits
# $z = (2, 1, 0, -1)$, whose softmax is
#
# $$p_i = \frac{e^{z_i}}{\sum_j e^{z_j}} = \frac{(e^{2}, e^{1}, e^{0}, e^{-1})}{11.475} = (0.644,\ 0.237,\ 0.087,\ 0.032).$$

# %%
toy_vocab = ["a", "b", "c", "d"]
z = np.array([2.0, 1.0, 0.0, -1.0])
e = np.exp(z)
p = e / e.sum()
print("e^z     =", e.round(3), " sum =", e.sum().round(3))
print("softmax =", p.round(3))
np.testing.assert_allclose(next_token_distribution(z), p, atol=1e-12)
assert round(e.sum(), 3) == 11.475 and np.array_equal(p.round(3), [0.644, 0.237, 0.087, 0.032])

# %% [markdown]
# ### 1.1 Greedy decoding
#
# Take the most likely token: $x_t = \arg\max_i z_i$ (the softmax does not change the order, so the argmax of the
# logits is the argmax of the probabilities). Here that is always `a`.
#
# Greedy is deterministic and sounds safe, but it picks the best *next token*, not the best *text*, and in practice
# it quickly falls into loops ("the the the", "I will not, I will not, …"). Holtzman et al. (2020) show that
# maximisation-based decoding produces repetitive, bland text even with a large model (GPT-2 Large) — real text is *not*
# made of the most likely word at every step. Hence sampling.
#
# ### 1.2 Temperature
#
# Sample from the softmax of the logits divided by a **temperature** $\tau > 0$:
#
# $$p_i(\tau) = \frac{e^{z_i/\tau}}{\sum_j e^{z_j/\tau}}, \qquad
#   \frac{p_i(\tau)}{p_j(\tau)} = e^{(z_i - z_j)/\tau}.$$
#
# The ratio on the right tells the whole story. For $\tau = 1$ we sample from the model's own distribution. As
# $\tau \to 0$, every ratio with $z_i > z_j$ goes to $\infty$: all the mass moves to the argmax and sampling becomes
# greedy. As $\tau \to \infty$, every ratio goes to 1: the distribution becomes uniform. So $\tau < 1$ sharpens
# (safer, more repetitive) and $\tau > 1$ flattens (more varied, more mistakes). Dividing by $\tau > 0$ never
# changes the *order* of the tokens; $\tau = 0$ is not allowed (use greedy instead).
#
# ### 1.3 Top-k sampling (Fan et al., 2018)
#
# Even a good model gives every one of its $V$ tokens some probability, and the many unlikely tokens together add
# up: with 50 000 tokens at $10^{-5}$ each, half of the draws would come from the "tail". Fan et al. (2018, for
# story generation) keep only the $k$ most likely tokens $V^{(k)}$ and renormalise:
#
# $$p'_i = \begin{cases} \dfrac{p_i}{\sum_{j \in V^{(k)}} p_j} & i \in V^{(k)} \\[2mm] 0 & \text{otherwise.}\end{cases}$$
#
# In code we do not touch the probabilities: we set the logits outside $V^{(k)}$ to $-\infty$ and take the softmax,
# which gives the same thing because $e^{-\infty} = 0$ and the common factor $\sum_j e^{z_j}$ cancels:
# $\dfrac{e^{z_i}}{\sum_{j \in V^{(k)}} e^{z_j}} = \dfrac{p_i}{\sum_{j\in V^{(k)}} p_j}$.
# With $k = 2$: keep `a` and `b`, $p' = (0.644, 0.237) / 0.881 = (0.731, 0.269)$.
#
# The weakness of top-k is that $k$ is fixed: when the model is sure (one token has 0.99) $k = 10$ still lets 9 poor
# tokens in, and when many tokens are plausible (the first letter of a new word) $k = 10$ cuts good ones off.
#
# ### 1.4 Top-p, or nucleus, sampling (Holtzman et al., 2020)
#
# Holtzman et al. (2020) let the size of the kept set adapt: keep the **smallest** set of most likely tokens whose
# total probability reaches $p$, the *nucleus* $V^{(p)}$, and renormalise as above. Sort the probabilities in
# decreasing order, $p_{(1)} \ge p_{(2)} \ge \dots$; the nucleus is the first $m$ of them with
#
# $$m = \min\Big\{ m : \sum_{i=1}^{m} p_{(i)} \ge p \Big\}
#   \quad\Longleftrightarrow\quad \text{keep token } (i) \text{ exactly when } \sum_{j<i} p_{(j)} < p,$$
#
# i.e. when the mass *strictly before* it has not reached $p$ yet (so the most likely token is always kept).
# With $p = 0.7$: the mass before `a`, `b`, `c`, `d` is $0,\ 0.644,\ 0.881,\ 0.968$, so we keep `a` and `b` —
# here the same two tokens as top-2. For a flat distribution the nucleus would be large, for a peaked one small.
#
# **Order of operations** (as in `lessons_lib.generation.next_token_distribution`): divide by $\tau$, then top-k,
# then top-p, then softmax, then draw. The order matters for top-p: the temperature changes the probabilities and
# hence the nucleus. It does not matter for top-k, whose set depends only on the order of the logits.
#
# Let us compute all four by hand and compare with the library.


# %%
def renormalise_kept(p: np.ndarray, keep: np.ndarray) -> np.ndarray:
    q = np.where(keep, p, 0.0)
    return q / q.sum()


greedy_hand = np.eye(4)[np.argmax(z)]  # all the mass on the argmax
temp_hand = {tau: np.exp(z / tau) / np.exp(z / tau).sum() for tau in (0.5, 1.0, 2.0)}
k = 2
topk_hand = renormalise_kept(p, z >= np.sort(z)[-k])  # keep the k largest logits
order = np.argsort(-p)
mass_before = np.cumsum(p[order]) - p[order]  # probability strictly before each sorted token
keep_sorted = mass_before < 0.7
keep = np.zeros(4, dtype=bool)
keep[order] = keep_sorted
topp_hand = renormalise_kept(p, keep)

print("token             ", "    ".join(toy_vocab))
print("greedy            ", greedy_hand)
for tau, q in temp_hand.items():
    print(f"temperature {tau:<4}  ", q.round(3))
print("top-k, k = 2      ", topk_hand.round(3))
print(
    "mass before (sorted)",
    mass_before.round(3),
    "-> keep",
    [toy_vocab[i] for i in order[keep_sorted]],
)
print("top-p, p = 0.7    ", topp_hand.round(3))

# the library computes the same distributions
np.testing.assert_array_equal(sample_next(z[None], np.random.default_rng(0), greedy=True), [0])
for tau, q in temp_hand.items():
    np.testing.assert_allclose(next_token_distribution(z, temperature=tau), q, atol=1e-12)
np.testing.assert_allclose(next_token_distribution(z, top_k=2), topk_hand, atol=1e-12)
np.testing.assert_allclose(next_token_distribution(z, top_p=0.7), topp_hand, atol=1e-12)
print("top_k_filter(z, 2) =", top_k_filter(z, 2), "  top_p_filter(z, 0.7) =", top_p_filter(z, 0.7))
# the figures of the text
assert np.array_equal(topk_hand.round(3), [0.731, 0.269, 0, 0]) and np.array_equal(
    topp_hand, topk_hand
)
assert np.array_equal(mass_before.round(3), [0, 0.644, 0.881, 0.968])
assert temp_hand[2.0][0].round(3) == 0.455 and temp_hand[0.5][0].round(3) == 0.865

# %% [markdown]
# The temperature row for $\tau = 2$ shows the flattening ($0.644 \to 0.455$ for `a`), $\tau = 0.5$ the sharpening
# ($0.644 \to 0.865$). Now a case where temperature and top-p interact: with $p = 0.75$ at $\tau = 1$ the mass
# before `c` is $0.881 \ge 0.75$, so the nucleus has 2 tokens; at $\tau = 2$ it is $0.455 + 0.276 = 0.731 < 0.75$,
# so `c` joins and the nucleus has 3.

# %%
for tau in (1.0, 2.0):
    kept = next_token_distribution(z, temperature=tau, top_p=0.75) > 0
    print(f"tau = {tau}: nucleus for p = 0.75 is {[t for t, k_ in zip(toy_vocab, kept) if k_]}")
assert (next_token_distribution(z, top_p=0.75) > 0).sum() == 2
assert (next_token_distribution(z, temperature=2.0, top_p=0.75) > 0).sum() == 3
assert temp_hand[2.0][:2].round(3).tolist() == [0.455, 0.276] and temp_hand[2.0][:2].sum() < 0.75

# %% [markdown]
# ### 1.5 Drawing a token, and a check against TensorFlow
#
# To *draw* from a distribution $q$, `sample_next` uses NumPy's `Generator.choice(V, p=q)`: a uniform number
# $u \in [0, 1)$ falls into one of the intervals $[\sum_{j<i} q_j, \sum_{j \le i} q_j)$, whose lengths are the
# probabilities. With a fixed seed the draws are reproducible. Over many draws the frequencies approach $q$, and a
# token with $q_i = 0$ is never drawn:

# %%
draws = sample_next(np.tile(z, (20_000, 1)), np.random.default_rng(0), top_k=3)
freq = np.bincount(draws, minlength=4) / len(draws)
print("top-3 distribution:", next_token_distribution(z, top_k=3).round(3))
print("frequency in 20,000 draws:", freq.round(2))
assert freq[3] == 0 and np.abs(freq - next_token_distribution(z, top_k=3)).max() < 0.015

# %% [markdown]
# An independent reference: the same filters written with TensorFlow's own ops (`tf.math.top_k`, `tf.sort`, an
# *exclusive* cumulative sum), on random logits of the size of our vocabulary, for several settings.


# %%
def tf_distribution(logits, temperature=1.0, top_k=None, top_p=None):
    z_ = tf.constant(logits, tf.float64) / temperature
    if top_k is not None:
        kth = tf.math.top_k(z_, k=top_k).values[..., -1:]
        z_ = tf.where(z_ < kth, tf.constant(-np.inf, tf.float64), z_)
    if top_p is not None:
        sorted_z = tf.sort(z_, axis=-1, direction="DESCENDING")
        before = tf.cumsum(tf.nn.softmax(sorted_z), axis=-1, exclusive=True)  # mass strictly before
        smallest_kept = tf.reduce_min(
            tf.where(before < top_p, sorted_z, np.inf), axis=-1, keepdims=True
        )
        z_ = tf.where(z_ < smallest_kept, tf.constant(-np.inf, tf.float64), z_)
    return tf.nn.softmax(z_).numpy()


random_logits = np.random.default_rng(0).normal(scale=3.0, size=(50, V))
settings = [
    dict(),
    dict(temperature=0.5),
    dict(top_k=1),
    dict(top_k=10),
    dict(top_p=0.5),
    dict(top_p=0.95),
    dict(temperature=1.3, top_k=20, top_p=0.9),
]
worst = max(
    np.abs(next_token_distribution(random_logits, **s) - tf_distribution(random_logits, **s)).max()
    for s in settings
)
print(f"{len(settings)} settings x 50 rows: max |NumPy - TensorFlow| <= 1e-12: {worst <= 1e-12}")
assert worst <= 1e-12

# %% [markdown]
# ## 2. What each strategy keeps, on the trained model
#
# Now the real thing. We give the model the prompt `"ROMEO:\n"` — the name of a speaker, as the play text has it —
# and look at its distribution for the next character, the first letter of Romeo's line.

# %%
prompt = "ROMEO:\n"
prompt_ids = tokenizer.encode(prompt)
logits_romeo = model(np.array([prompt_ids], dtype=np.int32)).numpy()[0, -1].astype(np.float64)

strategies = {
    "model (τ = 1)": dict(),
    "greedy": "greedy",
    "temperature τ = 0.5": dict(temperature=0.5),
    "temperature τ = 1.5": dict(temperature=1.5),
    "top-k, k = 5": dict(top_k=5),
    "top-p, p = 0.9": dict(top_p=0.9),
}
dists = {
    name: (
        np.eye(V)[logits_romeo.argmax()]
        if s == "greedy"
        else next_token_distribution(logits_romeo, **s)
    )
    for name, s in strategies.items()
}
base = dists["model (τ = 1)"]
top = np.argsort(-base, kind="stable")[:12]

print(
    f"{'next char':<10}"
    + "".join(f"{name.split(',')[0].replace('temperature ', ''):>14}" for name in dists)
)
for i in top:
    print(
        f"{visible(tokenizer.tokens[i])!r:<10}" + "".join(f"{d[i]:>14.3f}" for d in dists.values())
    )
print(f"{'kept':<10}" + "".join(f"{(d > 0).sum():>14d}" for d in dists.values()))


def entropy(q: np.ndarray) -> float:
    q = q[q > 0]
    return float(-(q * np.log(q)).sum()) + 0.0  # + 0.0 turns the -0.0 of a one-hot into 0.0


assert all(abs(d.sum() - 1) < 1e-12 for d in dists.values())
assert (dists["top-k, k = 5"] > 0).sum() == 5
kept_p = np.sort(base[dists["top-p, p = 0.9"] > 0])  # the nucleus, smallest first
assert kept_p.sum() >= 0.9 > kept_p[1:].sum()  # reaches 0.9, and is the smallest set that does
assert entropy(dists["temperature τ = 0.5"]) < entropy(base) < entropy(dists["temperature τ = 1.5"])

# %% [markdown]
# The model has learned that a speech starts with a capital letter (or a word like "I"), and spreads its bets over
# several of them. The plot shows the same thing for the 20 most likely characters: the grey outline is the model's
# own distribution ($\tau = 1$), the coloured bars what each strategy samples from.

# %%
shown = np.argsort(-base, kind="stable")[:20]
fig, axes = plt.subplots(2, 3, figsize=(13, 6), sharey=True)
for ax, (name, d) in zip(axes.ravel(), dists.items()):
    x = np.arange(len(shown))
    ax.bar(x, base[shown], color="none", edgecolor="grey", linewidth=1.0, label="model, τ = 1")
    ax.bar(
        x,
        d[shown],
        color="tab:blue" if name != "greedy" else "tab:red",
        alpha=0.8,
        label="sampled from",
    )
    ax.set_xticks(x, [visible(tokenizer.tokens[i]) for i in shown], fontsize=9)
    ax.set_title(
        f"{name}\n{(d > 0).sum()} of {V} characters kept, entropy {entropy(d):.2f} nats",
        fontsize=10,
    )
axes[0, 0].legend(fontsize=8)
axes[0, 0].set_ylabel("p(next character)")
axes[1, 0].set_ylabel("p(next character)")
fig.suptitle(f"Next character after {prompt!r}: what each strategy keeps", y=1.0)
plt.tight_layout()
plt.show()

# %% [markdown]
# Top-k keeps a *fixed number* of characters; top-p a *fixed share of the probability*. How many characters does
# the nucleus hold as the text goes on? Below, the model reads a line of the validation text (never seen in
# training), and for each position we count the characters in the $p = 0.9$ nucleus of its next-character
# distribution. After a speaker's name such as `GREMIO` the model is sure that `:` and a line break follow (a
# nucleus of one character); after a space or at the start of a line 11 to 20 characters share 90 % of the
# probability. A fixed $k$ cannot fit both.

# %%
_, val_text = train_val_split(text, 0.9)
line = val_text[:max_len]
line_logits = model(np.array([tokenizer.encode(line)], dtype=np.int32)).numpy()[0]
nucleus_size = (next_token_distribution(line_logits.astype(np.float64), top_p=0.9) > 0).sum(axis=-1)

fig, ax = plt.subplots(figsize=(13, 3))
ax.bar(np.arange(len(line)), nucleus_size, color="tab:green")
ax.axhline(5, color="grey", linestyle="--", linewidth=1, label="top-k with k = 5 keeps 5, always")
ax.set_xticks(np.arange(len(line)), [visible(c) for c in line], fontsize=8)
ax.set_xlabel("the text read so far ends with this character")
ax.set_ylabel("characters in the\np = 0.9 nucleus")
ax.legend(fontsize=8, loc="upper right")
plt.tight_layout()
plt.show()

name_end = line.index("GREMIO:") + len("GREMIO") - 1  # the position of the name's last letter
after_name = nucleus_size[[name_end, name_end + 1]].tolist()  # after "GREMIO" and after "GREMIO:"
after_break = nucleus_size[[i for i, c in enumerate(line) if c in " \n"]]
print(f"nucleus after 'GREMIO' and after 'GREMIO:': {after_name} characters")
print(f"nucleus after a space or a newline: {after_break.min()} to {after_break.max()} characters")
assert after_name == [1, 1] and (after_break.min(), after_break.max()) == (11, 20)

# %% [markdown]
# ## 3. Samples from each strategy
#
# The `Generator` of `lessons_lib.generation` runs the loop of section 1 as **one compiled program** (XLA): the
# model, the filters of section 2 written in TensorFlow, and the draw (token number $n$ is drawn with the stateless
# seed $(\text{seed}, n)$, so a given seed always gives the same text on the same machine). `generate_text` wraps it
# with the tokenizer. We create **one** generator and reuse it: compiling is the slow part (several seconds), a step
# is a fraction of a millisecond. Every sample below starts from `"ROMEO:\n"` with seed 0.
#
# The exact characters depend on the last bits of floating-point rounding (a different CPU can change one draw and
# from then on the text diverges), so the output of this cell is not checked; the cell asserts what must hold.

# %% tags=["nbval-ignore-output"]
gen = Generator(model)
sample_settings = {
    "greedy": dict(greedy=True),
    "temperature 0.5": dict(temperature=0.5),
    "temperature 1.0": dict(temperature=1.0),
    "temperature 1.5": dict(temperature=1.5),
    "top-k, k = 10": dict(top_k=10),
    "top-p, p = 0.9": dict(top_p=0.9),
}
n_chars = 200
samples = {}
for name, s in sample_settings.items():
    samples[name] = generate_text(model, tokenizer, prompt, n_chars, generator=gen, seed=0, **s)
    print(f"──── {name} " + "─" * (60 - len(name)))
    print(prompt + samples[name])


def distinct_ngrams(s: str, n: int = 6) -> float:
    """Share of the text's character n-grams that are different: low for loops, high for varied text."""
    grams = [s[i : i + n] for i in range(len(s) - n + 1)]
    return len(set(grams)) / len(grams)


print(
    "share of distinct 6-grams:",
    {name: round(distinct_ngrams(s_), 2) for name, s_ in samples.items()},
)
for s_ in samples.values():
    assert len(s_) == n_chars and set(s_) <= set(tokenizer.tokens)
assert distinct_ngrams(samples["greedy"]) < min(
    distinct_ngrams(s_) for n_, s_ in samples.items() if n_ != "greedy"
)
# same seed, same text
assert (
    generate_text(model, tokenizer, prompt, 50, generator=gen, seed=0, top_p=0.9)
    == samples["top-p, p = 0.9"][:50]
)

# %% [markdown]
# What to look for: greedy decoding soon repeats itself (its share of distinct 6-grams is the lowest); a low
# temperature gives plausible but repetitive text; $\tau = 1.5$ invents words and punctuation; top-k and top-p
# keep the variety of $\tau = 1$ while cutting off most of the nonsense from the tail. Remember that this model has
# under a million parameters and was trained for a few minutes on a CPU: it learned the *form* of a play (names in
# capitals, line breaks, short lines), not its sense.
#
# ## 4. Try it yourself
#
# Change the prompt and the settings, then press **Generate** (this needs a running kernel; the output of this cell
# is not checked). `top_k = 0` and `top_p = 1` mean "off". Try a prompt with a character the model has never seen
# (an accented letter, say) to see the tokenizer's error.

# %% tags=["nbval-ignore-output"]
prompt_box = widgets.Textarea(
    value="ROMEO:\n", description="prompt", layout=widgets.Layout(width="420px")
)
temperature_slider = widgets.FloatSlider(
    value=0.8, min=0.05, max=2.0, step=0.05, description="temperature"
)
top_k_slider = widgets.IntSlider(value=0, min=0, max=V, description="top_k (0 = off)")
top_p_slider = widgets.FloatSlider(
    value=1.0, min=0.05, max=1.0, step=0.05, description="top_p (1 = off)"
)
greedy_box = widgets.Checkbox(value=False, description="greedy (ignores the sliders)")
length_slider = widgets.IntSlider(value=200, min=10, max=600, step=10, description="new chars")
seed_box = widgets.IntText(value=0, description="seed")
button = widgets.Button(description="Generate", button_style="primary")
app_output = widgets.Output(layout=widgets.Layout(border="1px solid #ccc", padding="4px"))


def on_generate(_):
    with app_output:
        app_output.clear_output()
        try:
            new_text = generate_text(
                model,
                tokenizer,
                prompt_box.value,
                length_slider.value,
                generator=gen,
                seed=seed_box.value,
                greedy=greedy_box.value,
                temperature=temperature_slider.value,
                top_k=top_k_slider.value or None,
                top_p=top_p_slider.value if top_p_slider.value < 1 else None,
            )
            print(prompt_box.value + new_text)
        except (ValueError, TypeError) as err:
            print(f"{type(err).__name__}: {err}")


button.on_click(on_generate)
display(
    widgets.VBox(
        [
            prompt_box,
            widgets.HBox([temperature_slider, top_k_slider, top_p_slider]),
            widgets.HBox([greedy_box, length_slider, seed_box]),
            button,
            app_output,
        ]
    )
)

# %% [markdown]
# ## 5. The KV cache: incremental decoding
#
# ### 5.1 What is recomputed, and what is not
#
# The plain loop runs the whole model over all $T$ tokens at every step, then throws away all the logits except
# the last row. Almost all of that work repeats the previous step. Why exactly?
#
# * **The past never changes.** With a causal mask, the vector of token $i$ in layer $l$, $x^{(l)}_i$, depends only
#   on tokens $0..i$ (lesson 08). By induction over the layers, appending token $t$ changes *nothing* at positions
#   $i < t$. In particular their keys and values in every layer,
#   $k^{(l)}_i = \mathrm{LN}(x^{(l-1)}_i) W_K^{(l)}$ and $v^{(l)}_i = \mathrm{LN}(x^{(l-1)}_i) W_V^{(l)}$, are
#   the same numbers at every later step.
# * **Only the new query row is needed.** We only need the logits of the last position. Its attention output in
#   each layer and head is
#
#   $$o_t = \mathrm{softmax}\!\Big(\frac{q_t\, [k_0, \dots, k_t]^\top}{\sqrt{d_k}}\Big)\,[v_0, \dots, v_t],$$
#
#   which needs the **new** query $q_t$ and **all** keys and values. The queries of old tokens served only to
#   compute old rows, which we no longer need, so there is no "Q cache".
#
# So we keep, for every layer and head, the keys and values of all tokens seen so far: the **KV cache**. A step then
# embeds only the new token, computes its $q_t, k_t, v_t$, writes $k_t, v_t$ into the cache, attends with one query
# row, and runs the FFN and the output layer on one row — instead of $T$ rows.
#
# First the NumPy picture for one head: the output rows for the old tokens are unchanged when a token is added, and
# the new row needs only the new query and the keys/values of all tokens.

# %%
rng = np.random.default_rng(0)
T, d_k = 6, 4
q_all, k_all, v_all = (rng.normal(size=(T, d_k)) for _ in range(3))
causal = np.tril(np.ones((T, T), dtype=bool))
out_full, _ = scaled_dot_product_attention(q_all, k_all, v_all, mask=causal)  # all T rows
out_prev, _ = scaled_dot_product_attention(
    q_all[:-1], k_all[:-1], v_all[:-1], mask=causal[:-1, :-1]
)
out_new, _ = scaled_dot_product_attention(q_all[-1:], k_all, v_all)  # ONE query row
print("old rows unchanged after adding a token:", np.allclose(out_full[:-1], out_prev, atol=1e-12))
print("last row from the new query + cached K, V:", np.allclose(out_full[-1:], out_new, atol=1e-12))
assert np.allclose(out_full[:-1], out_prev, atol=1e-12)
assert np.allclose(out_full[-1:], out_new, atol=1e-12)

# %% [markdown]
# The same in the trained model. `GPT.prefill(ids)` is a forward pass that also returns every layer's keys and
# values `[batch, heads, T, d_k]`; `GPT.decode_step(token, cache, pos)` embeds one token at position `pos`, writes
# its key and value into the cache, and returns its logits. We check that (a) the keys and values of the first 10
# characters are the same whether the model has read 10 or 11 characters, and (b) one decode step from the cache
# of 10 characters gives the logits of a full forward pass over 11.

# %%
ids11 = np.array([tokenizer.encode("ROMEO:\nWhat")], dtype=np.int32)  # 11 characters
_, cache10 = model.prefill(ids11[:, :10])
_, cache11 = model.prefill(ids11)
kv_change = max(
    float(np.abs(a[0][:, :, :10] - b[0][:, :, :10]).max())
    + float(np.abs(a[1][:, :, :10] - b[1][:, :, :10]).max())
    for a, b in zip(cache10, cache11)
)
print(f"{len(cache11)} layers, cache entries of shape (k, v) = {tuple(cache11[0][0].shape)} each")
print("K, V of the first 10 tokens unchanged by the 11th (≤ 1e-5):", kv_change <= 1e-5)

padded = np.zeros((1, max_len), dtype=np.int32)  # a full-size cache, right-padded
padded[0, :10] = ids11[0, :10]
_, cache = model.prefill(padded)
step_logits, _ = model.decode_step(ids11[:, 10], cache, 10)
full_logits = model(ids11)[:, -1]
step_diff = float(np.abs(np.asarray(step_logits) - np.asarray(full_logits)).max())
print("decode_step(11th token) == full forward over 11 tokens (≤ 1e-4):", step_diff <= 1e-4)
assert kv_change <= 1e-5 and step_diff <= 1e-4

# %% [markdown]
# Why is right-padding the prompt to `max_len` harmless? Causality again: the padding sits *after* the real
# tokens, so it cannot change them, and `decode_step` overwrites slot `pos` and masks every slot after it. A cache
# of fixed size lets XLA compile `decode_step` once for all positions.
#
# Here is that step in the library. The model's `decode_step` embeds the one token at its position and passes it
# through every block, each with its own part of the cache:

# %%
show_source(GPT.decode_step)

# %% [markdown]
# Each block runs its attention layer's `decode_step`, where the equation of §5.1 is:

# %%
show_source(MultiHeadAttention.decode_step)

# %% [markdown]
# `x` is one row, `[B, 1, d_model]`, so `q, k, v` are the new token's $q_t, k_t, v_t$; `slice_update` writes
# $k_t, v_t$ into slot `pos` of the caches; and `allowed` lets the one query row see slots $0..\text{pos}$ only,
# which hold exactly $[k_0, \dots, k_t]$ and $[v_0, \dots, v_t]$.
#
# ### 5.2 How big is the cache?
#
# For each of the $L$ layers, each of the $B$ sequences in the batch, each of the $h$ heads and each of the $T$
# cached positions, we store a key and a value of $d_k$ numbers:
#
# $$\text{KV cache} = 2 \cdot L \cdot B \cdot h \cdot T \cdot d_k \ \text{floats} \;=\; 2\,L\,B\,T\,d_{model}
#   \quad (h\,d_k = d_{model}).$$
#
# It grows linearly with the context length and the batch, and unlike the weights it is needed *per sequence*;
# for large models serving long contexts it, not the weights, limits how many requests fit on a GPU.


# %%
def kv_cache_floats(num_layers: int, batch: int, num_heads: int, seq_len: int, d_k: int) -> int:
    return 2 * num_layers * batch * num_heads * seq_len * d_k


_, full_cache = model.prefill(np.zeros((1, max_len), dtype=np.int32))
measured = sum(int(np.prod(k_.shape)) + int(np.prod(v_.shape)) for k_, v_ in full_cache)
formula = kv_cache_floats(
    model.num_layers, 1, model.num_heads, max_len, model.d_model // model.num_heads
)
print(
    f"baby GPT: formula {formula:,} floats, measured in the cache tensors {measured:,} floats "
    f"= {4 * measured / 2**10:.0f} KiB in float32"
)
assert measured == formula

for name, (L_, h_, dk_, T_, bytes_per) in {
    "GPT-2 small (L=12, h=12, d_k=64, T=1024, float32)": (12, 12, 64, 1024, 4),
    "GPT-2 XL (L=48, h=25, d_k=64, T=1024, float32)": (48, 25, 64, 1024, 4),
    "Llama 2 7B (L=32, h=32, d_k=128, T=4096, float16)": (32, 32, 128, 4096, 2),
}.items():
    mib = kv_cache_floats(L_, 1, h_, T_, dk_) * bytes_per / 2**20
    print(f"{name}: {mib:,.0f} MiB per sequence")
assert mib == 2048  # Llama 2 7B: 2 GiB for one 4096-token sequence

# %% [markdown]
# (Configurations from Radford et al., 2019 and Touvron et al., 2023. The Llama 2 figure, 2 GiB for *one*
# 4096-token sequence, is why later models share keys and values between heads: multi-query and grouped-query
# attention, Shazeer 2019; Ainslie et al., 2023.)
#
# ### 5.3 Same logits as full recomputation
#
# The decisive check: greedy generation with and without the cache, starting from `"ROMEO:\n"` (7 characters) and
# generating 58 more, so that the last step sees exactly `max_len` = 64 characters. `return_logits=True` returns
# the logits used at every step. Both paths must produce the same characters and the same logits, up to float32
# rounding.

# %%
n_new = max_len - len(prompt_ids) + 1  # the last step sees exactly 64 tokens
assert n_new == 58
ids_cache, logits_cache = gen.generate(prompt_ids, n_new, greedy=True, return_logits=True)
ids_full, logits_full = gen.generate(
    prompt_ids, n_new, greedy=True, use_cache=False, return_logits=True
)
max_diff = float(np.abs(logits_cache - logits_full).max())
print(
    f"{n_new} greedy steps: identical tokens: {np.array_equal(ids_cache, ids_full)}; "
    f"max |logits(cache) - logits(no cache)| <= 1e-4: {max_diff <= 1e-4}"
)
assert np.array_equal(ids_cache, ids_full) and max_diff <= 1e-4

# %% [markdown]
# The cached path that produced these logits is one compiled loop:

# %%
show_source(Generator._cached_loop_fn)

# %% [markdown]
# Steps 1–3 of its docstring are the loop of section 1 with §5.1's saving: the model runs once over the window
# (`prefill`), and after that only on the one new token (`decode_step`). `Generator.generate` calls this loop once
# per filling of the cache (section 6.1).

# %% [markdown]
# ### 5.4 What it saves
#
# Count the arithmetic per new token (a matrix product $[m, n] \times [n, p]$ costs $2mnp$ operations). The
# no-cache path runs the model over the whole window of $T$ = `max_len` positions (our generator pads shorter
# texts to the full window so that it compiles once); the cached path over one position, attending to $T$ cached
# keys:
#
# $$\text{no cache: } L\,(24\,T\,d^2 + 4\,T^2 d) + 2\,T\,d\,V, \qquad
#   \text{cache: } L\,(24\,d^2 + 4\,T\,d) + 2\,d\,V$$
#
# ($8d^2$ for the four projections and $16d^2$ for the FFN with $d_{ff} = 4d$ per row; $4Td$ per row for
# $qK^\top$ and the weighted sum of values; $2dV$ for the output layer). Every term of the no-cache count is $T$
# times the cached one: both paths do the same work per row, attending to the same $T$ keys, and the cache computes
# one row instead of $T$. So the saving is a factor of exactly $T$, by construction:


# %%
def flops_per_token(L_, d, T_, V_, cache: bool) -> int:
    rows = 1 if cache else T_
    return L_ * (24 * rows * d * d + 4 * rows * T_ * d) + 2 * rows * d * V_


f_full = flops_per_token(model.num_layers, model.d_model, max_len, V, cache=False)
f_cache = flops_per_token(model.num_layers, model.d_model, max_len, V, cache=True)
print(
    f"per new token: {f_full / 1e6:.1f} MFLOP without cache, {f_cache / 1e6:.2f} MFLOP with: "
    f"{f_full // f_cache}x less arithmetic, T = max_len = {max_len}"
)
assert f_full == max_len * f_cache  # one row instead of T rows: the ratio is exactly T

# %% [markdown]
# Now the clock. We time both paths at 64 and 256 new tokens (sampling with top-p, seed 0). Timings depend on the
# machine and what else it is doing, so this cell's output is not checked.


# %% tags=["nbval-ignore-output"]
def tokens_per_second(n_tokens: int, use_cache: bool, repeats: int = 3) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        gen.generate(prompt_ids, n_tokens, top_p=0.9, seed=0, use_cache=use_cache)
        best = min(best, time.perf_counter() - t0)
    return n_tokens / best


# warm-up: every function is compiled already, but be sure
gen.generate(prompt_ids, 2, use_cache=True)
gen.generate(prompt_ids, 2, use_cache=False)
speed_ups = []
for n_tokens in (64, 256):
    with_cache, without = tokens_per_second(n_tokens, True), tokens_per_second(n_tokens, False)
    speed_ups.append(with_cache / without)
    print(
        f"{n_tokens:>4} new tokens: {with_cache:7.0f} tokens/s with cache, {without:7.0f} without "
        f"-> speed-up {with_cache / without:.1f}x"
    )
assert max(speed_ups) < f_full / f_cache  # below the ratio of arithmetic, T

# %% [markdown]
# The measured speed-up is smaller than the ratio of arithmetic. Even inside one compiled loop a step has a fixed
# cost that the cache does not remove — the sampling (two sorts over the vocabulary), the bookkeeping, and for this
# tiny model the many small matrix products that cannot keep a CPU busy. At 256 tokens the cached path also re-fills
# its cache every 32 steps (section 6). The bigger the model and the longer the context, the more the arithmetic
# dominates and the closer the speed-up gets to the FLOP ratio; that is why every production decoder uses a KV
# cache. (`benchmarks/bench_gpt.py` measures it with more repeats.)
#
# ## 6. Texts longer than the window
#
# The model has learned position embeddings for positions $0..63$ only; there is no row for position 64. Feeding
# it 65 tokens is an error, and a clear one:

# %%
too_long = np.zeros((1, max_len + 1), dtype=np.int32)
try:
    model(too_long)
except ValueError as err:
    # Keras adds the layer's name and arguments around the message (with terminal colour codes); keep our line
    message = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    print("ValueError:", next(ln for ln in message.splitlines() if "max_len" in ln))

# %% [markdown]
# So once the text is longer than `max_len`, each step must choose which 64 tokens to show the model. The
# right choice is the **last** 64: the next character depends most on what came just before it, and it is the
# situation the model was trained for — predicting the token that follows the end of a window.
#
# Keeping the **first** 64 instead is an easy slip. A public Keras example ("Text generation with a miniature GPT",
# keras.io/examples/generative/text_generation_with_miniature_gpt) did exactly that for years: its generation callback used `start_tokens[:maxlen]` once the text was too
# long, and sampled from the logits at the last position of that window. From then on the model's input never
# changes, so every step samples from **the same distribution**: greedy repeats one token forever, and sampling
# draws unrelated tokens, each independent of everything generated after the window. Watch it happen with a
# 100-character prompt (greedy decoding, so the only thing that differs is the window; the exact characters are
# not checked, the frozen input is):

# %% tags=["nbval-ignore-output"]
long_prompt = val_text[1000:1100]
long_ids = tokenizer.encode(long_prompt)
assert len(long_ids) == 100 > max_len


def greedy_keep_first(ids, n):
    """THE BUG, for illustration only: show the model the *first* max_len tokens."""
    seq = list(ids)
    for _ in range(n):
        window = np.array([seq[:max_len]], dtype=np.int32)  # wrong: should be seq[-max_len:]
        seq.append(int(model(window).numpy()[0, -1].argmax()))
    return seq[len(ids) :]


wrong = greedy_keep_first(long_ids, 20)
right = gen.generate(long_ids, 20, greedy=True, use_cache=False)[0].tolist()
print("prompt ends with:      ", repr(long_prompt[-40:]))
print("keep the FIRST 64 (bug):", repr(tokenizer.decode(wrong)))
print("keep the LAST 64:       ", repr(tokenizer.decode(right)))
assert len(set(wrong)) == 1  # the frozen input gives the same greedy choice every time

# %% [markdown]
# ### 6.1 The two paths of `Generator`
#
# * **Without a cache** each step feeds `seq[-max_len:]`: the last 64 tokens, exactly, at every step.
# * **With the cache** the rule is in the module docstring of `lessons_lib/generation.py`: within `max_len` the
#   cached path is exact (section 5.3). When the cache is full (64 slots used), we cannot just "shift it left":
#   every cached key was computed with its old *position* embedding (and, from layer 2 on, from vectors that saw the
#   tokens that would fall out of the window), so shifted keys would not be the keys of the shifted text. Instead
#   we keep the **last `max_len // 2` = 32 tokens**, re-fill the cache from them with one `prefill` pass, and
#   continue decoding. The context then varies between 32 and 64 tokens. (Re-filling from the last 63 tokens at
#   every step would be exact, but would cost as much as having no cache.)
#
# Generate 200 characters from the 100-character prompt both ways (top-p 0.9, temperature 0.8, seed 0):

# %% tags=["nbval-ignore-output"]
settings_long = dict(temperature=0.8, top_p=0.9, seed=0)
new_nc, logits_nc = gen.generate(
    long_ids, 200, use_cache=False, return_logits=True, **settings_long
)
new_c, logits_c = gen.generate(long_ids, 200, use_cache=True, return_logits=True, **settings_long)
print("──── prompt (100 characters)\n" + long_prompt)
print("──── continued without cache\n" + tokenizer.decode(new_nc[0].tolist()))
print("──── continued with cache\n" + tokenizer.decode(new_c[0].tolist()))
assert new_nc.shape == new_c.shape == (1, 200)
assert set(tokenizer.decode(new_c[0].tolist())) <= set(tokenizer.tokens)

# %% [markdown]
# Now the check, without trusting the generator: we rebuild, for every one of the 200 steps, the window that the
# rule says the model should have seen, run the model on all 200 windows in one batch, and compare with the logits
# the generator actually used. Without a cache the window must be exactly the last 64 tokens; with the cache, the
# last $c_t$ tokens, where $c_t$ follows the re-fill rule (64 at the first step, since the prompt is longer than the
# window, then 32, 33, …, 64, 32, …).


# %%
def windows_logits(seq: np.ndarray, start: int, contexts: list[int]) -> np.ndarray:
    """Logits after seq[:start + i], computed from its last contexts[i] tokens, for every step i (one batch)."""
    batch = np.zeros((len(contexts), max_len), dtype=np.int32)  # right-padded windows
    for i, c in enumerate(contexts):
        batch[i, :c] = seq[start + i - c : start + i]
    logits = model(batch).numpy()
    return logits[np.arange(len(contexts)), np.array(contexts) - 1]


def refill_rule(prompt_len: int, n_steps: int) -> list[int]:
    """How many tokens the cached path sees at each step (the rule in generation.py's docstring)."""
    contexts, cached = [], None
    for i in range(n_steps):
        if cached is None:
            cached = min(prompt_len, max_len)  # first step: prefill the (last max_len) prompt
        elif cached == max_len:
            cached = max_len // 2  # full: re-fill from the last max_len // 2 tokens
        else:
            cached += 1  # decode: one more token in the cache
        contexts.append(cached)
    return contexts


P = len(long_ids)
ctx_nc = [min(P + i, max_len) for i in range(200)]
ctx_c = refill_rule(P, 200)
diff_nc = float(
    np.abs(windows_logits(np.concatenate([long_ids, new_nc[0]]), P, ctx_nc) - logits_nc[0]).max()
)
diff_c = float(
    np.abs(windows_logits(np.concatenate([long_ids, new_c[0]]), P, ctx_c) - logits_c[0]).max()
)
print("no cache: every step saw exactly the last 64 tokens (max |diff| <= 1e-4):", diff_nc <= 1e-4)
print(
    "cache:    every step saw the last c_t tokens of the re-fill rule (max |diff| <= 1e-4):",
    diff_c <= 1e-4,
)
print("c_t for the first 40 steps:", ctx_c[:40])
first_window = windows_logits(np.concatenate([long_ids, new_nc[0]]), max_len, [max_len] * 1)
print(
    "and the first 64 tokens would have given other logits:",
    float(np.abs(first_window[0] - logits_nc[0, 0]).max()) > 1e-2,
)
assert diff_nc <= 1e-4 and diff_c <= 1e-4

# %%
fig, ax = plt.subplots(figsize=(11, 3))
ax.step(np.arange(200), ctx_nc, where="post", label="no cache: last max_len tokens", linewidth=2)
ax.step(
    np.arange(200),
    ctx_c,
    where="post",
    label="KV cache: re-filled from the last max_len // 2",
    linewidth=1.5,
)
ax.axhline(max_len, color="grey", linestyle=":", linewidth=1)
ax.set_xlabel("generation step")
ax.set_ylabel("tokens the model sees")
ax.set_ylim(0, max_len + 8)
ax.legend(fontsize=8, loc="lower right")
ax.set_title("Context seen at each step, 100-character prompt, 200 new characters")
plt.tight_layout()
plt.show()

# %% [markdown]
# How much does the shorter context change the predictions? For the cached run's own text, compare at every step
# the distribution from the re-fill context ($c_t$ tokens) with the distribution from the full last 64 tokens, by
# their total variation distance $\tfrac12 \sum_i |p_i - q_i|$ (0 = identical, 1 = disjoint). It is 0 wherever
# $c_t = 64$; the cell prints how large it is elsewhere (the figures depend on the sampled text, so they are not
# checked):

# %% tags=["nbval-ignore-output"]
seq_c = np.concatenate([long_ids, new_c[0]])
p_refill = next_token_distribution(logits_c[0].astype(np.float64))
p_last64 = next_token_distribution(windows_logits(seq_c, P, [max_len] * 200).astype(np.float64))
tv = 0.5 * np.abs(p_refill - p_last64).sum(axis=-1)
ctx = np.array(ctx_c)
after_refill, growing = ctx == max_len // 2, (ctx > max_len // 2) & (ctx < max_len)
print(
    f"right after a re-fill (c_t = {max_len // 2}, {after_refill.sum()} steps): "
    f"mean {tv[after_refill].mean():.2f}, max {tv[after_refill].max():.2f}"
)
print(
    f"while the context grows back ({max_len // 2} < c_t < {max_len}): mean {tv[growing].mean():.2f}"
)
print(f"largest at any step: {tv.max():.2f}; at c_t = {max_len}: {tv[ctx == max_len].max():.0e}")
assert tv[ctx == max_len].max() < 1e-3
assert tv[after_refill].mean() > 0.05  # not "a few hundredths"

# %% [markdown]
# On the validation text nothing is sampled, so the same comparison gives checked figures. For 256 consecutive
# positions we cut the context to the last $c$ tokens, as a re-fill does (the kept tokens then sit at positions
# $0..c-1$), and compare with the whole window of 64:

# %%
n_pos = 256
val_seq = np.array(tokenizer.encode(val_text[1000 : 1000 + max_len + n_pos]))
p_window = next_token_distribution(
    windows_logits(val_seq, max_len, [max_len] * n_pos).astype(np.float64)
)
tv_cut = {}
for c in (32, 40, 48, 56, 63):
    q = next_token_distribution(windows_logits(val_seq, max_len, [c] * n_pos).astype(np.float64))
    tv_cut[c] = 0.5 * np.abs(q - p_window).sum(axis=-1)
    print(
        f"last {c} tokens instead of {max_len}: total variation mean {tv_cut[c].mean():.2f}, "
        f"max {tv_cut[c].max():.2f}"
    )
means = [float(d.mean()) for d in tv_cut.values()]
assert round(means[0], 2) == 0.10 and round(float(tv_cut[32].max()), 2) == 0.55
assert all(a > b for a, b in zip(means, means[1:]))  # shrinks as the context grows back
assert round(means[-1], 2) == 0.06

# %% [markdown]
# Right after a re-fill the prediction moves by about a tenth in total variation on average (0.10 here), not by
# a few hundredths, and at single positions by up to 0.55. The gap shrinks as the context grows back, but even 63
# tokens instead of 64 differ by 0.06 on average: dropping one character moves every other one to a new position,
# and this model's positions are learned absolute embeddings. So beyond `max_len` the cached path approximates the
# sliding window of the no-cache path; within `max_len` it is exact (section 5.3).

# %% [markdown]
# ## 7. Bad settings give clear errors
#
# Every one of these is a mistake that is easy to make, and each gets an error that says what was expected and
# what was given — raised *before* any model work starts.


# %%
def show_error(action) -> None:
    try:
        action()
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"{type(err).__name__}: {err}")
    else:
        raise AssertionError("expected an error")


show_error(lambda: generate_text(model, tokenizer, "", 10, generator=gen))  # empty prompt
show_error(lambda: gen.generate([], 10))  # empty ids
show_error(
    lambda: generate_text(model, tokenizer, "ROMEO: ¿Qué tal?", 10, generator=gen)
)  # unknown characters
show_error(lambda: gen.generate([V], 10))  # id out of range
show_error(lambda: generate_text(model, tokenizer, prompt, 10, generator=gen, top_k=0))
show_error(lambda: generate_text(model, tokenizer, prompt, 10, generator=gen, top_k=V + 1))
show_error(lambda: generate_text(model, tokenizer, prompt, 10, generator=gen, top_p=0.0))
show_error(lambda: generate_text(model, tokenizer, prompt, 10, generator=gen, top_p=1.5))
show_error(lambda: generate_text(model, tokenizer, prompt, 10, generator=gen, temperature=0))
show_error(lambda: generate_text(model, tokenizer, prompt, 10, generator=gen, temperature=-1.0))
show_error(lambda: gen.generate(prompt_ids, 0))  # nothing to generate
show_error(
    lambda: load_checkpoint(dataclasses.replace(BABY_GPT, num_layers=2).build())
)  # wrong model

# %% [markdown]
# ## 8. Exercises
#
# ### Exercise 1 — top-k filtering
#
# Write `my_top_k_filter(logits, k)` for logits of shape `[..., V]` (one row per distribution): keep each row's
# `k` largest logits and set all others to `-np.inf`. Like the library, keep every logit **equal** to the `k`-th
# largest (ties), so `[1, 1, 0]` with `k = 1` keeps both ones. Return float64.


# %%
def my_top_k_filter(logits, k):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
ex_rng = np.random.default_rng(1)
top_k_cases = [
    (z, 1),
    (z, 2),
    (z[::-1].copy(), 3),
    (np.array([1.0, 1.0, 0.0]), 1),
    (ex_rng.normal(size=(3, 10)), 4),
    (ex_rng.normal(size=(2, 5)), 5),
]
check(
    my_top_k_filter,
    top_k_filter,
    inputs=top_k_cases,
    hint=(
        "Find each row's k-th largest logit and keep every logit at least that large (so ties stay in); "
        "replace the others by -inf.",
        "kth = np.sort(logits, axis=-1)[..., -k][..., None] (the [..., None] broadcasts it over the row); "
        "then np.where(logits < kth, -np.inf, logits)",
    ),
)


# %% tags=["solution"]
def my_top_k_filter(logits, k):
    logits = np.asarray(logits, dtype=np.float64)
    kth = np.sort(logits, axis=-1)[..., -k][..., None]  # the k-th largest of each row
    return np.where(logits < kth, -np.inf, logits)


_ = check(my_top_k_filter, top_k_filter, inputs=top_k_cases)

# %% [markdown]
# ### Exercise 2 — nucleus (top-p) filtering
#
# Write `my_top_p_filter(logits, p)`: keep the smallest set of most likely tokens whose probability reaches `p`
# (per row), set the other logits to `-np.inf`. Follow section 1.4: sort, softmax, the mass *strictly before* each
# sorted token, keep where it is `< p`, and put the decision back in the original order.


# %%
def my_top_p_filter(logits, p):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
top_p_cases = [
    (z, 0.5),
    (z, 0.7),
    (z, 0.9),
    (z, 1.0),
    (z[[2, 0, 3, 1]].copy(), 0.7),
    (ex_rng.normal(scale=2.0, size=(4, 12)), 0.8),
    (ex_rng.normal(size=(2, 6)), 0.3),
]
check(
    my_top_p_filter,
    top_p_filter,
    inputs=top_p_cases,
    hint=(
        "Sort each row from most to least likely and keep a token while the probability strictly before it "
        "is still below p; then carry that decision back to the unsorted positions.",
        "order = np.argsort(-logits, axis=-1); softmax of the sorted logits gives probs; "
        "before = np.cumsum(probs, axis=-1) - probs; drop where before >= p; "
        "np.put_along_axis(drop, order, drop_sorted, axis=-1) brings it back",
    ),
)


# %% tags=["solution"]
def my_top_p_filter(logits, p):
    logits = np.asarray(logits, dtype=np.float64)
    order = np.argsort(-logits, axis=-1, kind="stable")
    sorted_logits = np.take_along_axis(logits, order, axis=-1)
    probs = np.exp(sorted_logits - sorted_logits[..., :1])
    probs /= probs.sum(axis=-1, keepdims=True)
    before = np.cumsum(probs, axis=-1) - probs  # mass strictly before each sorted token
    drop = np.zeros(logits.shape, dtype=bool)
    np.put_along_axis(drop, order, before >= p, axis=-1)  # back to the original order
    return np.where(drop, -np.inf, logits)


_ = check(my_top_p_filter, top_p_filter, inputs=top_p_cases)

# %% [markdown]
# ### Exercise 3 — the size of a KV cache
#
# Write `kv_cache_mib(num_layers, batch, d_model, seq_len, bytes_per_float)`: the size of a KV cache in MiB
# ($2^{20}$ bytes). (Hint: $h\,d_k = d_{model}$, so the number of heads drops out.) Then use it: how many
# 1024-token sequences of GPT-2 small ($L = 12$, $d_{model} = 768$) fit in 1 GiB of float16 cache?


# %%
def kv_cache_mib(num_layers, batch, d_model, seq_len, bytes_per_float):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
def reference_kv_cache_mib(num_layers, batch, d_model, seq_len, bytes_per_float):
    return 2 * num_layers * batch * seq_len * d_model * bytes_per_float / 2**20


kv_cases = [
    (4, 1, 128, 64, 4),
    (12, 1, 768, 1024, 4),
    (12, 8, 768, 1024, 2),
    (32, 1, 4096, 4096, 2),
]
check(
    kv_cache_mib,
    reference_kv_cache_mib,
    inputs=kv_cases,
    hint=(
        "Count the numbers in the cache: a key and a value of d_model numbers (all heads together) per "
        "layer, sequence and position; then bytes, then MiB.",
        "2 * num_layers * batch * seq_len * d_model * bytes_per_float / 2**20",
    ),
)


# %% tags=["solution"]
def kv_cache_mib(num_layers, batch, d_model, seq_len, bytes_per_float):
    return 2 * num_layers * batch * seq_len * d_model * bytes_per_float / 2**20


_ = check(kv_cache_mib, reference_kv_cache_mib, inputs=kv_cases)
per_sequence = kv_cache_mib(12, 1, 768, 1024, 2)
print(
    f"GPT-2 small, float16: {per_sequence:.0f} MiB per sequence -> {int(1024 // per_sequence)} sequences per GiB"
)

# %% [markdown]
# ## Summary
#
# * Generation is a loop: run the model, take the **last** logits, choose a token, append it, repeat.
# * **Greedy** takes the argmax: deterministic, and prone to loops. **Temperature** $\tau$ samples from
#   $\mathrm{softmax}(z/\tau)$: $\tau \to 0$ is greedy, $\tau \to \infty$ uniform. **Top-k** (Fan et al., 2018) keeps
#   the $k$ most likely tokens; **top-p** (Holtzman et al., 2020) the smallest set with probability $\ge p$, whose
#   size adapts to how sure the model is. Filtering is done on the logits ($-\infty$), then one softmax
#   renormalises; the order is temperature → top-k → top-p.
# * With a causal mask, the keys and values of past tokens never change, and a step only needs the new query row:
#   the **KV cache** stores $2\,L\,B\,h\,T\,d_k$ floats and gives the same logits as full recomputation (checked to
#   $10^{-4}$, same tokens). It computes one row instead of $T$, so it divides the arithmetic by exactly $T$ (64
#   here, by construction); the measured speed-up on a CPU is smaller because every step also has fixed costs
#   (sampling, bookkeeping, small matrix products).
# * Past `max_len`, keep the **last** `max_len` tokens. Keeping the first ones freezes the model's input and
#   its output distribution. Our cached path re-fills from the last `max_len // 2` tokens when the cache is full;
#   we checked both paths step by step against the rule. The re-fill is an approximation of the sliding window:
#   right after it the next-token distribution differs by about 0.1 in total variation on the validation text.
# * Bad settings (empty prompt, unknown characters, `top_k` outside $[1, V]$, `top_p` outside $(0, 1]$,
#   $\tau \le 0$) raise clear errors before any work is done.
#
# **Next.** This is the end of the core path: you have built, trained and run a GPT from its parts. The lesson map
# in lesson 00 lists where to go from here (the cost of attention at long contexts, where the KV cache's memory
# formula returns; applications; compression).
#
# *References.* Fan, Lewis & Dauphin (2018), *Hierarchical Neural Story Generation* (top-k sampling). Holtzman,
# Buys, Du, Forbes & Choi (2020), *The Curious Case of Neural Text Degeneration* (nucleus sampling). Radford et al.
# (2019), *Language Models are Unsupervised Multitask Learners* (GPT-2). Touvron et al. (2023), *Llama 2: Open
# Foundation and Fine-Tuned Chat Models*. Shazeer (2019), *Fast Transformer Decoding: One Write-Head is All You
# Need*. Ainslie et al. (2023), *GQA: Training Generalized Multi-Query Transformer Models from Multi-Head
# Checkpoints*. Pope et al. (2023), *Efficiently Scaling Transformer Inference* (KV cache memory in practice).
