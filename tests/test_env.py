import random

import numpy as np
import pytest

import lessons_lib


def test_setup_seeds_and_reports(capsys):
    info = lessons_lib.setup(seed=3)
    banner = capsys.readouterr().out.strip()
    assert info.device in ("CPU", "GPU") and info.seed == 3
    assert banner == info.banner
    if info.device == "CPU":
        assert banner == "Running on CPU (no GPU found) (seed 3)" and not info.mixed_precision
    a = (random.random(), np.random.rand())
    import keras
    k = keras.random.uniform((2,)).numpy()
    lessons_lib.setup(seed=3, verbose=False)
    assert capsys.readouterr().out == ""
    assert (random.random(), np.random.rand()) == a
    np.testing.assert_array_equal(keras.random.uniform((2,)).numpy(), k)


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True, None])
def test_setup_bad_seed(bad):
    with pytest.raises(ValueError, match="non-negative int"):
        lessons_lib.setup(seed=bad)


def test_tf_logs_quieted_before_import():
    import os
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
