"""Extractive question answering: point at the answer's span in the text (lesson 12).

BERT's framing of SQuAD (Devlin et al., 2019, sec. 4.2), on bAbI task 1 (Weston et al., 2015):
question and story share one sequence,

    [CLS] question [SEP] story [SEP]        (padded on the right with <pad>)

an `Encoder` reads it, and a Dense(2) head turns every token's hidden vector hₜ into a start and
an end logit, sₜ = w_sᵀhₜ + b_s and eₜ = w_eᵀhₜ + b_e. Only story tokens may hold the answer: the
other positions (padding, [CLS], the question, the [SEP]s) get the logit −10⁹ before the softmax,
so their probability is 0 (exp(−10⁹) underflows to 0 in float32):

    p(start = i) = softmax(s)ᵢ,    p(end = j) = softmax(e)ⱼ,
    loss = −log p(start = i*) − log p(end = j*)           (two sparse cross-entropies)

Span decoding (lesson 12 §3) takes the span with the highest score among the allowed ones,

    (î, ĵ) = argmax_{i ≤ j ≤ i + max_answer_len − 1, tokens i..j all in the story} sᵢ + eⱼ,

which is the most probable span when start and end are modelled independently (log p(i) + log p(j)
= sᵢ + eⱼ − const), restricted to well-formed spans. `decode_spans` computes it for a batch
without a Python loop over spans: it scores the band of T × max_answer_len (start, length) pairs.

The answer is scored with SQuAD's metrics (Rajpurkar et al., 2016; lesson 12 §4): exact match
(the normalised strings are equal) and token F1 (the harmonic mean of precision and recall of the
normalised answer's word bag). `evidence_share` asks whether the model reads the sentence that bAbI
marks as the answer's support (lesson 12 §7). `python -m lessons_lib.qa` trains the checkpoint the
lesson ships, ``checkpoints/babi_qa1_span.weights.h5`` (lesson 12 §5).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import string
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lessons_lib._backend import keras, ops, tf
from lessons_lib._validate import bool_mask, describe, non_negative_float, positive_int
from lessons_lib.encoder import Encoder
from lessons_lib.tokenizers import BPETokenizer

__all__ = [
    "QA_SPECIAL_TOKENS",
    "NEG_LOGIT",
    "QAConfig",
    "BABI_QA",
    "BABI_QA_CHECKPOINT",
    "QA_PLATEAU_JSON",
    "QAEncoding",
    "train_qa_tokenizer",
    "encode_qa",
    "SpanQA",
    "decode_spans",
    "predict_spans",
    "span_texts",
    "normalize_answer",
    "exact_match",
    "token_f1",
    "qa_scores",
    "SpanEvaluation",
    "evidence_share",
    "compile_span_model",
    "babi_rule_answers",
    "train_span_model",
    "save_qa_checkpoint",
    "load_qa_checkpoint",
]

#: The special tokens of the QA tokenizer, in id order: padding is id 0.
QA_SPECIAL_TOKENS = ("<pad>", "[CLS]", "[SEP]")
#: The logit given to positions that cannot hold the answer (BERT uses −10⁴; float32 takes −10⁹).
NEG_LOGIT = -1e9

ROOT = Path(__file__).resolve().parents[1]
#: The checkpoint lesson 12 loads, written by ``python -m lessons_lib.qa``.
BABI_QA_CHECKPOINT = ROOT / "checkpoints" / "babi_qa1_span.weights.h5"
#: More seeds of the same recipe, written by ``python benchmarks/qa_plateau.py`` (lesson 12 §5).
QA_PLATEAU_JSON = ROOT / "benchmarks" / "results" / "qa_plateau.json"


# --------------------------------------------------------------------------------------------------
# Encoding: records → [CLS] question [SEP] story [SEP]
# --------------------------------------------------------------------------------------------------
def _field(record: Any, name: str, index: int) -> Any:
    """``record.name`` or ``record[name]``: records may be dataclasses, named tuples or dicts."""
    if isinstance(record, Mapping):
        if name not in record:
            raise ValueError(f"records[{index}] has no {name!r}: got keys {sorted(record)}")
        return record[name]
    if not hasattr(record, name):
        raise TypeError(
            f"records[{index}] must have story, question and answer (a bAbI record or a dict), "
            f"got {describe(record)}"
        )
    return getattr(record, name)


def _text(value: Any, what: str) -> str:
    """A text, whitespace-normalised (bAbI has a few double spaces); refuse non-strings."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {describe(value)}")
    return " ".join(value.split())


def _piece(text: str) -> str:
    """How one text enters the sequence: with a leading space, as every word after the first of a
    running text has one (so "Mary" in a question and in a story is the same token)."""
    return " " + text


def train_qa_tokenizer(records: Sequence[Any], vocab_size: int = 64) -> BPETokenizer:
    """A BPE tokenizer (lesson 01 §4) learned from the questions and story sentences of
    ``records`` — pass the training split only, so that nothing of validation or test leaks in.

    Special tokens `QA_SPECIAL_TOKENS` get ids 0, 1, 2 (``<pad>`` is 0). Every question counts,
    and every story sentence once (a record whose story extends the previous record's adds only
    its new sentences). Lesson 12 §1.
    """
    records = _check_records(records)
    vocab_size = positive_int(vocab_size, "vocab_size")
    previous: tuple[str, ...] = ()
    pieces = []
    for i, r in enumerate(records):
        story = tuple(
            _text(s, f"records[{i}].story[{k}]") for k, s in enumerate(_field(r, "story", i))
        )
        pieces.append(_piece(_text(_field(r, "question", i), f"records[{i}].question")))
        # bAbI repeats a story's sentences for each later question: count the new ones only
        new = story[len(previous) :] if story[: len(previous)] == previous else story
        pieces.extend(_piece(s) for s in new)
        previous = story
    return BPETokenizer.train("".join(pieces), vocab_size, special_tokens=QA_SPECIAL_TOKENS)


def _check_records(records: Any) -> list[Any]:
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Sequence):
        raise TypeError(f"records must be a list of QA records, got {describe(records)}")
    if len(records) == 0:
        raise ValueError("records is an empty batch: give at least one QA record")
    return list(records)


@dataclasses.dataclass(frozen=True)
class QAEncoding:
    """A batch of encoded QA examples, all arrays ``[N, T]`` unless said otherwise (lesson 12 §1).

    Attributes:
        ids: token ids of ``[CLS] question [SEP] story [SEP] <pad>…`` (int32).
        padding_mask: True at real tokens (everything but ``<pad>``).
        answer_mask: True where the answer may be: the story's tokens only (not [CLS], the
            question, the [SEP]s or padding).
        start, end: ``[N]`` token indices of the answer's first and last token (inclusive), or −1
            for records without an answer.
        sentence_ids: the story sentence each token comes from (its index in the record's
            ``story``), −1 for every other token.
        question_mask: True at the question's tokens.
        supporting: per example, the indices (into ``story``) of the supporting sentences.
        dropped: ``[N]`` how many of the earliest story sentences were left out to fit ``max_len``.
    """

    ids: np.ndarray
    padding_mask: np.ndarray
    answer_mask: np.ndarray
    start: np.ndarray
    end: np.ndarray
    sentence_ids: np.ndarray
    question_mask: np.ndarray
    supporting: tuple[tuple[int, ...], ...]
    dropped: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def evidence_mask(self) -> np.ndarray:
        """True at the tokens of each example's supporting sentence(s) (lesson 12 §7)."""
        out = np.zeros(self.ids.shape, dtype=bool)
        for b, sup in enumerate(self.supporting):
            out[b] = np.isin(self.sentence_ids[b], sup)
        return out

    def inputs(self) -> dict[str, np.ndarray]:
        """What `SpanQA` is called with: ``{"ids", "padding_mask", "answer_mask"}``."""
        return {"ids": self.ids, "padding_mask": self.padding_mask, "answer_mask": self.answer_mask}

    def targets(self) -> dict[str, np.ndarray]:
        """The labels for ``fit``: ``{"start": [N], "end": [N]}``, keyed like `SpanQA`'s outputs."""
        if (self.start < 0).any():
            raise ValueError("some examples have no answer (start = -1): they cannot be trained on")
        return {"start": self.start, "end": self.end}

    def subset(self, index: Any) -> QAEncoding:
        """The examples ``index`` (a slice, or an array of indices / a boolean mask)."""
        idx = np.arange(len(self))[index]
        idx = np.atleast_1d(idx)
        fields = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            fields[f.name] = tuple(v[i] for i in idx) if f.name == "supporting" else v[idx]
        return QAEncoding(**fields)


def encode_qa(
    records: Sequence[Any],
    tokenizer: BPETokenizer,
    max_len: int,
    pad_to: int | None = None,
) -> QAEncoding:
    """Encode QA records as ``[CLS] question [SEP] story [SEP]`` plus the masks and the answer span.

    Lesson 12 §1 derives the layout and shows this code.

    Each record has ``story`` (a sequence of sentences), ``question``, ``answer`` (a str, or None
    for a question to answer) and optionally ``supporting`` (indices into ``story``). Every text
    is whitespace-normalised and enters with a leading space (`_piece`). The answer's span is the
    answer's tokens where they occur in the last supporting sentence that contains them (the
    supporting sentence *is* the evidence); without ``supporting``, their last occurrence in the
    story. A story too long for ``max_len`` loses its earliest sentences (``dropped`` counts
    them); an answer lost that way is an error.

    Args:
        records: the examples (e.g. ``load_babi()``'s lists).
        tokenizer: a `BPETokenizer` with the special tokens `QA_SPECIAL_TOKENS`.
        max_len: the context window (the model's ``max_len``): no sequence is longer.
        pad_to: the length T of the arrays (≤ ``max_len``); default: the longest sequence.

    Raises:
        TypeError: a text that is not a str, records that are not a list, a tokenizer that is not
            a `BPETokenizer`.
        ValueError: an empty batch; a tokenizer without the special tokens; a question (with its
            three special tokens and one story token) longer than ``max_len``; an answer that is
            not in the story (or not in its supporting sentence); a supporting index outside the
            story; ``pad_to`` outside [longest sequence, ``max_len``].
    """
    records = _check_records(records)
    if not isinstance(tokenizer, BPETokenizer):
        raise TypeError(f"tokenizer must be a lessons_lib.BPETokenizer, got {describe(tokenizer)}")
    if tuple(tokenizer.special_tokens[:3]) != QA_SPECIAL_TOKENS:
        raise ValueError(
            f"the tokenizer's first special tokens must be {QA_SPECIAL_TOKENS} (train it with "
            f"train_qa_tokenizer), got {tokenizer.special_tokens}"
        )
    max_len = positive_int(max_len, "max_len")
    pad_id, cls_id, sep_id = (tokenizer.token_to_id(t) for t in QA_SPECIAL_TOKENS)

    rows, answer_rows, sentence_rows, question_lens, spans, supports, dropped = (
        [],
        [],
        [],
        [],
        [],
        [],
        [],
    )
    for i, r in enumerate(records):
        question = _text(_field(r, "question", i), f"records[{i}].question")
        story_raw = _field(r, "story", i)
        if isinstance(story_raw, str) or not isinstance(story_raw, Sequence) or not story_raw:
            raise TypeError(
                f"records[{i}].story must be a non-empty sequence of sentences, "
                f"got {describe(story_raw)}"
            )
        story = [_text(s, f"records[{i}].story[{k}]") for k, s in enumerate(story_raw)]
        answer = _field(r, "answer", i) if _has(r, "answer") else None
        if answer is not None:
            answer = _text(answer, f"records[{i}].answer")
            if not answer:
                raise ValueError(f"records[{i}].answer is empty")
        supporting = tuple(_field(r, "supporting", i)) if _has(r, "supporting") else ()
        for s in supporting:
            if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
                raise TypeError(
                    f"records[{i}].supporting must hold sentence indices, got {supporting!r}"
                )
            if not 0 <= s < len(story):
                raise ValueError(
                    f"records[{i}].supporting = {supporting} points outside its story of "
                    f"{len(story)} sentences"
                )
        q_ids = tokenizer.encode(_piece(question))
        sents = [tokenizer.encode(_piece(s)) for s in story]
        room = max_len - len(q_ids) - 3  # [CLS] … [SEP] … [SEP]
        if room < 1:
            raise ValueError(
                f"records[{i}]: the question has {len(q_ids)} tokens; with [CLS] and two [SEP] "
                f"that leaves {room} of max_len={max_len} positions for the story (need >= 1): "
                f"question {question!r}"
            )
        first = len(sents)  # keep the latest sentences that fit
        used = 0
        while first > 0 and used + len(sents[first - 1]) <= room:
            first -= 1
            used += len(sents[first])
        span = (-1, -1)
        if answer is not None:
            span = _find_answer(tokenizer, i, story, sents, answer, supporting, first)
        offset = len(q_ids) + 2
        ids = [cls_id, *q_ids, sep_id]
        sentence_of = [-1] * len(ids)
        pos = {}
        for k in range(first, len(sents)):
            pos[k] = len(ids)
            ids.extend(sents[k])
            sentence_of.extend([k] * len(sents[k]))
        ids.append(sep_id)
        sentence_of.append(-1)
        if answer is not None:
            k, a, b = span
            span = (pos[k] + a, pos[k] + b)
        rows.append(ids)
        sentence_rows.append(sentence_of)
        answer_rows.append(offset)
        question_lens.append(len(q_ids))
        spans.append(span)
        supports.append(tuple(int(s) for s in supporting))
        dropped.append(first)

    longest = max(len(r) for r in rows)
    t = longest if pad_to is None else positive_int(pad_to, "pad_to")
    if not longest <= t <= max_len:
        raise ValueError(
            f"pad_to must be between the longest sequence ({longest}) and max_len ({max_len}), "
            f"got {pad_to}"
        )
    n = len(rows)
    ids = np.full((n, t), pad_id, dtype=np.int32)
    sentence_ids = np.full((n, t), -1, dtype=np.int32)
    question_mask = np.zeros((n, t), dtype=bool)
    for b, (row, sent, q_len) in enumerate(zip(rows, sentence_rows, question_lens)):
        ids[b, : len(row)] = row
        sentence_ids[b, : len(sent)] = sent
        question_mask[b, 1 : 1 + q_len] = True
    padding_mask = ids != pad_id
    start, end = (np.array(v, dtype=np.int32) for v in zip(*spans))
    return QAEncoding(
        ids=ids,
        padding_mask=padding_mask,
        answer_mask=sentence_ids >= 0,
        start=start,
        end=end,
        sentence_ids=sentence_ids,
        question_mask=question_mask,
        supporting=tuple(supports),
        dropped=np.array(dropped, dtype=np.int32),
    )


def _has(record: Any, name: str) -> bool:
    return name in record if isinstance(record, Mapping) else hasattr(record, name)


def _find_answer(
    tokenizer: BPETokenizer,
    i: int,
    story: list[str],
    sents: list[list[int]],
    answer: str,
    supporting: tuple[int, ...],
    first: int,
) -> tuple[int, int, int]:
    """(sentence k, first token, last token within the sentence) of the answer's tokens."""
    a_ids = tokenizer.encode(_piece(answer))

    def occurrence(k: int) -> int | None:  # the last start of a_ids in sentence k
        s = sents[k]
        for j in range(len(s) - len(a_ids), -1, -1):
            if s[j : j + len(a_ids)] == a_ids:
                return j
        return None

    candidates = list(reversed(supporting)) or list(range(len(sents) - 1, -1, -1))
    for k in candidates:
        j = occurrence(k)
        if j is not None:
            if k < first:
                raise ValueError(
                    f"records[{i}]: the answer {answer!r} is in story sentence {k}, but only "
                    f"sentences {first}.. fit into max_len: raise max_len"
                )
            return k, j, j + len(a_ids) - 1
    elsewhere = [k for k in range(len(sents)) if occurrence(k) is not None]
    where = (
        f"its supporting sentence(s) {supporting} ({[story[k] for k in supporting]})"
        if supporting
        else "the story"
    )
    extra = f"; it occurs in sentence(s) {elsewhere}" if elsewhere and supporting else ""
    raise ValueError(
        f"records[{i}]: no answer span: the answer {answer!r} (as tokens {a_ids}) does not occur "
        f"in {where}{extra}"
    )


def babi_rule_answers(records: Sequence[Any]) -> dict[str, list[str]]:
    """The answers of three hand-written rules for bAbI task 1 (lesson 12 §1).

    * ``"last sentence"``: the location in the story's last sentence, whoever it is about;
    * ``"first mention"``: the location in the first sentence about the person asked;
    * ``"last mention"``: the location in the last sentence about the person asked — the rule
      that generates the task's answers.

    In task 1 every sentence is "Person verb … location." and every question "Where is Person?".
    """
    records = _check_records(records)
    out: dict[str, list[str]] = {"last sentence": [], "first mention": [], "last mention": []}
    for i, r in enumerate(records):
        story = [_text(s, f"records[{i}].story") for s in _field(r, "story", i)]
        person = _text(_field(r, "question", i), f"records[{i}].question").split()[-1].strip("?")
        about = [s for s in story if s.split()[0] == person]
        if not about:
            raise ValueError(f"records[{i}]: no sentence of the story is about {person!r}")
        out["last sentence"].append(story[-1].split()[-1].strip("."))
        out["first mention"].append(about[0].split()[-1].strip("."))
        out["last mention"].append(about[-1].split()[-1].strip("."))
    return out


# --------------------------------------------------------------------------------------------------
# The span model
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class QAConfig:
    """Sizes and training settings of lesson 12's span model; ``BABI_QA`` is the shipped one.

    Lesson 12 §2 builds the model with `build`, lesson 12 §5 trains it (``python -m
    lessons_lib.qa`` runs the same recipe and writes the checkpoint).

    Attributes:
        bpe_vocab: the BPE vocabulary asked for (on bAbI 1, BPE stops at 119 tokens, when every
            word is one token).
        max_len, d_model, num_heads, num_layers, dropout: the encoder's sizes.
        max_answer_len: the longest span the decoder may return, in tokens.
        batch_size, epochs, learning_rate: ``fit`` with AdamW; at most ``epochs`` epochs.
        stop_at: stop after the first epoch whose validation exact match reaches this.
        eval_every: evaluate on the validation set every this many steps (lesson 12 §5's curve).
        seed: initialisation and shuffling.
    """

    bpe_vocab: int = 128
    max_len: int = 96
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 2
    dropout: float = 0.0
    max_answer_len: int = 8
    batch_size: int = 32
    epochs: int = 20
    learning_rate: float = 1e-3
    stop_at: float = 0.998
    eval_every: int = 50
    seed: int = 0

    def build(self, vocab_size: int | None = None, seed: int | None = None) -> SpanQA:
        """A new, built `SpanQA` of this configuration, initialised with ``seed``."""
        keras.utils.set_random_seed(self.seed if seed is None else seed)
        model = SpanQA(
            self.bpe_vocab if vocab_size is None else vocab_size,
            self.max_len,
            self.d_model,
            self.num_heads,
            self.num_layers,
            dropout=self.dropout,
        )
        return _built(model)


def _built(model: SpanQA) -> SpanQA:
    """Call ``model`` once on a dummy batch, so that its weights exist."""
    t = 8
    model(
        {
            "ids": np.zeros((1, t), np.int32),
            "padding_mask": np.ones((1, t), bool),
            "answer_mask": np.ones((1, t), bool),
        }
    )
    return model


#: The configuration of the shipped checkpoint (lesson 12 §2, §5).
BABI_QA = QAConfig()


@keras.saving.register_keras_serializable(package="lessons_lib")
class SpanQA(keras.Model):
    """Extractive QA: `Encoder` + Dense(2) → start and end logits per token (lesson 12 §2).

    ``model({"ids", "answer_mask"[, "padding_mask"]})`` → ``{"start": [B, T], "end": [B, T]}``,
    the logits sₜ, eₜ, with ``NEG_LOGIT`` wherever ``answer_mask`` is False (and at padding), so
    that a softmax over the positions gives those positions probability 0. The padding mask
    defaults to ``ids != pad_id``. ``return_attention=True`` also returns the encoder's weights
    ``[B, layers, heads, T, T]``.

    Train it with ``compile(loss={"start": SparseCategoricalCrossentropy(from_logits=True),
    "end": …})`` and ``fit(encoding.inputs(), encoding.targets())``: the outputs form a dict,
    so Keras matches losses and labels to them by name.

    Args:
        vocab_size, max_len, d_model, num_heads, num_layers, d_ff, dropout, positional: the
            `Encoder`'s.
        pad_id: the padding id (0 for `train_qa_tokenizer`'s tokenizers).
    """

    def __init__(
        self,
        vocab_size: int,
        max_len: int,
        d_model: int,
        num_heads: int,
        num_layers: int,
        d_ff: int | None = None,
        dropout: float = 0.0,
        positional: str = "learned",
        pad_id: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size = positive_int(vocab_size, "vocab_size")
        self.max_len = positive_int(max_len, "max_len")
        self.dropout = non_negative_float(dropout, "dropout", upper=1.0)
        self.encoder = Encoder(
            vocab_size,
            max_len,
            d_model,
            num_heads,
            num_layers,
            d_ff=d_ff,
            dropout=dropout,
            positional=positional,
            pad_id=pad_id,
            name="encoder",
        )
        self.span_head = keras.layers.Dense(2, name="span_head")

    def build(self, input_shape):
        ids_shape = tuple(input_shape["ids"]) if isinstance(input_shape, dict) else input_shape
        if not self.encoder.built:
            self.encoder.build(ids_shape)
        if not self.span_head.built:
            self.span_head.build(tuple(ids_shape) + (self.encoder.d_model,))

    def call(self, inputs, return_attention=False, training=None):
        """Logits ``{"start", "end"}`` ``[B, T]``, excluded positions at ``NEG_LOGIT``.

        Lesson 12 §2 shows this code.
        """
        if not isinstance(inputs, Mapping) or "ids" not in inputs or "answer_mask" not in inputs:
            raise TypeError(
                "SpanQA takes a dict {'ids': [B, T], 'answer_mask': [B, T]} (optionally "
                f"'padding_mask'), e.g. QAEncoding.inputs(); got {describe(inputs)}"
            )
        ids = inputs["ids"]
        if tf.executing_eagerly():
            _check_ids_in_vocab(ids, self.vocab_size)
        padding = self.encoder.padding_mask_for(ids, inputs.get("padding_mask"))
        allowed = ops.logical_and(
            ops.cast(inputs["answer_mask"], "bool"), ops.cast(padding, "bool")
        )
        h, weights = self.encoder(
            ids, padding_mask=padding, return_attention=True, training=training
        )
        logits = ops.cast(self.span_head(h), "float32")  # [B, T, 2]
        neg = ops.full_like(logits[..., 0], NEG_LOGIT)
        out = {
            "start": ops.where(allowed, logits[..., 0], neg),
            "end": ops.where(allowed, logits[..., 1], neg),
        }
        return (out, weights) if return_attention else out

    def get_config(self) -> dict:
        enc = self.encoder
        return {
            "vocab_size": self.vocab_size,
            "max_len": self.max_len,
            "d_model": enc.d_model,
            "num_heads": enc.num_heads,
            "num_layers": enc.num_layers,
            "d_ff": enc.d_ff,
            "dropout": self.dropout,
            "positional": enc.positional,
            "pad_id": enc.pad_id,
            "name": self.name,
        }


def _check_ids_in_vocab(ids: Any, vocab_size: int) -> None:
    a = np.asarray(ops.convert_to_numpy(ids))
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"ids must be integer token ids [batch, T], got {describe(a)}")
    if a.shape[0] == 0:
        raise ValueError("ids is an empty batch (shape (0, T)): give at least one sequence")
    if a.size and (a.min() < 0 or a.max() >= vocab_size):
        bad = a[(a < 0) | (a >= vocab_size)]
        raise ValueError(
            f"token ids must be in [0, {vocab_size}) (the model's vocabulary), got "
            f"{bad.size} outside it, e.g. {bad[:3].tolist()}"
        )


# --------------------------------------------------------------------------------------------------
# Span decoding
# --------------------------------------------------------------------------------------------------
def decode_spans(
    start_logits: Any, end_logits: Any, max_answer_len: int, allowed: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The best span of each row: argmax of sᵢ + eⱼ over i ≤ j ≤ i + max_answer_len − 1.

    Derived in lesson 12 §3, where this code is shown. Only spans whose tokens i..j are all
    ``allowed`` count (default: every position whose logit is above ``NEG_LOGIT / 2``, i.e. the
    story tokens of `SpanQA`'s output). The band of T × max_answer_len candidates (start i,
    length k + 1) is scored at once: ``score[b, i, k] = s[b, i] + e[b, i + k]``. Ties go to the
    smallest start, then the shortest span.

    Args:
        start_logits, end_logits: ``[B, T]`` (or ``[T]``) floats.
        max_answer_len: the longest span, in tokens (≥ 1).
        allowed: ``[B, T]`` bool, True where a span may lie.

    Returns:
        ``(start, end, score)``, each ``[B]`` (or Python scalars for 1-D input); ``end`` is
        inclusive.

    Raises:
        ValueError: shapes that differ, an empty batch, a row with no allowed position.
        TypeError: logits that are not floating-point.
    """
    s = np.asarray(ops.convert_to_numpy(start_logits) if _is_tensor(start_logits) else start_logits)
    e = np.asarray(ops.convert_to_numpy(end_logits) if _is_tensor(end_logits) else end_logits)
    for name, a in (("start_logits", s), ("end_logits", e)):
        if not np.issubdtype(a.dtype, np.floating):
            raise TypeError(f"{name} must hold floating-point logits, got {describe(a)}")
    if s.shape != e.shape or s.ndim not in (1, 2):
        raise ValueError(
            "start_logits and end_logits must have the same shape [B, T] (or [T]), got "
            f"{s.shape} and {e.shape}"
        )
    single = s.ndim == 1
    s, e = np.atleast_2d(s).astype(np.float64), np.atleast_2d(e).astype(np.float64)
    if s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(f"start_logits is empty (shape {s.shape}): give at least one position")
    n_max = positive_int(max_answer_len, "max_answer_len")
    if allowed is None:
        ok = (s > NEG_LOGIT / 2) & (e > NEG_LOGIT / 2)
    else:
        ok = np.atleast_2d(bool_mask(allowed, "allowed", "True = the span may lie here"))
        if ok.shape != s.shape:
            raise ValueError(f"allowed must have the logits' shape {s.shape}, got {ok.shape}")
    if not ok.any(axis=1).all():
        row = int(np.argmin(ok.any(axis=1)))
        raise ValueError(f"row {row} has no allowed position: no span can be chosen there")
    b, t = s.shape
    pad = n_max - 1
    e_pad = np.concatenate([e, np.full((b, pad), -np.inf)], axis=1)
    ok_pad = np.concatenate([ok, np.zeros((b, pad), dtype=bool)], axis=1)
    e_win = np.lib.stride_tricks.sliding_window_view(e_pad, n_max, axis=1)  # [B, T, L]: e[i + k]
    ok_win = np.lib.stride_tricks.sliding_window_view(ok_pad, n_max, axis=1)
    inside = np.logical_and.accumulate(ok_win, axis=2)  # tokens i..i+k all allowed
    score = np.where(inside, s[:, :, None] + e_win, -np.inf)  # [B, T, L]
    flat = score.reshape(b, t * n_max).argmax(axis=1)
    start, length = flat // n_max, flat % n_max
    best = score.reshape(b, -1)[np.arange(b), flat]
    start, end = start.astype(np.int64), (start + length).astype(np.int64)
    if single:
        return int(start[0]), int(end[0]), float(best[0])
    return start, end, best


def _is_tensor(x: Any) -> bool:
    return hasattr(x, "numpy") and not isinstance(x, np.ndarray)


def predict_spans(
    model: SpanQA, encoding: QAEncoding, max_answer_len: int, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``model`` on ``encoding`` and decode the best span of each example (lesson 12 §3).

    Returns ``(start, end)``, ``[N]`` token indices (inclusive end).
    """
    if not isinstance(model, SpanQA):
        raise TypeError(f"model must be a lessons_lib.SpanQA, got {describe(model)}")
    if not isinstance(encoding, QAEncoding):
        raise TypeError(f"encoding must be a QAEncoding (encode_qa), got {describe(encoding)}")
    _check_ids_in_vocab(encoding.ids, model.vocab_size)
    batch_size = positive_int(batch_size, "batch_size")
    starts, ends = [], []
    x = encoding.inputs()
    for lo in range(0, len(encoding), batch_size):
        out = model({k: v[lo : lo + batch_size] for k, v in x.items()}, training=False)
        s, e, _ = decode_spans(
            out["start"].numpy(),
            out["end"].numpy(),
            max_answer_len,
            allowed=encoding.answer_mask[lo : lo + batch_size],
        )
        starts.append(s)
        ends.append(e)
    return np.concatenate(starts), np.concatenate(ends)


def span_texts(encoding: QAEncoding, start: Any, end: Any, tokenizer: BPETokenizer) -> list[str]:
    """The text of each span ``ids[b, start[b] .. end[b]]`` (inclusive), stripped (lesson 12 §3)."""
    start, end = np.atleast_1d(np.asarray(start)), np.atleast_1d(np.asarray(end))
    if start.shape != (len(encoding),) or end.shape != (len(encoding),):
        raise ValueError(
            f"start and end must hold one index per example ({len(encoding)}), got shapes "
            f"{start.shape} and {end.shape}"
        )
    t = encoding.ids.shape[1]
    bad = (start < 0) | (end < start) | (end >= t)
    if bad.any():
        b = int(np.argmax(bad))
        raise ValueError(
            f"span {b} = ({start[b]}, {end[b]}) is not a span of a sequence of {t} tokens "
            "(need 0 <= start <= end < T)"
        )
    return [
        tokenizer.decode(encoding.ids[b, start[b] : end[b] + 1]).strip()
        for b in range(len(encoding))
    ]


# --------------------------------------------------------------------------------------------------
# SQuAD's metrics
# --------------------------------------------------------------------------------------------------
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles (a, an, the), single spaces.

    The official evaluation script's ``normalize_answer`` (SQuAD v1.1), derived in lesson 12 §4:
    ``"The Bathroom."`` → ``"bathroom"``.
    """
    if not isinstance(text, str):
        raise TypeError(f"an answer must be a str, got {describe(text)}")
    text = "".join(c for c in text.lower() if c not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _truths(truth: Any) -> list[str]:
    if isinstance(truth, str):
        return [truth]
    if isinstance(truth, Sequence) and truth and all(isinstance(t, str) for t in truth):
        return list(truth)
    raise TypeError(f"the true answer must be a str or a list of str, got {describe(truth)}")


def exact_match(prediction: str, truth: str | Sequence[str]) -> float:
    """1.0 if the normalised prediction equals a normalised true answer, else 0.0 (lesson 12 §4).

    ``truth`` may list several acceptable answers (SQuAD has up to 3): the best counts.
    """
    p = normalize_answer(prediction)
    return float(any(p == normalize_answer(t) for t in _truths(truth)))


def token_f1(prediction: str, truth: str | Sequence[str]) -> float:
    """SQuAD's token F1 (lesson 12 §4): F1 = 2PR / (P + R) over the bags of normalised words.

    With c = |bag(pred) ∩ bag(truth)| (common words, counted with multiplicity), P = c / |pred|
    and R = c / |truth|; F1 is 0 when c = 0, and 1.0 if both are empty (0.0 if only one is, as
    in the SQuAD v2.0 script). Several true answers: the best F1 counts.
    """
    p_tokens = normalize_answer(prediction).split()
    best = 0.0
    for t in _truths(truth):
        t_tokens = normalize_answer(t).split()
        if not p_tokens or not t_tokens:
            best = max(best, float(p_tokens == t_tokens))
            continue
        common = sum((Counter(p_tokens) & Counter(t_tokens)).values())
        if common:
            precision, recall = common / len(p_tokens), common / len(t_tokens)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def qa_scores(predictions: Sequence[str], truths: Sequence[Any]) -> dict[str, float]:
    """Mean exact match and token F1 over a data set, as fractions in [0, 1] (lesson 12 §4)."""
    if isinstance(predictions, str) or isinstance(truths, str):
        raise TypeError("predictions and truths must be lists of answers, not one str")
    if len(predictions) != len(truths):
        raise ValueError(
            f"predictions and truths must have the same length, got {len(predictions)} and "
            f"{len(truths)}"
        )
    if not predictions:
        raise ValueError("predictions is empty: nothing to score")
    em = [exact_match(p, t) for p, t in zip(predictions, truths)]
    f1 = [token_f1(p, t) for p, t in zip(predictions, truths)]
    return {"exact_match": float(np.mean(em)), "f1": float(np.mean(f1))}


class SpanEvaluation(keras.callbacks.Callback):
    """Exact match and F1 on a validation set while ``fit`` trains (lesson 12 §5).

    After each epoch it decodes the best span of every validation example (`predict_spans`) and
    adds ``val_exact_match``, ``val_f1`` and ``time`` to the epoch's logs, so they appear in the
    progress bar and in ``fit``'s history. ``time`` is the training time so far in seconds, the
    evaluations' own time left out.

    Args:
        encoding, answers: the validation examples and their answers.
        tokenizer, max_answer_len: for decoding the spans into text.
        every: also evaluate every this many training steps (and before the first), for a finer
            curve; every evaluation is a row of ``curve``.
        rules: ``{name: answers}`` of simple rules to compare with: each row also records how
            often the model's answer agrees with each (``agrees_<name>``).
        stop_at: stop training after the first epoch whose exact match reaches this.

    Attributes:
        curve: one dict per evaluation: ``step``, ``time``, ``val_exact_match``, ``val_f1``, the
            agreements, and ``epoch`` for the evaluations at the end of an epoch.
    """

    def __init__(
        self,
        encoding: QAEncoding,
        answers: Sequence[str],
        tokenizer: BPETokenizer,
        max_answer_len: int,
        every: int | None = None,
        rules: Mapping[str, Sequence[str]] | None = None,
        stop_at: float | None = None,
    ):
        super().__init__()
        if not isinstance(encoding, QAEncoding):
            raise TypeError(f"encoding must be a QAEncoding (encode_qa), got {describe(encoding)}")
        self.rules = {k: list(v) for k, v in (rules or {}).items()}
        for name, said in {"answers": answers, **self.rules}.items():
            if len(said) != len(encoding):
                raise ValueError(
                    f"{name} has {len(said)} items but there are {len(encoding)} encoded examples"
                )
        self.encoding, self.answers, self.tokenizer = encoding, list(answers), tokenizer
        self.max_answer_len = positive_int(max_answer_len, "max_answer_len")
        self.every = None if every is None else positive_int(every, "every")
        self.stop_at = None if stop_at is None else float(stop_at)
        self.curve: list[dict[str, float]] = []
        self._t0 = self._eval_seconds = 0.0
        self._step = 0

    def evaluate(self) -> dict[str, float]:
        """Evaluate now; append the row to ``curve`` and return it."""
        now = time.perf_counter()
        start, end = predict_spans(self.model, self.encoding, self.max_answer_len)
        preds = span_texts(self.encoding, start, end, self.tokenizer)
        row = {"step": self._step, "time": round(now - self._t0 - self._eval_seconds, 2)}
        row.update({f"val_{k}": round(v, 4) for k, v in qa_scores(preds, self.answers).items()})
        for name, said in self.rules.items():
            row[f"agrees_{name}"] = round(float(np.mean(list(map(exact_match, preds, said)))), 4)
        self.curve.append(row)
        self._eval_seconds += time.perf_counter() - now
        return row

    def on_train_begin(self, logs=None):
        self._t0, self._eval_seconds, self._step, self.curve = time.perf_counter(), 0.0, 0, []
        if self.every is not None:
            self.evaluate()

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self.every is not None and self._step % self.every == 0:
            self.evaluate()

    def on_epoch_end(self, epoch, logs=None):
        fresh = self.curve and self.curve[-1]["step"] == self._step
        row = self.curve[-1] if fresh else self.evaluate()
        row["epoch"] = epoch + 1
        if logs is not None:
            logs.update(
                val_exact_match=row["val_exact_match"], val_f1=row["val_f1"], time=row["time"]
            )
        if self.stop_at is not None and row["val_exact_match"] >= self.stop_at:
            self.model.stop_training = True


# --------------------------------------------------------------------------------------------------
# Is the model looking at the evidence?
# --------------------------------------------------------------------------------------------------
def evidence_share(
    weights: Any,
    evidence_mask: Any,
    story_mask: Any,
    query_mask: Any,
    reduce: bool = True,
) -> tuple[np.ndarray, Any]:
    """The share of attention into the story that lands on the supporting sentence (lesson 12 §7).

    For example b, layer l, head h, with Q the query rows, S the story tokens and E ⊆ S the
    supporting sentence's tokens:

        share[b, l, h] = ∑_{q∈Q} ∑_{k∈E} A[b, l, h, q, k] / ∑_{q∈Q} ∑_{k∈S} A[b, l, h, q, k],
        chance[b] = |E| / |S|,

    so a head that spreads its attention evenly over the story scores the chance level, and 1.0
    means every bit of story attention goes to the evidence. Restricting to the story keys
    removes what a head puts on [CLS], [SEP] and the question, which says nothing about which
    sentence it reads.

    Which rows Q? Lesson 12 §7 first uses the **question's tokens**: the question is the only
    place that knows *whose* location is asked, so if attention fetches the evidence for the
    question, it is from those rows (van Aken et al., 2019, probe BERT's QA layers from the
    question's side too). It compares them with the answer token's own row (the row that becomes
    the start logit) and the [CLS] row (which carries no loss in a span model). The answer's row
    lies inside the evidence, so a head that only looks around itself scores high there without
    reading anything: §7 follows the candidate tokens' rows to see what they do read.

    Args:
        weights: ``[B, layers, heads, T, T]`` attention weights (``return_attention=True``).
        evidence_mask, story_mask, query_mask: ``[B, T]`` bool (`QAEncoding.evidence_mask`,
            ``answer_mask``, ``question_mask``); E must lie inside S.
        reduce: average over the examples (default) or return them per example.

    Returns:
        ``(share, chance)``: ``[layers, heads]`` and a float (the means over examples), or
        ``[B, layers, heads]`` and ``[B]`` with ``reduce=False``.
    """
    w = np.asarray(ops.convert_to_numpy(weights) if _is_tensor(weights) else weights)
    if w.ndim != 5 or w.shape[-1] != w.shape[-2] or not np.issubdtype(w.dtype, np.floating):
        raise ValueError(
            f"weights must be attention weights [batch, layers, heads, T, T], got {describe(w)}"
        )
    b, _, _, t, _ = w.shape
    masks = {}
    for name, m in (("evidence_mask", evidence_mask), ("story_mask", story_mask)):
        masks[name] = bool_mask(m, name, "True = token counts")
    masks["query_mask"] = bool_mask(query_mask, "query_mask", "True = query row counts")
    for name, m in masks.items():
        if m.shape != (b, t):
            raise ValueError(f"{name} must have shape (batch, T) = {(b, t)}, got {m.shape}")
    ev, story, q = masks["evidence_mask"], masks["story_mask"], masks["query_mask"]
    if (ev & ~story).any():
        raise ValueError("evidence_mask must lie inside story_mask (the evidence is story text)")
    for name, m in (("evidence_mask", ev), ("query_mask", q)):
        if not m.any(axis=1).all():
            raise ValueError(f"{name} has a row with no True entry (example {np.argmin(m.any(1))})")
    w64 = w.astype(np.float64)
    rows = np.einsum("blhqk,bq->blhk", w64, q.astype(np.float64))  # attention summed over Q
    on_evidence = np.einsum("blhk,bk->blh", rows, ev.astype(np.float64))
    on_story = np.einsum("blhk,bk->blh", rows, story.astype(np.float64))
    share = on_evidence / np.maximum(on_story, 1e-30)
    chance = ev.sum(axis=1) / story.sum(axis=1)
    if reduce:
        return share.mean(axis=0), float(chance.mean())
    return share, chance


# --------------------------------------------------------------------------------------------------
# The shipped checkpoint
# --------------------------------------------------------------------------------------------------
def save_qa_checkpoint(
    model: SpanQA, tokenizer: BPETokenizer, path: Path | str, metadata: dict | None = None
) -> Path:
    """Weights to ``path`` (``.weights.h5``), configuration, tokenizer and ``metadata`` to
    ``path.json`` (lesson 12 §5)."""
    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ValueError(f"checkpoint path must end with .weights.h5, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {k: v for k, v in model.get_config().items() if k != "name"}
    bare = _built(SpanQA(**config))  # weights only: a compiled model would also save its optimizer
    bare.set_weights(model.get_weights())
    bare.save_weights(path)
    info = {
        "config": config,
        "tokenizer": {
            "alphabet": "".join(tokenizer.alphabet),
            "merges": [list(m) for m in tokenizer.merges],
            "special_tokens": list(tokenizer.special_tokens),
        },
        **(metadata or {}),
    }
    Path(str(path) + ".json").write_text(json.dumps(info, indent=2) + "\n")
    return path


def load_qa_checkpoint(path: Path | str = BABI_QA_CHECKPOINT) -> tuple[SpanQA, BPETokenizer, dict]:
    """The shipped span model, its tokenizer and the checkpoint's metadata (lesson 12 §5).

    Returns ``(model, tokenizer, meta)``; ``meta`` holds the command that trained it, the
    configuration, the training history per epoch and the scores it reached.
    """
    path = Path(path)
    meta_path = Path(str(path) + ".json")
    if not path.exists() or not meta_path.exists():
        raise FileNotFoundError(
            f"checkpoint {path} (and its {meta_path.name}) not found; "
            "train one with `python -m lessons_lib.qa`"
        )
    meta = json.loads(meta_path.read_text())
    tk = meta["tokenizer"]
    tokenizer = BPETokenizer(
        tk["alphabet"], [tuple(m) for m in tk["merges"]], special_tokens=tuple(tk["special_tokens"])
    )
    model = _built(SpanQA(**meta["config"]))
    model.load_weights(path)
    return model, tokenizer, meta


def compile_span_model(model: SpanQA, learning_rate: float = 1e-3, **compile_kwargs) -> SpanQA:
    """``model.compile`` with AdamW and one sparse cross-entropy per output (lesson 12 §5).

    The losses form a dict keyed like the outputs (``"start"``, ``"end"``); Keras adds them, so
    the loss it reports is −log p(start = i*) − log p(end = j*), averaged over the batch. Other
    keyword arguments go to ``compile`` (e.g. ``jit_compile=False``).
    """
    if not isinstance(model, SpanQA):
        raise TypeError(f"model must be a lessons_lib.SpanQA, got {describe(model)}")
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate),
        loss={
            "start": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            "end": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        },
        **compile_kwargs,
    )
    return model


def train_span_model(
    data: Any,
    config: QAConfig = BABI_QA,
    tokenizer: BPETokenizer | None = None,
    callbacks: Sequence[Any] = (),
    verbose: int | str = 0,
) -> tuple[SpanQA, BPETokenizer, SpanEvaluation, Any]:
    """The recipe of lesson 12 §5 (and of ``python -m lessons_lib.qa``), on a `load_babi` result.

    Trains a tokenizer on ``data.train`` (unless given), encodes train and val, builds
    ``config.build(seed=config.seed)``, compiles it (`compile_span_model`) and fits it with a
    `SpanEvaluation` on val that evaluates every ``config.eval_every`` steps, records how often
    the answers agree with the rules of `babi_rule_answers`, and stops after the first epoch at
    ``config.stop_at`` exact match (at most ``config.epochs`` epochs).

    Returns ``(model, tokenizer, evaluation, history)``: ``evaluation.curve`` is the fine curve,
    ``history`` what ``fit`` returns.
    """
    if tokenizer is None:
        tokenizer = train_qa_tokenizer(data.train, config.bpe_vocab)
    train, val = (encode_qa(r, tokenizer, config.max_len) for r in (data.train, data.val))
    model = compile_span_model(config.build(tokenizer.vocab_size), config.learning_rate)
    evaluation = SpanEvaluation(
        val,
        [r.answer for r in data.val],
        tokenizer,
        config.max_answer_len,
        every=config.eval_every,
        rules=babi_rule_answers(data.val),
        stop_at=config.stop_at,
    )
    history = model.fit(
        train.inputs(),
        train.targets(),
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_data=(val.inputs(), val.targets()),
        callbacks=[evaluation, *callbacks],
        verbose=verbose,
    )
    return model, tokenizer, evaluation, history


def main(argv: list[str] | None = None) -> int:
    """Train `BABI_QA` on bAbI task 1 and write the checkpoint lesson 12 ships."""
    import os

    from lessons_lib.data import load_babi
    from lessons_lib.env import setup

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--epochs", type=int, default=BABI_QA.epochs)
    p.add_argument("--seed", type=int, default=BABI_QA.seed)
    p.add_argument("--out", type=Path, default=BABI_QA_CHECKPOINT)
    a = p.parse_args(argv)
    cfg = dataclasses.replace(BABI_QA, epochs=a.epochs, seed=a.seed)
    setup(seed=cfg.seed)
    data = load_babi(task=1, progress=False)
    load = os.getloadavg()[0]
    print(f"{data}; load average {load:.1f} on {os.cpu_count()} CPUs", flush=True)
    t0 = time.perf_counter()
    model, tokenizer, evaluation, fit = train_span_model(data, cfg, verbose=2)
    wall = time.perf_counter() - t0
    scores = {}
    for name, records in (("val", data.val), ("test", data.test)):
        enc = encode_qa(records, tokenizer, cfg.max_len)
        start, end = predict_spans(model, enc, cfg.max_answer_len)
        s = qa_scores(span_texts(enc, start, end, tokenizer), [r.answer for r in records])
        scores.update({f"{name}_exact_match": s["exact_match"], f"{name}_f1": s["f1"]})
    epochs = len(fit.history["loss"])
    print(
        f"{epochs} epochs, {model.count_params():,} parameters, {wall:.1f} s in all "
        f"({evaluation.curve[-1]['time']:.1f} s of training); "
        + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()),
        flush=True,
    )
    keys = ("time", "loss", "val_loss", "val_exact_match", "val_f1")
    history = [
        {"epoch": e + 1, **{k: round(float(fit.history[k][e]), 4) for k in keys}}
        for e in range(epochs)
    ]
    command = "python -m lessons_lib.qa" + "".join(
        f" --{k} {v}"
        for k, v in (("epochs", a.epochs), ("seed", a.seed))
        if v != getattr(BABI_QA, k)
    )
    save_qa_checkpoint(
        model,
        tokenizer,
        a.out,
        {
            "command": command,
            "qa_config": dataclasses.asdict(cfg),
            "parameters": int(model.count_params()),
            "epochs_trained": epochs,
            "wall_seconds": round(wall, 1),
            "load_average_at_start": round(load, 2),
            "load_average_at_end": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count(),
            **{k: round(v, 4) for k, v in scores.items()},
            "history": history,
            "curve": evaluation.curve,
        },
    )
    print(f"wrote {a.out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
