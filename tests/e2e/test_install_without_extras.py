"""A plain ``pip install querybatch`` (no extras) asks for the extra a setting needs.

One real virtual environment per session holds querybatch and its core dependencies only
(at the versions of the test environment, installed by uv from its cache), and its own
``querybatch`` command is run the way an operator following the scale-out guide runs it.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOYMENTS = ("embedded",)
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
OPTIONAL = ("psycopg", "celery", "redis", "kombu", "duckdb", "duckdb_engine")
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with querybatch installed without any extra."""
    root = tmp_path_factory.mktemp("bare")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # The test environment's versions, so that uv installs from its cache and the bare
    # environment differs from the tested one only by the missing extras.
    pins = root / "constraints.txt"
    pins.write_text(
        "".join(
            f"{dist.metadata['Name']}=={dist.version}\n"
            for dist in importlib.metadata.distributions()
            if dist.metadata["Name"] and dist.metadata["Name"].lower() != "querybatch"
        )
    )
    install = [sys.executable, "-m", "uv", "pip", "install", "--quiet", "--compile-bytecode"]
    install += ["--python", str(venv / "bin" / "python"), "--constraint", str(pins)]
    built = subprocess.run(
        [*install, "--editable", str(REPO)], capture_output=True, text=True, timeout=600
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return venv


def run(venv: Path, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``querybatch *args`` of the bare environment, with only the given ``QB_`` settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QB_")}
    clean.update(QB_DATA_DIR=str(tmp_path / "data"), QB_PORT="0", COLUMNS="500", **env)
    return subprocess.run(
        [str(venv / "bin" / "querybatch"), *args],
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_asks_for(done: subprocess.CompletedProcess[str], extra: str) -> None:
    """One ``error:`` line naming the exact install command, exit code 2, no traceback."""
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert done.stderr.splitlines() == [done.stderr.strip()], done.stderr
    assert done.stderr.startswith("error: ")
    assert f"pip install 'querybatch[{extra}]'" in done.stderr
    assert done.returncode == 2


def test_the_bare_environment_has_querybatch_and_none_of_the_extras(bare_venv: Path) -> None:
    probe = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    found = subprocess.run(
        [str(bare_venv / "bin" / "python"), "-c", probe, "querybatch", *OPTIONAL],
        capture_output=True,
        text=True,
        check=True,
    )
    assert found.stdout.strip() == "['querybatch']"


def test_serve_on_a_postgresql_store_asks_for_the_postgres_extra(
    bare_venv: Path, tmp_path: Path
) -> None:
    done = run(bare_venv, tmp_path, "serve", QB_DATABASE_URL=POSTGRES_URL)
    assert_asks_for(done, "postgres")
    assert "QB_DATABASE_URL" in done.stderr


def test_serve_with_the_celery_executor_asks_for_the_celery_extra(
    bare_venv: Path, tmp_path: Path
) -> None:
    done = run(bare_venv, tmp_path, "serve", QB_EXECUTOR="celery", QB_BROKER_URL=REDIS_URL)
    assert_asks_for(done, "celery")


def test_the_worker_asks_for_the_celery_extra(bare_venv: Path, tmp_path: Path) -> None:
    done = run(bare_venv, tmp_path, "worker", QB_EXECUTOR="celery", QB_BROKER_URL=REDIS_URL)
    assert_asks_for(done, "celery")


def test_keys_list_on_a_postgresql_store_asks_for_the_postgres_extra(
    bare_venv: Path, tmp_path: Path
) -> None:
    done = run(bare_venv, tmp_path, "keys", "list", QB_DATABASE_URL=POSTGRES_URL)
    assert_asks_for(done, "postgres")


def test_a_files_source_asks_for_the_files_extra(bare_venv: Path, tmp_path: Path) -> None:
    sources = tmp_path / "sources.toml"
    sources.write_text(
        "[sources.SHOP]\n"
        'connector = "files"\n'
        f'path = "{tmp_path}/orders-*.csv"\n'
        'date_column = "day"\n'
        'account_column = "store_id"\n'
        'dimensions = ["day", "store_id"]\n'
        'metrics = { units = "sum" }\n'
    )
    done = run(bare_venv, tmp_path, "serve", "--sources", str(sources))
    assert_asks_for(done, "files")
    assert "sources.SHOP" in done.stderr
