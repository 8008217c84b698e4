"""Atomic file writes: write to a temporary file beside the target, fsync, rename.

A crash or Ctrl-C never leaves a half-written file under the final name. A target that is not a regular
file (``/dev/null``, a FIFO a reader waits on) is written into, never renamed onto: as root, a rename
replaced ``/dev/null`` itself with a regular file.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

from hac_runtime.errors import HacError


def is_special_file(path) -> bool:
    """Whether ``path`` exists as something other than a regular file or folder: a device, FIFO or socket."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path in the target's folder; on success it replaces ``path``. A special file
    (``is_special_file``) gets the finished bytes written into it instead."""
    path = Path(path)
    if is_special_file(path):
        with tempfile.TemporaryDirectory(prefix="hac-") as folder:
            tmp = Path(folder) / path.name
            yield tmp
            with open(tmp, "rb") as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the result is an ordinary file
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


#: errno → words, for the errors a user can fix (where the output goes)
OS_REASONS = {errno.EACCES: "permission denied", errno.EPERM: "permission denied",
              errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on device",
              errno.EDQUOT: "disk quota exceeded", errno.ENOTDIR: "a part of the path is a file, not a folder",
              errno.EISDIR: "is a folder", errno.ENAMETOOLONG: "file name too long"}


def os_reason(e: OSError) -> str:
    """An OSError as words: ``no space left on device``, ``read-only file system``…"""
    return OS_REASONS.get(e.errno) or (e.strerror or type(e).__name__).lower()


#: below this much free space a writer that failed without an errno (torch.save, OpenCV's VideoWriter) ran out of disk
FULL_DISK_BYTES = 64 << 20


def disk_is_full(folder) -> bool:
    """Whether ``folder``'s file system is (nearly) out of space: the likely reason a silent write failed."""
    import shutil

    return shutil.disk_usage(folder).free < FULL_DISK_BYTES


def check_output_dir(path, what: str = "output") -> Path:
    """Make ``path`` (a folder) if needed and prove a small file can be written and flushed in it.

    Called before long work, so an unwritable, read-only or full location is one line at the start,
    not a crash at the end."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise HacError(f"{path}: cannot write the {what} here: exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".hac-probe-") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise HacError(f"{path}: cannot write the {what} here ({os_reason(e)})") from None
    return path


def check_output_file(path, what: str = "output") -> Path:
    """``path`` can be written as a file: not a folder, and its folder passes ``check_output_dir``."""
    path = Path(path)
    if path.is_dir():
        raise HacError(f"{path}: cannot write the {what}: it is a folder")
    if is_special_file(path):  # written into (atomic_path): its folder (/dev) need not be writable
        if not os.access(path, os.W_OK):
            raise HacError(f"{path}: cannot write the {what} here (permission denied)")
        return path
    check_output_dir(path.parent if str(path.parent) else Path("."), what)
    return path
