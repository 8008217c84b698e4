"""hac-run --engine triton against a real Triton Inference Server on 127.0.0.1 (its Python backend running
the exported ONNX with ONNX Runtime): the same results as the local ORT engine; bad addresses, foreign or
mismatched models, and a server killed mid-run, each one line with the right exit code, nothing lost."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures_triton import TritonServer, free_port, server_venv
from fixtures_video import photo, write_face_video

pytest.importorskip("tritonclient.grpc", reason="tritonclient not installed (pip install -e '.[triton]')")
pytestmark = pytest.mark.slow
HAC_RUN = str(Path(sys.executable).with_name("hac-run"))


def hac_run(*args, timeout=300):
    return subprocess.run([HAC_RUN, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def one_line(p, code, *words):
    err = p.stderr.strip().splitlines()
    assert p.returncode == code, p.stderr
    assert "Traceback" not in p.stderr and err[-1].startswith("hac-run: error: "), p.stderr
    for w in words:
        assert w in err[-1], err[-1]
    return err[-1]


@pytest.fixture(scope="module")
def venv():
    path, why = server_venv()
    if path is None:
        pytest.skip(why)
    return path


@pytest.fixture(scope="module")
def repo(artifacts, tmp_path_factory):
    """The tiny model as a Python-backend repository, plus three models the client must refuse."""
    from hac_export.api import export

    out = tmp_path_factory.mktemp("triton")
    report = export(artifacts / "ckpt.pt", formats="triton", triton_backend="python", batch="1:4:8", out=out,
                    verbose=False)
    repo = report.path("triton")
    good = repo / "hac_onnx_fp32"
    relabelled = repo / "relabelled"  # another model's labels packed with it
    shutil.copytree(good, relabelled)
    (relabelled / "labels.txt").write_text("neutral\nhappy\nsad\n")
    reshaped = repo / "reshaped"  # served as k=5 while its manifest says k=3
    shutil.copytree(good, reshaped)
    for folder in (relabelled, reshaped):
        cfg = folder / "config.pbtxt"
        cfg.write_text(cfg.read_text().replace('name: "hac_onnx_fp32"', f'name: "{folder.name}"'))
    cfg = reshaped / "config.pbtxt"
    cfg.write_text(cfg.read_text().replace("dims: [ 3, 3, 64, 64 ]", "dims: [ 5, 3, 64, 64 ]"))
    foreign = repo / "foreign"  # a model that hac-export did not pack: no manifest in its config
    shutil.copytree(good, foreign)
    cfg = foreign / "config.pbtxt"
    cfg.write_text("\n".join(ln for ln in cfg.read_text().splitlines() if not ln.startswith("parameters"))
                   .replace('name: "hac_onnx_fp32"', 'name: "foreign"') + "\n")
    return repo


@pytest.fixture(scope="module")
def server(venv, repo):
    with TritonServer(venv, repo) as srv:
        yield srv


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("v") / "face.avi"
    write_face_video(path, photo("obama.jpg"), n_frames=40, fps=10.0)
    return path


def results(p):
    return [json.loads(line) for line in p.stdout.splitlines()]


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_same_results_as_the_local_ort_engine(server, artifacts, video, protocol):
    url = server.grpc_url("hac_onnx_fp32") if protocol == "grpc" else server.http_url("hac_onnx_fp32")
    remote = hac_run(video, "--model", url, "--engine", "triton", "--policy", "window")
    local = hac_run(video, "--model", artifacts / "hac.onnx", "--engine", "ort", "--policy", "window")
    assert remote.returncode == 0 and local.returncode == 0, (remote.stderr, local.stderr)
    assert "engine hac_onnx_fp32 on triton/127.0.0.1:" in remote.stderr
    assert f"providers triton-{protocol}-python" in remote.stderr
    a, b = results(remote), results(local)
    assert len(a) == len(b) >= 3
    for x, y in zip(a, b):
        assert (x["source"], x["frame_start"], x["frame_end"], x["label"]) == \
               (y["source"], y["frame_start"], y["frame_end"], y["label"])
        assert max(abs(x["probs"][c] - y["probs"][c]) for c in x["probs"]) < 1e-5  # ORT FP32 on both sides


def test_no_server_wrong_model_other_classes_mismatch_foreign(server, video):
    port = server.grpc_port
    closed = f"grpc://127.0.0.1:{free_port()}/hac_onnx_fp32"
    one_line(hac_run(video, "--model", closed, "--timeout", "3"), 2, "no Triton server answers at")
    one_line(hac_run(video, "--model", f"grpc://127.0.0.1:{port}/nope"), 2, "has no model 'nope' ready",
             "hac_onnx_fp32")
    one_line(hac_run(video, "--model", f"grpc://127.0.0.1:{port}/relabelled"), 2,
             "the server labels the outputs neutral, happy, sad", "says anger, happiness, surprise")
    one_line(hac_run(video, "--model", f"grpc://127.0.0.1:{port}/reshaped"), 2,
             "does not match its HAC manifest", "[5, 3, 64, 64]", "k=3")
    one_line(hac_run(video, "--model", f"grpc://127.0.0.1:{port}/foreign"), 2, "not a HAC model")
    one_line(hac_run(video, "--model", "grpc://127.0.0.1/x/y/z"), 2, "not a Triton model address")
    one_line(hac_run(video, "--model", f"grpc://127.0.0.1:{port}/hac_onnx_fp32", "--device", "cuda"), 2,
             "--device does not apply to a Triton server's model")


def run_broken_mid_run(venv, repo, video, breaks, timeout: int):
    """hac-run over two sources on a fresh server, ``breaks(server)`` once the first result is out; returns
    (exit code, results written, stderr, its last line)."""
    with TritonServer(venv, repo) as srv:
        proc = subprocess.Popen([HAC_RUN, str(video), str(video), "--model", srv.grpc_url("hac_onnx_fp32"),
                                 "--policy", "window", "--window", "0.4", "--stride", "0.2", "--max-batch", "1",
                                 "--timeout", str(timeout)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            first = proc.stdout.readline()
            assert first.strip(), proc.stderr.read()
            breaks(srv)
            rest, err = proc.communicate(timeout=240)
        finally:
            proc.kill()
    written = [json.loads(line) for line in [first, *rest.splitlines()] if line.strip()]
    return proc.returncode, written, err, err.strip().splitlines()[-1]


def test_server_killed_mid_run(venv, repo, video, tmp_path):
    """The results before the kill are written; every later batch is counted as not classified; exit 1."""
    code, written, err, last = run_broken_mid_run(venv, repo, video, TritonServer.kill, timeout=5)
    assert code == 1, err
    assert last.startswith("hac-run: error: ") and "clip(s) not classified (grpc://127.0.0.1:" in last, err
    assert f"the {len(written)} result(s) classified were written" in last, (last, len(written))
    lost = int(last.split("hac-run: error: ")[1].split()[0])
    assert lost >= 1 and "Traceback" not in err
    # each source says it lost clips, once per distinct reason, not once per batch
    said = [ln for ln in err.splitlines() if "not classified:" in ln]
    assert 1 <= len(said) <= 6, err


def test_a_hung_server_is_given_a_pause_not_a_timeout_per_batch(venv, repo, video):
    """A server that stops answering (SIGSTOP: its sockets stay open) costs --timeout per batch. After three
    failed in a row the engine is not called for a while: the batches then are failed at once, counted and said
    once per source, and the run ends with the same one line and exit code as for a killed server."""
    code, written, err, last = run_broken_mid_run(venv, repo, video, TritonServer.hang, timeout=2)
    assert code == 1 and "Traceback" not in err, err
    assert last.startswith("hac-run: error: ") and f"the {len(written)} result(s) classified were written" in last
    paused = [ln for ln in err.splitlines() if "not classified: not sent: 3 or more batches in a row failed "
              "(grpc://127.0.0.1:" in ln]
    assert 1 <= len(paused) <= 2, err  # said once per source, however many batches it kept from the server
    assert "clip(s) not classified (grpc://127.0.0.1:" in last, last  # the server's own reason, not the breaker's
    lost = int(last.split("hac-run: error: ")[1].split()[0])
    not_sent = int(last.split(" of their batches not sent")[0].rsplit("; ", 1)[1])
    assert 1 <= not_sent < lost, last  # one clip a batch (--max-batch 1): some never waited for the server
