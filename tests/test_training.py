"""Tests for lessons_lib.training (lesson 09): schedule, optimiser, initialisation, windows, steps,
checkpoints.

Tiny models only (2 layers, d_model 16 to 64), eager steps: the file runs in well under a minute on
2 cores.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from lessons_lib.training import (
    BABY_GPT,
    BABY_TRAIN,
    ModelConfig,
    TrainConfig,
    Trainer,
    WarmupCosine,
    evaluate_loss,
    evaluation_windows,
    gpt2_init,
    lm_loss,
    load_checkpoint,
    make_optimizer,
    random_windows,
    save_checkpoint,
    train_step_function,
)

TINY = ModelConfig(vocab_size=11, max_len=8, d_model=16, num_heads=2, num_layers=2)


@pytest.fixture(scope="module")
def tiny_model():
    return TINY.build(seed=0)


def _data(n: int = 400, vocab: int = 11) -> np.ndarray:
    """A periodic token stream: easy to learn, so a few steps visibly lower the loss."""
    return (np.arange(n) % vocab).astype(np.int32)


# ------------------------------------------------------------------------------------- the learning
# rate


def _expected_lr(step, peak, floor, warmup, decay):
    """The schedule of lesson 09 §4, written out again from its formula."""
    if step < warmup:
        return peak * (step + 1) / (warmup + 1)
    progress = min(1.0, (step - warmup) / (decay - warmup))
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * progress))


def test_schedule_at_the_landmarks():
    peak, floor, warmup, decay = 1e-3, 1e-4, 100, 2000
    schedule = WarmupCosine(peak, floor, warmup, decay)

    def lr(s):
        return float(schedule(s))

    assert lr(0) == pytest.approx(peak / (warmup + 1), rel=1e-6)  # step 0: a small first step
    assert lr(warmup - 1) == pytest.approx(peak * warmup / (warmup + 1), rel=1e-6)
    assert lr(warmup) == pytest.approx(peak, rel=1e-6)  # end of warm-up: the peak
    assert lr((warmup + decay) // 2) == pytest.approx((peak + floor) / 2, rel=1e-5)  # half-way down
    assert lr(decay - 1) == pytest.approx(
        _expected_lr(decay - 1, peak, floor, warmup, decay), rel=1e-5
    )
    assert lr(decay) == pytest.approx(floor, rel=1e-6)  # the last step of the decay: the floor
    for after in (decay + 1, 2 * decay, 10**6):
        assert lr(after) == pytest.approx(floor, rel=1e-6)  # and it stays there


def test_schedule_matches_its_formula_everywhere():
    cfg = BABY_TRAIN
    schedule = WarmupCosine(
        cfg.learning_rate, cfg.min_learning_rate, cfg.warmup_steps, cfg.decay_steps
    )
    steps = [0, 1, 50, 99, 100, 101, 500, 1000, 1999, 2000, 2001, 5000]
    got = [float(schedule(s)) for s in steps]
    want = [
        _expected_lr(s, cfg.learning_rate, cfg.min_learning_rate, cfg.warmup_steps, cfg.decay_steps)
        for s in steps
    ]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert all(a <= b + 1e-12 for a, b in zip(got[:5], got[1:5]))  # rises through the warm-up
    assert all(a >= b - 1e-12 for a, b in zip(got[4:], got[5:]))  # never rises after it


def test_schedule_without_warmup_and_its_config():
    schedule = WarmupCosine(2e-3, 0.0, 0, 10)
    assert float(schedule(0)) == pytest.approx(2e-3)
    assert float(schedule(10)) == pytest.approx(0.0, abs=1e-12)
    assert WarmupCosine(**schedule.get_config()).get_config() == schedule.get_config()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1e-4, 1e-3, 10, 100), "floor <= peak"),
        ((1e-3, -1e-4, 10, 100), "floor <= peak"),
        ((1e-3, 1e-4, 100, 100), "warmup_steps < decay_steps"),
        ((1e-3, 1e-4, -1, 100), "warmup_steps < decay_steps"),
    ],
)
def test_schedule_refuses_bad_settings(args, message):
    with pytest.raises(ValueError, match=message):
        WarmupCosine(*args)


# --------------------------------------------------------------------------------- weight decay
# (AdamW)


def test_weight_decay_on_matrices_only():
    """Kernels and embeddings are decayed; biases, LayerNorm gains, offsets not (lesson 09 §4)."""
    model = dataclasses.replace(TINY, use_bias=True).build()
    opt = make_optimizer(model)
    opt.build(model.trainable_variables)
    decayed = {v.path for v in model.trainable_variables if opt._use_weight_decay(v)}
    kept = {v.path for v in model.trainable_variables} - decayed
    assert decayed == {v.path for v in model.trainable_variables if len(v.shape) == 2}
    assert any(p.endswith("token_embedding/embeddings") for p in decayed)  # as in nanoGPT
    assert any(p.endswith("position_embedding/embeddings") for p in decayed)
    assert kept and all(p.endswith(("bias", "gamma", "beta")) for p in kept)
    n_layers = TINY.num_layers
    assert sum(p.endswith("gamma") for p in kept) == 2 * n_layers + 1  # ln1, ln2 per block, ln_f


def test_weight_decay_shrinks_matrices_and_leaves_vectors_alone():
    """An AdamW step with zero gradients only decays: θ ← θ − η λ θ, on matrices only."""
    model = dataclasses.replace(TINY, use_bias=True).build()
    cfg = dataclasses.replace(
        BABY_TRAIN, learning_rate=1e-2, min_learning_rate=1e-3, warmup_steps=0
    )
    opt = make_optimizer(model, cfg)
    variables = model.trainable_variables
    for v in variables:  # make the vectors non-zero so that a decay would show
        if len(v.shape) == 1:
            v.assign(np.full(v.shape, 0.5, dtype=np.float32))
    before = [v.numpy().copy() for v in variables]
    opt.apply_gradients([(np.zeros(v.shape, np.float32), v) for v in variables])
    lr = float(WarmupCosine(cfg.learning_rate, cfg.min_learning_rate, 0, cfg.decay_steps)(0))
    factor = 1 - lr * cfg.weight_decay
    for v, old in zip(variables, before):
        if len(v.shape) >= 2:
            np.testing.assert_allclose(v.numpy(), old * factor, rtol=1e-5, err_msg=v.path)
        else:
            np.testing.assert_array_equal(v.numpy(), old, err_msg=v.path)


def test_optimizer_settings_come_from_the_config():
    model = TINY.build()
    opt = make_optimizer(model, BABY_TRAIN)
    assert opt.weight_decay == pytest.approx(BABY_TRAIN.weight_decay)
    assert opt.global_clipnorm == pytest.approx(BABY_TRAIN.grad_clip)
    assert (opt.beta_1, opt.beta_2, opt.epsilon) == pytest.approx(
        (BABY_TRAIN.beta_1, BABY_TRAIN.beta_2, BABY_TRAIN.epsilon)
    )


# ----------------------------------------------------------------------------------------
# initialisation


def test_gpt2_init_standard_deviations():
    """std 0.02 for every matrix, 0.02 / √(2L) for W_O and W_2; gains 1, biases and offsets 0."""
    cfg = ModelConfig(
        vocab_size=50, max_len=32, d_model=64, num_heads=2, num_layers=2, use_bias=True
    )
    model = cfg.build(seed=3)
    residual_std = 0.02 / math.sqrt(2 * cfg.num_layers)
    seen = set()
    for v in model.weights:
        value, path = v.numpy(), v.path
        if path.endswith(("attn/wo/kernel", "ffn/w2/kernel")):
            assert np.std(value) == pytest.approx(residual_std, rel=0.06), path
            seen.add("residual")
        elif len(v.shape) == 2:
            assert np.std(value) == pytest.approx(0.02, rel=0.06), path
            assert abs(np.mean(value)) < 0.002, path
            seen.add("matrix")
        elif path.endswith("gamma"):
            np.testing.assert_array_equal(value, 1.0)
            seen.add("gain")
        else:
            np.testing.assert_array_equal(value, 0.0)  # biases and LayerNorm offsets
            seen.add("zero")
    assert seen == {"residual", "matrix", "gain", "zero"}


def test_gpt2_init_is_seeded_and_in_place():
    a, b, c = TINY.build(seed=1), TINY.build(seed=1), TINY.build(seed=2)
    for va, vb, vc in zip(a.weights, b.weights, c.weights):
        np.testing.assert_array_equal(va.numpy(), vb.numpy())
        if len(va.shape) == 2:
            assert not np.array_equal(va.numpy(), vc.numpy())
    gpt2_init(a, std=0.1, seed=1)
    kernel = next(v for v in a.weights if v.path.endswith("block_0/attn/wq/kernel"))
    assert np.std(kernel.numpy()) > 0.05  # the std argument scales every matrix


# ----------------------------------------------------------------------------------------------
# windows


def test_random_windows_shapes_and_shift():
    data = np.arange(100, dtype=np.int32)
    x, y = random_windows(data, max_len=8, batch_size=5, rng=np.random.default_rng(0))
    assert x.shape == y.shape == (5, 8) and x.dtype == y.dtype == np.int32
    np.testing.assert_array_equal(y, x + 1)  # targets are the inputs shifted by one
    starts = x[:, 0]
    np.testing.assert_array_equal(x, starts[:, None] + np.arange(8))  # consecutive tokens
    assert starts.min() >= 0 and starts.max() <= 100 - 8 - 1  # the target window fits


def test_random_windows_draws_starts_with_one_rng_call():
    data = np.arange(50, dtype=np.int32)
    x, _ = random_windows(data, 4, 6, np.random.default_rng(7))
    np.testing.assert_array_equal(x[:, 0], np.random.default_rng(7).integers(0, 50 - 4, size=6))
    again, _ = random_windows(data, 4, 6, np.random.default_rng(7))
    np.testing.assert_array_equal(x, again)


def test_random_windows_smallest_data_and_every_start():
    data = np.arange(9, dtype=np.int32)  # max_len + 1 tokens: exactly one possible window
    x, y = random_windows(data, 8, 3, np.random.default_rng(0))
    np.testing.assert_array_equal(x, np.tile(np.arange(8), (3, 1)))
    np.testing.assert_array_equal(y, np.tile(np.arange(1, 9), (3, 1)))
    x, _ = random_windows(np.arange(20), 4, 2000, np.random.default_rng(0))
    assert set(x[:, 0].tolist()) == set(range(16))  # every start 0 … len − max_len − 1 occurs


def test_evaluation_windows_are_fixed_and_non_overlapping():
    data = np.arange(35, dtype=np.int32)
    x, y = evaluation_windows(data, max_len=8)
    assert x.shape == y.shape == (4, 8)  # (35 - 1) // 8 windows
    np.testing.assert_array_equal(x.ravel(), np.arange(32))
    np.testing.assert_array_equal(y, x + 1)
    x, y = evaluation_windows(np.arange(33), 8)  # 33 tokens: 4 windows of 8 + the last target
    assert x.shape == (4, 8) and y[-1, -1] == 32
    x, _ = evaluation_windows(np.arange(8), 8)  # no room for a target: no window
    assert x.shape == (0, 8)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: random_windows(np.arange(8), 8, 2, np.random.default_rng()),
            ValueError,
            "max_len=8",
        ),
        (
            lambda: random_windows(np.arange(20), 0, 2, np.random.default_rng()),
            ValueError,
            "max_len",
        ),
        (
            lambda: random_windows(np.arange(20), 4.0, 2, np.random.default_rng()),
            ValueError,
            "max_len",
        ),
        (
            lambda: random_windows(np.arange(20), 4, 0, np.random.default_rng()),
            ValueError,
            "batch_size",
        ),
        (
            lambda: random_windows(np.ones((4, 20), int), 4, 2, np.random.default_rng()),
            ValueError,
            "1-D",
        ),
        (
            lambda: random_windows(np.linspace(0, 1, 20), 4, 2, np.random.default_rng()),
            ValueError,
            "integer",
        ),
        (lambda: evaluation_windows(np.arange(20), 0), ValueError, "max_len"),
        (lambda: evaluation_windows(np.arange(20).reshape(4, 5), 2), ValueError, "1-D"),
    ],
)
def test_windows_refuse_bad_inputs(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_block_size_is_gone():
    with pytest.raises(TypeError):
        random_windows(np.arange(20), block_size=4, batch_size=2, rng=np.random.default_rng())


# -------------------------------------------------------------------------------------- loss and
# steps


def test_lm_loss_is_mean_cross_entropy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 5)).astype(np.float32)
    targets = rng.integers(0, 5, size=(2, 3))
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.take_along_axis(log_p, targets[..., None], -1).mean()
    assert float(lm_loss(logits, targets)) == pytest.approx(expected, rel=1e-5)
    assert float(lm_loss(np.zeros((1, 4, 65), np.float32), np.zeros((1, 4), int))) == pytest.approx(
        math.log(65), rel=1e-6
    )  # uniform predictions: ln V


def test_train_step_lowers_the_loss_on_a_tiny_batch():
    model = TINY.build(seed=0)
    cfg = dataclasses.replace(BABY_TRAIN, learning_rate=1e-2, warmup_steps=0, decay_steps=100)
    step = train_step_function(model, make_optimizer(model, cfg), jit_compile=False)
    x, y = random_windows(_data(), TINY.max_len, 4, np.random.default_rng(0))
    losses = [float(step(x, y)) for _ in range(15)]
    assert losses[0] == pytest.approx(
        math.log(TINY.vocab_size), abs=0.3
    )  # near-uniform at the start
    assert losses[-1] < losses[0] - 0.5, losses
    assert all(np.isfinite(losses))


def test_trainer_fit_history_evaluations_and_callback(capsys):
    model = TINY.build(seed=0)
    cfg = TrainConfig(
        batch_size=4, max_steps=12, learning_rate=1e-2, warmup_steps=2, decay_steps=12
    )
    trainer = Trainer(model, _data(), _data(200), cfg, jit_compile=False)
    calls = []
    history = trainer.fit(
        eval_every=5, eval_windows=8, callback=lambda t: calls.append(t.steps_done)
    )
    assert trainer.steps_done == 12 and history["step"] == list(range(1, 13))
    assert len(history["train_loss"]) == 12
    assert history["eval_step"] == calls == [5, 10, 12]  # every 5 steps and at max_steps
    assert len(history["val_loss"]) == len(history["eval_train_loss"]) == 3
    assert history["val_loss"][-1] < history["val_loss"][0]
    captured = capsys.readouterr()
    assert captured.err == ""  # a notebook shows stderr in red, and nbval refuses it
    assert captured.out.count("\r") == 12  # terminal: default cadence max(1, 12 // 50) = every step
    assert "12/12" in captured.out.rsplit("\r", 1)[-1]


def test_progress_is_refreshed_on_a_step_cadence(capsys, monkeypatch):
    """In a notebook: one display, updated every `progress_every` steps and at the end."""
    import lessons_lib.training as training

    sent = []

    class Handle:
        def update(self, bundle, raw):
            sent.append(bundle["text/plain"])

    def fake_display(bundle, raw, display_id):
        sent.append(bundle["text/plain"])
        return Handle()

    monkeypatch.setattr(training, "_notebook_display", lambda: fake_display)
    model = TINY.build(seed=0)
    cfg = TrainConfig(batch_size=2, max_steps=20, warmup_steps=1, decay_steps=20)
    trainer = Trainer(model, _data(), _data(200), cfg, jit_compile=False)
    trainer.fit(eval_every=100, eval_windows=4, progress_every=8)
    assert capsys.readouterr().out == ""  # the bar goes to the display, not to stdout
    assert len(sent) == 1 + 3  # the first line, steps 8 and 16, the last step
    assert "0/20" in sent[0] and "8/20" in sent[1] and "16/20" in sent[2]
    assert "20/20" in sent[-1] and "loss=" in sent[-1]
    sent.clear()
    cfg2 = dataclasses.replace(cfg, max_steps=100)
    trainer2 = Trainer(TINY.build(), _data(), _data(200), cfg2, jit_compile=False)
    trainer2.fit(steps=100, eval_every=1000, eval_windows=4)  # default cadence: steps // 50
    assert len(sent) == 1 + 50


def test_trainer_refuses_bad_arguments(tiny_model):
    trainer = Trainer(tiny_model, _data(), _data(200), TrainConfig(batch_size=2), jit_compile=False)
    with pytest.raises(ValueError, match="split must be 'val' or 'train'"):
        trainer.evaluate("test")
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        trainer.fit(steps=0, progress=False)
    with pytest.raises(ValueError, match="eval_every must be a positive integer"):
        trainer.fit(steps=1, eval_every=0, progress=False)
    with pytest.raises(ValueError, match="progress_every must be a positive integer"):
        trainer.fit(steps=1, progress_every=0)


def test_evaluate_loss_pads_the_last_batch_and_refuses_short_data(tiny_model):
    data = _data(8 * 10 + 1)  # exactly 10 windows
    full = evaluate_loss(tiny_model, data, batch_size=10)
    padded = evaluate_loss(
        tiny_model, data, batch_size=4
    )  # 4 + 4 + 2 (padded to 4, padding dropped)
    assert padded == pytest.approx(full, rel=1e-5)
    assert evaluate_loss(tiny_model, data, max_windows=3) == pytest.approx(
        evaluate_loss(tiny_model, data[: 3 * 8 + 1]), rel=1e-5
    )
    with pytest.raises(ValueError, match="not enough for one window of 9"):
        evaluate_loss(tiny_model, _data(8))


# ------------------------------------------------------------------------------------------
# checkpoints


def test_checkpoint_round_trip(tmp_path, tiny_model):
    path = save_checkpoint(
        tiny_model, tmp_path / "sub" / "tiny.weights.h5", {"val_loss": 1.5, "note": "x"}
    )
    assert path.exists() and (tmp_path / "sub" / "tiny.weights.h5.json").exists()
    fresh = TINY.build(seed=99)
    meta = load_checkpoint(fresh, path)
    assert meta["val_loss"] == 1.5 and meta["note"] == "x"
    assert meta["config"]["d_model"] == TINY.d_model and "name" not in meta["config"]
    for a, b in zip(tiny_model.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    stored = json.loads((tmp_path / "sub" / "tiny.weights.h5.json").read_text())
    assert stored == meta


def test_checkpoint_of_another_configuration_is_refused_naming_the_differences(
    tmp_path, tiny_model
):
    path = save_checkpoint(tiny_model, tmp_path / "tiny.weights.h5")
    other = dataclasses.replace(TINY, d_model=32, num_layers=1).build()
    with pytest.raises(ValueError, match="another configuration") as info:
        load_checkpoint(other, path)
    message = str(info.value)
    assert "d_model: checkpoint 16 vs model 32" in message
    assert "num_layers: checkpoint 2 vs model 1" in message
    assert "d_ff: checkpoint 64 vs model 128" in message
    assert "vocab_size" not in message and "max_len" not in message  # only what differs


def test_checkpoint_paths_are_checked(tmp_path, tiny_model):
    with pytest.raises(ValueError, match=r"must end with \.weights\.h5"):
        save_checkpoint(tiny_model, tmp_path / "tiny.h5")
    with pytest.raises(FileNotFoundError, match="python -m lessons_lib.training"):
        load_checkpoint(tiny_model, tmp_path / "missing.weights.h5")


def test_baby_configuration_is_the_reference_run():
    assert (BABY_GPT.num_layers, BABY_GPT.num_heads, BABY_GPT.d_model, BABY_GPT.max_len) == (
        4,
        4,
        128,
        64,
    )
    assert (BABY_TRAIN.batch_size, BABY_TRAIN.max_steps, BABY_TRAIN.warmup_steps) == (12, 2000, 100)
    assert (BABY_TRAIN.learning_rate, BABY_TRAIN.min_learning_rate) == (1e-3, 1e-4)
