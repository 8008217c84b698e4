"""hac-ckpt/1 round trip and the clear errors for wrong, truncated and foreign files."""
import pytest
import torch

from hac_runtime.errors import HacError
from hac_runtime.spec import Preprocess
from hac_train.checkpoint import FORMAT, load_checkpoint, read_checkpoint, save_checkpoint
from hac_train.model import HACConfig, HACNet

CLASSES = ["anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise"]


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(3)
    model = HACNet(HACConfig(backbone="resnet18", k=3)).eval()
    path = save_checkpoint(tmp_path / "ckpt.pt", model, CLASSES, Preprocess(64, k=3),
                           train={"recipe": "ck+", "epoch": 7, "seed": 3}, metrics={"accuracy": 0.5})
    return model, path


def test_round_trip_identical_logits(saved):
    model, path = saved
    loaded, ckpt = load_checkpoint(path)
    x = torch.randn(2, 3, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(model(x), loaded(x))
    assert ckpt["format"] == FORMAT
    assert ckpt["classes"] == CLASSES
    assert ckpt["model"] == {"backbone": "resnet18", "num_classes": 7, "k": 3, "gru_hidden": 128,
                             "attention": "hybrid", "temporal": "gru", "dropout": 0.0}
    assert ckpt["preprocess"].image_size == 64 and ckpt["preprocess"].k == 3
    assert ckpt["train"]["epoch"] == 7 and ckpt["metrics"]["accuracy"] == 0.5
    assert not loaded.training


def test_save_is_atomic_no_temp_left(saved, tmp_path):
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_truncated_checkpoint(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    bad = tmp_path / "trunc.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(HacError) as e:
        load_checkpoint(bad)
    msg = str(e.value)
    assert str(bad) in msg and "truncated" in msg and "\n" not in msg


def test_foreign_and_missing_files(tmp_path):
    sd = tmp_path / "plain.pt"
    torch.save(HACNet(HACConfig(backbone="resnet18")).state_dict(), sd)
    with pytest.raises(HacError, match="not a HAC checkpoint"):
        load_checkpoint(sd)
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(HacError, match="not a PyTorch checkpoint"):
        load_checkpoint(txt)
    empty = tmp_path / "empty.pt"
    empty.touch()
    with pytest.raises(HacError, match="empty file"):
        load_checkpoint(empty)
    with pytest.raises(HacError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_other_format_version_and_mismatched_weights(saved, tmp_path):
    _, path = saved
    ckpt = torch.load(path, weights_only=True)
    ckpt["format"] = "hac-ckpt/9"
    torch.save(ckpt, tmp_path / "v9.pt")
    with pytest.raises(HacError, match="'hac-ckpt/9' is not supported"):
        read_checkpoint(tmp_path / "v9.pt")
    ckpt["format"] = FORMAT
    ckpt["model"]["backbone"] = "resnet34"
    torch.save(ckpt, tmp_path / "mismatch.pt")
    with pytest.raises(HacError, match="weights do not match"):
        load_checkpoint(tmp_path / "mismatch.pt")
    del ckpt["classes"]
    torch.save(ckpt, tmp_path / "noclasses.pt")
    with pytest.raises(HacError, match="lacks classes"):
        read_checkpoint(tmp_path / "noclasses.pt")
