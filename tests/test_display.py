"""Tests for lessons_lib.display: the ``show`` printer and ``show_source`` (code read from the file
at run time)."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
import uuid

import numpy as np
import pytest

from lessons_lib.display import SourceCode, show, show_source

# ------------------------------------------------------------------------------------------- show


def test_show_prints_name_shape_and_rounded_values(capsys):
    show("scores", np.array([[0.12345, -1.98765], [2.0, 3.5]]))
    assert capsys.readouterr().out.splitlines() == [
        "scores  shape (2, 2)",
        *str(np.array([[0.123, -1.988], [2.0, 3.5]])).splitlines(),
    ]


def test_show_never_prints_minus_zero(capsys):
    show("x", np.array([-0.0001, -0.0, 0.0004, -2e-9]))
    out = capsys.readouterr().out
    assert "-0." not in out and "-0 " not in out
    assert out.splitlines()[1] == str(np.zeros(4))
    show("complex", np.array([-0.0001 - 0.0001j]))
    assert "-0." not in capsys.readouterr().out


def test_show_leaves_integer_boolean_and_text_arrays_unchanged(capsys):
    ids = np.array([[3, -1, 70000]], dtype=np.int64)
    show("ids", ids)
    mask = np.array([True, False])
    show("mask", mask)
    show("tokens", np.array(["a", "bc"]))
    assert capsys.readouterr().out.splitlines() == [
        "ids  shape (1, 3)",
        str(ids),
        "mask  shape (2,)",
        str(mask),
        "tokens  shape (2,)",
        str(np.array(["a", "bc"])),
    ]


def test_show_decimals_scalars_and_lists(capsys):
    show("p", 0.666666, decimals=2)
    show("row", [1.5, -0.00001], decimals=1)
    assert capsys.readouterr().out.splitlines() == [
        "p  shape ()",
        "0.67",
        "row  shape (2,)",
        str(np.array([1.5, 0.0])),
    ]


def test_show_converts_tensors():
    tf = pytest.importorskip("tensorflow")
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        show("t", tf.constant([[-0.0004, 1.0]]))
    assert buffer.getvalue().splitlines() == ["t  shape (1, 2)", str(np.array([[0.0, 1.0]]))]


@pytest.mark.parametrize("name", [None, 3, np.ones(2)])
def test_show_refuses_a_name_that_is_not_a_string(name):
    with pytest.raises(TypeError, match="name must be a str"):
        show(name, np.ones(2))


@pytest.mark.parametrize("decimals", [-1, 1.5, "3", True])
def test_show_refuses_bad_decimals(decimals):
    with pytest.raises(ValueError, match="decimals must be an int >= 0"):
        show("x", np.ones(2), decimals=decimals)


# -----------------------------------------------------------------------------------------------
# show_source

MODULE = '''\
"""A module written by the test."""

import functools


def double(x):
    """Twice x."""
    return 2 * x


def logged(fn):
    @functools.wraps(fn)
    def wrapper(*args):
        return fn(*args)

    return wrapper


@logged
def decorated(x):
    return x + 1


class Counter:
    """Counts."""

    def __init__(self):
        self.n = 0

    def add(self, k=1):
        """Add k."""
        self.n += k
        return self.n

    @property
    def twice(self):
        """Twice the count."""
        return 2 * self.n

    @twice.setter
    def twice(self, value):
        self.n = value // 2

    @classmethod
    def make(cls):
        return cls()

    @staticmethod
    def unit():
        return 1


def outer():
    def inner(y):
        return y * 3

    return inner
'''


@pytest.fixture
def temp_module(tmp_path, monkeypatch):
    """A fresh module ``showme_<random>`` in ``tmp_path`` (on ``sys.path``): ``(module, path)``."""
    name = f"showme_{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{name}.py"
    path.write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    module = importlib.import_module(name)
    yield module, path
    sys.modules.pop(name, None)


def _rewrite(path, text):
    """Write new contents and move the modification time on: no cache can take them for the old."""
    stat = path.stat()
    path.write_text(text)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


def test_function_source_with_header_line(temp_module):
    module, _ = temp_module
    shown = show_source(module.double)
    assert isinstance(shown, SourceCode)
    assert shown.text == (
        f'# {module.__name__}.py · double\ndef double(x):\n    """Twice x."""\n    return 2 * x'
    )
    assert repr(shown) == str(shown) == shown.text


def test_markdown_and_plain_forms(temp_module):
    module, _ = temp_module
    shown = show_source(module.double)
    assert shown._repr_markdown_() == f"```python\n{shown.text}\n```"
    assert "```" not in shown.text  # the plain form is just code


def test_markdown_fence_outlasts_backticks_in_the_code(tmp_path, monkeypatch):
    (tmp_path / "fenced_mod.py").write_text(
        'def f():\n    """Example:\n\n    ```\n    f()\n    ```\n    """\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("fenced_mod")
    try:
        markdown = show_source(module.f)._repr_markdown_()
    finally:
        sys.modules.pop("fenced_mod", None)
    assert markdown.startswith("````python\n") and markdown.endswith("\n````")


def test_source_is_read_from_the_file_at_run_time(temp_module):
    """Edit the file after the import: show_source shows the new text, without a reload."""
    module, path = temp_module
    before = show_source(module.double).code
    new = MODULE.replace(
        "def double(x):",
        "# a comment that moves every line down\n\n\ndef double(x):",
    ).replace("return 2 * x", "return x + x  # changed")
    _rewrite(path, new.replace('"""Counts."""', '"""Counts up."""'))
    after = show_source(module.double).code
    assert after != before
    assert after == 'def double(x):\n    """Twice x."""\n    return x + x  # changed'
    assert show_source(module.Counter).code.startswith('class Counter:\n    """Counts up."""\n')
    # and after a reload, too
    reloaded = importlib.reload(module)
    assert show_source(reloaded.double).code == after


def test_methods_bound_methods_classmethods_staticmethods(temp_module):
    module, _ = temp_module
    add = 'def add(self, k=1):\n    """Add k."""\n    self.n += k\n    return self.n'
    assert show_source(module.Counter.add).code == add
    assert show_source(module.Counter().add).code == add  # a bound method shows its function
    assert show_source(module.Counter.add).qualname == "Counter.add"
    assert show_source(module.Counter.make).code == "@classmethod\ndef make(cls):\n    return cls()"
    assert show_source(module.Counter.unit).code == "@staticmethod\ndef unit():\n    return 1"
    assert show_source(module.Counter.__dict__["unit"]).qualname == "Counter.unit"


def test_property_shows_its_getter(temp_module):
    module, _ = temp_module
    shown = show_source(module.Counter.twice)
    assert shown.qualname == "Counter.twice"
    assert (
        shown.code
        == '@property\ndef twice(self):\n    """Twice the count."""\n    return 2 * self.n'
    )


def test_property_getter_is_found_after_the_file_moved(temp_module):
    module, path = temp_module
    _rewrite(path, "\n\n" + MODULE)
    assert show_source(module.Counter.twice).code.startswith("@property\ndef twice(self):")


def test_class_source(temp_module):
    module, _ = temp_module
    code = show_source(module.Counter).code
    assert code.startswith('class Counter:\n    """Counts."""\n\n    def __init__(self):')
    assert code.endswith("    def unit():\n        return 1")
    assert show_source(module.Counter).text.startswith(f"# {module.__name__}.py · Counter\n")


def test_decorated_and_nested_functions(temp_module):
    module, _ = temp_module
    assert show_source(module.decorated).code == "@logged\ndef decorated(x):\n    return x + 1"
    inner = show_source(module.outer())
    assert inner.qualname == "outer.<locals>.inner"
    assert inner.code == "def inner(y):\n    return y * 3"


def test_docstring_false_drops_only_the_docstring(temp_module):
    module, _ = temp_module
    assert show_source(module.double, docstring=False).code == "def double(x):\n    return 2 * x"
    assert show_source(module.Counter.add, docstring=False).code == (
        "def add(self, k=1):\n    self.n += k\n    return self.n"
    )
    no_doc = show_source(module.Counter, docstring=False).code
    assert no_doc.startswith("class Counter:\n\n    def __init__(self):")
    assert '"""Add k."""' in no_doc  # only the class's own docstring goes
    # nothing to drop: unchanged
    assert show_source(module.decorated, docstring=False).code == show_source(module.decorated).code


def test_docstring_must_be_a_bool(temp_module):
    module, _ = temp_module
    with pytest.raises(TypeError, match="docstring must be True or False"):
        show_source(module.double, docstring="no")


def test_header_names_the_module_path_inside_a_package(tmp_path, monkeypatch):
    package = tmp_path / "showpkg_a"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("def top():\n    return 0\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "leaf.py").write_text("def leaf():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        leaf = importlib.import_module("showpkg_a.sub.leaf")
        top = importlib.import_module("showpkg_a")
        assert show_source(leaf.leaf).text.splitlines()[0] == "# showpkg_a/sub/leaf.py · leaf"
        assert show_source(top.top).text.splitlines()[0] == "# showpkg_a/__init__.py · top"
    finally:
        for name in ("showpkg_a.sub.leaf", "showpkg_a.sub", "showpkg_a"):
            sys.modules.pop(name, None)


def test_library_objects():
    from lessons_lib.checks import check
    from lessons_lib.tokenizers import BPETokenizer

    assert show_source(check).text.startswith("# lessons_lib/checks.py · check\ndef check(")
    train = show_source(BPETokenizer.train, docstring=False)
    assert train.text.startswith("# lessons_lib/tokenizers.py · BPETokenizer.train\n@classmethod\n")
    assert '"""' not in train.code.split(":\n", 1)[1][:200]


def test_tf_function_shows_its_python_code(tmp_path, monkeypatch):
    pytest.importorskip("tensorflow")
    (tmp_path / "showtf_mod.py").write_text(
        textwrap.dedent(
            '''\
            import tensorflow as tf


            @tf.function
            def square(x):
                """x squared."""
                return x * x


            class Model:
                @tf.function
                def call(self, x):
                    return x + 1


            plain_compiled = tf.function(lambda x: x)
            '''
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("showtf_mod")
    try:
        assert show_source(module.square).code == (
            '@tf.function\ndef square(x):\n    """x squared."""\n    return x * x'
        )
        expected = "@tf.function\ndef call(self, x):\n    return x + 1"
        assert show_source(module.Model.call).code == expected
        assert show_source(module.Model().call).code == expected  # bound tf.function
        assert show_source(module.Model().call).qualname == "Model.call"
    finally:
        sys.modules.pop("showtf_mod", None)


def test_library_tf_function_and_methods():
    pytest.importorskip("tensorflow")
    from lessons_lib.training import train_step_function

    shown = show_source(train_step_function)
    assert shown.text.startswith(
        "# lessons_lib/training.py · train_step_function\ndef train_step_function("
    )
    assert "tape.gradient" in shown.code


class _Thing:
    def method(self):
        return 1


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (_Thing(), r"an instance of _Thing: pass the class, _Thing, or one of its methods"),
        (3, r"an instance of int"),
        (len, r"a built-in: it is written in C"),
        (np.exp, r"a built-in: it is written in C"),
        ([].append, r"a built-in"),
        (str.join, r"a built-in"),
        (np, r"a module: pass one of its functions or classes"),
    ],
)
def test_clear_type_error_for_what_has_no_python_source(obj, message):
    with pytest.raises(TypeError, match="show_source expects a function, class or method") as info:
        show_source(obj)
    assert info.match(message)


def test_classes_defined_in_c_are_refused():
    with pytest.raises(TypeError, match="no Python source|cannot read the source"):
        show_source(int)
