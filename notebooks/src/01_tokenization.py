# %% [markdown]
# # Lesson 1 — Preprocessing and tokenization
#
# A language model never sees text. It sees a sequence of integers, one per **token**, and learns to predict the
# next integer. The **tokenizer** is the fixed, non-learned map between the two:
#
# $$\text{encode}: \text{str} \to [t_1, \dots, t_n],\ t_i \in \{0, \dots, V-1\}, \qquad
#   \text{decode}(\text{encode}(s)) = s .$$
#
# Its choices decide the vocabulary size $V$ (the rows of the embedding table, the width of the output softmax)
# and the sequence length $n$ (the cost of attention grows like $n^2$). This lesson builds two tokenizers for
# the course's corpus, Tiny Shakespeare.
#
# **Goals.** After this lesson you can
#
# 1. decide what to clean in a corpus and, just as important, what to leave alone;
# 2. compare characters, words and subwords by vocabulary size, sequence length and unknown tokens, measured;
# 3. train a byte-pair-encoding (BPE) tokenizer step by step and read its merges;
# 4. turn ids into text and back, use special tokens, and pad and truncate a batch with an attention mask.
#
# Everything built here lives in `lessons_lib.tokenizers` (`CharTokenizer`, `BPETokenizer`, `pad_and_truncate`),
# which later lessons import.

# %% tags=["nbval-ignore-output"]
import lessons_lib

info = lessons_lib.setup(seed=0)

# %%
import unicodedata
from collections import Counter

import matplotlib.pyplot as plt
import numpy as np

# the building blocks of BPE, not exported from lessons_lib itself
from lessons_lib import (
    BPETokenizer,
    CharTokenizer,
    check,
    count_pairs,
    load_tiny_shakespeare,
    merge_pair,
    pad_and_truncate,
    pretokenize,
    show_source,
    train_val_split,
)


def visible(token: str) -> str:
    """Show spaces and newlines inside a token: ' the' -> '␣the', '\\n' -> '↵'."""
    return token.replace(" ", "␣").replace("\n", "↵")


# %% tags=["parameters"]
BPE_TRAIN_CHARS = (
    200_000  # train BPE on the first 200k characters of the training split (a few seconds)
)
VOCAB_SIZE = 512  # the BPE vocabulary: special tokens + characters + merges

# %% [markdown]
# ## 1. The corpus
#
# Tiny Shakespeare is about 1.1 million characters of plays. We split it the way every later lesson does: the
# first 90 % for training, the last 10 % for validation (no shuffling, so validation is text the tokenizer and
# the model have never seen).

# %%
text = load_tiny_shakespeare()
train_text, val_text = train_val_split(text, 0.9)
print(
    f"{len(text):,} characters: {len(train_text):,} for training, {len(val_text):,} for validation"
)
print(train_text[:250])
assert len(text) == 1_115_394 and len(train_text) == 1_003_854

# %% [markdown]
# ## 2. Cleaning: what to fix, and what to leave alone
#
# Cleaning means making **equal things look equal** before tokenizing. Three usual suspects:
#
# * **Unicode normalization.** "é" can be stored as one code point (U+00E9) or as "e" followed by a combining
#   accent (U+0301). Both render identically but are different strings, so they would get different tokens.
#   The NFC normal form picks the composed spelling for both.
# * **Line endings and odd spaces.** Windows writes `\r\n`, old Macs `\r`; web text is full of non-breaking
#   spaces (U+00A0). Map them to `\n` and ordinary spaces.
# * **Compatibility characters** (ligatures like "ﬁ", full-width letters, superscripts). NFKC folds them, but
#   it is lossy: "x²" becomes "x2". Use it knowingly, not by default.

# %%
composed, decomposed = "caf\u00e9", "cafe\u0301"
print(
    composed,
    decomposed,
    "| equal:",
    composed == decomposed,
    "| lengths:",
    len(composed),
    len(decomposed),
)
print("after NFC, equal:", unicodedata.normalize("NFC", decomposed) == composed)
for s in ["ﬁne", "x²", "Ｓｈａｋｅｓｐｅａｒｅ"]:
    print(f"NFKC({s!r}) = {unicodedata.normalize('NFKC', s)!r}")
assert unicodedata.normalize("NFC", decomposed) == composed


# %%
def clean(text: str) -> str:
    """The cleaning this course applies: NFC, Unix line endings, ordinary spaces. Nothing else."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\u00a0", " ")


print(repr(clean("To be,\u00a0or not to be:\r\nthat is the question.")))
print("Tiny Shakespeare is pure ASCII:", text.isascii(), "| already clean:", clean(text) == text)
assert clean(text) == text

# %% [markdown]
# Tiny Shakespeare needs no cleaning at all. Just as important is what we do **not** clean for a language model,
# because the model has to *produce* text like its training text:
#
# * **Case.** Lower-casing would merge "Will" (a name) with "will", and "I" with "i"; the model could never learn to
#   start a sentence with a capital letter or write a speaker's name in its own style.
# * **Punctuation.** "?" makes a question, "," and ";" set the rhythm of a verse line. Strip them and the model
#   cannot write them.
# * **Newlines.** Here they mark verse lines and speaker turns (`"First Citizen:\n"`). They are information.
#
# (Classic text classification often lower-cases and strips punctuation because the label does not depend on them;
# a generative model is judged on every character.) How much would lower-casing and stripping punctuation erase?

# %%
n_upper = sum(c.isupper() for c in train_text)
n_punct = sum(not c.isalnum() and not c.isspace() for c in train_text)
print(
    f"capital letters: {n_upper:,} ({n_upper / len(train_text):.1%}), "
    f"punctuation: {n_punct:,} ({n_punct / len(train_text):.1%}) of the training characters"
)
assert n_upper + n_punct > 0.08 * len(train_text)

# %% [markdown]
# ## 3. Characters, words or subwords?
#
# **Characters.** The vocabulary is the set of distinct characters: tiny, and no text made of these characters is
# ever unknown. Every character is one token, so sequences are long. Without special tokens, `CharTokenizer` gives
# ids in sorted order (`"\n"` is 0, `" "` is 1); the training lessons rely on exactly this 65-character vocabulary.

# %%
char_tok = CharTokenizer.from_text(train_text)
print(char_tok, "->", "".join(char_tok.tokens).replace("\n", "↵"))
ids = char_tok.encode("Hello, world!")
print(ids, "->", repr(char_tok.decode(ids)))
assert char_tok.vocab_size == 65 and char_tok.tokens == tuple(sorted(set(train_text)))
assert char_tok.decode(char_tok.encode(val_text)) == val_text

# %% [markdown]
# **Words.** Split the text into words and give each distinct word an id. Sequences get much shorter, but the
# vocabulary explodes, and a word that did not occur in training has no id at all: it becomes `<unk>`, and
# whatever the model would have learned about it is lost. We split with the same GPT-2-style pattern the BPE
# tokenizer uses (`pretokenize`): a word keeps its leading space, punctuation and newlines are pieces of their own.

# %%
print([visible(w) for w in pretokenize("Before we proceed any further, hear me speak.\n")])
train_words = pretokenize(train_text)
val_words = pretokenize(val_text)
word_vocab = Counter(train_words)
unknown = sum(w not in word_vocab for w in val_words)
print(
    f"{len(word_vocab):,} distinct words in the training text; "
    f"{unknown / len(val_words):.1%} of the validation words never occur in it ({unknown:,} <unk> tokens)"
)
print("most frequent:", [visible(w) for w, _ in word_vocab.most_common(12)])
assert "".join(train_words) == train_text  # the split loses nothing

# %% [markdown]
# **Subwords** sit in between: frequent words become single tokens, rare words are spelled with a few pieces, and
# with the characters still in the vocabulary nothing is ever unknown. Byte-pair encoding learns such pieces from
# the data; the next section trains one and puts the three side by side.

# %% [markdown]
# ## 4. Byte-pair encoding, step by step
#
# BPE (Sennrich, Haddow & Birch, 2016, *Neural Machine Translation of Rare Words with Subword Units*, ACL)
# starts with one symbol per character and repeats one step. Summarise the corpus as word frequencies $f(w)$,
# each word written as a sequence of symbols $w = (w_1, \dots, w_n)$, and count every adjacent pair:
#
# $$\text{count}(a, b) = \sum_{w} f(w)\ \big|\{\, i : w_i = a,\ w_{i+1} = b \,\}\big| .$$
#
# Take the most frequent pair $(a, b)^* = \arg\max \text{count}(a, b)$, add the new symbol $ab$ to the vocabulary,
# and replace every occurrence of $a\,b$ by $ab$, scanning each word left to right. Repeat until the vocabulary
# has the size you want. The list of merges, **in order**, is the tokenizer. Two details matter:
#
# * **Ties** are broken by taking the smallest pair (compare $a$ first, then $b$), so training gives the same
#   merges on every run and machine.
# * **Words are merged separately** (pairs never cross a word boundary), so a token is never half of one word
#   and half of the next. That is why we pre-split into words and count over the word-frequency table, which is
#   also what makes training fast: after a merge only the words that contain the pair are recounted.
#
# ### A worked example by hand
#
# The classic string `aaabdaaabac` (one "word"). `count_pairs` and `merge_pair` are the two building blocks; we
# apply them ourselves and print each step.

# %%
words = {tuple("aaabdaaabac"): 1}
hand_merges = []
for step in range(1, 4):
    counts = count_pairs(words)
    top = max(counts.values())
    best = min(pair for pair, c in counts.items() if c == top)  # most frequent, then smallest
    print(f"step {step}: counts {dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))}")
    words = {tuple(merge_pair(list(w), best)): f for w, f in words.items()}
    hand_merges.append(best)
    print(f"        merge {best} -> {' '.join(next(iter(words)))}")

# %% [markdown]
# Step 1 counts `aa` four times (the two runs `aaa` each contain two overlapping `aa` pairs), but merging left to
# right turns `aaa` into `aa a`. In step 2, `(a, b)` and `(aa, a)` tie with 2; `"a" < "aa"`, so `(a, b)` wins.
# After step 3 every remaining pair occurs once. `BPETokenizer.train` stops there by default (`min_frequency=2`:
# a pair seen once is not a pattern worth a token). It agrees with our hand computation:

# %%
tiny = BPETokenizer.train("aaabdaaabac", vocab_size=100)
print("merges:", tiny.merges, "counts:", tiny.merge_counts)
print("tokens:", tiny.tokenize("aaabdaaabac"))
assert tiny.merges == hand_merges == [("a", "a"), ("a", "b"), ("aa", "ab")]

# %% [markdown]
# ### The code
#
# Here is `BPETokenizer.train` (docstring left out). It does what we just did by hand, with one economy.
# Step 1 summarises the text as word frequencies $f(w)$. Step 2 is `count_pairs` over all words, plus an index
# `where` of the words that contain each pair. Step 3 is the loop of section 4: `top` and `best` are the
# $\arg\max$ with the tie rule (smallest pair among the most frequent), and `merge_pair` rewrites only the words
# listed in `where[best]`, after their old pairs have been subtracted from the counts and before their new pairs are
# added back.

# %%
show_source(BPETokenizer.train, docstring=False)

# %% [markdown]
# ### Training on Tiny Shakespeare
#
# We train on the first `BPE_TRAIN_CHARS` characters of the training split (a few seconds in pure Python).
# Two choices to note:
#
# * The **base alphabet is the characters** of the text, which keeps every token readable. GPT-2 starts from the
#   256 possible byte values instead, so it can encode any string at all, but then "é" shows up as two odd
#   symbols. A slice of the corpus may lack rare characters (the first 200k characters contain no `$`, `3` or
#   `X`), so we pass the whole training split as `initial_alphabet`: all 65 characters get an id.
# * Two **special tokens** are reserved up front, `<pad>` (id 0) and `<|endoftext|>` (id 1); section 6 uses them.

# %%
bpe = BPETokenizer.train(
    train_text[:BPE_TRAIN_CHARS],
    vocab_size=VOCAB_SIZE,
    special_tokens=("<pad>", "<|endoftext|>"),
    initial_alphabet=train_text,
)
print(bpe)
print(
    f"{len(bpe.special_tokens)} special tokens + {len(bpe.alphabet)} characters + {len(bpe.merges)} merges "
    f"= {bpe.vocab_size} tokens"
)
print(
    "characters of the training split missing from the slice BPE trains on:",
    sorted(set(train_text) - set(train_text[:BPE_TRAIN_CHARS])),
)
assert bpe.vocab_size == VOCAB_SIZE and len(bpe.alphabet) == 65
assert set(train_text) - set(train_text[:BPE_TRAIN_CHARS]) == set("$3X")

# %% [markdown]
# The first merges are the most frequent pairs of the corpus: a space followed by `t` (the start of " the",
# " to", " thou"...), `he`, `ou`. By merge 9 the two halves of " the" have met.

# %%
print(f"{'#':>3}  {'pair':<18} {'new token':<10} {'count':>6}")
for k, ((a, b), c) in enumerate(zip(bpe.merges[:10], bpe.merge_counts[:10]), start=1):
    print(f"{k:>3}  {visible(a) + ' + ' + visible(b):<18} {visible(a + b):<10} {c:>6}")
assert bpe.merges[:3] == [(" ", "t"), ("h", "e"), ("o", "u")]
assert bpe.merges[8] == (" t", "he")

# %% [markdown]
# **The counts never increase** from one merge to the next. Merging $(a, b)$ removes occurrences of pairs and
# creates new pairs, but every new pair contains the new symbol $ab$. A new pair $(ab, y)$ stands exactly where
# $a\,b\,y$ stood before the merge, so it is at most as frequent as $(b, y)$ was; and $(b, y)$ was at most as
# frequent as $(a, b)$, the most frequent pair. Likewise $(x, ab)$ through $(x, a)$, and a pair without $ab$ can
# only lose occurrences. So after merging a pair seen $n$ times, no pair is seen more than $n$ times:
#
# $$\text{count}_{k+1} \le \text{count}_k .$$
#
# Even $(\text{" t"}, \text{he})$, a pair born from two merges, is less frequent than both of them (1783 against
# 4336 and 3484 in the table). **Ties** are common: about half of the time the next merge has the same count as the
# last one, and the tie rule decides which goes first. On our run, whose last merges are pairs seen only a few dozen
# times:

# %%
counts = np.array(bpe.merge_counts)
ties = int(np.sum(np.diff(counts) == 0))  # merges whose count equals the previous merge's
print("count of merges 1, 10, 100, last:", counts[0], counts[9], counts[99], counts[-1])
print("largest increase from one merge to the next:", int(np.diff(counts).max()))
print(f"ties: {ties} of the {len(counts) - 1} steps repeat the previous count")
assert np.all(np.diff(counts) <= 0)  # never increasing
assert counts[8] < min(counts[0], counts[1])  # (" t", "he") after (" ", "t") and ("h", "e")
assert counts[[0, 1, 8]].tolist() == [4336, 3484, 1783]
assert ties == 221 and round(ties / (len(counts) - 1), 1) == 0.5
assert 2 <= counts[-1] < 100  # a few dozen; min_frequency = 2 is the floor

# %% [markdown]
# **Vocabulary growth.** Each merge adds one token. Watch one sentence get shorter as merges accumulate
# (`with_merges(n)` keeps only the first `n` merges), and look at the longest tokens learned: whole frequent words,
# with their leading space.

# %%
sentence = "First Citizen:\nBefore we proceed any further, hear me speak."
for n in [0, 10, 50, 200, len(bpe.merges)]:
    toks = bpe.with_merges(n).tokenize(sentence)
    print(
        f"{n:>3} merges, vocab {bpe.with_merges(n).vocab_size:>3}: {len(toks):>2} tokens  "
        + " ".join(visible(t) for t in toks)
    )
longest = sorted(bpe.tokens[len(bpe.special_tokens) :], key=lambda t: (-len(t), t))[:10]
print("longest tokens:", [visible(t) for t in longest])

# %% [markdown]
# **Compression.** The number of characters per token measures how much text one position of the model sees.
# We measure it on the validation text, which BPE did not train on, after every 25 merges.

# %%
steps = list(range(0, len(bpe.merges) + 1, 25))
if steps[-1] != len(bpe.merges):
    steps.append(len(bpe.merges))
chars_per_token = [len(val_text) / len(bpe.with_merges(n).encode(val_text)) for n in steps]
word_chars_per_token = len(val_text) / len(val_words)
print("merges:         ", steps[::4])
print("chars per token:", np.round(chars_per_token[::4], 3))

fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(steps, chars_per_token, marker="o", markersize=3, label="BPE on validation text")
ax.axhline(
    word_chars_per_token, color="gray", linestyle="--", label="one token per word (needs <unk>)"
)
ax.axhline(1.0, color="gray", linestyle=":", label="one token per character")
ax.set_xlabel("number of merges")
ax.set_ylabel("characters per token")
ax.set_title("BPE compression on Tiny Shakespeare")
ax.legend()
plt.show()
# more merges never lengthen the text
assert all(b >= a for a, b in zip(chars_per_token, chars_per_token[1:]))

# %% [markdown]
# The first merges buy the most (frequent pairs); then each merge saves less. This is the trade-off to pick the
# vocabulary size with. The three tokenizers side by side, on the validation text:

# %%
bpe_val_ids = bpe.encode(val_text)
rows = [
    ("characters", char_tok.vocab_size, len(val_text), 0),
    (f"BPE, {len(bpe.merges)} merges", bpe.vocab_size, len(bpe_val_ids), 0),
    ("words", len(word_vocab) + 1, len(val_words), unknown),  # +1 for <unk>
]
print(f"{'tokenizer':<18} {'vocab size':>10} {'tokens':>8} {'chars/token':>11} {'unknown':>8}")
for name, v, n, unk in rows:
    print(f"{name:<18} {v:>10,} {n:>8,} {len(val_text) / n:>11.2f} {unk / n:>8.1%}")
length_ratio = len(bpe_val_ids) / len(val_text)  # BPE tokens per character token
vocab_ratio = (len(word_vocab) + 1) / bpe.vocab_size
print(
    f"BPE / characters: {length_ratio:.2f} of the length, {length_ratio**2:.2f} of the attention cost; "
    f"word vocabulary / BPE vocabulary: {vocab_ratio:.1f}"
)
assert round(length_ratio, 1) == 0.5 and round(length_ratio**2, 2) == 0.25
assert round(vocab_ratio) == 28
# the summary's figures: 445 merges, about 2 characters per token
assert len(bpe.merges) == 445 and round(len(val_text) / len(bpe_val_ids)) == 2
assert round(unknown / len(val_words), 3) == 0.046

# %% [markdown]
# BPE with 512 tokens halves the sequence length of the character tokenizer (attention, which costs
# $\propto n^2$, then costs a quarter), with a vocabulary about 28 times smaller than the word-level one
# and no unknown tokens. Real LLMs use 32k to 200k tokens trained on far more text, reaching about 4 characters
# per token on English.
#
# ## 5. Ids ↔ text
#
# `encode` cuts the text into words, applies the merges to each word **in the order they were learned**, and looks
# up the ids; `decode` concatenates the token strings. The round trip is exact for any text made of known characters.

# %%
ids = bpe.encode("To be, or not to be")
print(ids)
print([visible(bpe.tokens[i]) for i in ids])
print(repr(bpe.decode(ids)))
assert bpe.decode(bpe_val_ids) == val_text and bpe.decode(bpe.encode(train_text)) == train_text

# %% [markdown]
# A character the tokenizer has never seen has no id. Rather than silently dropping it, `encode` refuses and names
# the character and its position:

# %% tags=["raises-exception"]
bpe.encode("Café au lait")

# %% [markdown]
# Either clean the text first, or build the tokenizer with an `<unk>` token that stands for every unknown
# character (information is lost: decoding gives `<unk>` back, not "é"). Invalid ids are refused too.

# %%
with_unk = BPETokenizer.train(
    train_text[:50_000], vocab_size=200, special_tokens=("<unk>",), unk_token="<unk>"
)
print(with_unk.decode(with_unk.encode("Café au lait")))
try:
    bpe.decode([5, 9999])
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# ## 6. Special tokens
#
# Some ids do not stand for text but for structure: `<|endoftext|>` separates documents so the model learns where
# one ends, `<pad>` fills the unused positions of a batch (next section). A special token must be **one id, never
# split and never merged**, even though it is written with ordinary characters. The tokenizer therefore cuts the
# text at special tokens before anything else, both when training and when encoding.

# %%
two_docs = "Speak, speak.<|endoftext|>Resolved. resolved."
ids = bpe.encode(two_docs)
eot = bpe.token_to_id("<|endoftext|>")
print(ids)
print([visible(bpe.tokens[i]) for i in ids])
print(repr(bpe.decode(ids, skip_special_tokens=True)))
assert ids.count(eot) == 1 and bpe.decode(ids) == two_docs
# no learned token contains one
assert not any("<|" in t for t in bpe.tokens[len(bpe.special_tokens) :])

# %% [markdown]
# Special tokens take the **first** ids. That shifts every character id by the number of special tokens, which is
# why the character tokenizer has none unless you ask: the training lessons use the plain 65-character vocabulary.

# %%
char_with_eot = CharTokenizer.from_text(train_text, special_tokens=("<|endoftext|>",))
print(
    "plain:",
    char_tok.encode("ab"),
    "| with a special token:",
    char_with_eot.encode("ab"),
    "| the special token itself:",
    char_with_eot.encode("<|endoftext|>"),
)
assert char_with_eot.vocab_size == 66

# %% [markdown]
# ## 7. Padding, truncation and the attention mask
#
# A batch is a rectangular array, but texts have different lengths. `pad_and_truncate` cuts sequences longer than
# `max_len` and fills shorter ones with the pad id. It also returns the **attention mask**: `True` at real tokens,
# `False` at padding (the course-wide convention: `True` means "may attend"). Later lessons use it so that no
# token attends to padding and padding positions are left out of the loss.

# %%
lines = ["All:", "Speak, speak.", "First, you know Caius Marcius is chief enemy to the people."]
batch = [bpe.encode(s) for s in lines]
pad_id = bpe.token_to_id("<pad>")
print("lengths:", [len(b) for b in batch])
ids, mask = pad_and_truncate(batch, max_len=8, pad_id=pad_id)
print(ids)
print(mask.astype(int))
for row in ids:
    print(repr(bpe.decode(row, skip_special_tokens=True)))
assert ids.shape == mask.shape == (3, 8) and mask.sum(axis=1).tolist() == [
    min(len(b), 8) for b in batch
]

# %% [markdown]
# `padding_side="left"` puts the padding first, so that the last position of every row holds a real token (handy
# when generating: the model continues every row from its last column). `truncation_side="left"` keeps the end of a
# long text instead of its beginning.

# %%
ids_left, mask_left = pad_and_truncate(
    batch, max_len=8, pad_id=pad_id, padding_side="left", truncation_side="left"
)
print(ids_left)
print(mask_left.astype(int))
assert mask_left[:, -1].all()

# %% [markdown]
# ## 8. Exercises
#
# ### Exercise 1 — count the pairs
#
# Write `my_count_pairs(word_freqs)`: given a dict mapping words (tuples of symbols) to frequencies, return a dict
# mapping each adjacent pair `(a, b)` to $\text{count}(a, b)$ from section 4. Example:
# `{("l", "o", "w"): 5, ("l", "o", "w", "e", "r"): 2}` gives
# `{("l", "o"): 7, ("o", "w"): 7, ("w", "e"): 2, ("e", "r"): 2}`.


# %%
def my_count_pairs(word_freqs):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
pair_cases = [
    {
        tuple("low"): 5,
        tuple("lower"): 2,
        tuple("newest"): 6,
        tuple("widest"): 3,
    },  # Sennrich et al.'s example
    {tuple("aaabdaaabac"): 1},
    {("x",): 4, (" t", "he"): 3},
    Counter(tuple(w) for w in pretokenize(train_text[:2_000])),
]
check(
    my_count_pairs,
    count_pairs,
    inputs=pair_cases,
    name="my_count_pairs",
    hint=(
        "every adjacent pair inside a word counts once per occurrence of that word: add the word's "
        "frequency, not 1",
        "for word, freq in word_freqs.items(): loop over zip(word, word[1:]) and do "
        "counts[pair] = counts.get(pair, 0) + freq",
    ),
)


# %% tags=["solution"]
def my_count_pairs(word_freqs):
    counts = {}
    for word, freq in word_freqs.items():
        for pair in zip(word, word[1:]):
            counts[pair] = counts.get(pair, 0) + freq
    return counts


assert check(my_count_pairs, count_pairs, inputs=pair_cases, name="my_count_pairs")

# %% [markdown]
# ### Exercise 2 — apply one merge
#
# Write `my_merge_pair(symbols, pair)`: return a new list in which every occurrence of `pair` is replaced by the
# joined symbol, scanning left to right, occurrences not overlapping: `(["a", "a", "a"], ("a", "a"))` gives
# `["aa", "a"]`.


# %%
def my_merge_pair(symbols, pair):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
merge_cases = [
    (list("aaabdaaabac"), ("a", "a")),
    (["a", "a", "a", "a"], ("a", "a")),
    ([" t", "h", "e", " t", "he"], (" t", "he")),
    (["a", "b"], ("b", "a")),
    (["x"], ("x", "x")),
    ([], ("a", "b")),
]
check(
    my_merge_pair,
    merge_pair,
    inputs=merge_cases,
    name="my_merge_pair",
    hint=(
        "scan left to right; where the pair starts, emit the joined symbol and continue after both of its "
        "symbols, so that two occurrences never share a symbol",
        "walk with an index i: if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair, append "
        "symbols[i] + symbols[i + 1] and do i += 2; otherwise append symbols[i] and do i += 1",
    ),
)


# %% tags=["solution"]
def my_merge_pair(symbols, pair):
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == tuple(pair):
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


assert check(my_merge_pair, merge_pair, inputs=merge_cases, name="my_merge_pair")

# %% [markdown]
# ### Exercise 3 — left padding with a mask
#
# Write `my_left_pad(sequences, max_len, pad_id)` returning `(ids, mask)` as NumPy arrays of shape
# `(len(sequences), max_len)`: each sequence keeps its **last** `max_len` ids, placed at the right end of its row;
# the positions before it hold `pad_id`; `mask` is `True` exactly at real tokens. (Why can't the mask simply be
# `ids != pad_id`? Think of a text that contains the pad token itself, or a vocabulary where the pad id is 0 and
# 0 is also a character.)


# %%
def my_left_pad(sequences, max_len, pad_id):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
def reference_left_pad(sequences, max_len, pad_id):
    return pad_and_truncate(
        sequences, max_len, pad_id=pad_id, padding_side="left", truncation_side="left"
    )


pad_cases = [
    ([[5, 6, 7], [8]], 4, 0),
    ([[5, 6, 7], [8]], 2, 0),
    ([[], [1, 2]], 3, 9),
    ([[0, 0, 3]], 5, 0),  # the pad id also occurs as a real token
    (batch, 8, pad_id),
]
check(
    my_left_pad,
    reference_left_pad,
    inputs=pad_cases,
    name="my_left_pad",
    hint=(
        "keep the last max_len ids of each sequence and place them at the right end of a row of pad ids; "
        "the mask records where you placed real ids, it cannot be read off the ids' values",
        "start from np.full((n, max_len), pad_id) and np.zeros((n, max_len), dtype=bool); with "
        "kept = list(seq)[-max_len:], fill ids[i, -len(kept):] and mask[i, -len(kept):] (skip empty rows)",
    ),
)


# %% tags=["solution"]
def my_left_pad(sequences, max_len, pad_id):
    ids = np.full((len(sequences), max_len), pad_id, dtype=np.int32)
    mask = np.zeros((len(sequences), max_len), dtype=bool)
    for i, seq in enumerate(sequences):
        kept = list(seq)[-max_len:]
        if kept:
            ids[i, -len(kept) :] = kept
            mask[i, -len(kept) :] = True
    return ids, mask


assert check(my_left_pad, reference_left_pad, inputs=pad_cases, name="my_left_pad")

# %% [markdown]
# ## Summary
#
# * A tokenizer is a fixed map text ↔ ids with an exact round trip. It sets the vocabulary size $V$ (embedding and
#   softmax width) and the sequence length $n$ (attention cost $\propto n^2$).
# * Clean only what makes equal text look different (Unicode normal form, line endings, odd spaces). Keep case,
#   punctuation and newlines: a language model must produce them.
# * Characters: tiny vocabulary (65 here), long sequences, nothing unknown. Words: short sequences, a huge
#   vocabulary and unknown words (4.6 % of the validation words). Subwords (BPE) sit in between.
# * BPE repeatedly merges the most frequent adjacent pair, inside words, with deterministic tie-breaking; the
#   ordered merge list is the tokenizer, and encoding replays it. The merge counts never increase (a new pair is at
#   most as frequent as the merged one), and ties are common. 445 merges learned from 200k characters give about 2
#   characters per token on unseen text.
# * Special tokens are single, unsplittable ids that take the first ids; unknown characters are an error or
#   `<unk>`, never silently dropped.
# * Batches are padded and truncated to a fixed length; the attention mask (`True` = real token) tells later
#   layers which positions to ignore.
