"""Files only their owner may read: the data directory (0700) and the SQLite files (0600).

The SQLite file holds the link-signing secret and every tenant's results, so it must not
follow the umask (0644 in a 0755 directory on most systems).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
_warned_dirs: set[str] = set()


def secure_directory(path: Path) -> None:
    """Create ``path`` for this user only (0700), or make it so if it is ours and more open.

    For directories querybatch owns (its data directory). A directory that belongs to
    someone else is left as it is, with a warning.
    """
    path = path.expanduser()
    if not path.exists():
        path.mkdir(parents=True, mode=PRIVATE_DIR, exist_ok=True)
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if not mode & 0o077:
        return
    if path.stat().st_uid != os.geteuid():
        _warn_open_directory(path, mode)
        return
    path.chmod(mode & ~0o077)
    log.warning(
        "the data directory %s was readable by others (mode %o): made it %o",
        path,
        mode,
        mode & ~0o077,
    )


def prepare_sqlite_file(database: Path) -> None:
    """Create the SQLite file 0600 before SQLite does (it would use the umask), and take
    group and world access from one left more open (SQLite gives its -wal and -shm files
    the mode of the database)."""
    parent = database.parent
    if not parent.exists():
        parent.mkdir(parents=True, mode=PRIVATE_DIR, exist_ok=True)
    else:
        mode = stat.S_IMODE(parent.stat().st_mode)
        if mode & 0o077:
            # Not ours to change (QB_DATABASE_URL may point anywhere): the files are 0600,
            # but their names and sizes show.
            _warn_open_directory(parent, mode)
    os.close(os.open(database, os.O_CREAT | os.O_RDWR, PRIVATE_FILE))
    for path in (database, *(Path(f"{database}{suffix}") for suffix in SQLITE_SIDE_FILES)):
        _make_private(path)


def _make_private(path: Path) -> None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if stat.S_IMODE(info.st_mode) & 0o077 and info.st_uid == os.geteuid():
        path.chmod(PRIVATE_FILE)


def _warn_open_directory(path: Path, mode: int) -> None:
    if str(path) not in _warned_dirs:
        _warned_dirs.add(str(path))
        log.warning(
            "the directory %s of the database is open to other users (mode %o); consider chmod 700",
            path,
            mode,
        )
