"""Waiting on a child process by the work it has done, not by wall time (so a loaded machine changes nothing).

``cpu_seconds(pid)`` reads the CPU time a process (and its reaped children) used from ``/proc``;
``wait_for_cpu(proc, s)`` returns once the process has used ``s`` more CPU seconds than when called.
``processes_with_env(key, value)`` finds the processes that inherited an environment marker (orphans).
"""
from __future__ import annotations

import os
import time
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")


def wait_for_cpu(proc, seconds: float, timeout: float = 300.0) -> float:
    """Block until ``proc`` (a Popen) used ``seconds`` more CPU; fail if it exits first or ``timeout`` passes."""
    start, deadline = cpu_seconds(proc.pid), time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) before using {seconds} s of CPU")
        used = cpu_seconds(proc.pid) - start
        if used >= seconds:
            return used
        time.sleep(0.05)
    raise AssertionError(f"process did not use {seconds} s of CPU within {timeout} s")


def processes_with_env(key: str, value: str) -> list[int]:
    """PIDs of live processes whose environment holds ``key=value``."""
    needle = f"{key}={value}".encode()
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            env = (d / "environ").read_bytes().split(b"\0")
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in env and state != "Z":
            found.append(int(d.name))
    return found
