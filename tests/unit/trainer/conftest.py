import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The machine has 2 cores shared with other test runs: keep torch to one thread."""
    torch.set_num_threads(1)
