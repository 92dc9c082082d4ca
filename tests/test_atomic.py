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


def _safetensors(tmp):
    import torch
    from safetensors.torch import save_file

    save_file({"weights": torch.zeros(3)}, tmp)


def _numpy(tmp):
    import numpy as np

    np.savez(tmp, images=np.zeros((2, 2), dtype=np.uint8))


def _pandas(tmp):
    import pandas as pd

    pd.DataFrame({"value": [1.0, 2.0]}).to_parquet(tmp)


def _matplotlib(tmp):
    from matplotlib.figure import Figure

    Figure().savefig(tmp, format="pdf")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
@pytest.mark.parametrize(
    "writer, suffix", [(_safetensors, ".tmp"), (_numpy, ".npz"), (_pandas, ".tmp"), (_matplotlib, ".tmp")]
)
def test_the_mode_is_the_umasks_whatever_the_writer_does_to_the_temporary_file(tmp_path, writer, suffix, umask, mode):
    # safetensors writes its own temporary file and renames it over the path it is given,
    # so a mode set on that path before the writer ran is lost.
    target = tmp_path / "result.bin"
    old = os.umask(umask)
    try:
        with atomic_path(target, suffix=suffix) as tmp:
            writer(tmp)
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == mode
    assert target.stat().st_size > 0
