"""Where dlib's model files live: the ``face-recognition-models`` package, found without importing it.

Importing ``face_recognition_models`` needs ``pkg_resources``, which new virtual
environments lack, so the files are located with ``importlib.util.find_spec``.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from hac_runtime.errors import HacError

LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"
CNN_DETECTOR = "mmod_human_face_detector.dat"


def model_path(filename: str) -> Path:
    """Path of a dlib model file shipped in ``face-recognition-models``; HacError if it is not installed."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise HacError("face-recognition-models is not installed (pip install face-recognition-models)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / filename
    if not path.is_file():
        raise HacError(f"{path}: dlib model file missing; reinstall face-recognition-models")
    return path
