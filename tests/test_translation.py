"""Lesson 13's translation recipe (lessons_lib/translation.py): the tokenizers see the training
split only, the pairs are encoded without truncation, length buckets serve every pair once per
epoch padded to its batch's longest row, BLEU during training keeps the best weights, and the
shipped checkpoint scores what its .json records.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from lessons_lib import EncoderDecoder, Translator, load_encoder_decoder
from lessons_lib.data import TranslationSplit
from lessons_lib.translation import (
    SPA_ENG_CHECKPOINT,
    SPA_ENG_TRANSLATION,
    BleuEvaluation,
    LengthBuckets,
    TranslationConfig,
    compile_translator,
    encode_pairs,
    evaluate_translations,
    train_translation_tokenizers,
)

TRAIN = TranslationSplit(
    ["Tom is tired.", "I like cats.", "We are here.", "Tom likes cats.", "Go!"],
    [
        ("Tom está cansado.",),
        ("Me gustan los gatos.", "A mí me gustan los gatos."),
        ("Estamos aquí.",),
        ("A Tom le gustan los gatos.",),
        ("¡Vete!", "¡Vaya!", "¡Ve!"),
    ],
    np.arange(5),
)


@pytest.fixture(scope="module")
def toks():
    return train_translation_tokenizers(TRAIN, 60, 70)


def test_tokenizers_learn_their_own_side_only(toks):
    src, tgt = toks
    assert src.tokens[:4] == tgt.tokens[:4] == ("<pad>", "<unk>", "<bos>", "<eos>")
    assert "¡" in tgt.tokens and "¡" not in src.tokens  # Spanish characters stay on their side
    assert src.tokens[src.encode("ñ")[0]] == "<unk>"  # never seen in the English sentences
    with pytest.raises(TypeError, match="TranslationSplit"):
        train_translation_tokenizers(["Tom is tired."])


def test_encode_pairs_keeps_every_translation_and_counts_what_does_not_fit(toks):
    src, tgt = toks
    pairs = encode_pairs(TRAIN, src, tgt, 32)
    assert len(pairs) == TRAIN.n_pairs == 8 and pairs.dropped == 0
    assert (pairs.decoder_input[:, 0] == 2).all()  # <bos>
    real = pairs.weights.sum(1).astype(int)
    assert (pairs.labels[np.arange(8), real - 1] == 3).all()  # the last label is <eos>
    assert (pairs.source_lengths == (pairs.source_ids != 0).sum(1)).all()
    short = encode_pairs(TRAIN, src, tgt, 12)
    longest = max(len(tgt.encode(t)) for refs in TRAIN.references for t in refs)
    assert longest > 11 and 0 < short.dropped < 8 and len(short) == 8 - short.dropped
    assert (short.weights.sum(1) <= 12).all()
    with pytest.raises(ValueError, match="no pair"):
        encode_pairs(TRAIN, src, tgt, 2)


def test_length_buckets_serve_every_pair_once_padded_to_the_batch(toks):
    src, tgt = toks
    pairs = encode_pairs(TRAIN, src, tgt, 32)
    buckets = LengthBuckets(pairs, batch_size=3, seed=1, multiple=1)
    assert len(buckets) == 3
    rows = buckets.batch_rows()
    assert sorted(np.concatenate(rows).tolist()) == list(range(8))
    tgt_len = pairs.weights.sum(1)
    for r in rows:
        (s, d), labels, w = buckets.batch(r)
        assert s.shape == (len(r), pairs.source_lengths[r].max())
        assert d.shape == labels.shape == w.shape == (len(r), tgt_len[r].max())
        assert (w.sum(1) == tgt_len[r]).all()  # nothing real was cut
    # sorted by length: the padding share of buckets is below that of a random batching
    assert buckets.padding_share() < 1 - (pairs.weights.sum() + pairs.source_lengths.sum()) / (
        8 * 64
    )
    # a pass is reshuffled every time, and the dataset has the declared number of batches
    assert any(
        [a.tolist() for a in buckets.batch_rows()] != [a.tolist() for a in rows] for _ in range(5)
    )
    # widths rounded up to a multiple of 4: fewer shapes, nothing real cut, never above max_len
    four = LengthBuckets(pairs, batch_size=3, seed=1, multiple=4)
    for r in four.batch_rows():
        (s, d), labels, w = four.batch(r)
        assert s.shape[1] % 4 == 0 and d.shape[1] % 4 == 0 and s.shape[1] <= 32
        assert s.shape[1] - 4 < pairs.source_lengths[r].max() <= s.shape[1]
        assert (w.sum(1) == tgt_len[r]).all()
    assert four.padding_share() > buckets.padding_share()
    ds = buckets.dataset()
    assert int(ds.cardinality()) == 3 and len(list(ds)) == 3
    with pytest.raises(TypeError, match="encode_pairs"):
        LengthBuckets(pairs.source_ids)


def test_a_tiny_model_trains_and_the_evaluation_keeps_the_best_epoch(toks):
    src, tgt = toks
    cfg = TranslationConfig(
        max_len=16, d_model=16, num_heads=2, num_encoder_layers=1, num_decoder_layers=1, d_ff=32
    )
    model = compile_translator(cfg.build(src.vocab_size, tgt.vocab_size), 1e-2)
    evaluation = BleuEvaluation(TRAIN, src, tgt, sentences=5, patience=2)
    pairs = encode_pairs(TRAIN, src, tgt, 16)
    hist = model.fit(
        LengthBuckets(pairs, 4).dataset(), epochs=12, shuffle=False, callbacks=[evaluation]
    )
    bleus = hist.history["val_bleu"]
    assert [c["val_bleu"] for c in evaluation.curve] == [round(b, 2) for b in bleus]
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    best = int(np.argmax(bleus))
    assert evaluation.best_epoch == best + 1
    stopped = len(bleus) < 12
    assert not stopped or len(bleus) - evaluation.best_epoch == 2  # patience 2
    # the best weights are back: the score of the model now is the best epoch's
    again = evaluate_translations(model, TRAIN, src, tgt, limit=5)["bleu"]
    assert again == pytest.approx(bleus[best], abs=1e-6)


def test_evaluate_translations_scores_against_every_reference(toks):
    src, tgt = toks
    model = SPA_ENG_TRANSLATION.__class__(
        max_len=16, d_model=8, num_heads=2, num_encoder_layers=1, num_decoder_layers=1, d_ff=16
    ).build(src.vocab_size, tgt.vocab_size)
    out = evaluate_translations(model, TRAIN, src, tgt, limit=3, max_length=4)
    assert out["sentences"] == 3 and len(out["hypotheses"]) == 3
    assert 0 <= out["bleu"] <= 100 and 0 <= out["chrf"] <= 100
    with pytest.raises(ValueError, match="limit"):
        evaluate_translations(model, TRAIN, src, tgt, limit=0)


def test_the_configuration_builds_the_stated_model():
    model = SPA_ENG_TRANSLATION.build(2000, 2000)
    assert isinstance(model, EncoderDecoder) and model.count_params() == 493_824
    assert model.max_len == 32 and model.num_encoder_layers == model.num_decoder_layers == 2


def test_shipped_checkpoint_records_its_run_and_loads_with_the_tokenizers():
    """The tokenizers are retrained from the data (BPE is deterministic): the checkpoint's ids
    must mean the same tokens. Its recorded test scores are those lesson 13 §7 re-computes in
    full; here greedy BLEU on the first 200 test sentences is recomputed and must be close."""
    from lessons_lib import load_spa_eng

    meta = json.loads(open(str(SPA_ENG_CHECKPOINT) + ".json").read())
    assert meta["command"] == "python -m lessons_lib.translation"
    assert meta["test_bleu_beam4"] >= 25 and meta["test_bleu_beam4"] > meta["test_bleu_beam1"]
    assert meta["best_epoch"] == max(meta["curve"], key=lambda c: c["val_bleu"])["epoch"]
    data = load_spa_eng(progress=False, max_source_words=SPA_ENG_TRANSLATION.max_source_words)
    src, tgt = train_translation_tokenizers(data.train)
    model, _ = load_encoder_decoder(SPA_ENG_CHECKPOINT, source_tokenizer=src, target_tokenizer=tgt)
    translator = Translator(model)
    hyps = translator.translate(data.test.sources[:8], src, tgt)
    assert all(h.strip() for h in hyps)
    score = evaluate_translations(model, data.test, src, tgt, limit=200, translator=translator)
    assert score["bleu"] > 0.8 * meta["test_bleu_beam1"]
    other = train_translation_tokenizers(data.train, 1000, 2000)[0]
    with pytest.raises(ValueError, match="vocabulary"):
        load_encoder_decoder(SPA_ENG_CHECKPOINT, source_tokenizer=other)
