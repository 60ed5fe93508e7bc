"""Tests for lessons_lib.bleu: BLEU by hand against numbers worked out on paper and against
sacreBLEU (sentence and corpus, with and without smoothing, several references), the 13a
tokenizer against sacreBLEU's, and the corpus wrappers."""

from __future__ import annotations

import math
import random
import subprocess
import sys

import pytest
import sacrebleu
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

import lessons_lib
from lessons_lib import data
from lessons_lib.bleu import (
    BleuStatistics,
    bleu_score,
    bleu_statistics,
    corpus_bleu,
    corpus_chrf,
    sentence_bleu,
    tokenize_13a,
)

TRICKY = [
    "¿Dónde está el gato?",
    "¡Hola, Tom!",
    "Cuesta 3.5 euros, o 1,000 pesos.",
    "Los años 1990-2000 fueron... raros.",
    'Dijo: "no" &amp; se fue &lt;hoy&gt;.',
    "Tom's dog isn't here.",
    "  espacios   de   más  ",
    "línea\ncortada y pa-\nlabra",
    "e-mail (correo) [sic] {x} a/b #1 $5 %7 ^ _ ` | ~ @ ;",
    "",
]


def test_tokenize_13a_matches_sacrebleu():
    ref = Tokenizer13a()
    for text in TRICKY:
        assert tokenize_13a(text) == ref(text.rstrip()).split(), text
    assert tokenize_13a("¿Dónde está?") == ["¿Dónde", "está", "?"]
    assert tokenize_13a("3.5, 7.") == ["3.5", ",", "7", "."]
    with pytest.raises(TypeError, match="text must be a str"):
        tokenize_13a(["a"])


def _real_spanish() -> list[str]:
    path = data.cache_path(data.SPA_ENG)
    if not path.is_file():
        pytest.skip(f"the Spanish-English pairs are not cached at {path} (CI seeds the cache)")
    return [line.split("\t")[1] for line in path.read_text("utf-8").split("\n")[:20000] if line]


def test_tokenize_13a_matches_sacrebleu_on_the_data():
    ref = Tokenizer13a()
    for text in _real_spanish():
        assert tokenize_13a(text) == ref(text).split(), text


def test_sentence_bleu_by_hand():
    """hyp "el gato está en la mesa" (6 tokens) against "el gato está sobre la mesa" (6) and
    "hay un gato en la mesa" (6): clipped matches per order 6/6, 4/5 (el gato, gato está, en la,
    la mesa), 2/4 (el gato está, en la mesa), 0/3; c = r = 6, BP = 1."""
    hyp = "el gato está en la mesa"
    refs = ["el gato está sobre la mesa", "hay un gato en la mesa"]
    stats = bleu_statistics(hyp, refs)
    assert stats == BleuStatistics(6, 6, (6, 4, 2, 0), (6, 5, 4, 3))
    assert sentence_bleu(hyp, refs).score == 0.0  # no 4-gram match: unsmoothed BLEU is 0
    exp = sentence_bleu(hyp, refs, smooth="exp")  # p₄ = 1 / (2 · 3)
    expected = 100 * math.exp(
        (math.log(1) + math.log(4 / 5) + math.log(2 / 4) + math.log(1 / 6)) / 4
    )
    assert exp.score == pytest.approx(expected)
    assert exp.precisions == pytest.approx((100, 80, 50, 100 / 6)) and exp.bp == 1.0
    # clipping: "the" may count only as often as in the reference
    clipped = bleu_statistics("the the the the", ["the cat"], max_order=1)
    assert clipped.matches == (1,) and clipped.totals == (4,)
    # brevity: c = 2 against the closest reference length r = 3 (not 7)
    short = sentence_bleu("el gato", ["el gato negro", "el gato negro duerme en la silla"], 2)
    assert short.statistics.ref_len == 3
    assert short.bp == pytest.approx(math.exp(1 - 3 / 2))
    assert short.score == pytest.approx(100 * math.exp(1 - 3 / 2))  # p₁ = p₂ = 1
    tie = bleu_statistics("a b c", ["a b", "a b c d"])  # |3 − 2| = |3 − 4|: the shorter wins
    assert tie.ref_len == 2
    perfect = sentence_bleu("Tom no está aquí.", ["Tom no está aquí."])
    assert perfect.score == pytest.approx(100.0)


def _random_pairs(n: int, seed: int = 0):
    words = 'el gato la casa . , ¿ ? ¡ ! 3.5 1,000 - 7-8 & &amp; " de que no sí Tom'.split()
    rng = random.Random(seed)
    for _ in range(n):
        hyp = " ".join(rng.choice(words) for _ in range(rng.randint(0, 9)))
        refs = [
            " ".join(rng.choice(words) for _ in range(rng.randint(1, 9)))
            for _ in range(rng.randint(1, 3))
        ]
        yield hyp, refs


def test_sentence_bleu_equals_sacrebleu():
    for hyp, refs in _random_pairs(1500):
        # Papineni's formula on one sentence = sacreBLEU's corpus BLEU of that sentence, unsmoothed
        ours = sentence_bleu(hyp, refs)
        theirs = sacrebleu.corpus_bleu([hyp], [[r] for r in refs], smooth_method="none")
        assert ours.score == pytest.approx(theirs.score, abs=1e-9)
        assert ours.bp == pytest.approx(theirs.bp, abs=1e-12)
        # sacrebleu.sentence_bleu's defaults: exp smoothing, effective order
        ours = sentence_bleu(hyp, refs, smooth="exp", effective_order=True)
        assert ours.score == pytest.approx(sacrebleu.sentence_bleu(hyp, refs).score, abs=1e-9)
        ours = sentence_bleu(hyp, refs, effective_order=True)
        theirs = sacrebleu.sentence_bleu(hyp, refs, smooth_method="none")
        assert ours.score == pytest.approx(theirs.score, abs=1e-9)


def test_corpus_bleu_adds_the_counts_and_matches_sacrebleu():
    pairs = list(_random_pairs(300, seed=1))
    hyps = [h for h, _ in pairs]
    refs = [r for _, r in pairs]  # 1 to 3 references per sentence
    total = sum(
        (bleu_statistics(h, r) for h, r in pairs), start=BleuStatistics(0, 0, (0,) * 4, (0,) * 4)
    )
    by_hand = bleu_score(total, smooth="exp")
    got = corpus_bleu(hyps, refs)
    assert got.score == pytest.approx(by_hand.score, abs=1e-9)
    assert got.signature.startswith("nrefs:var|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert str(got).startswith("BLEU|nrefs:var|") and f"= {got.score:.2f} " in str(got)
    # not the mean of the sentence scores
    mean = sum(sentence_bleu(h, r, smooth="exp").score for h, r in pairs) / len(pairs)
    assert abs(mean - got.score) > 0.1


def test_corpus_chrf_with_several_references():
    hyps = ["el gato está en la mesa", "Tom no está aquí."]
    refs = [["el gato está sobre la mesa", "hay un gato en la mesa"], ["Tom no está aquí."]]
    got = corpus_chrf(hyps, refs)
    theirs = sacrebleu.corpus_chrf(hyps, [[r[0] for r in refs], [refs[0][1], None]])
    assert got.score == pytest.approx(theirs.score, abs=1e-9)
    assert got.signature.startswith("nrefs:var|case:mixed|eff:yes|nc:6|nw:0|space:no|version:")
    assert corpus_chrf(["Tom no está aquí."], [["Tom no está aquí."]]).score == pytest.approx(100)
    assert corpus_bleu(["Tom no está aquí."], [["Tom no está aquí."]]).score == pytest.approx(100)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: sentence_bleu(3, ["a"]), TypeError, "hypothesis must be a str"),
        (lambda: sentence_bleu("a", "a"), TypeError, "single str"),
        (lambda: sentence_bleu("a", []), ValueError, "non-empty list"),
        (lambda: sentence_bleu("a", [None]), TypeError, "must hold strings"),
        (lambda: sentence_bleu("a", ["a"], max_order=0), ValueError, "max_order"),
        (lambda: sentence_bleu("a", ["a"], smooth="add-k"), ValueError, "smooth must be"),
        (lambda: corpus_bleu(["a", "b"], [["a"]]), ValueError, "2 hypotheses and 1 reference"),
        (lambda: corpus_bleu([], []), ValueError, "empty"),
        (lambda: corpus_bleu("a", [["a"]]), TypeError, "list of strings"),
        (lambda: corpus_chrf(["a"], [[]]), ValueError, r"references\[0\] must be a non-empty"),
        (lambda: corpus_chrf([1], [["a"]]), TypeError, r"hypotheses\[0\] must be a str"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_bleu_module_loads_neither_tensorflow_nor_sacrebleu():
    code = (
        "import lessons_lib.bleu, sys\n"
        "print(sorted({'tensorflow', 'keras', 'sacrebleu'} & set(sys.modules)))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_exports():
    for name in (
        "tokenize_13a",
        "BleuStatistics",
        "BleuScore",
        "CorpusScore",
        "bleu_statistics",
        "bleu_score",
        "sentence_bleu",
        "corpus_bleu",
        "corpus_chrf",
    ):
        assert getattr(lessons_lib, name) is getattr(lessons_lib.bleu, name)
