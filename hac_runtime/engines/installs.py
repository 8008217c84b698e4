"""Which packages make up a working GPU install, and the refusals when they do not fit together.

* ``onnxruntime`` and ``onnxruntime-gpu`` install the same ``onnxruntime`` module; with both present the
  one installed last wins file by file, so neither works as its name says. Refused, never guessed.
* TensorRT wheels are built per CUDA major (``tensorrt-cu12``, ``tensorrt-cu13``); one for another CUDA than
  the installed torch's loads a second CUDA runtime beside torch's. Refused with the right extra to install.

``path`` (a list of folders holding ``*.dist-info``) lets a caller look at an environment other than
the running one; by default it is ``sys.path``.
"""
from __future__ import annotations

import functools
import re
from importlib import metadata

from hac_runtime.errors import HacError

ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu")
CUDA_MAJORS = ("12", "13")  #: the CUDA majors the ``trt-cuNN`` extras exist for


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_distributions(path: list | None = None) -> set[str]:
    """Normalised names of the distributions installed in ``path`` (default: the running environment)."""
    found = metadata.distributions(path=path) if path is not None else metadata.distributions()
    return {_normal(d.metadata["Name"]) for d in found if d.metadata and d.metadata["Name"]}


@functools.lru_cache(maxsize=1)
def _running_distributions() -> frozenset:
    """The running environment's distributions, read once per process (engines check them at every load)."""
    return frozenset(installed_distributions())


def torch_cuda_major() -> str | None:
    """The CUDA major the installed torch was built for (None: a CPU build, or no torch)."""
    try:
        import torch
    except ImportError:
        return None
    return torch.version.cuda.split(".")[0] if torch.version.cuda else None


def gpu_install(cuda_major: str | None = None) -> str:
    """The install line for this machine's CUDA (the torch build's major; 12 when it cannot be told)."""
    major = cuda_major or torch_cuda_major()
    major = major if major in CUDA_MAJORS else "12"
    return f"pip install -e '.[gpu,trt-cu{major}]'"


def check_ort_install(path: list | None = None) -> None:
    """Refuse an environment holding both ONNX Runtime builds (they overwrite each other's module)."""
    names = installed_distributions(path) if path is not None else _running_distributions()
    if all(n in names for n in ORT_DISTRIBUTIONS):
        raise HacError("onnxruntime and onnxruntime-gpu are both installed and overwrite one another's module: "
                       "pip uninstall -y onnxruntime onnxruntime-gpu, then install one of them "
                       "(pip install -e '.[cpu]' or '.[gpu]')")


def tensorrt_cuda_majors(path: list | None = None) -> set[str]:
    """CUDA majors of the installed TensorRT wheels (``tensorrt-cu12``, ``tensorrt-cu13-libs``, …)."""
    majors = set()
    for name in installed_distributions(path):
        m = re.fullmatch(r"tensorrt-cu(\d+)(-libs|-bindings)?", name)
        if m:
            majors.add(m.group(1))
    return majors


def check_tensorrt_install(path: list | None = None, cuda_major: str | None = None) -> None:
    """Refuse TensorRT wheels built for another CUDA major than torch's, or for several at once."""
    majors = tensorrt_cuda_majors(path)
    torch_major = cuda_major or torch_cuda_major()
    if len(majors) > 1:
        raise HacError(f"TensorRT wheels for several CUDA majors are installed ({', '.join(sorted(majors))}): "
                       f"uninstall them and {gpu_install(torch_major)}")
    if majors and torch_major and majors != {torch_major}:
        raise HacError(f"TensorRT here is built for CUDA {majors.pop()}, torch for CUDA {torch_major}: "
                       f"pip uninstall the tensorrt wheels, then {gpu_install(torch_major)}")
