"""Artifact manifests (CONTRACTS.md) and atomic publishing of artifacts.

An artifact is written under a temporary name in the output folder
(``.partial-XXXX-<name>``), checked, and only then published:

* parity passed → renamed to ``<name>``, manifest ``<name>.json`` with ``status: "passed"``;
* parity failed → renamed to ``<name>.failed``, manifest ``<name>.failed.json`` with
  ``status: "failed"``, and an older ``<name>`` from a previous export is removed, so nothing under
  the final name looks finished. ``load_engine`` refuses both a ``.failed`` file and a failed manifest.

A crash at any point leaves only the ``.partial-*`` file, which is deleted on the way out.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

from hac_runtime import __version__
from hac_runtime.atomic import write_json
from hac_runtime.engines.base import MANIFEST_SCHEMA, manifest_path, sha256_of

FAILED_SUFFIX = ".failed"


def build_manifest(fmt: str, precision: str, ckpt: dict, source, source_sha256: str, input_name: str,
                   output_name: str, batch: dict, builder: dict, attention_name: str | None = None, **extra) -> dict:
    """The manifest of one artifact (status ``pending`` until parity decides). ``attention_name``: the artifact's
    second output, the per-frame self-attention weights α (eq. 2), ``(batch, k)``."""
    pre = ckpt["preprocess"]
    classes = list(ckpt["classes"])
    if attention_name:
        extra["attention"] = {"name": attention_name, "shape": ["batch", pre.k], "dtype": "float32"}
    return {
        "schema": MANIFEST_SCHEMA,
        "format": fmt,
        "precision": precision,
        "status": "pending",
        "artifact": {},
        "classes": classes,
        "preprocess": pre.to_dict(),
        "model": dict(ckpt["model"]),
        "input": {"name": input_name, "shape": pre.input_shape,
                  "dtype": "float32", "batch": batch},
        "output": {"name": output_name, "shape": ["batch", len(classes)], "dtype": "float32"},
        "source": Path(source).name,
        "source_sha256": source_sha256,
        "toolkit_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "builder": builder,
        **extra,
    }


def describe_file(manifest: dict, path, name: str) -> dict:
    """Record the artifact's final name, size and checksum in ``manifest``."""
    path = Path(path)
    manifest["artifact"] = {"file": name, "bytes": path.stat().st_size, "sha256": sha256_of(path)}
    return manifest


@contextlib.contextmanager
def staged(final: Path):
    """A temporary path beside ``final`` ending in ``final``'s name (exporters check suffixes); removed on exit."""
    final = Path(final)
    fd, tmp = tempfile.mkstemp(prefix=".partial-", suffix=f"-{final.name}", dir=final.parent)
    os.close(fd)
    os.unlink(tmp)  # exporters create the file themselves
    try:
        yield Path(tmp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def publish(tmp: Path, final: Path, manifest: dict) -> Path:
    """Move a checked artifact to its final (or ``.failed``) name with its manifest; return where it went."""
    final = Path(final)
    passed = manifest["status"] == "passed"
    target = final if passed else final.with_name(final.name + FAILED_SUFFIX)
    manifest["artifact"]["file"] = target.name
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    write_json(manifest_path(target), manifest)  # manifest first: a published name always has one
    os.replace(tmp, target)
    stale = (final.with_name(final.name + FAILED_SUFFIX),) if passed else (final,)
    for path in stale:
        for p in (path, manifest_path(path)):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    return target
