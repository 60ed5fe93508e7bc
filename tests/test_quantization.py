"""Tests of lessons_lib.quantization (lesson 15 §1–§4) and of GPT.logits on a quantized table."""

import warnings

import numpy as np
import pytest

from lessons_lib import GPT, evaluate_loss, layer_norm
from lessons_lib._backend import keras
from lessons_lib.quantization import (
    LiteRTModel,
    activation_ranges,
    dequantize_weights,
    export_litert,
    file_bytes,
    keras_int_weights,
    litert_loss,
    load_quantized,
    naive_tied_logits,
    quantization_error,
    quantize_gpt,
    quantize_weights,
    quantize_whole_model,
    quantized_file_mode,
    quantized_layers,
    refuse_quantized_file,
    save_quantized,
    weight_bytes,
)

PER_CHANNEL_INT4 = keras.quantizers.Int4QuantizationConfig(block_size=-1)
DENSE_NAMES = ["attn/wq", "attn/wk", "attn/wv", "attn/wo", "ffn/w1", "ffn/w2"]


def tiny_gpt(seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    model = GPT(11, 8, 16, 2, 1, use_bias=False, **kwargs)
    model(np.zeros((1, 8), np.int32))
    # spread the weights (Keras' default init is ±0.05): logits of a few units, as a trained model
    rng = np.random.default_rng(seed)
    for v in model.weights:
        if len(v.shape) == 2:
            v.assign(rng.normal(0, 0.5, size=v.shape).astype("float32"))
    return model


def whole_quantize(model, mode):
    """Keras' model.quantize on everything (the pitfall), with no warning (they go to stderr)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = quantize_whole_model(model, mode)
    assert not caught, [str(w.message) for w in caught]
    assert f"{model.name}/embed/token_embedding" in paths and len(paths) == 8
    return model


# --- NumPy: one matrix (§2) -----------------------------------------------------------------------
def test_quantize_weights_by_hand():
    # column 0: max 2.54 → scale 0.02; column 1 all zeros (no division by zero)
    w = np.array([[2.54, 0.0], [-1.0, 0.0], [0.5, 0.0]], np.float32)
    q, scale = quantize_weights(w, bits=8)
    assert q.dtype == np.int8 and scale.dtype == np.float32 and scale.shape == (1, 2)
    np.testing.assert_array_equal(q, [[127, 0], [-50, 0], [25, 0]])
    np.testing.assert_allclose(scale[0, 0], 0.02, rtol=1e-6)
    assert 0 < scale[0, 1] <= 1e-6  # ε / qmax for the zero channel
    np.testing.assert_allclose(dequantize_weights(q, scale), w, atol=1e-6)
    # int4: qmax 7, scale 2.54 / 7; -1 / 0.3629 = -2.76 → -3, 0.5 / 0.3629 = 1.38 → 1
    q4, s4 = quantize_weights(w, bits=4)
    np.testing.assert_array_equal(q4[:, 0], [7, -3, 1])
    np.testing.assert_allclose(s4[0, 0], 2.54 / 7, rtol=1e-6)
    # the channel axis: rows of an embedding table (axis 0)
    qe, se = quantize_weights(w.T, bits=8, axis=0)
    assert se.shape == (2, 1)
    np.testing.assert_array_equal(qe, q.T)


def test_round_half_to_even_and_clip():
    # max 127 → scale 1 (up to ε); 2.5 → 2 and 3.5 → 4 (ties to even, as NumPy and Keras round)
    w = np.array([[127.0], [2.5], [3.5], [-127.0]], np.float32)
    q, _ = quantize_weights(w)
    np.testing.assert_array_equal(q[:, 0], [127, 2, 4, -127])


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_error_bound_per_channel(rng, bits):
    w = (rng.standard_t(3, size=(64, 48)) * rng.uniform(0.01, 1, size=48)).astype(np.float32)
    err = quantization_error(w, bits=bits)
    q, scale = quantize_weights(w, bits=bits)
    qmax = 2 ** (bits - 1) - 1
    assert np.abs(q).max() == qmax and err["levels"] == 2 * qmax + 1
    per_channel = np.abs(w - dequantize_weights(q, scale)).max(axis=0)
    assert np.all(per_channel <= scale[0] / 2 * (1 + 1e-5))
    assert err["within_bound"] and err["max_abs"] <= err["max_bound"] * (1 + 1e-5)
    np.testing.assert_allclose(err["max_bound"], scale.max() / 2)
    np.testing.assert_allclose(err["error"], w - dequantize_weights(q, scale), atol=1e-6)
    expected_rel = np.linalg.norm(err["error"]) / np.linalg.norm(w)
    np.testing.assert_allclose(err["relative"], expected_rel, rtol=1e-5)


def test_more_bits_less_error(rng):
    w = rng.normal(size=(32, 16)).astype(np.float32)
    rel = [quantization_error(w, bits=b)["relative"] for b in (2, 4, 8)]
    assert rel[0] > rel[1] > rel[2] and rel[2] < 0.01


def test_axis_of_a_3d_tensor(rng):
    w = rng.normal(size=(2, 3, 4)).astype(np.float32)
    q, scale = quantize_weights(w, axis=1)
    assert scale.shape == (1, 3, 1)
    np.testing.assert_allclose(scale[0, :, 0], np.abs(w).max(axis=(0, 2)) / 127, rtol=1e-6)
    assert np.abs(q).max(axis=(0, 2)).tolist() == [127, 127, 127]


def test_numpy_refusals(rng):
    w = rng.normal(size=(4, 3)).astype(np.float32)
    for bits in (1, 9, 16, 8.0, True, "8"):
        with pytest.raises(ValueError, match="bits must be an integer from 2 to 8"):
            quantize_weights(w, bits=bits)
    with pytest.raises(TypeError, match="floating-point"):
        quantize_weights(np.ones((2, 2), np.int32))
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        quantize_weights(w, axis=2)
    with pytest.raises(TypeError, match="axis must be an integer"):
        quantize_weights(w, axis=None)
    with pytest.raises(TypeError, match="integer codes"):
        dequantize_weights(w, np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match="does not broadcast"):
        dequantize_weights(np.ones((4, 3), np.int8), np.ones((1, 2), np.float32))
    with pytest.raises(ValueError, match="bits"):
        quantization_error(w, bits=3.5)


# --- Keras' quantized layers (§2, §3) -------------------------------------------------------------
@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_same_codes_as_keras_dense(rng, mode):
    w = (rng.normal(size=(24, 7)) * rng.uniform(0.01, 2, size=7)).astype(np.float32)
    dense = keras.layers.Dense(7, use_bias=False)  # 7 outputs: int4 packs an odd count
    dense.build((None, 24))
    dense.kernel.assign(w)
    dense.quantize(mode, config=PER_CHANNEL_INT4 if mode == "int4" else None)
    q_keras, s_keras = keras_int_weights(dense)
    q, s = quantize_weights(w, bits=8 if mode == "int8" else 4)
    assert q_keras.dtype == np.int8 and q_keras.shape == (24, 7)
    np.testing.assert_array_equal(q_keras, q)
    np.testing.assert_array_equal(s_keras, s)
    x = rng.normal(size=(3, 24)).astype(np.float32)
    if mode == "int4":  # int4 does not quantize the inputs: the layer computes x (q s) exactly
        np.testing.assert_allclose(dense(x), x @ dequantize_weights(q, s), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_same_codes_as_keras_embedding(rng, mode):
    e = rng.normal(size=(11, 6)).astype(np.float32)
    emb = keras.layers.Embedding(11, 6)
    emb.build((None,))
    emb.embeddings.assign(e)
    emb.quantize(mode, config=PER_CHANNEL_INT4 if mode == "int4" else None)
    q_keras, s_keras = keras_int_weights(emb)
    q, s = quantize_weights(e, bits=8 if mode == "int8" else 4, axis=0)  # one scale per row
    np.testing.assert_array_equal(q_keras, q)
    np.testing.assert_array_equal(s_keras, s)


def test_keras_int_weights_refusals():
    with pytest.raises(TypeError, match="Dense or Embedding"):
        keras_int_weights(keras.layers.LayerNormalization())
    dense = keras.layers.Dense(4)
    dense.build((None, 8))
    with pytest.raises(ValueError, match="not quantized"):
        keras_int_weights(dense)
    dense.quantize("int4")  # Keras' default int4: blocks of 128 inputs with zero points
    with pytest.raises(ValueError, match="block_size=-1"):
        keras_int_weights(dense)


def test_quantize_gpt_quantizes_exactly_the_dense_layers(rng):
    keras.utils.set_random_seed(0)
    model = GPT(11, 8, 16, 2, 2, use_bias=False)
    ids = rng.integers(0, 11, size=(3, 8))
    reference = np.asarray(model(ids))
    paths = quantize_gpt(model, "int8")
    prefix = model.name
    assert paths == [f"{prefix}/block_{i}/{n}" for i in range(2) for n in DENSE_NAMES]
    assert quantized_layers(model) == dict.fromkeys(paths, "int8")
    assert model.embed.token_embedding.quantization_mode is None
    assert all(v.dtype == "float32" for v in model.embed.weights)
    assert model.blocks[0].ffn.w1._kernel.dtype == "int8"
    np.testing.assert_allclose(model(ids), reference, atol=0.02)
    untied = GPT(11, 8, 16, 2, 1, use_bias=False, tie_embeddings=False)
    untied(ids)
    assert quantize_gpt(untied, "int4")[-1] == f"{untied.name}/head"
    assert untied.head._kernel.shape == (16, 6)  # 11 outputs packed in 6 bytes per row


def test_quantize_gpt_refusals():
    with pytest.raises(TypeError, match="lessons_lib.GPT"):
        quantize_gpt(keras.layers.Dense(3))
    with pytest.raises(ValueError, match="not built"):
        quantize_gpt(GPT(11, 8, 16, 2, 1))
    model = tiny_gpt()
    for mode in ("float8", "int2", None, "INT8"):
        with pytest.raises(ValueError, match="mode must be one of"):
            quantize_gpt(model, mode)
    quantize_gpt(model, "int8")
    with pytest.raises(ValueError, match="already quantized"):
        quantize_gpt(model, "int4")
    with pytest.raises(ValueError, match="already quantized"):
        quantize_gpt(whole_quantize(tiny_gpt(), "int8"), "int8")
    with pytest.raises(ValueError, match="already quantized"):
        quantize_whole_model(model, "int8")
    with pytest.raises(ValueError, match="mode must be one of"):
        quantize_whole_model(tiny_gpt(), "float8")
    with pytest.raises(TypeError, match="lessons_lib.GPT"):
        quantize_whole_model(keras.layers.Dense(3))


# --- the tied-head pitfall (§3) ---------------------------------------------------------------
@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_tied_head_reads_the_dequantized_table(rng, mode):
    model = tiny_gpt()
    ids = rng.integers(0, 11, size=(4, 8))
    x = rng.normal(size=(2, 8, 16)).astype(np.float32)
    e = model.embed.embeddings.numpy()
    float_logits = np.asarray(model.logits(x))
    reference = np.asarray(model(ids))
    whole_quantize(model, mode)
    token = model.embed.token_embedding
    assert token.quantization_mode == mode  # the table is integers now
    fixed = np.asarray(model.logits(x))
    ln = layer_norm(x.astype(np.float64), model.ln_f.gamma.numpy(), np.zeros(16))
    if mode == "int8":  # the independent reference: LN_f(x) (q s)ᵀ with our codes and scales
        q, s = quantize_weights(e, bits=8, axis=0)
        np.testing.assert_allclose(fixed, ln @ dequantize_weights(q, s).T, atol=1e-4)
    # within the rounding of the table: |Δlogit| ≤ ∑_d |h_d| · max|E − Ê| (int4: blocks, asymmetric)
    step = np.abs(e).max(axis=1) / (127 if mode == "int8" else 7)
    bound = np.abs(ln).sum(-1, keepdims=True) * step.max()
    assert np.all(np.abs(fixed - float_logits) <= bound)
    naive = np.asarray(naive_tied_logits(model, ids))
    good = np.asarray(model(ids))
    off_good, off_naive = np.abs(good - reference).max(), np.abs(naive - reference).max()
    assert off_naive > 5 * np.abs(reference).max() and off_naive > 20 * off_good


def test_naive_tied_logits_refusals():
    untied = tiny_gpt(tie_embeddings=False)
    with pytest.raises(ValueError, match="untied"):
        naive_tied_logits(untied, np.zeros((1, 8), np.int32))
    with pytest.raises(TypeError, match="lessons_lib.GPT"):
        naive_tied_logits("gpt", np.zeros((1, 8), np.int32))


# --- sizes and files (§1, §3) -----------------------------------------------------------------
def test_weight_bytes_counts_storage():
    model = tiny_gpt()
    n = model.count_params()
    assert weight_bytes(model) == 4 * n
    dense = 4 * 16 * 16 + 2 * 16 * 64  # the six kernels' weights
    scales = 4 * 16 + 64 + 16  # one per output channel
    quantize_gpt(model, "int8")
    assert weight_bytes(model) == 4 * (n - dense) + dense + 4 * scales
    int4 = tiny_gpt()
    quantize_gpt(int4, "int4")
    assert weight_bytes(int4) == 4 * (n - dense) + dense // 2 + 4 * scales
    assert file_bytes(int4) < file_bytes(model) < file_bytes(tiny_gpt())
    assert file_bytes(model) > weight_bytes(model)  # h5 adds its own structure


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_save_load_round_trip(rng, tmp_path, mode):
    model = tiny_gpt()
    quantize_gpt(model, mode)
    path = save_quantized(model, tmp_path / f"q_{mode}.weights.h5")
    assert quantized_file_mode(path) == mode
    ids = rng.integers(0, 11, size=(2, 8))
    loaded = load_quantized(lambda: tiny_gpt(seed=1), path)  # other float weights before loading
    assert sorted(quantized_layers(loaded).values()) == [mode] * 6
    np.testing.assert_array_equal(np.asarray(loaded(ids)), np.asarray(model(ids)))
    with pytest.raises(ValueError, match=f"holds {mode} weights"):
        load_quantized(tiny_gpt, path, mode="int4" if mode == "int8" else "int8")
    with pytest.raises(ValueError, match="load_quantized"):
        refuse_quantized_file(path)
    with pytest.raises(ValueError, match="does not fit"):  # a model of another configuration
        load_quantized(_two_layers, path)


def _two_layers():
    model = GPT(11, 8, 16, 2, 2, use_bias=False)
    model(np.zeros((1, 8), np.int32))
    return model


def test_save_load_refusals(tmp_path):
    model = tiny_gpt()
    with pytest.raises(ValueError, match="not quantized"):
        save_quantized(model, tmp_path / "f.weights.h5")
    model.save_weights(tmp_path / "f.weights.h5")
    assert quantized_file_mode(tmp_path / "f.weights.h5") is None
    refuse_quantized_file(tmp_path / "f.weights.h5")  # a float file passes
    with pytest.raises(ValueError, match="float weights"):
        load_quantized(tiny_gpt, tmp_path / "f.weights.h5")
    with pytest.raises(FileNotFoundError):
        load_quantized(tiny_gpt, tmp_path / "missing.weights.h5")
    quantize_gpt(model, "int8")
    with pytest.raises(ValueError, match=".weights.h5"):
        save_quantized(model, tmp_path / "q.h5")
    path = save_quantized(model, tmp_path / "q.weights.h5")
    with pytest.raises(TypeError, match="ModelConfig or a callable"):
        load_quantized(42, path)
    with pytest.raises(ValueError, match="mode must be one of"):
        load_quantized(tiny_gpt, path, mode="int3")


# --- LiteRT (§4) ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tiny_gpt()
    out = tmp_path_factory.mktemp("litert")
    paths = {
        mode: export_litert(model, out / f"{mode}.tflite", mode=mode, batch_size=4)
        for mode in ("float32", "dynamic_int8")
    }
    return model, paths


def test_litert_float32_is_the_keras_model(exported, rng):
    model, paths = exported
    lite = LiteRTModel(paths["float32"], num_threads=1)
    assert (lite.batch_size, lite.max_len, lite.vocab_size) == (4, 8, 11)
    assert lite.bytes == paths["float32"].stat().st_size and lite.path == paths["float32"]
    ids = rng.integers(0, 11, size=(10, 8))  # 2 full batches of 4 and a padded one of 2
    out = lite(ids)
    assert out.shape == (10, 8, 11) and out.dtype == np.float32
    np.testing.assert_allclose(out, np.asarray(model(ids)), atol=1e-4)
    np.testing.assert_allclose(lite(ids[8:]), out[8:], atol=1e-6)  # padding is dropped
    np.testing.assert_allclose(lite(ids[:1]), out[:1], atol=1e-6)
    data = rng.integers(0, 11, size=500)  # 62 windows: the last batch is padded
    assert abs(litert_loss(lite, data) - evaluate_loss(model, data)) < 1e-5
    assert abs(litert_loss(lite, data, max_windows=5) - evaluate_loss(model, data, 5)) < 1e-5


def test_litert_dynamic_int8_is_close_and_smaller(exported, rng):
    model, paths = exported
    lite = LiteRTModel(paths["dynamic_int8"])
    ids = rng.integers(0, 11, size=(4, 8))
    reference = np.asarray(model(ids))
    diff = np.abs(lite(ids) - reference).max()
    assert 0 < diff < 0.05 * np.abs(reference).max()
    assert lite.bytes < paths["float32"].stat().st_size


def test_litert_is_quiet(tmp_path, capfd):
    model = tiny_gpt()
    path = export_litert(model, tmp_path / "m.tflite", batch_size=2)
    LiteRTModel(path)(np.zeros((1, 8), np.int32))
    out, err = capfd.readouterr()
    assert out == "" and err == ""


@pytest.mark.slow
def test_litert_full_int8(tmp_path, rng):
    model = tiny_gpt()
    windows = rng.integers(0, 11, size=(6, 8))
    path = export_litert(
        model, tmp_path / "i8.tflite", "full_int8", batch_size=4, representative=windows
    )
    lite = LiteRTModel(path)
    out = lite(windows)
    assert out.shape == (6, 8, 11) and out.dtype == np.float32  # float logits out, int32 ids in
    assert np.corrcoef(out.ravel(), np.asarray(model(windows)).ravel())[0, 1] > 0.3
    details = lite._interpreter.get_input_details()[0]
    assert details["dtype"] == np.int32
    dynamic = LiteRTModel(export_litert(model, tmp_path / "d.tflite", "dynamic_int8", batch_size=4))

    def int8_tensors(m):  # full-integer: the activations between the ops are int8 too
        return sum(t["dtype"] == np.int8 for t in m._interpreter.get_tensor_details())

    assert int8_tensors(lite) > int8_tensors(dynamic) + 10


def test_litert_refusals(exported, tmp_path):
    model, paths = exported
    with pytest.raises(ValueError, match="mode must be one of"):
        export_litert(model, tmp_path / "m.tflite", mode="int4")
    with pytest.raises(ValueError, match=".tflite"):
        export_litert(model, tmp_path / "m.h5")
    with pytest.raises(ValueError, match="batch_size"):
        export_litert(model, tmp_path / "m.tflite", batch_size=0)
    with pytest.raises(ValueError, match="representative"):
        export_litert(model, tmp_path / "m.tflite", mode="full_int8")
    with pytest.raises(ValueError, match=r"shape \[n ≥ 1, 8\]"):
        export_litert(
            model, tmp_path / "m.tflite", "full_int8", representative=np.zeros((2, 5), np.int32)
        )
    with pytest.raises(TypeError, match="lessons_lib.GPT"):
        export_litert(keras.layers.Dense(2), tmp_path / "m.tflite")
    quantized = tiny_gpt()
    quantize_gpt(quantized, "int8")
    with pytest.raises(ValueError, match="export the float model"):
        export_litert(quantized, tmp_path / "m.tflite")
    with pytest.raises(FileNotFoundError):
        LiteRTModel(tmp_path / "missing.tflite")
    lite = LiteRTModel(paths["float32"])
    with pytest.raises(ValueError, match="num_threads"):
        LiteRTModel(paths["float32"], num_threads=0)
    with pytest.raises(ValueError, match=r"shape \[n ≥ 1, 8\]"):
        lite(np.zeros((2, 7), np.int32))
    with pytest.raises(ValueError, match=r"shape \[n ≥ 1, 8\]"):
        lite(np.zeros((0, 8), np.int32))
    with pytest.raises(TypeError, match="integer token ids"):
        lite(np.zeros((2, 8), np.float32))
    with pytest.raises(TypeError, match="LiteRTModel"):
        litert_loss(model, np.arange(20) % 11)
    with pytest.raises(ValueError, match="not enough for one window"):
        litert_loss(lite, np.arange(5))


# --- activation ranges (§4) -----------------------------------------------------------------------
def test_activation_ranges(rng):
    model = tiny_gpt()
    ids = rng.integers(0, 11, size=(5, 8))
    ranges = activation_ranges(model, ids)
    dense = [f"{model.name}/block_0/{n}" for n in DENSE_NAMES]
    block = f"{model.name}/block_0"
    scores = f"{block}/attn/scores"
    assert set(ranges) == {
        *dense,
        f"{block}/residual_in",
        "ln_f/residual_in",
        scores,
        f"{block}/attn/masked_scores",
    }
    masked = ranges[f"{block}/attn/masked_scores"]  # the -1e9 fill of the blocked positions
    assert masked["max_abs"] == 1e9 and masked["p999"] == ranges[scores]["p999"]
    assert masked["ratio"] > 1e6 > 100 > ranges[scores]["ratio"]
    for r in ranges.values():
        assert r["max_abs"] >= r["p999"] >= r["mean_abs"] > 0
        np.testing.assert_allclose(r["ratio"], r["max_abs"] / r["p999"])
    x0 = np.asarray(model.embed(ids))  # independent: the residual stream entering block 0
    np.testing.assert_allclose(ranges[f"{block}/residual_in"]["max_abs"], np.abs(x0).max())
    np.testing.assert_allclose(
        ranges[f"{block}/residual_in"]["p999"], np.percentile(np.abs(x0), 99.9)
    )
    h = np.asarray(model.blocks[0].ln1(x0))  # pre-norm: wq, wk and wv read LN_1(x)
    assert ranges[dense[0]]["max_abs"] == ranges[dense[2]]["max_abs"]
    np.testing.assert_allclose(ranges[dense[0]]["max_abs"], np.abs(h).max(), rtol=1e-6)
    q = h @ model.blocks[0].attn.wq.kernel.numpy()
    k = h @ model.blocks[0].attn.wk.kernel.numpy()
    q, k = q.reshape(5, 8, 2, 8), k.reshape(5, 8, 2, 8)
    s = np.einsum("bihd,bjhd->bhij", q, k) / np.sqrt(8)
    causal = np.tril(np.ones((8, 8), bool))
    np.testing.assert_allclose(
        ranges[f"{block}/attn/scores"]["max_abs"], np.abs(s[..., causal]).max(), rtol=1e-5
    )
    assert not hasattr(model.blocks[0].attn.wq.__dict__, "call") and "call" not in vars(
        model.blocks[0]
    )
    with pytest.raises(ValueError, match=r"shape \[n ≥ 1, 8\]"):
        activation_ranges(model, ids[:, :4])
