"""Atomic writes: the final file appears only when its writer finished."""

import os
import stat

import pytest

from finetune_invariance.atomic import atomic_path


def test_file_appears_when_the_writer_finishes(tmp_path):
    target = tmp_path / "new" / "table.parquet"
    with atomic_path(target) as tmp:
        tmp.write_text("complete")
        assert not target.exists()
    assert target.read_text() == "complete"
    assert list(target.parent.iterdir()) == [target]


def test_a_failed_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "checkpoint.safetensors"
    target.write_text("previous")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("killed")
    assert target.read_text() == "previous"
    assert list(tmp_path.iterdir()) == [target]


def test_files_get_the_umask_mode_not_the_temporary_files_private_one(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "shared.txt") as tmp:
            tmp.write_text("x")
        os.umask(0o077)
        with atomic_path(tmp_path / "private.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "shared.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "private.txt").stat().st_mode) == 0o600
