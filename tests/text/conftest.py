import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models: with other test workers on the 2 cores, two intra-op threads oversubscribe them (a tiny
    conv ran ~100x slower under load); one thread is also the faster setting here when idle."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
