"""Atomic file writes: a file appears under its final name only once completely written.

Every table, checkpoint, inversion and data file of the study is written this way, so a
job killed at any moment never leaves a file that looks complete. The file gets the mode
a plain ``open(path, "w")`` would give it (0666 less the umask), not the temporary file's
private 0600, so colleagues sharing a results folder can read it. The mode is set once the
writer has finished: some writers (safetensors) replace the temporary file with their own,
which would drop a mode set before.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces ``path`` when the block ends without error.

    ``suffix`` is the temporary file's extension, for writers that append their own
    (``numpy.savez`` adds ``.npz`` to any other name). The parent folder is created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _new_file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _new_file_mode() -> int:
    """0666 less the process's umask: the mode ``open(path, "w")`` creates files with."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
