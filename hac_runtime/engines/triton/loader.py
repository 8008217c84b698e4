"""Connecting to a Triton server: the model's URL, and the checks made before any clip is sent.

``grpc://HOST:PORT/MODEL[/VERSION]`` (gRPC, the default protocol; port 8001 by default) or
``http://HOST:PORT/MODEL[/VERSION]`` (port 8000). The model must be one ``hac-export --format triton``
wrote: its config carries the HAC manifest, which is checked against what the server reports (input
name, shape and type, output size) and against the labels the server applies (classification extension).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np

from hac_runtime.errors import HacError, one_line
from hac_runtime.spec import Preprocess

PROTOCOLS = {"grpc": 8001, "http": 8000}
MANIFEST_PARAMETER = "hac_manifest"  #: where hac-export puts the manifest in config.pbtxt
_URL = re.compile(r"^(grpc|http)://([^/:]+)(?::(\d+))?/([A-Za-z0-9_.-]+)(?:/(\d+))?/?$")


@dataclass(frozen=True)
class ServerModel:
    protocol: str
    host: str
    port: int
    model: str
    version: str = ""  #: "" = the server's choice (latest)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.protocol}://{self.address}/{self.model}" + (f"/{self.version}" if self.version else "")


def is_server_url(model) -> bool:
    return isinstance(model, str) and model.split("://", 1)[0] in PROTOCOLS and "://" in model


def parse_url(url: str) -> ServerModel:
    m = _URL.match(str(url).strip())
    if not m:
        raise HacError(f"{url}: not a Triton model address (expected grpc://HOST:PORT/MODEL or http://HOST:PORT/MODEL)")
    protocol, host, port, model, version = m.groups()
    port = int(port) if port else PROTOCOLS[protocol]
    if not 1 <= port <= 65535:
        raise HacError(f"{url}: port {port} is out of range (1-65535)")
    return ServerModel(protocol, host, port, model, version or "")


def client_module(protocol: str):
    """``tritonclient.grpc`` or ``tritonclient.http``; a one-line HacError where it is not installed."""
    import importlib

    try:
        return importlib.import_module(f"tritonclient.{protocol}")
    except ImportError as e:
        raise HacError(f"the triton engine needs tritonclient[{protocol}] ({one_line(e)}): "
                       "pip install -e '.[triton]'") from None


def reason(e: BaseException) -> str:
    """A Triton client exception in a few words (gRPC's status and message, not its debug string)."""
    msg = e.message() if callable(getattr(e, "message", None)) else str(e)
    status = e.status() if callable(getattr(e, "status", None)) else None
    text = one_line(Exception(msg)) if msg else type(e).__name__
    if status and str(status) not in text:
        text = f"{text} ({status})"
    return re.sub(r"\s+", " ", text)[:300]


def open_client(where: ServerModel, timeout: float):
    """A client of ``where``'s protocol (HTTP: connection and network timeouts of ``timeout`` seconds)."""
    mod = client_module(where.protocol)
    if where.protocol == "grpc":
        return mod.InferenceServerClient(where.address)
    return mod.InferenceServerClient(where.address, connection_timeout=timeout, network_timeout=timeout)


def connect(where: ServerModel, timeout: float):
    """An open client to a live server on which ``where.model`` is ready; else a one-line HacError."""
    client = open_client(where, timeout)
    try:
        _check_ready(client, where, timeout)
    except BaseException:
        close_client(client)
        raise
    return client


def close_client(client) -> None:
    try:
        client.close()
    except Exception:  # noqa: BLE001 - closing a dead connection, or one of another thread
        pass


def _check_ready(client, where: ServerModel, timeout: float) -> None:
    try:
        live = client.is_server_live(**timeout_options(where, timeout))
    except Exception as e:  # noqa: BLE001 - tritonclient raises its own and the transport's errors
        raise HacError(f"{where}: no Triton server answers at {where.address} within {timeout:g} s ({reason(e)})") from None
    if not live:
        raise HacError(f"{where}: the Triton server at {where.address} is not live")
    try:
        ready = client.is_model_ready(where.model, where.version, **timeout_options(where, timeout))
    except Exception as e:  # noqa: BLE001
        raise HacError(f"{where}: the server did not say whether {where.model} is ready ({reason(e)})") from None
    if not ready:
        try:
            index = client.get_model_repository_index(**timeout_options(where, timeout), **_json(where))
            models = index.get("models", index) if isinstance(index, dict) else index
            names = sorted({m.get("name") for m in models if m.get("state", "READY") == "READY"})
        except Exception:  # noqa: BLE001 - only for the message
            names = []
        serves = f"it serves: {', '.join(names)}" if names else "it lists no ready model"
        raise HacError(f"{where}: the server has no model {where.model!r} ready ({serves})")


def timeout_options(where: ServerModel, timeout: float) -> dict:
    """A request's time bound: gRPC per call; HTTP's is set on the client (``open_client``)."""
    return {"client_timeout": timeout} if where.protocol == "grpc" else {}


def _json(where: ServerModel) -> dict:
    return {"as_json": True} if where.protocol == "grpc" else {}


def server_manifest(client, where: ServerModel, timeout: float) -> tuple[dict, dict]:
    """The HAC manifest in the model's config, and the config itself; checked against the model's metadata."""
    try:
        config = client.get_model_config(where.model, where.version, **timeout_options(where, timeout), **_json(where))
        meta = client.get_model_metadata(where.model, where.version, **timeout_options(where, timeout), **_json(where))
    except Exception as e:  # noqa: BLE001
        raise HacError(f"{where}: cannot read the model's config ({reason(e)})") from None
    config = config.get("config", config)
    text = ((config.get("parameters") or {}).get(MANIFEST_PARAMETER) or {}).get("string_value")
    if not text:
        raise HacError(f"{where}: not a HAC model (its config has no {MANIFEST_PARAMETER} parameter; "
                       "make the repository with hac-export --format triton)")
    try:
        manifest = json.loads(text)
    except ValueError:
        raise HacError(f"{where}: the model's {MANIFEST_PARAMETER} is not JSON") from None
    _check_metadata(where, manifest, meta)
    return manifest, config


def _check_metadata(where: ServerModel, manifest: dict, meta: dict) -> None:
    """The server's input and output against the manifest's (k, image size, classes); a mismatch is refused."""
    try:
        inp, out = manifest["input"], manifest["output"]
        want_in = [int(d) for d in inp["shape"][1:]]
        want_out = [len(manifest["classes"])]
        got_in, got_out = meta["inputs"][0], meta["outputs"][0]
        shape_in = [int(d) for d in got_in["shape"]][1:]
        shape_out = [int(d) for d in got_out["shape"]][1:]
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise HacError(f"{where}: unreadable model metadata or manifest ({type(e).__name__}: {one_line(e)})") from None
    pre = Preprocess.from_dict(manifest["preprocess"], str(where))
    problems = []
    if got_in["name"] != inp["name"] or shape_in != want_in or got_in["datatype"] != "FP32":
        problems.append(f"input {got_in['name']} {got_in['datatype']} {shape_in}, the manifest says "
                        f"{inp['name']} FP32 {want_in} (k={pre.k}, {pre.image_size} px)")
    if got_out["name"] != out["name"] or shape_out != want_out:
        problems.append(f"output {got_out['name']} {shape_out}, the manifest says {out['name']} {want_out} "
                        f"({len(manifest['classes'])} classes)")
    attention = manifest.get("attention")
    if attention:
        served = {o.get("name"): [int(d) for d in o.get("shape", [])][1:] for o in meta.get("outputs", [])}
        if served.get(attention["name"]) != [pre.k]:
            problems.append(f"no output {attention['name']} [{pre.k}] (α, eq. 2) beside the logits")
    if problems:
        raise HacError(f"{where}: the served model does not match its HAC manifest: {'; '.join(problems)}")


def check_labels(client, mod, where: ServerModel, manifest: dict, timeout: float) -> None:
    """One zero clip through the server, asking for its labels (classification extension): they must be the
    manifest's classes, index by index (a model packed with another model's labels is refused)."""
    batch = max(1, int((manifest["input"].get("batch") or {}).get("min") or 1))  # an engine's profile minimum
    shape = [batch, *[int(d) for d in manifest["input"]["shape"][1:]]]
    inp = mod.InferInput(manifest["input"]["name"], shape, "FP32")
    inp.set_data_from_numpy(np.zeros(shape, np.float32))
    n = len(manifest["classes"])
    out = mod.InferRequestedOutput(manifest["output"]["name"], class_count=n)
    try:
        result = client.infer(where.model, [inp], model_version=where.version, outputs=[out],
                              **timeout_options(where, timeout))
    except Exception as e:  # noqa: BLE001
        raise HacError(f"{where}: the model does not run on the server ({reason(e)})") from None
    labels = {}
    for entry in np.asarray(result.as_numpy(manifest["output"]["name"])).reshape(-1):
        text = entry.decode() if isinstance(entry, bytes) else str(entry)
        parts = text.split(":", 2)
        if len(parts) == 3:
            labels[int(parts[1])] = parts[2]
    served = [labels.get(i, "?") for i in range(n)]
    if served != list(manifest["classes"]):
        raise HacError(f"{where}: the server labels the outputs {', '.join(served)}, but the model's manifest "
                       f"says {', '.join(manifest['classes'])}: refused (re-export the repository)")
