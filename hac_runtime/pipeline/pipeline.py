"""The streaming pipeline: sources → faces → per-track clips → dynamic batches → engine → results.

Threads: one decoder and one face worker per source (bounded queues between
them give back-pressure), one inference thread batching clips across all
tracks and sources. A source that cannot be opened or breaks mid-stream is
reported through ``on_error`` and the others go on.

Embedding it::

    from hac_runtime.pipeline import Pipeline
    with Pipeline("hac.int8.onnx") as pipe:
        for result in pipe.run(["cam.mp4", "rtsp://..."]):
            print(result["source"], result["track"], result["label"], result["score"])
"""
from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from hac_runtime.clips import normalize
from hac_runtime.errors import BatchFailed, HacError, HacException, left_blocked, one_line
from hac_runtime.pipeline.config import DEFAULTS, PipelineConfig
from hac_runtime.pipeline.batcher import DynamicBatcher
from hac_runtime.pipeline.breaker import CircuitBreaker
from hac_runtime.pipeline.policy import BufferedFace, ClipRequest, PerTrack, SlidingWindow
from hac_runtime.pipeline.progress import lag_warning

_DONE = object()


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class Prefetch:
    """Iterate ``iterable`` in a thread, ``size`` items ahead (decode overlaps face work); its time goes
    to ``seconds["decode"]``. Iteration ends early once ``cancelled()`` is true, even while the decoder is
    blocked in a read (a stalled stream), so Ctrl-C is never held up by a source.

    ``close()`` stops the thread and waits briefly for it; it returns whether the thread ended, i.e.
    whether the source can be released safely (a read blocked in the decoder is left to its timeout).
    """

    def __init__(self, iterable, size: int, cancelled, seconds: dict | None = None, release=None):
        self._release = release  #: closes the source; called by the decoder thread itself if ``close`` gave up on it
        self._lock = threading.Lock()
        self._ended = self._abandoned = False
        self._q: queue.Queue = queue.Queue(maxsize=size)
        self._error: list[BaseException] = []
        self._halt = threading.Event()
        self._cancelled = cancelled
        self._seconds = seconds
        self._iterable = iterable
        self.waited = 0.0  #: seconds the consumer spent waiting for items (a source slower than its consumer)
        self._thread = threading.Thread(target=self._pump, daemon=True, name="hac-decode")
        self._thread.start()

    def _timed(self):
        it = iter(self._iterable)
        while True:
            t0 = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                return
            if self._seconds is not None:
                self._seconds["decode"] += time.perf_counter() - t0
            yield item

    def _stopping(self) -> bool:
        return self._halt.is_set() or self._cancelled()

    def _pump(self):
        try:
            for item in self._timed():
                while not self._stopping():
                    try:
                        self._q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stopping():
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self._error.append(e)
        finally:
            while not self._stopping():  # the end marker (a slow consumer may hold the queue full for long)
                try:
                    self._q.put(_DONE, timeout=0.1)
                    break
                except queue.Full:
                    continue
            with self._lock:
                self._ended = True
                abandoned = self._abandoned
            if abandoned and self._release is not None:
                self._release()  # close() gave up waiting for this read: the source is released here

    def __iter__(self):
        while True:
            t0 = time.monotonic()
            try:
                item = self._q.get(timeout=0.1)
                self.waited += time.monotonic() - t0
            except queue.Empty:
                self.waited += time.monotonic() - t0
                if self._cancelled():
                    return
                if not self._thread.is_alive() and self._q.empty():  # ended without its marker
                    if self._error:
                        raise self._error[0]
                    return
                continue
            if item is _DONE:
                if self._error:
                    raise self._error[0]
                return
            yield item

    def close(self) -> bool:
        self._halt.set()
        self._thread.join(timeout=2.0)  # at most one frame's decode in flight, unless a read is blocked
        with self._lock:
            if self._ended:
                return True
            self._abandoned = True  # the thread releases the source when its read returns
        left_blocked(self._thread)
        return False


def named(name: str, msg: str) -> str:
    """``msg`` about source ``name``, with the name in front unless the message names it already."""
    return msg if name in msg else f"{name}: {msg}"


def _print_error(name: str, msg: str) -> None:
    print(f"hac-run: {named(name, msg)}", file=sys.stderr)


def no_source_used(errors) -> str:
    """The one line of a run none of whose sources could be used, from each source's ``(name, error)``."""
    return f"no source could be used ({'; '.join(named(n, e) for n, e in errors)})"


@dataclass
class SourceReport:
    name: str
    frames: int = 0
    faces: int = 0  # faces of confirmed tracks (a tentative track's are counted once it is confirmed)
    low_quality: int = 0  # of those, below the alignment quality threshold (faces.quality): not classified
    unconfirmed: int = 0  # tentative tracks no later detection found again (pipeline.tracker): not classified
    clips: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    boxes: dict = field(default_factory=dict)  # frame → [(track, box)], kept only for annotated video
    fps: float | None = None  # the source's frame rate, once open (real-time factor)
    frame_count: int | None = None  # frames it announces, once open (files)
    started: float | None = None  # time.monotonic() when its frames began, and when they ended
    ended: float | None = None

    @property
    def reading(self) -> bool:
        """The source opened and its frames are being read."""
        return self.started is not None
    running: list = field(default_factory=list)  # track policy + video or timeline: the sliding-window decisions
    unclassified: int = 0  # clips of batches the engine could not run (BatchFailed)
    unclassified_reason: str | None = None
    reasons_said: set = field(default_factory=set)  # each reason clips went unclassified for is said once
    seconds: dict = field(default_factory=lambda: defaultdict(float))  # busy time per stage


def draw_confirmed(faces, index: int, tentative: dict, drawn: dict) -> list:
    """The (track, box) pairs to draw on frame ``index``: its confirmed faces, each with the frames it had
    while tentative drawn too (into ``drawn``, frame → pairs); a tentative face waits in ``tentative``
    (a false box is closed unconfirmed and never drawn)."""
    boxes = []
    for f in faces:
        if not f.confirmed:
            tentative.setdefault(f.track, []).append((index, f.box))
            continue
        boxes.append((f.track, f.box))
        for i, box in tentative.pop(f.track, []):
            drawn.setdefault(i, []).append((f.track, box))
    if boxes:
        drawn[index] = boxes
    return boxes


def _cores() -> int:
    """The cores this process may run on (its affinity, where the OS says)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class Pipeline:
    """Classify facial expressions per face track in any number of video sources with one engine."""

    def __init__(self, model, engine: str = "auto", device: str = "auto", precision: str | None = None,
                 config: PipelineConfig | None = None, on_error: Callable[[str, str], None] | None = None,
                 keep_boxes: bool = False, gpu_preprocess: bool | None = None, cuda_graph: bool = False,
                 keep_running: bool | None = None, **settings):
        """``config`` (``PipelineConfig``, its defaults) with ``settings`` (any of its fields) on top."""
        from hac_runtime.engines.select import choose_engine

        self.config = (config or DEFAULTS).replace(**settings)
        self._load_face_models()  # before the engine: a missing face model fails fast and leaves nothing open
        self._background_detection = self.config.background_detection  # run() decides per run
        policy = self.config.policy or "track"
        #: how the engine was chosen (None when an opened engine was passed in); an ONNX Runtime CPU engine's
        #: workers sleep between clips, leaving the cores to the face threads (``load_engine``'s ``spin``)
        self.choice = None if hasattr(model, "infer") else choose_engine(model, engine, device, precision,
                                                                             cuda_graph=cuda_graph,
                                                                             timeout=self.config.timeout,
                                                                             spin=False)
        self.engine = model if self.choice is None else self.choice.engine
        pre = self.engine.preprocess
        self.k, self.size = pre.k, pre.image_size
        self.mean, self.std = pre.mean, pre.std
        self.aligner = pre.aligner
        self.classes = self.engine.classes
        self.policy_name = policy
        self.max_batch = min(self.config.max_batch, self.engine.max_batch or self.config.max_batch)
        self.on_error = on_error or _print_error
        self.keep_boxes = keep_boxes
        #: track policy: also classify sliding windows, kept in ``SourceReport.running`` (annotated video,
        #: timeline); default: when boxes are kept
        self.keep_running = keep_boxes if keep_running is None else keep_running
        # On a GPU engine, warp and normalise on the GPU and hand the engine device tensors (no host round trip).
        on_gpu = str(getattr(self.engine, "device", "cpu")).startswith("cuda")
        self.gpu_preprocess = on_gpu if gpu_preprocess is None else gpu_preprocess
        self.reports: list[SourceReport] = []
        self.seconds: dict[str, float] = defaultdict(float)  # inference-side busy time: preprocess, infer
        self.batches: list[int] = []
        #: batches of result clips the last run's circuit breaker kept from a failing engine (``breaker``)
        self.not_sent = 0
        self._drain = threading.Event()

    def _load_face_models(self) -> None:
        """The face models, loaded now rather than on a source's first frames (~1 s: dlib's 68-point predictor,
        shared by every thread, and the HOG detector each thread takes a copy of)."""
        from hac_runtime.faces import LandmarkPredictor
        from hac_runtime.faces.detectors import load_hog

        LandmarkPredictor()  # cached per process
        load_hog()

    @property
    def draining(self) -> bool:
        """True once ``drain()`` was called."""
        return self._drain.is_set()

    def drain(self) -> None:
        """Stop reading the sources; the running ``run()`` still classifies every face already buffered
        (each open track is closed as at the end of its source) and every clip in flight, then ends.
        Safe to call from a signal handler or another thread (Ctrl-C in ``hac-run``)."""
        self._drain.set()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self.engine.close()

    def _policy(self):
        if self.policy_name == "window":
            return SlidingWindow(self.k, window=self.config.window, stride=self.config.stride)
        return PerTrack(self.k)

    def _make_stage(self, photo: bool = False):
        from hac_runtime.faces import DEFAULT_DETECTOR, FaceProcessor
        from hac_runtime.pipeline.faces import MultiFaceStage

        processor = FaceProcessor(detector=self.config.detector or DEFAULT_DETECTOR, aligner=self.aligner,
                                  size=self.size, new_face_score=self.config.new_face_score)
        warper = None
        if self.gpu_preprocess:
            from hac_runtime.pipeline.gpu import TorchFaceWarper

            warper = TorchFaceWarper(self.size, self.engine.device if str(self.engine.device).startswith("cuda") else "cpu")
        return MultiFaceStage(processor, self.aligner, self.size, self.config.detect_every, warper=warper,
                              background_detection=self._background_detection, photo=photo)

    def _source_worker(self, index_of_source: int, source, report: SourceReport, requests: queue.Queue,
                       stop: threading.Event) -> None:
        from hac_runtime.media import FrameSource, is_album, is_photo, is_stream, open_source

        stage = src = None
        try:
            src = open_source(source, timeout=self.config.timeout)
            fps = src.fps or self.config.fps
            # a folder of separate photos (as hac-prepare reads one): every face of each is its own track and clip;
            # read as frames, no face was confirmed by the next one (another photo), and none was classified
            album = is_album(src)
            photos = album or is_photo(src)
            stage = self._make_stage(photo=photos)
            if album:
                self.on_error(report.name, f"read as {len(src.files)} separate photos, each face classified on its "
                              "own (the image names are not one numbered frame sequence such as frame_0001.png, frame_0002.png…)")
            # a photo's face: one clip, whatever the run's policy (a photo never fills a sliding window)
            policy = PerTrack(self.k) if photos else self._policy()
            buffers: dict[int, object] = {}
            # An annotated video or timeline of a track-policy run shows the running decision (sliding
            # windows), not the track's final one painted backwards: those clips are classified for drawing only.
            running = (SlidingWindow(self.k, window=self.config.window, stride=self.config.stride)
                       if self.keep_running and self.policy_name == "track" else None)
            running_buffers: dict[int, object] = {}

            def emit(req: ClipRequest | None, for_drawing: bool = False):
                if req is not None:
                    req.source_index, req.for_drawing = index_of_source, for_drawing
                    if album:  # its frame indices count the photos; the name says which one
                        req.file = src.file_of(req.frame_start)
                    report.clips += not for_drawing
                    requests.put(req)  # blocks when inference is behind: back-pressure

            def feed(pol, bufs: dict, track: int, face: BufferedFace, confirmed: bool) -> ClipRequest | None:
                """Add ``face`` to ``track``'s buffer of policy ``pol``; the clip it completes, if any (none while
                the track is tentative: a false box may yet end it)."""
                buf = bufs.get(track)
                if buf is None:
                    buf = bufs[track] = pol.new_buffer()
                buf.append(face)
                return pol.on_face(report.name, track, buf) if confirmed else None

            tentative: dict[int, list] = {}  # annotated video: a tentative track's (frame, box) until it is confirmed
            uncounted: dict[int, list] = {}  # a tentative track's [faces, low quality]: counted once confirmed

            def close(tracks):
                for t in tracks:
                    tentative.pop(t.id, None)
                    uncounted.pop(t.id, None)
                    running_buffers.pop(t.id, None)
                    buf = buffers.pop(t.id, None)
                    if not t.confirmed:  # a tentative track the next detection did not find again: no face
                        report.unconfirmed += 1
                    elif buf is not None:
                        emit(policy.on_close(report.name, t.id, buf))

            report.fps, report.frame_count = src.fps, getattr(src, "frame_count", None)
            # set back when the source ends (it may be re-read); every photo of an album is looked at
            src.every = every = 1 if album else self.config.analyse_every
            windows = policy if isinstance(policy, SlidingWindow) else running  # sliding windows, if any
            if windows is not None and windows.holds(fps, every) < self.k:
                self.on_error(report.name,  # now, not when the source ends: a live one may never end
                    f"a {self.config.window:g} s window holds {windows.holds(fps, every)} analysed "
                    f"frames at {fps:g} fps with analyse_every {every}, fewer than the model's k = {self.k}: "
                    "no clip can be made; lower analyse_every or widen the window")
            # a camera or stream URL (not a recorded file behind a URL): said once if it cannot be followed
            live = is_stream(getattr(src, "path", source)) and not getattr(src, "frame_count", None)
            lag_said = False
            max_every = windows.max_every(fps) if windows is not None else None
            report.started = time.monotonic()
            frames = Prefetch(src, 4, lambda: stop.is_set() or self._drain.is_set(), stage.seconds, release=src.close)
            try:
                report.seconds = stage.seconds
                boxes: list = []  # the last analysed frame's, drawn on the frames between (analyse_every)
                for index, bgr in frames:
                    if stop.is_set() or self._drain.is_set():
                        break
                    report.frames += 1
                    if live and not lag_said and report.frames % 25 == 0:
                        said = lag_warning(report.frames, time.monotonic() - report.started, src.fps, every,
                                           frames.waited, max_every)
                        if said:
                            lag_said = True
                            self.on_error(report.name, said)  # now: a live source may never end
                    if bgr is not None and index % every:  # a source of its own that does not know ``every``
                        bgr = None
                    if bgr is None:  # decoded, not analysed (analyse_every)
                        if self.keep_boxes and boxes:
                            report.boxes[index] = list(boxes)  # its own: a confirmed face's back-fill appends
                        for seen in tentative.values():
                            seen.append((index, seen[-1][1]))
                        continue
                    faces, closed = stage.step(index, bgr)
                    close(closed)
                    if self.keep_boxes:
                        boxes = draw_confirmed(faces, index, tentative, report.boxes)
                    t = index / fps
                    for f in faces:
                        counts = uncounted.setdefault(f.track, [0, 0])
                        counts[0] += 1
                        counts[1] += not f.ok
                        if f.confirmed:  # a false box's frames count as no face (report.unconfirmed)
                            report.faces += counts[0]
                            report.low_quality += counts[1]
                            del uncounted[f.track]
                        if not f.ok:  # below the alignment quality threshold: boxed, never classified
                            continue
                        face = BufferedFace(index, t, f.aligned_rgb, f.box)
                        emit(feed(policy, buffers, f.track, face, f.confirmed))
                        if running is not None:
                            emit(feed(running, running_buffers, f.track, face, f.confirmed), for_drawing=True)
                    if album:  # the next image is another photo: its faces are new ones (new track ids)
                        close(stage.tracker.close_all())
            finally:
                report.ended = time.monotonic()
                if frames.close():  # the decoder thread has ended: the source can be released (else it does)
                    src.close()
            close(stage.finish())
            report.warnings.extend(getattr(src, "warnings", []))
            if report.clips == 0 and report.unconfirmed:
                from hac_runtime.pipeline.tracker import unconfirmed_note

                report.warnings.append(f"{unconfirmed_note(report.unconfirmed)}: not classified")
            elif report.faces == 0 and stage.weak_detections:  # else they are what the score keeps out
                from hac_runtime.faces.detectors import weak_detections_note

                report.warnings.append(weak_detections_note(stage.weak_detections,
                                                            stage.processor.detector.new_face_score))
            if report.low_quality:
                from hac_runtime.faces.quality import low_quality_note

                report.warnings.append(f"{low_quality_note(report.low_quality, report.faces)}: not classified")
            for w in report.warnings:
                self.on_error(report.name, w)
            if report.frames == 0 and not self._drain.is_set():
                raise HacError("no frame could be decoded")
        except HacException as e:
            report.error = str(e)
            self.on_error(report.name, report.error)
        except Exception as e:  # noqa: BLE001 - one broken source must not stop the others
            report.error = f"{type(e).__name__}: {one_line(e)}"
            self.on_error(report.name, report.error)
        finally:
            if src is not None:
                src.every = FrameSource.every  # a FrameSource passed in is read again whole (annotated video)
            if stage is not None:
                stage.close()  # its background detection too, on every path

    def _infer(self, reqs: list[ClipRequest]) -> list[dict]:
        t0 = time.perf_counter()
        if isinstance(reqs[0].faces[0].face, np.ndarray):
            batch = np.stack([normalize(np.stack([f.face for f in r.faces]), self.mean, self.std) for r in reqs])
        else:  # device tensors: stack and normalise where they are
            import torch

            from hac_runtime.pipeline.gpu import normalize_torch

            faces = torch.stack([torch.stack([f.face for f in r.faces]) for r in reqs])  # (B, k, S, S, 3)
            b, k = faces.shape[:2]
            batch = normalize_torch(faces.flatten(0, 1), self.mean, self.std).view(b, k, 3, self.size, self.size)
        t1 = time.perf_counter()
        logits, alpha = self.engine.infer_all(batch)
        if not isinstance(logits, np.ndarray):
            logits = logits.float().cpu().numpy()
        if alpha is not None and not isinstance(alpha, np.ndarray):
            alpha = alpha.float().cpu().numpy()
        probs = softmax(logits)
        self.seconds["preprocess"] += t1 - t0
        self.seconds["infer"] += time.perf_counter() - t1
        self.batches.append(len(reqs))
        out = []
        for i, (r, p) in enumerate(zip(reqs, probs)):
            best = int(p.argmax())
            frames = [f.frame for f in r.faces]
            out.append({
                "source": r.source, "source_index": r.source_index, "track": r.track,
                "frame_start": r.frame_start, "frame_end": r.frame_end,
                "frames": frames,  # the k sampled frames (§3.1), in order
                "t_start": round(r.t_start, 3), "t_end": round(r.t_end, 3),
                "label": self.classes[best], "score": float(p[best]),
                "probs": {c: float(v) for c, v in zip(self.classes, p)},
                "box": [int(v) for v in r.box],
            })
            if r.file is not None:
                out[-1]["file"] = r.file
            if alpha is not None:  # eq. 2: how much each sampled frame counted (eq. 3 divides by their sum)
                out[-1]["attention"] = {"frames": frames, "alpha": [round(float(a), 6) for a in alpha[i]]}
        return out

    def _batch_failed(self, reqs: list[ClipRequest], e: BatchFailed, reason: str | None = None) -> None:
        """Count, per source, the clips of a failed batch (``SourceReport.unclassified``); say it when the reason
        is new for that source (a dead server fails every batch the same way: the run's last line sums them).
        ``reason``: the one kept for the run's last line, when not ``e`` (the breaker kept the batch from the
        engine: the engine's own last failure)."""
        by_source: dict[int, int] = defaultdict(int)
        for r in reqs:
            by_source[r.source_index] += not r.for_drawing
        for i, report in enumerate(self.reports):
            n = by_source.get(i, 0)
            if n:
                report.unclassified += n
                if str(e) not in report.reasons_said:  # the same reason again is counted, not repeated
                    report.reasons_said.add(str(e))
                    self.on_error(report.name, f"{n} clip(s) not classified: {e}")
                report.unclassified_reason = reason or str(e)

    def run(self, sources: Iterable) -> Iterator[dict]:
        """Yield one result dict (CONTRACTS.md "Results line") per classified clip, as they come."""
        sources = list(sources)
        if not sources:
            raise HacError("no source given")
        stop = threading.Event()
        self._drain.clear()
        requests: queue.Queue = queue.Queue(maxsize=4 * self.max_batch)
        results: queue.Queue = queue.Queue()
        from hac_runtime.media import FrameSource

        self.reports = [SourceReport(s.name if isinstance(s, FrameSource) else str(s)) for s in sources]
        # a detection beside the tracking needs a core the source threads leave free
        self._background_detection = self.config.background_detection and len(sources) < _cores()
        workers = [threading.Thread(target=self._source_worker, args=(i, s, r, requests, stop), daemon=True,
                                    name=f"hac-source-{i}") for i, (s, r) in enumerate(zip(sources, self.reports))]

        def infer_loop():
            batcher = DynamicBatcher(requests, self.max_batch, self.config.max_wait)
            breaker = CircuitBreaker()
            self.not_sent = 0
            try:
                while True:
                    batch = batcher.next_batch()
                    if not batch:
                        break
                    refused = breaker.refusal()  # a server that failed batches in a row is given a pause
                    if refused is not None:
                        self.not_sent += any(not r.for_drawing for r in batch)  # batches of result clips
                        self._batch_failed(batch, refused, reason=breaker.reason)
                        continue
                    try:
                        out = self._infer(batch)
                    except BatchFailed as e:  # this batch is lost (a server down or slow); the next is tried
                        breaker.failed(e)
                        self._batch_failed(batch, e)
                        continue
                    breaker.succeeded()
                    for req, res in zip(batch, out):
                        if req.for_drawing:  # a running decision, for the annotated video only
                            self.reports[req.source_index].running.append(res)
                        else:
                            results.put(res)
            except BaseException as e:  # noqa: BLE001 - surfaced in the caller's thread
                stop.set()
                results.put(e)
            finally:
                results.put(_DONE)

        def closer():
            for w, r in zip(workers, self.reports):
                while w.is_alive():
                    w.join(timeout=0.1)
                    if self._drain.is_set() and not r.reading:
                        left_blocked(w)
                        break  # still opening (a stream that does not answer): nothing of it to classify
            requests.put(None)

        inferer = threading.Thread(target=infer_loop, daemon=True, name="hac-infer")
        for w in workers:
            w.start()
        inferer.start()
        threading.Thread(target=closer, daemon=True, name="hac-close").start()
        try:
            while True:
                item = results.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
        if all(r.error for r in self.reports):
            raise HacError(no_source_used((r.name, r.error) for r in self.reports))

