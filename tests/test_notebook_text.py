"""No string escape has eaten a LaTeX backslash in a lesson.

A lesson text written through a Python string turns ``"$\\tau$"`` into a TAB followed by ``au`` (and
``\\to`` into TAB + ``o``, ``\\frac`` into a form feed + ``rac``, ``\\beta`` into a backspace +
``eta``...): Jupyter then shows "au" where τ should be. These tests reject the control characters
such escapes leave behind, in the lesson sources, in every cell of the built notebooks and in the
outputs that render as text, and they reject code-cell string literals (plot titles, printed
formulas) in which an escape swallows the backslash of a LaTeX command.
"""

import io
import re
import tokenize
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# every C0 control character except the newline (so TAB and CR are included), and DEL
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
# what the escapes \a \b \t \v \f make of a LaTeX backslash; looked for in printed (stream) output,
# where a carriage return (a progress bar) and ANSI colour codes are legitimate
ESCAPED_BACKSLASH = re.compile(r"[\x07\x08\x09\x0b\x0c]")
# display outputs that are rendered as text (images and widget state are not text)
TEXT_MIMETYPES = ("text/plain", "text/markdown", "text/latex", "text/html")

# LaTeX commands whose first letter makes an escape after a backslash (\a \b \f \n \r \t \v)
LATEX_COMMANDS = frozenset(
    """
    alpha approx arccos arcsin arctan arg ast asymp angle atop
    beta bar begin big Big bigg Bigg bigl bigr Bigl Bigr binom boldsymbol
    bot bullet backslash boxed bf
    frac forall flat frown footnotesize
    nabla nu neq ne not neg notin newline nolimits nearrow natural nmid
    rho right rightarrow rangle rceil rfloor rm rvert rVert
    tau theta times to top text textbf textit texttt textrm tfrac tilde triangle tan tanh tiny
    vec varepsilon varphi vartheta varrho varsigma varpi vee vert Vert vdots vspace
    """.split()
)
# an escape \a \b \f \n \r \t \v (not preceded by an escaped backslash) and the letters after it
_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\([abfnrtv][A-Za-z]*)")
_STRING_PREFIX = re.compile(r"^([A-Za-z]*)(['\"])")


def _shown(path):
    path = Path(path)
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def control_characters(text, pattern=CONTROL):
    """``line:column U+XXXX in '...context...'`` for each control character in ``text``."""
    found = []
    for m in pattern.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        column = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
        context = text[max(0, m.start() - 30) : m.end() + 30]
        found.append(f"{line}:{column} U+{ord(m.group()):04X} in {context!r}")
    return found


def swallowed_latex_commands(python_source):
    """``line N: \\tau in <literal>`` per non-raw literal whose escape eats a LaTeX backslash."""
    found = []
    for tok in tokenize.generate_tokens(io.StringIO(python_source).readline):
        if tok.type != tokenize.STRING:
            continue
        prefix = _STRING_PREFIX.match(tok.string)
        if prefix is None or "r" in prefix.group(1).lower():  # raw strings keep their backslashes
            continue
        for m in _ESCAPE.finditer(tok.string):
            if m.group(1) in LATEX_COMMANDS:
                found.append(f"line {tok.start[0]}: \\{m.group(1)} in {tok.string[:60]}")
    return found


def notebook_problems(path):
    """Control characters in the notebook's cell sources and in the text of its outputs."""
    nb = nbformat.read(path, as_version=4)
    problems = []
    for index, cell in enumerate(nb.cells):
        where = f"cell {index} ({cell.cell_type})"
        problems += [f"{where} source {p}" for p in control_characters(cell.source)]
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                text = output.get("text", "")
                problems += [
                    f"{where} {output['name']} {p}"
                    for p in control_characters(text, ESCAPED_BACKSLASH)
                ]
            for mimetype in TEXT_MIMETYPES:
                value = output.get("data", {}).get(mimetype)
                if value is not None:
                    text = "".join(value) if isinstance(value, list) else value
                    problems += [f"{where} {mimetype} {p}" for p in control_characters(text)]
    return problems


def test_there_are_lessons_to_check():
    assert len(SOURCES) >= 11 and len(NOTEBOOKS) >= 11


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_lesson_source_has_no_control_characters(path):
    with open(path, encoding="utf-8", newline="") as f:  # keep "\r\n" as written
        text = f.read()
    problems = control_characters(text)
    assert not problems, (
        f"{_shown(path)} holds control characters (a LaTeX '\\t...' written through a "
        "string escape becomes a TAB; write the backslash itself):\n" + "\n".join(problems)
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_cells_have_no_control_characters(path):
    problems = notebook_problems(path)
    assert not problems, (
        f"{_shown(path)} holds control characters (fix the source, then rebuild):\n"
        + "\n".join(problems)
    )


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_code_strings_keep_their_latex_backslashes(path):
    """A plot title or printed formula like "$\\tau$" must be raw (r"$\\tau$") or escape "\\"."""
    problems = swallowed_latex_commands(path.read_text(encoding="utf-8"))
    assert not problems, (
        f"{_shown(path)}: a string escape eats a LaTeX backslash "
        "(use a raw string r'...'):\n" + "\n".join(problems)
    )


def test_the_checks_catch_what_they_are_for():
    assert control_characters("$\tau$ and $\\tau$") == ["1:2 U+0009 in '$\\tau$ and $\\\\tau$'"]
    assert control_characters("line one\nline two") == []
    assert control_characters("a\r\nb") and control_characters("\x1b[31m")
    assert control_characters("progress 10/10\r", ESCAPED_BACKSLASH) == []
    source = (
        'a = "$\\tau \\to 0$"\n'  # TAB + "au", TAB + "o"
        'b = f"{x:.2f} $\\frac{{1}}{{2}}$"\n'  # form feed + "rac"
        'c = r"$\\tau$"\n'  # raw: fine
        'd = "$\\\\beta$"\n'  # escaped backslash: fine
        'e = "\\r\\n" + "\\nand then" + "a\\tb"\n'  # ordinary escapes: fine
        'f = rb"\\theta" + Rf"\\rho"\n'  # raw: fine
    )
    found = swallowed_latex_commands(source)
    assert [p.split(" in ")[0] for p in found] == [
        "line 1: \\tau",
        "line 1: \\to",
        "line 2: \\frac",
    ]
