"""The failure-model page (docs/FAILURE_MODEL.md) names tests that exist: every
`tests/FILE.py::TEST` it cites is a test function of that file. The README links the page and
documents every exit code ray_job/outcome.py returns."""
from __future__ import annotations

import re
from pathlib import Path

from ray_job.outcome import EXIT_DATA, EXIT_REFUSED, EXIT_SIGNAL, EXIT_STORAGE, EXIT_UNEXPECTED

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "FAILURE_MODEL.md"
CITED = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def defines(path: Path, name: str) -> bool:
    return path.is_file() and re.search(rf"^(async )?def {name}\(", path.read_text(), re.M)


def rows() -> list[str]:
    return [line for line in PAGE.read_text().splitlines() if line.startswith("| ")]


def test_every_test_the_failure_model_cites_exists():
    cited = missing = 0
    for row in rows():
        for file, name in CITED.findall(row):
            cited += 1
            if not defines(ROOT / file, name):
                missing += 1
                print(f"not found: {file}::{name}")
    assert cited > 50 and missing == 0


def test_every_row_cites_a_test_and_the_readme_links_the_page():
    for row in rows()[2:]:
        if not row.startswith("| fault") and not set(row) <= set("|- ") and \
                not re.match(r"\| \d", row):
            assert CITED.search(row), row
    assert "docs/FAILURE_MODEL.md" in (ROOT / "README.md").read_text()


def test_the_readme_documents_every_exit_code():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Exit codes", 1)[1].split("\n#", 1)[0]
    for code in (0, EXIT_DATA, EXIT_REFUSED, EXIT_STORAGE, EXIT_UNEXPECTED,
                 *EXIT_SIGNAL.values()):
        assert re.search(rf"(^|\D){code}(\D|$)", section), code
