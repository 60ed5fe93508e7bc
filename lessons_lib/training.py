r"""Training a GPT language model on characters (lesson 09).

The causal language-model loss is the average negative log-likelihood of each next token:

.. math::  \mathcal{L} = -\frac{1}{BT}\sum_{b,t} \log p_\theta(x_{b,t+1} \mid x_{b,\le t})
           = \mathrm{CrossEntropy}(\text{logits}_{b,t}, x_{b,t+1})

At initialisation the model's predictions are close to uniform, so :math:`\mathcal{L} \approx \ln V`
(``ln 65 ≈ 4.17`` for Tiny Shakespeare's characters).

Optimisation follows GPT-2/nanoGPT practice: AdamW (Loshchilov & Hutter, 2019) with weight decay on matrices only,
a linear warm-up then cosine decay of the learning rate, and gradient clipping by global norm.

The reference ("baby GPT") configuration — 4 layers, 4 heads, d_model 128, block 64, batch 12, no biases, tied
embeddings, dropout 0, lr 1e-3 → 1e-4 over 2,000 steps with 100 warm-up steps — is :data:`BABY_GPT` and
:data:`BABY_TRAIN`. ``python -m lessons_lib.training`` trains it and writes the shipped checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from lessons_lib._validate import positive_int
from lessons_lib.gpt import GPT

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT_DIR = ROOT / "checkpoints"
BABY_CHECKPOINT = CHECKPOINT_DIR / "baby_gpt_shakespeare.weights.h5"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Sizes of a :class:`~lessons_lib.gpt.GPT`."""

    vocab_size: int = 65
    max_len: int = 64
    d_model: int = 128
    num_heads: int = 4
    num_layers: int = 4
    dropout: float = 0.0
    use_bias: bool = False
    tie_embeddings: bool = True

    def build(self, seed: int = 0) -> GPT:
        """A freshly initialised GPT of this configuration (GPT-2 initialisation with ``seed``, see :func:`gpt2_init`)."""
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
    """Optimisation settings; the defaults are the reference run."""

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


BABY_GPT = ModelConfig()
BABY_TRAIN = TrainConfig()


def gpt2_init(model: GPT, std: float = 0.02, seed: int = 0) -> None:
    r"""GPT-2's initialisation (Radford et al., 2019): every matrix :math:`\sim \mathcal N(0, 0.02^2)`, the projections
    that write into the residual stream (``W_O`` and the FFN's second matrix) scaled by :math:`1/\sqrt{2L}`, biases 0."""
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
    r"""Linear warm-up to ``peak`` over ``warmup_steps``, then cosine decay to ``floor`` at ``decay_steps``:

    .. math:: \eta(s) = \eta_{min} + \tfrac12(\eta_{max} - \eta_{min})\left(1 + \cos\frac{\pi (s - s_w)}{s_d - s_w}\right)
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
    """AdamW with the warm-up + cosine schedule, global-norm clipping, and weight decay on matrices only."""
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
    """The whole text as one ``int32`` array of token ids."""
    return np.asarray(tokenizer.encode(text), dtype=np.int32)


def random_windows(
    data: np.ndarray, block_size: int, batch_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``batch_size`` random windows: inputs ``x = data[i : i+T]`` and targets ``y = data[i+1 : i+T+1]``."""
    block_size, batch_size = (
        positive_int(block_size, "block_size"),
        positive_int(batch_size, "batch_size"),
    )
    if len(data) <= block_size:
        raise ValueError(f"data has {len(data)} tokens; need more than block_size={block_size}")
    starts = rng.integers(0, len(data) - block_size, size=batch_size)
    x = np.stack([data[i : i + block_size] for i in starts])
    y = np.stack([data[i + 1 : i + block_size + 1] for i in starts])
    return x, y


def lm_loss(logits, targets):
    """Mean cross-entropy of ``logits [B, T, V]`` against the next tokens ``targets [B, T]`` (computed in float32)."""
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(targets, tf.int32), logits=tf.cast(logits, tf.float32)
        )
    )


def evaluation_windows(data: np.ndarray, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Every non-overlapping window of ``data`` (a fixed slice: the same figure on every machine and run)."""
    n = (len(data) - 1) // block_size
    x = data[: n * block_size].reshape(n, block_size)
    y = data[1 : n * block_size + 1].reshape(n, block_size)
    return x, y


def train_step_function(
    model: keras.Model, optimizer: keras.optimizers.Optimizer, jit_compile: bool = True
):
    """One optimisation step as a ``tf.function``: ``step(x, y) -> loss`` runs the forward pass, the loss, the
    gradients and ``optimizer``'s update (scaling the loss first when it is a ``LossScaleOptimizer``)."""
    variables = model.trainable_variables
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def step(x, y):
        with tf.GradientTape() as tape:
            loss = lm_loss(model(x, training=True), y)
            target = optimizer.scale_loss(loss) if scaled else loss
        optimizer.apply_gradients(zip(tape.gradient(target, variables), variables))
        return loss

    return tf.function(step, jit_compile=jit_compile)


class Trainer:
    """A compact training loop: ``step()`` does one optimisation step, ``evaluate()`` measures a loss.

    The train step is one ``tf.function``, compiled with XLA when ``jit_compile`` (about 1.4x faster on 2 CPU cores;
    ``benchmarks/bench_gpt.py`` measures it).
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
        x, y = random_windows(self.train_data, self.model.max_len, self.cfg.batch_size, self.rng)
        loss = float(self._train_step(x, y))
        self.steps_done += 1
        self.history["step"].append(self.steps_done)
        self.history["train_loss"].append(loss)
        return loss

    def evaluate(
        self, split: str = "val", max_windows: int | None = None, batch_size: int = 256
    ) -> float:
        """Mean loss over the fixed non-overlapping windows of a split (``"val"`` or ``"train"``)."""
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
    ) -> dict:
        """Run ``steps`` optimisation steps (default: up to ``cfg.max_steps``), evaluating every ``eval_every``."""
        steps = (
            self.cfg.max_steps - self.steps_done if steps is None else positive_int(steps, "steps")
        )
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps, desc="training", unit="step")
        for _ in range(steps):
            loss = self.step()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}")
            if self.steps_done % eval_every == 0 or self.steps_done == self.cfg.max_steps:
                self.history["eval_step"].append(self.steps_done)
                self.history["val_loss"].append(self.evaluate("val", eval_windows))
                self.history["eval_train_loss"].append(self.evaluate("train", eval_windows))
                if callback is not None:
                    callback(self)
        if bar is not None:
            bar.close()
        return self.history


def window_losses(model: GPT, x, y):
    """Mean next-token loss of each window: ``[batch]``."""
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
    """Mean next-token loss of ``model`` over the fixed windows of ``data`` (every window has ``max_len`` tokens,
    so this is also the mean over tokens). Batches all have ``batch_size`` windows (the last is padded and the
    padding dropped), so a compiled ``loss_fn`` compiles once."""
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


# --- checkpoints ----------------------------------------------------------------------------------------------
def save_checkpoint(model: GPT, path: Path | str, metadata: dict | None = None) -> Path:
    """Weights to ``path`` (``.weights.h5``, no pickles) and the configuration + ``metadata`` to ``path.json``."""
    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ValueError(f"checkpoint path must end with .weights.h5, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(path)
    info = {"config": model_config(model), **(metadata or {})}
    Path(str(path) + ".json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return path


def model_config(model: GPT) -> dict:
    return {k: v for k, v in model.get_config().items() if k != "name"}


def load_checkpoint(model: GPT, path: Path | str = BABY_CHECKPOINT) -> dict:
    """Load weights into ``model`` after checking that the checkpoint was made for the same configuration.

    Returns the checkpoint's metadata (configuration, validation loss, the command that produced it).
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
    model.load_weights(path)
    return meta


def main(argv: list[str] | None = None) -> int:
    """Train the reference configuration on Tiny Shakespeare and write the checkpoint."""
    from lessons_lib.data import load_tiny_shakespeare, train_val_split
    from lessons_lib.env import setup
    from lessons_lib.tokenizers import CharTokenizer

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--steps", type=int, default=BABY_TRAIN.max_steps)
    p.add_argument("--out", type=Path, default=BABY_CHECKPOINT)
    p.add_argument("--no-xla", action="store_true")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed for initialisation and batches (default: the reference run's 0 and 1337)",
    )
    a = p.parse_args(argv)
    setup(seed=a.seed or 0)
    text = load_tiny_shakespeare(progress=False)
    tok = CharTokenizer.from_text(text)
    train_text, val_text = train_val_split(text, 0.9)
    train, val = encode_corpus(train_text, tok), encode_corpus(val_text, tok)
    model = BABY_GPT.build(seed=a.seed or 0)
    cfg = dataclasses.replace(
        BABY_TRAIN, max_steps=a.steps, seed=BABY_TRAIN.seed if a.seed is None else a.seed
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
        f"final val loss (all {len(val) // model.max_len} windows of the validation split): {val_loss:.4f}; "
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


if __name__ == "__main__":
    raise SystemExit(main())
