"""What a lesson shows: named, rounded arrays (:func:`show`) and the library's own code (:func:`show_source`).

``show_source`` reads the code from the installed file each time it is called, so what a lesson displays is
always the code that runs; the notebook's stored output is re-checked by nbval, so a change to the library that a
lesson shows fails the test run until the lesson is rebuilt.
"""

from __future__ import annotations

import ast
import inspect
import linecache
import textwrap
from typing import Any

import numpy as np

from lessons_lib._validate import describe


def show(name: str, value: Any, decimals: int = 3) -> None:
    """Print ``name``, the shape, then the array rounded to ``decimals`` places.

    Adding ``0.0`` after rounding turns a rounded ``-0.0`` into ``0.0``, so tiny negative round-off never prints
    as ``-0.``.
    """
    if not isinstance(name, str):
        raise TypeError(f"show(name, value): name must be a str, got {describe(name)}")
    a = np.asarray(value)
    print(f"{name}  shape {a.shape}")
    print(np.round(a, decimals) + 0.0 if a.dtype.kind in "fc" else a)


class SourceCode:
    """The source of one function, class or method, as a notebook shows it.

    JupyterLab renders the Markdown form (a highlighted ``python`` block); static views and ``print`` get the
    same text as plain code. Both start with a comment naming the file and the object.
    """

    def __init__(self, qualname: str, path: str, code: str) -> None:
        self.qualname, self.path, self.code = qualname, path, code

    @property
    def text(self) -> str:
        return f"# {self.path} · {self.qualname}\n{self.code}"

    def __repr__(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text

    def _repr_markdown_(self) -> str:
        return f"```python\n{self.text}\n```"


def _unwrap(obj: Any) -> Any:
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if isinstance(obj, property):
        obj = obj.fget
    if inspect.ismethod(obj):  # a bound method: show the function it binds
        obj = obj.__func__
    python_function = getattr(
        obj, "python_function", None
    )  # a tf.function keeps the Python code here
    if python_function is not None:
        obj = python_function
    return inspect.unwrap(obj)


def _without_docstring(code: str) -> str:
    """Drop the docstring of the (dedented) function or class in ``code``, keeping every other line as written."""
    node = ast.parse(code).body[0]
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


def show_source(obj: Any, docstring: bool = True) -> SourceCode:
    """The source code of a library function, class or method, read from its file now.

    Use it as the last line of a cell (``show_source(MultiHeadAttention.call)``): the notebook displays the code
    highlighted in JupyterLab and as plain text elsewhere. ``docstring=False`` leaves the docstring out.

    Args:
        obj: a function, class, method (bound or not), property, or a ``tf.function``.
        docstring: keep the docstring of ``obj`` (default) or drop it.

    Raises:
        TypeError: ``obj`` is not something with Python source, e.g. an instance or a built-in; pass its class
            or the function instead.
    """
    target = _unwrap(obj)
    if not (inspect.isfunction(target) or inspect.isclass(target)):
        hint = " (an instance: pass its class, type(obj))" if not callable(obj) else ""
        raise TypeError(
            f"show_source expects a function, class or method written in Python, got {describe(obj)}{hint}"
        )
    try:
        filename = inspect.getsourcefile(target)
    except TypeError:
        filename = None
    if filename is None:
        raise TypeError(f"show_source: {describe(obj)} has no Python source file (a built-in?)")
    linecache.checkcache(filename)  # re-read the file if it changed since it was first cached
    try:
        code = textwrap.dedent(inspect.getsource(target)).rstrip("\n")
    except OSError as err:
        raise TypeError(f"show_source: cannot read the source of {describe(obj)}: {err}") from None
    if not docstring:
        code = _without_docstring(code)
    module = inspect.getmodule(target)
    module_name = module.__name__ if module is not None else target.__module__
    is_package = filename.endswith("__init__.py")
    path = module_name.replace(".", "/") + ("/__init__.py" if is_package else ".py")
    return SourceCode(target.__qualname__, path, code)
