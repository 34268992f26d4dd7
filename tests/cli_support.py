"""Running ``querybatch`` as its users do: the installed entry point, with only the QB_
variables a test gives (none inherited from the shell that runs the tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ENTRY_POINT = Path(sys.executable).with_name("querybatch")


def querybatch(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``querybatch ARGS`` with the environment of the tests minus every QB_ variable, plus
    ``env``; wide, so that a message is one line whatever its length."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QB_")}
    return subprocess.run(
        [str(ENTRY_POINT), *args],
        env={**clean, "COLUMNS": "500", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
