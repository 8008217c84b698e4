"""The parity gate (issue: a trained model's ONNX failed parity while its INT8 passed on top-1 alone).

Saturated attention no longer breaks the FP32 ONNX; an artifact whose logits point elsewhere is refused
whatever its top-1; failures are said with their figures where users meet them.
"""
import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from hac_export.api import export
from hac_export.bench.run import run_bench
from hac_export.int8 import load_clips
from hac_export.manifest import describe_file
from hac_export.onnx import export_onnx
from hac_export.parity import check_parity, compare, reference_logits, tolerance_for
from hac_runtime.engines import load_engine, read_manifest
from hac_runtime.engines.base import manifest_path
from hac_runtime.engines.select import choose_engine
from hac_runtime.spec import Preprocess
from hac_train.checkpoint import load_checkpoint, save_checkpoint
from hac_train.model import HACConfig, HACNet

from conftest import BATCH, CLASSES, K, SIZE
from fixtures_model import ratio_forms


def _saturate(model: HACNet) -> HACNet:
    """Push every sigmoid of eq. 2 and eq. 5 towards 0 (α, ω ~ 1e-11) and make the logits decided."""
    with torch.no_grad():
        model.self_attention.theta.weight.normal_(0, 0.05)
        model.self_attention.theta.bias.fill_(-25.0)
        model.spatial_attention.conv.weight.normal_(0, 0.5)
        model.spatial_attention.conv.bias.fill_(-25.0)
        model.fc.weight.mul_(30)
    return model.eval()


@pytest.fixture(scope="module")
def saturated_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = _saturate(HACNet(HACConfig(backbone="resnet18", num_classes=len(CLASSES), k=K)))
    return save_checkpoint(tmp_path_factory.mktemp("saturated") / "ckpt.pt", model, CLASSES,
                           Preprocess(SIZE, K))


def test_saturated_attention_passes_onnx_parity(saturated_ckpt, calib_dir, tmp_path):
    model, ckpt = load_checkpoint(saturated_ckpt)
    clips = load_clips(calib_dir, ckpt["preprocess"], CLASSES)
    with torch.no_grad():
        _, attn = model(torch.from_numpy(clips.x[:4]), return_attention=True)
    assert attn["self"].max() < 1e-9 and attn["spatial"].max() < 1e-9  # the case that broke the old graph

    report = export(saturated_ckpt, formats="onnx", calib=calib_dir, batch=BATCH, out=tmp_path / "new",
                    verbose=False)
    parity = read_manifest(report.path("onnx"))["parity"]
    assert parity["passed"] and parity["cosine_min"] >= 0.9999 and parity["top1_agree"] == 1.0

    # The same weights through the old ratio form: eager and ONNX Runtime disagree on the same clips.
    old = ratio_forms(load_checkpoint(saturated_ckpt)[0])
    export_onnx(old, tmp_path / "ratio.onnx", K, SIZE)
    ref = reference_logits(old, clips.x)
    out = ort.InferenceSession(str(tmp_path / "ratio.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"clips": clips.x})[0]
    verdict = compare(ref, out, tolerance_for("fp32"))
    assert not verdict["passed"] and verdict["cosine_min"] < 0.9, verdict


def test_top1_flip_on_a_tie_is_not_a_wrong_artifact():
    """A clip the reference decides by 0.1 % of the logit range may swap its two leading classes under FP16
    rounding (seen in CI: cosine 1.0000, logit_err_rel 0.0005, top-1 15 of 16); a flip on a decided clip, or
    a tied clip's flip to a third class, still fails."""
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 2, (16, 7))
    ref[:, 0] = ref.max(1) + 1.0                      # every clip decided by a whole logit…
    ref[3, 1] = ref[3, 0] - 0.001                     # …but clip 3: a tie between classes 0 and 1
    out = ref + rng.normal(0, 1e-4, ref.shape)
    out[3, 1], out[3, 0] = ref[3, 0], ref[3, 1]       # the tie swaps
    verdict = compare(ref, out, tolerance_for("fp16"))
    assert verdict["top1_agree"] == 15 / 16 and verdict["top1_ties"] == 1 and verdict["top1_agree_tie_aware"] == 1.0
    assert verdict["passed"], verdict["failures"]

    loose = tolerance_for("fp16", override={"fp16": {"logit_err_rel_max": 10.0, "cosine_min": -1.0}})
    decided = out.copy()
    decided[5, 0] -= 1.5                              # a decided clip flips: a wrong artifact
    verdict = compare(ref, decided, loose)
    assert not verdict["passed"] and verdict["top1_agree_tie_aware"] == 15 / 16
    assert verdict["failures"] == ["top1_agree 0.9375 < 0.98 (1 swap of tied classes counted as agreeing)"]
    third = out.copy()
    third[3, 2] = ref[3, 0] + 1.0                     # the tied clip goes to a third class: not rounding
    assert not compare(ref, third, loose)["passed"]

    # with no tie band every flip counts, as before
    assert not compare(ref, out, {"top1_agree_min": 0.98})["passed"]


def test_alpha_that_differs_from_eager_fails_parity():
    """Results carry α to say which frames decided (eq. 2): logits alone passing is not enough."""
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 2, (8, 3))
    alpha = rng.uniform(0.2, 0.8, (8, 5))
    tol = tolerance_for("fp32")
    assert compare(ref, ref, tol, ref_alpha=alpha, alpha=alpha + 5e-5)["passed"]
    verdict = compare(ref, ref, tol, ref_alpha=alpha, alpha=alpha + 0.01)
    assert not verdict["passed"] and verdict["alpha_max_abs"] == pytest.approx(0.01)
    assert verdict["failures"] == ["alpha_max_abs 0.01 > 0.0001 (eq. 2's per-frame attention differs from eager's)"]
    assert "alpha_max_abs" not in compare(ref, ref, tol)  # an artifact without α: logits judged alone


def _perturbed(artifact, dst_dir, shift: float):
    """A copy of ``artifact`` with ``shift`` added to every FC bias: top-1 unchanged, logits moved."""
    dst_dir.mkdir()
    dst = dst_dir / artifact.name
    proto = onnx.load(str(artifact))
    init = next(i for i in proto.graph.initializer if i.name == "fc.bias")
    bias = onnx.numpy_helper.to_array(init) + np.float32(shift)
    init.CopyFrom(onnx.numpy_helper.from_array(bias.astype(onnx.numpy_helper.to_array(init).dtype), "fc.bias"))
    onnx.save(proto, str(dst))
    manifest = read_manifest(artifact)
    describe_file(manifest, dst, dst.name)
    return dst, manifest


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_wrong_artifact_refused_though_top1_agrees(trained_export, trained_ckpt, calib_dir, tmp_path, precision):
    model, ckpt = load_checkpoint(trained_ckpt)
    clips = load_clips(calib_dir, ckpt["preprocess"], ckpt["classes"])
    ref = reference_logits(model, clips.x)
    bad, manifest = _perturbed(trained_export.path("onnx", precision), tmp_path / "bad", shift=5.0)
    tol = tolerance_for(precision)
    with load_engine(bad, manifest=manifest, require_passed=False) as engine:
        record = check_parity(engine, clips.x, ref, 8, tol)
    assert record["top1_agree"] == 1.0  # what the old INT8 gate looked at alone
    assert not record["passed"]
    assert any("cosine_min" in f for f in record["failures"]) and any("logit_err_rel" in f for f in record["failures"])


def test_failed_artifact_said_as_what_it_is(tiny_ckpt, calib_dir, tmp_path):
    """hac-bench: the row says 'parity failed (figures)'; --engine auto names what it skipped and why."""
    out = tmp_path / "bench"
    doc = run_bench(tiny_ckpt, engines="ort", batches="1", calib=calib_dir, out=out, seconds=0.1, warmup=0.0,
                    full=True, log=lambda m: None, verbose=False, tolerances={"fp16": {"cosine_min": 1.01}})
    fp16 = next(r for r in doc["results"] if r["precision"] == "fp16")
    assert fp16["status"] == "parity failed" and fp16["p50_ms"] is None  # never timed
    assert fp16["reason"].startswith("parity failed (max_abs ") and "cosine_min" in fp16["reason"]
    assert "unavailable" not in json.dumps(doc["results"])
    fp32 = next(r for r in doc["results"] if r["engine"] == "ort" and r["precision"] == "fp32")
    assert fp32["status"] == "ok"

    choice = choose_engine(out, seconds=0.1)
    with choice.engine:
        line = choice.describe()
    assert choice.chosen.artifact.name in ("hac.onnx", "hac.int8.onnx")
    assert "skipped hac.fp16.onnx.failed: failed parity at export (max_abs " in line, line


def test_stale_artifact_of_another_checkpoint_is_skipped(trained_export, tiny_ckpt, tmp_path):
    folder = tmp_path / "mixed"
    shutil.copytree(trained_export.out, folder)
    export(tiny_ckpt, formats="pt2", batch=BATCH, out=tmp_path / "other", verbose=False)
    for name in ("hac.pt2", "hac.pt2.json"):  # a leftover of another checkpoint's export
        shutil.copy(tmp_path / "other" / name, folder / name)
    choice = choose_engine(folder, seconds=0.1)
    with choice.engine:
        assert "hac.pt2" not in [c.artifact.name for c in choice.candidates]
        assert "hac.pt2: exported from another checkpoint" in choice.describe()
    (folder / "parity.json").unlink()
    with pytest.raises(Exception, match="different checkpoints"):
        choose_engine(folder)
    assert manifest_path(folder / "hac.onnx").exists()


def test_a_reexport_moves_another_checkpoints_artifacts_aside(trained_export, tiny_ckpt, tmp_path):
    """An export folder is one checkpoint's: exporting another checkpoint into it moves the first one's
    artifacts (manifest and file) into replaced-<sha>/ instead of leaving a mixed folder."""
    folder = tmp_path / "reexport"
    shutil.copytree(trained_export.out, folder)
    old = {p.name for p in folder.glob("hac*.json")}
    old_sha = json.loads((folder / "hac.onnx.json").read_text())["source_sha256"]
    report = export(tiny_ckpt, formats="onnx", batch=BATCH, out=folder, verbose=False)
    new_sha = json.loads((folder / "hac.onnx.json").read_text())["source_sha256"]
    assert new_sha != old_sha
    aside = folder / f"replaced-{old_sha[:12]}"
    moved = {p.name for p in aside.iterdir()}
    assert moved and all(json.loads((aside / n).read_text())["source_sha256"] == old_sha
                         for n in moved if n.endswith(".json"))
    assert {n for n in moved if n.endswith(".json")} == old - {"hac.onnx.json"}  # hac.onnx itself was re-exported
    assert all((aside / n[:-5]).is_file() for n in moved if n.endswith(".json"))  # each with its model file
    assert sorted(p.name for p in report.replaced) == sorted(n[:-5] for n in moved if n.endswith(".json"))
    left = [json.loads(p.read_text())["source_sha256"] for p in folder.glob("hac*.json")]
    assert left and set(left) == {new_sha}
    choice = choose_engine(folder, seconds=0.1)
    with choice.engine:
        assert "another checkpoint" not in choice.describe() and choice.chosen.artifact.name == "hac.onnx"
