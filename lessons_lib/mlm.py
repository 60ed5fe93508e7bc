"""Masked-language-model pretraining, BERT's objective (Devlin et al., 2019; lesson 11 §7).

Unlabeled text is its own supervision: hide some tokens and ask the encoder to restore them from
both sides. For a sequence x = (x_1 … x_T), choose a set C of 15 % of its real, non-special
positions; the model's input x̃ equals x except at the chosen positions, where

    x̃_t = [MASK]           with probability 0.8,
          a random token   with probability 0.1,
          x_t (unchanged)  with probability 0.1,          for t ∈ C,

and the loss is the cross-entropy of the original tokens at the chosen positions only,

    L = −(1 / |C|) ∑_{t ∈ C} log p_θ(x_t | x̃),      p_θ(· | x̃) = softmax(H_t Eᵀ + b),

with H = Encoder(x̃) and E the encoder's own token table (the output layer is tied to it, as in
lesson 08's GPT). The 10 % random and 10 % unchanged tokens keep the model from learning that only
``[MASK]`` positions matter: [MASK] never occurs in fine-tuning, and every input token could be
one to restore. In Keras terms the positions in C carry sample weight 1 and all others (unchosen
tokens, ``[CLS]``, padding) weight 0; a weighted mean over a batch is exactly L.

`mask_tokens` draws C and x̃ (NumPy, seeded); `MaskedLMBatches` masks afresh every epoch
(dynamic masking, RoBERTa's choice) for ``fit``; `MaskedLanguageModel` is the encoder with the
tied output layer; `masked_lm_loss` and `masked_lm_accuracy` count chosen positions only.
`save_encoder` / `load_encoder` keep a pretrained encoder (``.weights.h5`` + ``.json``), and
``python -m lessons_lib.mlm`` pretrains the shipped one (`SMS_MLM_CHECKPOINT`) on the training
messages of the SMS Spam Collection, without their labels.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lessons_lib._backend import keras, ops
from lessons_lib._validate import checkpoint_tokens, describe, non_negative_float, positive_int
from lessons_lib.encoder import Encoder

__all__ = [
    "SPECIAL_TOKENS",
    "MLMConfig",
    "SMS_MLM",
    "SMS_MLM_CHECKPOINT",
    "LABELS_SWEEP_JSON",
    "mask_tokens",
    "MaskedLMBatches",
    "MaskedLanguageModel",
    "masked_lm_loss",
    "masked_lm_accuracy",
    "save_encoder",
    "load_encoder",
]

ROOT = Path(__file__).resolve().parents[1]
#: The shipped encoder, pretrained by ``python -m lessons_lib.mlm`` (lesson 11 §7).
SMS_MLM_CHECKPOINT = ROOT / "checkpoints" / "sms_mlm_encoder.weights.h5"
#: The pretraining-vs-labels sweep, written by ``python benchmarks/bench_labels.py --json ...``
#: and plotted by lesson 11 §7.
LABELS_SWEEP_JSON = ROOT / "benchmarks" / "results" / "bench_labels_sms.json"
#: The special tokens of lesson 11's tokenizers, ids 0 … 3 (padding is id 0).
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[MASK]")


# --------------------------------------------------------------------------------------------------
# Masking (NumPy)
# --------------------------------------------------------------------------------------------------
def mask_tokens(
    ids: Any,
    *,
    mask_id: int,
    vocab_size: int,
    special_ids: Sequence[int] = (),
    rate: float = 0.15,
    mask_prob: float = 0.8,
    random_prob: float = 0.1,
    seed: Any = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BERT's masking: choose ``rate`` of each row's real tokens, then 80 % [MASK] / 10 % / 10 %.

    Derived in lesson 11 §7. In each row, the candidates are the positions whose id is neither in
    ``special_ids`` nor ``mask_id`` (so never padding, ``[CLS]`` or ``[UNK]`` when they are listed);
    k = max(1, round(rate · n)) of its n candidates are chosen uniformly without replacement (as
    in BERT's code; a row without candidates gets none). Each chosen position independently becomes
    ``mask_id`` with probability ``mask_prob``, a random ordinary token (uniform over the ids that
    are not special; it may equal the original) with probability ``random_prob``, and stays as it
    is otherwise.

    Args:
        ids: token ids ``[batch, T]``.
        mask_id: the id of ``[MASK]``.
        vocab_size: the number of ids (random replacements are drawn from ``0 … vocab_size − 1``
            minus the special ids).
        special_ids: ids never chosen and never drawn as a random replacement (padding, ``[CLS]``,
            ...).
        rate: the share of candidates chosen per row (BERT: 0.15).
        mask_prob, random_prob: the split of the chosen positions (BERT: 0.8 and 0.1; the rest stay
            unchanged).
        seed: an int, a sequence of ints, or a ``numpy.random.Generator``.

    Returns:
        ``(inputs, labels, weights)``: ``inputs`` int32 ``[batch, T]``, the ids with the
        replacements; ``labels`` int32, the original ids (what to restore); ``weights`` float32,
        1.0 exactly at the chosen positions and 0.0 everywhere else, for Keras' ``sample_weight``.
    """
    arr = np.asarray(ids.numpy() if hasattr(ids, "numpy") else ids)
    if arr.ndim != 2 or arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"ids must be integer token ids [batch, T], got {describe(arr)}")
    if arr.shape[0] == 0:
        raise ValueError("ids is an empty batch (shape (0, T)); give at least one sequence")
    vocab_size = positive_int(vocab_size, "vocab_size")
    bad = (arr < 0) | (arr >= vocab_size)
    if bad.any():
        r, t = np.argwhere(bad)[0]
        raise ValueError(
            f"ids out of the vocabulary: {arr[r, t]} at [{r}, {t}] "
            f"({int(bad.sum())} in all); valid ids are 0..{vocab_size - 1}"
        )
    specials = {int(mask_id)} | {int(s) for s in special_ids}
    outside = sorted(s for s in specials if not 0 <= s < vocab_size)
    if outside:
        raise ValueError(
            f"mask_id and special_ids must be ids in 0..{vocab_size - 1}, got {outside}"
        )
    rate = non_negative_float(rate, "rate", upper=1.0)
    if rate == 0:
        raise ValueError("rate must be > 0 (the share of tokens to choose), got 0")
    mask_prob = non_negative_float(mask_prob, "mask_prob")
    random_prob = non_negative_float(random_prob, "random_prob")
    if mask_prob + random_prob > 1:
        raise ValueError(f"mask_prob + random_prob must be <= 1, got {mask_prob} + {random_prob}")
    ordinary = np.setdiff1d(np.arange(vocab_size), sorted(specials))
    if random_prob > 0 and ordinary.size == 0:
        raise ValueError("every id is special: there is no ordinary token to draw at random")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    candidate = ~np.isin(arr, sorted(specials))
    n = candidate.sum(axis=1)
    k = np.where(n > 0, np.maximum(1, np.floor(rate * n + 0.5)), 0).astype(int)
    keys = np.where(candidate, rng.random(arr.shape), 2.0)  # non-candidates sort last
    rank = np.argsort(np.argsort(keys, axis=1, kind="stable"), axis=1, kind="stable")
    chosen = rank < k[:, None]

    u = rng.random(arr.shape)
    to_mask = chosen & (u < mask_prob)
    to_random = chosen & (u >= mask_prob) & (u < mask_prob + random_prob)
    inputs = arr.astype(np.int32).copy()
    inputs[to_mask] = mask_id
    if to_random.any():
        inputs[to_random] = rng.choice(ordinary, size=int(to_random.sum()))
    return inputs, arr.astype(np.int32), chosen.astype(np.float32)


class MaskedLMBatches(keras.utils.PyDataset):
    """Batches ``(inputs, labels, weights)`` for ``fit``, masked afresh every epoch (lesson 11 §7).

    Dynamic masking (Liu et al., 2019, RoBERTa): batch i of epoch e is `mask_tokens` of its rows
    with a seed made of ``(seed, e, i)``, so a small corpus gives new prediction problems every
    epoch and a run is reproducible. The rows are shuffled every epoch.

    Args:
        ids: token ids ``[n, T]`` of the unlabeled corpus.
        batch_size: rows per batch.
        mask_id, vocab_size, special_ids, rate: as in `mask_tokens`.
        seed: seeds the shuffling and the masking.
        shuffle: shuffle the rows every epoch.
    """

    def __init__(
        self,
        ids: Any,
        batch_size: int,
        *,
        mask_id: int,
        vocab_size: int,
        special_ids: Sequence[int] = (),
        rate: float = 0.15,
        seed: int = 0,
        shuffle: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.ids = np.asarray(ids)
        if self.ids.ndim != 2 or self.ids.shape[0] == 0:
            raise ValueError(f"ids must be a non-empty batch [n, T], got {describe(self.ids)}")
        self.batch_size = positive_int(batch_size, "batch_size")
        self.options = dict(
            mask_id=mask_id, vocab_size=vocab_size, special_ids=tuple(special_ids), rate=rate
        )
        mask_tokens(self.ids[:1], seed=0, **self.options)  # refuse bad settings now, not in fit
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.epoch = 0
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        n = len(self.ids)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, self.epoch, 1]).permutation(n)

    def __len__(self) -> int:
        return math.ceil(len(self.ids) / self.batch_size)

    def __getitem__(self, i: int):
        rows = self._order[i * self.batch_size : (i + 1) * self.batch_size]
        return mask_tokens(self.ids[rows], seed=[self.seed, self.epoch, 0, int(i)], **self.options)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._permutation()


# --------------------------------------------------------------------------------------------------
# The model, its loss and accuracy
# --------------------------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="lessons_lib")
class MaskedLanguageModel(keras.Model):
    """An `Encoder` with a tied output layer: ``ids [batch, T] → logits [batch, T, vocab_size]``.

    logits_t = H_t Eᵀ + b, with H = Encoder(ids) and E the encoder's token table (lesson 11 §7;
    lesson 08 §1 ties a GPT's output layer the same way). Only the bias b ∈ ℝ^V is new, so the
    encoder's weights are all there is to reuse after pretraining: ``mlm.encoder``.

    Train it with ``compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
    reduction="mean_with_sample_weight"), weighted_metrics=["accuracy"])`` and ``fit`` on
    `MaskedLMBatches` (or ``x=inputs, y=labels, sample_weight=weights`` from `mask_tokens`):
    the loss is then ∑ w_t CE_t / ∑ w_t over each batch, `masked_lm_loss`.

    Args:
        encoder: the `lessons_lib.Encoder` to pretrain (give it ``pad_id``).
    """

    def __init__(self, encoder: Encoder, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(encoder, Encoder):
            raise TypeError(f"encoder must be a lessons_lib.Encoder, got {describe(encoder)}")
        self.encoder = encoder
        self.output_bias = self.add_weight(
            shape=(encoder.vocab_size,), initializer="zeros", name="output_bias"
        )

    @classmethod
    def from_pretrained(
        cls, path: str | Path = SMS_MLM_CHECKPOINT, tokenizer: Any = None
    ) -> "MaskedLanguageModel":
        """The pretrained masked LM of a checkpoint: its encoder and, if recorded, its output bias.

        `load_encoder` reads the encoder (and checks ``tokenizer``); `save_encoder` called by
        ``python -m lessons_lib.mlm`` records the bias b in the ``.json`` (lesson 11 §7).
        """
        encoder, meta = load_encoder(path, tokenizer=tokenizer)
        model = cls(encoder)
        if "output_bias" in meta:
            model.output_bias.assign(np.asarray(meta["output_bias"], dtype="float32"))
        return model

    def build(self, input_shape):
        if not self.encoder.built:
            self.encoder.build(input_shape)

    def call(self, ids, padding_mask=None, training=None):
        """``H Eᵀ + b`` at every position; lesson 11 §7."""
        h = self.encoder(ids, padding_mask=padding_mask, training=training)
        table = ops.convert_to_tensor(self.encoder.embed.embeddings)
        return ops.matmul(h, ops.transpose(ops.cast(table, h.dtype))) + self.output_bias

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.encoder.vocab_size,)

    def get_config(self) -> dict:
        return {"encoder": keras.saving.serialize_keras_object(self.encoder), "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> "MaskedLanguageModel":
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)


def _weighted(labels, logits, weights):
    labels = ops.convert_to_tensor(labels)
    logits = ops.cast(ops.convert_to_tensor(logits), "float32")
    weights = ops.cast(ops.convert_to_tensor(weights), "float32")
    if len(logits.shape) != 3 or tuple(labels.shape) != tuple(logits.shape[:2]):
        raise ValueError(
            f"expected labels [batch, T] and logits [batch, T, V], got labels {describe(labels)} "
            f"and logits {describe(logits)}"
        )
    if tuple(weights.shape) != tuple(labels.shape):
        raise ValueError(
            f"weights must have the shape of labels {tuple(labels.shape)}, got "
            f"{tuple(weights.shape)}"
        )
    return labels, logits, weights


def masked_lm_loss(labels, logits, weights):
    """L = ∑_t w_t CE(logits_t, labels_t) / max(∑_t w_t, 1): the chosen positions only (§7).

    With `mask_tokens`'s weights (1 at the chosen positions, 0 elsewhere) this is the mean
    cross-entropy over the chosen positions of the batch; padding and unchosen tokens contribute
    nothing, whatever their labels and logits. Lesson 11 §7.
    """
    labels, logits, weights = _weighted(labels, logits, weights)
    ce = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    return ops.sum(weights * ce) / ops.maximum(ops.sum(weights), 1.0)


def masked_lm_accuracy(labels, logits, weights):
    """∑_t w_t [argmax logits_t = labels_t] / max(∑_t w_t, 1): accuracy on the chosen positions.

    Lesson 11 §7.
    """
    labels, logits, weights = _weighted(labels, logits, weights)
    hit = ops.cast(ops.equal(ops.argmax(logits, axis=-1), ops.cast(labels, "int64")), "float32")
    return ops.sum(weights * hit) / ops.maximum(ops.sum(weights), 1.0)


# --------------------------------------------------------------------------------------------------
# Keeping a pretrained encoder
# --------------------------------------------------------------------------------------------------
def _encoder_config(encoder: Encoder) -> dict:
    return {k: v for k, v in encoder.get_config().items() if k != "name"}


def save_encoder(encoder: Encoder, path: str | Path, metadata: dict | None = None) -> Path:
    """Weights to ``path`` (``.weights.h5``), configuration + ``metadata`` to ``path.json``.

    Lesson 11 §7; `load_encoder` reads both back. Record the command that made it and the
    tokenizer's ``tokens`` in ``metadata`` (``python -m lessons_lib.mlm`` does).
    """
    if not isinstance(encoder, Encoder):
        raise TypeError(f"encoder must be a lessons_lib.Encoder, got {describe(encoder)}")
    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ValueError(f"the path must end with .weights.h5, got {path.name!r}")
    if not encoder.built:
        raise ValueError("the encoder is not built: call it once on a batch of ids first")
    path.parent.mkdir(parents=True, exist_ok=True)
    encoder.save_weights(path)
    info = {"config": _encoder_config(encoder), **(metadata or {})}
    Path(str(path) + ".json").write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    return path


def tokenizer_hint(meta: dict) -> str:
    """The end of a vocabulary error: how the checkpoint's ``.json`` says its tokenizer was made."""
    return f". Build the tokenizer as its .json says ({meta.get('tokenizer', 'see the file')})"


def load_encoder(
    path: str | Path = SMS_MLM_CHECKPOINT, tokenizer: Any = None
) -> tuple[Encoder, dict]:
    """A new `Encoder` built from ``path.json``'s configuration, with ``path``'s weights.

    Lesson 11 §7 (and `SequenceClassifier.from_pretrained`). With ``tokenizer`` given, the
    checkpoint's recorded ``tokens`` must be that tokenizer's, id for id: an encoder pretrained on
    other ids would read every message wrongly. Returns ``(encoder, metadata)``.
    """
    path = Path(path)
    meta_path = Path(str(path) + ".json")
    if not path.exists() or not meta_path.exists():
        raise FileNotFoundError(
            f"pretrained encoder {path} (and its {meta_path.name}) not found; "
            "make it with `python -m lessons_lib.mlm`"
        )
    meta = json.loads(meta_path.read_text())
    checkpoint_tokens(path, meta.get("tokens", []), tokenizer, hint=tokenizer_hint(meta))
    encoder = Encoder.from_config(meta["config"])
    encoder(np.zeros((1, encoder.max_len), dtype="int32"))
    encoder.load_weights(path)
    return encoder, meta


# --------------------------------------------------------------------------------------------------
# The shipped pretraining run
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class MLMConfig:
    """Lesson 11's tokenizer, encoder and pretraining recipe (`SMS_MLM` is the shipped one).

    BPE with ``vocab_size`` tokens (`SPECIAL_TOKENS` first) trained on the training messages only;
    a pre-norm `Encoder` of ``num_layers`` × ``d_model`` with ``max_len`` positions; pretraining
    for ``epochs`` epochs of `MaskedLMBatches` with AdamW at ``learning_rate``.
    """

    vocab_size: int = 1000
    max_len: int = 64
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 2
    dropout: float = 0.1
    epochs: int = 50
    batch_size: int = 32
    learning_rate: float = 1e-3
    rate: float = 0.15
    seed: int = 0

    def tokenizer(self, texts: Sequence[str]):
        """BPE trained on ``texts`` (the training split), special tokens `SPECIAL_TOKENS`."""
        from lessons_lib.tokenizers import BPETokenizer

        return BPETokenizer.train(
            "\n".join(texts), self.vocab_size, special_tokens=SPECIAL_TOKENS, unk_token="[UNK]"
        )

    def encoder(self, vocab_size: int | None = None) -> Encoder:
        """A new, built `Encoder` of these sizes, ``pad_id = 0`` (``[PAD]``)."""
        enc = Encoder(
            vocab_size or self.vocab_size,
            self.max_len,
            self.d_model,
            self.num_heads,
            self.num_layers,
            dropout=self.dropout,
            pad_id=SPECIAL_TOKENS.index("[PAD]"),
        )
        enc(np.zeros((1, self.max_len), dtype="int32"))
        return enc


#: The shipped recipe: BPE 1 k, 2 layers, d_model 64, 4 heads, max_len 64 (lesson 11 §7).
SMS_MLM = MLMConfig()


def main(argv: list[str] | None = None) -> int:
    """Pretrain `SMS_MLM` on the SMS training messages (no labels) and write the checkpoint."""
    from lessons_lib.data import load_sms_spam
    from lessons_lib.env import setup
    from lessons_lib.tokenizers import encode_texts

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--epochs", type=int, default=SMS_MLM.epochs)
    p.add_argument("--out", type=Path, default=SMS_MLM_CHECKPOINT)
    a = p.parse_args(argv)
    cfg = dataclasses.replace(SMS_MLM, epochs=a.epochs)
    setup(seed=cfg.seed, verbose=False)
    data = load_sms_spam()
    tok = cfg.tokenizer(data.train.texts)
    specials = [tok.token_to_id(s) for s in SPECIAL_TOKENS]
    mask_id = tok.token_to_id("[MASK]")
    train_ids, _ = encode_texts(tok, data.train.texts, cfg.max_len)
    val_ids, _ = encode_texts(tok, data.val.texts, cfg.max_len)
    batches = MaskedLMBatches(
        train_ids,
        cfg.batch_size,
        mask_id=mask_id,
        vocab_size=tok.vocab_size,
        special_ids=specials,
        rate=cfg.rate,
        seed=cfg.seed,
    )
    val = mask_tokens(
        val_ids, mask_id=mask_id, vocab_size=tok.vocab_size, special_ids=specials, seed=12345
    )
    keras.utils.set_random_seed(cfg.seed)
    model = MaskedLanguageModel(cfg.encoder(tok.vocab_size))
    model(train_ids[:1])
    model.compile(
        optimizer=keras.optimizers.AdamW(cfg.learning_rate, weight_decay=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"
        ),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    print(
        f"{len(train_ids):,} training messages (labels unused), {tok.vocab_size} tokens, "
        f"{model.encoder.count_params():,} encoder parameters",
        flush=True,
    )
    t0 = time.perf_counter()
    model.fit(batches, epochs=cfg.epochs, validation_data=val, verbose=2)
    wall = time.perf_counter() - t0
    loss, acc = model.evaluate(val[0], val[1], sample_weight=val[2], verbose=0)
    print(
        f"validation (fixed masks): masked-token loss {loss:.4f}, accuracy {acc:.4f}; {wall:.0f} s",
        flush=True,
    )
    command = "python -m lessons_lib.mlm" + (
        "" if a.epochs == SMS_MLM.epochs else f" --epochs {a.epochs}"
    )
    save_encoder(
        model.encoder,
        a.out,
        {
            "command": command,
            "recipe": dataclasses.asdict(cfg),
            "corpus": "load_sms_spam().train.texts (labels unused)",
            "val_masked_loss": round(float(loss), 4),
            "val_masked_accuracy": round(float(acc), 4),
            "val_masking_seed": 12345,
            "train_seconds": round(wall, 1),
            "tokenizer": {
                "kind": "BPETokenizer.train on the training messages joined by newlines",
                "vocab_size": cfg.vocab_size,
                "special_tokens": list(SPECIAL_TOKENS),
                "unk_token": "[UNK]",
            },
            "tokens": list(tok.tokens),
            "output_bias": [float(b) for b in model.output_bias.numpy()],
        },
    )
    print(f"wrote {a.out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
