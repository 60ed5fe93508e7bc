# %% [markdown]
# # 13 · Machine translation: an encoder reads, a decoder writes
#
# Translation is the task the Transformer was invented for: Vaswani et al. (2017) introduced it on English–German
# and English–French news, and the source article lists it among the applications (section 6.2). It is also the one
# task of this course that needs **both halves** of the original architecture at once: an **encoder** that reads the
# whole source sentence (lesson 11), and a **decoder** that writes the translation one token at a time (lessons
# 08–10), looking back at the encoder's output through **cross-attention** (lesson 05 §8).
#
# The article's section 6.2 says that "large language models such as GPT-3 and BERT" achieve high-quality
# translation. Two corrections: **BERT alone does not translate** — it is an encoder only, with no way to write a
# sequence of another length; **GPT-3 is decoder-only** — it translates when prompted, by continuing a text, with
# neither an encoder nor cross-attention. The encoder–decoder of this lesson is the third family: the original
# Transformer, T5, BART and most dedicated translation systems.
#
# **Goals.** By the end of this lesson you can
#
# 1. split a parallel corpus so that no test sentence leaks into training, and score against *all* its references;
# 2. build an encoder–decoder from the course's blocks and check it against a NumPy reference;
# 3. name the **three masks** it needs, show them on one padded batch, and prove what breaks without each;
# 4. derive the **label shift** of teacher forcing and train with `compile`/`fit`;
# 5. derive **greedy** and **beam search** (with GNMT's length penalty) and check the beam against a brute force;
# 6. decode with a **KV cache that includes cross-attention**, and check it against full recomputation;
# 7. compute **BLEU** by hand on one sentence, check it against sacreBLEU, and report corpus BLEU and chrF;
# 8. read the model's **cross-attention** as an alignment between the two languages, and find where the model
#    breaks: sentences longer than any it was trained on.
#
# ```text
#  "Tom is tired."                                                         "Tom está cansado."
#        │ BPE (§1)                                                                ▲ decode (§5)
#        ▼                                                                         │
#   source ids ─► Encoder (lesson 11) ─► H [T_s, d] ──┐ cross-attention (§2, §3)   │
#                  source padding mask                ▼                            │
#   <bos> y₁ … y_t ─────────────────────────► Decoder blocks ─► logits ─► y_{t+1} ─┘
#                     causal ∧ target padding (§3)        label shift (§4), beam + KV cache (§5)
# ```

# %% tags=["nbval-ignore-output"]
import lessons_lib

info = lessons_lib.setup(seed=0)

# %%
import contextlib
import io
import itertools
import json
import time
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
import sacrebleu

from lessons_lib import (
    SPA_ENG_CHECKPOINT,
    SPA_ENG_TRANSLATION,
    AttentionExplorer,
    BleuEvaluation,
    EncoderDecoder,
    FitProgress,
    LengthBuckets,
    Translator,
    check,
    compile_translator,
    corpus_bleu,
    corpus_chrf,
    encode_pairs,
    encode_sources,
    encode_targets,
    encoder_decoder_forward,
    encoder_decoder_param_count,
    evaluate_translations,
    length_penalty,
    load_encoder_decoder,
    load_spa_eng,
    sentence_bleu,
    sequence_loss,
    shift_targets,
    show,
    show_source,
    tokenize_13a,
    train_translation_tokenizers,
    train_translator,
)

# %% [markdown]
# ### How long this notebook trains
#
# The default run takes about three minutes on 2 CPU cores. §4 trains the model **for 200 steps** (a third of an
# epoch) to show `fit` at work, then loads the checkpoint shipped with the course, `checkpoints/spa_eng_translator.weights.h5`, made by
# `python -m lessons_lib.translation` (the same recipe, until the validation BLEU stops improving); its `.json`
# holds the command, the configuration and the training curve, which §4 plots. With `FULL = True` (what
# `llm-course run --full` passes) §4 runs the whole recipe here instead (about 10 minutes on 2 cores), and the rest
# of the lesson uses that model.

# %% tags=["parameters"]
FULL = False  # True: train the full recipe here (~10 minutes) instead of loading the checkpoint

# %% [markdown]
# ## 1 · The data: Tatoeba's English–Spanish pairs
#
# The sentences come from the Tatoeba project, collected as tab-separated pairs by manythings.org (CC BY 2.0 FR;
# the same file TensorFlow's translation tutorials use). Each line is `English<TAB>Spanish`. One English sentence
# can have many Spanish translations — different words, formal or informal "you", masculine or feminine forms.
#
# **Split by source sentence.** If we shuffled the *pairs*, the translations of one English sentence would fall
# into different splits, and the test set would hold sentences the model has already seen in training with another
# translation: a test score would measure memory. `load_spa_eng` splits the distinct English sentences (each with
# all its translations) 80 / 10 / 10, and keeps every translation of a test sentence as one of its **references**.
#
# **Direction: English → Spanish**, because the English side is what groups the references (the Spanish side has
# far fewer sentences with several translations). **Restriction:** English sentences of at most 5 words (split at
# spaces), so that a model trains to a useful level in minutes on 2 cores.

# %%
data = load_spa_eng(max_source_words=SPA_ENG_TRANSLATION.max_source_words, progress=False)
print(data)
most = max(range(len(data.train)), key=lambda i: len(data.train.references[i]))
print(f"\nthe training sentence with the most references, {data.train.sources[most]!r}:")
for ref in data.train.references[most][:6]:
    print("   ", ref)
print(f"    ... {len(data.train.references[most])} in all")

splits = {name: set(getattr(data, name).sources) for name in ("train", "val", "test")}
assert not (splits["train"] & splits["test"]) and not (splits["train"] & splits["val"])
assert (len(data.train), len(data.val), len(data.test)) == (33_492, 4_236, 4_177)
assert all(len(s.split()) <= 5 for s in data.test.sources)

# %% [markdown]
# How much would a split of the pairs leak? Shuffle the 50,973 pairs, cut them 80 / 10 / 10, and count the test
# pairs whose English sentence also occurs in training:

# %%
all_pairs = [(s, t) for split in (data.train, data.val, data.test) for s, t in zip(*split.pairs())]
order = np.random.default_rng(0).permutation(len(all_pairs))
cut = int(0.8 * len(all_pairs)), int(0.9 * len(all_pairs))
train_en = {all_pairs[i][0] for i in order[: cut[0]]}
test_pairs = [all_pairs[i] for i in order[cut[1] :]]
leak = np.mean([s in train_en for s, _ in test_pairs])
n_refs = np.array([len(r) for r in data.test.references])
print(f"a split of the pairs: {leak:.1%} of the test pairs have their English sentence in training")
print(
    f"our test sentences: {n_refs.mean():.2f} references on average, {np.mean(n_refs > 1):.1%} have more than one"
)

assert len(all_pairs) == 50_973 and 0.2 < leak < 0.33
assert n_refs.max() > 5

# %% [markdown]
# With the pair split, about one test pair in four would have an English sentence whose translation (another one)
# the model has seen in training.
#
# **Tokenizers.** One BPE tokenizer (lesson 01) per language, each trained on its side of the **training split
# only** (the test sentences must not shape the vocabulary), 2,000 tokens each. Both start with the same four special
# tokens, so `<pad>` is id 0 on both sides: `<pad>`, `<unk>` (a character never seen in training), `<bos>` (the
# decoder's first input), `<eos>` (the decoder says "done").

# %%
src_tok, tgt_tok = train_translation_tokenizers(
    data.train, SPA_ENG_TRANSLATION.source_vocab, SPA_ENG_TRANSLATION.target_vocab
)
example_en, example_es = data.test.sources[7], data.test.references[7][0]
print(f"{example_en!r} → {[src_tok.tokens[i] for i in src_tok.encode(example_en)]}")
print(f"{example_es!r} → {[tgt_tok.tokens[i] for i in tgt_tok.encode(example_es)]}")
train_src, train_tgt = data.train.pairs()
len_src = np.array([len(src_tok.encode(s)) for s in train_src])
len_tgt = np.array([len(tgt_tok.encode(t)) for t in train_tgt])
print(
    f"training pairs: {len(train_src):,}; tokens per sentence: English {len_src.mean():.1f} "
    f"(longest {len_src.max()}), Spanish {len_tgt.mean():.1f} (longest {len_tgt.max()})"
)

assert src_tok.tokens[:4] == tgt_tok.tokens[:4] == ("<pad>", "<unk>", "<bos>", "<eos>")
assert src_tok.vocab_size == tgt_tok.vocab_size == 2000
assert len_src.max() <= SPA_ENG_TRANSLATION.max_len and len_tgt.max() < SPA_ENG_TRANSLATION.max_len

# %% [markdown]
# ## 2 · The model: an encoder, a decoder, and cross-attention between them
#
# With source tokens $x_1 \dots x_S$ and target tokens $y_1 \dots y_n$, the model computes
#
# $$
# H = \mathrm{Encoder}(x) \in \mathbb{R}^{S \times d}, \qquad
# h^{(0)}_t = E_t[y_{t-1}] + P_t, \qquad
# h^{(l)} = \mathrm{DecBlock}_l\big(h^{(l-1)}, H\big), \qquad
# P(y_t \mid y_{<t}, x) = \mathrm{softmax}\big(\mathrm{LN}_f(h^{(L)}_t)\, E_t^\top\big),
# $$
#
# with $y_0 = \texttt{<bos>}$. The encoder is lesson 11's (bidirectional self-attention, source padding masked). A
# decoder block is lesson 08's pre-norm block with **one more sublayer** between the two we know:
#
# $$
# \begin{aligned}
# a &= h + \mathrm{MHA}\big(\mathrm{LN}_1(h);\ \text{causal} \wedge \text{target padding}\big) && \text{self-attention over the target so far}\\
# c &= a + \mathrm{MHA}\big(Q = \mathrm{LN}_c(a)\,W_Q,\ K = H W_K,\ V = H W_V;\ \text{source padding}\big) && \text{cross-attention to the source}\\
# \mathrm{DecBlock}(h, H) &= c + \mathrm{FFN}\big(\mathrm{LN}_2(c)\big)
# \end{aligned}
# $$
#
# In cross-attention the **queries come from the target** and the **keys and values from the source**: row $t$ of
# its weights says where in the English sentence the decoder looks while it writes Spanish token $t$ (§8). The output
# layer is tied to the target embedding $E_t$ (lesson 08 §5). Source and target have separate vocabularies.

# %%
show_source(EncoderDecoder.call)

# %%
show_source(lessons_lib.Decoder.call)

# %% [markdown]
# Our configuration: 2 encoder and 2 decoder blocks, $d = 64$, 4 heads, $d_{ff} = 256$, dropout 0.1. Parameters,
# counted by formula (`encoder_decoder_param_count`: a decoder block has a second attention, $4d^2 + 4d$, and a third
# LayerNorm, $2d$, more than an encoder block) and by Keras:

# %%
cfg = SPA_ENG_TRANSLATION
model = cfg.build(src_tok.vocab_size, tgt_tok.vocab_size)
n_formula = encoder_decoder_param_count(
    src_tok.vocab_size,
    tgt_tok.vocab_size,
    cfg.max_len,
    cfg.d_model,
    cfg.num_encoder_layers,
    cfg.num_decoder_layers,
    cfg.d_ff,
)
parts = {
    "encoder": model.encoder.count_params(),
    "decoder": model.decoder.count_params(),
    "  of which the two embedding tables": 2 * 2000 * cfg.d_model,
}
for name, n in parts.items():
    print(f"{name:36} {n:9,}")
print(f"{'total (Keras)':36} {model.count_params():9,}   formula {n_formula:,}")

assert model.count_params() == n_formula == 493_824

# %% [markdown]
# More than half of the parameters are the two embedding tables. **Check against an independent reference:**
# `encoder_decoder_forward` recomputes the whole forward pass in NumPy (float64) from the model's weights, with the
# course's NumPy attention, LayerNorm and FFN. On a padded batch of two sentences:

# %%
pair_src = ["Tom is tired.", "We are not going to sell it."]
pair_tgt = ["Tom está cansado.", "No lo vamos a vender."]
src_ids = encode_sources(src_tok, pair_src, cfg.max_len)
dec_in, labels, weights = shift_targets(encode_targets(tgt_tok, pair_tgt, cfg.max_len))
w_s = int((src_ids != 0).sum(1).max())
w_t = int(weights.sum(1).max())
src_ids, dec_in, labels, weights = (
    src_ids[:, :w_s],
    dec_in[:, :w_t],
    labels[:, :w_t],
    weights[:, :w_t],
)
logits_keras = model(src_ids, dec_in).numpy()
reference = encoder_decoder_forward(model, src_ids, dec_in)
gap = np.abs(logits_keras - reference["logits"]).max()
print(f"logits {logits_keras.shape}; largest difference Keras vs NumPy: {gap:.1e}")

assert gap < 1e-4

# %% [markdown]
# ## 3 · The three masks, on one padded batch
#
# Each mask says which keys a query may attend to (True = may attend):
#
# | mask | shape | where | why |
# |---|---|---|---|
# | **source padding** | $[B, S]$ | encoder self-attention (keys) | a source token must not read padding |
# | **causal ∧ target padding** | $[B, T, T]$ | decoder self-attention | token $t$ may see $y_{\le t}$ only: at generation time the future does not exist yet |
# | **cross-attention** | $[B, T, S]$ | decoder → encoder | every target token sees the real source tokens only: the source padding again, as cross-attention's keys |
#
# Here they are for our batch: sentence 0 is the shorter one on both sides, so its rows end in padding.

# %%
src_mask = src_ids != 0
tgt_real = dec_in != 0
causal = np.tril(np.ones((w_t, w_t), bool))
self_mask = causal[None] & tgt_real[:, None, :]
cross_mask = np.broadcast_to(src_mask[:, None, :], (2, w_t, w_s))
print("source tokens, sentence 0:", [src_tok.tokens[i] for i in src_ids[0]])
print("decoder input, sentence 0:", [tgt_tok.tokens[i] for i in dec_in[0]])
show("source padding mask [B, S]", src_mask.astype(int))
show("decoder self-attention mask, sentence 0 [T, T]", self_mask[0].astype(int))
show("cross-attention mask, sentence 0 [T, S]", cross_mask[0].astype(int))

assert src_mask[0].sum() < w_s and tgt_real[0].sum() < w_t  # sentence 0 is padded on both sides

# %% [markdown]
# **Proof that each mask matters.** A correct model gives sentence 0 the same logits whether it is alone or padded in
# a batch, and its logits at position $t$ do not depend on target tokens after $t$. We run the decoder by hand
# (embedding → blocks → output layer) with each mask in turn **missing** or **inverted**, and measure both:

# %%
dec = model.decoder
alone_src = src_ids[:1, : int(src_mask[0].sum())]
alone_tgt = dec_in[:1, : int(tgt_real[0].sum())]
n0 = alone_tgt.shape[1]


def run_decoder(src, tgt, source_padding=True, cross=True, causal_mask="causal"):
    """The model's forward pass with chosen masks (the default is the model's own)."""
    s_mask = src != 0
    h = model.encoder(src, padding_mask=s_mask if source_padding else np.ones_like(s_mask))
    x = dec.embed(tgt)
    t = tgt.shape[1]
    allowed = {"causal": np.tril(np.ones((t, t), bool)), "none": np.ones((t, t), bool)}
    allowed["inverted"] = ~allowed["causal"] | np.eye(t, dtype=bool)  # the future (and itself)
    for block in dec.blocks:
        x, *_ = block(
            x,
            h,
            mask=np.broadcast_to(allowed[causal_mask], (len(tgt), t, t)),
            padding_mask=tgt != 0,
            context_padding_mask=s_mask if cross else np.ones_like(s_mask),
            return_attention=True,
        )
    return dec.logits(x).numpy()


def padding_gap(**kw):
    """Sentence 0 alone vs padded in the batch: largest logit difference at its real positions."""
    return np.abs(
        run_decoder(alone_src, alone_tgt, **kw)[0] - run_decoder(src_ids, dec_in, **kw)[0, :n0]
    ).max()


def future_gap(**kw):
    """Change the last real target token of sentence 1: largest change of the logits before it."""
    changed = dec_in.copy()
    last = int(tgt_real[1].sum()) - 1
    changed[1, last] = (changed[1, last] + 7) % 2000 + 4 * (changed[1, last] < 4)
    a, b = run_decoder(src_ids, dec_in, **kw), run_decoder(src_ids, changed, **kw)
    return np.abs(a[1, :last] - b[1, :last]).max()


gaps = {
    "all masks (the model)": {},
    "no source padding mask in the encoder": {"source_padding": False},
    "no padding mask in cross-attention": {"cross": False},
    "no causal mask": {"causal_mask": "none"},
    "inverted causal mask": {"causal_mask": "inverted"},
}
table = {name: (padding_gap(**kw), future_gap(**kw)) for name, kw in gaps.items()}
print(f"{'':40} {'alone vs padded':>16} {'future leaks':>14}")
for name, (p, f) in table.items():
    print(f"{name:40} {p:16.1e} {f:14.1e}")
ours = run_decoder(src_ids, dec_in)

assert np.abs(ours - logits_keras).max() < 1e-5  # by hand = the model
assert table["all masks (the model)"][0] < 1e-5 and table["all masks (the model)"][1] < 1e-6
assert table["no source padding mask in the encoder"][0] > 1e-3
assert table["no padding mask in cross-attention"][0] > 1e-3
assert table["no causal mask"][1] > 1e-3 and table["inverted causal mask"][1] > 1e-3

# %% [markdown]
# * With every mask, sentence 0 alone and padded agree to float rounding, and no logit depends on a later token.
# * Without the source padding mask, the encoder's real tokens read padding, so sentence 0's translation depends on
#   how long the *other* sentence of its batch is. The same happens when only cross-attention forgets it.
# * Without the causal mask (or with it inverted) the logits at position $t$ see $y_{t+1}$ — the very token they must
#   predict. Training would reach a tiny loss by copying, and the model would be useless at generation, when
#   $y_{t+1}$ does not exist yet. This is the bug public tutorials of this task report most.
# * The **target padding** mask is the one that changes nothing here: with right padding, the causal mask already
#   hides every padded position from every real one. It matters for the padded rows themselves (which must not be
#   rows of NaN) and, above all, **in the loss**, where padded positions must weigh 0 (§4).

# %% [markdown]
# ## 4 · Teacher forcing: the label shift, and training with `compile` and `fit`
#
# A target row is `<bos> y₁ … yₙ <eos> <pad> …` (`encode_targets`). In training, the decoder reads the **true**
# previous tokens (*teacher forcing*) and predicts every next token at once:
#
# $$
# \text{decoder input} = (\texttt{<bos>}, y_1, \dots, y_n), \qquad \text{labels} = (y_1, \dots, y_n, \texttt{<eos>}),
# \qquad L = -\frac{\sum_t w_t \log P(\text{label}_t \mid \text{input}_{\le t}, x)}{\sum_t w_t},
# $$
#
# with $w_t = 0$ at padding. The logits at position $t$ saw `<bos> y₁ … y_t` (the causal mask) and are scored
# against $y_{t+1}$: the input is the target **without its last column**, the labels are the target **without
# `<bos>`**. `<eos>` is a label (the model must learn when to stop). In a row shorter than its batch, `<eos>` is
# also an input; its label there is `<pad>`, with weight 0, so nothing is learnt after the end.

# %%
show_source(shift_targets)

# %%
row = encode_targets(tgt_tok, [pair_tgt[0]], 12)
d_in, lab, w = shift_targets(row)
names = lambda ids: [tgt_tok.tokens[i] for i in ids]  # noqa: E731
print("target row    ", names(row[0]))
print("decoder input ", names(d_in[0]))
print("labels        ", names(lab[0]))
print("weights       ", w[0].astype(int).tolist())

assert (
    d_in[0, 0] == 2
    and (lab[0, : int(w[0].sum())] != 0).all()
    and names(lab[0])[int(w[0].sum()) - 1] == "<eos>"
)
assert (d_in[0, 1:] == lab[0, :-1]).all()  # the input is the labels moved one step right

# %% [markdown]
# **Why the mean over real tokens.** Keras' default reduction divides the summed loss by *every* position, padding
# included, so the same predictions would score a lower loss in a batch with more padding. `sequence_loss` divides
# by $\sum_t w_t$. The same two sentences, padded to their own width and to 32:

# %%
default = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
ours_loss = sequence_loss()
wide_src = encode_sources(src_tok, pair_src, cfg.max_len)
wide_in, wide_lab, wide_w = shift_targets(encode_targets(tgt_tok, pair_tgt, cfg.max_len))
logits_wide = model(wide_src, wide_in)
losses = {
    "sequence_loss, own width": float(ours_loss(labels, logits_keras, sample_weight=weights)),
    "sequence_loss, width 32": float(ours_loss(wide_lab, logits_wide, sample_weight=wide_w)),
    "Keras default, own width": float(default(labels, logits_keras, sample_weight=weights)),
    "Keras default, width 32": float(default(wide_lab, logits_wide, sample_weight=wide_w)),
}
for name, value in losses.items():
    print(f"{name:26} {value:.4f}")
print(f"ln(V) = {np.log(2000):.4f}: an untrained model's guesses are nearly uniform")

assert abs(losses["sequence_loss, own width"] - losses["sequence_loss, width 32"]) < 1e-4
assert losses["Keras default, width 32"] < 0.5 * losses["Keras default, own width"]

# %% [markdown]
# **Batches of similar length.** Our sentences have about 7 tokens on each side; padded to 32 columns, most of every
# batch would be padding, and a Transformer spends as much on a padded position as on a real one. `LengthBuckets`
# sorts the pairs by length each epoch (ties in random order), cuts batches of 64, shuffles the batches, and pads each
# only to its own longest row:

# %%
show_source(LengthBuckets.batch_rows)

# %%
train_pairs = encode_pairs(data.train, src_tok, tgt_tok, cfg.max_len)
buckets = LengthBuckets(train_pairs, cfg.batch_size, seed=0)
one_pass = buckets.batch_rows()
seen = np.sort(np.concatenate(one_pass))
share_32 = 1 - (train_pairs.source_lengths.sum() + train_pairs.weights.sum()) / (
    2 * cfg.max_len * len(train_pairs)
)
print(
    f"{len(train_pairs):,} training pairs ({train_pairs.dropped} dropped: too long), {len(buckets)} batches"
)
print(
    f"padding share: {share_32:.0%} when every row has {cfg.max_len} columns, {buckets.padding_share(one_pass):.1%} in length buckets"
)

assert (seen == np.arange(len(train_pairs))).all()  # every pair once per epoch
assert train_pairs.dropped == 0 and buckets.padding_share(one_pass) < 0.1 < 0.7 < share_32

# %% [markdown]
# `compile_translator` compiles with AdamW and `sequence_loss`; `BleuEvaluation` translates the first validation
# sentences after every epoch (greedy search, §5), adds `val_bleu` (BLEU, §7) to the logs, and keeps the weights of
# the best epoch. Here a third of an epoch, 200 of its 638 batches (`steps_per_epoch`; `FitProgress` from lesson 11
# draws the bar), and BLEU on 100 validation sentences:

# %%
show_source(compile_translator)

# %% tags=["nbval-ignore-output"]
model = compile_translator(model, cfg.learning_rate)  # the untrained model of §2 (seed 0)
live_eval = BleuEvaluation(data.val, src_tok, tgt_tok, sentences=100)
t0 = time.perf_counter()
live = model.fit(
    buckets.dataset(),
    epochs=1,
    steps_per_epoch=200,
    shuffle=False,
    callbacks=[live_eval, FitProgress()],
    verbose=0,
)
print(f"200 steps in {time.perf_counter() - t0:.0f} s on this machine (BLEU evaluation included)")

# %% tags=["nbval-ignore-output"]
live_loss, live_bleu = live.history["loss"][0], live.history["val_bleu"][0]
print(
    f"mean training loss over the 200 steps: {live_loss:.2f} (ln V = {np.log(2000):.2f} at the start)"
)
print(f"validation BLEU after them (100 sentences, greedy): {live_bleu:.1f}")

assert live_loss < 0.9 * np.log(2000)  # robust: the loss fell
assert 0 <= live_bleu < 30

# %% [markdown]
# ### The whole run
#
# The shipped checkpoint was trained by the same recipe (`train_translator`, which `python -m
# lessons_lib.translation` calls): up to 20 epochs, stopping after 3 epochs without a better validation BLEU (on 500
# validation sentences, greedy), and keeping the best epoch's weights. Its `.json` records the curve.

# %%
if FULL:
    model, _, full_eval, _ = train_translator(
        data, cfg, tokenizers=(src_tok, tgt_tok), callbacks=[FitProgress()]
    )
    curve = full_eval.curve
else:
    model, _ = load_encoder_decoder(  # the same model object, its weights replaced
        SPA_ENG_CHECKPOINT, model=model, source_tokenizer=src_tok, target_tokenizer=tgt_tok
    )
meta = json.loads(Path(str(SPA_ENG_CHECKPOINT) + ".json").read_text())
curve = full_eval.curve if FULL else meta["curve"]
best = max(curve, key=lambda c: c["val_bleu"])
print(
    f"checkpoint: {meta['command']}; {meta['parameters']:,} parameters; {meta['epochs_trained']} epochs, best "
    f"{meta['best_epoch']} (val BLEU {best['val_bleu']:.1f})"
)
print(
    f"  {curve[-1]['time']:.0f} s of training on {meta['cpus']} CPUs (load average "
    f"{meta['load_average_at_start']:.1f} at the start)"
)
assert meta["best_epoch"] == best["epoch"] and meta["parameters"] == 493_824

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
axes[0].plot([c["epoch"] for c in curve], [c["loss"] for c in curve], "o-", label="training loss")
axes[0].set(xlabel="epoch", ylabel="cross-entropy per target token", title="training loss")
axes[1].plot([c["time"] / 60 for c in curve], [c["val_bleu"] for c in curve], "o-", label="BLEU")
axes[1].plot([c["time"] / 60 for c in curve], [c["val_chrf"] for c in curve], "s--", label="chrF")
axes[1].axvline(
    best["time"] / 60, color="grey", ls=":", lw=1, label=f"best epoch ({best['epoch']})"
)
axes[1].set(
    xlabel="minutes of training (2 CPU cores)",
    ylabel="score",
    title="validation, greedy, 500 sentences",
)
axes[1].legend(fontsize=8)
plt.tight_layout()
plt.show()

first_20 = next(c for c in curve if c["val_bleu"] >= 20)
print(f"validation BLEU first ≥ 20 after epoch {first_20['epoch']} ({first_20['time']:.0f} s)")
assert first_20["epoch"] <= 5 and curve[-1]["loss"] < curve[0]["loss"] - 1

# %% [markdown]
# ## 5 · Decoding: greedy search, beam search, and a KV cache
#
# At generation time there is no true target to feed: the decoder feeds back its own tokens. A translation $Y = y_1
# \dots y_n$ (with $y_n = \texttt{<eos>}$ when finished) is scored by
#
# $$
# \log P(Y \mid X) = \sum_{t=1}^{n} \log P(y_t \mid y_{<t}, X).
# $$
#
# **Greedy search** takes $y_t = \arg\max_w P(w \mid y_{<t}, X)$ until `<eos>`. It can miss the best sequence: a
# first token slightly more likely than another may lead only to poor continuations.
#
# **Beam search** keeps the $K$ best partial hypotheses. At every step each live hypothesis is extended by every
# token ($K \cdot V$ candidates); the best $2K$ by $\log P$ are examined in order: one ending in `<eos>` among the
# first $K$ is **finished** and set aside, the first $K$ that do not end form the next beam. Every token costs
# log-probability, so a plain sum favours short translations; finished hypotheses are ranked with GNMT's **length
# penalty** (Wu et al., 2016; $\alpha = 0.6$ in Vaswani et al., 2017):
#
# $$
# \mathrm{score}(Y) = \frac{\log P(Y \mid X)}{\mathrm{lp}(Y)}, \qquad \mathrm{lp}(Y) = \left(\frac{5 + |Y|}{6}\right)^{\alpha}.
# $$
#
# The search of a sentence stops when it holds enough finished hypotheses and no live one can still beat them (a
# live hypothesis of log-probability $s \le 0$ can at best keep $s$ and grow to the maximum length, so its best
# attainable score is $s / \mathrm{lp}(\text{max length})$). With $K = 1$ and $\alpha = 0$, beam search is greedy
# search. `Translator` does both on batches of sentences.

# %%
show_source(lessons_lib.decoding.Translator._search)

# %% [markdown]
# **Check 1: width 1 is greedy.** On 100 test sentences, beam search with $K = 1$, $\alpha = 0$ returns exactly the
# greedy tokens:

# %%
translator = Translator.for_model(model)  # the one BleuEvaluation used: traced once
test_ids = encode_sources(src_tok, data.test.sources[:100], cfg.max_len)
test_ids = test_ids[:, : int((test_ids != 0).sum(1).max())]
greedy_hyps = translator.greedy(test_ids)
beam1 = translator.beam_search(test_ids, beam_width=1, length_penalty=0.0)
same = [g.tokens == b.tokens for g, b in zip(greedy_hyps, beam1)]
print(f"beam width 1 = greedy on {sum(same)} of {len(same)} sentences")
assert all(same) and all(
    np.isclose(g.log_prob, b.log_prob, atol=1e-4) for g, b in zip(greedy_hyps, beam1)
)

# %% [markdown]
# **Check 2: a wide enough beam finds the best sequence.** On a tiny random model we can score *every* possible
# output by teacher forcing and rank them. Its target vocabulary has 5 tokens: `<pad>` and `<bos>` (never written),
# `<eos>`, and two writable tokens (`<unk>` and one word). With at most 3 tokens there are 15 outputs (7 that end in
# `<eos>`, 8 stopped at the length limit). A beam of $K = 5$ never holds more than the $2^2 = 4$ live hypotheses that
# exist after two steps, so it drops nothing, and at the last step it ranks outputs of equal length by
# $\log P$ — it must find the brute force's best for every $\alpha$:

# %%
keras.utils.set_random_seed(11)
tiny = EncoderDecoder(
    12, 5, 8, 16, 2, 1, 1, embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0)
)
tiny_sources = np.array([[5, 6, 7], [8, 9, 10], [11, 4, 4]], dtype=np.int32)
tiny(tiny_sources, np.full((3, 1), 2, dtype=np.int32))  # build it
WRITABLE = (1, 4)  # <unk> and the one word; <eos> is 3


def every_output(max_length):
    """All outputs: up to max_length - 1 tokens then <eos> (finished), or max_length tokens (stopped)."""
    for n in range(max_length):
        for body in itertools.product(WRITABLE, repeat=n):
            yield (*body, 3), True
    for body in itertools.product(WRITABLE, repeat=max_length):
        yield body, False


def brute_force(source, alpha, max_length=3):
    """Every output scored by teacher forcing (one batch per output length); the best by log P / lp."""
    scored = []
    outputs = list(every_output(max_length))
    for n in range(1, max_length + 1):
        group = [(y, f) for y, f in outputs if len(y) == n]
        dec_input = np.array([[2, *y[:-1]] for y, _ in group], dtype=np.int32)
        src = np.repeat(source[None], len(group), axis=0)
        lp = keras.ops.log_softmax(tiny(src, dec_input), axis=-1).numpy()
        for (y, finished), row in zip(group, lp):
            total = float(sum(row[t, tok] for t, tok in enumerate(y)))
            scored.append((total / length_penalty(len(y), alpha), y[:-1] if finished else y))
    return max(scored), len(scored)


tiny_translator = Translator(tiny, run_eagerly=True)
greedy_missed, winners = 0, {}
print("α     source        brute-force best   beam of 5   greedy")
for alpha in (0.0, 0.6, 2.0):
    for k, source in enumerate(tiny_sources):
        (score, tokens), n_out = brute_force(source, alpha)
        beam = tiny_translator.beam_search(
            source[None], beam_width=5, max_length=3, length_penalty=alpha
        )[0]
        greedy_tiny = tiny_translator.greedy(source[None], max_length=3)[0]
        print(
            f"{alpha:<5} {str(source.tolist()):13} {str(tokens):18} {str(beam.tokens):11} {greedy_tiny.tokens}"
        )
        assert n_out == 15 and beam.tokens == tokens and abs(beam.score - score) < 1e-4
        greedy_missed += greedy_tiny.tokens != tokens
        winners.setdefault(k, set()).add(tokens)

assert greedy_missed > 0 and any(len(w) > 1 for w in winners.values())

# %% [markdown]
# The beam always finds the brute force's best. Greedy search misses it for some sources, and the best output of one
# source changes with $\alpha$: a larger $\alpha$ forgives length, and a longer output wins.

# %% [markdown]
# ### The KV cache, with cross-attention
#
# Without a cache, step $t$ runs the whole model — the encoder included — on the source and the $t$ tokens so far:
# the work of a sentence grows with the square of its length, and the source is re-encoded at every step (and for
# every beam). With the cache (`use_cache=True`, the default):
#
# * the source is encoded **once per sentence**, and each decoder block's cross-attention keys and values $H W_K$,
#   $H W_V$ are computed **once** from it (`Decoder.prefill`): they never change while the target grows;
# * each step runs the decoder on the **one new token**; its self-attention key and value are appended to the
#   block's cache (`Decoder.decode_step`); beams that are reordered carry their cache rows with them.

# %%
show_source(lessons_lib.Decoder.decode_step)

# %%
hyps_c, logits_c = translator.greedy(test_ids[:32], return_logits=True)
hyps_f, logits_f = translator.greedy(test_ids[:32], use_cache=False, return_logits=True)
cache_gap = np.abs(logits_c - logits_f).max()
print(
    f"greedy, 32 sentences, {logits_c.shape[1]} steps: largest logit difference, cache vs recomputation {cache_gap:.1e}"
)
assert cache_gap < 1e-4 and [h.tokens for h in hyps_c] == [h.tokens for h in hyps_f]

# %% [markdown]
# The same logits, so the same translations. The speed-up is measured by `benchmarks/bench_translation.py` (greedy
# and beam, with and without the cache, in one run, on an untrained model of this size that always writes the full
# `max_length` tokens, so that every figure is at a known target length). Its last recorded run:

# %%
bench = json.loads(Path("../benchmarks/results/translation.json").read_text())
print(f"{bench['command']}\n{bench['machine']}; {bench['sentences']} sentences per batch")
for r_ in bench["results"]:
    rate = r_["sentences_per_s"]
    print(
        f"{r_['search']:>7}, max_length {r_['max_length']:2d}: {rate['cache']:7.1f} sentences/s with the cache, "
        f"{rate['no_cache']:6.1f} without: {r_['speed_up']:.1f}×"
    )
longest = max(r_["max_length"] for r_ in bench["results"])
at_longest = {
    r_["search"]: r_["speed_up"] for r_ in bench["results"] if r_["max_length"] == longest
}
assert min(at_longest.values()) >= 3  # the target: at least 3× at the longest target length
assert bench["max_logit_difference"] < 1e-4 and longest == cfg.max_len

# %% [markdown]
# The gain grows with the length. Without the cache, step $t$ runs the encoder and $t$ decoder positions, so a
# translation of $n$ tokens costs about $n^2/2$ decoder positions and $n$ encoder passes; with it, $n$ positions and
# one encoder pass. At short lengths the fixed cost of every step (a call into TensorFlow, the bookkeeping of the
# search in NumPy) hides part of the difference.

# %% [markdown]
# ## 6 · Translating, and what the model refuses
#
# `Translator.translate` (or `lessons_lib.translate`) takes sentences: BPE-encodes them, searches, and decodes the
# tokens back to text without the special tokens. A few test sentences, greedy and with a beam of 4, next to their
# first reference:

# %%
sample = [3, 11, 25, 40, 57, 68]
texts = [data.test.sources[i] for i in sample]
g_out = translator.translate(texts, src_tok, tgt_tok)
b_out = translator.translate(texts, src_tok, tgt_tok, beam_width=4)
for i, en, g, b in zip(sample, texts, g_out, b_out):
    refs = data.test.references[i]
    print(
        f"{en}\n   greedy: {g}\n   beam 4: {b}\n   ref:    {refs[0]}"
        + (f"   (+{len(refs) - 1} more)" if len(refs) > 1 else "")
    )

# %% [markdown]
# Bad input gets a clear error, not a wrong translation:


# %%
def refused(call):
    """Run call() and print the error it raises (and fail if it raises none)."""
    try:
        call()
    except (ValueError, TypeError) as e:
        print(f"{type(e).__name__}: {str(e)[:150]}")
        return True
    raise AssertionError("no error was raised")


assert refused(lambda: translator.translate([""], src_tok, tgt_tok))
assert refused(lambda: translator.translate(["Tom " * 40], src_tok, tgt_tok))
assert refused(lambda: translator.beam_search(test_ids[:2], beam_width=0))
assert refused(lambda: translator.beam_search(test_ids[:2], beam_width=5000))
assert refused(lambda: translator.greedy(test_ids[:2], max_length=0))
assert refused(lambda: translator.greedy(np.array([[5, 9999]])))
other = EncoderDecoder(src_tok.vocab_size, tgt_tok.vocab_size, cfg.max_len, 32, 4, 1, 1)
assert refused(lambda: load_encoder_decoder(SPA_ENG_CHECKPOINT, model=other))
print("an unseen character becomes <unk>:", [src_tok.tokens[i] for i in src_tok.encode("Tom ☃")])

# %% [markdown]
# An empty sentence, a sentence longer than the model's 32 positions (no silent truncation), a beam width outside
# $[1, V]$, a maximum length $\le 0$, ids outside the vocabulary, and a checkpoint of another configuration are each
# refused with a message that says what was expected. A character never seen in training is not an error: BPE maps
# it to `<unk>`, which the model has never seen either.

# %% [markdown]
# ## 7 · BLEU, by hand and by sacreBLEU
#
# BLEU (Papineni et al., 2002) compares a hypothesis with its references through word n-grams, $n = 1 \dots 4$, after
# one tokenization of both (mteval's 13a, which splits off punctuation). For each $n$, the **clipped** precision
#
# $$
# p_n = \frac{\sum_{g \in \text{n-grams(hyp)}} \min\big(\mathrm{count_{hyp}}(g),\ \max_r \mathrm{count}_r(g)\big)}{\text{number of n-grams of the hyp}}
# $$
#
# counts each n-gram at most as often as the reference that holds it most. Precision alone would reward a very short
# hypothesis, so BLEU multiplies by the **brevity penalty**, with $c$ the hypothesis length and $r$ the reference
# length closest to $c$:
#
# $$
# \mathrm{BP} = \begin{cases} 1 & c \ge r \\ e^{1 - r/c} & c < r \end{cases}, \qquad
# \mathrm{BLEU} = 100 \cdot \mathrm{BP} \cdot \exp\Big(\frac{1}{4} \sum_{n=1}^{4} \log p_n\Big).
# $$
#
# **One sentence by hand.** A hypothesis and two references:

# %%
hyp = "el gato está en la alfombra ."
refs = ["el gato está sobre la alfombra .", "hay un gato en la alfombra ."]
h_tok = tokenize_13a(hyp)
r_toks = [tokenize_13a(r) for r in refs]
p_hand = []
for n in range(1, 5):
    grams = [tuple(h_tok[i : i + n]) for i in range(len(h_tok) - n + 1)]
    counts = {g: grams.count(g) for g in grams}
    clip = {
        g: max(sum(tuple(r[i : i + n]) == g for i in range(len(r) - n + 1)) for r in r_toks)
        for g in counts
    }
    matches = sum(min(c, clip[g]) for g, c in counts.items())
    p_hand.append(matches / len(grams))
    print(f"p_{n} = {matches}/{len(grams)}")
c, r = len(h_tok), min((abs(len(t) - len(h_tok)), len(t)) for t in r_toks)[1]
bp = 1.0 if c >= r else np.exp(1 - r / c)
bleu_hand = 100 * bp * np.exp(np.mean(np.log(p_hand)))
ours_bleu = sentence_bleu(hyp, refs)
theirs = sacrebleu.corpus_bleu([hyp], [[refs[0]], [refs[1]]], smooth_method="none")
print(
    f"c = {c}, r = {r}, BP = {bp:.3f}: BLEU by hand {bleu_hand:.2f}, lessons_lib {ours_bleu.score:.2f}, sacreBLEU {theirs.score:.2f}"
)

assert abs(bleu_hand - theirs.score) < 1e-6 and abs(ours_bleu.score - theirs.score) < 1e-6
assert p_hand == [1.0, 5 / 6, 3 / 5, 1 / 4]

# %% [markdown]
# Every unigram occurs in one reference or the other ("en" in the second, "está" in the first): $p_1 = 1$; the
# longer n-grams break at the words where the two references disagree. For one short sentence a single $p_n = 0$
# makes BLEU 0, which is why BLEU is a **corpus** score: the counts of all sentences are added first, then the
# formula is applied once. The course reports sacreBLEU (Post, 2018) on detokenized text, with its signature, and
# **chrF** (Popović, 2015), the F-score of character n-grams, which gives partial credit for a right stem with a
# wrong ending (*cansado* for *cansada*), frequent in Spanish.
#
# **The test set**, all 4,177 sentences, every reference of each:

# %% tags=["nbval-ignore-output"]
scores = {}
for width in (1, 4):
    t0 = time.perf_counter()
    scores[width] = evaluate_translations(
        model, data.test, src_tok, tgt_tok, beam_width=width, translator=translator
    )
    scores[width]["seconds"] = time.perf_counter() - t0
    print(f"beam {width}: {len(data.test) / scores[width]['seconds']:.0f} sentences/s")

# %%
refs_test = data.test.references
for width in (1, 4):
    print(
        f"{'greedy' if width == 1 else f'beam {width}':7} {corpus_bleu(scores[width]['hypotheses'], refs_test)}"
    )
    print(f"{'':7} {corpus_chrf(scores[width]['hypotheses'], refs_test)}")
single = corpus_bleu(scores[4]["hypotheses"], [r[:1] for r in refs_test]).score
print(f"beam 4 against the first reference only: BLEU {single:.1f}")

assert scores[4]["bleu"] >= 25  # the target for the shipped model
assert scores[4]["bleu"] > scores[1]["bleu"] and scores[4]["chrf"] > 45
multi_share = np.mean([len(r) > 1 for r in refs_test])
print(f"{multi_share:.0%} of the test sentences have more than one reference")
assert single < scores[4]["bleu"]  # more references, more ways to be right
assert 0.14 < multi_share < 0.18  # "about one in six"
if not FULL:  # the checkpoint's own evaluation, in batches of 64 instead of 256: float rounding apart, the same
    assert round(scores[4]["bleu"], 2) == meta["test_bleu_beam4"]
    assert round(scores[1]["bleu"], 2) == meta["test_bleu_beam1"]

# %% [markdown]
# Against the first reference alone the score is lower: where a sentence has several references, a correct
# translation that uses other words than the first one is not penalised. The difference is small here because only
# about one test sentence in six has more than one reference. Quote such scores with the signature and the number of
# references, or they cannot be compared.
#
# ### Greedy or beam: quality against speed
#
# Widths 1, 2, 4 and 8, scored on every fourth test sentence (1,045 of them: the test split is sorted by length, so a
# slice from the start would hold only the shortest). Widths 1 and 4 are the runs above; their speed was measured on
# all 4,177 sentences:

# %% tags=["nbval-ignore-output"]
widths = (1, 2, 4, 8)
sub = data.test.sources[::4]
sub_refs = data.test.references[::4]
by_width = {}
for width in widths:
    if width in scores:
        out, per_s = scores[width]["hypotheses"][::4], len(data.test) / scores[width]["seconds"]
    else:
        t0 = time.perf_counter()
        out = translator.translate(sub, src_tok, tgt_tok, beam_width=width)
        per_s = len(sub) / (time.perf_counter() - t0)
    by_width[width] = {"hyps": out, "per_s": per_s}
    by_width[width]["bleu"] = corpus_bleu(out, sub_refs).score
    by_width[width]["chrf"] = corpus_chrf(out, sub_refs).score
print(f"{'width':>5} {'BLEU':>6} {'chrF':>6} {'sentences/s':>12}")
for width, r_ in by_width.items():
    print(f"{width:5d} {r_['bleu']:6.2f} {r_['chrf']:6.2f} {r_['per_s']:12.0f}")

# %%
fig, ax = plt.subplots(figsize=(6, 3.8))
ax.plot([by_width[w]["per_s"] for w in widths], [by_width[w]["bleu"] for w in widths], "o-")
for w in widths:
    ax.annotate(
        f"width {w}",
        (by_width[w]["per_s"], by_width[w]["bleu"]),
        textcoords="offset points",
        xytext=(6, 4),
    )
ax.set(
    xlabel="sentences per second (2 CPU cores)",
    ylabel="BLEU, 1,000 test sentences",
    title="beam width: quality against speed",
)
plt.tight_layout()
plt.show()

gain = {w: by_width[w]["bleu"] - by_width[1]["bleu"] for w in widths}
print("BLEU gained over greedy:", {w: round(g, 1) for w, g in gain.items()})
assert (
    len(sub) == 1045 and 1 < gain[4] < 5 and gain[2] > gain[8] - gain[2] > -0.5
)  # most of it at width 2
assert by_width[8]["per_s"] < by_width[1]["per_s"]  # and it costs time

# %% [markdown]
# A beam adds one to a few BLEU points over greedy here, and most of the gain comes with the first extra width; a
# wider beam costs time (the table's last column; the step cost grows more slowly than the width, because one batched
# model call serves all the beams). For a small model and short sentences, greedy search already finds the model's
# favourite translation most of the time.
#
# ## 8 · Cross-attention: how the model aligns the two languages
#
# Row $t$ of a cross-attention map holds the weights with which Spanish token $t$ reads the English tokens. We feed
# the model its own translation (teacher forcing on the output) and look at every decoder layer and head.
# `AttentionExplorer.from_model` accepts an `EncoderDecoder` with `which="cross"`: rows are the decoder's input
# tokens (`<bos>` and the translation so far: row $t$ is where the model looked while choosing token $t + 1$), columns
# the English tokens; choose the layer and heads live, or read the static picture.


# %%
def alignment(en, layer=1, **kw):
    """The cross-attention of the model's own greedy translation of `en`."""
    out_ids = translator.greedy(
        encode_sources(src_tok, [en], cfg.max_len)[:, : len(src_tok.encode(en))]
    )[0].tokens
    src_row = np.array([src_tok.encode(en)], dtype=np.int32)
    dec_row = np.array([[2, *out_ids]], dtype=np.int32)
    return AttentionExplorer.from_model(
        model,
        (src_row, dec_row),
        which="cross",
        tokens=["<bos>"] + [tgt_tok.tokens[i] for i in out_ids],
        key_tokens=[src_tok.tokens[i] for i in src_row[0]],
        layer=layer,
        heads="all",
        title=f"cross-attention, layer {layer}: {en!r} → {tgt_tok.decode(list(out_ids))!r}",
        **kw,
    )


view = alignment("Tom is reading a book.")
view.static()

# %% [markdown]
# Live (move between layers and heads; click a Spanish token to see which English tokens it reads):

# %% tags=["nbval-ignore-output"]
view

# %% [markdown]
# **A number instead of a picture.** Names are copied across languages, so they give us alignments for free: in test
# sentences whose English and Spanish (the model's output) both contain "Tom", the row that *writes* "Tom" (the
# decoder input just before it) should read the English "Tom". For each layer and head, the mean share of that row's
# attention that falls on the English "Tom" token, against the share a uniform look would give:

# %%
tom_sentences = [s for s in data.test.sources if s.startswith("Tom ")][:200]
ids_tom = [src_tok.encode(s) for s in tom_sentences]
assert len(src_tok.encode("Tom")) == len(tgt_tok.encode("Tom")) == 1  # one token on both sides
tom_src, tom_tgt = src_tok.encode("Tom")[0], tgt_tok.encode("Tom")[0]
outs = translator.translate(tom_sentences, src_tok, tgt_tok)
keep = [
    (s_ids, tgt_tok.encode(es))
    for s_ids, es in zip(ids_tom, outs)
    if s_ids[0] == tom_src and tom_tgt in tgt_tok.encode(es)
]
src_b = np.zeros((len(keep), max(len(a) for a, _ in keep)), np.int32)
dec_b = np.zeros((len(keep), 1 + max(len(b) for _, b in keep)), np.int32)
for k, (a, b) in enumerate(keep):
    src_b[k, : len(a)], dec_b[k, : len(b) + 1] = a, [2, *b]
_, w = model(src_b, dec_b, return_attention=True)  # one padded batch: the masks keep rows apart
cross_w = np.asarray(w["cross"])  # [B, layers, heads, T_t, T_s]
rows_t = [b.index(tom_tgt) for _, b in keep]  # the decoder input position that predicts "Tom"
shares = [cross_w[k, :, :, r, 0] for k, r in enumerate(rows_t)]  # on the English "Tom" (position 0)
chance = [1 / len(a) for a, _ in keep]
shares = np.mean(shares, axis=0)
show(
    f"attention on the English 'Tom' while writing 'Tom' ({len(chance)} sentences), [layer, head]",
    shares,
)
print(f"chance (uniform over the source tokens): {np.mean(chance):.3f}")
best_lh = np.unravel_index(shares.argmax(), shares.shape)
print(f"most aligned: layer {best_lh[0]}, head {best_lh[1]}: {shares.max():.2f}")

assert len(chance) > 100 and shares.max() > 3 * np.mean(chance) and shares.min() < np.mean(chance)

# %% [markdown]
# Several heads put most of their weight on the word being translated — an alignment learnt from nothing but pairs
# of sentences — while at least one head gives it less than a uniform look would. Cross-attention is not a
# dictionary, though: the decoder also reads its own past through self-attention, and a token like "está" depends
# on the subject *and* the adjective.
#
# **A good and a bad translation.** Compare the alignments of a sentence the model translates well with one it gets
# wrong: the best and the worst sentence-level chrF among 5-word sentences of a spread of 299 test sentences:

# %%
spread = list(range(0, len(data.test), 14))  # 299 sentences of every length
chrf_sent = {
    i: sacrebleu.sentence_chrf(scores[4]["hypotheses"][i], list(refs_test[i])).score for i in spread
}
five = [i for i in spread if len(data.test.sources[i].split()) == 5]
good, worst = max(five, key=chrf_sent.get), min(five, key=chrf_sent.get)
for label, i in (("good", good), ("bad", worst)):
    print(
        f"{label}: {data.test.sources[i]!r} → {scores[4]['hypotheses'][i]!r} (chrF {chrf_sent[i]:.0f}); "
        f"reference {refs_test[i][0]!r}"
    )
assert chrf_sent[good] > 80 > 30 > chrf_sent[worst]
assert [src_tok.tokens[i] for i in src_tok.encode(" signaled")] == [" sign", "al", "ed"]
assert (
    data.test.sources[worst] == "He signaled them to stop."
    and "firm" in scores[4]["hypotheses"][worst]
)
alignment(data.test.sources[good]).static()

# %%
alignment(data.test.sources[worst]).static()

# %% [markdown]
# In the bad case BPE has cut the rare verb "signaled" into pieces (` sign`, `al`, `ed`). The decoder translates the
# piece it knows — *sign* → *firmó*, "signed" — and the rows that write it spread their weight over the pieces and the
# final period instead of settling on one English token: no alignment, no translation.
#
# ## 9 · Sentences longer than anything seen in training
#
# The model was trained on English sentences of at most 5 words. What does it do with 6, 8 or 12? The full data set's
# test split holds them (the split is the same, so none of these sentences was in training). Greedy BLEU by English
# length, 150 sentences per length:

# %% tags=["nbval-ignore-output"]
full = load_spa_eng(progress=False)
by_len = {}
for n in (2, 3, 4, 5, 6, 7, 8, 10, 12):
    idx = [
        i
        for i, s in enumerate(full.test.sources)
        if len(s.split()) == n and len(src_tok.encode(s)) <= cfg.max_len
    ][:150]
    srcs, rfs = [full.test.sources[i] for i in idx], [full.test.references[i] for i in idx]
    hyps = translator.translate(srcs, src_tok, tgt_tok)
    by_len[n] = {
        "bleu": corpus_bleu(hyps, rfs).score,
        "ratio": sum(len(tokenize_13a(h)) for h in hyps)
        / sum(len(tokenize_13a(r[0])) for r in rfs),
        "n": len(idx),
        "tokens": float(np.mean([len(src_tok.encode(x)) for x in srcs])),
        "example": (srcs[0], hyps[0]),
    }
for n, r_ in by_len.items():
    print(
        f"{n:2d} words ({r_['tokens']:4.1f} tokens): BLEU {r_['bleu']:5.1f}, output/reference length {r_['ratio']:.2f}  e.g. {r_['example'][0]!r} → {r_['example'][1]!r}"
    )

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.6))
ns = list(by_len)
ax.plot(ns, [by_len[n]["bleu"] for n in ns], "o-")
ax.axvspan(0.5, 5.5, color="tab:green", alpha=0.08, label="lengths seen in training")
ax.set(
    xlabel="English words",
    ylabel="BLEU (greedy, 150 sentences)",
    title="translation quality by sentence length",
    xlim=(1.5, 12.5),
)
ax.legend()
plt.tight_layout()
plt.show()

assert all(by_len[n]["n"] == 150 for n in by_len)
assert by_len[12]["bleu"] < 0.5 * max(by_len[n]["bleu"] for n in (3, 4, 5))
assert by_len[12]["ratio"] < 0.9  # the translations of long sentences are too short
assert by_len[12]["tokens"] < len_src.max()  # within the source positions seen in training

# %% [markdown]
# Within the training lengths the score holds; past them it falls quickly, and the translations come out **too
# short**: the model learnt to write `<eos>` after about as many tokens as its training targets had, and it drops the
# rest of the sentence. The positions are not the problem: a 12-word sentence has fewer source tokens than the
# longest training sentence, so every position it uses was trained. What the model never saw is a sentence this long
# — two clauses, a subordinate "so I can". More data of every length is the remedy; a bigger beam is not.
#
# ## 10 · Exercises
#
# ### Exercise 1 — the label shift
#
# Write `my_shift(target_ids, pad_id)` for a batch of target rows `<bos> y … <eos> <pad> …` ($[B, T+1]$ integers):
# return `(decoder_input, labels, weights)` as §4 defines them (weights 1.0 on real labels, 0.0 on padding, float).
# Without the library's `shift_targets`.


# %%
def my_shift(target_ids, pad_id):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
shift_cases = [
    (encode_targets(tgt_tok, pair_tgt, 10), 0),
    (encode_targets(tgt_tok, ["Hola."], 6), 0),
    (np.array([[2, 7, 8, 3], [2, 9, 3, 5]]), 5),
]
check(
    my_shift,
    shift_targets,
    inputs=shift_cases,
    name="my_shift",
    hint=(
        "The decoder reads every token but the last column; it is scored against every token but <bos>. A label that is padding weighs 0.",
        "target_ids[:, :-1], target_ids[:, 1:], and (labels != pad_id).astype('float32')",
    ),
    forbid=("shift_targets",),
)


# %% tags=["solution"]
def my_shift(target_ids, pad_id):
    t = np.asarray(target_ids)
    labels = t[:, 1:]
    return t[:, :-1], labels, (labels != pad_id).astype(np.float32)


assert check(my_shift, shift_targets, inputs=shift_cases, forbid=("shift_targets",))

# %% [markdown]
# ### Exercise 2 — BLEU of one sentence
#
# Write `my_bleu(hypothesis, references)`: BLEU (no smoothing) of one hypothesis against a list of references, as
# §7 defines it, on the 13a tokens (`tokenize_13a` is allowed). Return 0.0 when some $p_n$ is 0. Without
# `sentence_bleu`, `bleu_statistics` or sacreBLEU.


# %%
def my_bleu(hypothesis, references):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
bleu_cases = [
    (hyp, refs),
    ("the the the the", ["the cat is on the mat", "there is a cat on the mat"]),
    ("Tom está cansado.", ["Tom está cansado.", "Tom está muy cansado."]),
    ("Tom está muy muy cansado.", ["Tom está cansado."]),
    (scores[4]["hypotheses"][0], list(refs_test[0])),
]


def reference_bleu(hypothesis, references):
    return sentence_bleu(hypothesis, references).score


check(
    my_bleu,
    reference_bleu,
    inputs=bleu_cases,
    name="my_bleu",
    atol=1e-6,
    hint=(
        "For each n, count the hypothesis's n-grams, clip each count at its largest count in any one reference, and divide by the number of hypothesis n-grams; the reference length r is the one closest to c (the shorter on a tie).",
        "from collections import Counter; clip = max(Counter(ngrams(ref, n))[g] for ref in refs); BP = exp(1 - r / c) when c < r",
    ),
    forbid=("sentence_bleu", "bleu_statistics", "bleu_score", "sacrebleu", "reference_bleu"),
)


# %% tags=["solution"]
def my_bleu(hypothesis, references):
    from collections import Counter

    h = tokenize_13a(hypothesis)
    rs = [tokenize_13a(r) for r in references]
    logs = []
    for n in range(1, 5):
        grams = Counter(tuple(h[i : i + n]) for i in range(len(h) - n + 1))
        ref_grams = [Counter(tuple(r[i : i + n]) for i in range(len(r) - n + 1)) for r in rs]
        matches = sum(min(c_, max(rg[g] for rg in ref_grams)) for g, c_ in grams.items())
        total = sum(grams.values())
        if matches == 0 or total == 0:
            return 0.0
        logs.append(np.log(matches / total))
    c_, r_ = len(h), min((abs(len(r) - len(h)), len(r)) for r in rs)[1]
    bp = 1.0 if c_ >= r_ else np.exp(1 - r_ / c_)
    return float(100 * bp * np.exp(np.mean(logs)))


assert check(
    my_bleu,
    reference_bleu,
    inputs=bleu_cases,
    atol=1e-6,
    forbid=("sentence_bleu", "bleu_statistics", "bleu_score", "sacrebleu", "reference_bleu"),
)
with contextlib.redirect_stdout(io.StringIO()):  # the check refuses the library's own BLEU
    assert (
        check(
            lambda h, r: sentence_bleu(h, r).score,
            reference_bleu,
            inputs=bleu_cases,
            forbid=("sentence_bleu",),
        )
        is False
    )

# %% [markdown]
# ### Exercise 3 — the length penalty
#
# Two finished hypotheses of one sentence: $A$ with 4 tokens and $\log P = -2.0$, $B$ with 9 tokens and $\log P =
# -2.7$. Write `prefers_longer(alpha)`, True when beam search with length penalty $\alpha$ ranks $B$ above $A$ — and
# find the smallest $\alpha$ (to 2 decimals, in steps of 0.01) from which it does: `alpha_switch`.


# %%
def prefers_longer(alpha):
    # YOUR CODE HERE
    raise NotImplementedError


alpha_switch = None  # YOUR ANSWER


# %%
def reference_prefers(alpha):
    return -2.7 / length_penalty(9, alpha) > -2.0 / length_penalty(4, alpha)


alpha_true = next(a / 100 for a in range(0, 300) if reference_prefers(a / 100))
check(
    prefers_longer,
    reference_prefers,
    inputs=[0.0, 0.3, 0.6, 1.0, 2.0],
    name="prefers_longer",
    hint=(
        "Compare log P / lp for both, with lp(Y) = ((5 + |Y|) / 6)^α.",
        "-2.7 / ((5 + 9) / 6) ** alpha > -2.0 / ((5 + 4) / 6) ** alpha",
    ),
)
_ = check(
    alpha_switch,
    alpha_true,
    name="alpha_switch",
    hint="Try alpha in steps of 0.01 with your prefers_longer.",
)


# %% tags=["solution"]
def prefers_longer(alpha):
    return -2.7 / ((5 + 9) / 6) ** alpha > -2.0 / ((5 + 4) / 6) ** alpha


alpha_switch = next(a / 100 for a in range(300) if prefers_longer(a / 100))
assert check(prefers_longer, reference_prefers, inputs=[0.0, 0.3, 0.6, 1.0, 2.0])
assert check(alpha_switch, alpha_true) and 0.6 < alpha_switch < 0.8
print(
    f"from α = {alpha_switch} on, the longer hypothesis wins; with α = 0.6 the shorter still does"
)

# %% [markdown]
# ## Summary
#
# * **Data.** Split a parallel corpus by source sentence (a pair split would leak about a quarter of the test
#   pairs), and score against every reference of each. Tokenizers learn from the training split only.
# * **Model.** Encoder (bidirectional) + decoder (causal self-attention, then **cross-attention** with queries from
#   the target and keys and values from the source, then the FFN); 493,824 parameters here, more than half of them
#   the two embedding tables; checked against a NumPy forward pass.
# * **Masks.** Source padding (encoder and cross-attention), causal ∧ target padding (decoder). Without the source
#   mask a translation depends on its batch; without the causal mask the model reads the token it must predict.
# * **Training.** Teacher forcing with the label shift: input = target without its last token, labels = target
#   without `<bos>`, padding weighs 0 and the loss is the mean over real tokens. Length buckets cut the padding from
#   about three quarters of every batch to a few per cent.
# * **Decoding.** Greedy is beam search of width 1; beam search with GNMT's length penalty adds about a BLEU point
#   here; a KV cache that computes the source's cross-attention keys and values once gives the same logits at a
#   fraction of the cost.
# * **Scores.** Multi-reference sacreBLEU above 25 with a beam of 4 on held-out sentences of at most 5 words, after
#   a few minutes of training on 2 cores; chrF too. Past the training lengths the translations break: too short.
#
# *References.* Vaswani et al. (2017), *Attention Is All You Need* (the encoder–decoder, label smoothing and beam
# search settings). Wu et al. (2016), *Google's Neural Machine Translation System* (the length penalty, eq. 14).
# Papineni et al. (2002), *BLEU: a Method for Automatic Evaluation of Machine Translation*. Post (2018), *A Call for
# Clarity in Reporting BLEU Scores* (sacreBLEU). Popović (2015), *chrF: character n-gram F-score for automatic MT
# evaluation*. Sennrich, Haddow & Birch (2016), *Neural Machine Translation of Rare Words with Subword Units* (BPE for
# translation). Tiedemann (2012), *Parallel Data, Tools and Interfaces in OPUS*, and tatoeba.org (the sentences).
