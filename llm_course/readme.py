"""The README's lesson table, rendered from the runner's ``report.json`` (no figure typed by hand).

Usage::

    llm-course run                       # writes course-run/report.json
    llm-course readme [report.json]      # rewrites the table between the two markers in README.md

The table sits between ``<!-- lesson-table:start -->`` and ``<!-- lesson-table:end -->``; everything
outside the markers is left as it is. It has one row per notebook ``notebooks/NN_*.ipynb`` (a
notebook missing from the report gets ``—``), the description of what the lesson builds
(:data:`WHAT`), the runtime and the kernel's peak memory.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from llm_course.paths import NOTEBOOKS_DIR, README

#: What each lesson builds (the table's third column), by two-digit prefix.
WHAT = {
    "00": "the article's whole pipeline on one real sentence, shapes at every arrow",
    "01": "a cleaner, a character tokenizer and a BPE tokenizer trained on Tiny Shakespeare",
    "02": "embedding lookup = one-hot × E; similarity of trained vs random vectors; weight tying",
    "03": "sinusoidal encoding (and its rotation property), learned positions, RoPE",
    "04": "scaled dot-product attention by hand; why √d_k; the causal mask; errata of the article",
    "05": "multi-head attention, checked against keras.layers.MultiHeadAttention",
    "06": "the position-wise feed-forward network; ReLU vs GELU",
    "07": "LayerNorm and its gradient; residual streams; pre-norm vs post-norm",
    "08": "the Transformer block and a tiny GPT forward pass; parameter counts",
    "09": "training a 0.8 M-parameter GPT on Tiny Shakespeare",
    "10": "greedy, temperature, top-k, top-p sampling; a KV cache",
    "11": "an encoder with a padding mask; SMS spam against naive Bayes; masked-LM pretraining",
    "12": "extractive question answering on bAbI; span decoding; is attention on the evidence?",
    "13": "English → Spanish with an encoder–decoder; masks, beam search, KV cache, BLEU",
    "14": "FLOPs, bytes, KV cache: counted and measured; T²; GRU vs block; scaling; tf.distribute",
    "15": "int8/int4 quantization, LiteRT int8, pruning (masks, FFN neurons), distillation",
}
START, END = "<!-- lesson-table:start -->", "<!-- lesson-table:end -->"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"


def format_runtime(seconds: float) -> str:
    """``"45 s"``, ``"2 min 05 s"`` (whole seconds, at least 1)."""
    s = max(1, round(seconds))
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60:02d} s"


def format_memory(mb: float) -> str:
    """``"412 MB"``, ``"1.3 GB"``."""
    return f"{mb:.0f} MB" if mb < 1024 else f"{mb / 1024:.1f} GB"


def load_report(report: str | Path | dict[str, Any]) -> dict[str, Any]:
    """``report.json`` as a dict, from its path or from the already-loaded dict."""
    if isinstance(report, dict):
        return report
    return json.loads(Path(report).read_text(encoding="utf-8"))


def render_table(
    report: str | Path | dict[str, Any],
    notebooks_dir: str | Path = NOTEBOOKS_DIR,
    readme_dir: str | Path | None = None,
) -> str:
    """The lesson table in Markdown: a "Measured by" line, then a row per notebook of the folder.

    Args:
        report: ``report.json`` (path or loaded dict) written by ``llm-course run``.
        notebooks_dir: the folder whose ``NN_*.ipynb`` make the rows.
        readme_dir: the folder the notebook links are relative to (default: the README's, the
            repository root).

    Returns:
        The header line, a blank line and the table ``| # | notebook | what you build | runtime |
        peak memory |``; a failed notebook's runtime says ``(failed)``, a notebook missing from the
        report gets ``—``.
    """
    data = load_report(report)
    rows = {r["notebook"][:2]: r for r in data.get("notebooks", [])}
    base = Path(readme_dir) if readme_dir is not None else README.parent
    out = [
        f"Measured by `llm-course run` on {data.get('cpu_count', '?')} CPU cores"
        f" ({str(data.get('date', ''))[:10]}); peak memory is the kernel's resident set.",
        "",
        "| # | notebook | what you build | runtime | peak memory |",
        "|:--|:--|:--|--:|--:|",
    ]
    for nb in sorted(Path(notebooks_dir).glob(NOTEBOOK_GLOB)):
        key = nb.name[:2]
        r = rows.get(key)
        if r is None:
            runtime = memory = "—"
        else:
            runtime = format_runtime(r["wall_s"]) + ("" if r["status"] == "pass" else " (failed)")
            memory = format_memory(r["peak_rss_mb"])
        link = Path(os.path.relpath(nb, base)).as_posix()
        out.append(f"| {key} | [{nb.stem}]({link}) | {WHAT.get(key, '')} | {runtime} | {memory} |")
    return "\n".join(out)


def replace_table(text: str, table: str) -> str:
    """``text`` with whatever lies between the two markers replaced by ``table``.

    Raises:
        ValueError: the markers are missing, or not once each in this order.
    """
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"the README must hold {START} and then {END}, once each")
    pattern = re.escape(START) + ".*?" + re.escape(END)
    return re.sub(pattern, lambda _: f"{START}\n{table}\n{END}", text, flags=re.S)


def update_readme(
    report: str | Path | dict[str, Any],
    readme: str | Path = README,
    notebooks_dir: str | Path = NOTEBOOKS_DIR,
) -> str:
    """Rewrite the lesson table of ``readme`` from ``report`` and return the new table."""
    readme = Path(readme)
    table = render_table(report, notebooks_dir, readme_dir=readme.parent)
    text = readme.read_text(encoding="utf-8")
    new = replace_table(text, table)
    if new != text:
        readme.write_text(new, encoding="utf-8")
    return table
