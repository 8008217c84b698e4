"""hac-export --format triton: a model repository whose every config parses against Triton's own schema
(``model_config.proto``, from tritonclient), for the onnxruntime platform, the Python backend and TensorRT."""
import json

import pytest

from hac_export.api import export
from hac_export.cli import export_main
from hac_export.triton import MANIFEST_PARAMETER, config_text
from hac_runtime.engines import read_manifest

from conftest import BATCH, CLASSES, K, SIZE

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient not installed")
text_format = pytest.importorskip("google.protobuf.text_format")


def parse(text: str):
    return text_format.Parse(text, model_config_pb2.ModelConfig())


@pytest.fixture(scope="module")
def repos(tiny_ckpt, tmp_path_factory):
    out = {}
    for backend in ("onnxruntime", "python"):
        report = export(tiny_ckpt, formats="triton", fp16=True, batch=BATCH, out=tmp_path_factory.mktemp(backend),
                        triton_backend=backend, verbose=False)
        assert not report.failed, report.failure()
        out[backend] = report
    return out


@pytest.mark.parametrize("backend", ["onnxruntime", "python"])
def test_repository_layout_and_config(repos, backend):
    report = repos[backend]
    repo = report.path("triton")
    assert repo == report.out / "triton"
    assert sorted(p.name for p in repo.iterdir()) == ["hac_onnx_fp16", "hac_onnx_fp32"]  # every ONNX made
    for precision in ("fp32", "fp16"):
        folder = repo / f"hac_onnx_{precision}"
        cfg = parse((folder / "config.pbtxt").read_text())
        manifest = read_manifest(report.path("onnx", precision))
        assert cfg.name == folder.name and cfg.max_batch_size == 8  # --batch 1:4:8
        if backend == "python":
            assert cfg.backend == "python" and not cfg.platform
            assert (folder / "1" / "model.py").is_file()
            assert cfg.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
        else:
            assert cfg.platform == "onnxruntime_onnx" and not (folder / "1" / "model.py").exists()
            assert cfg.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
        assert cfg.instance_group[0].count == 1
        assert (folder / "1" / "model.onnx").read_bytes() == report.path("onnx", precision).read_bytes()
        (inp,), (out, alpha) = cfg.input, cfg.output
        assert inp.name == "clips" and inp.data_type == model_config_pb2.TYPE_FP32 and list(inp.dims) == [K, 3, SIZE, SIZE]
        assert out.name == "logits" and list(out.dims) == [len(CLASSES)] and out.label_filename == "labels.txt"
        # α of eq. 2, the model's second output, one weight per frame (issue 16)
        assert alpha.name == "alpha" and list(alpha.dims) == [K] and alpha.data_type == model_config_pb2.TYPE_FP32
        assert (folder / "labels.txt").read_text().splitlines() == CLASSES
        assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 8]
        assert 0 < cfg.dynamic_batching.max_queue_delay_microseconds <= 10_000
        carried = json.loads(cfg.parameters[MANIFEST_PARAMETER].string_value)
        assert carried == manifest == json.loads((folder / "hac.json").read_text())


def test_tensorrt_plan_config_parses_without_tensorrt(repos):
    """An engine's config, from a TensorRT manifest (profile 2..16): tensorrt_plan on the GPU, its profile's maximum."""
    manifest = read_manifest(repos["onnxruntime"].path("onnx"))
    manifest.update(format="trt", precision="fp16")
    manifest["input"]["batch"] = {"min": 2, "opt": 8, "max": 16}
    cfg = parse(config_text(manifest, "hac_trt_fp16", backend="python", kind="cpu"))
    assert cfg.platform == "tensorrt_plan" and cfg.max_batch_size == 16
    assert cfg.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert list(cfg.dynamic_batching.preferred_batch_size) == [8, 16]
    assert json.loads(cfg.parameters[MANIFEST_PARAMETER].string_value)["format"] == "trt"


def test_manifest_with_quotes_and_unicode_survives_the_config(repos):
    manifest = read_manifest(repos["onnxruntime"].path("onnx"))
    manifest["classes"] = ['sa"d', "joie\\", "überrascht"]
    cfg = parse(config_text(manifest, "m"))
    assert json.loads(cfg.parameters[MANIFEST_PARAMETER].string_value)["classes"] == manifest["classes"]


def test_reexport_replaces_the_repository_whole(repos, tiny_ckpt):
    report = repos["onnxruntime"]
    stale = report.out / "triton" / "hac_onnx_int8"
    stale.mkdir()
    again = export(tiny_ckpt, formats="triton", batch=BATCH, out=report.out, verbose=False)
    assert sorted(p.name for p in again.path("triton").iterdir()) == ["hac_onnx_fp32"]
    assert not list(report.out.glob(".partial-*")) and not (report.out / ".triton.old").exists()


@pytest.mark.parametrize("argv, words", [
    (["--triton-backend", "python"], "--triton-backend applies only to --format triton"),
    (["--format", "triton", "--triton-backend", "python", "--triton-kind", "gpu"], "runs ONNX Runtime on the CPU"),
])
def test_triton_option_refusals(tiny_ckpt, tmp_path, capsys, argv, words):
    with pytest.raises(SystemExit) as info:
        export_main([str(tiny_ckpt), *argv, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and err.startswith("hac-export: error: ") and "\n" not in err and words in err, err
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


@pytest.mark.parametrize("url, words", [
    ("http://127.0.0.1:99999/m", "port 99999 is out of range"),
    ("grpc://127.0.0.1:0/m", "port 0 is out of range"),
    ("grpc://127.0.0.1:8001", "not a Triton model address"),
    ("tcp://127.0.0.1:8001/m", "not a Triton model address"),
])
def test_bad_server_addresses_refused_in_one_line(url, words):
    from hac_runtime.engines.triton.loader import parse_url
    from hac_runtime.errors import HacError

    with pytest.raises(HacError, match=words):
        parse_url(url)
    assert parse_url("grpc://h/m").port == 8001 and parse_url("http://h/m/2").version == "2"
