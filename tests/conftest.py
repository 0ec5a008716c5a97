import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny matmuls on a shared 2-core machine run ~15x faster on one thread than fighting for two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
