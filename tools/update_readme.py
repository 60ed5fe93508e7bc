"""Rewrite the README's lesson table from the instructor runner's report (never type the figures by hand).

python -m lessons_lib.course run          # writes course-run/report.json
python tools/update_readme.py [course-run/report.json]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from lessons_lib.course import format_memory, format_runtime  # noqa: E402

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
}
START, END = "<!-- lesson-table:start -->", "<!-- lesson-table:end -->"


def render(report: dict) -> str:
    rows = {r["notebook"][:2]: r for r in report["notebooks"]}
    out = [
        f"Measured by `python -m lessons_lib.course run` on {report.get('cpu_count', '?')} CPU cores"
        f" ({report.get('date', '')[:10]}); peak memory is the kernel's resident set.",
        "",
        "| # | notebook | what you build | runtime | peak memory |",
        "|:--|:--|:--|--:|--:|",
    ]
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        key = nb.name[:2]
        r = rows.get(key)
        runtime = (
            "—"
            if r is None
            else format_runtime(r["wall_s"]) + ("" if r["status"] == "pass" else " (failed)")
        )
        memory = "—" if r is None else format_memory(r["peak_rss_mb"])
        out.append(
            f"| {key} | [{nb.stem}](notebooks/{nb.name}) | {WHAT.get(key, '')} | {runtime} | {memory} |"
        )
    return "\n".join(out)


def main() -> int:
    report_path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "course-run" / "report.json"
    report = json.loads(report_path.read_text())
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = re.sub(
        re.escape(START) + ".*?" + re.escape(END),
        f"{START}\n{render(report)}\n{END}",
        text,
        flags=re.S,
    )
    readme.write_text(new)
    print(render(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
