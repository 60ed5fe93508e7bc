"""Knowledge distillation: a small GPT learns from the baby GPT's soft predictions (lesson 15 §7).

Hinton, Vinyals & Dean (2015), "Distilling the Knowledge in a Neural Network" (arXiv:1503.02531).
For logits z ∈ ℝ^V of one token and a temperature τ > 0 the softened distribution is

    p_τ = softmax(z / τ),    p_τ,i = exp(z_i / τ) / ∑ⱼ exp(z_j / τ),

flatter than softmax(z) for τ > 1: the teacher's small probabilities ("dark knowledge": which wrong
characters are nearly right) carry more of the signal. Over N tokens (N = B·T for a batch of
windows) with teacher logits z^T, student logits z^S and the true next tokens y,

    soft_kl = (1/N) ∑ₙ KL(p_τ^T ‖ p_τ^S) = (1/N) ∑ₙ ∑ᵢ p_τ,i^T (log p_τ,i^T − log p_τ,i^S)
    KD      = τ² · soft_kl
    CE      = −(1/N) ∑ₙ log softmax(z^S)[yₙ]                   (the label loss, τ = 1)
    L       = α · KD + (1 − α) · CE,     α ∈ [0, 1].

Why τ² (Hinton et al. §2.1). Per token, ∂KL(p_τ^T ‖ p_τ^S)/∂z_i^S = (p_τ,i^S − p_τ,i^T) / τ. For τ
large against the logits, exp(z/τ) ≈ 1 + z/τ, so p_τ,i ≈ (1 + z_i/τ) / (V + ∑ⱼ z_j/τ), and for
zero-mean logits

    ∂KL/∂z_i^S ≈ (1/τ) · (z_i^S − z_i^T) / (V τ) = (z_i^S − z_i^T) / (V τ²):

the soft term's gradient shrinks as 1/τ² (the paper writes N for the number of classes, V here).
Multiplying the KL by τ² keeps its gradient on the scale of the label term's whatever τ is, so α
weighs the two terms in the same way at every temperature. The gradient of L w.r.t. the student's
logits, averaged over the N tokens, is therefore

    ∂L/∂z^S = (α τ (p_τ^S − p_τ^T) + (1 − α)(softmax(z^S) − onehot(y))) / N

(τ² · (1/τ) = τ; the label term uses τ = 1). ``tests/test_distillation.py`` checks it against
``tf.GradientTape``. With α = 0 the loss is the plain label loss of lesson 09 (`lm_loss`); with
α = 1 and τ = 1 it is the KL divergence to the teacher's own predictions.

`DistillationTrainer` trains a student (`STUDENT`, 7.5× fewer parameters than the baby GPT) on the
same batches as lesson 09's `Trainer`, with the frozen teacher's logits computed in the same
compiled step. `keras_distiller_losses` reproduces the pitfall of Keras 3's
``keras.distillation.Distiller``: its default ``LogitsDistillation(loss="kl_divergence")`` feeds
the temperature-scaled *logits*, not probabilities, to a KL divergence that clips its inputs to
[ε, 1].
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from lessons_lib._backend import keras, tf
from lessons_lib._validate import describe, float_array
from lessons_lib.gpt import GPT
from lessons_lib.gpt import built_gpt as _built_gpt
from lessons_lib.training import (
    BABY_TRAIN,
    ModelConfig,
    TrainConfig,
    Trainer,
    lm_loss,
    random_windows,
)

#: The student of lesson 15 §7: d_model 64, 2 layers, 4 heads (d_k 16), d_ff 256, the baby GPT's
#: vocabulary (65) and context (64); 106,880 parameters, 804,096 / 106,880 = 7.52× fewer.
STUDENT = ModelConfig(vocab_size=65, max_len=64, d_model=64, num_heads=4, num_layers=2)

#: The student's 600-step run of lesson 15 §7: batches of 12 (the baby GPT's, lesson 09 §5), 30
#: warm-up steps to lr 4e-3, then cosine decay to 1e-4 at step 600 (the small model wants a larger
#: rate than the baby GPT's 1e-3: 1e-3, 2e-3 and 8e-3 all ended higher after 600 steps).
STUDENT_TRAIN = dataclasses.replace(
    BABY_TRAIN, max_steps=600, decay_steps=600, warmup_steps=30, learning_rate=4e-3
)


# --- arguments ------------------------------------------------------------------------------------
def _temperature(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"temperature must be a number > 0, got {describe(value)}")
    if not (math.isfinite(float(value)) and value > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {value!r}")
    return float(value)


def _alpha(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"alpha must be a number in [0, 1], got {describe(value)}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(
            f"alpha must be in [0, 1] (the weight of the distillation term), got {value!r}"
        )
    return float(value)


def _same(a: tuple, b: tuple) -> bool:
    """Shapes that may be equal: same rank, dims equal where both are known (None: traced)."""
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def _check_shapes(student_shape, teacher_shape, targets_shape=None) -> None:
    """Refuse logits of different shapes, or targets that are not the logits' shape minus V."""
    s, t = tuple(student_shape), tuple(teacher_shape)
    if len(s) < 1:
        raise ValueError(f"student_logits must have a vocabulary axis, got shape {s}")
    if not _same(s, t):
        hint = (
            " (different vocabularies: the student must predict the teacher's tokens)"
            if len(s) == len(t) and _same(s[:-1], t[:-1])
            else ""
        )
        raise ValueError(
            f"student_logits and teacher_logits must have the same shape [..., V], got {s} and "
            f"{t}{hint}"
        )
    if targets_shape is not None and not _same(tuple(targets_shape), s[:-1]):
        raise ValueError(
            f"targets must have the logits' shape without the vocabulary axis, {s[:-1]}, "
            f"got {tuple(targets_shape)}"
        )


def _tensor(x):
    """A tensor (or array) as it is; a list or another array-like converted for TensorFlow."""
    return x if hasattr(x, "shape") else tf.convert_to_tensor(x)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    """Stable log softmax over the last axis: z − max − log ∑ exp(z − max)."""
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _numpy_inputs(student_logits, teacher_logits, targets=None):
    s = float_array(student_logits, "student_logits").astype(np.float64)
    t = float_array(teacher_logits, "teacher_logits").astype(np.float64)
    if targets is None:
        _check_shapes(s.shape, t.shape)
        return s, t, None
    y = np.asarray(targets.numpy() if hasattr(targets, "numpy") else targets)
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"targets must hold integer token ids, got {describe(y)}")
    _check_shapes(s.shape, t.shape, y.shape)
    v = s.shape[-1]
    if y.size and (y.min() < 0 or y.max() >= v):
        raise ValueError(
            f"targets must be token ids in [0, {v}), got values from {y.min()} to {y.max()}"
        )
    return s, t, y


# --- the loss: NumPy reference and TensorFlow -----------------------------------------------------
def distillation_loss_numpy(
    student_logits, teacher_logits, targets, temperature: float = 2.0, alpha: float = 0.5
) -> float:
    """The distillation loss in NumPy (float64), the reference of `distillation_loss`.

    Lesson 15 §7: L = α · τ² · mean KL(p_τ^T ‖ p_τ^S) + (1 − α) · CE(student_logits, targets),
    p_τ = softmax(z / τ) with a stable log softmax. ``student_logits`` and ``teacher_logits`` are
    ``[..., V]`` (e.g. ``[B, T, V]``), ``targets`` the next-token ids ``[...]``; the means are over
    every token.
    """
    s, t, y = _numpy_inputs(student_logits, teacher_logits, targets)
    tau, a = _temperature(temperature), _alpha(alpha)
    log_ps, log_pt = _log_softmax(s / tau), _log_softmax(t / tau)
    kl = (np.exp(log_pt) * (log_pt - log_ps)).sum(axis=-1).mean()
    ce = -np.take_along_axis(_log_softmax(s), y[..., None].astype(np.int64), axis=-1).mean()
    return float(a * tau**2 * kl + (1.0 - a) * ce)


def _soft_kl_tf(student_logits, teacher_logits, tau: float):
    log_ps = tf.nn.log_softmax(tf.cast(student_logits, tf.float32) / tau, axis=-1)
    log_pt = tf.nn.log_softmax(tf.cast(teacher_logits, tf.float32) / tau, axis=-1)
    return tf.reduce_mean(tf.reduce_sum(tf.exp(log_pt) * (log_pt - log_ps), axis=-1))


def soft_kl(student_logits, teacher_logits, temperature: float):
    """Mean over tokens of KL(p_τ^T ‖ p_τ^S), p_τ = softmax(z / τ): **without** the τ² factor.

    Lesson 15 §7. The distillation term of `distillation_loss` is ``temperature**2 * soft_kl(...)``;
    this is the KL divergence itself (in nats per token), the figure to compare across temperatures
    as a distance between the two models' softened predictions. TensorFlow, float32, usable inside a
    compiled step; logits ``[..., V]`` of the same shape.
    """
    student_logits, teacher_logits = _tensor(student_logits), _tensor(teacher_logits)
    _check_shapes(student_logits.shape, teacher_logits.shape)
    return _soft_kl_tf(student_logits, teacher_logits, _temperature(temperature))


def _distillation_parts(student_logits, teacher_logits, targets, tau: float, a: float):
    """(L, soft_kl, CE); with α = 0 L is exactly `lm_loss`, with α = 1 exactly τ² · soft_kl."""
    kl = _soft_kl_tf(student_logits, teacher_logits, tau)
    ce = lm_loss(student_logits, targets)
    if a == 0:
        return ce, kl, ce
    if a == 1:
        return tau**2 * kl, kl, ce
    return a * tau**2 * kl + (1.0 - a) * ce, kl, ce


def distillation_loss(
    student_logits, teacher_logits, targets, temperature: float = 2.0, alpha: float = 0.5
):
    """L = α · τ² · `soft_kl` + (1 − α) · `lm_loss`, in TensorFlow (lesson 15 §7).

    ``student_logits`` and ``teacher_logits`` are ``[..., V]`` of the same shape, ``targets`` the
    next-token ids ``[...]``. Computed in float32 (also for float16 logits), usable inside a
    compiled ``tf.function``: `DistillationTrainer`'s step calls it. ``alpha = 0`` returns exactly
    `lm_loss` (lesson 09's label loss), ``alpha = 1`` the pure distillation term τ² · KL. Give the
    teacher's logits without a gradient (``tf.stop_gradient``, or computed outside the tape).
    `distillation_loss_numpy` is the reference; the module docstring derives the gradient.
    """
    student_logits, teacher_logits = _tensor(student_logits), _tensor(teacher_logits)
    targets = _tensor(targets)
    _check_shapes(student_logits.shape, teacher_logits.shape, targets.shape)
    return _distillation_parts(
        student_logits, teacher_logits, targets, _temperature(temperature), _alpha(alpha)
    )[0]


# --- the Keras Distiller pitfall ------------------------------------------------------------------
def keras_distiller_default_loss(student_logits, teacher_logits, temperature: float = 3.0) -> float:
    """What Keras' ``LogitsDistillation(temperature)`` computes by default (lesson 15 §7).

    Its default ``loss="kl_divergence"`` is resolved by ``keras.losses.get`` to the *function*
    ``keras.losses.kl_divergence``, not a ``keras.losses.KLDivergence`` instance, so the test
    ``isinstance(loss_fn, keras.losses.KLDivergence)`` in ``LogitsDistillation.compute_loss``
    (keras/src/distillation/distillation_loss.py) is False: the softmax is skipped and the
    temperature-scaled logits go straight into ``keras.losses.kl_divergence(teacher / τ,
    student / τ)``, without the τ² factor. That function (keras/src/losses/losses.py) starts with

        y_true = ops.clip(y_true, backend.epsilon(), 1)
        y_pred = ops.clip(y_pred, backend.epsilon(), 1)

    since it expects probabilities: every logit / τ below ε = 1e-7 becomes ε, every one above 1
    becomes 1, and the result ∑ᵢ clip(tᵢ/τ) log(clip(tᵢ/τ) / clip(sᵢ/τ)), averaged over tokens, is
    no divergence between the two models' predictions (it can exceed any KL, and its gradient is 0
    wherever the student's logit / τ lies outside [ε, 1]). This is that computation in NumPy;
    `keras_distiller_losses` gives it beside the correct value.
    """
    s, t, _ = _numpy_inputs(student_logits, teacher_logits)
    tau = _temperature(temperature)
    eps = float(keras.config.epsilon())
    ct, cs = np.clip(t / tau, eps, 1.0), np.clip(s / tau, eps, 1.0)
    return float((ct * np.log(ct / cs)).sum(axis=-1).mean())


def keras_distiller_losses(
    student_logits, teacher_logits, temperature: float = 3.0
) -> dict[str, float]:
    """Keras' default distillation loss next to the correct one, for the same logits (lesson 15 §7).

    Returns ``{"keras_default": ..., "kl_on_probabilities": ...}``: `keras_distiller_default_loss`
    (``LogitsDistillation(temperature)``, KL of clipped logits) and τ² · `soft_kl`, which is what
    ``LogitsDistillation(temperature, loss=keras.losses.KLDivergence())`` computes (with a loss
    *instance* Keras takes the softmax first and multiplies by τ²). Both NumPy, float64.
    """
    s, t, _ = _numpy_inputs(student_logits, teacher_logits)
    tau = _temperature(temperature)
    log_ps, log_pt = _log_softmax(s / tau), _log_softmax(t / tau)
    kl = float((np.exp(log_pt) * (log_pt - log_ps)).sum(axis=-1).mean())
    return {
        "keras_default": keras_distiller_default_loss(s, t, tau),
        "kl_on_probabilities": tau**2 * kl,
    }


# --- training -------------------------------------------------------------------------------------
def distillation_step_function(
    student: GPT,
    teacher: GPT,
    optimizer: keras.optimizers.Optimizer,
    temperature: float = 2.0,
    alpha: float = 0.5,
    jit_compile: bool = True,
):
    """One distillation step, compiled: ``step(x, y) -> (loss, soft_kl, ce)`` (lesson 15 §7).

    The frozen teacher runs first, outside the gradient tape (``training=False``, no gradient can
    reach it), then the student's forward pass, `distillation_loss` against the teacher's logits and
    the labels ``y``, and the optimizer's update of the student's variables only. Returns the loss
    and its two parts (`soft_kl` without τ², and the label cross-entropy, both measured even when
    their weight is 0) before the update. Like `lessons_lib.training.train_step_function` (lesson 09
    §5), with loss scaling when ``optimizer`` is a ``LossScaleOptimizer``.
    """
    tau, a = _temperature(temperature), _alpha(alpha)
    variables = student.trainable_variables
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def step(x, y):
        teacher_logits = tf.stop_gradient(teacher(x, training=False))  # [B, T, V], frozen
        with tf.GradientTape() as tape:
            student_logits = student(x, training=True)
            loss, kl, ce = _distillation_parts(student_logits, teacher_logits, y, tau, a)
            target = optimizer.scale_loss(loss) if scaled else loss
        gradients = tape.gradient(target, variables)
        optimizer.apply_gradients(zip(gradients, variables))
        return loss, kl, ce

    return tf.function(step, jit_compile=jit_compile)


class DistillationTrainer(Trainer):
    """Lesson 09's `Trainer` for a student distilled from a frozen teacher (lesson 15 §7).

    ``DistillationTrainer(student, teacher, train, val, cfg, temperature, alpha)`` has the same
    ``step()``, ``evaluate()`` (the student's label loss: the figure to compare with the teacher's)
    and ``fit()``. Each step draws the batch exactly as `Trainer` does (`random_windows` with a
    generator seeded by ``cfg.seed``): with the same ``cfg`` a labels-only run (``alpha=0``, which
    is the plain `Trainer` step), a pure distillation run (``alpha=1``) and a mixed one train on the
    same batches. The step is `distillation_step_function`; ``history`` adds, per step,
    ``"train_kl"`` (`soft_kl` at ``temperature``, without τ²) and ``"train_ce"`` (the label loss) to
    ``"train_loss"`` (their mix α τ² KL + (1 − α) CE). With ``alpha=0`` the step is `Trainer`'s own
    (lesson 09's `train_step_function`, no teacher forward pass: about half the time of a
    distillation step) and ``"train_kl"`` is NaN.

    Refused: a student or teacher that is not a built `GPT`, the same model as both, different
    vocabularies, a student context longer than the teacher's, token ids outside the vocabulary,
    ``temperature ≤ 0`` and ``alpha`` outside [0, 1].
    """

    def __init__(
        self,
        student: GPT,
        teacher: GPT,
        train_data: np.ndarray,
        val_data: np.ndarray,
        cfg: TrainConfig = STUDENT_TRAIN,
        temperature: float = 2.0,
        alpha: float = 0.5,
        jit_compile: bool = True,
    ):
        student, teacher = _built_gpt(student, "student"), _built_gpt(teacher, "teacher")
        if student is teacher:
            raise ValueError("student and teacher are the same model: distil into a new GPT")
        if student.vocab_size != teacher.vocab_size:
            raise ValueError(
                "the student must predict the teacher's vocabulary: teacher vocab_size "
                f"{teacher.vocab_size}, student vocab_size {student.vocab_size}"
            )
        if student.max_len > teacher.max_len:
            raise ValueError(
                f"the student's windows (max_len {student.max_len}) are longer than the teacher's "
                f"context (max_len {teacher.max_len}): the teacher cannot label them"
            )
        self.temperature, self.alpha = _temperature(temperature), _alpha(alpha)
        if not isinstance(cfg, TrainConfig):
            raise TypeError(f"cfg must be a TrainConfig, got {describe(cfg)}")
        for name, data in (("train_data", train_data), ("val_data", val_data)):
            a = np.asarray(data)
            if a.size and np.issubdtype(a.dtype, np.integer):
                lo, hi = int(a.min()), int(a.max())
                if lo < 0 or hi >= student.vocab_size:
                    raise ValueError(
                        f"{name} must hold token ids in [0, {student.vocab_size}), got values from "
                        f"{lo} to {hi}"
                    )
        super().__init__(student, train_data, val_data, cfg, jit_compile=jit_compile)
        self.teacher = teacher
        self.history["train_kl"], self.history["train_ce"] = [], []
        if self.alpha > 0:
            self._train_step = distillation_step_function(
                student, teacher, self.optimizer, self.temperature, self.alpha, jit_compile
            )
        # α = 0 keeps Trainer's own step (lesson 09's train_step_function): no teacher forward pass

    @property
    def student(self) -> GPT:
        """The model being trained (``trainer.model``)."""
        return self.model

    def step(self) -> float:
        """One distillation step on a fresh random batch; returns its loss (before the update)."""
        x, y = random_windows(self.train_data, self.model.max_len, self.cfg.batch_size, self.rng)
        if self.alpha > 0:
            loss, kl, ce = (float(v) for v in self._train_step(x, y))
        else:  # the label step alone: the teacher is not run, its KL not measured
            loss = ce = float(self._train_step(x, y))
            kl = math.nan
        self.steps_done += 1
        self.history["step"].append(self.steps_done)
        self.history["train_loss"].append(loss)
        self.history["train_kl"].append(kl)
        self.history["train_ce"].append(ce)
        return loss
