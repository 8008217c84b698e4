"""The engine layer: one interface over ONNX Runtime, TensorRT and torch.export, and its refusals."""
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from hac_export.api import export
from hac_runtime.engines import load_engine, manifest_path, read_manifest
from hac_runtime.engines.base import sha256_of
from hac_runtime.engines.ort.loader import spins
from hac_runtime.errors import HacError
from hac_runtime.spec import Preprocess
from hac_train.checkpoint import load_checkpoint, save_checkpoint
from hac_train.model import HACConfig, HACNet

CLASSES = ["neutral", "happy", "sad"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(1)
    model = HACNet(HACConfig(backbone="resnet18", num_classes=3, k=3)).eval()
    return save_checkpoint(tmp_path_factory.mktemp("engines") / "ckpt.pt", model, CLASSES, Preprocess(64, 3))


@pytest.fixture(scope="module")
def exported(ckpt, tmp_path_factory):
    return export(ckpt, formats="onnx,pt2", fp16=True, batch="1:2:4", out=tmp_path_factory.mktemp("engines_out"),
                  verbose=False)


def _clips(b, seed=0):
    return np.random.default_rng(seed).standard_normal((b, 3, 3, 64, 64)).astype(np.float32)


def _copy(src, dst_dir, name=None):
    """Copy an artifact (and its manifest) into ``dst_dir``."""
    dst = dst_dir / (name or src.name)
    shutil.copy(src, dst)
    shutil.copy(manifest_path(src), manifest_path(dst))
    return dst


def test_ort_engine_facts_and_infer(exported, ckpt):
    model, _ = load_checkpoint(ckpt)
    with load_engine(exported.path("onnx"), device="cpu") as engine:
        assert type(engine).__name__ == "OrtEngine" and engine.kind == "ort"
        assert engine.providers == ["CPUExecutionProvider"] and engine.device == "cpu"
        assert engine.input_name == "clips" and engine.input_shape == ["batch", 3, 3, 64, 64]
        assert engine.classes == CLASSES and engine.precision == "fp32" and engine.format == "onnx"
        assert engine.preprocess.image_size == 64 and engine.preprocess.k == 3
        assert engine.manifest["status"] == "passed"
        x = _clips(5)  # ONNX takes any batch, beyond the parity batch too
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(engine.infer(x), ref, atol=1e-4, rtol=1e-4)
        out = engine.infer(torch.from_numpy(x))
        assert isinstance(out, torch.Tensor) and torch.allclose(out, torch.from_numpy(ref), atol=1e-4)


def test_every_artifact_returns_the_frames_alpha_beside_its_logits(exported, ckpt):
    """Eq. 2: α^i = σ(θᵀT^i) per frame, the artifact's second output, on every engine that runs it here;
    a batch padded up to a profile's minimum gives its own rows back (issue 16)."""
    model, _ = load_checkpoint(ckpt)
    x = _clips(3, 7)
    with torch.no_grad():
        _, attention = model(torch.from_numpy(x), return_attention=True)
    ref = attention["self"].numpy()
    for fmt, precision, atol in (("onnx", "fp32", 1e-5), ("onnx", "fp16", 2e-2), ("pt2", "fp32", 1e-5)):
        with load_engine(exported.path(fmt, precision), device="cpu") as engine:
            assert engine.output_names == ["logits", "alpha"]
            logits, alpha = engine.infer_all(x)
            assert logits.shape == (3, 3) and alpha.shape == (3, 3) and alpha.dtype == np.float32
            np.testing.assert_allclose(alpha, ref, atol=atol, err_msg=f"{fmt}/{precision}")
            _, alpha_t = engine.infer_all(torch.from_numpy(x))
            assert isinstance(alpha_t, torch.Tensor) and torch.allclose(alpha_t, torch.from_numpy(alpha), atol=1e-6)
            _, one = engine.infer_all(x[:1])
            np.testing.assert_allclose(one, alpha[:1], atol=1e-5)


def test_auto_picks_the_engine_of_the_format(exported):
    with load_engine(exported.path("pt2")) as engine:
        assert type(engine).__name__ == "TorchEngine" and engine.device == "cpu"
    with pytest.raises(HacError, match=r"hac.onnx is an onnx artifact: it runs on the ort or openvino engine, not trt "
                       r"\(export one it runs with hac-export --format trt\)"):
        load_engine(exported.path("onnx"), engine="trt")
    with pytest.raises(HacError, match="unknown engine"):
        load_engine(exported.path("onnx"), engine="tvm")
    with pytest.raises(HacError, match="unknown device"):
        load_engine(exported.path("onnx"), device="gpu0")


def test_refuses_artifact_without_manifest(exported, tmp_path):
    lone = tmp_path / "hac.onnx"
    shutil.copy(exported.path("onnx"), lone)
    with pytest.raises(HacError, match="no manifest hac.onnx.json"):
        load_engine(lone)


def test_refuses_modified_artifact(exported, tmp_path):
    path = _copy(exported.path("onnx"), tmp_path)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(HacError, match="does not match its manifest hac.onnx.json"):
        load_engine(path)


def test_refuses_manifest_of_another_artifact(exported, tmp_path):
    path = _copy(exported.path("onnx"), tmp_path)
    shutil.copy(manifest_path(exported.path("onnx", "fp16")), manifest_path(path))
    with pytest.raises(HacError, match="does not match its manifest"):
        load_engine(path)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(classes=["a", "b"]), "inconsistent input/output/classes/preprocess"),
    (lambda m: m.update(status="failed", parity={**m["parity"], "failures": ["cosine_min 0.9 < 0.999"]}),
     r"refused, failed parity at export \(max_abs .*, cosine .*: cosine_min 0.9 < 0.999\)"),
    (lambda m: m.pop("source_sha256"), "lacks source_sha256"),
    (lambda m: m.update(format="pt2"), "a pt2 manifest needs a .pt2 file"),
])
def test_refuses_bad_manifest(exported, tmp_path, edit, message):
    path = _copy(exported.path("onnx"), tmp_path)
    manifest = read_manifest(path)
    edit(manifest)
    manifest_path(path).write_text(json.dumps(manifest))
    with pytest.raises(HacError, match=message):
        load_engine(path)


def test_refuses_bad_input(exported):
    with load_engine(exported.path("pt2")) as engine:
        with pytest.raises(HacError, match=r"input must be \(B, 3, 3, 64, 64\)"):
            engine.infer(np.zeros((1, 5, 3, 64, 64), np.float32))
        with pytest.raises(HacError, match="float32"):
            engine.infer(np.zeros((1, 3, 3, 64, 64), np.float64))
        with pytest.raises(HacError, match="batch 5 exceeds its maximum batch 4"):
            engine.infer(_clips(5))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_requests_without_cuda_are_refused(exported):
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(HacError, match=re.escape("then pip install -e '.[gpu]'")):
            load_engine(exported.path("onnx"), device="cuda")
    with pytest.raises(HacError, match="torch sees no CUDA GPU"):
        load_engine(exported.path("pt2"), device="cuda")


def _engine_copied_from_a_gpu_machine(exported, tmp_path):
    """An engine file with its manifest, as copied over from the machine that built it."""
    path = tmp_path / "hac_b4_h100-80gb-hbm3_fp16.engine"
    path.write_bytes(b"serialized TensorRT plan bytes")
    manifest = read_manifest(exported.path("onnx"))
    manifest.update(format="trt", precision="fp16",
                    artifact={"file": path.name, "bytes": path.stat().st_size, "sha256": sha256_of(path)},
                    builder={"tensorrt": "10.13.0", "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"})
    manifest_path(path).write_text(json.dumps(manifest))
    return path


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_trt_engine_without_tensorrt_or_cuda_is_one_line(exported, tmp_path):
    path = _engine_copied_from_a_gpu_machine(exported, tmp_path)
    with pytest.raises(HacError) as err:
        load_engine(path)
    msg = str(err.value)
    assert "\n" not in msg and "CUDA GPU" in msg and re.search(r"pip install -e '\.\[gpu,trt-cu1[23]\]'", msg)
    with pytest.raises(HacError, match="run on a CUDA GPU, not on the CPU"):
        load_engine(path, device="cpu")


def test_engines_import_no_backend():
    code = ("import sys, hac_runtime.engines, hac_runtime.engines.base; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'tensorrt', 'hac_train') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- GPU: run wherever a CUDA GPU (and TensorRT, where named) exist -------------------------------------------

def _require_tensorrt():
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pytest.skip("tensorrt is not installed (pip install -e '.[gpu,trt-cuNN]')")


@pytest.mark.gpu
@pytest.mark.slow
def test_trt_engines_build_match_and_take_cuda_tensors(ckpt, tmp_path):
    _require_tensorrt()
    import tensorrt

    report = export(ckpt, formats="trt", fp16=True, batch="1:2:4", out=tmp_path, verbose=False)
    path = report.path("trt", "fp16")
    assert re.fullmatch(r"hac_b4_[a-z0-9-]+_fp16\.engine", path.name)
    m = read_manifest(path)
    assert m["builder"]["tensorrt"] == tensorrt.__version__
    assert m["builder"]["gpu"] == torch.cuda.get_device_name(0) and m["builder"]["compute_capability"]
    assert m["parity"]["passed"] and m["parity"]["cosine_min"] >= 0.999
    model, _ = load_checkpoint(ckpt)
    with load_engine(path) as engine:
        assert engine.device == "cuda:0"
        for b in (1, 3, 4):
            x = _clips(b, b)
            with torch.no_grad():
                ref = model(torch.from_numpy(x)).numpy()
            out = engine.infer(x)
            cos = (out * ref).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
            assert cos.min() >= 0.999
            got = engine.infer(torch.from_numpy(x).cuda())
            assert got.is_cuda and torch.allclose(got.cpu(), torch.from_numpy(out), atol=1e-3)
    m["builder"]["gpu"] = "Another GPU"
    manifest_path(path).write_text(json.dumps(m))
    with pytest.raises(HacError, match="rebuild it here with hac-export --format trt"):
        load_engine(path)


@pytest.mark.gpu
def test_ort_cuda_io_binding(exported, ckpt):
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed (pip install -e '.[gpu]')")
    model, _ = load_checkpoint(ckpt)
    x = _clips(3)
    with torch.no_grad():
        ref = model(torch.from_numpy(x))
    with load_engine(exported.path("onnx"), device="cuda") as engine:
        assert engine.providers[0] == "CUDAExecutionProvider"
        out = engine.infer(torch.from_numpy(x).cuda())
        assert out.is_cuda and torch.allclose(out.cpu(), ref, atol=1e-3, rtol=1e-3)


@pytest.mark.gpu
@pytest.mark.slow
def test_trt_cuda_graph_replay_per_batch_bucket(ckpt, tmp_path):
    _require_tensorrt()
    report = export(ckpt, formats="trt", batch="1:2:4", out=tmp_path, verbose=False)
    path = report.path("trt", "fp32")
    with load_engine(path) as plain, load_engine(path, cuda_graph=True) as graphed:
        assert graphed.buckets == [1, 2, 4] and graphed.providers == ["tensorrt+cudagraph"]
        for b in (1, 3, 4, 3, 2):  # 3 pads into the bucket of 4; buckets are reused
            x = _clips(b, 10 + b)
            np.testing.assert_allclose(graphed.infer(x), plain.infer(x), atol=1e-4)
            got = graphed.infer(torch.from_numpy(x).cuda())
            assert got.is_cuda and got.shape == (b, 3)
            _, alpha = graphed.infer_all(x)  # α (eq. 2) comes out of the graph too
            np.testing.assert_allclose(alpha, plain.infer_all(x)[1], atol=1e-4)
        assert sorted(graphed._graphs._graphs) == [1, 2, 4]  # every bucket captured at load
        x = _clips(4, 1)
        _, stages = graphed.infer_timed(x)
        assert set(stages) == {"h2d_ms", "compute_ms", "d2h_ms"} and all(v >= 0 for v in stages.values())


def test_cuda_graph_is_for_tensorrt_and_torch_on_cuda(exported):
    with pytest.raises(HacError, match="applies to the trt and torch engines on a CUDA GPU, not to ort"):
        load_engine(exported.path("onnx"), cuda_graph=True)
    with pytest.raises(HacError, match="CUDA-graph replay needs a CUDA device, not cpu"):
        load_engine(exported.path("pt2"), device="cpu", cuda_graph=True)


def test_stage_timing_needs_an_engine_stream(exported):
    with load_engine(exported.path("onnx"), device="cpu") as engine, \
            pytest.raises(HacError, match="runs on no CUDA stream of its own"):
        engine.infer_timed(_clips(1))


def _same_from_many_threads(engine, threads: int = 4, calls: int = 12) -> None:
    """Each of ``threads`` threads infers its own batch ``calls`` times on one engine: every answer equals that
    batch's answer from a single caller, and no call fails (an app may share one engine across threads)."""
    import threading

    batches = [_clips(1 + i % 2, 40 + i) for i in range(threads)]
    alone = [engine.infer(x) for x in batches]
    wrong, failed = [], []
    start = threading.Barrier(threads)

    def caller(i):
        start.wait()
        for _ in range(calls):
            try:
                got = engine.infer(batches[i])
            except Exception as e:  # noqa: BLE001 - recorded, the test says which
                failed.append(f"{type(e).__name__}: {e}")
                return
            got = got.cpu().numpy() if hasattr(got, "cpu") else got
            if not np.allclose(got, alone[i], atol=1e-5):
                wrong.append(i)

    workers = [threading.Thread(target=caller, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not any(w.is_alive() for w in workers), f"{engine.kind}: a caller never returned"
    assert not failed and not wrong, (engine.kind, failed[:2], wrong[:5])


@pytest.mark.parametrize("fmt, engine", [("onnx", "ort"), ("pt2", "torch"), ("onnx", "openvino")])
def test_one_engine_answers_several_threads_at_once(exported, fmt, engine):
    """OpenVINO's single infer request failed a second caller with "Infer Request is busy"; each thread now
    has its own (the compiled model is shared)."""
    if engine == "openvino":
        pytest.importorskip("openvino", reason="OpenVINO not installed (pip install -e '.[openvino]')")
    with load_engine(exported.path(fmt), engine, "cpu") as e:
        _same_from_many_threads(e)


def test_cpu_sessions_share_one_arena_and_answer_as_alone(exported, ckpt):
    """Every CPU session allocates from the process's one ONNX Runtime arena (grown by what is asked, not to the
    next power of two: ``ort.loader.cpu_session_options``); two engines at once, FP32 and FP16 ONNX, each from
    two threads, answer as eager PyTorch does, and one closed frees nothing the other needs."""
    model, _ = load_checkpoint(ckpt)
    x = _clips(4, 7)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    fp32, fp16 = (load_engine(exported.path("onnx", p), "ort", "cpu") for p in ("fp32", "fp16"))
    try:
        for e in (fp32, fp16):
            options = e.session.get_session_options()
            assert options.get_session_config_entry("session.use_env_allocators") == "1"
            assert spins(e.session)  # ORT's default; the pipeline asks for sleeping workers
        import threading

        failures = []

        def both_threads(engine):
            try:
                _same_from_many_threads(engine, 2, 6)
            except Exception as e:  # noqa: BLE001 - a thread's failure, a wrong answer or an error, fails the test
                failures.append(f"{engine.precision}: {type(e).__name__}: {e}")

        calls = [threading.Thread(target=both_threads, args=(e,)) for e in (fp32, fp16)]
        for t in calls:
            t.start()
        for t in calls:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in calls) and not failures, failures
        np.testing.assert_allclose(fp16.infer(x), ref, atol=2e-2)
        fp16.close()
        np.testing.assert_allclose(fp32.infer(x), ref, atol=1e-4, rtol=1e-4)
    finally:
        fp32.close()
        fp16.close()


def test_openvino_frees_every_threads_infer_request_on_close(exported):
    """Each thread's request is the engine's to free, in the thread that closes it: freed as a daemon thread
    ended (thread-local storage), it raced Python's shutdown and aborted hac-run under load (exit -6, 3 runs
    in 12 with two busy processes beside it; 0 in 16 since)."""
    import threading

    pytest.importorskip("openvino", reason="OpenVINO not installed (pip install -e '.[openvino]')")
    e = load_engine(exported.path("onnx"), "openvino", "cpu")
    worker = threading.Thread(target=e.infer, args=(_clips(1),))
    worker.start()
    worker.join()
    assert len(e._requests) == 2  # the loading thread's and the ended worker's, both still the engine's
    e.close()
    assert e._requests == {}
    with pytest.raises(HacError, match="the openvino engine is closed"):
        e.infer(_clips(1))


@pytest.mark.gpu
def test_graphed_engines_take_turns_between_threads(exported):
    """A replayed graph reads one static input: two callers at once would overwrite each other's batch."""
    with load_engine(exported.path("pt2"), device="cuda", cuda_graph=True) as graphed:
        assert graphed.serial
        _same_from_many_threads(graphed)


@pytest.mark.gpu
def test_torch_cuda_graphs_captured_at_load_while_another_thread_uses_cuda(exported):
    """Capture (thread_local) is not broken by another thread's CUDA work; replay equals plain runs."""
    import threading

    stop = threading.Event()

    def busy():
        a = torch.randn(512, 512, device="cuda")
        while not stop.is_set():
            a = (a @ a).clamp_(-1, 1)
        torch.cuda.synchronize()

    worker = threading.Thread(target=busy)
    worker.start()
    try:
        graphed = load_engine(exported.path("pt2"), device="cuda", cuda_graph=True)
    finally:
        stop.set()
        worker.join()
    with graphed, load_engine(exported.path("pt2"), device="cuda") as plain:
        assert graphed.providers[0] == "torch.export+cudagraph", graphed.providers
        assert "TF32 off" in graphed.providers[1]
        for b in (1, 3, 4):
            x = _clips(b, 20 + b)
            np.testing.assert_allclose(graphed.infer(x), plain.infer(x), atol=1e-4)
        _, stages = plain.infer_timed(_clips(2))
        assert stages["compute_ms"] > 0


@pytest.mark.gpu
def test_a_failed_capture_runs_plainly_and_says_why():
    from hac_runtime.engines.cuda_graphs import GraphBuckets

    def make(bucket):
        x = torch.zeros(bucket, device="cuda")
        return x, lambda: x + float(x.sum().item())  # .item() syncs the host: not capturable

    graphs = GraphBuckets(torch.cuda.Stream(), [1, 2], make)
    why = graphs.capture()
    assert why and why.startswith("batch 1: ") and not graphs._graphs


def test_batches_below_a_profile_minimum_are_padded_not_refused(exported, tmp_path):
    """A profile of MIN 4 (--batch 4:8:16): the pipeline's leftover batches of 1-3 run, padded and sliced back."""
    path = _copy(exported.path("onnx"), tmp_path)
    manifest = read_manifest(path)
    manifest["input"]["batch"] = {"min": 4, "opt": 8, "max": 16}
    manifest_path(path).write_text(json.dumps(manifest))
    x = _clips(6, seed=3)
    with load_engine(path) as engine:
        assert engine.min_batch == 4
        full = engine.infer(x)
        for b in (1, 3):
            out = engine.infer(x[:b])
            assert out.shape == (b, 3)
            np.testing.assert_allclose(out, full[:b], atol=1e-5, rtol=1e-5)
        with pytest.raises(HacError, match="exceeds its maximum batch 16"):
            engine.infer(_clips(17))


def test_tf32_mode_sets_both_flags_and_restores_them_even_on_error():
    from hac_runtime.engines.cuda_graphs import tf32_mode, tf32_state

    before = tf32_state()
    with tf32_mode(True):
        assert tf32_state() == {"matmul": True, "cudnn": True}
        with tf32_mode(False):
            assert tf32_state() == {"matmul": False, "cudnn": False}
        assert tf32_state() == {"matmul": True, "cudnn": True}
    assert tf32_state() == before
    with pytest.raises(ZeroDivisionError), tf32_mode(not before["cudnn"]):
        1 / 0
    assert tf32_state() == before


def test_graph_buckets_cover_the_profile():
    from hac_runtime.engines.cuda_graphs import batch_buckets

    assert batch_buckets(1, 16) == [1, 2, 4, 8, 16]
    assert batch_buckets(4, 12) == [4, 8, 12]  # a profile minimum above 1, a maximum not a power of two
    assert batch_buckets(3, 3) == [3]
