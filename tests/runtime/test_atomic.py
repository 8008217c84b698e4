"""Atomic writes into targets that are not regular files: written into, never replaced."""
import json
import os
import stat
import threading

from hac_runtime.atomic import check_output_file, is_special_file, write_json


def _reader(path, got: list) -> threading.Thread:
    """Reads the FIFO ``path`` to its end on a thread (a writer's open blocks until a reader is there)."""
    def read():
        with open(path) as f:
            got.append(f.read())

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


def test_json_into_a_fifo_is_written_into_it_not_renamed_onto_it(tmp_path):
    fifo = tmp_path / "doc.json"
    os.mkfifo(fifo)
    assert is_special_file(fifo) and not is_special_file(tmp_path) and not is_special_file(tmp_path / "none")
    assert check_output_file(fifo) == fifo
    got: list = []
    reader = _reader(fifo, got)
    write_json(fifo, {"a": 1})
    reader.join(timeout=30)
    assert json.loads(got[0]) == {"a": 1}
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still the FIFO: a rename would have made it a regular file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.json"]  # no temporary file left beside it


def test_dev_null_is_a_writable_output_and_stays_a_device():
    write_json("/dev/null", {"a": 1})
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
