"""Shared training fixtures: small synthetic clip sets made by the real ``hac-synth`` from real face photos,
their faces prepared once by the real ``hac_runtime.prepare`` (the cache is reused by every test)."""
import csv
import os
import subprocess
import sys

import pytest

from hac_train.synth import synthesize

TINY = dict(backbone="resnet18", image_size=64, k=3, folds=1, progress=False, device="cpu", repeats=1)
EASY = ("happiness", "surprise")


def run_cli(*args, timeout=600, env=None):
    """Run a console script's module in a subprocess: (returncode, stdout, stderr)."""
    prog = args[0]
    code = {"hac-train": "train_main", "hac-eval": "eval_main", "hac-synth": "synth_main"}[prog]
    cmd = [sys.executable, "-c", f"import sys; from hac_train.cli import {code}; sys.argv[0] = {prog!r}; {code}()",
           *map(str, args[1:])]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="session")
def synth_set(tmp_path_factory):
    """28 synthetic clips (4 per expression, identities astronaut, biden, hopper, obama), 6 frames each."""
    out = tmp_path_factory.mktemp("synth") / "S"
    synthesize(out, clips=28, seed=3, frames=6, progress=False)
    return out


@pytest.fixture(scope="session")
def easy_set(tmp_path_factory):
    """An easy two-class task (happiness vs surprise: teeth vs a wide-open mouth) as a CSV manifest of
    24 synthetic clips, faces prepared and cached once."""
    out = tmp_path_factory.mktemp("easy") / "E"
    synthesize(out, clips=84, seed=5, frames=6, progress=False)
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    keep = [r for r in rows if r["label"] in EASY]
    for r in rows:
        if r["label"] not in EASY:
            (out / r["path"]).unlink()
    with open(out / "easy.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(keep[0]))
        w.writeheader()
        w.writerows(keep)
    from hac_train.data import load_index, prepare_faces

    prepare_faces(load_index(out / "easy.csv", "csv"), None, "sequence", 64, progress=False)
    return out / "easy.csv"


def count_lines(text: str) -> int:
    return len([line for line in text.strip().splitlines() if line.strip()])
