import pytest
import torch


@pytest.fixture(autouse=True)
def _single_torch_thread():
    """The tests' models are tiny: threads gain nothing and stall when CI's 2 cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _work_in_a_temporary_directory(tmp_path, monkeypatch):
    """Trainers default to writing checkpoints and logs under the working directory: keep them out of the repo."""
    monkeypatch.chdir(tmp_path)
