"""``python -m querybatch.engine.executors.worker_process CHUNKS LOG_LEVEL NODE``: one
worker process, as ``querybatch worker`` starts each once its checks passed.

It runs the Celery worker alone, without the command line's modules (about 25 MB less per
process than ``querybatch worker --no-supervise``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from querybatch import logs
from querybatch.engine.executors.celery import run_worker
from querybatch.settings import Settings


def main(argv: Sequence[str]) -> None:
    """Run the worker process ``argv`` describes: chunks at once, log level, node name."""
    chunks, log_level, node = argv
    settings = Settings()
    logs.install(settings.log_format, log_level)
    run_worker(settings, int(chunks), log_level, node)


if __name__ == "__main__":
    main(sys.argv[1:])
