"""Self-checks for the exercises: ``check(candidate, reference, inputs=...)`` prints one verdict.

``check`` never raises for a learner's mistake.

Every exercise in the course follows the same three-cell pattern::

    # stub cell (the learner edits this)
    def softmax(x):
        # YOUR CODE HERE
        raise NotImplementedError

    # check cell (runs the learner's code against a reference, prints one line)
    check(softmax, reference_softmax, inputs=[np.array([1.0, 2.0, 3.0]), (np.ones((2, 3)),)],
          hint="subtract the row maximum before exponentiating")

    # hidden solution cell (tag ``solution``; stored collapsed, so learners try first)
    def softmax(x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    check(softmax, reference_softmax, inputs=[...])

`check` compares the candidate with the reference and prints

* ``✓ softmax: all 2 cases match`` when every case agrees, and returns ``True``;
* ``… softmax: not attempted yet — fill in the cell above and re-run`` while the stub still raises
  ``NotImplementedError``, and returns ``None`` (falsy) — so a notebook with untouched stubs still
  runs to the end;
* ``✗ softmax: ...`` followed by exactly what differs (type, shape, dtype kind, the largest absolute
  difference and the first differing element, which input case failed and its argument shapes), then
  ``Hint: ...``; it returns ``False``. Any other exception raised by the candidate is reported in
  one line, it is not re-raised.

Two failures are named outright. Non-finite values where the other side is finite: ``got NaN at 6 of
12 elements where the expected values are finite`` (an overflowing ``exp``, say), or ``expected -inf
at 3 of 12 elements, got finite values there`` (a mask not applied). And two values that look alike
when rounded are never printed alike: ``expected -1.24203, got -1.24198 (differs by 5e-05, tolerance
2.2e-06)`` — as many digits as it takes to tell them apart, then the difference and the tolerance
``atol + rtol·|expected|`` at that element.

The three-cell pattern and the ✓ / … / ✗ verdicts are introduced in lesson 00 §4; every lesson's
exercises use it.

Numbers are compared the way `numpy.isclose` does: element ``got`` matches ``expected`` when
``|got - expected| <= atol + rtol * |expected|`` (NaN matches NaN). Integers, booleans and strings
must be equal. ``tf.Tensor``/Keras variables are converted with ``.numpy()`` and may stand in for
NumPy arrays (and vice versa); lists and tuples are interchangeable and compared item by item, dicts
key by key.
"""

from __future__ import annotations

import copy
import tracemalloc
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._validate import non_negative_float

__all__ = ["check", "names_used"]

#: Numbers shown in messages are rounded to this many significant digits.
SIGNIFICANT_DIGITS = 4

_KIND_NAMES = {
    "b": "bool",
    "i": "int",
    "u": "int",
    "f": "float",
    "c": "complex",
    "U": "str",
    "S": "bytes",
    "O": "object",
    "M": "datetime",
    "m": "timedelta",
    "V": "void",
}


def check(
    candidate: Any,
    reference: Any,
    inputs: Sequence[Any] | None = None,
    name: str | None = None,
    hint: str | Sequence[str] | None = None,
    atol: float = 1e-6,
    rtol: float = 1e-6,
    forbid: Sequence[str] = (),
    max_memory: int | None = None,
) -> bool | None:
    """Compare a learner's answer with a reference, print one verdict line, and return it.

    Introduced in lesson 00 §4 ("How to use this course"); every lesson's exercise cells call it.

    Args:
        candidate: the learner's function (when ``inputs`` is given) or value. A zero-argument
            callable such as ``lambda: softmax(x)`` is called first, so that a stub's
            ``NotImplementedError`` is caught here.
        reference: the reference function or value, in the same form as ``candidate``.
        inputs: the cases to try: a list whose items are argument tuples (``(q, k, v)``) or single
            arguments. A single argument that is itself a tuple must be wrapped: ``[((3, 4),)]``.
        name: what to call the candidate in the message; defaults to its ``__name__`` (else
            ``"result"``).
        hint: printed as ``Hint: ...`` after a failure. A tuple of hints is given one at a time:
            the first (the idea) after the first failure, the next (closer to the code) after the
            next failure of the same exercise, and so on.
        atol: absolute tolerance for floating-point values.
        rtol: relative tolerance for floating-point values (relative to the reference).
        forbid: names the exercise asks the learner not to use (e.g. the library function it
            re-derives). A candidate whose code refers to one of them, directly or in a function
            or lambda it defines, fails without being run.
        max_memory: bytes the candidate may allocate at its peak in one case (measured with
            ``tracemalloc``, which sees NumPy's arrays). For exercises that ask not to build a
            large intermediate (a one-hot matrix, a whole table): the case that would need it fails.

    Returns:
        ``True`` when everything matches, ``False`` when something differs or the candidate raised,
        ``None`` when the candidate is still a stub (raised ``NotImplementedError``). Never raises
        for a wrong, unfinished or crashing candidate.

    Raises:
        ValueError: a negative tolerance or ``inputs`` that is not a list/tuple (the course's
            mistake, not the learner's).
    """
    atol = non_negative_float(atol, "atol")
    rtol = non_negative_float(rtol, "rtol")
    if inputs is not None and not isinstance(inputs, (list, tuple)):
        raise ValueError(
            "inputs must be a list of argument tuples or single arguments, "
            f"got {type(inputs).__name__}"
        )
    hints = _hint_list(hint)
    if isinstance(forbid, str) or not all(isinstance(f, str) for f in forbid):
        raise ValueError(f"forbid must be a list of names, got {forbid!r}")
    label = name if name is not None else _default_name(candidate)
    used = sorted(names_used(candidate) & set(forbid))
    if used:
        listed = ", ".join(f"`{u}`" for u in used)
        return _fail(label, "", f"the exercise asks you not to use {listed}", hints)

    if inputs is None:
        cases: list[tuple[Any, ...] | None] = [None]
    else:
        cases = [args if isinstance(args, tuple) else (args,) for args in inputs]

    for number, args in enumerate(cases, start=1):
        where = "" if args is None else f"case {number} of {len(cases)} ({_describe_args(args)})"
        try:
            expected = _evaluate(reference, args)
        except NotImplementedError:
            raise  # an unfinished *reference* is a bug in the course: let it surface
        except (
            Exception
        ) as exc:  # the reference raises for this input: the candidate must raise the same
            expected_exc: BaseException | None = exc
            expected = None
        else:
            expected_exc = None

        try:
            got, peak = _evaluate_measured(candidate, args, max_memory is not None)
        except NotImplementedError:
            print(f"… {label}: not attempted yet — fill in the cell above and re-run")
            return None
        except Exception as exc:
            if expected_exc is not None and isinstance(exc, type(expected_exc)):
                continue  # raised as it should
            detail = f"raised {_one_line_exception(exc)}"
            if expected_exc is not None:
                detail = f"expected {type(expected_exc).__name__} to be raised, but it {detail}"
            return _fail(label, where, detail, hints)

        if expected_exc is not None:
            return _fail(
                label,
                where,
                f"expected {_one_line_exception(expected_exc)} to be raised, "
                f"but it returned {_describe(got)}",
                hints,
            )
        if max_memory is not None and peak > max_memory:
            return _fail(
                label,
                where,
                f"it allocated {_bytes(peak)} at its peak, more than the {_bytes(max_memory)} "
                "this exercise allows: did it build the large intermediate the exercise avoids?",
                hints,
            )
        problem = compare(expected, got, atol=atol, rtol=rtol)
        if problem is not None:
            return _fail(label, where, problem, hints)

    if inputs is None:
        print(f"✓ {label}: matches")
    elif len(cases) == 1:
        print(f"✓ {label}: 1 case matches")
    else:
        print(f"✓ {label}: all {len(cases)} cases match")
    return True


def compare(
    expected: Any, got: Any, atol: float = 1e-6, rtol: float = 1e-6, path: str = ""
) -> str | None:
    """Describe the first difference between ``expected`` and ``got``; ``None`` when they match.

    The comparison behind `check` (lesson 00 §4): it returns the message ``check`` prints.

    Recurses into lists/tuples and dicts; ``path`` (e.g. ``"[1]['k']"``) says where inside the
    output the difference sits and is prefixed to the message.
    """
    at = f"at output{path}: " if path else ""
    exp_cat, got_cat = _category(expected), _category(got)

    if exp_cat == "none" or got_cat == "none":
        if exp_cat == got_cat:
            return None
        extra = " — did you forget a `return`?" if got_cat == "none" else ""
        return f"{at}type mismatch: expected {_type_name(expected)}, got None{extra}"

    if exp_cat in ("array", "number") and got_cat in ("array", "number"):
        if exp_cat == "array" and got_cat == "number" and _to_numpy(expected).ndim > 0:
            return (
                f"{at}type mismatch: expected {_type_name(expected)} of shape "
                f"{_to_numpy(expected).shape}, got {_type_name(got)} {_fmt(got)}"
            )
        return _compare_arrays(_to_numpy(expected), _to_numpy(got), atol, rtol, at)

    if exp_cat != got_cat:
        return f"{at}type mismatch: expected {_type_name(expected)}, got {_type_name(got)}"

    if exp_cat == "str":
        return _compare_strings(expected, got, at)

    if exp_cat == "sequence":
        if len(expected) != len(got):
            return f"{at}length mismatch: expected {len(expected)} items, got {len(got)}"
        for i, (e, g) in enumerate(zip(expected, got)):
            problem = compare(e, g, atol, rtol, f"{path}[{i}]")
            if problem is not None:
                return problem
        return None

    if exp_cat == "mapping":
        missing = [k for k in expected if k not in got]
        unexpected = [k for k in got if k not in expected]
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing keys {_short_list(missing)}")
            if unexpected:
                parts.append(f"unexpected keys {_short_list(unexpected)}")
            return f"{at}dict keys differ: " + "; ".join(parts)
        for key in expected:
            problem = compare(expected[key], got[key], atol, rtol, f"{path}[{key!r}]")
            if problem is not None:
                return problem
        return None

    # Anything else: fall back to ==.
    try:
        equal = bool(expected == got)
    except Exception:  # e.g. an ambiguous truth value
        equal = False
    if type(expected) is not type(got) and not equal:
        return f"{at}type mismatch: expected {_type_name(expected)}, got {_type_name(got)}"
    if not equal:
        return f"{at}values differ: expected {_short_repr(expected)}, got {_short_repr(got)}"
    return None


# --------------------------------------------------------------------------------------- helpers


def _evaluate(fn_or_value: Any, args: tuple[Any, ...] | None) -> Any:
    """Call ``fn_or_value(*copies of args)``; with no inputs, call a zero-argument callable.

    A value (not callable, or an array) is returned as it is.
    """
    if args is None:
        if callable(fn_or_value) and not _is_array_like(fn_or_value):
            return fn_or_value()
        return fn_or_value
    return fn_or_value(*(_safe_copy(a) for a in args))


def _evaluate_measured(fn_or_value: Any, args: tuple[Any, ...] | None, measure: bool):
    """``(_evaluate(...), peak bytes allocated while it ran)``; the peak is 0 when not measured."""
    if not measure:
        return _evaluate(fn_or_value, args), 0
    copies = None if args is None else tuple(_safe_copy(a) for a in args)
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    start = tracemalloc.get_traced_memory()[0]
    try:
        # the arguments were copied before the measurement started: only the candidate counts
        value = _evaluate(fn_or_value, None) if copies is None else fn_or_value(*copies)
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return value, peak


def _bytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{int(n)} bytes"


def _safe_copy(value: Any) -> Any:
    """A deep copy: a candidate that changes its arguments in place cannot change later calls."""
    try:
        return copy.deepcopy(value)
    except Exception:  # objects that refuse to be copied are passed as they are
        return value


def names_used(fn: Any) -> set[str]:
    """Every global and attribute name the code of ``fn`` refers to, nested functions included.

    What ``check(..., forbid=...)`` looks at: ``lambda x: layer_norm(x)`` uses ``{"layer_norm"}``,
    ``lambda x: lessons_lib.layer_norm(x)`` uses ``{"lessons_lib", "layer_norm"}``. A value that is
    not a Python function (an array, a built-in) uses no names.
    """
    target = getattr(fn, "func", fn)  # functools.partial
    code = getattr(target, "__code__", None)
    if code is None:
        return set()

    def walk(c: Any) -> set[str]:
        names = set(c.co_names)
        for const in c.co_consts:
            if hasattr(const, "co_names"):
                names |= walk(const)
        return names

    return walk(code)


#: How many times each exercise (by its label) has failed in this kernel: picks the next hint.
_FAILURES: dict[str, int] = {}


def _hint_list(hint: str | Sequence[str] | None) -> tuple[str, ...]:
    if hint is None:
        return ()
    if isinstance(hint, str):
        return (hint,)
    if isinstance(hint, Sequence) and all(isinstance(h, str) for h in hint):
        return tuple(hint)
    raise ValueError(f"hint must be a string or a tuple of strings, got {hint!r}")


def _fail(label: str, where: str, detail: str, hints: tuple[str, ...]) -> bool:
    head = f"✗ {label}: {where} failed" if where else f"✗ {label}: does not match"
    print(head)
    print(f"  {detail}")
    if hints:
        n = _FAILURES.get(label, 0)
        _FAILURES[label] = n + 1
        print(f"  Hint: {hints[min(n, len(hints) - 1)]}")
        if n + 1 < len(hints):
            print("  (Still stuck? Run the check again for a closer hint.)")
    return False


def _default_name(candidate: Any) -> str:
    target = getattr(candidate, "func", candidate)  # functools.partial
    name = getattr(target, "__name__", None)
    if not isinstance(name, str) or name == "<lambda>":
        return "result"
    return name


def _is_array_like(x: Any) -> bool:
    """NumPy arrays and tensors (anything with a ``.numpy()`` method and a shape)."""
    if isinstance(x, np.ndarray):
        return True
    return callable(getattr(x, "numpy", None)) and hasattr(x, "shape") and not isinstance(x, type)


def _category(x: Any) -> str:
    if x is None:
        return "none"
    if isinstance(x, (str, bytes, np.str_, np.bytes_)):
        return "str"
    if isinstance(x, (bool, int, float, complex, np.number, np.bool_)):
        return "number"
    if _is_array_like(x):
        return "array"
    if isinstance(x, Mapping):
        return "mapping"
    if isinstance(x, (list, tuple)):
        return "sequence"
    return "other"


def _to_numpy(x: Any) -> np.ndarray:
    if not isinstance(x, np.ndarray) and callable(getattr(x, "numpy", None)):
        x = x.numpy()
    return np.asarray(x)


def _type_name(x: Any) -> str:
    t = type(x)
    if t.__module__.startswith("tensorflow"):
        return "tf.Variable" if "Variable" in t.__name__ else "tf.Tensor"
    if t.__module__.startswith("keras"):
        return f"keras.{t.__name__}"
    if t is np.ndarray:
        return "ndarray"
    if isinstance(x, np.generic):
        return f"np.{t.__name__}"
    return t.__name__


def _kind_name(dtype: np.dtype) -> str:
    return _KIND_NAMES.get(dtype.kind, dtype.kind)


def _compare_arrays(
    exp: np.ndarray, got: np.ndarray, atol: float, rtol: float, at: str
) -> str | None:
    if exp.shape != got.shape:
        return f"{at}shape mismatch: expected {exp.shape}, got {got.shape}"
    ek, gk = _kind_name(exp.dtype), _kind_name(got.dtype)
    if ek != gk:
        return f"{at}dtype kind mismatch: expected {ek} ({exp.dtype}), got {gk} ({got.dtype})"
    if exp.size == 0:
        return None

    if ek in ("float", "complex"):
        with np.errstate(invalid="ignore", over="ignore"):
            close = np.isclose(got, exp, atol=atol, rtol=rtol, equal_nan=True)
    else:
        close = np.asarray(got == exp)
        if close.shape != exp.shape:  # object arrays comparing oddly
            close = np.full(exp.shape, bool(np.all(close)))
    if bool(np.all(close)):
        return None

    bad = np.argwhere(~close)
    first = tuple(int(i) for i in bad[0])
    if ek in ("float", "complex"):
        problem = _nonfinite_problem(exp, got, close, at)
        if problem is not None:
            return problem
    e_val, g_val = exp[first], got[first]
    e_txt, g_txt, gap = _fmt_pair(e_val, g_val, atol, rtol)
    parts = []
    if ek in ("float", "complex", "int"):
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.abs(
                got.astype(np.complex128 if ek == "complex" else np.float64)
                - exp.astype(np.complex128 if ek == "complex" else np.float64)
            )
        finite = diff[np.isfinite(diff)]
        max_diff = float(finite.max()) if finite.size else float("nan")
        parts.append(f"max abs diff {_fmt(max_diff)}")
    tolerance = f"atol={atol:g}, rtol={rtol:g}"
    if gap:  # the rounded values look alike: say by how much they differ
        tolerance = gap
    if exp.ndim == 0:
        if gap:
            detail = f" ({tolerance})"
        elif parts and ek != "int":
            detail = f" ({parts[0]}, {tolerance})"
        else:
            detail = ""
        return f"{at}values differ: expected {e_txt}, got {g_txt}{detail}"
    parts.append(f"{len(bad)} of {exp.size} elements differ")
    return (
        f"{at}values differ: "
        + ", ".join(parts)
        + f"; first at index {first}: expected {e_txt}, got {g_txt}"
        + (f" ({tolerance})" if ek in ("float", "complex") else "")
    )


def _nonfinite_problem(exp: np.ndarray, got: np.ndarray, close: np.ndarray, at: str) -> str | None:
    """NaN/inf where the other side is finite, named: "got NaN at 6 of 12 elements where ..."."""
    got_bad = ~np.isfinite(got) & np.isfinite(exp)
    exp_bad = np.isfinite(got) & ~np.isfinite(exp)
    if got_bad.any():
        where, which = got_bad, got
        head = "got {} of {} elements where the expected values are finite"
    elif exp_bad.any():
        where, which = exp_bad, exp
        head = "expected {} of {} elements, got finite values there"
    else:
        return None
    if exp.ndim == 0:
        return f"{at}values differ: expected {_fmt(exp)}, got {_fmt(got)}"
    first = tuple(int(i) for i in np.argwhere(where)[0])
    message = head.format(_count_nonfinite(which[where]), exp.size)
    message += f"; first at index {first}: expected {_fmt(exp[first])}, got {_fmt(got[first])}"
    others = int(np.count_nonzero(~close & ~where))
    if others:
        message += f"; {others} other element{'s differ' if others > 1 else ' differs'}"
    return f"{at}values differ: {message}"


def _count_nonfinite(values: np.ndarray) -> str:
    """``NaN at 4 and inf at 2`` for the non-finite ``values``."""
    real = values.real if np.iscomplexobj(values) else values
    nan = np.isnan(values)
    counts = [
        ("NaN", int(np.count_nonzero(nan))),
        ("inf", int(np.count_nonzero(~nan & (real > 0)))),
        ("-inf", int(np.count_nonzero(~nan & (real <= 0)))),
    ]
    parts = [f"{name} at {n}" for name, n in counts if n]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _fmt_pair(expected: Any, got: Any, atol: float, rtol: float) -> tuple[str, str, str]:
    """Both values for a message, with as many significant digits as it takes to tell them apart.

    Returns ``(expected, got, gap)``; ``gap`` is ``""`` when SIGNIFICANT_DIGITS already show the
    difference, else ``"differs by 3.1e-05, tolerance 1e-06"`` (the tolerance at this element,
    ``atol + rtol·|expected|``).
    """
    e, g = _fmt(expected), _fmt(got)
    if e != g:
        return e, g, ""
    e_num, g_num = _as_python(expected), _as_python(got)
    if not isinstance(e_num, (float, complex)) or not isinstance(g_num, (float, complex)):
        return e, g, ""
    for digits in range(SIGNIFICANT_DIGITS + 1, 18):
        e, g = _fmt(e_num, digits), _fmt(g_num, digits)
        if e != g:
            break
    tolerance = atol + rtol * abs(e_num)
    return e, g, f"differs by {abs(g_num - e_num):.2g}, tolerance {tolerance:.2g}"


def _compare_strings(exp: str | bytes, got: str | bytes, at: str) -> str | None:
    if type(exp) is not type(got) and not (isinstance(exp, str) and isinstance(got, str)):
        return f"{at}type mismatch: expected {_type_name(exp)}, got {_type_name(got)}"
    if exp == got:
        return None
    pos = next((i for i, (a, b) in enumerate(zip(exp, got)) if a != b), min(len(exp), len(got)))
    return (
        f"{at}strings differ at character {pos}: "
        f"expected {_short_repr(exp)}, got {_short_repr(got)}"
    )


def _as_python(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    return value


def _fmt(value: Any, digits: int = SIGNIFICANT_DIGITS) -> str:
    """A value for a message: numbers to ``digits`` significant digits, ``NaN``, ``inf``."""
    value = _as_python(value)
    if isinstance(value, (bool, int)):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "NaN"
        return f"{value:.{digits}g}"
    if isinstance(value, complex):
        return f"{value:.{digits}g}"
    return _short_repr(value)


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short_list(keys: list[Any], limit: int = 5) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return f"[{shown}{', ...' if len(keys) > limit else ''}]"


def _describe(x: Any) -> str:
    """E.g. ``ndarray (3, 4) float32``, ``tf.Tensor (2,) int32``, ``int 5``, ``list of 3``."""
    cat = _category(x)
    if cat == "array":
        return f"{_type_name(x)} {tuple(x.shape)} {getattr(x.dtype, 'name', x.dtype)}"
    if cat == "number":
        return f"{_type_name(x)} {_fmt(x)}"
    if cat == "str":
        return f"{_type_name(x)} {_short_repr(x, 30)}"
    if cat in ("sequence", "mapping"):
        return f"{_type_name(x)} of {len(x)}"
    if cat == "none":
        return "None"
    return _type_name(x)


def _describe_args(args: tuple[Any, ...]) -> str:
    if not args:
        return "no arguments"
    return "arguments: " + ", ".join(_describe(a) for a in args)


def _one_line_exception(exc: BaseException) -> str:
    message = " ".join(str(exc).split())
    if len(message) > 200:
        message = message[:197] + "..."
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
