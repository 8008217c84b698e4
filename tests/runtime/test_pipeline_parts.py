"""Tracker, clip policies and the dynamic batcher on real data structures."""
import math
import queue
import threading

import numpy as np
import pytest

from hac_runtime.errors import BatchFailed
from hac_runtime.pipeline.batcher import DynamicBatcher
from hac_runtime.pipeline.breaker import CircuitBreaker
from hac_runtime.pipeline.policy import BufferedFace, PerTrack, SlidingWindow, TrackBuffer
from hac_runtime.boxes import iou
from hac_runtime.pipeline.tracker import FaceTracker


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert abs(iou((0, 0, 10, 10), (5, 0, 10, 10)) - 50 / 150) < 1e-9


def test_tracker_keeps_ids_for_two_moving_faces_and_closes_lost_ones():
    tr = FaceTracker(min_iou=0.3, max_missed=2)
    ids = []
    for f in range(20):
        a = (10 + 2 * f, 50, 60, 60)
        b = (300 - 2 * f, 40, 70, 70)
        boxes = [b, a] if f % 2 else [a, b]  # detection order changes
        tracks, closed = tr.update(f, boxes)
        got = {tuple(t.box): t.id for t in tracks}
        ids.append((got[a], got[b]))
        assert closed == []
    assert len(set(ids)) == 1 and ids[0][0] != ids[0][1]
    # face b leaves: closed after max_missed + 1 frames without it
    closed_all = []
    for f in range(20, 24):
        _, closed = tr.update(f, [(10 + 2 * f, 50, 60, 60)])
        closed_all += closed
    assert [t.id for t in closed_all] == [ids[0][1]]
    # a face entering far away gets a new id
    tracks, _ = tr.update(24, [(10 + 48, 50, 60, 60), (500, 300, 50, 50)])
    assert tracks[0].id == ids[0][0] and tracks[1].id not in ids[0]


def _face(i, fps=10.0):
    return BufferedFace(i, i / fps, np.full((4, 4, 3), i % 256, np.uint8), (0, 0, 4, 4))


def test_sliding_window_emits_every_stride_over_window():
    pol = SlidingWindow(k=5, window=2.0, stride=1.0)
    buf = pol.new_buffer()
    out = []
    for i in range(60):
        buf.append(_face(i))
        r = pol.on_face("s", 0, buf)
        if r:
            out.append(r)
    assert len(out) >= 5
    for r in out:
        assert len(r.faces) == 5
        assert r.t_end - r.t_start <= 2.0
        assert [f.frame for f in r.faces] == sorted(f.frame for f in r.faces)
    assert len(buf.items) <= 21  # only the last window's faces are kept
    starts = [r.t_end for r in out]
    assert all(b - a >= 1.0 - 1e-9 for a, b in zip(starts, starts[1:]))


@pytest.mark.parametrize("every", [1, 2, 3])
def test_sliding_window_clips_stay_on_the_stride_grid(every):
    """Each clip used to come a stride after the last one, so it drifted by up to a face spacing (0.08 s a
    clip at analyse_every 3: 11 clips in 12 s, not 12), and floating-point times (29 / 25 - 4 / 25 < 1.0)
    moved clips a frame late at analyse_every 1."""
    fps, pol = 25.0, SlidingWindow(k=5, window=2.0, stride=1.0)
    buf, ends = pol.new_buffer(), []
    for i in range(0, 300, every):
        buf.append(BufferedFace(i, i / fps, None, (0, 0, 4, 4)))
        r = pol.on_face("s", 0, buf)
        if r:
            ends.append(r.t_end)
            assert len(buf.items) == min(i // every + 1, math.ceil(50 / every))  # the faces of t > now - 2 s
    assert len(ends) == 12
    first = ends[0]  # the fifth face: no window before it holds k faces
    assert first == pytest.approx(4 * every / fps)
    for n, t in enumerate(ends):  # each on the first face at or past its due time
        assert first + n - 1e-6 <= t < first + n + every / fps - 1e-6


def test_sliding_window_starts_its_grid_again_after_a_gap():
    pol = SlidingWindow(k=2, window=2.0, stride=1.0)
    buf, ends = pol.new_buffer(), []
    for t in [0.0, 0.5, 1.0, 1.5, 4.2, 4.4, 4.6, 5.0, 5.2]:
        buf.append(BufferedFace(0, t, None, (0, 0, 4, 4)))
        r = pol.on_face("s", 0, buf)
        if r:
            ends.append(r.t_end)
    assert ends == [0.5, 1.5, 4.4]  # 4.2: one face in the window; 4.4: due since 2.5, so the next is 5.4, not 4.5


@pytest.mark.parametrize("fps,window,k", [(25.0, 2.0, 5), (10.0, 1.0, 3), (30.0, 2.0, 16)])
def test_sliding_window_says_how_many_faces_it_holds_as_on_face_keeps_them(fps, window, k):
    """holds() and max_every() (the pipeline's short-window warning and the lag line's suggestion) follow
    on_face itself: at max_every a window still makes clips, one frame more and it makes none."""
    pol = SlidingWindow(k=k, window=window, stride=1.0)
    top = pol.max_every(fps)
    for every in (1, top, top + 1):
        buf, held, clips = pol.new_buffer(), 0, 0
        for i in range(0, int(10 * fps), every):
            buf.append(BufferedFace(i, i / fps, None, (0, 0, 4, 4)))
            clips += pol.on_face("s", 0, buf) is not None
            held = max(held, len(buf.items))
        assert held == pol.holds(fps, every)
        assert (clips > 0) == (every <= top)


def test_a_weak_detection_continues_a_track_but_starts_none():
    tr = FaceTracker()
    (t,), _ = tr.update(0, [(10, 10, 50, 50)])
    assert not t.confirmed
    tr.update(1, [(11, 10, 50, 50)])  # found again by a strong detection
    assert t.confirmed
    tracks, _ = tr.update(2, [(12, 10, 50, 50), (300, 300, 50, 50)], strong=[False, False])
    assert tracks == [t, None] and set(tr.tracks) == {t.id}  # the first continues, the second is no face


def test_a_tentative_track_ends_at_the_first_detection_that_does_not_find_it_strongly_again():
    tr = FaceTracker()
    (a, b), _ = tr.update(0, [(10, 10, 50, 50), (300, 300, 50, 50)])
    tracks, closed = tr.update(1, [(11, 10, 50, 50), (301, 300, 50, 50)], strong=[False, False], detected=False)
    assert tracks == [a, b] and not closed  # followed between detections: still tentative
    tracks, closed = tr.update(2, [(12, 10, 50, 50), (302, 300, 50, 50)], strong=[True, False])
    assert tracks == [a, None] and closed == [b] and a.confirmed and not b.confirmed
    _, closed = tr.update(3, [])  # a confirmed track is missed, not ended, by a detection that misses it
    assert closed == [] and set(tr.tracks) == {a.id}


def test_the_astronauts_patch_and_badge_make_no_face_tracks(astronaut):
    """Real dlib on the moving astronaut, detecting on every frame: with HOG's own threshold (0) the mission
    patch and name badge become faces of their own; with its new_face_score only her face does."""
    from fixtures_video import render_frames
    from hac_runtime.faces import FaceProcessor
    from hac_runtime.pipeline.faces import MultiFaceStage

    frames = [f for f, _ in render_frames(astronaut, 24)]

    def tracks_and_weak(new_face_score):
        stage = MultiFaceStage(FaceProcessor(new_face_score=new_face_score), size=64, detect_every=1)
        ids = {f.track for i, bgr in enumerate(frames) for f in stage.step(i, bgr)[0] if f.confirmed}
        return len(ids), stage.weak_detections

    assert tracks_and_weak(0.0)[0] >= 3
    tracks, weak = tracks_and_weak(None)
    assert tracks == 1 and weak >= 5


def test_a_false_box_that_scores_high_once_starts_tentative_and_never_becomes_a_face(astronaut):
    """The moving astronaut with background detection: her name badge scores over 0.5 on frame 34 and starts
    a tentative track; the detection on the next frame scores it lower and ends it. Her face is confirmed on
    frame 1."""
    from fixtures_video import render_frames
    from hac_runtime.faces import FaceProcessor
    from hac_runtime.pipeline.faces import MultiFaceStage

    stage = MultiFaceStage(FaceProcessor(), size=64, detect_every=5, background_detection=True)
    seen, confirmed, ended = {}, {}, []
    for i, (bgr, _) in zip(range(40), render_frames(astronaut, 250)):
        faces, closed = stage.step(i, bgr)
        ended += [t.id for t in closed]
        for f in faces:
            seen.setdefault(f.track, i)
            if f.confirmed:
                confirmed.setdefault(f.track, i)
    stage.close()
    assert confirmed == {0: 1}
    assert len(seen) == 2 and set(ended) == set(seen) - {0}


def test_per_track_one_clip_spanning_the_track_with_bounded_memory():
    pol = PerTrack(k=5, max_frames=64)
    buf = pol.new_buffer()
    for i in range(1000):
        buf.append(_face(i))
        assert pol.on_face("s", 3, buf) is None
        assert len(buf.items) <= 64
    r = pol.on_close("s", 3, buf)
    assert r.track == 3 and len(r.faces) == 5
    assert r.frame_start < 20 and r.frame_end == 999  # still spans the whole track


def test_ring_buffer_drops_oldest():
    buf = TrackBuffer(8)
    for i in range(20):
        buf.append(_face(i))
    assert [x.frame for x in buf.items] == list(range(12, 20))


def test_batcher_gathers_and_flushes():
    q = queue.Queue()
    b = DynamicBatcher(q, max_batch=4, max_wait=0.05)
    for i in range(10):
        q.put(i)
    q.put(None)
    batches = []
    while True:
        x = b.next_batch()
        if not x:
            break
        batches.append(x)
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_batcher_does_not_wait_forever_for_a_full_batch():
    q = queue.Queue()
    b = DynamicBatcher(q, max_batch=8, max_wait=0.01)
    q.put("a")
    got = []
    t = threading.Thread(target=lambda: got.append(b.next_batch()))
    t.start()
    t.join(timeout=5)
    assert got == [["a"]]


def test_background_detection_finds_a_face_that_comes_in_while_another_is_followed():
    """The streaming pipeline's detection runs beside the tracking: a second face that enters while the first
    is being followed starts its own track within 2 × detect_every frames, and the first keeps its id."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fixtures_video import group_photo

    from hac_runtime.faces import FaceProcessor
    from hac_runtime.pipeline.faces import MultiFaceStage

    img, boxes = group_photo(faces=(("obama.jpg", 120), ("biden.jpg", 110)), size=(640, 480))
    (bx, by, bw, bh) = boxes[1]
    alone = img.copy()
    alone[:, int(bx - 0.6 * bw):] = img[0, -1]  # the second person not in the room yet: the plain wall
    import threading

    processor = FaceProcessor()
    real_detect, threads = processor.detect_scored, []
    frame = [0]
    processor.detect_scored = lambda bgr: threads.append((frame[0], threading.current_thread().name)) or real_detect(bgr)
    stage = MultiFaceStage(processor, size=64, detect_every=5, background_detection=True)
    seen = []
    try:
        for i in range(30):
            frame[0] = i
            faces, _ = stage.step(i, alone if i < 8 else img)
            seen.append(sorted(f.track for f in faces))
    finally:
        stage.finish()
    first = seen[0]
    assert len(first) == 1 and all(s[:1] == first for s in seen)  # the first face is followed throughout
    both = next(i for i, s in enumerate(seen) if len(s) == 2)
    assert 8 < both <= 8 + 2 * 5, seen  # found by a detection that ran beside the tracking
    assert all(len(s) == 2 for s in seen[both:])
    # the first frame (no track yet) is searched on the source's thread, and the frame after each new face
    # (it confirms the tentative track); the others beside the tracking
    here = threading.current_thread().name
    assert [i for i, t in threads if t == here] == [0, 1, both + 1], threads
    assert len(threads) >= 5 and all(t.startswith("hac-detect") for _, t in threads if t != here), threads


def test_circuit_breaker_pauses_a_failing_engine_tries_it_again_and_backs_off():
    """Three failures in a row open it for 5 s; the try after the pause (half-open) failing doubles the pause
    (capped), one success closes it. The clock is the breaker's own parameter: time is stepped, not slept."""
    now = [0.0]
    br = CircuitBreaker(failures=3, cooldown=5.0, longest=12.0, clock=lambda: now[0])
    down = BatchFailed("grpc://h:1/m: Deadline Exceeded")
    for _ in range(2):
        assert br.refusal() is None
        br.failed(down)
    assert br.refusal() is None  # two in a row: still called
    br.failed(down)
    refused = br.refusal()
    assert isinstance(refused, BatchFailed) and "3 or more batches in a row failed (grpc://h:1/m: Deadline" in str(refused)
    now[0] = 4.9
    assert br.refusal() is not None
    now[0] = 5.0
    assert br.refusal() is None  # the pause is over: one batch tries the engine
    br.failed(down)  # and fails: 10 s now
    now[0] = 14.9
    assert br.refusal() is not None
    now[0] = 15.0
    assert br.refusal() is None
    br.failed(down)  # 20 s, capped at 12
    now[0] = 26.9
    assert br.refusal() is not None
    now[0] = 27.0
    assert br.refusal() is None
    br.succeeded()  # the server is back: closed, and the next failures start from the first pause again
    assert br.in_a_row == 0 and br.refusal() is None
    for _ in range(3):
        br.failed(down)
    now[0] = 31.9
    assert br.refusal() is not None
    now[0] = 32.0
    assert br.refusal() is None and br.reason == str(down)
