"""hac-bench on a tiny model: every field present, statuses right, the JSON and the table agree. No timing thresholds."""
import importlib.util
import json

import pytest
import torch
from rich.console import Console

from hac_export.bench.report import print_table
from hac_export.bench.run import parse_batches, parse_engines, run_bench
from hac_runtime import spec
from hac_runtime.errors import HacError

ROW_KEYS = {"engine", "precision", "batch", "status", "size_mb", "p50_ms", "p90_ms", "p99_ms", "clips_per_s",
            "speedup_vs_eager", "parity"}


@pytest.fixture(scope="module")
def bench(tiny_ckpt, calib_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    doc = run_bench(tiny_ckpt, engines="ort,trt", batches="1,2", calib=calib_dir, out=out, json_path=out / "bench.json",
                    plot=out / "bench.png", seconds=0.3, warmup=0.05, log=lambda m: None, verbose=False)
    return doc, out


def test_every_field_present(bench):
    doc, _ = bench
    assert set(doc["machine"]) >= {"cpu", "gpu", "versions"}
    assert {"torch", "onnxruntime", "hac"} <= set(doc["machine"]["versions"])
    assert doc["model"]["gflops_per_clip"] > 0 and doc["peak"]["peak_gflops"] > 0
    if not torch.cuda.is_available():  # each precision has a peak of its own on this machine (issue 14)
        peak = doc["peak"]
        assert peak["fp32_gflops"] == peak["peak_gflops"] and peak["int8_gflops"] > 0 and peak["bf16_gflops"] > 0
        # a precision's peak is its best probe: a matrix product (torch._int_mm, torch.mm BF16, ORT's MatMul) and a
        # conv (ORT's, as QDQ for INT8), and OpenVINO's conv where it runs
        assert peak["torch_int8_gflops"] > 0 and "torch._int_mm" in peak["how"]
        assert peak["int8_gflops"] == max(peak["ort_int8_gflops"], peak["torch_int8_gflops"],
                                          peak.get("openvino_int8_gflops", 0))
        assert peak["bf16_gflops"] == max(peak["torch_bf16_gflops"], peak.get("openvino_bf16_gflops", 0))
        assert peak["fp32_gflops"] == max(peak["matmul_gflops"], peak["conv_gflops"], peak.get("openvino_fp32_gflops", 0))
        if importlib.util.find_spec("openvino") is not None and "openvino_missing" not in peak:
            assert peak["int8_gflops"] >= peak["openvino_int8_gflops"] > 0 and "in OpenVINO" in peak["how"]
        else:  # not installed, or refused on this CPU: said, and the ORT/torch probes stand
            assert "openvino_int8_gflops" not in peak and peak["openvino_missing"]
    assert "eager PyTorch FP32, inference_mode" in doc["baseline"]
    # untrained default-like model: the table must say parity means little
    assert any("untrained" in n for n in doc["notes"])
    rows = doc["results"]
    # per batch: eager + ort fp32/int8 (+ fp16 on a GPU: the default selection is the machine's) + trt fp32/fp16/int8
    assert len(rows) == 2 * (6 + (doc["machine"]["gpu"] is not None))
    for r in rows:
        assert ROW_KEYS <= set(r), r


def test_measured_rows_are_consistent(bench):
    doc, _ = bench
    for b in (1, 2):
        rows = [r for r in doc["results"] if r["batch"] == b and r["status"] == "ok"]
        eager = next(r for r in rows if r["format"] == "eager")
        assert eager["speedup_vs_eager"] == 1.0
        assert {(r["engine"], r["precision"]) for r in rows} >= {("ort", "fp32"), ("ort", "int8")}
        for r in rows:
            assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
            assert r["clips_per_s"] == pytest.approx(b / (r["p50_ms"] / 1e3), rel=0.01)
            assert r["speedup_vs_eager"] == pytest.approx(eager["p50_ms"] / r["p50_ms"], rel=0.01)
            assert r["iterations"] >= 10
            assert r["parity"]["top1_agree"] is not None and r["parity"]["max_abs"] is not None
            if r["format"] != "eager":
                assert r["size_mb"] > 0
        fp32 = next(r for r in rows if r["engine"] == "ort" and r["precision"] == "fp32")
        assert fp32["parity"]["max_abs"] < 1e-3 and fp32["parity"]["top1_agree"] == 1.0
    # % of peak is against the better of the two probes (before and after the timings)
    assert doc["peak"]["probes"] == 2
    for r in doc["results"]:
        if r["status"] == "ok":
            against = doc["peak"].get(f"{r['precision']}_gflops") or doc["peak"]["peak_gflops"]
            assert r["peak_fraction"] == pytest.approx(r["gflops"] / against, abs=1e-3)


def test_best_peak_keeps_each_figure_best():
    from hac_export.bench.peak import best_peak

    a = {"matmul_gflops": 180.0, "conv_gflops": 200.0, "peak_gflops": 200.0, "how": "x"}
    b = {"matmul_gflops": 190.0, "conv_gflops": 195.0, "peak_gflops": 195.0, "how": "x"}
    assert best_peak(a, b) == {"matmul_gflops": 190.0, "conv_gflops": 200.0, "peak_gflops": 200.0, "how": "x",
                               "probes": 2}
    # OpenVINO refused in one probe and ran in the other: its figures count, and the caption says it ran
    ov = {"int8_gflops": 900.0, "ort_int8_gflops": 900.0, "how": "in ORT", "openvino_missing": "compile failed"}
    ran = {"int8_gflops": 2500.0, "ort_int8_gflops": 880.0, "openvino_int8_gflops": 2500.0, "how": "in ORT and in OpenVINO"}
    for first, second in ((ov, ran), (ran, ov)):
        best = best_peak(first, second)
        assert best["int8_gflops"] == 2500.0 and best["ort_int8_gflops"] == 900.0
        assert best["how"] == "in ORT and in OpenVINO" and "openvino_missing" not in best


def test_trt_rows_say_why_they_did_not_run(bench):
    """No GPU: unavailable, said so; a GPU without TensorRT: unavailable, how to install; with both: measured."""
    from hac_runtime.engines.select import installed

    doc, _ = bench
    trt = [r for r in doc["results"] if r["engine"] == "trt"]
    assert len(trt) == 6
    for r in trt:
        if not torch.cuda.is_available():
            assert (r["status"], r["reason"], r["p50_ms"]) == ("unavailable", "no CUDA GPU on this machine", None)
        elif not installed("trt"):
            assert r["status"] == "unavailable" and "TensorRT is not installed" in r["reason"] and r["p50_ms"] is None
        else:
            assert r["status"] in ("ok", "parity failed"), r
            assert (r["p50_ms"] is not None) == (r["status"] == "ok")


def test_json_file_matches_and_table_shows_it(bench):
    doc, out = bench
    assert json.loads((out / "bench.json").read_text()) == json.loads(json.dumps(doc))
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    console = Console(record=True, width=250)
    print_table(doc, console)
    text = console.export_text()
    for r in doc["results"]:
        if r["p50_ms"] is not None:
            assert f"{r['p50_ms']:.1f}" in text
    if not torch.cuda.is_available():
        assert text.count("unavailable") >= 6 and "no CUDA GPU" in text
    flat = " ".join(text.split())
    # every precision's peak under the table, each that precision's own probe
    assert f"FP32 {doc['peak']['fp32_gflops']}" in flat and f"INT8 {doc['peak']['int8_gflops']}" in flat
    for column in ("p50/p90/p99 ms", "clips/s", "speedup", "% peak", "max abs", "top-1"):
        assert column in flat, column  # every column explained under the table
    gpu = any("device_p50_ms" in r for r in doc["results"])
    assert ("GPU/H2D/D2H" in flat) == gpu  # only the columns the table has
    timed = dict(doc, results=[{**r, "device_p50_ms": 1.0, "h2d_p50_ms": 0.1, "d2h_p50_ms": 0.1} for r in doc["results"]])
    console = Console(record=True, width=250)
    print_table(timed, console)
    assert "GPU/H2D/D2H" in " ".join(console.export_text().split())
    # a reason is shown as written: an install hint's [extra] is not taken for rich markup
    hint = "OpenVINO is not installed (pip install -e '.[openvino]')"
    odd = dict(doc, results=doc["results"] + [{**doc["results"][0], "engine": "openvino", "status": "unavailable",
                                                "reason": hint}])
    console = Console(record=True, width=250)
    print_table(odd, console)
    assert hint in console.export_text()


def test_default_selection_depends_on_the_machine():
    from hac_export.bench.run import candidates_for

    def rows(machine, full=False):
        return {(c.engine, c.fmt, c.precision) for c in candidates_for(["torch", "ort"], full, machine)}

    mixed = {("torch", "aoti", "fp16"), ("torch", "aoti", "bf16")}
    assert mixed <= rows("cuda") and not mixed & rows("cpu")  # the GPU engine where TensorRT is not
    assert mixed <= rows("cpu", full=True) and ("torch", "pt2", "fp32") not in rows("cuda")
    # on a CPU the runs that can win there; FP16 ONNX and AOTInductor run at FP32 speed on one (--full adds them)
    assert rows("cpu") == {("ort", "onnx", "fp32"), ("ort", "onnx", "int8")}
    assert {("ort", "onnx", "fp16"), ("torch", "aoti", "fp32")} <= rows("cpu", full=True) & rows("cuda")


def test_bad_options():
    with pytest.raises(HacError, match="unknown engine 'tensorflow'"):
        parse_engines("ort,tensorflow")
    with pytest.raises(HacError, match="positive integers"):
        parse_batches("0,8")
    with pytest.raises(HacError, match="positive integers"):
        parse_batches("one")
    assert parse_engines("all") == list(spec.artifact_engines()) == ["ort", "trt", "torch", "openvino"]
    with pytest.raises(HacError, match="unknown engine 'triton'"):  # a server's engine: nothing to measure here
        parse_engines("triton")
    assert parse_batches("8,1,8") == [1, 8]


def test_cli_bad_input_one_line_exit_2(tmp_path, capsys):
    from hac_export.cli import bench_main

    def run(argv):
        with pytest.raises(SystemExit) as e:
            bench_main([str(a) for a in argv])
        return e.value.code, capsys.readouterr().err

    for argv, msg in (([tmp_path / "nope.pt", "--out", tmp_path / "o"], "checkpoint not found"),
                      (["--engine", "tensorflow"], "unknown engine"),
                      (["--batch", "0"], "positive integers")):
        code, err = run(argv)
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    (tmp_path / "empty").mkdir()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    code, err = run([junk, "--out", tmp_path / "o"])
    assert code == 2 and "not a PyTorch checkpoint" in err
    assert not (tmp_path / "o").exists()  # refused before any work


def test_one_export_per_run_and_a_failed_build_fails_alone(tiny_ckpt, calib_dir, tmp_path, monkeypatch):
    """Each artifact written once (one export plan), and a writer that fails leaves the other rows intact."""
    import hac_export.api as api

    writes = []
    real = api.publish
    monkeypatch.setattr(api, "publish", lambda tmp, final, m: writes.append(final.name) or real(tmp, final, m))

    def broken(*args, **kwargs):
        raise RuntimeError("injected build failure")

    built = []
    monkeypatch.setitem(api.WRITERS, "aoti", lambda job, precision, *a, **k: built.append(precision) or broken())
    logs = []
    doc = run_bench(tiny_ckpt, engines="ort,torch", batches="1,2", calib=calib_dir, out=tmp_path / "b",
                    seconds=0.1, warmup=0.0, log=logs.append, verbose=False, full=True)
    assert sorted(writes) == ["hac.fp16.onnx", "hac.int8.onnx", "hac.onnx", "hac.pt2"]  # once each; aoti never
    assert built == ["fp32", "fp16", "bf16"]  # each AOTInductor package tried once, and only those it times
    started = [m.split(":")[1].strip() for m in logs if m.endswith("s so far)") or "ETA" in m]
    assert sorted(started) == sorted(["hac.onnx", "hac.fp16.onnx", "hac.int8.onnx", "hac.pt2", "hac.aoti.pt2",
                                      "hac.fp16.aoti.pt2", "hac.bf16.aoti.pt2"])
    assert any("(2/7; " in m and "ETA" in m for m in logs)
    rows = {(r["engine"], r["format"], r["precision"], r["batch"]): r for r in doc["results"]}
    for b in (1, 2):
        for p in ("fp32", "fp16", "bf16"):
            aoti = rows[("torch", "aoti", p, b)]
            assert aoti["status"] == "export failed" and "injected build failure" in aoti["reason"]
        for p in ("fp32", "fp16", "int8"):
            assert rows[("ort", "onnx", p, b)]["status"] == "ok"
        assert rows[("torch", "pt2", "fp32", b)]["status"] == "ok"


def test_the_default_selection_exports_only_what_it_times(bench):
    """On a CPU the default rows are ORT FP32 and INT8: no FP16 ONNX or AOTInductor package is made."""
    _, out = bench
    made = {p.name for p in out.rglob("hac*") if p.suffix in (".onnx", ".pt2", ".engine")}
    if not torch.cuda.is_available():
        assert made == {"hac.onnx", "hac.int8.onnx"}, made
