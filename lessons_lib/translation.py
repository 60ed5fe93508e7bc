"""Lesson 13's translation recipe: tokenizers, training data, BLEU during training, a checkpoint.

The pieces it puts together are derived elsewhere: the model (`lessons_lib.seq2seq`, lesson 13
§2–§4), the searches (`lessons_lib.decoding`, §5) and the metrics (`lessons_lib.bleu`, §7). This
module is the recipe that trains the shipped model, ``python -m lessons_lib.translation``:

1. one BPE tokenizer per language (lesson 01), each trained on its side of the *training* split
   only (`train_translation_tokenizers`);
2. every training pair as ``source ids`` and ``<bos> target ids <eos>`` (`encode_pairs`), shifted
   for teacher forcing (`shift_targets`);
3. AdamW on the masked cross-entropy (`sequence_loss`), with a `BleuEvaluation` that translates a
   fixed slice of the validation sentences (greedy) after each epoch and keeps the best weights by
   validation BLEU;
4. multi-reference sacreBLEU and chrF on the test sentences (`evaluate_translations`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lessons_lib._backend import keras, tf
from lessons_lib._validate import describe, positive_int
from lessons_lib.bleu import corpus_bleu, corpus_chrf
from lessons_lib.decoding import Translator
from lessons_lib.seq2seq import (
    SEQ2SEQ_SPECIAL_TOKENS,
    EncoderDecoder,
    encode_sources,
    encode_targets,
    save_encoder_decoder,
    sequence_loss,
    shift_targets,
)
from lessons_lib.tokenizers import BPETokenizer

__all__ = [
    "TranslationConfig",
    "SPA_ENG_TRANSLATION",
    "SPA_ENG_CHECKPOINT",
    "train_translation_tokenizers",
    "encode_pairs",
    "TranslationBatch",
    "LengthBuckets",
    "compile_translator",
    "BleuEvaluation",
    "evaluate_translations",
    "train_translator",
]

# The checkpoint lesson 13 ships, made by ``python -m lessons_lib.translation``.
SPA_ENG_CHECKPOINT = (
    Path(__file__).resolve().parent.parent / "checkpoints" / ("spa_eng_translator.weights.h5")
)


@dataclasses.dataclass(frozen=True)
class TranslationConfig:
    """Sizes and training settings of lesson 13's English → Spanish model (§4, §6).

    Attributes:
        max_source_words: the data restriction of `load_spa_eng` (English sentences of at most
            this many words).
        source_vocab, target_vocab: BPE vocabulary sizes (special tokens included).
        max_len: the longest source and decoder input, in tokens.
        d_model, num_heads, num_encoder_layers, num_decoder_layers, d_ff, dropout: the model.
        learning_rate, weight_decay, batch_size: AdamW and the batch.
        epochs, patience: at most ``epochs``; stop after ``patience`` epochs without a better
            validation BLEU (the best weights are restored).
        eval_sentences: how many validation sentences `BleuEvaluation` translates each epoch.
        seed: weights, dropout and shuffling.
    """

    max_source_words: int = 5
    source_vocab: int = 2000
    target_vocab: int = 2000
    max_len: int = 32
    d_model: int = 64
    num_heads: int = 4
    num_encoder_layers: int = 2
    num_decoder_layers: int = 2
    d_ff: int = 256
    dropout: float = 0.1
    learning_rate: float = 2e-3
    weight_decay: float = 0.01
    batch_size: int = 64
    epochs: int = 20
    patience: int = 3
    eval_sentences: int = 500
    seed: int = 0

    def build(self, source_vocab_size: int, target_vocab_size: int) -> EncoderDecoder:
        """A new, built `EncoderDecoder` of these sizes (seeded with ``self.seed``)."""
        keras.utils.set_random_seed(self.seed)
        model = EncoderDecoder(
            source_vocab_size,
            target_vocab_size,
            self.max_len,
            self.d_model,
            self.num_heads,
            self.num_encoder_layers,
            self.num_decoder_layers,
            d_ff=self.d_ff,
            dropout=self.dropout,
        )
        ids = np.full((1, 1), model.bos_id, dtype=np.int32)
        model(ids, ids)
        return model


# Lesson 13's configuration (and the shipped checkpoint's).
SPA_ENG_TRANSLATION = TranslationConfig()


def train_translation_tokenizers(
    split: Any, source_vocab: int = 2000, target_vocab: int = 2000
) -> tuple[BPETokenizer, BPETokenizer]:
    """``(source, target)`` BPE tokenizers (lesson 01), each trained on one side of ``split``.

    ``split`` is a `TranslationSplit` (the *training* split: the tokenizers must not see the
    validation or test sentences). The source tokenizer learns from the distinct English sentences,
    the target tokenizer from every Spanish translation, each joined by newlines; both start with
    `SEQ2SEQ_SPECIAL_TOKENS` (``<pad>`` 0, ``<unk>`` 1, ``<bos>`` 2, ``<eos>`` 3). Lesson 13 §1.
    """
    if not hasattr(split, "sources") or not hasattr(split, "references"):
        raise TypeError(f"split must be a TranslationSplit (load_spa_eng), got {describe(split)}")
    sources = list(split.sources)
    targets = [t for refs in split.references for t in refs]
    kw = dict(special_tokens=SEQ2SEQ_SPECIAL_TOKENS, unk_token="<unk>")
    source = BPETokenizer.train(
        "\n".join(sources), positive_int(source_vocab, "source_vocab"), **kw
    )
    target = BPETokenizer.train(
        "\n".join(targets), positive_int(target_vocab, "target_vocab"), **kw
    )
    return source, target


@dataclasses.dataclass(frozen=True)
class TranslationBatch:
    """Every pair of a split as arrays (what `encode_pairs` returns; lesson 13 §4).

    Attributes:
        source_ids: ``[n, max_len]`` encoder input, padded with ``<pad>``.
        decoder_input, labels, weights: `shift_targets` of ``<bos> y <eos>`` rows, ``[n,
            max_len]`` each.
        source_lengths: each source's number of tokens ``[n]``.
        dropped: pairs left out because a side did not fit ``max_len`` (counted, never cut).
    """

    source_ids: np.ndarray
    decoder_input: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    source_lengths: np.ndarray
    dropped: int

    def __len__(self) -> int:
        return len(self.source_ids)

    def inputs(self) -> tuple[np.ndarray, np.ndarray]:
        """``x`` for ``fit``: ``(source_ids, decoder_input)``."""
        return self.source_ids, self.decoder_input


def encode_pairs(
    split: Any, source_tokenizer: Any, target_tokenizer: Any, max_len: int
) -> TranslationBatch:
    """Every (source, reference) pair of ``split`` as training arrays; lesson 13 §4.

    Pairs whose source has more than ``max_len`` tokens, or whose target has more than
    ``max_len − 1`` (``<bos>`` + tokens must fit the decoder), are left out and counted in
    ``dropped`` (a cut sentence would teach a wrong translation).
    """
    max_len = positive_int(max_len, "max_len")
    sources, targets = split.pairs()
    src_len = [len(source_tokenizer.encode(s)) for s in sources]
    keep = [
        i
        for i, t in enumerate(targets)
        if src_len[i] <= max_len and len(target_tokenizer.encode(t)) <= max_len - 1
    ]
    if not keep:
        raise ValueError(f"no pair of the split fits max_len={max_len}")
    src = encode_sources(source_tokenizer, [sources[i] for i in keep], max_len)
    tgt = encode_targets(target_tokenizer, [targets[i] for i in keep], max_len)
    dec_in, labels, weights = shift_targets(tgt, pad_id=target_tokenizer.token_to_id("<pad>"))
    lengths = np.array([src_len[i] for i in keep], dtype=np.int64)
    return TranslationBatch(src, dec_in, labels, weights, lengths, len(sources) - len(keep))


class LengthBuckets:
    """Batches of pairs of similar length, each padded only to its own longest row (lesson 13 §4).

    Padding every pair to ``max_len`` (32) would make most of the work padding: the training
    sentences have about 7 tokens on each side. Each pass (each epoch) sorts the pairs by target and
    then source length (ties in a random order), cuts them into batches of ``batch_size`` and
    shuffles the batches; a batch's columns are cut to its longest source and longest target. Every
    pair is in exactly one batch per pass. With ``multiple > 1`` the widths are rounded up to a
    multiple of it: fewer distinct shapes, so fewer kernels for TensorFlow's CPU backend to prepare
    and keep (each costs memory), for a little more padding; the default, 1, keeps the exact widths
    (the shipped checkpoint's recipe). A batch is ``((source_ids, decoder_input),
    labels, weights)``; `dataset` wraps the passes as a ``tf.data.Dataset`` for ``fit``.
    """

    def __init__(
        self, pairs: TranslationBatch, batch_size: int = 64, seed: int = 0, multiple: int = 1
    ):
        if not isinstance(pairs, TranslationBatch):
            raise TypeError(
                f"pairs must be a TranslationBatch (encode_pairs), got {describe(pairs)}"
            )
        self.pairs, self.batch_size = pairs, positive_int(batch_size, "batch_size")
        self.multiple = positive_int(multiple, "multiple")
        self._rng = np.random.default_rng(seed)
        self._src_len = pairs.source_lengths
        self._tgt_len = pairs.weights.sum(axis=1).astype(np.int64)

    def __len__(self) -> int:
        return -(-len(self.pairs) // self.batch_size)

    def batch_rows(self) -> list[np.ndarray]:
        """One pass: the row indices of each batch, in the order they are served."""
        order = np.lexsort((self._rng.random(len(self.pairs)), self._src_len, self._tgt_len))
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        return [batches[i] for i in self._rng.permutation(len(batches))]

    def _width(self, longest: int) -> int:
        """A batch's width: its longest row, rounded up to a multiple of ``multiple`` (at most
        ``max_len``)."""
        m = self.multiple
        return int(min(-(-int(longest) // m) * m, self.pairs.source_ids.shape[1]))

    def batch(self, rows: np.ndarray):
        """The arrays of one batch, cut to its longest source and target (rounded up to a
        multiple of ``multiple``)."""
        s, t = (self._width(n[rows].max()) for n in (self._src_len, self._tgt_len))
        p = self.pairs
        x = (p.source_ids[rows, :s], p.decoder_input[rows, :t])
        return x, p.labels[rows, :t], p.weights[rows, :t]

    def __iter__(self):
        return (self.batch(rows) for rows in self.batch_rows())

    def dataset(self) -> Any:
        """A ``tf.data.Dataset`` of the batches, reshuffled on every pass (every epoch of
        ``fit``); its lengths vary from batch to batch (``None`` in the signature)."""
        ids = tf.TensorSpec([None, None], tf.int32)
        signature = ((ids, ids), ids, tf.TensorSpec([None, None], tf.float32))
        data = tf.data.Dataset.from_generator(self.__iter__, output_signature=signature)
        return data.apply(tf.data.experimental.assert_cardinality(len(self)))

    def padding_share(self, rows: list[np.ndarray] | None = None) -> float:
        """The share of padding among the positions (source and target) of a pass's batches."""
        real = padded = 0
        for r in self.batch_rows() if rows is None else rows:
            s, t = self._src_len[r], self._tgt_len[r]
            real += int(s.sum() + t.sum())
            padded += len(r) * (self._width(s.max()) + self._width(t.max()))
        return 1 - real / padded


def compile_translator(
    model: EncoderDecoder, learning_rate: float = 2e-3, weight_decay: float = 0.01
) -> EncoderDecoder:
    """Compile with AdamW and `sequence_loss` (the mean over real target tokens); lesson 13 §4.

    The reported ``accuracy`` is next-token accuracy under teacher forcing, weighted like the loss.
    """
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay),
        loss=sequence_loss(),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def evaluate_translations(
    model: EncoderDecoder,
    split: Any,
    source_tokenizer: Any,
    target_tokenizer: Any,
    beam_width: int = 1,
    limit: int | None = None,
    translator: Translator | None = None,
    **kwargs,
) -> dict:
    """Translate the sources of ``split`` and score them against *all* their references.

    Returns ``{"bleu", "chrf", "hypotheses", "sentences"}``: corpus sacreBLEU and chrF
    (`corpus_bleu`, `corpus_chrf`; detokenized text, every reference of each sentence), the
    translations, and how many sentences (the first ``limit`` ones, or all). ``kwargs`` go to
    `Translator.translate` (``max_length``, ``length_penalty``, ``batch_size``). Lesson 13 §7.
    """
    n = len(split) if limit is None else min(positive_int(limit, "limit"), len(split))
    sources, refs = split.sources[:n], split.references[:n]
    translator = translator or Translator.for_model(model)
    hyps = translator.translate(
        sources, source_tokenizer, target_tokenizer, beam_width=beam_width, **kwargs
    )
    return {
        "bleu": corpus_bleu(hyps, refs).score,
        "chrf": corpus_chrf(hyps, refs).score,
        "hypotheses": hyps,
        "sentences": n,
    }


class BleuEvaluation(keras.callbacks.Callback):
    """After each epoch, greedy-translate the first ``sentences`` of a split and log its BLEU.

    Adds ``val_bleu`` (and ``val_chrf``) to the epoch's logs, so ``fit``'s history and a progress
    bar show them, and keeps the weights of the best epoch by BLEU: with ``patience`` it stops
    after that many epochs without a better BLEU, and at the end of training the best weights are
    put back (``restore_best``). ``time`` is the training time so far (evaluation excluded).
    Lesson 13 §4.
    """

    def __init__(
        self,
        split: Any,
        source_tokenizer: Any,
        target_tokenizer: Any,
        sentences: int = 500,
        patience: int | None = None,
        restore_best: bool = True,
    ):
        super().__init__()
        self.split, self.source_tokenizer = split, source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.sentences = positive_int(sentences, "sentences")
        self.patience = None if patience is None else positive_int(patience, "patience")
        self.restore_best = bool(restore_best)

    def on_train_begin(self, logs=None):
        self.curve: list[dict] = []
        self.best_bleu, self.best_epoch, self._best_weights = -1.0, 0, None
        self._train_time, self._translator = 0.0, Translator.for_model(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self._train_time += time.perf_counter() - self._t0
        scores = evaluate_translations(
            self.model,
            self.split,
            self.source_tokenizer,
            self.target_tokenizer,
            limit=self.sentences,
            translator=self._translator,
        )
        if logs is not None:
            logs["val_bleu"], logs["val_chrf"] = scores["bleu"], scores["chrf"]
        point = {"epoch": epoch + 1, "time": round(self._train_time, 1)}
        point.update({k: round(float(v), 4) for k, v in (logs or {}).items()})
        point.update(val_bleu=round(scores["bleu"], 2), val_chrf=round(scores["chrf"], 2))
        self.curve.append(point)
        if scores["bleu"] > self.best_bleu:
            self.best_bleu, self.best_epoch = scores["bleu"], epoch + 1
            self._best_weights = self.model.get_weights()
        elif self.patience is not None and epoch + 1 - self.best_epoch >= self.patience:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best and self._best_weights is not None:
            self.model.set_weights(self._best_weights)


def train_translator(
    data: Any,
    config: TranslationConfig = SPA_ENG_TRANSLATION,
    tokenizers: tuple[BPETokenizer, BPETokenizer] | None = None,
    callbacks: Sequence[Any] = (),
    verbose: int | str = 0,
) -> tuple[EncoderDecoder, tuple[BPETokenizer, BPETokenizer], BleuEvaluation, Any]:
    """The recipe of lesson 13 §4 and ``python -m lessons_lib.translation`` on a `load_spa_eng`
    result: tokenizers (unless given), the training pairs, ``config.build``, AdamW, and
    `BleuEvaluation` on the first ``config.eval_sentences`` validation sentences with
    ``config.patience``. Returns ``(model, (source_tokenizer, target_tokenizer), evaluation,
    history)``.
    """
    if not isinstance(config, TranslationConfig):
        raise TypeError(f"config must be a TranslationConfig, got {describe(config)}")
    if tokenizers is None:
        tokenizers = train_translation_tokenizers(
            data.train, config.source_vocab, config.target_vocab
        )
    src_tok, tgt_tok = tokenizers
    train = encode_pairs(data.train, src_tok, tgt_tok, config.max_len)
    model = config.build(src_tok.vocab_size, tgt_tok.vocab_size)
    compile_translator(model, config.learning_rate, config.weight_decay)
    evaluation = BleuEvaluation(
        data.val, src_tok, tgt_tok, config.eval_sentences, patience=config.patience
    )
    history = model.fit(
        LengthBuckets(train, config.batch_size, seed=config.seed).dataset(),
        epochs=config.epochs,
        shuffle=False,  # LengthBuckets shuffles its batches on every pass
        callbacks=[evaluation, *callbacks],
        verbose=verbose,
    )
    return model, tokenizers, evaluation, history


def main(argv: list[str] | None = None) -> int:
    """Train `SPA_ENG_TRANSLATION` on Tatoeba English → Spanish and write lesson 13's checkpoint."""
    from lessons_lib.classifier import FitProgress
    from lessons_lib.data import load_spa_eng
    from lessons_lib.env import setup

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--epochs", type=int, default=SPA_ENG_TRANSLATION.epochs)
    p.add_argument("--seed", type=int, default=SPA_ENG_TRANSLATION.seed)
    p.add_argument("--out", type=Path, default=SPA_ENG_CHECKPOINT)
    a = p.parse_args(argv)
    cfg = dataclasses.replace(SPA_ENG_TRANSLATION, epochs=a.epochs, seed=a.seed)
    setup(seed=cfg.seed)
    data = load_spa_eng(progress=False, max_source_words=cfg.max_source_words)
    load = os.getloadavg()[0]
    print(f"{data}; load average {load:.1f} on {os.cpu_count()} CPUs", flush=True)
    t0 = time.perf_counter()
    tokenizers = train_translation_tokenizers(data.train, cfg.source_vocab, cfg.target_vocab)
    t_tok = time.perf_counter() - t0
    print(f"tokenizers trained in {t_tok:.1f} s", flush=True)

    model, tokenizers, evaluation, fit = train_translator(
        data, cfg, tokenizers=tokenizers, callbacks=[FitProgress()]
    )
    wall = time.perf_counter() - t0
    src_tok, tgt_tok = tokenizers
    translator = Translator.for_model(model)
    scores = {}
    for width in (1, 4):
        s = evaluate_translations(
            model, data.test, src_tok, tgt_tok, beam_width=width, translator=translator
        )
        scores[f"test_bleu_beam{width}"] = round(s["bleu"], 2)
        scores[f"test_chrf_beam{width}"] = round(s["chrf"], 2)
    print(
        f"{len(evaluation.curve)} epochs (best {evaluation.best_epoch}), "
        f"{model.count_params():,} parameters, {wall:.1f} s in all "
        f"({evaluation.curve[-1]['time']:.1f} s of training); {scores}",
        flush=True,
    )
    command = "python -m lessons_lib.translation" + "".join(
        f" --{k} {v}"
        for k, v in (("epochs", a.epochs), ("seed", a.seed))
        if v != getattr(SPA_ENG_TRANSLATION, k)
    )
    save_encoder_decoder(
        model,
        a.out,
        src_tok,
        tgt_tok,
        {
            "command": command,
            "translation_config": dataclasses.asdict(cfg),
            "parameters": int(model.count_params()),
            "epochs_trained": len(evaluation.curve),
            "best_epoch": evaluation.best_epoch,
            "wall_seconds": round(wall, 1),
            "load_average_at_start": round(load, 2),
            "load_average_at_end": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count(),
            **scores,
            "curve": evaluation.curve,
        },
    )
    print(f"wrote {a.out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
