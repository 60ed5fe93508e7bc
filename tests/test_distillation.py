"""Tests for lessons_lib.distillation (lesson 15 §7): the loss against a NumPy reference and
autodiff, its limits (α = 0, α = 1), the trainer's frozen teacher and batches, Keras' Distiller
pitfall reproduced against Keras' own object, and every refusal.

Tiny GPTs only (vocabulary 11, context 8); the file runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from lessons_lib._backend import keras, tf
from lessons_lib.distillation import (
    STUDENT,
    STUDENT_TRAIN,
    DistillationTrainer,
    distillation_loss,
    distillation_loss_numpy,
    distillation_step_function,
    keras_distiller_default_loss,
    keras_distiller_losses,
    soft_kl,
)
from lessons_lib.gpt import GPT, gpt_param_count
from lessons_lib.training import (
    BABY_GPT,
    ModelConfig,
    TrainConfig,
    Trainer,
    lm_loss,
    make_optimizer,
    train_step_function,
)

TINY_STUDENT = ModelConfig(vocab_size=11, max_len=8, d_model=16, num_heads=2, num_layers=1)
TINY_TEACHER = ModelConfig(vocab_size=11, max_len=8, d_model=24, num_heads=2, num_layers=2)
TINY_TRAIN = TrainConfig(batch_size=4, max_steps=20, warmup_steps=2, decay_steps=20, seed=7)


def _logits(seed: int, shape=(2, 3, 7), scale: float = 3.0):
    rng = np.random.default_rng(seed)
    return (scale * rng.normal(size=shape)).astype(np.float32)


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    # a learnable sequence: mostly "next id = id + 1 mod 11", with noise
    x = np.cumsum(rng.choice([1, 1, 1, 2], size=600)) % 11
    return x[:500].astype(np.int32), x[500:].astype(np.int32)


@pytest.fixture(scope="module")
def teacher():
    return TINY_TEACHER.build(seed=1)


# --- the loss -------------------------------------------------------------------------------------
@pytest.mark.parametrize("tau, alpha", [(1.0, 0.5), (2.0, 0.3), (4.0, 1.0), (0.5, 0.0), (2.0, 1.0)])
def test_numpy_equals_tensorflow(tau, alpha):
    s, t = _logits(0), _logits(1)
    y = np.random.default_rng(2).integers(0, 7, size=(2, 3))
    ref = distillation_loss_numpy(s, t, y, tau, alpha)
    got = float(distillation_loss(tf.constant(s), tf.constant(t), tf.constant(y), tau, alpha))
    assert got == pytest.approx(ref, rel=1e-5)

    # inside a compiled step too
    @tf.function(jit_compile=True)
    def compiled(a, b, c):
        return distillation_loss(a, b, c, tau, alpha)

    assert float(compiled(s, t, y)) == pytest.approx(ref, rel=1e-5)


def test_lists_and_traced_shapes():
    s, t, y = [[1.0, 2.0, 0.5]], [[0.0, 1.0, 3.0]], [2]
    ref = distillation_loss_numpy(s, t, y, 2.0, 0.5)
    assert float(distillation_loss(s, t, y)) == pytest.approx(ref, rel=1e-6)
    spec = [tf.TensorSpec([None, 3]), tf.TensorSpec([None, 3]), tf.TensorSpec([None], tf.int32)]

    @tf.function(input_signature=spec)
    def traced(a, b, c):  # the batch size is unknown while tracing: not a shape mismatch
        return distillation_loss(a, b, c)

    assert float(traced(np.float32(s), np.float32(t), np.int32(y))) == pytest.approx(ref, 1e-6)


def test_numpy_reference_by_hand():
    """One token, V = 2: every term written out."""
    s, t, y, tau, alpha = np.array([[0.0, 1.0]]), np.array([[2.0, 0.0]]), np.array([1]), 2.0, 0.25
    ps, pt = _softmax(s / tau)[0], _softmax(t / tau)[0]
    kl = sum(pt[i] * math.log(pt[i] / ps[i]) for i in range(2))
    ce = -math.log(_softmax(s)[0, 1])
    expected = alpha * tau**2 * kl + (1 - alpha) * ce
    assert distillation_loss_numpy(s, t, y, tau, alpha) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("tau, alpha", [(1.0, 0.5), (3.0, 0.7), (2.0, 1.0), (2.0, 0.0)])
def test_gradient_equals_formula(tau, alpha):
    """∂L/∂z^S = (α τ (p_τ^S − p_τ^T) + (1 − α)(softmax(z^S) − onehot(y))) / N."""
    s, t = _logits(3), _logits(4)
    y = np.random.default_rng(5).integers(0, 7, size=(2, 3))
    zs = tf.Variable(s)
    with tf.GradientTape() as tape:
        loss = distillation_loss(zs, tf.constant(t), tf.constant(y), tau, alpha)
    got = tape.gradient(loss, zs).numpy()
    n = y.size
    onehot = np.eye(7)[y]
    s64, t64 = s.astype(np.float64), t.astype(np.float64)
    formula = (
        alpha * tau * (_softmax(s64 / tau) - _softmax(t64 / tau))
        + (1 - alpha) * (_softmax(s64) - onehot)
    ) / n
    np.testing.assert_allclose(got, formula, atol=2e-7)


def test_soft_gradient_scales_as_one_over_tau_squared():
    """Hinton §2.1: for zero-mean logits and large τ, ∂KL/∂z_i^S ≈ (z_i^S − z_i^T) / (V τ²)."""
    s, t = _logits(6, (1, 5), 1.0), _logits(7, (1, 5), 1.0)
    s, t = s - s.mean(), t - t.mean()
    tau = 50.0
    zs = tf.Variable(s.astype(np.float64))
    with tf.GradientTape() as tape:
        kl = soft_kl(zs, tf.constant(t, tf.float64), tau)
    got = tape.gradient(kl, zs).numpy()
    approx = (s - t) / (5 * tau**2)
    np.testing.assert_allclose(got, approx, atol=0.05 * np.abs(approx).max())
    # τ² · KL has a gradient ≈ (z^S − z^T) / V whatever τ is
    for tau in (50.0, 100.0, 200.0):
        with tf.GradientTape() as tape:
            kd = tau**2 * soft_kl(zs, tf.constant(t, tf.float64), tau)
        g = tape.gradient(kd, zs).numpy()
        np.testing.assert_allclose(g, (s - t) / 5, atol=0.05 * np.abs(s - t).max() / 5)


def test_alpha_zero_is_lm_loss_exactly():
    s, t = tf.constant(_logits(8)), tf.constant(_logits(9))
    y = tf.constant(np.random.default_rng(1).integers(0, 7, size=(2, 3)))
    for tau in (0.5, 1.0, 3.0):
        assert float(distillation_loss(s, t, y, tau, 0.0)) == float(lm_loss(s, y))


def test_alpha_one_tau_one_is_the_kl_divergence():
    s, t = _logits(10), _logits(11)
    y = np.zeros((2, 3), np.int64)
    ps, pt = _softmax(s.astype(np.float64)), _softmax(t.astype(np.float64))
    kl = (pt * np.log(pt / ps)).sum(-1).mean()
    assert float(distillation_loss(tf.constant(s), tf.constant(t), y, 1.0, 1.0)) == pytest.approx(
        kl, rel=1e-5
    )
    keras_kl = float(keras.losses.KLDivergence()(pt, ps))  # Keras' own, on probabilities
    assert keras_kl == pytest.approx(kl, rel=1e-5)


def test_soft_kl_is_without_tau_squared():
    s, t = tf.constant(_logits(12)), tf.constant(_logits(13))
    y = tf.zeros((2, 3), tf.int32)
    for tau in (1.0, 2.0, 5.0):
        kl = float(soft_kl(s, t, tau))
        assert kl >= 0
        assert float(distillation_loss(s, t, y, tau, 1.0)) == pytest.approx(tau**2 * kl, rel=1e-6)
    assert float(soft_kl(s, s, 2.0)) == pytest.approx(0.0, abs=1e-6)


# --- the Keras Distiller pitfall ------------------------------------------------------------------
@pytest.mark.parametrize("tau", [1.0, 3.0])
def test_keras_distiller_default_reproduced(tau):
    s, t = _logits(14, (2, 4, 9), 4.0), _logits(15, (2, 4, 9), 4.0)
    default = keras.distillation.LogitsDistillation(temperature=tau)  # loss="kl_divergence"
    keras_value = float(default.compute_loss(tf.constant(t), tf.constant(s)))
    assert keras_distiller_default_loss(s, t, tau) == pytest.approx(keras_value, rel=1e-5)
    explicit = keras.distillation.LogitsDistillation(
        temperature=tau, loss=keras.losses.KLDivergence()
    )
    keras_right = float(explicit.compute_loss(tf.constant(t), tf.constant(s)))
    both = keras_distiller_losses(s, t, tau)
    assert both["keras_default"] == pytest.approx(keras_value, rel=1e-5)
    assert both["kl_on_probabilities"] == pytest.approx(keras_right, rel=1e-4)
    assert both["kl_on_probabilities"] == pytest.approx(tau**2 * float(soft_kl(s, t, tau)), 1e-5)
    assert abs(both["keras_default"] - both["kl_on_probabilities"]) > 1.0  # not the same loss


def test_keras_distiller_object_computes_the_clipped_default(data, teacher):
    """The whole Distiller: w · CE + (1 − w) · keras_default, w = student_loss_weight = 1 − α."""
    student = TINY_STUDENT.build(seed=0)
    distiller = keras.distillation.Distiller(
        teacher=teacher,
        student=student,
        distillation_losses=keras.distillation.LogitsDistillation(temperature=2.0),
        student_loss_weight=0.25,
    )
    distiller.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    x = data[0][:32].reshape(4, 8)
    y = data[0][1:33].reshape(4, 8)
    zs, zt = student(x).numpy(), teacher(x).numpy()
    keras_total = float(distiller.compute_loss(x, y, tf.constant(zs)))
    ce = distillation_loss_numpy(zs, zt, y, 2.0, alpha=0.0)
    ours = 0.25 * ce + 0.75 * keras_distiller_default_loss(zs, zt, 2.0)
    assert keras_total == pytest.approx(ours, rel=1e-5)
    right = distillation_loss_numpy(zs, zt, y, 2.0, alpha=0.75)
    assert abs(keras_total - right) > 0.1


def test_keras_default_is_the_kl_of_clipped_logits():
    """Logits / τ inside [ε, 1] are used as they are, the others are clipped."""
    t = np.array([[0.5, 2.0, -3.0]])
    s = np.array([[0.25, 0.5, 0.1]])
    eps = keras.config.epsilon()
    expected = 0.5 * math.log(0.5 / 0.25) + 1.0 * math.log(1.0 / 0.5) + eps * math.log(eps / 0.1)
    assert keras_distiller_default_loss(s, t, 1.0) == pytest.approx(expected, rel=1e-9)


# --- the trainer ----------------------------------------------------------------------------------
def _weights(model):
    return [np.array(v.numpy()) for v in model.weights]


@pytest.fixture
def eager():
    """Steps run eagerly (no tracing: quick at these sizes); the compiled path has its own test."""
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


def _check_frozen_teacher(data, teacher, jit):
    train, val = data
    before = _weights(teacher)
    student = TINY_STUDENT.build(seed=0)
    s_before = _weights(student)
    d = DistillationTrainer(student, teacher, train, val, TINY_TRAIN, 2.0, 0.5, jit_compile=jit)
    assert d.student is student and d.teacher is teacher
    for _ in range(3):
        d.step()
    for a, b in zip(before, _weights(teacher)):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(s_before, _weights(student)))
    # the teacher's variables are not among those the optimizer updates
    assert not {id(v) for v in student.trainable_variables} & {id(v) for v in teacher.weights}
    h = d.history
    assert len(h["train_kl"]) == len(h["train_ce"]) == len(h["train_loss"]) == 3
    for loss, kl, ce in zip(h["train_loss"], h["train_kl"], h["train_ce"]):
        assert loss == pytest.approx(0.5 * 2.0**2 * kl + 0.5 * ce, rel=1e-5)
    return d


def test_teacher_is_frozen_student_learns_and_fit(data, teacher, eager):
    d = _check_frozen_teacher(data, teacher, jit=False)
    h = d.fit(3, eval_every=3, eval_windows=5, progress=False)
    assert h["step"] == list(range(1, 7)) and h["eval_step"] == [6]
    assert len(h["val_loss"]) == 1 and np.isfinite(h["val_loss"][0])


@pytest.mark.slow
def test_teacher_is_frozen_in_the_compiled_step(data, teacher):
    _check_frozen_teacher(data, teacher, jit=True)


def test_alpha_zero_trains_like_trainer_on_the_same_batches(data, teacher, eager):
    """Same cfg.seed → same batches; α = 0 → the plain label step: same losses and weights."""
    train, val = data
    a, b = TINY_STUDENT.build(seed=3), TINY_STUDENT.build(seed=3)
    plain = Trainer(a, train, val, TINY_TRAIN, jit_compile=False)
    dist = DistillationTrainer(b, teacher, train, val, TINY_TRAIN, 2.0, 0.0, jit_compile=False)
    for _ in range(4):
        assert dist.step() == pytest.approx(plain.step(), rel=1e-6)
    assert dist.history["train_loss"] == pytest.approx(dist.history["train_ce"], rel=1e-7)
    assert all(math.isnan(kl) for kl in dist.history["train_kl"])  # the teacher was not run
    for u, v in zip(_weights(a), _weights(b)):
        np.testing.assert_allclose(u, v, atol=1e-6)
    # the distillation step itself at α = 0 is the label step: same loss, same update
    c, e = TINY_STUDENT.build(seed=4), TINY_STUDENT.build(seed=4)
    x, y = train[:32].reshape(4, 8), train[1:33].reshape(4, 8)
    label_step = train_step_function(c, make_optimizer(c, TINY_TRAIN), jit_compile=False)
    kd_step = distillation_step_function(e, teacher, make_optimizer(e, TINY_TRAIN), 3.0, 0.0, False)
    loss, _, ce = kd_step(x, y)
    assert float(loss) == float(ce) == pytest.approx(float(label_step(x, y)), rel=1e-6)
    for u, v in zip(_weights(c), _weights(e)):
        np.testing.assert_allclose(u, v, atol=1e-6)
    # pure distillation at τ = 1 records its loss as the KL itself
    d1 = DistillationTrainer(TINY_STUDENT.build(), teacher, train, val, TINY_TRAIN, 1.0, 1.0)
    d1.step()
    assert d1.history["train_loss"] == pytest.approx(d1.history["train_kl"], rel=1e-6)


def test_student_config():
    n = gpt_param_count(
        STUDENT.vocab_size, STUDENT.max_len, STUDENT.d_model, STUDENT.num_layers, use_bias=False
    )
    b = BABY_GPT
    teacher_n = gpt_param_count(b.vocab_size, b.max_len, b.d_model, b.num_layers, use_bias=False)
    assert teacher_n == 804_096
    assert (STUDENT.vocab_size, STUDENT.max_len) == (BABY_GPT.vocab_size, BABY_GPT.max_len)
    assert n == 106_880 and teacher_n / n >= 5
    assert STUDENT_TRAIN.max_steps == STUDENT_TRAIN.decay_steps == 600
    assert STUDENT_TRAIN.warmup_steps < STUDENT_TRAIN.decay_steps


# --- refusals -------------------------------------------------------------------------------------
def test_loss_refusals():
    s, t, y = _logits(0), _logits(1), np.zeros((2, 3), np.int32)
    for tau in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            distillation_loss_numpy(s, t, y, tau)
        with pytest.raises(ValueError, match="temperature"):
            distillation_loss(tf.constant(s), tf.constant(t), tf.constant(y), tau)
    for tau in (True, "2", None):
        with pytest.raises(TypeError, match="temperature"):
            soft_kl(tf.constant(s), tf.constant(t), tau)
    for alpha in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
            distillation_loss_numpy(s, t, y, 2.0, alpha)
        with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
            distillation_loss(tf.constant(s), tf.constant(t), tf.constant(y), 2.0, alpha)
    with pytest.raises(TypeError, match="alpha"):
        distillation_loss_numpy(s, t, y, 2.0, "0.5")
    with pytest.raises(ValueError, match="different vocabularies"):
        distillation_loss_numpy(s, _logits(1, (2, 3, 8)), y)
    with pytest.raises(ValueError, match="same shape"):
        distillation_loss(tf.constant(s), tf.constant(_logits(1, (2, 4, 7))), tf.constant(y))
    with pytest.raises(ValueError, match="targets must have the logits' shape"):
        distillation_loss(tf.constant(s), tf.constant(t), tf.zeros((2, 4), tf.int32))
    with pytest.raises(ValueError, match=r"token ids in \[0, 7\)"):
        distillation_loss_numpy(s, t, np.full((2, 3), 7))
    with pytest.raises(TypeError, match="integer token ids"):
        distillation_loss_numpy(s, t, np.zeros((2, 3)))
    with pytest.raises(TypeError, match="floating-point"):
        keras_distiller_default_loss(np.zeros((2, 7), np.int32), t[0, :2], 1.0)


def test_trainer_refusals(data, teacher):
    train, val = data
    student = TINY_STUDENT.build()
    with pytest.raises(TypeError, match="teacher must be a lessons_lib GPT"):
        DistillationTrainer(student, keras.Sequential(), train, val)
    with pytest.raises(TypeError, match="student must be a lessons_lib GPT"):
        DistillationTrainer("gpt", teacher, train, val)
    unbuilt = GPT(11, 8, 16, 2, 1)
    with pytest.raises(ValueError, match="student is not built"):
        DistillationTrainer(unbuilt, teacher, train, val)
    other_vocab = dataclasses.replace(TINY_STUDENT, vocab_size=12).build()
    with pytest.raises(ValueError, match="teacher vocab_size 11, student vocab_size 12"):
        DistillationTrainer(other_vocab, teacher, train, val)
    longer = dataclasses.replace(TINY_STUDENT, max_len=16).build()
    with pytest.raises(ValueError, match="max_len 16.*max_len 8"):
        DistillationTrainer(longer, teacher, train, val)
    with pytest.raises(ValueError, match="same model"):
        DistillationTrainer(teacher, teacher, train, val)
    with pytest.raises(ValueError, match="temperature"):
        DistillationTrainer(student, teacher, train, val, TINY_TRAIN, temperature=0.0)
    with pytest.raises(ValueError, match="alpha"):
        DistillationTrainer(student, teacher, train, val, TINY_TRAIN, alpha=1.01)
    with pytest.raises(TypeError, match="cfg must be a TrainConfig"):
        DistillationTrainer(student, teacher, train, val, {"batch_size": 4})
    with pytest.raises(ValueError, match=r"train_data must hold token ids in \[0, 11\)"):
        DistillationTrainer(student, teacher, train + 5, val)
