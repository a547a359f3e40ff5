from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with a message saying what is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (public test data lives in ../shared beside the checkout)")
    return path


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    # The tests run small models on small tensors, where intra-op threads only spin-wait: on a shared
    # 2-core machine two OpenMP threads can be 100x slower than one. Tests that need more set it.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
