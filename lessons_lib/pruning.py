"""Pruning a trained GPT: magnitude masks and structured removal of FFN neurons (lesson 15).

Unstructured magnitude pruning (lesson 15 §5). For a weight matrix W and a fraction p ∈ [0, 1), the
mask keeps every weight but the k = ⌊p · n⌋ smallest in magnitude (n = the number of weights):

    m_i = 0 if |w_i| is among the k smallest |w|, else 1,        W ← W ⊙ m

per matrix (``scope="layer"``: every matrix loses the same fraction) or over all prunable matrices
together (``scope="global"``: one threshold, so matrices of small weights lose more). Fine-tuning
must keep the zeros: after every optimizer step W ← W ⊙ m again (`MaskedTrainer`), because a zeroed
weight still has a gradient ∂L/∂w_ij = ∑ x_i δ_j ≠ 0 and Adam moves it by about η per step.

A zero stored as a float32 still takes 4 bytes: the weights file stays the same size
(`dense_bytes`) and a dense matmul does the same work; only a compressed file (`compressed_bytes`)
or a sparse format (`sparse_bytes`, values + column indices) shrinks.

Structured pruning of FFN neurons (lesson 15 §6). The FFN is a sum over its d_ff hidden neurons,

    FFN(x) = ∑_j act(x · W₁[:, j] + b₁ⱼ) W₂[j, :] + b₂,

so dropping neuron j removes exactly the term c_j(x) = act(x · W₁[:, j] + b₁ⱼ) W₂[j, :]. With
|act(z)| ≤ |z| (ReLU, GELU) and no bias, ‖c_j(x)‖ ≤ ‖x‖ · ‖W₁[:, j]‖ · ‖W₂[j, :]‖ (Cauchy–Schwarz):
the product of the two norms is the weight-based score `ffn_neuron_importance` ranks neurons by
(with ``data`` it measures E|act(·)ⱼ| · ‖W₂[j, :]‖ instead). `prune_ffn` copies the kept columns
of W₁ (and entries of b₁) and rows of W₂ into a new GPT with a smaller d_ff: fewer parameters, a
smaller file, faster matmuls.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lessons_lib._backend import tf
from lessons_lib._validate import bool_mask, describe
from lessons_lib.gpt import GPT
from lessons_lib.gpt import built_gpt as _built_gpt
from lessons_lib.training import TrainConfig, Trainer, evaluation_windows, train_step_function

SCOPES = ("layer", "global")

#: The fine-tune of the pruned checkpoint (lesson 15 §5, §6): lr 3e-4 → 1e-4 (cosine) over 200
#: steps, 10 warm-up steps. The checkpoint finished training at lr 1e-4. Measured on it at 50 %
#: sparsity, 100 steps (full validation split, 1.990 before): this schedule 1.915; restarting at the
#: original peak 1e-3 → 1e-4 1.930 (val 2.004 on 256 windows after 10 steps: the large steps first
#: throw the model out of its minimum); a constant 3e-4 1.929 (the decay matters); a constant 1e-4
#: 1.916 (as good at this damage). The 10 warm-up steps let Adam's fresh moment estimates settle
#: (its first updates are ≈ η · sign(g) for every weight).
#: Weight decay, batch 12 and clipping are the reference run's; the seed differs, so the batches are
#: new ones. `fine_tune_config` stretches the schedule to another number of steps.
FINE_TUNE = TrainConfig(
    learning_rate=3e-4,
    min_learning_rate=1e-4,
    warmup_steps=10,
    max_steps=200,
    decay_steps=200,
    seed=15,
)


def fine_tune_config(steps: int, **changes: Any) -> TrainConfig:
    """`FINE_TUNE` for ``steps`` steps: its schedule stretched to end at ``steps`` (lesson 15 §5).

    ``changes`` overrides any other field (``learning_rate=1e-4``, ``seed=0``, ...).
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps <= 0:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    steps = int(steps)
    warmup = min(FINE_TUNE.warmup_steps, steps - 1)
    return dataclasses.replace(
        FINE_TUNE, **{"max_steps": steps, "decay_steps": steps, "warmup_steps": warmup, **changes}
    )


# --- which weights --------------------------------------------------------------------------------
def prunable_weights(model: GPT) -> dict[str, Any]:
    """The matrices that pruning acts on, by readable path: ``{"block_0/attn/wq": kernel, ...}``.

    Lesson 15 §5. Every block's attention ``wq wk wv wo`` and FFN ``w1 w2`` kernels (and the output
    head's kernel, ``"head"``, when the embeddings are not tied), in the model's order. Left out on
    purpose:

    - the token and position embeddings: a table row is one token's (or position's) whole vector,
      not a connection, and with tied embeddings the token table is also the output head, so a
      zero there would hit both ends of the model (lesson 15 §3, the tied-head pitfall);
    - LayerNorm gains and biases: d numbers per layer (< 1 % of the parameters) that scale or
      shift whole features; zeroing one silences a feature everywhere, for almost no saving.

    Returns the Keras variables themselves (``.numpy()`` reads, ``.assign`` writes).
    """
    model = _built_gpt(model)
    weights: dict[str, Any] = {}
    for i, block in enumerate(model.blocks):
        for name in ("wq", "wk", "wv", "wo"):
            weights[f"block_{i}/attn/{name}"] = getattr(block.attn, name).kernel
        if getattr(block, "cross_attention", False):
            for name in ("wq", "wk", "wv", "wo"):
                weights[f"block_{i}/cross/{name}"] = getattr(block.cross, name).kernel
        weights[f"block_{i}/ffn/w1"] = block.ffn.w1.kernel
        weights[f"block_{i}/ffn/w2"] = block.ffn.w2.kernel
    if model.head is not None:
        weights["head"] = model.head.kernel
    return weights


# --- unstructured magnitude pruning ---------------------------------------------------------------
def _fraction(fraction: Any) -> float:
    if isinstance(fraction, bool) or not isinstance(
        fraction, (int, float, np.integer, np.floating)
    ):
        raise TypeError(
            f"fraction must be a number in [0, 1) (the share of weights to remove), "
            f"got {describe(fraction)}"
        )
    f = float(fraction)
    if not (math.isfinite(f) and 0.0 <= f < 1.0):
        raise ValueError(
            "fraction must be in [0, 1) (the share of weights to remove; 1 would remove them "
            f"all), got {fraction!r}"
        )
    return f


def _smallest_mask(values: np.ndarray, k: int) -> np.ndarray:
    """True everywhere except at the ``k`` smallest |values| (flat); ties: the lower index goes."""
    keep = np.ones(values.size, dtype=bool)
    order = np.argsort(np.abs(values).ravel(), kind="stable")
    keep[order[:k]] = False
    return keep.reshape(values.shape)


def magnitude_masks(model: GPT, fraction: float, scope: str = "layer") -> dict[str, np.ndarray]:
    """Boolean masks (True = keep) removing the ``fraction`` of smallest |w|; lesson 15 §5.

    ``scope="layer"``: every matrix of `prunable_weights` loses k = ⌊fraction · n⌋ of its n weights;
    ``scope="global"``: the k = ⌊fraction · N⌋ smallest of all N prunable weights together go, so
    matrices with smaller weights (``wo`` and ``w2``, initialised with std 0.02/√(2L)) lose more.
    The count is rounded down (a mask never removes more than asked, and ``fraction=0`` removes
    nothing); ties in |w| are broken by position (the earlier weight in row-major order, for
    ``"global"`` in the order of `prunable_weights`, is removed first), so masks are deterministic.
    Weights that are already zero are the smallest and go first. ``fraction`` must be in [0, 1).
    """
    f = _fraction(fraction)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    weights = {k: v.numpy() for k, v in prunable_weights(model).items()}
    if scope == "layer":
        return {k: _smallest_mask(w, math.floor(f * w.size)) for k, w in weights.items()}
    flat = np.concatenate([w.ravel() for w in weights.values()])
    keep = _smallest_mask(flat, math.floor(f * flat.size))
    masks, start = {}, 0
    for k, w in weights.items():
        masks[k] = keep[start : start + w.size].reshape(w.shape)
        start += w.size
    return masks


def _checked_masks(model: GPT, masks: Any) -> dict[str, tuple[Any, np.ndarray]]:
    """``{path: (variable, bool mask)}`` after checking ``masks`` fits ``model`` exactly."""
    weights = prunable_weights(model)
    if not isinstance(masks, Mapping):
        raise TypeError(
            f"masks must be a dict {{path: boolean array}} like magnitude_masks returns, "
            f"got {describe(masks)}"
        )
    unknown = [k for k in masks if k not in weights]
    missing = [k for k in weights if k not in masks]
    if unknown or missing:
        raise ValueError(
            "masks do not fit this model (made for another one?): "
            + (f"unknown keys {unknown}; " if unknown else "")
            + (f"missing keys {missing}; " if missing else "")
            + f"the model's prunable weights are {list(weights)} (use an all-True mask to keep one)"
        )
    out = {}
    for k, var in weights.items():
        m = bool_mask(masks[k], f"masks[{k!r}]", "True/1 = keep the weight")
        if m.shape != tuple(var.shape):
            raise ValueError(
                f"masks[{k!r}] has shape {m.shape} but the model's {k} has shape "
                f"{tuple(var.shape)} (masks made for another model?)"
            )
        out[k] = (var, m)
    return out


def apply_masks(model: GPT, masks: Mapping[str, Any]) -> None:
    """W ← W ⊙ m for every prunable matrix, in place (lesson 15 §5).

    ``masks`` must have exactly the keys of `prunable_weights` and each mask the shape of its matrix
    (True/1 = keep); anything else is refused before a weight is written.
    """
    for var, m in _checked_masks(_built_gpt(model), masks).values():
        var.assign(var.numpy() * m.astype(var.dtype))


def prune(model: GPT, fraction: float, scope: str = "layer") -> dict[str, np.ndarray]:
    """`magnitude_masks` then `apply_masks`: prune ``model`` in place, return the masks (§5)."""
    masks = magnitude_masks(model, fraction, scope)
    apply_masks(model, masks)
    return masks


def _zero_flags(model_or_masks: Any) -> dict[str, np.ndarray]:
    """``{path: bool array, True = zero / pruned}`` of a GPT's prunable weights or of masks."""
    if isinstance(model_or_masks, GPT):
        return {k: v.numpy() == 0 for k, v in prunable_weights(model_or_masks).items()}
    if isinstance(model_or_masks, Mapping):
        if not model_or_masks:
            raise ValueError("masks is empty: expected {path: boolean array}")
        return {
            k: ~bool_mask(m, f"masks[{k!r}]", "True/1 = keep the weight")
            for k, m in model_or_masks.items()
        }
    raise TypeError(
        f"expected a lessons_lib.GPT or a dict of masks, got {describe(model_or_masks)}"
    )


def sparsity(model_or_masks: GPT | Mapping[str, Any]) -> float:
    """Fraction of zeros among the prunable weights of a GPT (or of False entries of masks); §5."""
    flags = _zero_flags(model_or_masks)
    return float(sum(int(z.sum()) for z in flags.values()) / sum(z.size for z in flags.values()))


def layer_sparsity(model_or_masks: GPT | Mapping[str, Any]) -> dict[str, float]:
    """`sparsity` of each prunable matrix: ``{"block_0/attn/wq": 0.5, ...}``; lesson 15 §5."""
    return {k: float(z.mean()) for k, z in _zero_flags(model_or_masks).items()}


# --- fine-tuning that keeps the zeros -------------------------------------------------------------
class MaskedTrainer(Trainer):
    """`Trainer` whose compiled step re-applies pruning masks after every update (lesson 15 §5).

    Why: a pruned weight w_ij = 0 still gets a gradient ∂L/∂w_ij = ∑ x_i δ_j, which is not zero;
    Adam normalises it (m̂ / (√v̂ + ε)), so even a tiny gradient moves the weight by about η per step,
    and its momentum keeps moving it for many steps after: one plain AdamW step leaves almost no
    zero in place. (Weight decay alone would not revive a zero, w ← w − ηλw keeps 0 at 0, but it
    does not stop Adam.) So the step is `train_step_function`'s (forward, loss, gradients,
    clipping, AdamW) followed by W ← W ⊙ m for every masked matrix, inside the same
    ``tf.function`` (XLA-compiled with ``jit_compile``): the zeros are exactly 0 after every step
    and the optimizer's state for them does not matter.

    ``masks`` (as `magnitude_masks` returns, checked against ``model``) are applied once when the
    trainer is made; ``masks=None`` is a plain fine-tune (the unpruned baseline with the same
    batches and schedule). ``cfg`` defaults to `FINE_TUNE` (see `fine_tune_config`).
    ``step()``, ``evaluate()``, ``fit(steps, ...)`` and ``history`` are `Trainer`'s.
    """

    def __init__(
        self,
        model: GPT,
        masks: Mapping[str, Any] | None,
        train_data: np.ndarray,
        val_data: np.ndarray,
        cfg: TrainConfig = FINE_TUNE,
        jit_compile: bool = True,
    ):
        model = _built_gpt(model)
        checked = None if masks is None else _checked_masks(model, masks)
        super().__init__(model, train_data, val_data, cfg, jit_compile)
        self.masks = None if checked is None else {k: m for k, (_, m) in checked.items()}
        if checked is None:
            return
        apply_masks(model, self.masks)
        pairs = [(var, tf.constant(m, dtype=var.dtype)) for var, m in checked.values()]
        # Trainer's step as plain Python (not yet compiled), to be compiled with the masking
        update = train_step_function(model, self.optimizer, jit_compile).python_function

        def masked_step(x, y):
            loss = update(x, y)  # forward, loss, gradients, clipping, AdamW step
            for var, m in pairs:
                var.assign(var * m)  # W ← W ⊙ m: the pruned weights are 0 again
            return loss

        self._train_step = tf.function(masked_step, jit_compile=jit_compile)


# --- sizes ----------------------------------------------------------------------------------------
def _weights_file(model: GPT) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.weights.h5"
        model.save_weights(path)
        return path.read_bytes()


def dense_bytes(model: GPT) -> int:
    """Size in bytes of the model's weights file (``save_weights``, ``.weights.h5``); §5.

    Every weight is stored as a float32 whether it is zero or not, so pruning does not change it.
    """
    return len(_weights_file(_built_gpt(model)))


def compressed_bytes(model: GPT, level: int = 9) -> int:
    """Size of the ``.weights.h5`` file after zlib (DEFLATE, as gzip) at ``level``; lesson 15 §5.

    Runs of zero bytes compress well, random float32 mantissas hardly at all: the compressed size
    falls with the sparsity, the dense one (`dense_bytes`) does not.
    """
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 0 <= level <= 9:
        raise ValueError(f"level must be an integer in 0 … 9, got {level!r}")
    return len(zlib.compress(_weights_file(_built_gpt(model)), int(level)))


def sparse_bytes(
    model_or_masks: GPT | Mapping[str, Any], value_bytes: int = 4, index_bytes: int = 4
) -> int:
    """Bytes to store the prunable matrices in CSR form: nnz · (value + index) + (rows + 1) · index.

    Lesson 15 §5. CSR keeps each non-zero value and its column index, plus one offset per row; a
    dense matrix needs n · value bytes. With 4-byte values and 4-byte indices sparse storage only
    pays below 50 % density (above 50 % sparsity); with 2-byte indices below 2/3. Compare with
    ``4 · (number of prunable weights)``.
    """
    for name, v in (("value_bytes", value_bytes), ("index_bytes", index_bytes)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    total = 0
    for z in _zero_flags(model_or_masks).values():
        rows = z.shape[0] if z.ndim == 2 else 1
        total += int((~z).sum()) * (value_bytes + index_bytes) + (rows + 1) * index_bytes
    return total


# --- structured pruning of FFN neurons ------------------------------------------------------------
def _ffn_hidden(model: GPT, ids: np.ndarray) -> list[np.ndarray]:
    """The FFN hidden activations act(ffn_in W₁ + b₁) of every block for ``ids [B, T]``."""
    x = model.embed(ids)
    hidden = []
    for block in model.blocks:
        if block.norm_first:  # h1 = x + MHA(LN₁(x)), ffn_in = LN₂(h1)
            ffn_in = block.ln2(x + block.attn(block.ln1(x), use_causal_mask=True))
        else:  # h1 = LN₁(x + MHA(x)), ffn_in = h1
            ffn_in = block.ln1(x + block.attn(x, use_causal_mask=True))
        hidden.append(np.asarray(block.ffn.w1(ffn_in)))
        x = block(x, use_causal_mask=True)
    return hidden


def ffn_neuron_importance(
    model: GPT, data: np.ndarray | None = None, max_windows: int = 32
) -> list[np.ndarray]:
    """A score per FFN hidden neuron of every block: ``[array [d_ff], ...]``; lesson 15 §6.

    Without ``data``: s_j = ‖W₁[:, j]‖ · ‖W₂[j, :]‖, the bound ‖c_j(x)‖ ≤ ‖x‖ ‖W₁[:, j]‖ ‖W₂[j, :]‖
    on what neuron j adds to the FFN's output (module docstring). Unlike either norm alone it does
    not change when W₁'s column is scaled by a > 0 and W₂'s row by 1/a (for ReLU the same network).
    With ``data`` (token ids, 1-D: its first ``max_windows`` `evaluation_windows`; or a batch
    ``[B, T]``): s_j = mean over positions of |act(·)ⱼ| · ‖W₂[j, :]‖, the average size of the term
    the neuron adds on real text (a neuron that rarely fires scores low whatever its weights).
    """
    model = _built_gpt(model)
    w2_norms = [np.linalg.norm(b.ffn.w2.kernel.numpy(), axis=1) for b in model.blocks]
    if data is None:
        return [
            np.linalg.norm(b.ffn.w1.kernel.numpy(), axis=0) * n2
            for b, n2 in zip(model.blocks, w2_norms)
        ]
    ids = np.asarray(data)
    if ids.ndim == 1:
        ids = evaluation_windows(ids, model.max_len)[0][:max_windows]
    if ids.ndim != 2 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(
            f"data must be token ids, 1-D (a text) or [batch, T], got {describe(data)}"
        )
    if ids.shape[1] > model.max_len or ids.min() < 0 or ids.max() >= model.vocab_size:
        raise ValueError(
            f"data must be ids in [0, {model.vocab_size}) with T ≤ max_len={model.max_len}, "
            f"got shape {ids.shape} and ids in [{ids.min()}, {ids.max()}]"
        )
    hidden = _ffn_hidden(model, ids.astype(np.int32))
    return [np.abs(h).mean(axis=(0, 1)) * n2 for h, n2 in zip(hidden, w2_norms)]


def _keep_count(keep: Any, d_ff: int) -> int:
    """``keep`` as a number of neurons: an int in 1 … d_ff, or a float fraction in (0, 1]."""
    if isinstance(keep, (int, np.integer)) and not isinstance(keep, bool):
        if not 1 <= keep <= d_ff:
            raise ValueError(f"keep must be a number of neurons in 1 … d_ff={d_ff}, got {keep!r}")
        return int(keep)
    if isinstance(keep, (float, np.floating)):
        if not (math.isfinite(keep) and 0.0 < keep <= 1.0):
            raise ValueError(
                f"keep as a float is the fraction of the d_ff={d_ff} neurons to keep, in (0, 1], "
                f"got {keep!r} (pass an int for a number of neurons)"
            )
        return max(1, round(keep * d_ff))
    raise TypeError(
        f"keep must be an int (neurons to keep, 1 … {d_ff}) or a float fraction in (0, 1], "
        f"got {describe(keep)}"
    )


def prune_ffn(model: GPT, keep: int | float, importance: list[Any] | None = None) -> GPT:
    """A new, smaller GPT keeping the ``keep`` most important FFN neurons of every block (§6).

    ``keep`` is a number of neurons (an int, 1 … d_ff) or a fraction of d_ff (a float in (0, 1],
    rounded to the nearest count, at least 1): the new model is ``GPT(**model.get_config())`` with
    ``d_ff=keep``. In each block the neurons with the largest ``importance`` (default:
    `ffn_neuron_importance` of the weights; ties: the lower index) are kept, most important first:
    their columns of W₁ (and entries of b₁) and rows of W₂ are copied; every other weight
    (embeddings, attention, LayerNorms, b₂, head) is copied unchanged. The result computes exactly
    what ``model`` computes with the other neurons' W₁ columns set to zero, with
    ``gpt_param_count(..., d_ff=keep)`` parameters. ``model`` is not changed.
    """
    model = _built_gpt(model)
    k = _keep_count(keep, model.d_ff)
    if importance is None:
        importance = ffn_neuron_importance(model)
    if not isinstance(importance, (list, tuple)) or len(importance) != model.num_layers:
        raise ValueError(
            f"importance must be a list of {model.num_layers} arrays (one per block) of "
            f"d_ff={model.d_ff} scores, got {describe(importance)}"
        )
    kept = []
    for i, s in enumerate(importance):
        s = np.asarray(s, dtype=np.float64)
        if s.shape != (model.d_ff,) or not np.isfinite(s).all():
            raise ValueError(
                f"importance[{i}] must be {model.d_ff} finite scores, got {describe(s)}"
            )
        kept.append(np.argsort(-s, kind="stable")[:k])
    config = {**model.get_config(), "d_ff": k, "name": f"{model.name}_ffn{k}"}
    small = GPT(**config)
    small(np.zeros((1, model.max_len), dtype=np.int32))
    sliced = {}  # id(new variable) → the old variable's value, sliced to the kept neurons
    for old, new, idx in zip(model.blocks, small.blocks, kept):
        sliced[id(new.ffn.w1.kernel)] = old.ffn.w1.kernel.numpy()[:, idx]
        sliced[id(new.ffn.w2.kernel)] = old.ffn.w2.kernel.numpy()[idx, :]
        if old.ffn.use_bias:
            sliced[id(new.ffn.w1.bias)] = old.ffn.w1.bias.numpy()[idx]
    old_vars, new_vars = model.weights, small.weights
    if len(old_vars) != len(new_vars):  # cannot happen for one configuration; never copy blindly
        raise RuntimeError("the smaller GPT's weights do not correspond to the model's")
    for old, new in zip(old_vars, new_vars):
        if old.path.split("/", 1)[-1] != new.path.split("/", 1)[-1]:
            raise RuntimeError(f"weight order differs: {old.path} vs {new.path}")
        value = sliced.get(id(new), None)
        new.assign(old.numpy() if value is None else value)
    return small
