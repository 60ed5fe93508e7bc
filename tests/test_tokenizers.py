"""Tests for lessons_lib.tokenizers: hand-derived merges, round trips, special tokens, padding and
bad inputs."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from lessons_lib.data import TINY_SHAKESPEARE, cache_path
from lessons_lib.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    count_pairs,
    encode_texts,
    merge_pair,
    pad_and_truncate,
    pretokenize,
)

DATA = cache_path(TINY_SHAKESPEARE)  # $LESSONS_DATA_DIR or the per-user cache; tests never download
needs_data = pytest.mark.skipif(
    not DATA.is_file(), reason="Tiny Shakespeare is not cached (see lessons_lib.data)"
)
SAMPLE = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\n"
    "All:\nResolved. resolved.\n"
)


@pytest.fixture(scope="module")
def shakespeare() -> str:
    if not DATA.is_file():
        pytest.skip("Tiny Shakespeare is not cached (see lessons_lib.data)")
    return DATA.read_bytes().decode("utf-8")


def naive_bpe(
    text: str, vocab_size: int, min_frequency: int = 2
) -> tuple[list[tuple[str, str]], dict]:
    """Reference BPE: recount every pair from scratch after each merge (slow, obviously right)."""
    words = Counter(tuple(w) for w in pretokenize(text))
    n_tokens = len({c for w in words for c in w})
    merges = []
    while n_tokens < vocab_size:
        counts = count_pairs(words)
        if not counts:
            break
        top = max(counts.values())
        if top < min_frequency:
            break
        best = min(p for p, c in counts.items() if c == top)
        merges.append(best)
        n_tokens += 1
        words = Counter({tuple(merge_pair(list(w), best)): f for w, f in words.items()})
    return merges, words


# ------------------------------------------------------------------------------------------------
# building blocks
def test_pretokenize_keeps_every_character():
    assert pretokenize("Hello, world!\n") == ["Hello", ",", " world", "!", "\n"]
    assert pretokenize("a  b") == [
        "a",
        " ",
        " b",
    ]  # a run of spaces leaves its last space to the word
    rng = random.Random(0)
    pool = "ab Z_9.,!?'\n\t é"
    for _ in range(200):
        s = "".join(rng.choice(pool) for _ in range(rng.randrange(0, 30)))
        assert "".join(pretokenize(s)) == s


def test_count_pairs_weights_by_frequency():
    got = count_pairs({("l", "o", "w"): 5, ("l", "o", "w", "e", "r"): 2})
    assert got == {("l", "o"): 7, ("o", "w"): 7, ("w", "e"): 2, ("e", "r"): 2}
    assert count_pairs({("a", "a", "a"): 1}) == {
        ("a", "a"): 2
    }  # overlapping occurrences are both counted
    assert count_pairs({("x",): 3}) == {}


def test_merge_pair_left_to_right_without_overlap():
    assert merge_pair(["a", "a", "a"], ("a", "a")) == ["aa", "a"]
    assert merge_pair(["a", "a", "a", "a"], ("a", "a")) == ["aa", "aa"]
    assert merge_pair(["a", "b", "c", "a", "b"], ("a", "b")) == ["ab", "c", "ab"]
    assert merge_pair(["a"], ("a", "b")) == ["a"]
    assert merge_pair([], ("a", "b")) == []


# ------------------------------------------------------------------------------------------------
# CharTokenizer
def test_char_tokenizer_small():
    tok = CharTokenizer.from_text("hello")
    assert tok.tokens == ("e", "h", "l", "o") and tok.vocab_size == 4
    assert tok.encode("hole") == [1, 3, 2, 0]
    assert tok.decode([3, 1]) == "oh"
    assert tok.decode(np.array([3, 1], dtype=np.int64)) == "oh"
    assert tok.encode("") == [] and tok.decode([]) == ""
    assert tok.vocab == {"e": 0, "h": 1, "l": 2, "o": 3}


@needs_data
def test_char_tokenizer_tiny_shakespeare(shakespeare):
    tok = CharTokenizer.from_text(shakespeare)
    assert tok.vocab_size == 65
    assert list(tok.tokens) == sorted(set(shakespeare))  # ids follow sorted order
    assert tok.encode("\n !") == [0, 1, 2]
    assert tok.decode(tok.encode(shakespeare)) == shakespeare


def test_char_tokenizer_special_tokens_take_first_ids():
    tok = CharTokenizer.from_text("ba<pad>", special_tokens=("<pad>", "<unk>"), unk_token="<unk>")
    assert tok.tokens == (
        "<pad>",
        "<unk>",
        "a",
        "b",
    )  # "<", "p", "d", ">" only occurred inside "<pad>"
    assert tok.encode("ab<pad>") == [2, 3, 0]
    assert tok.encode("axb") == [2, 1, 3]  # unknown -> <unk>
    assert tok.decode([2, 0, 0], skip_special_tokens=True) == "a"
    assert tok.decode([2, 0]) == "a<pad>"


def test_char_tokenizer_unknown_characters_error_names_them():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(
        ValueError, match=r"'x' \(first at position 1\), 'é' \(first at position 3\)"
    ):
        tok.encode("axaé")
    tok2 = CharTokenizer.from_text("abc", special_tokens=("<pad>",))
    with pytest.raises(
        ValueError, match=r"'z' \(first at position 8\)"
    ):  # positions count in the full text
        tok2.encode("ab<pad>cz")


# ------------------------------------------------------------------------------------------------
# BPE, by hand
def test_bpe_classic_example_merges_derived_by_hand():
    # "aaabdaaabac" is one word (no spaces), symbols a a a b d a a a b a c. Step 1 counts (overlaps
    # counted, as in Sennrich et al.'s code): aa 4, ab 2, ba 1, bd 1, da 1, ac 1 -> merge (a, a): aa
    # a b d aa a b a c  (left to right: "aaa" becomes "aa" + "a") Step 2: (aa, a) 2, (a, b) 2, (b,
    # d) 1, (d, aa) 1, (b, a) 1, (a, c) 1 -> tie at 2; ("a", "b") < ("aa", "a") because "a" < "aa"
    # -> merge (a, b): aa ab d aa ab a c Step 3: (aa, ab) 2, everything else 1
    # -> merge (aa, ab): aaab d aaab a c Step 4: all pairs count 1: (a, c) < (aaab, a) < (aaab, d) <
    # (d, aaab)  -> merge (a, c): aaab d aaab ac Step 5: (aaab, ac) < (aaab, d) < (d, aaab)
    # -> merge (aaab, ac): aaab d aaabac Step 6: (aaab, d) < (d, aaabac)
    # -> merge (aaab, d): aaabd aaabac Step 7: the last pair
    # -> merge (aaabd, aaabac): one token
    tok = BPETokenizer.train("aaabdaaabac", vocab_size=100, min_frequency=1)
    assert tok.merges == [
        ("a", "a"),
        ("a", "b"),
        ("aa", "ab"),
        ("a", "c"),
        ("aaab", "ac"),
        ("aaab", "d"),
        ("aaabd", "aaabac"),
    ]
    assert tok.merge_counts == [4, 2, 2, 1, 1, 1, 1]
    assert (
        tok.alphabet == ("a", "b", "c", "d") and tok.vocab_size == 4 + 7
    )  # stopped: nothing left to merge
    assert tok.encode("aaabdaaabac") == [tok.vocab_size - 1]

    # With the default min_frequency=2 training stops after step 3 (the best pair then occurs only
    # once).
    tok3 = BPETokenizer.train("aaabdaaabac", vocab_size=100)
    assert tok3.merges == [("a", "a"), ("a", "b"), ("aa", "ab")]
    assert tok3.tokenize("aaabdaaabac") == ["aaab", "d", "aaab", "a", "c"]
    assert tok3.tokens == ("a", "b", "c", "d", "aa", "ab", "aaab")
    # vocab_size caps training: 4 characters + 2 merges
    assert BPETokenizer.train("aaabdaaabac", vocab_size=6).merges == [("a", "a"), ("a", "b")]
    assert BPETokenizer.train("aaabdaaabac", vocab_size=4).merges == []


def test_bpe_merges_stay_inside_words():
    # words: "ab", " ab" -> pairs (a, b) 2, (" ", a) 1; never ("b", " ") because words are merged
    # separately
    tok = BPETokenizer.train("ab ab", vocab_size=10, min_frequency=1)
    assert tok.merges == [("a", "b"), (" ", "ab")]
    assert tok.tokenize("ab ab ab") == ["ab", " ab", " ab"]


def test_bpe_repeated_token_string_gets_one_id():
    tok = BPETokenizer("abc", [("a", "b"), ("b", "c"), ("ab", "c"), ("a", "bc")])
    assert tok.tokens == ("a", "b", "c", "ab", "bc", "abc")
    assert tok.decode(tok.encode("abcbca")) == "abcbca"


# ------------------------------------------------------------------------------------------------
# BPE, real text
@needs_data
def test_bpe_incremental_counts_match_naive_reference(shakespeare):
    text = shakespeare[:20_000]
    tok = BPETokenizer.train(text, vocab_size=160)
    merges, words = naive_bpe(text, vocab_size=160)
    assert tok.merges == merges and len(merges) == 160 - len(tok.alphabet)
    # Encoding a training word with the learned merges reproduces its segmentation at the end of
    # training.
    for word in list(words)[:500]:
        assert tok.tokenize("".join(word)) == list(word)


@needs_data
def test_bpe_round_trip_and_compression(shakespeare):
    train, val = shakespeare[:100_000], shakespeare[-20_000:]
    tok = BPETokenizer.train(train, vocab_size=300, initial_alphabet=shakespeare)
    assert tok.vocab_size == 300 and len(tok.alphabet) == 65
    for text in (train, val, "", "\n", "Zounds!  X marks $3"):
        assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode(val)) < 0.6 * len(val)  # fewer tokens than characters
    ids = tok.encode(val)
    assert min(ids) >= 0 and max(ids) < tok.vocab_size


def test_bpe_round_trip_random_strings():
    tok = BPETokenizer.train(SAMPLE, vocab_size=60, min_frequency=1)
    rng = random.Random(1)
    pool = sorted(set(SAMPLE))
    for _ in range(200):
        s = "".join(rng.choice(pool) for _ in range(rng.randrange(0, 40)))
        assert tok.decode(tok.encode(s)) == s


def test_initial_alphabet_adds_characters():
    tok = BPETokenizer.train("aab", vocab_size=5, initial_alphabet="xyz")
    assert tok.alphabet == ("a", "b", "x", "y", "z") and tok.merges == []
    with pytest.raises(TypeError, match="initial_alphabet"):
        BPETokenizer.train("aab", vocab_size=6, initial_alphabet=b"xyz")


# ------------------------------------------------------------------------------------------------
# special tokens
def test_special_tokens_are_single_ids_and_never_merged():
    specials = ("<pad>", "<|endoftext|>", "<|end|>")
    text = ("to be or not to be<|endoftext|>" * 20) + "<|end|><|end|>"
    tok = BPETokenizer.train(text, vocab_size=40, special_tokens=specials, min_frequency=1)
    assert tok.tokens[:3] == specials
    assert not any(
        c in "<|>" for c in tok.alphabet
    )  # characters seen only inside special tokens are not learned
    assert all(s not in t for t in tok.tokens[3:] for s in specials)
    ids = tok.encode("not<|endoftext|>to<|end|><pad>")
    assert ids.count(1) == 1 and ids.count(2) == 1 and ids[-1] == 0
    assert tok.decode(ids) == "not<|endoftext|>to<|end|><pad>"
    assert tok.decode(ids, skip_special_tokens=True) == "notto"
    assert tok.token_to_id("<|endoftext|>") == 1 and tok.id_to_token(1) == "<|endoftext|>"


def test_unk_token_for_bpe():
    tok = BPETokenizer.train(
        "hello hello", vocab_size=12, special_tokens=("<unk>",), unk_token="<unk>"
    )
    unk = tok.token_to_id("<unk>")
    ids = tok.encode("héllo")
    assert unk in ids and tok.decode(ids) == "h<unk>llo"
    strict = BPETokenizer.train("hello hello", vocab_size=12)
    with pytest.raises(ValueError, match=r"'é' \(first at position 1\).*unk_token"):
        strict.encode("héllo")


# ------------------------------------------------------------------------------------------------
# determinism
def test_training_is_deterministic_across_runs_and_hash_seeds():
    tok_a = BPETokenizer.train(SAMPLE * 3, vocab_size=70)
    tok_b = BPETokenizer.train(SAMPLE * 3, vocab_size=70)
    assert tok_a.merges == tok_b.merges and tok_a.tokens == tok_b.tokens
    # Load the module file alone (it needs no package: a child process starts in a moment).
    module = Path(__file__).resolve().parents[1] / "lessons_lib" / "tokenizers.py"
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('tok', sys.argv[1])\n"
        "m = importlib.util.module_from_spec(spec)\n"
        "sys.modules['tok'] = m\n"
        "spec.loader.exec_module(m)\n"
        "print(m.BPETokenizer.train(sys.stdin.read(), vocab_size=70).merges)"
    )
    outs = set()
    for seed in ("1", "2", "3"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        run = subprocess.run(
            [sys.executable, "-c", code, str(module)],
            input=SAMPLE * 3,
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        outs.add(run.stdout)
    assert outs == {repr(tok_a.merges) + "\n"}


def test_with_merges_truncates_training():
    tok = BPETokenizer.train("aaabdaaabac", vocab_size=100, min_frequency=1)
    first2 = tok.with_merges(2)
    assert (
        first2.merges == tok.merges[:2] and first2.merge_counts == [4, 2] and first2.vocab_size == 6
    )
    assert tok.with_merges(0).tokenize("aab") == ["a", "a", "b"]
    with pytest.raises(ValueError, match=r"0\.\.7"):
        tok.with_merges(8)


# ------------------------------------------------------------------------------------------------
# padding
def test_pad_and_truncate():
    ids, mask = pad_and_truncate([[5, 6, 7], [8]], max_len=2, pad_id=0)
    assert ids.tolist() == [[5, 6], [8, 0]] and mask.tolist() == [[True, True], [True, False]]
    assert ids.dtype == np.int32 and mask.dtype == bool
    ids, mask = pad_and_truncate([[5, 6, 7], [8]], pad_id=9)  # max_len=None: pad to the longest
    assert ids.tolist() == [[5, 6, 7], [8, 9, 9]] and mask.tolist() == [
        [True] * 3,
        [True, False, False],
    ]
    ids, mask = pad_and_truncate([[5, 6, 7], [8]], max_len=4, pad_id=0, padding_side="left")
    assert ids.tolist() == [[0, 5, 6, 7], [0, 0, 0, 8]] and mask.tolist() == [
        [False, True, True, True],
        [False, False, False, True],
    ]
    ids, _ = pad_and_truncate([[5, 6, 7], [8]], max_len=2, pad_id=0, truncation_side="left")
    assert ids.tolist() == [[6, 7], [8, 0]]
    ids, mask = pad_and_truncate([[], np.array([3, 4])], max_len=3, pad_id=1)
    assert ids.tolist() == [[1, 1, 1], [3, 4, 1]] and mask.sum() == 2


def test_pad_and_truncate_bad_inputs():
    with pytest.raises(TypeError, match="flat list of ints"):
        pad_and_truncate([1, 2, 3], max_len=4, pad_id=0)
    with pytest.raises(ValueError, match="empty batch"):
        pad_and_truncate([], max_len=4, pad_id=0)
    with pytest.raises(ValueError, match="max_len must be a positive integer, got 0"):
        pad_and_truncate([[1]], max_len=0, pad_id=0)
    with pytest.raises(ValueError, match="padding_side must be 'left' or 'right', got 'middle'"):
        pad_and_truncate([[1]], max_len=2, pad_id=0, padding_side="middle")
    with pytest.raises(ValueError, match="pad_id"):
        pad_and_truncate([[1]], max_len=2, pad_id=-1)
    with pytest.raises(TypeError, match=r"sequences\[1\] must hold integer ids, got 2.5"):
        pad_and_truncate([[1], [2.5]], max_len=2, pad_id=0)
    with pytest.raises(TypeError, match="got str"):
        pad_and_truncate("abc", max_len=2, pad_id=0)


def test_encode_texts_is_cls_then_tokens_truncated_and_padded():
    """Row i = [CLS] + encode(text i), cut to max_len (the [CLS] stays), padded with [PAD]."""
    tok = BPETokenizer.train(
        "free prize call now\nok see you later\n" * 3,
        vocab_size=30,
        special_tokens=("[PAD]", "[UNK]", "[CLS]", "[MASK]"),
        unk_token="[UNK]",
    )
    pad, cls = tok.token_to_id("[PAD]"), tok.token_to_id("[CLS]")
    texts = ["free prize call now", "ok", "", "qq"]  # "q" is unknown: [UNK]
    ids, mask = encode_texts(tok, texts, max_len=6)
    assert ids.shape == mask.shape == (4, 6) and ids.dtype == np.int32 and mask.dtype == bool
    for row, m, text in zip(ids, mask, texts):
        expected = ([cls] + tok.encode(text))[:6]
        assert row[: len(expected)].tolist() == expected
        assert np.all(row[len(expected) :] == pad)
        assert m.tolist() == [True] * len(expected) + [False] * (6 - len(expected))
    assert ids[2].tolist() == [cls] + [pad] * 5  # an empty text is [CLS] alone
    assert ids[3, 1] == tok.token_to_id("[UNK]")
    short, _ = encode_texts(tok, texts[:1], max_len=2)  # truncation keeps [CLS] and the start
    assert short.tolist() == [[cls, tok.encode(texts[0])[0]]]
    plain, _ = encode_texts(tok, ["ok"], max_len=3, cls_token=None)
    assert plain.tolist() == [tok.encode("ok") + [pad] * (3 - len(tok.encode("ok")))]
    same, same_mask = pad_and_truncate(
        [[cls] + tok.encode(t) for t in texts], max_len=6, pad_id=pad
    )  # the same as pad_and_truncate of the rows
    assert np.array_equal(same, ids) and np.array_equal(same_mask, mask)


def test_encode_texts_bad_inputs():
    tok = CharTokenizer.from_text("abc", special_tokens=("[PAD]", "[CLS]"))
    with pytest.raises(TypeError, match="single str; wrap it as \\[text\\]"):
        encode_texts(tok, "abc", max_len=4)
    with pytest.raises(TypeError, match="texts must hold strings, got int 5 at position 1"):
        encode_texts(tok, ["ab", 5], max_len=4)
    with pytest.raises(TypeError, match="got bytes"):
        encode_texts(tok, [b"ab"], max_len=4)
    with pytest.raises(ValueError, match="empty batch"):
        encode_texts(tok, [], max_len=4)
    with pytest.raises(ValueError, match="max_len must be a positive integer, got 0"):
        encode_texts(tok, ["a"], max_len=0)
    with pytest.raises(TypeError, match="BPETokenizer or CharTokenizer, got dict"):
        encode_texts({"a": 1}, ["a"], max_len=4)
    no_cls = CharTokenizer.from_text("abc", special_tokens=("[PAD]",))
    with pytest.raises(
        ValueError, match="no special token '\\[CLS\\]'.*include \\('\\[PAD\\]', '\\[CLS\\]'\\)"
    ):
        encode_texts(no_cls, ["a"], max_len=4)
    assert encode_texts(no_cls, ["a"], max_len=2, cls_token=None)[0].tolist() == [[1, 0]]
    with pytest.raises(ValueError, match="no special token '\\[PAD\\]'"):
        encode_texts(CharTokenizer.from_text("abc"), ["a"], max_len=4, cls_token=None)
    with pytest.raises(ValueError, match="not in the vocabulary"):  # no [UNK]: unknown is an error
        encode_texts(tok, ["abz"], max_len=4)


# ------------------------------------------------------------------------------------------------
# bad inputs
@pytest.mark.parametrize(
    "build", [CharTokenizer.from_text, lambda t: BPETokenizer.train(t, vocab_size=10)]
)
@pytest.mark.parametrize(
    "bad, type_name", [(b"abc", "bytes"), (None, "NoneType"), (["a", "b"], "list")]
)
def test_non_str_text_is_a_type_error(build, bad, type_name):
    with pytest.raises(TypeError, match=f"text must be a str, got {type_name}"):
        build(bad)


@pytest.mark.parametrize(
    "tok", [CharTokenizer.from_text("abcd"), BPETokenizer.train("abcabc", vocab_size=4)]
)
def test_encode_decode_bad_inputs(tok):
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        tok.encode(b"abc")
    with pytest.raises(TypeError, match="text must be a str, got NoneType"):
        tok.encode(None)
    with pytest.raises(ValueError, match=r"id 7 at position 1.*valid ids are 0\.\.3"):
        tok.decode([0, 7])
    with pytest.raises(ValueError, match=r"id -1 at position 0"):
        tok.decode([-1])
    with pytest.raises(TypeError, match="integer ids, got 1.0"):
        tok.decode([1.0])
    with pytest.raises(TypeError, match="integer ids, got True"):
        tok.decode([True])
    with pytest.raises(TypeError, match="dtype float32"):
        tok.decode(np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match=r"1-D.*shape \(2, 2\)"):
        tok.decode(np.zeros((2, 2), dtype=np.int32))
    with pytest.raises(TypeError, match="got str"):
        tok.decode("abc")


def test_building_bad_inputs():
    for build in (CharTokenizer.from_text, lambda t: BPETokenizer.train(t, vocab_size=10)):
        with pytest.raises(ValueError, match="non-empty"):
            build("")
    with pytest.raises(
        ValueError,
        match=r"vocab_size=3 is smaller than the base vocabulary: 4 distinct characters "
        r"\+ 1 special tokens = 5",
    ):
        BPETokenizer.train("abcd", vocab_size=3, special_tokens=("<pad>",))
    for bad in (0, -5, True, 2.5, "300"):
        with pytest.raises(ValueError, match="vocab_size must be a positive integer"):
            BPETokenizer.train("abcd", vocab_size=bad)
    with pytest.raises(
        TypeError, match=r"special_tokens must be a tuple of strings.*got str '<pad>'"
    ):
        CharTokenizer.from_text("abc", special_tokens="<pad>")
    with pytest.raises(ValueError, match="must be distinct"):
        BPETokenizer.train("abc", vocab_size=10, special_tokens=("<pad>", "<pad>"))
    with pytest.raises(ValueError, match=r"unk_token '<unk>' must be one of the special tokens"):
        CharTokenizer.from_text("abc", unk_token="<unk>")
    with pytest.raises(ValueError, match="also ordinary characters"):
        CharTokenizer("abc|", special_tokens=("|",))
    with pytest.raises(ValueError, match="nothing but special tokens"):
        BPETokenizer.train("<pad><pad>", vocab_size=10, special_tokens=("<pad>",))
    with pytest.raises(ValueError, match=r"merges\[1\] = \('ab', 'x'\)"):
        BPETokenizer("abc", [("a", "b"), ("ab", "x")])
    with pytest.raises(ValueError, match="token of this vocabulary"):
        CharTokenizer.from_text("abc").token_to_id("<pad>")
