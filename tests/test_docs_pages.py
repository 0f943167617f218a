"""The measured-results pages under docs/results/ are what docs/write_pages.py makes of the committed CSVs: a CSV
regenerated without its page, or a page edited by hand, fails here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _writer():
    spec = importlib.util.spec_from_file_location("write_pages", ROOT / "docs" / "write_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PAGES = _writer().pages()


@pytest.mark.parametrize("path", sorted(PAGES), ids=lambda p: p.name)
def test_each_generated_page_matches_its_csvs(path):
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing: run python docs/write_pages.py"
    assert path.read_text(encoding="utf-8") == PAGES[path], \
        f"{path.relative_to(ROOT)} no longer matches its CSVs: run python docs/write_pages.py"


def test_the_readme_links_every_generated_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in PAGES:
        if path.parent.name == "results" and path.name != "README.md":
            assert f"docs/results/{path.name}" in readme, path.name


def test_a_changed_csv_makes_its_page_stale(tmp_path, monkeypatch):
    writer = _writer()
    source = tmp_path / "t.csv"
    source.write_text("a,b\n1,2.5\n")
    page = writer._csv_page("T", source, "cmd", "intro")
    before = page()[1]
    source.write_text("a,b\n1,2.6\n")
    assert page()[1] != before and "2.6" in page()[1]
