"""Multi-process training with torchrun: 2 CPU processes, gloo backend, one run folder written by rank 0."""
import json
import subprocess
import sys

import pytest
import torch

from hac_train.checkpoint import read_checkpoint


@pytest.mark.slow
def test_torchrun_two_cpu_processes(easy_set, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "hac_train.cli", "train", str(easy_set), "--out", str(out), "--backbone", "resnet18",
           "--image-size", "64", "--k", "3", "--folds", "1", "--epochs", "2", "--batch-size", "8", "--device", "cpu",
           "--quiet"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    ckpt = read_checkpoint(out / "last.pt")
    assert ckpt["train"]["world_size"] == 2
    m = json.loads((out / "metrics.json").read_text())
    n_train = m["samples_per_epoch"]
    # both ranks trained: the summed count covers the whole training set every epoch (DistributedSampler pads to even)
    assert n_train == 3 * m["train_clips"]  # the scratch recipe's three passes per epoch
    assert all(n_train <= h["train_samples"] <= n_train + 1 for h in m["history"])
    assert m["n"] == m["val_clips"] and sum(map(sum, m["confusion"])) == m["val_clips"]
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".pt") == ["ckpt.pt", "last.pt"]
    assert not any(torch.isnan(v).any() for v in ckpt["state_dict"].values() if v.is_floating_point())
