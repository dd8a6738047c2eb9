"""Run every ``>>>`` example of the documentation pages through doctest.

One test per page: a page that drifts from the code fails here. Pages without
examples are not collected. Warnings follow the project's pytest settings
(``StructureLostWarning`` is an error). Generated files (``docs/_generated``, the
autosummary stubs, the build output) are not pages and are skipped.
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
SKIP_DIRS = {"_build", "_generated", "generated", "_static", "_templates", "_ext"}


def _pages():
    if not DOCS.is_dir():
        return []
    pages = []
    for path in sorted(DOCS.rglob("*.rst")):
        rel = path.relative_to(DOCS)
        if SKIP_DIRS & set(rel.parts[:-1]):
            continue
        if re.search(r"^\s*>>> ", path.read_text(encoding="utf-8"), flags=re.M):
            pages.append(path)
    return pages


PAGES = _pages()


def test_guide_pages_have_examples():
    guide = {p.relative_to(DOCS).as_posix() for p in PAGES}
    assert any(name.startswith("guide/") for name in guide), (
        "no doctested guide page found under docs/guide/"
    )


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(DOCS).as_posix() for p in PAGES])
def test_page_examples(page):
    import numpy as np

    printoptions = np.get_printoptions()
    try:
        result = doctest.testfile(
            str(page),
            module_relative=False,
            optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
            raise_on_error=False,
            verbose=False,
            report=True,
            encoding="utf-8",
        )
    finally:
        np.set_printoptions(**printoptions)
    assert result.attempted > 0, f"{page.name}: no examples were run"
    assert result.failed == 0, f"{page.name}: {result.failed} of {result.attempted} examples failed"
