"""Fault injection: real console scripts, killed, starved and pointed at broken paths (issue: reliability).

Every test bounds its waits in time and waits on work done (CPU seconds, files written), never on
wall-clock sleeps, so a loaded machine changes nothing.
"""
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def script(name: str) -> str:
    return str(BIN / name)


def run(*args, timeout: float = 300, env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, **kw)


def one_line(p: subprocess.CompletedProcess, code: int, *words: str) -> str:
    """Assert exit ``code`` and a single stderr line (no traceback) holding ``words``; return it."""
    err = p.stderr.strip()
    assert p.returncode == code, (p.returncode, err)
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, err
    return err


@contextlib.contextmanager
def _mounted(target: Path, *mount_args: str, what: str):
    """``mount *mount_args target`` for the test, unmounted after; skipped with the reason where it cannot."""
    p = subprocess.run(["mount", *mount_args, str(target)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot make {what} here: {p.stderr.strip()}")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


@pytest.fixture
def tmpfs(tmp_path):
    """A 3 MiB tmpfs (a disk that fills up), where the tests run as root; skipped with the reason elsewhere."""
    if os.geteuid() != 0:
        pytest.skip("a full disk needs a tmpfs mount: the tests are not running as root")
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    with _mounted(mnt, "-t", "tmpfs", "-o", "size=3m", "tmpfs", what="a tmpfs"):
        yield mnt


@pytest.fixture
def read_only(tmp_path):
    """A folder nobody may write in (root ignores permissions: a read-only bind mount then, else skip)."""
    ro = tmp_path / "read-only"
    ro.mkdir()
    if os.geteuid() != 0:
        ro.chmod(0o555)
        yield ro
        ro.chmod(0o755)
        return
    with _mounted(ro, "--bind", "-o", "ro", str(ro), what="a read-only mount"):
        yield ro


def _export_fixtures():
    """tests/export/conftest.py's helpers (a tiny checkpoint, real-photo clips), loaded by path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("export_fixtures", Path(__file__).parents[1] / "export" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    import torch

    from hac_runtime.spec import Preprocess
    from hac_train.checkpoint import save_checkpoint
    from hac_train.model import HACConfig, HACNet

    fx = _export_fixtures()
    torch.manual_seed(0)
    model = HACNet(HACConfig(backbone="resnet18", num_classes=len(fx.CLASSES), k=fx.K)).eval()
    return save_checkpoint(tmp_path_factory.mktemp("tiny") / "ckpt.pt", model, fx.CLASSES,
                           Preprocess(fx.SIZE, fx.K))


@pytest.fixture(scope="session")
def calib_dir(tmp_path_factory):
    return _export_fixtures().write_clip_folders(tmp_path_factory.mktemp("calib"), clips_per_class=4, frames=5,
                                                 seed=1)


@pytest.fixture(scope="session")
def artifact(tiny_ckpt, calib_dir, tmp_path_factory):
    from hac_export.api import export

    report = export(tiny_ckpt, formats="onnx", calib=calib_dir, batch="1:2:4", out=tmp_path_factory.mktemp("onnx"),
                    verbose=False)
    return report.path("onnx")
