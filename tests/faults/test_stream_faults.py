"""hac-run against loopback servers that never answer, break off, or stall (bounded in time, 127.0.0.1 only)."""
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import run, script
from fixtures_video import photo, write_face_video


class Server:
    """A TCP server on 127.0.0.1 answering every HTTP request per ``mode``:
    ``silent`` accepts and never answers; ``breaks`` sends 60 % of the video and closes; ``stall`` sends
    60 % and then holds the connection open. Stops by itself after ``lifetime`` seconds."""

    def __init__(self, mode: str, data: bytes = b"", lifetime: float = 120.0):
        self.mode, self.data = mode, data
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.5)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/clip.avi"
        self.stop = threading.Event()
        self.held = threading.Event()  # a client is being held (silent, or stalled after its data)
        self.deadline = time.monotonic() + lifetime
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()
        self.sock.close()

    def _serve(self, conn):
        try:
            conn.recv(65536)
            if self.mode != "silent":
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: video/x-msvideo\r\n\r\n")
                conn.sendall(self.data[: len(self.data) * 6 // 10])
            if self.mode in ("silent", "stall"):
                self.held.set()
                self.stop.wait(max(0.0, self.deadline - time.monotonic()))
        except OSError:
            pass
        finally:
            conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop.set()


@pytest.fixture(scope="module")
def video_bytes(tmp_path_factory):
    p = tmp_path_factory.mktemp("v") / "clip.avi"
    write_face_video(p, photo("obama.jpg"), n_frames=40, fps=10.0)
    return p.read_bytes()


def test_a_server_that_never_answers_is_given_up_on(artifact):
    """Before: OpenCV waited 30 s, then PyAV reconnected for ever."""
    with Server("silent") as srv:
        t0 = time.monotonic()
        p = run(script("hac-run"), srv.url, "--model", artifact, "--timeout", "2", timeout=120)
        took = time.monotonic() - t0
    assert p.returncode == 2, p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("hac-run: error: no source could be used") and "no answer within 2 s" in last, last
    assert "Traceback" not in p.stderr and "[ WARN" not in p.stderr
    assert took < 90  # bounded by the timeouts (2 s per decoder), not by the server


@pytest.mark.parametrize("mode", ["breaks", "stall"])
def test_a_stream_that_breaks_off_or_stalls_is_said(artifact, video_bytes, mode):
    """Before: a stream that broke off exited 0 without a word; a stalled one printed OpenCV's raw warning."""
    with Server(mode, video_bytes) as srv:
        p = run(script("hac-run"), srv.url, "--model", artifact, "--timeout", "2", timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip(), "what was seen before the break is classified"
    assert f"{srv.url}: the stream ended after " in p.stderr, p.stderr
    if mode == "stall":
        assert "(no data for 2 s)" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and "[ WARN" not in p.stderr


@pytest.mark.parametrize("mode", ["silent", "stall"])
def test_ctrl_c_stops_a_run_held_by_its_stream(artifact, video_bytes, mode, tmp_path):
    """Before: the first Ctrl-C did not stop a run waiting on a stream. Now it ends it at once (exit 130),
    whatever --timeout says, and keeps what was classified."""
    out = tmp_path / "r.jsonl"
    with Server(mode, video_bytes) as srv:
        proc = subprocess.Popen([script("hac-run"), srv.url, "--model", str(artifact), "--timeout", "600",
                                 "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert srv.held.wait(120), "hac-run never reached the server"
            time.sleep(1.0)  # into the wait (how long does not matter: the wait is for 600 s)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=90)  # bounded by the reaction to Ctrl-C, not by --timeout
        finally:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "[ WARN" not in err, err
    assert "hac-run: interrupted" in err.strip().splitlines()[-1], err
