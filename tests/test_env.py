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


@pytest.mark.parametrize(
    "statements",
    [
        # a lesson's first cell, then TensorFlow in a later cell
        "import lessons_lib; lessons_lib.setup(seed=0, verbose=False); import tensorflow",
        # a TensorFlow module of the library imported first
        "import lessons_lib.gpt, tensorflow",
    ],
)
def test_tensorflow_loads_without_stderr_with_onednn_on(statements):
    """A fresh interpreter with TensorFlow's default (oneDNN on): once the library has loaded
    TensorFlow (setup() does, so does any module that needs it), stderr stays empty, or every
    notebook would start with a red stderr cell that nbval refuses. (A bare ``import lessons_lib``
    loads no TensorFlow at all.)"""
    import os
    import subprocess
    import sys

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL")
    }
    r = subprocess.run(
        [sys.executable, "-c", statements],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""


def test_quiet_import_drops_only_the_onednn_notice(tmp_path):
    """A stand-in `tensorflow` that writes the notice and one other line to file descriptor 2: the
    notice goes, the other line (a real problem, say) reaches stderr."""
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "tensorflow.py").write_text(
        "import os\n"
        "os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are '\n"
        "         b'written to STDERR\\n')\n"
        "os.write(2, b'I0000 00:00:1 port.cc:153] oneDNN custom operations are on. '\n"
        "         b'You may see ...\\n')\n"
        "os.write(2, b'E0000 something else went wrong\\n')\n"
    )
    env_py = Path(lessons_lib.__file__).with_name("env.py")
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('env_under_test', {str(env_py)!r})\n"
        "module = sys.modules['env_under_test'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "assert 'tensorflow' not in sys.modules\n"
        "module.import_tensorflow_quietly()\n"
        "assert 'tensorflow' in sys.modules\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr == "E0000 something else went wrong\n"


@pytest.mark.parametrize(
    "statement",
    [
        "import lessons_lib",
        "import lessons_lib.tokenizers",
        "import lessons_lib.data",
        "import lessons_lib.checks",
        "from lessons_lib import BPETokenizer, CharTokenizer, check, load_tiny_shakespeare, show",
    ],
)
def test_numpy_only_modules_do_not_import_tensorflow(statement):
    """Lesson 01 trains a BPE tokenizer: it must not wait ~4 s for TensorFlow to load."""
    import subprocess
    import sys

    code = f"{statement}\nimport sys\nprint(sorted({{'tensorflow', 'keras'}} & set(sys.modules)))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", f"{statement!r} imported {r.stdout.strip()}"


def test_setup_sets_the_lessons_print_options():
    lessons_lib.setup(seed=0, verbose=False)
    opts = np.get_printoptions()
    assert (opts["precision"], opts["suppress"], opts["linewidth"]) == (3, True, 120)


def test_names_load_on_first_use_and_unknown_names_fail_clearly():
    assert lessons_lib.MultiHeadAttention.__module__ == "lessons_lib.attention"
    assert set(lessons_lib.__all__) <= set(dir(lessons_lib))
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        lessons_lib.not_a_name  # noqa: B018
