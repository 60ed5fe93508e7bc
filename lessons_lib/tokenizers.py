"""Tokenizers: turning text into integer ids and back (lesson 01).

A tokenizer is a pair of maps ``encode: str -> list[int]`` and ``decode: list[int] -> str`` with
the round trip

    decode(encode(s)) == s        for every string s made of characters the tokenizer knows.

* `CharTokenizer` -- one id per character (lesson 01 §3; the tokenizer of lessons 09 and 10).
  The vocabulary is the sorted set of distinct characters of a text (65 for Tiny Shakespeare), so
  without special tokens the ids follow sorted order: ``"\\n"`` is 0.
* `BPETokenizer` -- byte-pair encoding (Sennrich, Haddow & Birch, 2016, "Neural Machine
  Translation of Rare Words with Subword Units", ACL; https://arxiv.org/abs/1508.07909), derived
  step by step in lesson 01 §4. Start from single characters and repeatedly merge the most frequent
  adjacent pair of symbols. With the corpus summarised as word frequencies ``f(w)`` and each word
  written as a sequence of symbols ``w = (w₁, …, wₙ)``, one training step picks

      (a, b)* = argmax_{(a, b)} count(a, b),     count(a, b) = ∑_w f(w) · #{i : wᵢ = a and wᵢ₊₁ = b}

  breaking ties by the smallest pair (comparing ``a`` first, then ``b``, by code point) so that
  training is reproducible; it then replaces every occurrence of ``a b`` (left to right,
  non-overlapping) by the new symbol ``ab`` and appends ``(a, b)`` to ``merges``. Counts are updated
  incrementally: only the words that contain the winning pair are recounted, as in the paper's
  reference code. Encoding applies the merges to each word in the order in which they were learned.
  The count of the chosen pair never increases from one merge to the next (a pair (ab, y) created by
  a merge occurs at most as often as (b, y) did, which was at most count(a, b)), and ties are
  common.
* `pad_and_truncate` -- make a batch of id sequences rectangular and return the attention mask
  (``True`` = real token, ``False`` = padding; the course-wide mask convention; lesson 01 §7).
* `encode_texts` -- a batch of texts as an encoder's input: ``[CLS] + tokens``, truncated and
  padded to ``max_len``, with the mask (lesson 11 §1).

Choices made for readability: the base alphabet is the *characters* of the training text. GPT-2
starts from the 256 byte values instead, so it never meets an unknown symbol, but its tokens then
print as ``"Ã©"`` for ``"é"``. Here an unknown character is an explicit error (or ``<unk>`` if you
ask for it). Text is pre-split into words with a GPT-2-like pattern (a word keeps its leading
space), so merges never cross word boundaries. Special tokens such as ``<|endoftext|>`` or ``<pad>``
are cut out of the text before anything else: each is always exactly one id and is never split or
merged.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

__all__ = [
    "CharTokenizer",
    "BPETokenizer",
    "pad_and_truncate",
    "encode_texts",
    "pretokenize",
    "count_pairs",
    "merge_pair",
]

#: GPT-2-like pre-tokenizer: a run of word characters or of punctuation, each with at most one
#: leading space, or a run of whitespace (a run followed by a word leaves its last space to that
#: word). Every character falls in exactly one piece, so ``"".join(pretokenize(s)) == s``.
WORD_PATTERN = re.compile(r" ?\w+| ?[^\w\s]+|\s+(?!\S)|\s+")

_MAX_REPORTED = 5  # how many unknown characters / bad ids an error message lists


# --------------------------------------------------------------------------------------------------
# Small building blocks (also used in the lesson's exercises)
# --------------------------------------------------------------------------------------------------
def pretokenize(text: str) -> list[str]:
    """Split ``text`` into the pieces BPE works on: words with their leading space, punctuation.

    Runs of whitespace are pieces too. Lesson 01 §3 (words as tokens) and §4 (BPE never merges
    across these pieces).

    >>> pretokenize("Hello, world!\\n")
    ['Hello', ',', ' world', '!', '\\n']
    """
    return WORD_PATTERN.findall(_check_text(text))


def count_pairs(word_freqs: Mapping[Sequence[str], int]) -> dict[tuple[str, str], int]:
    """Count adjacent symbol pairs, each word weighted by its frequency: ``count(a, b)`` above.

    One step of BPE training, lesson 01 §4 (and exercise 1 of §8).

    Args:
        word_freqs: maps a word, written as a tuple of symbols, to how often it occurs,
            e.g. ``{("l", "o", "w"): 5, ("l", "o", "w", "e", "r"): 2}``.

    Returns:
        ``{(a, b): count}`` for every pair that occurs, e.g.
        ``{("l", "o"): 7, ("o", "w"): 7, ("w", "e"): 2, ...}``.
    """
    counts: dict[tuple[str, str], int] = {}
    for word, freq in word_freqs.items():
        for pair in zip(word, word[1:]):
            counts[pair] = counts.get(pair, 0) + freq
    return counts


def merge_pair(symbols: Sequence[str], pair: tuple[str, str]) -> list[str]:
    """Replace every occurrence of ``pair`` in ``symbols`` by the joined symbol, left to right.

    Occurrences do not overlap: ``merge_pair(["a", "a", "a"], ("a", "a"))`` is ``["aa", "a"]``. The
    other step of BPE training, lesson 01 §4.
    """
    a, b = pair
    out: list[str] = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == a and symbols[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def pad_and_truncate(
    sequences: Sequence[Sequence[int]],
    max_len: int | None = None,
    *,
    pad_id: int,
    padding_side: str = "right",
    truncation_side: str = "right",
) -> tuple[np.ndarray, np.ndarray]:
    """Make a batch of id sequences rectangular: cut long ones, pad short ones, mark the real ones.

    Lesson 01 §7. The mask follows the course convention: ``True`` = a real token (may be attended
    to).

    Args:
        sequences: a batch (list) of id sequences of any lengths, e.g. ``[[5, 6, 7], [8]]``.
        max_len: the length of every output row; ``None`` pads to the longest sequence (nothing is
            cut).
        pad_id: the id written into padding positions (e.g. ``tok.token_to_id("<pad>")``).
        padding_side: ``"right"`` puts padding after the tokens, ``"left"`` before them.
        truncation_side: ``"right"`` keeps the first ``max_len`` tokens, ``"left"`` keeps the last
            ones.

    Returns:
        ``(ids, mask)``: an int32 array of shape ``(batch, max_len)`` and a bool array of the same
        shape with ``True`` at real tokens and ``False`` at padding.

    >>> ids, mask = pad_and_truncate([[5, 6, 7], [8]], max_len=2, pad_id=0)
    >>> ids.tolist(), mask.tolist()
    ([[5, 6], [8, 0]], [[True, True], [True, False]])
    """
    if isinstance(sequences, (str, bytes)) or not isinstance(sequences, (Sequence, np.ndarray)):
        raise TypeError(f"sequences must be a list of id sequences, got {type(sequences).__name__}")
    if len(sequences) == 0:
        raise ValueError("sequences must hold at least one sequence, got an empty batch")
    if all(isinstance(s, (int, np.integer)) for s in sequences):
        raise TypeError(
            "sequences must be a batch (a list of id sequences), got a flat list of ints; "
            "wrap a single sequence as [ids]"
        )
    rows = [_check_ids(s, name=f"sequences[{i}]") for i, s in enumerate(sequences)]
    if max_len is None:
        max_len = max(len(r) for r in rows)
        if max_len == 0:
            raise ValueError("every sequence is empty; give max_len to get a batch of pure padding")
    else:
        max_len = _positive_int(max_len, "max_len")
    if isinstance(pad_id, bool) or not isinstance(pad_id, (int, np.integer)) or pad_id < 0:
        raise ValueError(f"pad_id must be a non-negative integer id, got {pad_id!r}")
    for name, value in (("padding_side", padding_side), ("truncation_side", truncation_side)):
        if value not in ("left", "right"):
            raise ValueError(f"{name} must be 'left' or 'right', got {value!r}")

    ids = np.full((len(rows), max_len), pad_id, dtype=np.int32)
    mask = np.zeros((len(rows), max_len), dtype=bool)
    for i, row in enumerate(rows):
        row = row[:max_len] if truncation_side == "right" else row[max(len(row) - max_len, 0) :]
        start = 0 if padding_side == "right" else max_len - len(row)
        ids[i, start : start + len(row)] = row
        mask[i, start : start + len(row)] = True
    return ids, mask


def encode_texts(
    tokenizer: Any,
    texts: Sequence[str],
    max_len: int,
    *,
    cls_token: str | None = "[CLS]",
    pad_token: str = "[PAD]",
) -> tuple[np.ndarray, np.ndarray]:
    """A batch of texts as an encoder's input: ``[CLS] + tokens``, cut to ``max_len``, padded.

    Lesson 11 §1. Row i is ``[cls_id] + tokenizer.encode(texts[i])``, truncated to its first
    ``max_len`` ids (``[CLS]`` always stays) and padded with ``pad_token``'s id on the right.

    Args:
        tokenizer: a `BPETokenizer` or `CharTokenizer` whose special tokens include ``cls_token``
            and ``pad_token`` (e.g. trained with ``special_tokens=("[PAD]", "[UNK]", "[CLS]",
            "[MASK]")``; an ``unk_token`` lets it encode characters it never saw).
        texts: a list of strings (one message each).
        max_len: the length of every row.
        cls_token: the token put first in every row; ``None`` puts none.
        pad_token: the padding token.

    Returns:
        ``(ids, mask)``: int32 ``[len(texts), max_len]`` and bool of the same shape (``True`` =
        real token, ``[CLS]`` included; ``False`` = padding), as `pad_and_truncate` returns.

    >>> tok = CharTokenizer.from_text("ab", special_tokens=("[PAD]", "[CLS]"))
    >>> ids, mask = encode_texts(tok, ["ab", "b"], max_len=3)
    >>> ids.tolist(), mask.tolist()
    ([[1, 2, 3], [1, 3, 0]], [[True, True, True], [True, True, False]])
    """
    if not isinstance(tokenizer, _Tokenizer):
        raise TypeError(
            "tokenizer must be a lessons_lib BPETokenizer or CharTokenizer, "
            f"got {type(tokenizer).__name__}"
        )
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, got a single str; wrap it as [text]")
    if isinstance(texts, np.ndarray):
        texts = texts.tolist()
    if not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}")
    if len(texts) == 0:
        raise ValueError("texts is an empty batch; give at least one text")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(
                f"texts must hold strings, got {type(t).__name__} {t!r:.60} at position {i}"
            )
    max_len = _positive_int(max_len, "max_len")
    needed = [pad_token] + ([] if cls_token is None else [cls_token])
    missing = [s for s in needed if s not in tokenizer.special_tokens]
    if missing:
        raise ValueError(
            f"the tokenizer has no special token {missing[0]!r} (its special tokens are "
            f"{tokenizer.special_tokens!r}); train it with special_tokens that include "
            f"{tuple(needed)!r}"
        )
    head = [] if cls_token is None else [tokenizer.token_to_id(cls_token)]
    rows = [head + tokenizer.encode(t) for t in texts]
    return pad_and_truncate(rows, max_len, pad_id=tokenizer.token_to_id(pad_token))


# --------------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------------
def _check_text(text: Any, name: str = "text") -> str:
    if not isinstance(text, str):
        hint = ""
        if isinstance(text, (bytes, bytearray)):
            hint = " (decode the bytes first, e.g. data.decode('utf-8'))"
        elif isinstance(text, (list, tuple)):
            hint = " (join the pieces into one string first, or call the method once per string)"
        raise TypeError(f"{name} must be a str, got {type(text).__name__}{hint}")
    return text


def _check_training_text(text: Any) -> str:
    _check_text(text)
    if not text:
        raise ValueError("text must be a non-empty string to build a vocabulary from, got ''")
    return text


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_specials(special_tokens: Any, unk_token: Any) -> tuple[str, ...]:
    if isinstance(special_tokens, str) or not isinstance(special_tokens, (list, tuple)):
        raise TypeError(
            "special_tokens must be a tuple of strings such as ('<pad>', '<unk>'), "
            f"got {type(special_tokens).__name__} {special_tokens!r}"
        )
    for s in special_tokens:
        if not isinstance(s, str) or not s:
            raise TypeError(
                f"every special token must be a non-empty str, got {s!r} in {special_tokens!r}"
            )
    duplicates = sorted({s for s in special_tokens if special_tokens.count(s) > 1})
    if duplicates:
        raise ValueError(f"special_tokens must be distinct, got {duplicates} more than once")
    if unk_token is not None and unk_token not in special_tokens:
        raise ValueError(
            f"unk_token {unk_token!r} must be one of the special tokens {tuple(special_tokens)!r}; "
            f"add it, e.g. special_tokens=({unk_token!r},)"
        )
    return tuple(special_tokens)


def _check_ids(ids: Any, name: str = "ids", vocab_size: int | None = None) -> list[int]:
    """Turn a 1-D sequence of integer ids (list, tuple, NumPy array, tensor) into a list of ints."""
    if hasattr(ids, "numpy") and not isinstance(ids, np.ndarray):  # a tf.Tensor
        ids = ids.numpy()
    if isinstance(ids, np.ndarray):
        if ids.ndim != 1:
            raise ValueError(
                f"{name} must be a 1-D sequence of ids, got an array of shape {ids.shape}"
            )
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"{name} must hold integer ids, got an array of dtype {ids.dtype}")
        ids = ids.tolist()
    elif isinstance(ids, (str, bytes)) or not isinstance(ids, (list, tuple, range)):
        raise TypeError(f"{name} must be a list of integer ids, got {type(ids).__name__}")
    out = []
    for pos, i in enumerate(ids):
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(
                f"{name} must hold integer ids, got {i!r} ({type(i).__name__}) at position {pos}"
            )
        out.append(int(i))
    if vocab_size is not None:
        bad = [(pos, i) for pos, i in enumerate(out) if not 0 <= i < vocab_size]
        if bad:
            listed = ", ".join(f"id {i} at position {pos}" for pos, i in bad[:_MAX_REPORTED])
            more = f" (and {len(bad) - _MAX_REPORTED} more)" if len(bad) > _MAX_REPORTED else ""
            raise ValueError(
                f"invalid ids in {name}: {listed}{more}; "
                f"valid ids are 0..{vocab_size - 1} (vocab_size={vocab_size})"
            )
    return out


def _split_specials(text: str, pattern: re.Pattern[str] | None) -> Iterator[tuple[str, int, bool]]:
    """Yield ``(piece, start, is_special)``: the text cut at every occurrence of a special token."""
    if pattern is None:
        if text:
            yield text, 0, False
        return
    pos = 0
    for m in pattern.finditer(text):
        if m.start() > pos:
            yield text[pos : m.start()], pos, False
        yield m.group(), m.start(), True
        pos = m.end()
    if pos < len(text):
        yield text[pos:], pos, False


def _specials_pattern(special_tokens: Sequence[str]) -> re.Pattern[str] | None:
    if not special_tokens:
        return None
    longest_first = sorted(special_tokens, key=len, reverse=True)  # "<|end|>" must win over "<|e"
    return re.compile("|".join(re.escape(s) for s in longest_first))


# --------------------------------------------------------------------------------------------------
# Tokenizers
# --------------------------------------------------------------------------------------------------
class _Tokenizer:
    """What both tokenizers share: id <-> token tables, special tokens, unknown characters."""

    def __init__(
        self,
        alphabet: Iterable[str],
        extra_tokens: Iterable[str],
        special_tokens: Sequence[str],
        unk_token: str | None,
    ) -> None:
        self.special_tokens: tuple[str, ...] = _check_specials(special_tokens, unk_token)
        self.unk_token: str | None = unk_token
        if isinstance(alphabet, str):
            alphabet = list(alphabet)
        chars = list(alphabet)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"the alphabet must consist of single characters, got {c!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("the alphabet must not repeat characters")
        clash = sorted(set(chars) & set(self.special_tokens))
        if clash:
            raise ValueError(
                f"special tokens {clash} are also ordinary characters of the alphabet; "
                "use multi-character special tokens such as '<pad>'"
            )
        self.alphabet: tuple[str, ...] = tuple(sorted(chars))
        self._alphabet_set = frozenset(self.alphabet)
        # ids: special tokens first, then the sorted characters, then whatever the subclass adds
        # (merged tokens).
        self._id_to_token: list[str] = [*self.special_tokens, *self.alphabet]
        self._token_to_id: dict[str, int] = {t: i for i, t in enumerate(self._id_to_token)}
        for t in extra_tokens:
            if (
                t not in self._token_to_id
            ):  # BPE can build the same string twice ("ab"+"c", "a"+"bc"): one id
                self._token_to_id[t] = len(self._id_to_token)
                self._id_to_token.append(t)
        self._unk_id = None if unk_token is None else self._token_to_id[unk_token]
        self._special_re = _specials_pattern(self.special_tokens)

    # --- the vocabulary ---------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """The number of distinct ids: special tokens + characters (+ merged tokens for BPE)."""
        return len(self._id_to_token)

    @property
    def vocab(self) -> dict[str, int]:
        """A copy of the token -> id table."""
        return dict(self._token_to_id)

    @property
    def tokens(self) -> tuple[str, ...]:
        """All tokens in id order: ``tokens[i]`` is the text of id ``i``."""
        return tuple(self._id_to_token)

    def token_to_id(self, token: str) -> int:
        """The id of one token, e.g. ``tok.token_to_id("<pad>")``."""
        if token not in self._token_to_id:
            raise ValueError(
                f"{token!r} is not a token of this vocabulary (vocab_size={self.vocab_size})"
            )
        return self._token_to_id[token]

    def id_to_token(self, token_id: int) -> str:
        """The text of one id."""
        return self._id_to_token[_check_ids([token_id], "token_id", self.vocab_size)[0]]

    # --- text -> ids ------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Turn ``text`` into a list of ids. Special tokens in the text become their single id.

        Raises ``ValueError`` naming every unknown character and where it first occurs, unless the
        tokenizer has an ``unk_token``, in which case unknown characters become its id.
        ``encode("")`` is ``[]``.
        """
        _check_text(text)
        ids: list[int] = []
        for piece, start, is_special in _split_specials(text, self._special_re):
            if is_special:
                ids.append(self._token_to_id[piece])
            else:
                if self._unk_id is None:
                    self._refuse_unknown(piece, start)
                ids.extend(self._encode_piece(piece))
        return ids

    def _encode_piece(self, piece: str) -> list[int]:
        raise NotImplementedError

    def _refuse_unknown(self, piece: str, start: int) -> None:
        unknown = set(piece) - self._alphabet_set
        if not unknown:
            return
        first = sorted((piece.index(c) + start, c) for c in unknown)
        listed = ", ".join(f"{c!r} (first at position {pos})" for pos, c in first[:_MAX_REPORTED])
        more = f" and {len(first) - _MAX_REPORTED} more" if len(first) > _MAX_REPORTED else ""
        raise ValueError(
            f"text contains {len(first)} character(s) that are not in the vocabulary: "
            f"{listed}{more}. Build the tokenizer from text that contains them, clean the text, "
            "or give the tokenizer special_tokens=('<unk>',) and unk_token='<unk>' to map them to "
            "<unk>."
        )

    # --- ids -> text ------------------------------------------------------------------------------
    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Turn ids back into text by concatenating the text of each token.

        Args:
            ids: a 1-D sequence of ids (list, tuple or NumPy array) in ``0..vocab_size-1``.
            skip_special_tokens: drop special tokens (e.g. padding) instead of writing them out.
        """
        ids = _check_ids(ids, "ids", self.vocab_size)
        n_special = len(self.special_tokens)
        return "".join(
            self._id_to_token[i] for i in ids if not (skip_special_tokens and i < n_special)
        )


class CharTokenizer(_Tokenizer):
    """One id per character (lesson 01 §3; lessons 09 and 10 model Tiny Shakespeare with it).

    Build it from a text with `from_text`. Without special tokens (the default) the ids are
    the positions of the characters in sorted order; special tokens, when given, take the first ids.

    >>> tok = CharTokenizer.from_text("hello")
    >>> tok.tokens, tok.encode("hole"), tok.decode([3, 1])
    (('e', 'h', 'l', 'o'), [1, 3, 2, 0], 'oh')
    """

    def __init__(
        self,
        alphabet: Iterable[str],
        special_tokens: Sequence[str] = (),
        unk_token: str | None = None,
    ) -> None:
        """A tokenizer of the characters ``alphabet`` (any order; stored sorted).

        ``special_tokens`` take the first ids; ``unk_token`` (one of them) stands for unknown
        characters instead of an error.
        """
        super().__init__(alphabet, (), special_tokens, unk_token)

    @classmethod
    def from_text(
        cls, text: str, special_tokens: Sequence[str] = (), unk_token: str | None = None
    ) -> "CharTokenizer":
        """The tokenizer of the distinct characters of ``text`` (its special tokens excluded)."""
        _check_training_text(text)
        specials = _check_specials(special_tokens, unk_token)
        chars: set[str] = set()
        for piece, _, is_special in _split_specials(text, _specials_pattern(specials)):
            if not is_special:
                chars.update(piece)
        if not chars:
            raise ValueError(
                "text contains nothing but special tokens; there are no characters to learn"
            )
        return cls(chars, specials, unk_token)

    def _encode_piece(self, piece: str) -> list[int]:
        table, unk = self._token_to_id, self._unk_id
        return [
            table.get(c, unk) for c in piece
        ]  # unknown -> unk (refused earlier when there is none)

    def __repr__(self) -> str:
        return (
            f"CharTokenizer(vocab_size={self.vocab_size}, special_tokens={self.special_tokens!r})"
        )


class BPETokenizer(_Tokenizer):
    """Byte-pair encoding over characters (lesson 01 §4; the module docstring states the training
    rule).

    Train one with `train`. Ids: special tokens first, then the sorted characters, then one id
    per merged token in the order the merges were learned.

    Attributes:
        merges: the learned pairs, in order; ``merges[k]`` produced token ``merges[k][0] +
            merges[k][1]``.
        merge_counts: ``count(a, b)`` of each merge when it was chosen (``None`` if not trained
            here).
        alphabet: the base characters.
    """

    _CACHE_LIMIT = 200_000  # cached word -> ids entries before the cache is cleared

    def __init__(
        self,
        alphabet: Iterable[str],
        merges: Sequence[tuple[str, str]],
        special_tokens: Sequence[str] = (),
        unk_token: str | None = None,
        merge_counts: Sequence[int] | None = None,
    ) -> None:
        """Rebuild a tokenizer from its parts (``alphabet``, ``merges``, special tokens).

        `train` learns them.
        """
        merges = [tuple(m) for m in merges]
        known = set(alphabet)
        for k, m in enumerate(merges):
            if len(m) != 2 or not all(isinstance(s, str) and s in known for s in m):
                raise ValueError(
                    f"merges[{k}] = {m!r} must be a pair of tokens that exist before it "
                    "(characters of the alphabet or earlier merges)"
                )
            known.add(m[0] + m[1])
        super().__init__(alphabet, (a + b for a, b in merges), special_tokens, unk_token)
        self.merges: list[tuple[str, str]] = merges
        self.merge_counts: list[int] | None = None if merge_counts is None else list(merge_counts)
        self._ranks = {m: k for k, m in enumerate(merges)}
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def train(
        cls,
        text: str,
        vocab_size: int,
        special_tokens: Sequence[str] = (),
        unk_token: str | None = None,
        min_frequency: int = 2,
        initial_alphabet: Iterable[str] = (),
    ) -> "BPETokenizer":
        """Learn merges from ``text`` until the vocabulary has ``vocab_size`` tokens.

        Lesson 01 §4 shows this code.

        Args:
            text: the training text (special tokens in it are cut out and never merged).
            vocab_size: the final number of ids, special tokens and base characters included.
            special_tokens: e.g. ``("<pad>", "<|endoftext|>")``; they get ids ``0, 1, ...``.
            unk_token: one of ``special_tokens``, used for characters missing from the training
                text.
            min_frequency: stop early when the best pair occurs fewer times than this (then
                ``vocab_size`` is not reached: a pair seen once is not a pattern worth a token).
            initial_alphabet: characters to include in the base vocabulary even if ``text`` lacks
                them, e.g. the full corpus when training on a slice of it (a string is read as its
                characters).

        Raises:
            TypeError: ``text`` is not a str.
            ValueError: ``text`` is empty, or ``vocab_size`` is smaller than characters + special
                tokens.
        """
        _check_training_text(text)
        vocab_size = _positive_int(vocab_size, "vocab_size")
        min_frequency = _positive_int(min_frequency, "min_frequency")
        specials = _check_specials(special_tokens, unk_token)

        # 1. The corpus as word frequencies: BPE only ever looks inside words.
        word_freqs: Counter[str] = Counter()
        for piece, _, is_special in _split_specials(text, _specials_pattern(specials)):
            if not is_special:
                word_freqs.update(WORD_PATTERN.findall(piece))
        if not word_freqs:
            raise ValueError(
                "text contains nothing but special tokens; there are no characters to learn"
            )
        if isinstance(initial_alphabet, (bytes, bytearray)) or not isinstance(
            initial_alphabet, Iterable
        ):
            raise TypeError(
                f"initial_alphabet must be a str or an iterable of characters, "
                f"got {type(initial_alphabet).__name__}"
            )
        alphabet = sorted(set().union(*word_freqs, initial_alphabet))
        n_base = len(alphabet) + len(specials)
        if vocab_size < n_base:
            raise ValueError(
                f"vocab_size={vocab_size} is smaller than the base vocabulary: "
                f"{len(alphabet)} distinct characters + {len(specials)} special tokens = {n_base}; "
                f"ask for at least {n_base}"
            )

        # 2. Every word as a list of symbols, the pair counts, and which words contain each pair.
        words = [list(w) for w in word_freqs]
        freqs = list(word_freqs.values())
        pair_counts: Counter[tuple[str, str]] = Counter()
        where: defaultdict[tuple[str, str], set[int]] = defaultdict(set)
        for i, (w, f) in enumerate(zip(words, freqs)):
            for pair in zip(w, w[1:]):
                pair_counts[pair] += f
                where[pair].add(i)

        # 3. Merge the most frequent pair (ties: the smallest pair) until the vocabulary is full.
        merges: list[tuple[str, str]] = []
        counts: list[int] = []
        tokens = set(alphabet)
        while len(tokens) + len(specials) < vocab_size and pair_counts:
            top = max(pair_counts.values())
            if top < min_frequency:
                break
            best = min(p for p, c in pair_counts.items() if c == top)
            merges.append(best)
            counts.append(top)
            tokens.add(best[0] + best[1])
            # only the words containing the pair change: recount just those
            for i in where.pop(best):
                w, f = words[i], freqs[i]
                for pair in zip(w, w[1:]):
                    pair_counts[pair] -= f
                    if pair_counts[pair] == 0:
                        del pair_counts[pair]
                words[i] = w = merge_pair(w, best)
                for pair in zip(w, w[1:]):
                    pair_counts[pair] += f
                    where[pair].add(i)
        return cls(alphabet, merges, specials, unk_token, merge_counts=counts)

    def with_merges(self, n: int) -> "BPETokenizer":
        """The same tokenizer keeping only the first ``n`` merges.

        Lesson 01 §4 uses it to show what each stage of training buys.
        """
        if (
            isinstance(n, bool)
            or not isinstance(n, (int, np.integer))
            or not 0 <= n <= len(self.merges)
        ):
            raise ValueError(
                f"n must be an integer in 0..{len(self.merges)} (the number of merges), got {n!r}"
            )
        counts = None if self.merge_counts is None else self.merge_counts[:n]
        return BPETokenizer(
            self.alphabet, self.merges[:n], self.special_tokens, self.unk_token, counts
        )

    def tokenize(self, text: str) -> list[str]:
        """The tokens of ``text`` as strings, ``[tok.tokens[i] for i in tok.encode(text)]``.

        Handy for looking (lesson 01 §4).
        """
        return [self._id_to_token[i] for i in self.encode(text)]

    def _encode_piece(self, piece: str) -> list[int]:
        ids: list[int] = []
        for word in WORD_PATTERN.findall(piece):
            cached = self._cache.get(word)
            if cached is None:
                cached = self._encode_word(word)
                if len(self._cache) >= self._CACHE_LIMIT:
                    self._cache.clear()
                self._cache[word] = cached
            ids.extend(cached)
        return ids

    def _encode_word(self, word: str) -> list[int]:
        symbols = list(word)
        while len(symbols) > 1:
            # the pair that was learned earliest among those present in the word
            pair = min(
                zip(symbols, symbols[1:]), key=lambda p: self._ranks.get(p, len(self._ranks))
            )
            if pair not in self._ranks:
                break
            symbols = merge_pair(symbols, pair)
        table, unk = self._token_to_id, self._unk_id
        return [table.get(s, unk) for s in symbols]  # only characters can be unknown

    def __repr__(self) -> str:
        return (
            f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
            f"special_tokens={self.special_tokens!r})"
        )
