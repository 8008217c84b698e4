"""A real Triton Inference Server on 127.0.0.1 for the tests and the benchmark.

``nvidia-pytriton`` 0.7.0 ships ``tritonserver`` 2.51 with the Python backend (no ONNX Runtime or TensorRT
backend) and needs numpy < 2, which OpenCV 4.14 here cannot take: it gets a venv of its own
(``server_venv``: ``$HAC_TRITON_VENV``, else ``$HAC_CACHE/triton-venv``; built once, bounded in time),
with ONNX Runtime for the models ``hac-export --format triton --triton-backend python`` writes.
``TritonServer`` starts the server on free loopback ports and stops it explicitly (its own shutdown
waits up to ``--exit-timeout-secs``).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

PACKAGES = ["nvidia-pytriton==0.7.0", "onnxruntime"]
BUILD_TIMEOUT_S = 900


def venv_path() -> Path:
    explicit = os.environ.get("HAC_TRITON_VENV")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("HAC_CACHE") or Path.home() / ".cache" / "hac") / "triton-venv"


def server_venv() -> tuple[Path | None, str]:
    """(venv, "") once the server's venv is there, else (None, why it could not be built)."""
    venv = venv_path()
    python = venv / "bin" / "python"
    if python.exists() and ((venv / ".hac-ok").is_file() or os.environ.get("HAC_TRITON_VENV")):
        return venv, ""  # built here before, or named by the user (used as it is)
    shutil.rmtree(venv, ignore_errors=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
        p = subprocess.run([str(python), "-m", "pip", "install", "-q", *PACKAGES], capture_output=True, text=True,
                           timeout=BUILD_TIMEOUT_S)
    except (subprocess.SubprocessError, OSError) as e:
        return None, f"cannot build the Triton server venv: {type(e).__name__}: {e}"
    if p.returncode != 0:
        lines = [ln for ln in (p.stderr or p.stdout).splitlines() if ln.strip() and "is ignored" not in ln]
        return None, f"pip install {' '.join(PACKAGES)} failed: {lines[-1] if lines else p.returncode}"
    (venv / ".hac-ok").write_text("ok\n")
    return venv, ""


def free_port() -> int:
    """A loopback port nobody listens on (just now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3.*/site-packages"))


class TritonServer:
    """``with TritonServer(venv, repo) as srv:`` → ``srv.grpc_url("hac_onnx_fp32")``, ``srv.kill()``, ``srv.hang()``."""

    def __init__(self, venv: Path, repo: Path, ready_timeout: float = 180.0):
        self.venv, self.repo, self.ready_timeout = Path(venv), Path(repo), ready_timeout
        self.proc = None
        self.work = None

    def grpc_url(self, model: str) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}/{model}"

    def http_url(self, model: str) -> str:
        return f"http://127.0.0.1:{self.http_port}/{model}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.work else ""

    def start(self) -> "TritonServer":
        site = _site_packages(self.venv)
        dist = site / "pytriton" / "tritonserver"
        version = subprocess.run([str(self.venv / "bin" / "python"), "-c",
                                  "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        libdir = subprocess.run([str(self.venv / "bin" / "python"), "-c",
                                 "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
                                capture_output=True, text=True, check=True).stdout.strip()
        self.work = Path(tempfile.mkdtemp(prefix="hac-triton-"))
        for part in ("bin", "backends", "caches"):
            shutil.copytree(dist / part, self.work / part)
        shutil.copy(dist / "python_backend_stubs" / version / "triton_python_backend_stub",
                    self.work / "backends" / "python" / "triton_python_backend_stub")
        self.http_port, self.grpc_port = free_port(), free_port()
        env = dict(os.environ)
        # the stub embeds the venv's Python: its libpython first, or it mixes two (RLock._recursion_count)
        env["LD_LIBRARY_PATH"] = ":".join(p for p in (str(site / "nvidia_pytriton.libs"), libdir,
                                                      env.get("LD_LIBRARY_PATH", "")) if p)
        env["PATH"] = f"{self.venv / 'bin'}:{env['PATH']}"
        env["HAC_TRITON_THREADS"] = env.get("HAC_TRITON_THREADS", "2")
        self.log_path = self.work / "server.log"
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [str(self.work / "bin" / "tritonserver"), "--model-repository", str(self.repo),
                 "--backend-directory", str(self.work / "backends"), "--cache-directory", str(self.work / "caches"),
                 "--http-address", "127.0.0.1", "--grpc-address", "127.0.0.1", "--http-port", str(self.http_port),
                 "--grpc-port", str(self.grpc_port), "--allow-metrics", "false", "--exit-timeout-secs", "5",
                 "--strict-readiness", "true"],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tritonserver exited ({self.proc.returncode}):\n{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/v2/health/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"tritonserver not ready within {self.ready_timeout:g} s:\n{self.log()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL, as a crash would: the server and its Python stubs, at once."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def hang(self) -> None:
        """SIGSTOP: the server and its stubs stop answering but keep their sockets open (a hung server)."""
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            os.killpg(self.proc.pid, signal.SIGCONT)  # a hung one (``hang``) takes the signal once running
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
