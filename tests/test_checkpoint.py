"""The shipped checkpoint loads into a fresh model and reaches the validation loss that the README
states."""

import json
import re
from pathlib import Path

import pytest

from lessons_lib.training import (
    BABY_CHECKPOINT,
    BABY_GPT,
    ModelConfig,
    evaluate_loss,
    load_checkpoint,
)

ROOT = Path(__file__).resolve().parents[1]


def _readme_val_loss() -> float:
    m = re.search(r"validation loss of \*\*(\d\.\d+)\*\*", (ROOT / "README.md").read_text())
    assert m, "README must state the checkpoint's validation loss as 'validation loss of **X.XXX**'"
    return float(m.group(1))


def test_checkpoint_is_small_and_safe():
    assert BABY_CHECKPOINT.exists(), (
        f"{BABY_CHECKPOINT} is missing: run `python -m lessons_lib.training`"
    )
    assert BABY_CHECKPOINT.name.endswith(".weights.h5")  # HDF5 weights, no pickled code
    assert BABY_CHECKPOINT.stat().st_size < 5 * 2**20
    meta = json.loads(Path(str(BABY_CHECKPOINT) + ".json").read_text())
    assert meta["steps"] == 2000 and meta["command"].startswith("python -m lessons_lib.training")


def test_checkpoint_reaches_the_stated_validation_loss():
    from lessons_lib.data import (
        TINY_SHAKESPEARE,
        cache_path,
        load_tiny_shakespeare,
        train_val_split,
    )
    from lessons_lib.tokenizers import CharTokenizer
    from lessons_lib.training import encode_corpus

    try:
        text = load_tiny_shakespeare(progress=False, url="http://127.0.0.1:9/offline")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(
            f"Tiny Shakespeare is not in the cache ({cache_path(TINY_SHAKESPEARE)}): "
            f"{type(exc).__name__}"
        )
    model = BABY_GPT.build()
    meta = load_checkpoint(model)
    tok = CharTokenizer.from_text(text)
    assert "".join(tok.tokens) == meta["vocab"]
    _, val_text = train_val_split(text, 0.9)
    loss = evaluate_loss(model, encode_corpus(val_text, tok))
    assert loss == pytest.approx(meta["val_loss"], abs=2e-3)
    assert loss == pytest.approx(_readme_val_loss(), abs=2e-3)


def test_checkpoint_of_another_configuration_is_refused():
    other = ModelConfig(num_layers=2).build()
    with pytest.raises(
        ValueError, match="another configuration.*num_layers: checkpoint 4 vs model 2"
    ):
        load_checkpoint(other)
    with pytest.raises(FileNotFoundError, match="python -m lessons_lib.training"):
        load_checkpoint(BABY_GPT.build(), ROOT / "nope.weights.h5")
