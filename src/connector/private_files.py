"""Folders and files only their owner can read: a Redis's data holds every contact's mapped personal data."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

__all__ = ["PRIVATE_UMASK", "is_private_dir", "lock_down", "private_dir", "write_private"]

# For a child that creates files (redis-server): 0600 files, 0700 folders, whatever our umask is.
PRIVATE_UMASK = 0o077


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) and make it 0700, also when it already existed."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def lock_down(folder: Path) -> None:
    """Make everything under ``folder`` private: folders 0700, files and sockets 0600 (symlinks untouched)."""
    for path in (folder, *folder.rglob("*")):
        with contextlib.suppress(FileNotFoundError):  # a server's temporary file may vanish meanwhile
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                continue
            os.chmod(path, 0o700 if stat.S_ISDIR(mode) else 0o600)


def is_private_dir(path: Path) -> bool:
    """A real folder (not a symlink) of ours that no one else may enter."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, created 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)
