"""Atomic writes: the final file appears only when its writer finished."""

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
