"""The one device rule every package resolves ``--device`` with."""
import pytest

from hac_runtime.devices import parse_device, resolve_device
from hac_runtime.errors import HacError


@pytest.mark.parametrize("text, want", [("auto", ("auto", None)), (" CPU ", ("cpu", None)), ("cuda", ("cuda", None)),
                                        ("cuda:3", ("cuda", 3)), (None, ("auto", None))])
def test_parse(text, want):
    assert parse_device(text) == want


@pytest.mark.parametrize("text", ["gpu0", "cuda:", "cuda:x", "cuda:-1", "mps"])
def test_unknown_device_is_one_line(text):
    with pytest.raises(HacError, match=r"unknown device .*use auto, cpu, cuda or cuda:N"):
        parse_device(text)


def test_resolve():
    assert resolve_device("auto", cuda_available=False) == "cpu"
    assert resolve_device("auto", cuda_available=True) == "cuda:0"
    assert resolve_device("auto", cuda_available=True, local_rank=2) == "cuda:2"  # a DDP worker's own GPU
    assert resolve_device("cuda", cuda_available=True, local_rank=1) == "cuda:1"
    assert resolve_device("cuda:3", cuda_available=True, local_rank=1) == "cuda:3"  # written: kept
    assert resolve_device("cpu", cuda_available=True) == "cpu"


def test_cuda_asked_for_without_one_says_why():
    with pytest.raises(HacError, match=r"^device cuda:1 requested but the backend has none: install it$"):
        resolve_device("cuda:1", cuda_available=False, no_cuda="the backend has none: install it")
