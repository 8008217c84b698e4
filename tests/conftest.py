import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session", autouse=True)
def hac_cache(tmp_path_factory):
    """The parity clips hac-export builds without --calib go to a per-session cache, never to ~/.cache."""
    path = tmp_path_factory.mktemp("hac-cache")
    old = os.environ.get("HAC_CACHE")
    os.environ["HAC_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("HAC_CACHE", None)
    else:
        os.environ["HAC_CACHE"] = old


def pytest_collection_modifyitems(config, items):
    """Skip `gpu` tests, with the reason, where there is no CUDA device."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="no CUDA GPU on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
