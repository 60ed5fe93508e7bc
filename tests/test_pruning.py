"""Tests of lessons_lib.pruning (lesson 15 §5–§6): masks, masked fine-tuning, FFN-neuron pruning."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lessons_lib import (
    GPT,
    MaskedTrainer,
    apply_masks,
    compressed_bytes,
    dense_bytes,
    ffn_neuron_importance,
    fine_tune_config,
    gpt_param_count,
    layer_sparsity,
    magnitude_masks,
    prunable_weights,
    prune,
    prune_ffn,
    sparse_bytes,
    sparsity,
)
from lessons_lib.attention import causal_mask
from lessons_lib.block import block_weights, transformer_block
from lessons_lib.training import ModelConfig, TrainConfig

TINY = ModelConfig(vocab_size=11, max_len=8, d_model=16, num_heads=2, num_layers=2)
KINDS = ("attn/wq", "attn/wk", "attn/wv", "attn/wo", "ffn/w1", "ffn/w2")


def tiny(seed: int = 0, **changes) -> GPT:
    """A tiny GPT (two blocks, d_ff 64) with GPT-2 initialisation."""
    import dataclasses

    return dataclasses.replace(TINY, **changes).build(seed=seed)


def clone(model: GPT) -> GPT:
    copy = GPT(**model.get_config())
    copy(np.zeros((1, model.max_len), dtype=np.int32))
    copy.set_weights(model.get_weights())
    return copy


def ids(n: int = 4, seed: int = 0, vocab: int = 11, t: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, (n, t)).astype(np.int32)


@pytest.fixture(scope="module")
def model() -> GPT:
    return tiny()


@pytest.fixture(scope="module")
def corpus() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 11, 3000).astype(np.int32)


# --- which weights --------------------------------------------------------------------------------
def test_prunable_weights_are_the_block_matmuls_only(model):
    w = prunable_weights(model)
    assert list(w) == [f"block_{i}/{k}" for i in range(2) for k in KINDS]
    assert all(len(v.shape) == 2 for v in w.values())
    ids_ = {id(v) for v in w.values()}
    assert id(model.embed.token_embedding.embeddings) not in ids_  # the tied head: never pruned
    assert id(model.blocks[0].ln1.gamma) not in ids_
    n = sum(int(np.prod(v.shape)) for v in w.values())
    assert n == 2 * (4 * 16 * 16 + 2 * 16 * 64)


def test_untied_head_is_prunable():
    w = prunable_weights(tiny(tie_embeddings=False, num_layers=1))
    assert list(w)[-1] == "head" and tuple(w["head"].shape) == (16, 11)


# --- magnitude masks ------------------------------------------------------------------------------
@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.5, 0.999])
def test_layer_masks_remove_exactly_floor_fraction_of_the_smallest(model, fraction):
    masks = magnitude_masks(model, fraction)
    for k, v in prunable_weights(model).items():
        w, m = np.abs(v.numpy()), masks[k]
        assert m.dtype == bool and m.shape == w.shape
        assert (~m).sum() == math.floor(fraction * w.size)  # rounded down
        if 0 < (~m).sum() < w.size:
            assert w[~m].max() <= w[m].min()  # the removed are the smallest


def test_ties_are_broken_by_position():
    m = tiny(num_layers=1)
    for v in prunable_weights(m).values():
        v.assign(np.full(v.shape, 0.5, dtype="float32"))
    masks = magnitude_masks(m, 0.25)
    wq = masks["block_0/attn/wq"].ravel()  # 256 equal weights: the first 64 go
    assert not wq[:64].any() and wq[64:].all()
    assert all(
        np.array_equal(a, b) for a, b in zip(masks.values(), magnitude_masks(m, 0.25).values())
    )


def test_global_scope_is_one_threshold_over_all_matrices(model):
    masks = magnitude_masks(model, 0.6, scope="global")
    w = prunable_weights(model)
    flat_w = np.concatenate([np.abs(v.numpy()).ravel() for v in w.values()])
    flat_m = np.concatenate([masks[k].ravel() for k in w])
    assert (~flat_m).sum() == math.floor(0.6 * flat_w.size)
    assert flat_w[~flat_m].max() <= flat_w[flat_m].min()
    # NumPy reference: the threshold is the k-th smallest |w| of all
    threshold = np.sort(flat_w)[math.floor(0.6 * flat_w.size) - 1]
    assert np.array_equal(flat_m, flat_w > threshold)  # no ties among random floats
    per_layer = layer_sparsity(masks)
    assert max(per_layer.values()) - min(per_layer.values()) > 0.1  # unlike scope="layer"
    # wo and w2 start with std 0.02/√(2L): smaller weights, pruned more
    assert per_layer["block_0/ffn/w2"] > per_layer["block_0/ffn/w1"]
    layer = layer_sparsity(magnitude_masks(model, 0.6))
    assert all(abs(s - 0.6) < 0.01 for s in layer.values())


def test_prune_applies_the_masks_and_sparsity_counts_zeros():
    m = tiny()
    before = {k: v.numpy() for k, v in prunable_weights(m).items()}
    others = [v.numpy() for v in m.weights if len(v.shape) < 2]
    masks = prune(m, 0.5)
    for k, v in prunable_weights(m).items():
        assert np.array_equal(v.numpy(), before[k] * masks[k])
    assert all(
        np.array_equal(a, v.numpy())
        for a, v in zip(others, [v for v in m.weights if len(v.shape) < 2])
    )
    assert sparsity(m) == sparsity(masks) == 0.5
    assert layer_sparsity(m) == layer_sparsity(masks)
    assert sparsity(tiny()) == 0.0


# --- fine-tuning that keeps the zeros -------------------------------------------------------------
def _strong_cfg(steps: int) -> TrainConfig:
    return TrainConfig(
        batch_size=4,
        max_steps=steps,
        learning_rate=1e-2,
        min_learning_rate=1e-2,
        warmup_steps=0,
        decay_steps=steps,
        weight_decay=0.1,
        seed=0,
    )


@pytest.mark.parametrize(
    "jit_compile",
    [False, pytest.param(True, marks=pytest.mark.slow)],  # XLA: ~10-40 s to compile
)
def test_masked_step_keeps_the_zeros_a_plain_step_revives_them(corpus, jit_compile):
    m = tiny(num_layers=1)
    masks = prune(m, 0.5)
    start = {k: v.numpy() for k, v in prunable_weights(m).items()}
    trainer = MaskedTrainer(m, masks, corpus, corpus, _strong_cfg(4), jit_compile=jit_compile)
    history = trainer.fit(4, eval_every=4, eval_windows=2, progress=False)  # Trainer's own loop
    assert history["step"] == [1, 2, 3, 4] and len(history["val_loss"]) == 1
    for k, v in prunable_weights(m).items():
        w = v.numpy()
        assert np.all(w[~masks[k]] == 0), k  # exactly zero after 4 AdamW steps
        assert not np.allclose(w[masks[k]], start[k][masks[k]])  # the kept weights did train
    assert sparsity(m) == 0.5

    plain = MaskedTrainer(m, None, corpus, corpus, _strong_cfg(2), jit_compile=False)
    plain.step()
    assert sparsity(m) < 0.01  # one AdamW step moves (almost) every pruned weight off zero


def test_masked_trainer_applies_its_masks_at_start(corpus):
    m = tiny(num_layers=1)
    masks = magnitude_masks(m, 0.3)
    assert sparsity(m) == 0.0
    trainer = MaskedTrainer(m, masks, corpus, corpus, fine_tune_config(3), jit_compile=False)
    assert sparsity(m) == sparsity(masks)
    assert trainer.masks is not None and trainer.cfg.max_steps == 3


def test_fine_tune_config():
    cfg = fine_tune_config(50)
    assert (cfg.max_steps, cfg.decay_steps, cfg.learning_rate) == (50, 50, 3e-4)
    assert fine_tune_config(1).warmup_steps == 0
    assert fine_tune_config(50, seed=3).seed == 3
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        fine_tune_config(0)


# --- sizes ----------------------------------------------------------------------------------------
def test_compressed_size_falls_with_sparsity_the_dense_file_does_not():
    sizes = []
    for f in (0.0, 0.5, 0.9):
        m = tiny(d_model=32, num_layers=1)
        prune(m, f)
        sizes.append((dense_bytes(m), compressed_bytes(m), sparse_bytes(m)))
    dense, comp, csr = zip(*sizes)
    assert dense[0] == dense[1] == dense[2]
    assert comp[0] > comp[1] > comp[2]
    assert csr[0] > csr[1] > csr[2]
    assert comp[2] < 0.8 * comp[0]


def test_sparse_bytes_formula():
    masks = {"a": np.array([[1, 0, 0], [1, 1, 0]], bool), "b": np.zeros((4, 2), bool)}
    # a: 3 non-zeros · (4 + 4) + 3 row offsets · 4; b: 0 + 5 · 4
    assert sparse_bytes(masks) == 3 * 8 + 3 * 4 + 5 * 4
    assert sparse_bytes(masks, value_bytes=1, index_bytes=2) == 3 * 3 + 3 * 2 + 5 * 2
    with pytest.raises(ValueError, match="index_bytes must be a positive integer"):
        sparse_bytes(masks, index_bytes=0)


# --- structured pruning of FFN neurons ------------------------------------------------------------
def test_importance_from_weights_and_from_data():
    m = tiny()
    scores = ffn_neuron_importance(m)
    for b, s in zip(m.blocks, scores):
        w1, w2 = b.ffn.w1.kernel.numpy(), b.ffn.w2.kernel.numpy()
        expected = [np.linalg.norm(w1[:, j]) * np.linalg.norm(w2[j]) for j in range(64)]
        np.testing.assert_allclose(s, expected, rtol=1e-5)
    x = ids(3)
    data_scores = ffn_neuron_importance(m, x)
    # NumPy reference: the FFN hidden activations of each block from `transformer_block`
    h = np.asarray(m.embed(x), dtype=np.float64)
    for b, s in zip(m.blocks, data_scores):
        steps = transformer_block(h, block_weights(b), 2, mask=causal_mask(8))
        n2 = np.linalg.norm(b.ffn.w2.kernel.numpy(), axis=1)
        np.testing.assert_allclose(s, np.abs(steps["ffn_hidden"]).mean(axis=(0, 1)) * n2, rtol=1e-3)
        h = steps["block_out"]
    assert [a.shape for a in ffn_neuron_importance(m, np.arange(40) % 11)] == [(64,), (64,)]


@pytest.mark.parametrize("use_bias", [False, True])
def test_pruned_ffn_equals_the_model_with_those_neurons_zeroed(use_bias):
    m = tiny(seed=1, use_bias=use_bias)
    rng = np.random.default_rng(0)
    importance = [rng.random(64) for _ in m.blocks]
    small = prune_ffn(m, 5, importance=importance)
    assert small.d_ff == 5 and m.d_ff == 64  # the original is untouched
    expected = gpt_param_count(11, 8, 16, 2, d_ff=5, use_bias=use_bias)
    assert small.count_params() == expected < m.count_params()
    zeroed = clone(m)
    for b, s in zip(zeroed.blocks, importance):
        drop = np.argsort(-s, kind="stable")[5:]
        w1 = b.ffn.w1.kernel.numpy()
        w1[:, drop] = 0  # act(0) = 0: the neuron adds nothing
        b.ffn.w1.kernel.assign(w1)
        if use_bias:
            b1 = b.ffn.w1.bias.numpy()
            b1[drop] = 0
            b.ffn.w1.bias.assign(b1)
    x = ids(4)
    np.testing.assert_allclose(np.asarray(small(x)), np.asarray(zeroed(x)), atol=1e-5)
    assert not np.allclose(np.asarray(small(x)), np.asarray(m(x)), atol=1e-3)


def test_keeping_every_neuron_in_another_order_changes_nothing():
    m = tiny(seed=2)
    rng = np.random.default_rng(1)
    importance = [rng.random(64) for _ in m.blocks]
    same = prune_ffn(m, 64, importance=importance)
    order = np.argsort(-importance[0], kind="stable")
    assert not np.array_equal(order, np.arange(64))
    np.testing.assert_array_equal(
        same.blocks[0].ffn.w1.kernel.numpy(), m.blocks[0].ffn.w1.kernel.numpy()[:, order]
    )
    x = ids(4)
    np.testing.assert_allclose(np.asarray(same(x)), np.asarray(m(x)), atol=1e-5)
    assert prune_ffn(m, 0.25).d_ff == 16 and prune_ffn(m, 1.0).d_ff == 64
    assert prune_ffn(m, 0.001).d_ff == 1


def test_default_importance_keeps_the_highest_scores():
    m = tiny(num_layers=1)
    small = prune_ffn(m, 8)
    s = ffn_neuron_importance(m)[0]
    kept = np.argsort(-s)[:8]
    np.testing.assert_array_equal(
        small.blocks[0].ffn.w2.kernel.numpy(), m.blocks[0].ffn.w2.kernel.numpy()[kept]
    )


# --- refusals -------------------------------------------------------------------------------------
@pytest.mark.parametrize("fraction", [1.0, 1, -0.1, 1.5, float("nan")])
def test_fraction_outside_0_1_is_refused(model, fraction):
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\)"):
        magnitude_masks(model, fraction)


@pytest.mark.parametrize("fraction", ["0.5", None, True, [0.5]])
def test_fraction_not_a_number_is_refused(model, fraction):
    with pytest.raises(TypeError, match="fraction must be a number"):
        prune(model, fraction)


def test_bad_scope_unbuilt_and_non_gpt_are_refused(model):
    with pytest.raises(ValueError, match="scope must be one of"):
        magnitude_masks(model, 0.5, scope="local")
    unbuilt = GPT(11, 8, 16, 2, 1)
    for fn in (prunable_weights, sparsity, dense_bytes, ffn_neuron_importance):
        with pytest.raises(ValueError, match="not built"):
            fn(unbuilt)
    with pytest.raises(ValueError, match="not built"):
        prune_ffn(unbuilt, 8)
    with pytest.raises(TypeError, match="must be a lessons_lib.GPT"):
        magnitude_masks("gpt", 0.5)
    with pytest.raises(TypeError, match="must be a lessons_lib.GPT"):
        prune_ffn(np.zeros(3), 2)
    with pytest.raises(TypeError, match="a lessons_lib.GPT or a dict of masks"):
        sparsity([1, 0])


def test_masks_for_another_model_are_refused(model, corpus):
    one_block = tiny(num_layers=1)
    with pytest.raises(ValueError, match=r"missing keys \['block_1/attn/wq'"):
        apply_masks(model, magnitude_masks(one_block, 0.5))
    with pytest.raises(ValueError, match=r"unknown keys \['block_1/attn/wq'"):
        apply_masks(one_block, magnitude_masks(model, 0.5))
    wider = tiny(num_layers=1, d_model=32)
    with pytest.raises(ValueError, match=r"has shape \(32, 32\) but the model's block_0/attn/wq"):
        apply_masks(one_block, magnitude_masks(wider, 0.5))
    bad = {k: np.full(m.shape, 2) for k, m in magnitude_masks(one_block, 0.5).items()}
    with pytest.raises(ValueError, match="must be boolean or 0/1"):
        apply_masks(one_block, bad)
    with pytest.raises(TypeError, match="masks must be a dict"):
        apply_masks(one_block, [np.ones((16, 16))])
    with pytest.raises(ValueError, match="missing keys"):
        MaskedTrainer(model, magnitude_masks(one_block, 0.5), corpus, corpus)
    assert sparsity(one_block) == 0.0  # nothing was written


@pytest.mark.parametrize(
    "keep, error",
    [(0, ValueError), (65, ValueError), (0.0, ValueError), (1.5, ValueError), ("half", TypeError)],
)
def test_keep_out_of_range_is_refused(model, keep, error):
    with pytest.raises(error, match="keep"):
        prune_ffn(model, keep)


def test_bad_importance_is_refused(model):
    with pytest.raises(ValueError, match="importance must be a list of 2 arrays"):
        prune_ffn(model, 8, importance=[np.ones(64)])
    with pytest.raises(ValueError, match=r"importance\[1\] must be 64 finite scores"):
        prune_ffn(model, 8, importance=[np.ones(64), np.ones(63)])
    with pytest.raises(ValueError, match="data must be ids in"):
        ffn_neuron_importance(model, ids(2, vocab=12) + 11)


# --- the shipped checkpoint ---------------------------------------------------------------------
@pytest.mark.slow
def test_on_the_shipped_checkpoint():
    from lessons_lib.training import BABY_GPT, evaluate_loss, load_checkpoint, shakespeare_splits

    gpt = BABY_GPT.build()
    load_checkpoint(gpt)
    _, val = shakespeare_splits()
    base = evaluate_loss(gpt, val, max_windows=64)
    assert evaluate_loss(prune_ffn(gpt, 512), val, max_windows=64) == pytest.approx(base, abs=1e-5)
    small = prune_ffn(gpt, 128)
    assert small.count_params() == gpt_param_count(65, 64, 128, 4, d_ff=128, use_bias=False)
    assert small.count_params() == 410_880 and dense_bytes(small) < 0.6 * dense_bytes(gpt)
    masks = prune(gpt, 0.3)
    sizes = [m.size for m in masks.values()]
    assert len(masks) == 24 and sparsity(gpt) == sum(math.floor(0.3 * n) for n in sizes) / sum(
        sizes
    )
    assert base < evaluate_loss(gpt, val, max_windows=64) < base + 0.05
