"""The layer rules of docs/architecture.md hold, and breaking one on purpose is caught."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports with the project's contracts on the package found in ``package_parent``."""
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=package_parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """A copy of the querybatch package that a test may break."""
    shutil.copytree(
        ROOT / "querybatch", tmp_path / "querybatch", ignore=shutil.ignore_patterns("__pycache__")
    )
    return tmp_path


def test_the_code_keeps_every_import_contract() -> None:
    outcome = lint_imports(ROOT)
    assert outcome.returncode == 0, outcome.stdout + outcome.stderr
    assert "BROKEN" not in outcome.stdout


@pytest.mark.parametrize(
    ("module", "forbidden", "contract"),
    [
        (
            "api/routes/health.py",
            "from querybatch.store.store import Store",
            "The engine is the only door",
        ),
        (
            "cli/common.py",
            "from querybatch.connectors.registry import SourceRegistry",
            "The engine is the only door",
        ),
        ("domain/status.py", "from querybatch.engine import planner", "Imports point one way"),
        ("store/records.py", "from querybatch.api import errors", "Imports point one way"),
        (
            "engine/executors/base.py",
            "from querybatch.engine import scheduler",
            "Executors never reach up",
        ),
        ("domain/fields.py", "import sqlalchemy", "The domain imports no framework"),
        ("engine/planner.py", "import fastapi", "import no web or CLI framework"),
        ("store/jobs.py", "import celery", "Only the Celery executor imports Celery"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    package_copy: Path, module: str, forbidden: str, contract: str
) -> None:
    path = package_copy / "querybatch" / module
    source = path.read_text()
    # After the module docstring and ``from __future__``, so the module stays valid Python.
    head, _, rest = source.partition("from __future__ import annotations\n")
    path.write_text(f"{head}from __future__ import annotations\n{forbidden}  # noqa\n{rest}")
    outcome = lint_imports(package_copy)
    assert outcome.returncode != 0
    broken = [line for line in outcome.stdout.splitlines() if " BROKEN" in line]
    assert any(contract in line for line in broken), outcome.stdout
