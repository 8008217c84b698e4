"""benchmarks/gpu_check.sh --dry: every step of the prepared GPU check runs on the CPU, so the script never rots."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run(tmp_path):
    out = tmp_path / "gpu.md"
    p = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry", "--out", str(out)],
                       capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHON": sys.executable})
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    verdict = [ln for ln in p.stdout.splitlines() if ln.startswith("gpu_check: DRY RUN")]
    assert len(verdict) == 1 and verdict[0].startswith("gpu_check: DRY RUN OK: 6/6 steps passed in "), p.stdout
    text = out.read_text()
    assert "**Dry run on a CPU**" in text and text.count("— ok (") == 6 and "FAILED" not in text
    assert '"p50_ms"' in text and '"mean_abs_diff"' in text and '"fps"' in text
    # without --dry on a machine without CUDA: one line, exit 2, nothing written
    q = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")], capture_output=True, text=True,
                       timeout=300)
    import torch

    if not torch.cuda.is_available():
        assert q.returncode == 2 and q.stderr.strip().startswith("gpu_check: error: no CUDA GPU here"), q.stderr
