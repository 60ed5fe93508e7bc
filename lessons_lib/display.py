"""What a lesson shows: named, rounded arrays (`show`) and the library's own code
(`show_source`).

``show_source`` reads the code from the installed file each time it is called, so what a lesson
displays is always the code that runs; the notebook's stored output is re-checked by nbval, so a
change to the library that a lesson shows fails the test run until the lesson is rebuilt.
"""

from __future__ import annotations

import ast
import inspect
import linecache
import re
import sys
import textwrap
from typing import Any

import numpy as np

from lessons_lib._validate import describe


def show(name: str, value: Any, decimals: int = 3) -> None:
    """Print ``name``, the shape, then the array rounded to ``decimals`` places.

    The lessons' array printer from lesson 00 §3 on (lessons 04 and 05 print every step with it).

    Adding ``0.0`` after rounding turns a rounded ``-0.0`` into ``0.0``, so tiny negative round-off
    never prints as ``-0.``. Integer and boolean arrays are printed unchanged. Tensors and Keras
    variables are converted with NumPy. The printed form follows NumPy's print options, which
    ``lessons_lib.setup()`` sets for the lessons.

    >>> show("x", [[-0.0001, 1.23456], [2, -3]])
    x  shape (2, 2)
    [[ 0.     1.235]
     [ 2.    -3.   ]]
    """
    if not isinstance(name, str):
        raise TypeError(f"show(name, value): name must be a str, got {describe(name)}")
    if isinstance(decimals, bool) or not isinstance(decimals, (int, np.integer)) or decimals < 0:
        raise ValueError(
            f"show(name, value, decimals): decimals must be an int >= 0, got {decimals!r}"
        )
    if hasattr(value, "numpy") and not isinstance(
        value, np.ndarray
    ):  # a tf.Tensor or a Keras variable
        value = value.numpy()
    a = np.asarray(value)
    print(f"{name}  shape {a.shape}")
    print(np.round(a, decimals) + 0.0 if a.dtype.kind in "fc" else a)


class SourceCode:
    """The source of one function, class or method, as a notebook shows it.

    JupyterLab renders the Markdown form (a highlighted ``python`` block); static views and
    ``print`` get the same text as plain code. Both start with a comment naming the file and the
    object.
    """

    def __init__(self, qualname: str, path: str, code: str) -> None:
        self.qualname, self.path, self.code = qualname, path, code

    @property
    def text(self) -> str:
        """The plain form: ``# lessons_lib/attention.py · MultiHeadAttention.call`` and the code."""
        return f"# {self.path} · {self.qualname}\n{self.code}"

    def __repr__(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text

    def _repr_markdown_(self) -> str:
        # a fence longer than any run of backticks in the code, so a docstring's ``` cannot close it
        longest = max((len(run) for run in re.findall(r"`+", self.text)), default=0)
        fence = "`" * max(3, longest + 1)
        return f"{fence}python\n{self.text}\n{fence}"


def _unwrap(obj: Any) -> Any:
    """The plain Python function or class behind ``obj`` (a method, property, ``tf.function``,
    decorator ...)."""
    for _ in range(10):  # each layer peels one wrapper; a bound tf.function has two
        if inspect.ismodule(obj) or not (
            callable(obj) or isinstance(obj, (property, staticmethod, classmethod))
        ):
            break
        before = obj
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        if isinstance(obj, property):
            obj = obj.fget
        if inspect.ismethod(obj):  # a bound method: show the function it binds
            obj = obj.__func__
        python_function = getattr(obj, "python_function", None)  # a tf.function keeps its code here
        if python_function is not None and not inspect.isclass(obj):
            obj = python_function
        try:
            obj = inspect.unwrap(obj)
        except ValueError:  # a cycle of __wrapped__
            pass
        if obj is before:
            break
    return obj


def _definitions(body: list[ast.stmt], name: str) -> list[ast.AST]:
    """The function and class definitions called ``name`` directly in ``body`` (also inside
    if/try/with)."""
    found = []
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == name:
                found.append(node)
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, field, None)
                if isinstance(inner, list):
                    found += _definitions([n for n in inner if isinstance(n, ast.AST)], name)
    return found


def _current_start(lines: list[str], qualname: str, old_start: int | None) -> int | None:
    """The first line (1-based, decorators included) of the definition ``qualname`` in the file as
    it is now.

    Line numbers stored in a function's code object go stale when its file is edited after the
    import; looking the definition up by name keeps `show_source` showing what the file says
    now. ``None`` if it is not found (a nested function, a file that does not parse).
    """
    if "<locals>" in qualname:
        return None
    try:
        tree = ast.parse("".join(lines))
    except (SyntaxError, ValueError):
        return None
    candidates: list[ast.AST] = [tree]
    for part in qualname.split("."):
        candidates = [d for node in candidates for d in _definitions(node.body, part)]
        if not candidates:
            return None
    starts = [n.decorator_list[0].lineno if n.decorator_list else n.lineno for n in candidates]
    if old_start is None:
        return starts[-1]
    return min(starts, key=lambda s: abs(s - old_start))  # a property's getter, not its setter


def _without_docstring(code: str) -> str:
    """Drop the docstring of the (dedented) function or class in ``code``, keeping every other line
    as written."""
    try:
        node = ast.parse(code).body[0]
    except (SyntaxError, IndexError):
        return code
    body = getattr(node, "body", [])
    first = body[0] if body else None
    if not (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return code
    lines = code.splitlines()
    del lines[first.lineno - 1 : first.end_lineno]
    return "\n".join(lines)


def _describe(obj: Any) -> str:
    if inspect.ismodule(obj):  # describe() would read numpy's np.shape as a shape
        return f"module {obj.__name__!r}"
    try:
        return describe(obj)
    except Exception:  # an odd `shape` attribute
        return type(obj).__name__


def _refuse(obj: Any) -> TypeError:
    if inspect.ismodule(obj):
        hint = " (a module: pass one of its functions or classes)"
    elif inspect.isbuiltin(obj) or inspect.ismethoddescriptor(obj) or isinstance(obj, np.ufunc):
        hint = " (a built-in: it is written in C and has no Python source)"
    else:
        cls = type(obj).__name__
        hint = f" (an instance of {cls}: pass the class, {cls}, or one of its methods)"
    return TypeError(
        "show_source expects a function, class or method written in Python, "
        f"got {_describe(obj)}{hint}"
    )


def show_source(obj: Any, docstring: bool = True) -> SourceCode:
    """The source code of a library function, class or method, read from its file now.

    Use it as the last line of a cell (``show_source(MultiHeadAttention.call)``): the notebook
    displays the code highlighted in JupyterLab and as plain text elsewhere, after a first line
    naming the file and the object (``# lessons_lib/attention.py · MultiHeadAttention.call``).
    ``docstring=False`` leaves the docstring out. Every lesson from 00 (§3.10) on shows the part of
    ``lessons_lib`` it builds this way.

    Args:
        obj: a function, class, method (bound or not), property, or a ``tf.function``.
        docstring: keep the docstring of ``obj`` (default) or drop it.

    Raises:
        TypeError: ``obj`` is not something with Python source, e.g. an instance or a built-in; pass
            its class or the function instead.
    """
    if not isinstance(docstring, bool):
        raise TypeError(
            f"show_source(obj, docstring): docstring must be True or False, got {docstring!r}"
        )
    target = _unwrap(obj)
    if not (inspect.isfunction(target) or inspect.isclass(target)):
        raise _refuse(obj)
    try:
        filename = inspect.getsourcefile(target)
    except TypeError:
        filename = None
    if filename is None:
        raise TypeError(f"show_source: {_describe(obj)} has no Python source file (a built-in?)")
    module = inspect.getmodule(target)
    if module is None:
        module = sys.modules.get(target.__module__)
    linecache.checkcache(filename)  # re-read the file if it changed since it was first cached
    lines = linecache.getlines(filename, module.__dict__ if module is not None else None)
    code_object = getattr(target, "__code__", None)
    old_start = code_object.co_firstlineno if code_object is not None else None
    start = _current_start(lines, target.__qualname__, old_start) if lines else None
    try:
        block = inspect.getblock(lines[start - 1 :]) if start else inspect.getsourcelines(target)[0]
    except OSError as err:
        raise TypeError(f"show_source: cannot read the source of {_describe(obj)}: {err}") from None
    code = textwrap.dedent("".join(block)).rstrip("\n")
    if not docstring:
        code = _without_docstring(code)
    module_name = module.__name__ if module is not None else target.__module__
    is_package = filename.endswith("__init__.py")
    path = module_name.replace(".", "/") + ("/__init__.py" if is_package else ".py")
    return SourceCode(target.__qualname__, path, code)
