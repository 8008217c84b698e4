"""The ``triton`` engine: ``infer`` sends the batch to the server and returns its logits.

Connecting checks everything first (``loader``): a live server, the model ready, its HAC manifest,
its metadata and labels. A batch the server cannot answer (down, killed, over ``timeout``) raises
``BatchFailed``: the pipeline reports it for that batch and goes on with the next (after three in a row it
gives the server a pause: ``pipeline.breaker``).
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from hac_runtime.engines.base import Engine, check_manifest, run_on_host
from hac_runtime.engines.triton import loader
from hac_runtime.errors import BatchFailed, HacError

DEFAULT_TIMEOUT_S = 10.0


class TritonEngine(Engine):
    kind = "triton"

    def __init__(self, url: str, timeout: float | None = None):
        self.where = loader.parse_url(url)
        self.timeout = DEFAULT_TIMEOUT_S if timeout is None else float(timeout)
        self._mod = loader.client_module(self.where.protocol)
        self.client = loader.connect(self.where, self.timeout)
        self._local = threading.local()  # tritonclient.http (gevent) serves only the thread that made it
        self._clients = [self.client]
        self._owner = threading.current_thread()
        try:
            manifest, config = loader.server_manifest(self.client, self.where, self.timeout)
            check_manifest(manifest, Path(manifest.get("artifact", {}).get("file") or "model"), verify_file=False)
            loader.check_labels(self.client, self._mod, self.where, manifest, self.timeout)
        except HacError:
            loader.close_client(self.client)
            raise
        super().__init__(self.where.model, manifest, str(self.where.address))
        self.max_batch = int(config.get("max_batch_size") or 0) or self.max_batch  # min: the manifest's (infer pads)
        self.platform = config.get("platform") or config.get("backend") or "?"

    @property
    def providers(self) -> list[str]:
        return [f"triton-{self.where.protocol}-{self.platform}"]

    def _run(self, batch):
        return run_on_host(batch, self._run_host)

    def _run_host(self, batch: np.ndarray) -> tuple:
        inp = self._mod.InferInput(self.input_name, list(batch.shape), "FP32")
        inp.set_data_from_numpy(np.ascontiguousarray(batch))
        outs = [self._mod.InferRequestedOutput(n) for n in self.output_names]
        try:
            result = self._client().infer(self.where.model, [inp], model_version=self.where.version, outputs=outs,
                                       **loader.timeout_options(self.where, self.timeout))
        except Exception as e:  # noqa: BLE001 - the server is down, was killed, or did not answer in time
            raise BatchFailed(f"{self.where}: {loader.reason(e)}") from None
        return tuple(np.asarray(result.as_numpy(n), np.float32) for n in self.output_names)

    def _client(self):
        """This thread's client: the connecting one over gRPC (thread-safe), one per thread over HTTP."""
        if self.where.protocol == "grpc" or threading.current_thread() is self._owner:
            return self.client
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = loader.open_client(self.where, self.timeout)
            self._clients.append(client)
        return client

    def close(self) -> None:
        clients, self._clients, self.client = getattr(self, "_clients", []), [], None
        for client in clients:
            loader.close_client(client)
