"""lessons_lib: what each lesson of the course builds, for later lessons to import.

Start every notebook with ``lessons_lib.setup(seed=0)``, then import lesson names from here::

    from lessons_lib import MultiHeadAttention, check, show, show_source

Names are loaded on first use (PEP 562): ``from lessons_lib import BPETokenizer`` imports the
tokenizer module alone and never waits for TensorFlow; the names that need TensorFlow import it
(quietly) when they are first used.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> the module that defines it (one module per concept)
_EXPORTS: dict[str, str] = {
    # env: a reproducible, quiet start
    "DeviceInfo": "env",
    "setup": "env",
    "seed_everything": "env",
    # display: printing arrays and showing the library's own code in a lesson
    "show": "display",
    "show_source": "display",
    # lesson 01
    "BPETokenizer": "tokenizers",
    "CharTokenizer": "tokenizers",
    "count_pairs": "tokenizers",
    "merge_pair": "tokenizers",
    "pad_and_truncate": "tokenizers",
    "pretokenize": "tokenizers",
    "load_tiny_shakespeare": "data",
    "train_val_split": "data",
    # lessons 02-03
    "TokenAndPositionEmbedding": "positional",
    "apply_rope": "positional",
    "sinusoidal_positional_encoding": "positional",
    "sinusoidal_shift_matrix": "positional",
    # lessons 04-05
    "softmax": "attention",
    "causal_mask": "attention",
    "scaled_dot_product_attention": "attention",
    "MultiHeadAttention": "attention",
    "split_heads": "attention",
    "merge_heads": "attention",
    "multi_head_attention": "attention",
    "attention_steps": "attention",
    "attention_allowed": "attention",
    "copy_to_keras_mha": "attention",
    # lessons 06-07
    "feed_forward": "feedforward",
    "gelu": "feedforward",
    "relu": "feedforward",
    "FeedForward": "feedforward",
    "layer_norm": "normalization",
    "layer_norm_backward": "normalization",
    # lesson 08
    "TransformerBlock": "block",
    "block_param_count": "block",
    "transformer_block": "block",
    "block_weights": "block",
    "load_block_weights": "block",
    "GPT": "gpt",
    "gpt_param_count": "gpt",
    # lesson 09
    "BABY_CHECKPOINT": "training",
    "BABY_GPT": "training",
    "BABY_TRAIN": "training",
    "Trainer": "training",
    "WarmupCosine": "training",
    "encode_corpus": "training",
    "evaluate_loss": "training",
    "evaluation_windows": "training",
    "lm_loss": "training",
    "load_checkpoint": "training",
    "make_optimizer": "training",
    "random_windows": "training",
    "save_checkpoint": "training",
    "shakespeare_splits": "training",
    "train_step_function": "training",
    "window_losses": "training",
    # lesson 10
    "Generator": "generation",
    "generate_text": "generation",
    "next_token_distribution": "generation",
    "sample_next": "generation",
    "top_k_filter": "generation",
    "top_p_filter": "generation",
    # lessons 11-12: data
    "BabiData": "data",
    "BabiQuestion": "data",
    "TextClassificationData": "data",
    "TextSplit": "data",
    "load_babi": "data",
    "load_sentiment_sentences": "data",
    "load_sms_spam": "data",
    "stratified_split": "data",
    # lessons 11-12: the encoder
    "Encoder": "encoder",
    "encoder_forward": "encoder",
    "encoder_param_count": "encoder",
    # lesson 11
    "encode_texts": "tokenizers",
    "cls_pool": "pooling",
    "mean_pool": "pooling",
    "Pooling": "pooling",
    "SequenceClassifier": "classifier",
    "fit_classifier": "classifier",
    "FitProgress": "classifier",
    "SMS_CLASSIFIER_CHECKPOINT": "classifier",
    "save_classifier": "classifier",
    "load_classifier": "classifier",
    "mask_tokens": "mlm",
    "MaskedLMBatches": "mlm",
    "MaskedLanguageModel": "mlm",
    "masked_lm_loss": "mlm",
    "masked_lm_accuracy": "mlm",
    "save_encoder": "mlm",
    "load_encoder": "mlm",
    "MLMConfig": "mlm",
    "SMS_MLM": "mlm",
    "SMS_MLM_CHECKPOINT": "mlm",
    "LABELS_SWEEP_JSON": "mlm",
    # lesson 12
    "BABI_QA": "qa",
    "BABI_QA_CHECKPOINT": "qa",
    "QA_PLATEAU_JSON": "qa",
    "NEG_LOGIT": "qa",
    "QA_SPECIAL_TOKENS": "qa",
    "QAConfig": "qa",
    "QAEncoding": "qa",
    "SpanEvaluation": "qa",
    "SpanQA": "qa",
    "compile_span_model": "qa",
    "decode_spans": "qa",
    "encode_qa": "qa",
    "evidence_share": "qa",
    "exact_match": "qa",
    "load_qa_checkpoint": "qa",
    "normalize_answer": "qa",
    "predict_spans": "qa",
    "qa_scores": "qa",
    "save_qa_checkpoint": "qa",
    "span_texts": "qa",
    "token_f1": "qa",
    "train_qa_tokenizer": "qa",
    "train_span_model": "qa",
    "babi_rule_answers": "qa",
    # lesson 13
    "SPA_ENG": "data",
    "TranslationData": "data",
    "TranslationSplit": "data",
    "load_spa_eng": "data",
    "SEQ2SEQ_SPECIAL_TOKENS": "seq2seq",
    "Decoder": "seq2seq",
    "EncoderDecoder": "seq2seq",
    "encode_sources": "seq2seq",
    "encode_targets": "seq2seq",
    "encoder_decoder_forward": "seq2seq",
    "encoder_decoder_param_count": "seq2seq",
    "load_encoder_decoder": "seq2seq",
    "save_encoder_decoder": "seq2seq",
    "sequence_loss": "seq2seq",
    "shift_targets": "seq2seq",
    "Hypothesis": "decoding",
    "Translator": "decoding",
    "beam_search": "decoding",
    "greedy_decode": "decoding",
    "length_penalty": "decoding",
    "translate": "decoding",
    "BleuScore": "bleu",
    "BleuStatistics": "bleu",
    "CorpusScore": "bleu",
    "bleu_score": "bleu",
    "bleu_statistics": "bleu",
    "corpus_bleu": "bleu",
    "corpus_chrf": "bleu",
    "sentence_bleu": "bleu",
    "tokenize_13a": "bleu",
    "SPA_ENG_CHECKPOINT": "translation",
    "SPA_ENG_TRANSLATION": "translation",
    "BleuEvaluation": "translation",
    "LengthBuckets": "translation",
    "TranslationBatch": "translation",
    "TranslationConfig": "translation",
    "compile_translator": "translation",
    "encode_pairs": "translation",
    "evaluate_translations": "translation",
    "train_translation_tokenizers": "translation",
    "train_translator": "translation",
    # lesson 14 (cost, measure)
    "Architecture": "cost",
    "BABY_GPT_ARCH": "cost",
    "DTYPE_BYTES": "cost",
    "GPT2_SMALL": "cost",
    "GPT3_175B": "cost",
    "graph_flops": "cost",
    "training_compute": "cost",
    "attention_peak_memory": "measure",
    "attention_seconds": "measure",
    "loglog_slope": "measure",
    "median_seconds": "measure",
    "recurrent_vs_attention": "measure",
    "scores_bytes": "measure",
    "step_seconds": "measure",
    # lesson 14 (scaling)
    "CHINCHILLA": "scaling",
    "CHINCHILLA_TOKENS_PER_PARAM": "scaling",
    "FULL_SWEEP": "scaling",
    "KAPLAN_ALPHA_C": "scaling",
    "KAPLAN_ALPHA_N": "scaling",
    "LESSON_SWEEP": "scaling",
    "SCALING_LAW_JSON": "scaling",
    "SCALING_SIZES": "scaling",
    "SizeResult": "scaling",
    "SweepConfig": "scaling",
    "compute_frontier": "scaling",
    "describe_config": "scaling",
    "fit_power_law": "scaling",
    "fit_power_law_offset": "scaling",
    "mean_final_losses": "scaling",
    "non_embedding_params": "scaling",
    "sweep": "scaling",
    "total_params": "scaling",
    "train_size": "scaling",
    # lesson 14 (distributed)
    "split_cpu": "distributed",
    "make_strategy": "distributed",
    "DistributedTrainer": "distributed",
    "train_single_device": "distributed",
    "compare_with_single_device": "distributed",
    "launch_workers": "distributed",
    "clipping_trap": "distributed",
    "fit_dtype_trap": "distributed",
    "multi_worker_fit_trap": "distributed",
    "data_parallel_trap": "distributed",
    "TINY_GPT": "distributed",
    "TINY_TRAIN": "distributed",
    # interactive views (lessons 03, 04, 05, 08, 09)
    "AttentionExplorer": "viz",
    "PositionalExplorer": "viz",
    "SoftmaxExplorer": "viz",
    # exercises
    "check": "checks",
}
_SUBMODULES = ("thread",)  # the running example of lessons 02-08, used as `lessons_lib.thread`

__all__ = sorted(_EXPORTS) + list(_SUBMODULES)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"lessons_lib.{_EXPORTS[name]}"), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"lessons_lib.{name}")
    else:
        raise AttributeError(f"module 'lessons_lib' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
