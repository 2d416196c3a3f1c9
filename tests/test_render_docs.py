"""The benchmarks' figures in docs/performance.md are those of bench/results/*.json: rendered again in memory, the
page is unchanged, and every results file has its table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench.render_docs import MARKED, PAGES, RESULTS_DIR, render


def test_the_rendered_tables_are_fresh() -> None:
    for page in PAGES:
        text = page.read_text()
        assert render(text) == text, f"{page.name} is stale: run python -m bench.render_docs"


def test_every_results_file_is_rendered() -> None:
    marked = [m.group("name") for page in PAGES for m in MARKED.finditer(page.read_text())]
    assert sorted(marked) == sorted(path.stem for path in RESULTS_DIR.glob("*.json"))


def test_a_changed_figure_changes_the_page(tmp_path: Path) -> None:
    """The tables come from the files: a figure changed in a results file shows in the page rendered from it."""
    results = tmp_path / "results"
    shutil.copytree(RESULTS_DIR, results)
    rows = json.loads((results / "api.json").read_text())
    rows[0]["median_ms"] = 123456.5
    (results / "api.json").write_text(json.dumps(rows))
    text = PAGES[0].read_text()
    rendered = render(text, results)
    assert rendered != text and "123,456.5" in rendered
    assert render(rendered) == text
