"""What a workflow job needs around the package's functions: its log, its device,
publishing a finished work file as a declared output, and the checksum that identifies a file.

Every script under ``workflow/scripts`` runs inside :func:`logged_to`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from ..atomic import atomic_path


def resolve_device(name: str) -> str:
    """'auto' means CUDA where there is one; anything else is passed to torch as is."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"config 'device: {name}' but torch sees no CUDA device; use 'device: auto' or 'cpu'")
    return name


def publish(source: str | os.PathLike, destination: str | os.PathLike) -> Path:
    """Copy a finished file of a job's work folder to its declared output path, atomically.

    A copy, never a link: a published output that is damaged or deleted later must not
    take the work folder's file (the state a rerun resumes from) with it.
    """
    destination = Path(destination)
    with atomic_path(destination, suffix=destination.suffix) as tmp:
        shutil.copyfile(source, tmp)
    return destination


def sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def logged_to(log_path: str | os.PathLike) -> Iterator[logging.Logger]:
    """Send a workflow job's stdout, stderr and logging to its rule's ``log:`` file."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", buffering=1) as log:
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield logging.getLogger("finetune_invariance")
        except BaseException:
            import traceback

            traceback.print_exc(file=log)
            raise
        finally:
            root.removeHandler(handler)
            sys.stdout.flush()
