"""Training a GPT language model on characters (lesson 09).

The causal language-model loss (lesson 09 §3) is the average negative log-likelihood of each next
token over a batch of B windows of T tokens:

    L = −(1 / (B·T)) ∑_{b,t} log p_θ(x_{b,t+1} | x_{b,≤t})
      = mean over b, t of CrossEntropy(logits_{b,t}, x_{b,t+1})

At initialisation the model's predictions are close to uniform, so L ≈ ln V (``ln 65 ≈ 4.17`` for
Tiny Shakespeare's characters).

Optimisation follows GPT-2/nanoGPT practice (lesson 09 §4): AdamW (Loshchilov & Hutter, 2019) with
weight decay on matrices only, a linear warm-up then cosine decay of the learning rate, and gradient
clipping by global norm.

The reference ("baby GPT") configuration — 4 layers, 4 heads, d_model 128, context max_len 64,
batch 12, no biases, tied embeddings, dropout 0, lr 1e-3 → 1e-4 over 2,000 steps with 100 warm-up
steps — is `BABY_GPT` and `BABY_TRAIN`. ``python -m lessons_lib.training`` trains it and
writes the shipped checkpoint (lesson 09 §6).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lessons_lib._backend import keras, tf
from lessons_lib._validate import describe, positive_int
from lessons_lib.gpt import GPT

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT_DIR = ROOT / "checkpoints"
BABY_CHECKPOINT = CHECKPOINT_DIR / "baby_gpt_shakespeare.weights.h5"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Sizes of a `GPT` (lesson 09 §2; ``BABY_GPT`` is the reference)."""

    vocab_size: int = 65
    max_len: int = 64
    d_model: int = 128
    num_heads: int = 4
    num_layers: int = 4
    dropout: float = 0.0
    use_bias: bool = False
    tie_embeddings: bool = True

    def build(self, seed: int = 0) -> GPT:
        """A new GPT of this configuration, initialised by `gpt2_init` with ``seed``.

        Lesson 09 §2 builds the baby GPT with it: pre-norm blocks, GELU, learned positions.
        """
        model = GPT(
            self.vocab_size,
            self.max_len,
            self.d_model,
            self.num_heads,
            self.num_layers,
            dropout=self.dropout,
            use_bias=self.use_bias,
            tie_embeddings=self.tie_embeddings,
            activation="gelu",
            norm_first=True,
            positional="learned",
        )
        model(np.zeros((1, self.max_len), dtype=np.int32))
        gpt2_init(model, seed=seed)
        return model


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (lesson 09 §4, §5); the defaults, ``BABY_TRAIN``, are the reference."""

    batch_size: int = 12
    max_steps: int = 2000
    learning_rate: float = 1e-3
    min_learning_rate: float = 1e-4
    warmup_steps: int = 100
    decay_steps: int = 2000
    beta_1: float = 0.9
    beta_2: float = 0.99
    epsilon: float = 1e-8  # PyTorch's AdamW default (Keras' is 1e-7)
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 1337


#: The baby GPT of lesson 09 §2: 4 layers, 4 heads, d_model 128, max_len 64, 804,096 parameters.
BABY_GPT = ModelConfig()
#: The reference run of lesson 09 §5: 2,000 steps, batches of 12, lr 1e-3 → 1e-4, 100 warm-up steps.
BABY_TRAIN = TrainConfig()


def gpt2_init(model: GPT, std: float = 0.02, seed: int = 0) -> None:
    """GPT-2's initialisation (Radford et al., 2019), in place; explained in lesson 09 §2.

    Every variable with at least two dimensions (the attention and FFN matrices, the token and
    position embeddings) is drawn from 𝒩(0, std²), std = 0.02, except the two matrices per block
    that write into the residual stream, ``W_O`` and the FFN's ``W_2``, whose std is 0.02 / √(2L)
    for L = ``model.num_layers``: the sum of the 2L residual updates then keeps the scale of the
    stream roughly constant. LayerNorm gains stay 1, biases and LayerNorm offsets 0 (vectors are not
    touched). ``seed`` fixes the draws (NumPy's ``default_rng``).
    """
    rng = np.random.default_rng(seed)
    residual = {id(b.attn.wo.kernel) for b in model.blocks} | {
        id(b.ffn.w2.kernel) for b in model.blocks
    }
    for v in model.weights:
        if len(v.shape) < 2:
            continue  # LayerNorm gains stay 1, biases 0
        s = std / math.sqrt(2 * model.num_layers) if id(v) in residual else std
        v.assign(rng.normal(0.0, s, size=v.shape).astype(v.dtype))


class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak`` over ``warmup_steps``, then cosine decay to ``floor``.

    Derived in lesson 09 §4 (exercise 2 writes it by hand). With η_max = ``peak``,
    η_min = ``floor``, s_w = ``warmup_steps`` and s_d = ``decay_steps``, the learning rate at step s
    (counted from 0) is

        η(s) = η_max · (s + 1) / (s_w + 1)                                        for s < s_w,
        η(s) = η_min + ½ (η_max − η_min) (1 + cos(π · min(1, (s − s_w) / (s_d − s_w))))   else,

    so η(0) = η_max / (s_w + 1), η(s_w) = η_max, and η(s) = η_min from s_d on.
    """

    def __init__(self, peak: float, floor: float, warmup_steps: int, decay_steps: int):
        if not 0 <= floor <= peak:
            raise ValueError(f"need 0 <= floor <= peak, got floor={floor}, peak={peak}")
        if not 0 <= warmup_steps < decay_steps:
            raise ValueError(
                f"need 0 <= warmup_steps < decay_steps, got {warmup_steps} and {decay_steps}"
            )
        self.peak, self.floor = float(peak), float(floor)
        self.warmup_steps, self.decay_steps = int(warmup_steps), int(decay_steps)

    def __call__(self, step):
        s = tf.cast(step, tf.float32)
        warm = self.peak * (s + 1.0) / (self.warmup_steps + 1.0)
        progress = tf.clip_by_value(
            (s - self.warmup_steps) / (self.decay_steps - self.warmup_steps), 0.0, 1.0
        )
        cosine = self.floor + 0.5 * (self.peak - self.floor) * (1.0 + tf.cos(math.pi * progress))
        return tf.where(s < self.warmup_steps, warm, cosine)

    def get_config(self) -> dict:
        return {
            "peak": self.peak,
            "floor": self.floor,
            "warmup_steps": self.warmup_steps,
            "decay_steps": self.decay_steps,
        }


def make_optimizer(model: GPT, cfg: TrainConfig = BABY_TRAIN) -> keras.optimizers.AdamW:
    """AdamW with the warm-up + cosine schedule, global-norm clipping, decay on matrices only.

    Lesson 09 §4. Weight decay skips every variable with fewer than two dimensions (LayerNorm gains
    and offsets, biases); the matrices, embeddings included (as in nanoGPT), are decayed.
    """
    opt = keras.optimizers.AdamW(
        learning_rate=WarmupCosine(
            cfg.learning_rate, cfg.min_learning_rate, cfg.warmup_steps, cfg.decay_steps
        ),
        beta_1=cfg.beta_1,
        beta_2=cfg.beta_2,
        epsilon=cfg.epsilon,
        weight_decay=cfg.weight_decay,
        global_clipnorm=cfg.grad_clip,
    )
    opt.exclude_from_weight_decay(
        var_list=[v for v in model.trainable_variables if len(v.shape) < 2]
    )
    return opt


def encode_corpus(text: str, tokenizer) -> np.ndarray:
    """The whole text as one ``int32`` array of token ids (lesson 09 §1)."""
    return np.asarray(tokenizer.encode(text), dtype=np.int32)


def shakespeare_splits() -> tuple[np.ndarray, np.ndarray]:
    """Tiny Shakespeare's training and validation ids: characters, 90 / 10 % (lesson 09 §1).

    The corpus of lesson 09 as `encode_corpus` arrays; lesson 14's scaling sweep and distributed
    runs train on it too.
    """
    from lessons_lib.data import load_tiny_shakespeare, train_val_split
    from lessons_lib.tokenizers import CharTokenizer

    text = load_tiny_shakespeare(progress=False)
    tok = CharTokenizer.from_text(text)
    train_text, val_text = train_val_split(text, 0.9)
    return encode_corpus(train_text, tok), encode_corpus(val_text, tok)


def _token_array(data: Any) -> np.ndarray:
    """``data`` as a 1-D array of token ids, or a ValueError naming what was given."""
    a = np.asarray(data)
    if a.ndim != 1:
        raise ValueError(
            f"data must be a 1-D array of token ids, got {describe(data)}"
            + (" (a batch? pass one long sequence)" if a.ndim == 2 else "")
        )
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"data must hold integer token ids, got {describe(data)}")
    return a


def random_windows(
    data: np.ndarray, max_len: int, batch_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``batch_size`` random windows of ``max_len`` tokens and their targets, shifted by one.

    Lesson 09 §1 (exercise 3 re-writes it). For a start ``i`` drawn uniformly from
    ``0 … len(data) − max_len − 1`` (one ``rng.integers`` call for the batch), the input is
    ``x = data[i : i + T]`` and the target ``y = data[i + 1 : i + T + 1]`` with T = ``max_len``: the
    target of position t is the token after it. Returns ``x, y``, both ``[batch_size, max_len]``.
    """
    data = _token_array(data)
    max_len, batch_size = positive_int(max_len, "max_len"), positive_int(batch_size, "batch_size")
    if len(data) <= max_len:
        raise ValueError(f"data has {len(data)} tokens; need more than max_len={max_len}")
    starts = rng.integers(0, len(data) - max_len, size=batch_size)
    x = np.stack([data[i : i + max_len] for i in starts])
    y = np.stack([data[i + 1 : i + max_len + 1] for i in starts])
    return x, y


def lm_loss(logits, targets):
    """Mean cross-entropy of ``logits [B, T, V]`` against the next tokens ``targets [B, T]``.

    Lesson 09 §3: L = −mean_{b,t} log softmax(logits_{b,t})[targets_{b,t}], computed in float32 even
    when the model computes in float16 (mixed precision, lesson 09 §2).
    """
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(targets, tf.int32), logits=tf.cast(logits, tf.float32)
        )
    )


def evaluation_windows(data: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Every non-overlapping window of ``max_len`` tokens of ``data``, and its targets.

    Lesson 09 §3. Window k is ``x[k] = data[k·T : (k + 1)·T]`` with targets
    ``y[k] = data[k·T + 1 : (k + 1)·T + 1]`` (T = ``max_len``); there are ``(len(data) − 1) // T``
    of them. A fixed slice, not a random draw, so a loss measured on it is the same figure on every
    machine and run.
    """
    data = _token_array(data)
    max_len = positive_int(max_len, "max_len")
    n = (len(data) - 1) // max_len
    x = data[: n * max_len].reshape(n, max_len)
    y = data[1 : n * max_len + 1].reshape(n, max_len)
    return x, y


def train_step_function(
    model: keras.Model, optimizer: keras.optimizers.Optimizer, jit_compile: bool = True
):
    """One optimisation step, compiled: returns ``step(x, y) -> loss`` (lesson 09 §5).

    ``step`` runs the forward pass on a batch of windows ``x [B, T]``, the loss against the targets
    ``y [B, T]`` (`lm_loss`, §3), the gradients by backpropagation (``tf.GradientTape``), and
    the optimiser's update (§4: clipping by global norm, the AdamW step with weight decay, the
    learning-rate schedule). It returns the batch's loss before the update. With mixed precision
    (§2) ``optimizer`` is a ``LossScaleOptimizer``: the loss is scaled up before the gradients
    (float16 gradients would underflow) and the optimiser scales them back.

    The step is one ``tf.function``, compiled with XLA when ``jit_compile`` (faster on CPUs: see
    ``benchmarks/bench_gpt.py``). `Trainer` and the benchmark both use it.
    """
    variables = model.trainable_variables
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)  # forward pass: [B, T, V]
            loss = lm_loss(logits, y)  # mean cross-entropy against the next tokens
            target = optimizer.scale_loss(loss) if scaled else loss
        gradients = tape.gradient(target, variables)  # backpropagation
        optimizer.apply_gradients(zip(gradients, variables))  # clip, AdamW step, weight decay
        return loss

    return tf.function(step, jit_compile=jit_compile)


class Trainer:
    """A compact training loop (lesson 09 §5): ``step()``, ``evaluate()`` and ``fit()``.

    ``step()`` does one optimisation step, ``evaluate()`` measures a loss, ``fit()`` runs many steps
    with evaluations, a progress line and a callback.

    The train step is `train_step_function`, compiled with XLA when ``jit_compile`` (about
    1.4× faster on 2 CPU cores; ``benchmarks/bench_gpt.py`` measures it). Batches come from
    `random_windows` with a NumPy generator seeded by ``cfg.seed``, so a run is reproducible.
    ``history`` holds the loss of every step (``"step"``, ``"train_loss"``) and of every evaluation
    (``"eval_step"``, ``"val_loss"``, ``"eval_train_loss"``).
    """

    def __init__(
        self,
        model: GPT,
        train_data: np.ndarray,
        val_data: np.ndarray,
        cfg: TrainConfig = BABY_TRAIN,
        jit_compile: bool = True,
    ):
        self.model, self.cfg = model, cfg
        self.train_data, self.val_data = (
            np.asarray(train_data, np.int32),
            np.asarray(val_data, np.int32),
        )
        self.optimizer = make_optimizer(model, cfg)
        if (
            model.dtype_policy.name == "mixed_float16"
        ):  # float16 gradients underflow without loss scaling
            self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
        self.optimizer.build(model.trainable_variables)
        self.rng = np.random.default_rng(cfg.seed)
        self.steps_done = 0
        self.history: dict[str, list] = {
            "step": [],
            "train_loss": [],
            "eval_step": [],
            "val_loss": [],
            "eval_train_loss": [],
        }
        self._train_step = train_step_function(model, self.optimizer, jit_compile)
        self._loss = tf.function(lambda x, y: window_losses(model, x, y), jit_compile=jit_compile)

    def step(self) -> float:
        """One optimisation step on a fresh random batch; returns its loss (before the update)."""
        x, y = random_windows(self.train_data, self.model.max_len, self.cfg.batch_size, self.rng)
        loss = float(self._train_step(x, y))
        self.steps_done += 1
        self.history["step"].append(self.steps_done)
        self.history["train_loss"].append(loss)
        return loss

    def evaluate(
        self, split: str = "val", max_windows: int | None = None, batch_size: int = 256
    ) -> float:
        """Mean loss over the fixed windows of a split, ``"val"`` or ``"train"`` (lesson 09 §5).

        ``max_windows`` keeps only the first windows (quick evaluations during training use the same
        ones each time, so their curve has no sampling noise); see `evaluate_loss`.
        """
        if split not in ("val", "train"):
            raise ValueError(f"split must be 'val' or 'train', got {split!r}")
        data = self.val_data if split == "val" else self.train_data
        return evaluate_loss(
            self.model, data, max_windows=max_windows, batch_size=batch_size, loss_fn=self._loss
        )

    def fit(
        self,
        steps: int | None = None,
        eval_every: int = 250,
        eval_windows: int | None = 400,
        callback: Callable[["Trainer"], Any] | None = None,
        progress: bool = True,
        progress_every: int | None = None,
    ) -> dict:
        """Run ``steps`` steps (default: up to ``cfg.max_steps``), evaluating every ``eval_every``.

        Each evaluation measures the loss on the first ``eval_windows`` fixed windows of both
        splits, appends it to ``history`` and then calls ``callback(trainer)`` (lesson 09 redraws
        its plot there). An evaluation also runs at step ``cfg.max_steps``.

        With ``progress`` a one-line progress bar (tqdm's format: steps, rate, time left, last loss)
        is refreshed every ``progress_every`` steps (default: ``steps // 50``, so about 50
        refreshes) and at the last step: a cadence counted in steps, so a slow machine does not send
        more updates. In a notebook the line is one output updated in place, so the saved notebook
        shows the final ``2000/2000``; elsewhere it rewrites one line of ``stdout``. Nothing is
        written to ``stderr``.
        """
        steps = (
            self.cfg.max_steps - self.steps_done if steps is None else positive_int(steps, "steps")
        )
        eval_every = positive_int(eval_every, "eval_every")
        if progress_every is None:
            progress_every = max(1, steps // 50)
        progress_every = positive_int(progress_every, "progress_every")
        bar = _ProgressLine(steps, progress_every) if progress else None
        for n in range(1, steps + 1):
            loss = self.step()
            if bar is not None:
                bar.update(n, loss)
            if self.steps_done % eval_every == 0 or self.steps_done == self.cfg.max_steps:
                self.history["eval_step"].append(self.steps_done)
                self.history["val_loss"].append(self.evaluate("val", eval_windows))
                self.history["eval_train_loss"].append(self.evaluate("train", eval_windows))
                if callback is not None:
                    callback(self)
        if bar is not None:
            bar.close()
        return self.history


def _notebook_display() -> Callable[..., Any] | None:
    """IPython's ``display`` in a Jupyter kernel, else ``None`` (this never imports IPython)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or getattr(shell, "kernel", None) is None:
        return None
    from IPython.display import display

    return display


class _ProgressLine:
    """The progress bar of `Trainer.fit`: one line, refreshed every ``every`` steps.

    It is also refreshed at the last step. In a notebook it is one display updated in place (a small
    ``text/plain`` ``update_display_data`` message per refresh, and the stored notebook keeps the
    last line); in a terminal it rewrites one line of ``stdout``.
    """

    def __init__(self, total: int, every: int, desc: str = "training") -> None:
        # only tqdm's formatting: its own bars write to stderr or send a widget message per refresh
        from tqdm.std import tqdm

        self._format = tqdm.format_meter
        self.total, self.every, self.desc = total, every, desc
        self.start = time.perf_counter()
        self.refreshes = 0
        display = _notebook_display()
        self._handle = None
        if display is not None:
            self._handle = display({"text/plain": self._line(0, None)}, raw=True, display_id=True)
        else:
            print(self._line(0, None), end="", flush=True)

    def _line(self, n: int, loss: float | None) -> str:
        postfix = None if loss is None else f"loss={loss:.3f}"
        elapsed = time.perf_counter() - self.start
        return self._format(
            n, self.total, elapsed, prefix=self.desc, unit="step", postfix=postfix, ncols=100
        )

    def update(self, n: int, loss: float) -> None:
        """Show step ``n`` and the loss, if ``n`` is a multiple of ``every`` or the last step."""
        if n % self.every and n != self.total:
            return
        self.refreshes += 1
        line = self._line(n, loss)
        if self._handle is not None:
            self._handle.update({"text/plain": line}, raw=True)
        else:
            print("\r" + line, end="", flush=True)

    def close(self) -> None:
        if self._handle is None:
            print(flush=True)


def window_losses(model: GPT, x, y):
    """Mean next-token loss of each window ``x [batch, T]`` against ``y``: ``[batch]``.

    Lesson 09 §6 compiles it to evaluate the shipped checkpoint; `evaluate_loss` uses it.
    """
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(y, tf.int32), logits=tf.cast(model(x, training=False), tf.float32)
        ),
        axis=-1,
    )


def evaluate_loss(
    model: GPT,
    data: np.ndarray,
    max_windows: int | None = None,
    batch_size: int = 256,
    loss_fn=None,
) -> float:
    """Mean next-token loss of ``model`` over the fixed windows of ``data`` (lesson 09 §5 and §6).

    The windows are `evaluation_windows` of ``model.max_len`` tokens (all the same length, so
    this is also the mean over tokens); ``max_windows`` keeps the first ones. Batches all have
    ``batch_size`` windows (the last is padded and the padding dropped), so a compiled ``loss_fn``
    (default: `window_losses`) compiles once.
    """
    x, y = evaluation_windows(np.asarray(data, np.int32), model.max_len)
    if max_windows is not None:
        x, y = x[:max_windows], y[:max_windows]
    if len(x) == 0:
        raise ValueError(
            f"data has {len(data)} tokens: not enough for one window of {model.max_len + 1}"
        )
    loss_fn = loss_fn or (lambda a, b: window_losses(model, a, b))
    batch_size = min(batch_size, len(x))
    losses = []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        n = len(xb)
        if n < batch_size:
            xb = np.concatenate([xb, np.repeat(xb[-1:], batch_size - n, axis=0)])
            yb = np.concatenate([yb, np.repeat(yb[-1:], batch_size - n, axis=0)])
        losses.append(np.asarray(loss_fn(xb, yb))[:n])
    return float(np.concatenate(losses).mean())


# --- checkpoints ----------------------------------------------------------------------------------
def save_checkpoint(model: GPT, path: Path | str, metadata: dict | None = None) -> Path:
    """Weights to ``path`` (``.weights.h5``, no pickles), configuration + metadata to ``path.json``.

    Lesson 09 §6. `load_checkpoint` reads both back and refuses a model of another
    configuration.
    """
    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ValueError(f"checkpoint path must end with .weights.h5, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(path)
    info = {"config": model_config(model), **(metadata or {})}
    Path(str(path) + ".json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return path


def model_config(model: GPT) -> dict:
    """What a checkpoint records: ``GPT.get_config()`` without the layer name (lesson 09 §6)."""
    return {k: v for k, v in model.get_config().items() if k != "name"}


def load_checkpoint(model: GPT, path: Path | str = BABY_CHECKPOINT) -> dict:
    """Load weights into ``model``, after checking the checkpoint was made for its configuration.

    Lesson 09 §6 (and lesson 10 §0, which loads the shipped baby GPT). A checkpoint of another
    configuration is refused with a ValueError naming each difference (``num_layers: checkpoint 4 vs
    model 2``). Returns the checkpoint's metadata (configuration, validation loss, the command that
    produced it).
    """
    path = Path(path)
    meta_path = Path(str(path) + ".json")
    if not path.exists() or not meta_path.exists():
        raise FileNotFoundError(
            f"checkpoint {path} (and its {meta_path.name}) not found; "
            "train one with `python -m lessons_lib.training`"
        )
    meta = json.loads(meta_path.read_text())
    ours = model_config(model)
    theirs = meta.get("config", {})
    keys = sorted(
        (set(ours) | set(theirs)) - {"embeddings_initializer"}
    )  # the initializer does not shape weights
    diff = {k: (theirs.get(k), ours.get(k)) for k in keys if theirs.get(k) != ours.get(k)}
    if diff:
        details = ", ".join(f"{k}: checkpoint {a!r} vs model {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"checkpoint {path.name} was made for another configuration ({details})")
    if not model.built:
        model(np.zeros((1, model.max_len), dtype=np.int32))
    from lessons_lib.quantization import quantized_layers, refuse_quantized_file

    if not quantized_layers(model):  # Keras' own error for this is about a layer's variable count
        refuse_quantized_file(path)
    model.load_weights(path)
    return meta


def main(argv: list[str] | None = None) -> int:
    """Train the reference configuration on Tiny Shakespeare and write the checkpoint.

    With ``--strategy mirrored|multi-worker`` (or ``--compare``) it trains data-parallel instead
    (lesson 14 §9, `lessons_lib.distributed`).
    """
    from lessons_lib.data import load_tiny_shakespeare, train_val_split
    from lessons_lib.env import setup
    from lessons_lib.tokenizers import CharTokenizer

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"optimisation steps (default {BABY_TRAIN.max_steps}; 5 with --compare)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"checkpoint to write (default: {BABY_CHECKPOINT.name} on one device, none otherwise)",
    )
    p.add_argument("--no-xla", action="store_true")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed for initialisation and batches (default: the reference run's 0 and 1337)",
    )
    _add_distributed_arguments(p)
    a = p.parse_args(argv)
    if a.strategy != "default" or a.compare:  # lesson 14 §9: lessons_lib.distributed
        return _main_distributed(a)
    setup(seed=a.seed or 0)
    a.out = BABY_CHECKPOINT if a.out is None else a.out
    a.steps = BABY_TRAIN.max_steps if a.steps is None else a.steps
    text = load_tiny_shakespeare(progress=False)
    tok = CharTokenizer.from_text(text)
    train_text, val_text = train_val_split(text, 0.9)
    train, val = encode_corpus(train_text, tok), encode_corpus(val_text, tok)
    model = BABY_GPT.build(seed=a.seed or 0)
    cfg = dataclasses.replace(
        BABY_TRAIN,
        max_steps=a.steps,
        seed=BABY_TRAIN.seed if a.seed is None else a.seed,
        batch_size=positive_int(a.batch_size, "--batch-size"),
    )
    trainer = Trainer(model, train, val, cfg, jit_compile=not a.no_xla)
    print(
        f"parameters: {model.count_params():,}; initial val loss {trainer.evaluate('val'):.4f}"
        f" (ln {tok.vocab_size} = {math.log(tok.vocab_size):.4f})",
        flush=True,
    )
    t0 = time.perf_counter()
    trainer.fit(
        progress=False,
        eval_every=500,
        eval_windows=400,
        callback=lambda t: print(
            f"step {t.steps_done}: train {t.history['train_loss'][-1]:.4f} "
            f"val(400 windows) {t.history['val_loss'][-1]:.4f}",
            flush=True,
        ),
    )
    wall = time.perf_counter() - t0
    val_loss = trainer.evaluate("val")
    print(
        f"final val loss (all {len(val) // model.max_len} windows of the validation split): "
        f"{val_loss:.4f}; "
        f"{a.steps} steps in {wall:.1f} s ({1000 * wall / a.steps:.1f} ms/step incl. evaluation)",
        flush=True,
    )
    command = "python -m lessons_lib.training" + ("" if a.seed is None else f" --seed {a.seed}")
    save_checkpoint(
        model,
        a.out,
        {
            "val_loss": round(val_loss, 4),
            "steps": a.steps,
            "command": command,
            "train_config": dataclasses.asdict(cfg),
            "vocab": "".join(tok.tokens),
        },
    )
    print(f"wrote {a.out}", flush=True)
    return 0


def _add_distributed_arguments(p: argparse.ArgumentParser) -> None:
    """The options of data-parallel training (lesson 14 §9, `lessons_lib.distributed`)."""
    g = p.add_argument_group("data parallelism (lesson 14 §9; README: several devices or machines)")
    g.add_argument(
        "--strategy",
        choices=("default", "mirrored", "multi-worker"),
        default="default",
        help="tf.distribute strategy: one device (default), MirroredStrategy (one machine, "
        "several GPUs or logical CPUs), MultiWorkerMirroredStrategy (TF_CONFIG, or local workers)",
    )
    g.add_argument(
        "--devices",
        type=int,
        default=None,
        help="mirrored: replicas (GPUs, else logical CPU devices); default all GPUs",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=2,
        help="multi-worker without TF_CONFIG: local worker processes to start (default 2)",
    )
    g.add_argument(
        "--batch-size",
        type=int,
        default=BABY_TRAIN.batch_size,
        help=f"global batch (default {BABY_TRAIN.batch_size}); a multiple of the replicas",
    )
    g.add_argument(
        "--compare",
        action="store_true",
        help="also train on one device and print the largest loss and weight differences",
    )
    g.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="multi-worker: seconds before the run (and each collective) gives up",
    )


def _main_distributed(a: argparse.Namespace) -> int:
    """``main`` for ``--strategy mirrored|multi-worker`` or ``--compare``: see
    `lessons_lib.distributed.run_command_line`."""
    from lessons_lib.distributed import run_command_line

    steps = a.steps if a.steps is not None else (5 if a.compare else BABY_TRAIN.max_steps)
    try:
        return run_command_line(
            a.strategy,
            steps,
            devices=a.devices,
            workers=a.workers,
            compare=a.compare,
            seed=a.seed,
            out=a.out,
            timeout=a.timeout,
            batch_size=a.batch_size,
        )
    except ValueError as e:  # bad options (a batch that does not divide, ...): no traceback
        print(f"python -m lessons_lib.training: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
