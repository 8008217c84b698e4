"""The install refusals read real package metadata: dist-info folders as pip writes them, in a folder of their own."""
import re

import pytest

from hac_runtime.engines.installs import (check_ort_install, check_tensorrt_install, gpu_install,
                                          installed_distributions, tensorrt_cuda_majors)
from hac_runtime.errors import HacError


def _site(tmp_path, *dists):
    """A site-packages folder holding ``dists`` ((name, version), …) as pip's dist-info metadata."""
    site = tmp_path / "site"
    for name, version in dists:
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return [str(site)]


def test_both_onnxruntime_builds_are_refused(tmp_path):
    site = _site(tmp_path, ("onnxruntime", "1.32.0"), ("onnxruntime-gpu", "1.32.0"))
    assert {"onnxruntime", "onnxruntime-gpu"} <= installed_distributions(site)
    with pytest.raises(HacError, match="both installed and overwrite one another's module") as err:
        check_ort_install(site)
    assert "pip uninstall -y onnxruntime onnxruntime-gpu" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("dists", [[("onnxruntime", "1.32.0")], [("onnxruntime_gpu", "1.32.0")], []])
def test_one_onnxruntime_build_passes(tmp_path, dists):
    check_ort_install(_site(tmp_path, *dists))


def test_this_environment_passes():
    check_ort_install()  # CI installs '.[cpu]' only
    check_tensorrt_install()


def test_tensorrt_for_another_cuda_than_torch_is_refused(tmp_path):
    site = _site(tmp_path, ("tensorrt-cu13", "10.13.0"), ("tensorrt_cu13_libs", "10.13.0"))
    assert tensorrt_cuda_majors(site) == {"13"}
    check_tensorrt_install(site, cuda_major="13")
    with pytest.raises(HacError, match=r"TensorRT here is built for CUDA 13, torch for CUDA 12") as err:
        check_tensorrt_install(site, cuda_major="12")
    assert "pip install -e '.[gpu,trt-cu12]'" in str(err.value)


def test_tensorrt_for_two_cudas_is_refused(tmp_path):
    site = _site(tmp_path, ("tensorrt-cu12", "10.9.0"), ("tensorrt-cu13", "10.13.0"))
    with pytest.raises(HacError, match=r"several CUDA majors are installed \(12, 13\)"):
        check_tensorrt_install(site, cuda_major="13")


def test_install_line_names_torch_cuda_major():
    assert gpu_install("13") == "pip install -e '.[gpu,trt-cu13]'"
    assert gpu_install("11") == "pip install -e '.[gpu,trt-cu12]'"  # no extra for it: the nearest one
    assert re.fullmatch(r"pip install -e '\.\[gpu,trt-cu1[23]\]'", gpu_install())


def test_pyproject_extras_pin_tensorrt_by_cuda_major():
    import tomllib
    from pathlib import Path

    extras = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert not any(d.startswith("tensorrt") for d in extras["gpu"] + extras["cpu"] + extras["dev"])
    for major in ("12", "13"):
        assert [d.split(">")[0] for d in extras[f"trt-cu{major}"]] == [f"tensorrt-cu{major}"]
    assert not any("onnxruntime" in d for d in extras["dev"])  # dev goes with cpu; gpu would clash
