"""BLEU by hand on one sentence, and sacreBLEU's corpus BLEU and chrF (lesson 13).

BLEU (Papineni, Roukos, Ward & Zhu, 2002, "BLEU: a Method for Automatic Evaluation of Machine
Translation", ACL) compares a hypothesis with one or more references through word n-grams, after
the same tokenization of both (here mteval-v13a's, `tokenize_13a`, the one sacreBLEU and WMT use).
For n = 1 … N (N = 4):

    matches_n = ∑_{g ∈ n-grams(hyp)} min(count_hyp(g), max_r count_r(g))      (clipped counts)
    total_n   = number of n-grams of the hypothesis
    p_n       = matches_n / total_n                                          (modified precision)

Clipping stops "the the the the" from scoring 4/4 against "the cat": each n-gram counts at most as
often as in the reference that holds it most. Precision alone would reward very short hypotheses,
so BLEU multiplies by the brevity penalty, with c the hypothesis length and r the reference length
closest to c (the shorter one on a tie):

    BP   = 1 if c ≥ r,  exp(1 − r / c) if 0 < c < r,  0 if c = 0
    BLEU = BP · exp( (1/N) ∑_n log p_n ) · 100

A single p_n = 0 makes BLEU 0, which is common for one short sentence: sentence-level BLEU is then
usually *smoothed*. ``smooth="exp"`` (sacreBLEU's default for `sacrebleu.sentence_bleu`; the NIST
mteval smoothing, method 3 of Chen & Cherry, 2014) replaces the k-th zero precision (k = 1, 2, …)
by 1 / (2^k · total_n); ``effective_order`` averages only over the orders the hypothesis has
(n ≤ c). Over a corpus, BLEU adds the counts of all sentences first and divides once (not a mean
of sentence scores): `BleuStatistics` add up with ``+``.

`corpus_bleu` and `corpus_chrf` are thin wrappers over sacreBLEU (Post, 2018, "A Call for
Clarity in Reporting BLEU Scores", WMT), the field's reference implementation, on detokenized text
with any number of references per sentence; they return the score with its signature (the
settings that make two scores comparable). chrF (Popović, 2015) is the F-score (β = 2) of
character n-grams (n ≤ 6): it gives partial credit to a word with the right stem and the wrong
ending, common in Spanish.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

__all__ = [
    "tokenize_13a",
    "BleuStatistics",
    "BleuScore",
    "bleu_statistics",
    "bleu_score",
    "sentence_bleu",
    "CorpusScore",
    "corpus_bleu",
    "corpus_chrf",
]

# mteval-v13a's tokenization, as sacreBLEU writes it (tokenizers/tokenizer_13a.py and
# tokenizer_re.py): split off punctuation and symbols; periods and commas unless between digits;
# a dash after a digit.
_13A = (
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
)


def tokenize_13a(text: str) -> list[str]:
    """The words BLEU counts: mteval-v13a's tokenization (WMT's and sacreBLEU's default).

    Punctuation and symbols become tokens of their own (``"¿Dónde está?"`` → ``['¿Dónde',
    'está', '?']``: ``¿`` and ``¡`` are not ASCII, so they stay attached); periods and commas only
    when not between digits (``3.5`` stays one token); HTML entities ``&quot; &amp; &lt; &gt;``
    are unescaped first. Lesson 13 §7.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__} {text!r:.60}")
    line = text.rstrip().replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        for entity, char in (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")):
            line = line.replace(entity, char)
    line = f" {line} "
    for pattern, replacement in _13A:
        line = pattern.sub(replacement, line)
    return line.split()


@dataclasses.dataclass(frozen=True)
class BleuStatistics:
    """BLEU's sufficient statistics for one sentence or a corpus (lesson 13 §7).

    Attributes:
        hyp_len: c, the hypothesis length in tokens (summed over a corpus).
        ref_len: r, the closest reference length (summed over a corpus).
        matches: clipped n-gram matches for n = 1 … N.
        totals: the hypothesis's n-gram counts for n = 1 … N.

    Statistics add up with ``+`` (corpus BLEU adds the counts, then computes one score).
    """

    hyp_len: int
    ref_len: int
    matches: tuple[int, ...]
    totals: tuple[int, ...]

    def __add__(self, other: "BleuStatistics") -> "BleuStatistics":
        if not isinstance(other, BleuStatistics) or len(other.matches) != len(self.matches):
            return NotImplemented
        return BleuStatistics(
            self.hyp_len + other.hyp_len,
            self.ref_len + other.ref_len,
            tuple(a + b for a, b in zip(self.matches, other.matches)),
            tuple(a + b for a, b in zip(self.totals, other.totals)),
        )


@dataclasses.dataclass(frozen=True)
class BleuScore:
    """A BLEU score and its parts (lesson 13 §7).

    Attributes:
        score: BLEU × 100, in [0, 100] (sacreBLEU's scale).
        precisions: p_n × 100 for n = 1 … N (smoothed where smoothing applied).
        bp: the brevity penalty.
        order: the orders averaged (N, or fewer with ``effective_order``).
        statistics: the `BleuStatistics` it was computed from.
    """

    score: float
    precisions: tuple[float, ...]
    bp: float
    order: int
    statistics: BleuStatistics


def _ngrams(tokens: list[str], max_order: int) -> Counter:
    return Counter(
        tuple(tokens[i : i + n])
        for n in range(1, max_order + 1)
        for i in range(len(tokens) - n + 1)
    )


def _check_refs(references: Any, name: str = "references") -> list[str]:
    if isinstance(references, str):
        raise TypeError(
            f"{name} must be a list of reference strings, got a single str; wrap it as [reference]"
        )
    if not isinstance(references, Sequence) or len(references) == 0:
        raise ValueError(
            f"{name} must be a non-empty list of reference strings, got {references!r}"
        )
    for r in references:
        if not isinstance(r, str):
            raise TypeError(f"{name} must hold strings, got {type(r).__name__} {r!r:.60}")
    return list(references)


def _check_order(max_order: Any) -> int:
    if isinstance(max_order, bool) or not isinstance(max_order, int) or max_order < 1:
        raise ValueError(f"max_order must be a positive int, got {max_order!r}")
    return max_order


def bleu_statistics(
    hypothesis: str, references: Sequence[str], max_order: int = 4
) -> BleuStatistics:
    """Clipped n-gram matches, n-gram totals and the lengths c and r of one sentence.

    Both sides are tokenized with `tokenize_13a`; matches_n = ∑_g min(count_hyp(g), max_r
    count_r(g)); r is the reference length closest to c (the shorter on a tie). Lesson 13 §7.
    """
    if not isinstance(hypothesis, str):
        raise TypeError(f"hypothesis must be a str, got {type(hypothesis).__name__}")
    references = _check_refs(references)
    max_order = _check_order(max_order)
    hyp = tokenize_13a(hypothesis)
    hyp_counts = _ngrams(hyp, max_order)
    best: Counter = Counter()
    ref_lens = []
    for ref in references:
        tokens = tokenize_13a(ref)
        ref_lens.append(len(tokens))
        for g, n in _ngrams(tokens, max_order).items():
            best[g] = max(best[g], n)
    c = len(hyp)
    r = min(ref_lens, key=lambda length: (abs(length - c), length))
    matches, totals = [0] * max_order, [0] * max_order
    for g, n in hyp_counts.items():
        totals[len(g) - 1] += n
        matches[len(g) - 1] += min(n, best[g])
    return BleuStatistics(c, r, tuple(matches), tuple(totals))


def bleu_score(
    statistics: BleuStatistics, smooth: str = "none", effective_order: bool = False
) -> BleuScore:
    """BLEU from its statistics: BP · exp((1/N) ∑ log p_n) · 100 (the module docstring).

    ``smooth``: ``"none"`` (Papineni et al.; any p_n = 0 gives 0) or ``"exp"`` (the k-th zero
    precision becomes 1 / (2^k · total_n)). ``effective_order``: average over the orders n with
    total_n > 0 only. Lesson 13 §7.
    """
    if not isinstance(statistics, BleuStatistics):
        raise TypeError(f"statistics must be a BleuStatistics, got {type(statistics).__name__}")
    if smooth not in ("none", "exp"):
        raise ValueError(f"smooth must be 'none' or 'exp', got {smooth!r}")
    c, r = statistics.hyp_len, statistics.ref_len
    max_order = len(statistics.matches)
    bp = 1.0 if c >= r else (math.exp(1 - r / c) if c > 0 else 0.0)
    precisions = [0.0] * max_order
    if not any(statistics.matches):
        return BleuScore(0.0, tuple(precisions), bp, max_order, statistics)
    order, zeros = max_order, 0
    for n in range(1, max_order + 1):
        matches, total = statistics.matches[n - 1], statistics.totals[n - 1]
        if total == 0:
            break  # the hypothesis has no n-grams this long (nor longer)
        if effective_order:
            order = n
        if matches == 0:
            if smooth == "exp":
                zeros += 1
                precisions[n - 1] = 1.0 / (2**zeros * total)
        else:
            precisions[n - 1] = matches / total
    used = precisions[:order]
    if min(used) == 0.0:
        score = 0.0
    else:
        score = bp * math.exp(sum(math.log(p) for p in used) / order) * 100
    return BleuScore(score, tuple(100 * p for p in precisions), bp, order, statistics)


def sentence_bleu(
    hypothesis: str,
    references: Sequence[str],
    max_order: int = 4,
    smooth: str = "none",
    effective_order: bool = False,
) -> BleuScore:
    """BLEU of one hypothesis against its references, by hand (the module docstring).

    The defaults are Papineni et al.'s formula without smoothing, which equals sacreBLEU's corpus
    BLEU of a one-sentence corpus with ``smooth_method="none"``; ``smooth="exp",
    effective_order=True`` reproduces `sacrebleu.sentence_bleu`'s defaults. Derived in lesson 13
    §7.
    """
    return bleu_score(bleu_statistics(hypothesis, references, max_order), smooth, effective_order)


# --------------------------------------------------------------------------------------------------
# sacreBLEU: the corpus scores that get reported
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CorpusScore:
    """A corpus score from sacreBLEU (lesson 13 §7).

    Attributes:
        score: the score in [0, 100].
        signature: sacreBLEU's signature of the settings, e.g.
            ``"nrefs:var|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"``: quote it with
            the score.
        result: sacreBLEU's own score object (``precisions``, ``bp``, ... for BLEU).
    """

    score: float
    signature: str
    result: Any

    def __str__(self) -> str:
        return self.result.format(signature=self.signature)


def _streams(hypotheses: Any, references: Any) -> tuple[list[str], list[list[str | None]]]:
    """Hypotheses and per-sentence reference lists → sacreBLEU's reference streams (None where a
    sentence has fewer references than the most)."""
    if isinstance(hypotheses, str) or not isinstance(hypotheses, Sequence):
        raise TypeError(f"hypotheses must be a list of strings, got {type(hypotheses).__name__}")
    if isinstance(references, str) or not isinstance(references, Sequence):
        raise TypeError(
            "references must hold one list of reference strings per hypothesis, got "
            f"{type(references).__name__}"
        )
    if len(hypotheses) == 0:
        raise ValueError("hypotheses is empty: there is nothing to score")
    if len(hypotheses) != len(references):
        raise ValueError(
            f"one list of references per hypothesis: got {len(hypotheses)} hypotheses and "
            f"{len(references)} reference lists"
        )
    for i, h in enumerate(hypotheses):
        if not isinstance(h, str):
            raise TypeError(f"hypotheses[{i}] must be a str, got {type(h).__name__} {h!r:.60}")
    refs = [_check_refs(r, f"references[{i}]") for i, r in enumerate(references)]
    width = max(len(r) for r in refs)
    streams = [[r[j] if j < len(r) else None for r in refs] for j in range(width)]
    return list(hypotheses), streams


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> CorpusScore:
    """sacreBLEU's corpus BLEU (its defaults: 13a tokenization, mixed case, exp smoothing) of
    detokenized hypotheses, each with its own list of references (1 or more). Lesson 13 §7."""
    from sacrebleu.metrics import BLEU

    hyps, streams = _streams(hypotheses, references)
    metric = BLEU()
    result = metric.corpus_score(hyps, streams)
    return CorpusScore(float(result.score), str(metric.get_signature()), result)


def corpus_chrf(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> CorpusScore:
    """sacreBLEU's corpus chrF (character 6-grams, β = 2) of detokenized hypotheses, each with
    its own list of references. Lesson 13 §7."""
    from sacrebleu.metrics import CHRF

    hyps, streams = _streams(hypotheses, references)
    metric = CHRF()
    result = metric.corpus_score(hyps, streams)
    return CorpusScore(float(result.score), str(metric.get_signature()), result)
