import torch

# Two cores are shared by the test run and anything else on the machine; one intra-op
# thread keeps timings predictable and avoids oversubscription.
torch.set_num_threads(1)


from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
