"""A sequence classifier: encoder → pooling → (dropout) → Dense, one label per message (lesson 11).

For token ids ``[batch, T]`` (``[CLS]`` first, then the message, then padding; what
`lessons_lib.tokenizers.encode_texts` returns):

    H = Encoder(ids; m)                       [batch, T, d_model]   m = (ids ≠ pad_id), lesson 11 §2
    u = pool(H, m)                            [batch, d_model]      "cls" or "mean", lesson 11 §3
    logits = Dropout(u) W + b                 [batch, num_classes]
    p(class | message) = softmax(logits)

trained by cross-entropy on the labels with Keras' own ``compile``/``fit`` (lesson 11 §5). The
padding mask ``m`` comes from the encoder's ``pad_id``, so the model is trained on ids alone and its
logits do not depend on how much padding a batch has (lesson 11 §3 checks this to 1e-6).
`SequenceClassifier.from_pretrained` starts from the weights of an encoder pretrained as a masked
language model (`lessons_lib.mlm`, lesson 11 §7).

Bad input is refused with a message naming what was expected: ids out of the vocabulary, an empty
batch, labels outside ``0 … num_classes − 1``, an unknown pooling.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lessons_lib._backend import keras, tf
from lessons_lib._validate import checkpoint_tokens, describe, non_negative_float, positive_int
from lessons_lib.encoder import Encoder
from lessons_lib.pooling import Pooling, check_pooling

__all__ = [
    "SequenceClassifier",
    "FitProgress",
    "fit_classifier",
    "check_ids",
    "check_labels",
    "SMS_CLASSIFIER_CHECKPOINT",
    "save_classifier",
    "load_classifier",
]

#: The spam classifier of lesson 11 §5 trained from scratch by its recipe (`SMS_MLM`'s encoder
#: sizes, [CLS] pooling, `fit_classifier` for up to 10 epochs, early stopping with patience 2,
#: seed 0), made by ``python -m lessons_lib.classifier``; its ``.json`` holds the recipe, the
#: training history and the test scores.
SMS_CLASSIFIER_CHECKPOINT = (
    Path(__file__).resolve().parents[1] / "checkpoints" / "sms_classifier.weights.h5"
)

_MAX_REPORTED = 5  # how many bad ids / labels an error lists


def _numpy(x: Any) -> np.ndarray | None:
    """``x`` as a NumPy array if it holds concrete values (not a symbolic/traced tensor)."""
    if isinstance(x, keras.KerasTensor):
        return None
    if isinstance(x, tf.Tensor):
        if not tf.executing_eagerly():
            return None
        return x.numpy()
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        return np.asarray(x.numpy())
    return np.asarray(x)


def _where(bad: np.ndarray, values: np.ndarray) -> str:
    idx = np.argwhere(bad)
    listed = ", ".join(
        f"{values[tuple(i)]} at {tuple(int(j) for j in i) if len(i) > 1 else int(i[0])}"
        for i in idx[:_MAX_REPORTED]
    )
    more = f" (and {len(idx) - _MAX_REPORTED} more)" if len(idx) > _MAX_REPORTED else ""
    return listed + more


def check_ids(ids: Any, vocab_size: int, max_len: int | None = None) -> np.ndarray:
    """Token ids ``[batch, T]`` as a NumPy array, or a clear error (lesson 11 §5).

    Refuses: not 2-D, not integers, an empty batch, ids outside ``0 … vocab_size − 1`` (naming them
    and where they are), T > ``max_len``.
    """
    arr = _numpy(ids)
    if arr.ndim != 2:
        raise ValueError(f"ids must be token ids [batch, T], got {describe(arr)}")
    if arr.shape[0] == 0:
        raise ValueError("ids is an empty batch (shape (0, T)); give at least one sequence")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"ids must be integer token ids, got {describe(arr)}; "
            "encode texts with lessons_lib.encode_texts first"
        )
    bad = (arr < 0) | (arr >= vocab_size)
    if bad.any():
        raise ValueError(
            f"ids out of the vocabulary (valid ids are 0..{vocab_size - 1}, "
            f"vocab_size={vocab_size}): {_where(bad, arr)} (as [row, position])"
        )
    if max_len is not None and arr.shape[1] > max_len:
        raise ValueError(f"sequence length {arr.shape[1]} exceeds the encoder's max_len={max_len}")
    return arr


def check_labels(labels: Any, num_classes: int, batch: int | None = None) -> np.ndarray:
    """Class ids ``[batch]`` in ``0 … num_classes − 1`` as an int32 array, or a clear error.

    Lesson 11 §5. Booleans count as 0/1 and integral floats as their integers; strings (class
    names) and values outside the classes are refused, naming them and where they are.
    """
    y = _numpy(labels)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"labels must be one class id per sequence, [batch], got {describe(y)}")
    if y.size == 0:
        raise ValueError("labels is empty; give one class id per sequence")
    if y.dtype == bool:
        y = y.astype(np.int32)
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(
            f"labels must be integer class ids 0..{num_classes - 1}, got {describe(y)}; "
            "map class names to ids first, e.g. class_names.index(name)"
        )
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        raise ValueError(
            f"labels outside the classes 0..{num_classes - 1} (num_classes={num_classes}): "
            f"{_where(bad, y)}"
        )
    if batch is not None and len(y) != batch:
        raise ValueError(f"got {len(y)} labels for {batch} sequences; give one label per sequence")
    return y.astype(np.int32)


@keras.saving.register_keras_serializable(package="lessons_lib")
class SequenceClassifier(keras.Model):
    """Encoder + pooling + dropout + ``Dense(num_classes)``: ``ids [batch, T] → logits``.

    Derived in lesson 11 §5 (on lesson 11 §2's encoder and §3's pooling); lesson 11 §7 fine-tunes
    it from a pretrained encoder and lesson 11 §8 trains it on sentiment.

    Args:
        encoder: a `lessons_lib.Encoder`, new or pretrained. Give it ``pad_id``: the padding mask
            is then ``ids != pad_id`` and the model trains on ids alone. (The classifier uses this
            encoder object and its weights; two classifiers given the same encoder share it.)
        num_classes: the number of labels (2 for spam/ham).
        pooling: ``"cls"`` (the vector at position 0, the ``[CLS]`` token) or ``"mean"`` (masked
            mean over the real tokens).
        dropout: dropout on the pooled vector before the output layer (training only).

    Call arguments: ``ids [batch, T]``; ``padding_mask [batch, T]`` (``True``/1 = real token)
    overrides the one from ``pad_id``; ``return_attention`` also returns the encoder's attention
    weights ``[batch, layers, heads, T, T]``. Returns the logits ``[batch, num_classes]`` (the
    softmax is left to the loss: ``SparseCategoricalCrossentropy(from_logits=True)``).

    ``fit``, ``evaluate`` and ``predict`` check NumPy inputs first (ids in the vocabulary, labels in
    the classes, one label per sequence) so that a mistake gets a clear message instead of an error
    deep inside TensorFlow.
    """

    def __init__(
        self,
        encoder: Encoder,
        num_classes: int,
        pooling: str = "cls",
        dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(encoder, Encoder):
            raise TypeError(
                f"encoder must be a lessons_lib.Encoder, got {describe(encoder)}; build one with "
                "Encoder(vocab_size, max_len, d_model, num_heads, num_layers, pad_id=...)"
            )
        self.encoder = encoder
        self.num_classes = positive_int(num_classes, "num_classes")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.pooling = check_pooling(pooling)
        self.dropout = non_negative_float(dropout, "dropout", upper=1.0)
        self.pool = Pooling(self.pooling, name="pool")
        self.drop = keras.layers.Dropout(self.dropout)
        self.head = keras.layers.Dense(self.num_classes, name="head")

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        num_classes: int,
        pooling: str = "cls",
        dropout: float = 0.0,
        tokenizer: Any = None,
        **kwargs,
    ) -> "SequenceClassifier":
        """A classifier whose encoder starts from a pretrained checkpoint (lesson 11 §7).

        ``path`` is a ``.weights.h5`` written by `lessons_lib.mlm.save_encoder` (e.g. the shipped
        ``lessons_lib.mlm.SMS_MLM_CHECKPOINT``); with ``tokenizer`` given, the checkpoint must have
        been made with that tokenizer's vocabulary. The output layer starts from scratch.
        """
        from lessons_lib.mlm import load_encoder

        encoder, _ = load_encoder(path, tokenizer=tokenizer)
        return cls(encoder, num_classes, pooling=pooling, dropout=dropout, **kwargs)

    def build(self, input_shape):
        if not self.encoder.built:
            self.encoder.build(input_shape)
        hidden = tuple(input_shape) + (self.encoder.d_model,)
        if not self.head.built:
            self.head.build((hidden[0], self.encoder.d_model))
        if not self.pool.built:
            self.pool.build(hidden)

    def call(self, ids, padding_mask=None, return_attention=False, training=None):
        """Encode (keys masked by padding), pool, dropout, project; lesson 11 §5.

        Returns ``logits [batch, num_classes]`` (and the attention weights when
        ``return_attention``).
        """
        values = _numpy(ids)
        if values is not None:  # concrete ids (an eager call): refuse bad ones here, clearly
            check_ids(values, self.encoder.vocab_size, self.encoder.max_len)
        mask = self.encoder.padding_mask_for(ids, padding_mask)
        h, weights = self.encoder(ids, padding_mask=mask, return_attention=True, training=training)
        logits = self.head(self.drop(self.pool(h, padding_mask=mask), training=training))
        return (logits, weights) if return_attention else logits

    # --- clear errors before Keras sees the data ------------------------------------------------
    def _check_xy(self, x: Any, y: Any = None) -> None:
        if x is None or not isinstance(x, (np.ndarray, list, tuple, tf.Tensor)):
            return  # a tf.data.Dataset or PyDataset: Keras reads it batch by batch
        ids = check_ids(x, self.encoder.vocab_size, self.encoder.max_len)
        if y is not None:
            check_labels(y, self.num_classes, batch=len(ids))

    def fit(self, x=None, y=None, *args, validation_data=None, **kwargs):
        """Keras' ``fit``, after checking ids, labels and ``validation_data`` (lesson 11 §5)."""
        self._check_xy(x, y)
        if isinstance(validation_data, (tuple, list)) and len(validation_data) >= 2:
            self._check_xy(validation_data[0], validation_data[1])
        return super().fit(x, y, *args, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """Keras' ``evaluate``, after checking ids and labels."""
        self._check_xy(x, y)
        return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        """Keras' ``predict`` (logits ``[batch, num_classes]``), after checking the ids."""
        self._check_xy(x)
        return super().predict(x, *args, **kwargs)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self) -> dict:
        return {
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "num_classes": self.num_classes,
            "pooling": self.pooling,
            "dropout": self.dropout,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict) -> "SequenceClassifier":
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)


def fit_classifier(
    model: SequenceClassifier,
    ids: Any,
    labels: Any,
    *,
    epochs: int = 10,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.01,
    validation_data: tuple | None = None,
    patience: int | None = None,
    verbose: Any = 0,
    callbacks: Sequence[Any] = (),
    jit_compile: Any = False,
    **fit_kwargs,
):
    """Lesson 11 §5's recipe in one call: ``compile`` (AdamW, cross-entropy, accuracy), ``fit``.

    The optimiser is AdamW with ``learning_rate`` and ``weight_decay``, the loss
    ``SparseCategoricalCrossentropy(from_logits=True)``, the metric accuracy. With
    ``validation_data`` and ``patience``, ``EarlyStopping`` watches the validation loss and keeps
    the best epoch's weights. ``jit_compile=False`` by default: for models this small, XLA's
    compilation takes longer on a CPU than the whole training it would speed up. Lesson 11 §7 and
    ``benchmarks/bench_labels.py`` use it for every run of the pretraining-vs-labels sweep, §8 for
    the sentiment model. Returns Keras' ``History``.
    """
    if not isinstance(model, SequenceClassifier):
        raise TypeError(f"model must be a SequenceClassifier, got {describe(model)}")
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )
    callbacks = list(callbacks)
    if patience is not None:
        if validation_data is None:
            raise ValueError("patience (early stopping) needs validation_data to watch")
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=positive_int(patience, "patience"),
                restore_best_weights=True,
            )
        )
    return model.fit(
        ids,
        labels,
        epochs=positive_int(epochs, "epochs"),
        batch_size=positive_int(batch_size, "batch_size"),
        validation_data=validation_data,
        callbacks=callbacks,
        verbose=verbose,
        **fit_kwargs,
    )


class FitProgress(keras.callbacks.Callback):
    """A progress bar for ``fit`` that a notebook can store: one line per epoch, updated in place.

    Keras' own bar (``verbose=1``) redraws itself with backspace characters, which a saved
    notebook would keep as control characters; this callback redraws a display instead (in
    Jupyter) or prints one line per epoch (elsewhere). Use it with ``verbose=0``; lesson 11 §5.

    Each line reads ``epoch 2/10 ━━━━━━━━━━━━━━━━━━━━ 140/140 · 3.1 s · loss 0.0521 · accuracy
    0.9843 · val_loss 0.0410 · val_accuracy 0.9874``.
    """

    def __init__(self, every: float = 0.5, width: int = 20):
        super().__init__()
        self.every = float(every)
        self.width = positive_int(width, "width")

    def on_train_begin(self, logs=None):
        self.lines: list[str] = []
        self._handle = None
        if "ipykernel" in sys.modules:
            from IPython.display import Pretty, display

            self._pretty = Pretty
            self._handle = display(Pretty("starting..."), display_id=True)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._t0, self._shown = epoch, time.perf_counter(), 0.0

    def _line(self, step: int, logs: dict | None) -> str:
        total = self.params.get("steps") or step
        done = int(self.width * min(step / max(total, 1), 1.0))
        bar = "━" * done + "─" * (self.width - done)
        metrics = "".join(f" · {k} {v:.4f}" for k, v in (logs or {}).items())
        epochs = self.params.get("epochs", "?")
        seconds = time.perf_counter() - self._t0
        return f"epoch {self._epoch + 1}/{epochs} {bar} {step}/{total} · {seconds:.1f} s{metrics}"

    def _show(self, current: str | None = None) -> None:
        if self._handle is not None:
            self._handle.update(
                self._pretty("\n".join(self.lines + ([current] if current else [])))
            )

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self._handle is not None and now - self._shown >= self.every:
            self._shown = now
            self._show(self._line(batch + 1, logs))

    def on_epoch_end(self, epoch, logs=None):
        line = self._line(self.params.get("steps") or 0, logs)
        self.lines.append(line)
        if self._handle is not None:
            self._show()
        else:
            print(line, flush=True)


# --------------------------------------------------------------------------------------------------
# The shipped classifier (lesson 11 §5)
# --------------------------------------------------------------------------------------------------
def save_classifier(
    model: SequenceClassifier, path: str | Path, metadata: dict | None = None
) -> Path:
    """Weights to ``path`` (``.weights.h5``), configuration + ``metadata`` to ``path.json``.

    `load_classifier` reads both back. Record the tokenizer's ``tokens`` in ``metadata`` so that
    loading can refuse another vocabulary (``python -m lessons_lib.classifier`` does).
    """
    if not isinstance(model, SequenceClassifier):
        raise TypeError(f"model must be a SequenceClassifier, got {describe(model)}")
    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ValueError(f"the path must end with .weights.h5, got {path.name!r}")
    if not model.built:
        raise ValueError("the classifier is not built: call it once on a batch of ids first")
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {k: v for k, v in model.get_config().items() if k != "name"}
    # An uncompiled copy: a trained model's file would also hold the optimiser's state, which
    # loading for inference does not want (Keras warns about it) and which triples the size.
    copy = SequenceClassifier.from_config(config)
    copy(np.zeros((1, model.encoder.max_len), dtype="int32"))
    copy.set_weights(model.get_weights())
    copy.save_weights(path)
    info = {"config": config, **(metadata or {})}
    Path(str(path) + ".json").write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    return path


def load_classifier(
    path: str | Path = SMS_CLASSIFIER_CHECKPOINT, tokenizer: Any = None
) -> tuple[SequenceClassifier, dict]:
    """A new `SequenceClassifier` built from ``path.json``'s configuration, with ``path``'s weights.

    With ``tokenizer`` given, the checkpoint must have been trained with that tokenizer's
    vocabulary, id for id (`lessons_lib._validate.checkpoint_tokens`). Returns
    ``(model, metadata)``; lesson 11 §5 loads the shipped one.
    """
    from lessons_lib.mlm import tokenizer_hint

    path = Path(path)
    meta_path = Path(str(path) + ".json")
    if not path.exists() or not meta_path.exists():
        raise FileNotFoundError(
            f"classifier checkpoint {path} (and its {meta_path.name}) not found; "
            "make it with `python -m lessons_lib.classifier`"
        )
    meta = json.loads(meta_path.read_text())
    checkpoint_tokens(path, meta.get("tokens", []), tokenizer, hint=tokenizer_hint(meta))
    model = SequenceClassifier.from_config(meta["config"])
    model(np.zeros((1, model.encoder.max_len), dtype="int32"))
    model.load_weights(path)
    return model, meta


def main(argv: list[str] | None = None) -> int:
    """Train lesson 11 §5's spam classifier from scratch and write ``SMS_CLASSIFIER_CHECKPOINT``."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    from lessons_lib.data import load_sms_spam
    from lessons_lib.env import setup
    from lessons_lib.mlm import SMS_MLM
    from lessons_lib.tokenizers import encode_texts

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--out", type=Path, default=SMS_CLASSIFIER_CHECKPOINT)
    a = p.parse_args(argv)
    recipe = {
        "seed": 0,
        "epochs": 10,
        "patience": 2,
        "batch_size": 32,
        "learning_rate": 1e-3,
        "weight_decay": 0.01,
        "pooling": "cls",
        "dropout": 0.0,
    }
    setup(seed=recipe["seed"], verbose=False)
    data = load_sms_spam(progress=False)
    tok = SMS_MLM.tokenizer(data.train.texts)
    x_train, x_val, x_test = (
        encode_texts(tok, s.texts, SMS_MLM.max_len)[0] for s in (data.train, data.val, data.test)
    )
    y_train, y_val, y_test = (np.asarray(s.labels) for s in (data.train, data.val, data.test))
    keras.utils.set_random_seed(recipe["seed"])
    model = SequenceClassifier(SMS_MLM.encoder(tok.vocab_size), num_classes=2, pooling="cls")
    model(x_train[:2])
    load_at_start = os.getloadavg()[0]
    t0 = time.perf_counter()
    history = fit_classifier(
        model,
        x_train,
        y_train,
        epochs=recipe["epochs"],
        batch_size=recipe["batch_size"],
        learning_rate=recipe["learning_rate"],
        weight_decay=recipe["weight_decay"],
        validation_data=(x_val, y_val),
        patience=recipe["patience"],
        verbose=2,
    )
    wall = time.perf_counter() - t0
    logits = np.concatenate(
        [model(x_test[i : i + 256]).numpy() for i in range(0, len(x_test), 256)]
    )
    pred = logits.argmax(axis=1)
    precision, recall, f1, _ = precision_recall_fscore_support(y_test, pred, average="binary")
    val_loss = history.history["val_loss"]
    best = int(np.argmin(val_loss))
    print(
        f"{len(val_loss)} epochs (best {best + 1}) in {wall:.0f} s; test accuracy "
        f"{accuracy_score(y_test, pred):.4f}, spam precision {precision:.4f}, recall {recall:.4f}, "
        f"F1 {f1:.4f}",
        flush=True,
    )
    save_classifier(
        model,
        a.out,
        {
            "command": "python -m lessons_lib.classifier",
            "recipe": recipe,
            "encoder_sizes": "lessons_lib.mlm.SMS_MLM",
            "epochs_trained": len(val_loss),
            "best_epoch": best + 1,
            "history": {k: [round(float(v), 6) for v in vs] for k, vs in history.history.items()},
            "train_seconds": round(wall, 1),
            "cpus": os.cpu_count(),
            "load_average_at_start": round(load_at_start, 2),
            "test": {
                "accuracy": round(float(accuracy_score(y_test, pred)), 6),
                "precision_spam": round(float(precision), 6),
                "recall_spam": round(float(recall), 6),
                "f1_spam": round(float(f1), 6),
            },
            "tokenizer": "lessons_lib.mlm.SMS_MLM.tokenizer(load_sms_spam().train.texts)",
            "tokens": list(tok.tokens),
        },
    )
    print(f"wrote {a.out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
