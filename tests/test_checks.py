"""Tests for lessons_lib.checks: the one-line verdicts and the exact failure messages printed by
``check``."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from lessons_lib.checks import check, compare  # noqa: E402


def softmax_ref(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax(x: np.ndarray) -> np.ndarray:
    return np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True)


def out(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.err == ""  # nothing may go to stderr in a notebook
    return captured.out


# ------------------------------------------------------------------------------------------------
# successes


def test_function_with_inputs_all_cases_match(capsys):
    cases = [np.array([1.0, 2.0, 3.0]), (np.arange(6.0).reshape(2, 3),), np.zeros((2, 2, 4))]
    assert check(softmax, softmax_ref, inputs=cases) is True
    assert out(capsys) == "✓ softmax: all 3 cases match\n"


def test_single_case_and_multiple_arguments(capsys):
    def add(a, b):
        return a + b

    assert check(add, lambda a, b: b + a, inputs=[(np.ones(3), np.ones(3))]) is True
    assert out(capsys) == "✓ add: 1 case matches\n"


def test_direct_values_arrays_scalars_nested(capsys):
    assert check(np.eye(3), np.eye(3), name="identity") is True
    assert check(2.0, 2.0 + 1e-9, name="scalar") is True
    assert check([1, (2.0, np.ones(2))], ((1, [2.0, np.ones(2)])), name="nested") is True
    assert check({"a": [1, 2], "b": "text"}, {"b": "text", "a": [1, 2]}, name="dict") is True
    assert check(np.float32(0.5), 0.5, name="np scalar") is True
    assert out(capsys).splitlines() == [
        "✓ identity: matches",
        "✓ scalar: matches",
        "✓ nested: matches",
        "✓ dict: matches",
        "✓ np scalar: matches",
    ]


def test_tensors_are_converted_and_stand_in_for_arrays(capsys):
    tf = pytest.importorskip("tensorflow")
    x = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    assert check(tf.constant(x), x, name="tensor vs array") is True
    assert check(x, tf.Variable(x), name="array vs variable") is True
    assert (
        check(lambda t: tf.nn.softmax(t), softmax_ref, inputs=[x], name="tf softmax", atol=1e-6)
        is True
    )
    assert out(capsys).splitlines() == [
        "✓ tensor vs array: matches",
        "✓ array vs variable: matches",
        "✓ tf softmax: 1 case matches",
    ]


def test_default_name(capsys):
    check(lambda: 1, 1)
    check(np.ones(2), np.ones(2))
    assert out(capsys).splitlines() == ["✓ result: matches", "✓ result: matches"]


def test_zero_argument_callable_is_evaluated(capsys):
    x = np.array([0.0, 1.0])
    assert check(lambda: softmax(x), lambda: softmax_ref(x), name="softmax(x)") is True
    assert out(capsys) == "✓ softmax(x): matches\n"


# -------------------------------------------------------------------------------------------------
# failures


def test_shape_mismatch(capsys):
    assert check(np.zeros((4, 3)), np.zeros((3, 4)), name="scores") is False
    assert out(capsys).splitlines() == [
        "✗ scores: does not match",
        "  shape mismatch: expected (3, 4), got (4, 3)",
    ]


def test_dtype_kind_mismatch(capsys):
    assert check(np.array([1.0, 2.0]), np.array([1, 2]), name="ids") is False
    assert (
        out(capsys).splitlines()[1]
        == "  dtype kind mismatch: expected int (int64), got float (float64)"
    )
    assert check(np.array([1, 0]), np.array([True, False]), name="mask") is False
    assert "expected bool (bool), got int (int64)" in out(capsys)
    assert check(3.0, 3, name="count") is False
    assert "dtype kind mismatch: expected int (int64), got float (float64)" in out(capsys)


def test_values_report_max_diff_and_first_position_rounded(capsys):
    expected = np.zeros((2, 3))
    got = expected.copy()
    got[0, 2] = 0.123456789
    got[1, 1] = -0.5
    assert check(got, expected, name="attn", hint="check the scaling") is False
    assert out(capsys).splitlines() == [
        "✗ attn: does not match",
        "  values differ: max abs diff 0.5, 2 of 6 elements differ; first at index (0, 2):"
        " expected 0, got 0.1235 (atol=1e-06, rtol=1e-06)",
        "  Hint: check the scaling",
    ]


def test_scalar_value_difference(capsys):
    assert check(0.6666666, 0.5, name="p") is False
    assert (
        out(capsys).splitlines()[1]
        == "  values differ: expected 0.5, got 0.6667 (max abs diff 0.1667, atol=1e-06, rtol=1e-06)"
    )


def test_integer_and_bool_values_are_exact(capsys):
    assert check([1, 2, 4], [1, 2, 3], name="tokens") is False
    assert out(capsys).splitlines()[1] == "  at output[2]: values differ: expected 3, got 4"
    assert check(np.array([[True, False]]), np.array([[True, True]]), name="mask") is False
    assert out(capsys).splitlines()[1] == (
        "  values differ: 1 of 2 elements differ; first at index (0, 1): expected True, got False"
    )


def test_type_mismatch(capsys):
    assert check([1.0, 2.0], np.array([1.0, 2.0]), name="vec") is False
    assert out(capsys).splitlines()[1] == "  type mismatch: expected ndarray, got list"
    assert check("3", 3, name="n") is False
    assert out(capsys).splitlines()[1] == "  type mismatch: expected int, got str"
    assert check(1.0, np.ones(3), name="v") is False
    assert (
        out(capsys).splitlines()[1]
        == "  type mismatch: expected ndarray of shape (3,), got float 1"
    )


def test_forgotten_return_is_named(capsys):
    def forgot(x):
        x * 2

    assert check(forgot, lambda x: x * 2, inputs=[np.ones(2)]) is False
    lines = out(capsys).splitlines()
    assert lines[0] == "✗ forgot: case 1 of 1 (arguments: ndarray (2,) float64) failed"
    assert lines[1] == "  type mismatch: expected ndarray, got None — did you forget a `return`?"


def test_nested_paths_lengths_strings_dicts(capsys):
    assert check([np.ones(2), np.ones(3)], [np.ones(2), np.ones(4)], name="pair") is False
    assert out(capsys).splitlines()[1] == "  at output[1]: shape mismatch: expected (4,), got (3,)"
    assert check([1, 2], [1, 2, 3], name="seq") is False
    assert out(capsys).splitlines()[1] == "  length mismatch: expected 3 items, got 2"
    assert check("hello world", "hello there", name="text") is False
    assert (
        out(capsys).splitlines()[1]
        == "  strings differ at character 6: expected 'hello there', got 'hello world'"
    )
    assert check({"a": 1, "c": 2}, {"a": 1, "b": 2}, name="vocab") is False
    assert (
        out(capsys).splitlines()[1]
        == "  dict keys differ: missing keys ['b']; unexpected keys ['c']"
    )
    assert check({"a": [1.0, 2.5]}, {"a": [1.0, 2.0]}, name="d") is False
    assert out(capsys).splitlines()[1] == (
        "  at output['a'][1]: values differ: expected 2, got 2.5"
        " (max abs diff 0.5, atol=1e-06, rtol=1e-06)"
    )


def test_failing_case_is_identified_with_argument_shapes(capsys):
    def wrong(x, axis):
        return softmax_ref(x) if x.ndim == 1 else np.zeros_like(x)

    cases = [(np.ones(3), -1), (np.ones((2, 5), dtype=np.float32), -1), (np.ones(2), 0)]
    assert (
        check(wrong, lambda x, axis: softmax_ref(x), inputs=cases, hint="use keepdims=True")
        is False
    )
    lines = out(capsys).splitlines()
    assert lines[0] == "✗ wrong: case 2 of 3 (arguments: ndarray (2, 5) float32, int -1) failed"
    assert lines[1].startswith(
        "  values differ: max abs diff 0.2, 10 of 10 elements differ; first at index (0, 0)"
    )
    assert lines[-1] == "  Hint: use keepdims=True"


def test_tensor_failure_messages(capsys):
    tf = pytest.importorskip("tensorflow")
    assert check(tf.zeros((2, 3)), np.zeros((3, 2), dtype=np.float32), name="t") is False
    assert out(capsys).splitlines()[1] == "  shape mismatch: expected (3, 2), got (2, 3)"
    assert (
        check(lambda x: tf.cast(x, tf.int32), lambda x: x, inputs=[tf.ones((2,))], name="cast")
        is False
    )
    lines = out(capsys).splitlines()
    assert lines[0] == "✗ cast: case 1 of 1 (arguments: tf.Tensor (2,) float32) failed"
    assert lines[1] == "  dtype kind mismatch: expected float (float32), got int (int32)"


# ------------------------------------------------------------------------------------- stubs and
# exceptions


def test_stub_is_not_attempted_and_returns_none(capsys):
    def attention(q, k, v):
        # YOUR CODE HERE
        raise NotImplementedError

    result = check(
        attention, lambda q, k, v: q, inputs=[(np.ones(2), np.ones(2), np.ones(2))], hint="unused"
    )
    assert result is None
    assert out(capsys) == "… attention: not attempted yet — fill in the cell above and re-run\n"


def test_stub_in_value_mode_via_lambda(capsys):
    def stub(x):
        raise NotImplementedError("write me")

    assert check(lambda: stub(1), 1, name="stub") is None
    assert "not attempted yet" in out(capsys)


def test_other_exception_is_reported_in_one_line(capsys):
    def broken(x):
        return x @ np.ones((5, 2))

    assert (
        check(broken, lambda x: x, inputs=[np.ones(3), np.ones((2, 3))], hint="mind the shapes")
        is False
    )
    lines = out(capsys).splitlines()
    assert lines[0] == "✗ broken: case 1 of 2 (arguments: ndarray (3,) float64) failed"
    assert lines[1].startswith("  raised ValueError: matmul: Input operand 1 has a mismatch")
    assert lines[2] == "  Hint: mind the shapes"
    assert len(lines) == 3


def test_exception_message_is_one_line(capsys):
    def multi(x):
        raise RuntimeError("line one\n  line two")

    assert check(multi, lambda x: x, inputs=[1]) is False
    assert out(capsys).splitlines()[1] == "  raised RuntimeError: line one line two"


def test_expected_exception_from_reference(capsys):
    def ref(x):
        if x < 0:
            raise ValueError("x must be >= 0")
        return x

    assert check(lambda x: x, ref, inputs=[1, -1], name="validate") is False
    lines = out(capsys).splitlines()
    assert lines[0] == "✗ validate: case 2 of 2 (arguments: int -1) failed"
    assert lines[1] == "  expected ValueError: x must be >= 0 to be raised, but it returned int -1"
    assert check(ref, ref, inputs=[1, -1], name="validate") is True
    out(capsys)


def test_inputs_are_copied_so_in_place_changes_do_not_leak(capsys):
    def in_place(x):
        x *= 2
        return x

    assert check(in_place, lambda x: x * 2, inputs=[np.ones(3)]) is True
    out(capsys)


# ------------------------------------------------------------------------------------------------
# tolerances


def test_atol_and_rtol(capsys):
    assert check(1.0 + 5e-7, 1.0) is True  # within atol + rtol * 1
    assert check(1.0 + 5e-3, 1.0) is False
    assert check(1.0 + 5e-3, 1.0, atol=1e-2) is True
    assert check(1000.5, 1000.0, atol=0.0, rtol=1e-3) is True  # 0.5 <= 1e-3 * 1000
    assert check(1000.5, 1000.0, atol=0.0, rtol=1e-4) is False
    # rtol is relative to the *reference*, as in np.isclose
    assert check(np.array([0.0, 100.0]), np.array([1e-3, 100.05]), atol=0.0, rtol=1e-3) is False
    assert "first at index (0,): expected 0.001, got 0" in out(capsys)


def test_nan_matches_nan_and_inf(capsys):
    assert check(np.array([np.nan, np.inf]), np.array([np.nan, np.inf])) is True
    assert check(np.array([0.0, 1.0]), np.array([np.nan, 1.0])) is False
    assert "first at index (0,): expected NaN, got 0" in out(capsys)


# ------------------------------------------------------------------------------ NaN, inf and
# look-alikes


def test_nan_in_the_answer_is_named_with_its_count(capsys):
    """An overflowing exp gives NaN: say so, and how many, not a meaningless 'max abs diff'."""
    expected = np.full((3, 4), 0.25)
    got = expected.copy()
    got[0, 1:] = np.nan
    got[1, :3] = np.nan
    assert check(got, expected, name="softmax") is False
    assert out(capsys).splitlines()[1] == (
        "  values differ: got NaN at 6 of 12 elements where the expected values are finite;"
        " first at index (0, 1): expected 0.25, got NaN"
    )


def test_inf_and_nan_together_and_other_differences_are_counted(capsys):
    expected = np.ones((2, 3))
    got = expected.copy()
    got[0, 0], got[0, 1], got[0, 2], got[1, 0] = np.inf, -np.inf, np.nan, 5.0
    assert check(got, expected, name="x") is False
    assert out(capsys).splitlines()[1] == (
        "  values differ: got NaN at 1, inf at 1 and -inf at 1 of 6 elements where the expected"
        " values are finite; first at index (0, 0): expected 1, got inf; 1 other element differs"
    )
    got = np.ones(5)
    got[[1, 3]] = np.inf
    assert check(got, np.ones(5), name="y") is False
    assert "got inf at 2 of 5 elements where the expected values are finite" in out(capsys)


def test_expected_non_finite_but_got_finite(capsys):
    """A masked score must be -inf: a learner who forgot the mask gets finite values there."""
    expected = np.array([[0.5, -np.inf, -np.inf], [0.1, 0.2, -np.inf]])
    got = np.array([[0.5, 0.3, 0.7], [0.1, 0.2, 0.9]])
    assert check(got, expected, name="masked scores") is False
    assert out(capsys).splitlines()[1] == (
        "  values differ: expected -inf at 3 of 6 elements, got finite values there;"
        " first at index (0, 1): expected -inf, got 0.3"
    )


def test_scalar_nan_is_named(capsys):
    assert check(float("nan"), 1.5, name="loss") is False
    assert out(capsys).splitlines()[1] == "  values differ: expected 1.5, got NaN"
    assert check(np.float32(np.inf), np.float32(2.0), name="loss") is False
    assert out(capsys).splitlines()[1] == "  values differ: expected 2, got inf"


def test_values_that_round_alike_get_more_digits_and_the_difference(capsys):
    """Never 'expected -1.242, got -1.242' for a real mismatch."""
    assert check(-1.24198, -1.24203, name="loss") is False
    assert out(capsys).splitlines()[1] == (
        "  values differ: expected -1.24203, got -1.24198 (differs by 5e-05, tolerance 2.2e-06)"
    )
    expected = np.array([[0.5, -1.2420, 2.0]])
    got = expected.copy()
    got[0, 1] += 3.1e-5
    assert check(got, expected, name="logits") is False
    line = out(capsys).splitlines()[1]
    assert line == (
        "  values differ: max abs diff 3.1e-05, 1 of 3 elements differ; first at index (0, 1):"
        " expected -1.242, got -1.24197 (differs by 3.1e-05, tolerance 2.2e-06)"
    )


def test_look_alike_float32_values_are_told_apart(capsys):
    x = np.float32(0.1)
    assert check(np.nextafter(x, np.float32(1)), x, name="x", atol=0, rtol=0) is False
    expected_text, got_text = out(capsys).splitlines()[1].split("expected ")[1].split(", got ")
    assert expected_text != got_text.split(" (")[0]
    assert "tolerance 0" in got_text


def test_distinct_rounded_values_keep_the_short_form(capsys):
    """Values that already differ at 4 significant digits print as before (lesson 00 stores one)."""
    assert check(6.0221, 4.1744, name="loss", atol=1e-5) is False
    assert out(capsys).splitlines()[1] == (
        "  values differ: expected 4.174, got 6.022 (max abs diff 1.848, atol=1e-05, rtol=1e-06)"
    )


def test_bad_tolerance_and_inputs_are_the_authors_mistake():
    with pytest.raises(ValueError, match="atol"):
        check(1.0, 1.0, atol=-1)
    with pytest.raises(ValueError, match="inputs must be a list"):
        check(abs, abs, inputs=np.ones(3))


def test_compare_returns_none_or_message():
    assert compare(np.ones(2), np.ones(2)) is None
    assert compare(np.ones(2), np.ones(3)) == "shape mismatch: expected (2,), got (3,)"


def test_forbid_refuses_a_candidate_that_uses_a_forbidden_name(capsys):
    from lessons_lib.checks import names_used

    def uses_library(x):
        return np.sqrt(x)

    def nested(x):
        inner = lambda y: np.sqrt(y)  # noqa: E731
        return inner(x)

    def own(x):
        return x**0.5

    assert "sqrt" in names_used(uses_library) and "sqrt" in names_used(nested)
    assert names_used(np.ones(3)) == set()
    assert check(uses_library, np.sqrt, inputs=[np.ones(2)], forbid=["sqrt"]) is False
    out = capsys.readouterr().out
    assert "the exercise asks you not to use `sqrt`" in out
    assert check(nested, np.sqrt, inputs=[np.ones(2)], forbid=["sqrt"]) is False
    assert check(own, np.sqrt, inputs=[np.ones(2)], forbid=["sqrt"]) is True


def test_forbid_leaves_an_unfinished_stub_unattempted(capsys):
    def stub(x):
        raise NotImplementedError

    assert check(stub, np.sqrt, inputs=[np.ones(2)], forbid=["sqrt"]) is None
    assert "not attempted yet" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["sqrt", [1, 2]])
def test_forbid_must_be_a_list_of_names(bad):
    with pytest.raises(ValueError, match="forbid must be a list of names"):
        check(np.sqrt, np.sqrt, inputs=[np.ones(2)], forbid=bad)


def test_hints_come_one_at_a_time_idea_first(capsys):
    def wrong_for_hints(x):
        return x + 1

    hints = ("think about the idea", "write x, not x + 1")
    for _ in range(3):
        assert check(wrong_for_hints, lambda x: x, inputs=[np.ones(2)], hint=hints) is False
    out = capsys.readouterr().out.split("✗")[1:]
    assert "Hint: think about the idea" in out[0] and "closer hint" in out[0]
    assert "Hint: write x, not x + 1" in out[1] and "closer hint" not in out[1]
    assert "Hint: write x, not x + 1" in out[2]
    with pytest.raises(ValueError, match="hint must be a string or a tuple of strings"):
        check(wrong_for_hints, lambda x: x, inputs=[np.ones(2)], hint=3)


def test_max_memory_refuses_a_candidate_that_builds_a_large_intermediate(capsys):
    def with_one_hot(ids, n):
        return np.eye(n)[ids].sum(axis=0)

    def counting(ids, n):
        return np.bincount(ids, minlength=n).astype(float)

    ids = np.arange(1000) % 997
    cases = [(ids, 2000)]  # the one-hot matrix would take 1000 * 2000 * 8 bytes = 15 MiB
    assert check(counting, counting, inputs=cases, max_memory=2**20) is True
    assert check(with_one_hot, counting, inputs=cases, max_memory=2**20) is False
    out = capsys.readouterr().out
    assert "MiB at its peak, more than the 1.0 MiB this exercise allows" in out
    import tracemalloc

    assert not tracemalloc.is_tracing()  # the check leaves tracing as it found it
