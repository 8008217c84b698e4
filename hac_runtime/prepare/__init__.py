"""``hac-prepare``: aligned faces from videos, frame folders and images (§4.2), resumable and parallel.

Output (CONTRACTS.md): ``OUT/<clip>/NNNNN.png`` aligned faces, NNNNN the source
frame index (a frame without a face leaves a gap, indices never shift), and
``OUT/faces.jsonl``, one line per frame of every prepared clip in OUT:
``clip, frame, box [x,y,w,h], landmarks [[x,y]×68], ok``. Each clip folder also
holds its own ``faces.jsonl`` and a ``.done.json`` marker (source fingerprint,
settings, counts, warnings). A clip is written to ``OUT/.<clip>.partial-<pid>``
(one folder per writing process), made durable (fsync) and only then given its
marker and renamed into place, so an interrupted or killed run leaves no half
clip, and the next run skips every clip already done with the same source and
settings and whose faces are all there; partial folders of dead processes are
removed. Worker processes die with the run (SIGTERM, SIGKILL or a crash of the
parent): they never write into OUT after it.

Every face of a source is its own clip (``faces="all"``, the default): faces are
tracked across frames (``pipeline.faces.MultiFaceStage``, the runtime's), and each
track with frames enough becomes ``<clip>.face0``, ``<clip>.face1``… in order of
appearance (a source with one face keeps the plain ``<clip>``); ``faces="largest"``
follows one face per source, the one continuing the previous frame's, else the
largest (training's dataset cache: a labelled clip is one subject). In both, a
face starts from a strong detection found again on the next frame (``faces.processor``,
``pipeline.tracker``): a false box seen once is no clip's face. A face whose
alignment quality (``faces.quality``) is below the threshold is listed in
``faces.jsonl`` with its box, landmarks, ``quality`` and ``ok: false``, and gets no PNG.

Clip names come from the input paths: the file or folder name, with as many
parent folders as needed to tell inputs apart; a source already prepared in OUT
keeps its name. A folder holding images is one clip when its names are a
frame sequence (one prefix + a number: ``00012.png``, ``frame012.jpg``); a folder
of other photos gives one clip per photo (``media.is_frame_sequence``); one that is
photos only because of a few other images among numbered frames is said (``media.stray_images``). A folder
without images is searched for videos and image folders (a dataset tree).

Clips run in parallel worker processes (spawned, so scripts calling ``prepare``
need the usual ``if __name__ == "__main__":`` guard) when there are enough frames
to pay for starting them (``auto_workers``). Bad inputs are reported and skipped;
``HacError`` only when no input could be used.

The modules, one job each: ``discovery`` (which inputs are clips), ``naming``, ``source`` (one source's
clips), ``commit`` (staging, markers, resuming), ``pool`` (worker processes), ``console``, ``run``
(``prepare()``).
"""
from __future__ import annotations

from hac_runtime.prepare.commit import (FACES, FORMAT, MARKER, done_marker, fingerprint, finished_marker, read_marker,
                                        remove_stale_partials, settings_of, write_faces_jsonl)
from hac_runtime.prepare.discovery import collect_clips
from hac_runtime.prepare.naming import clip_names
from hac_runtime.prepare.pool import auto_workers, estimated_frames
from hac_runtime.prepare.run import prepare
from hac_runtime.prepare.source import FACE_MODES, MIN_TRACK_SHARE, prepare_clip, prepare_source
from hac_runtime.prepare.summary import ClipSummary, PrepareSummary

__all__ = ["ClipSummary", "FACES", "FACE_MODES", "FORMAT", "MARKER", "MIN_TRACK_SHARE", "PrepareSummary",
           "auto_workers", "clip_names", "collect_clips", "done_marker", "estimated_frames", "fingerprint",
           "finished_marker", "prepare", "prepare_clip", "prepare_source", "read_marker", "remove_stale_partials",
           "settings_of", "write_faces_jsonl"]
