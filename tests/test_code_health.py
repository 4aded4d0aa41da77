"""Rules of the codebase's shape (issue 10), checked so new work keeps them."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 600  # a module past this is split by responsibility (sizing/layouts/ is the model)


@pytest.mark.parametrize("package", ["pipelines", "sizing"])
def test_no_module_is_over_600_lines(package: str):
    long = {
        str(path.relative_to(REPO)): lines
        for path in (REPO / package).rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_sizing_is_a_pure_library():
    """sizing/ imports no Dagster and nothing of pipelines/: the engine runs anywhere Polars does."""
    offenders = [
        str(path.relative_to(REPO))
        for path in (REPO / "sizing").rglob("*.py")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.lstrip().startswith(("import dagster", "from dagster", "from pipelines", "import pipelines"))
    ]
    assert offenders == []


def test_the_runtime_package_does_not_carry_the_developer_tools():
    assert not (REPO / "pipelines" / "snapshot_tool.py").exists()
    assert not any("tools" in line for path in (REPO / "pipelines").rglob("*.py")
                   for line in path.read_text(encoding="utf-8").splitlines() if line.startswith(("from tools", "import tools")))
