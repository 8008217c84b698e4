"""Faces (§4.2): detection, 68-point landmarks, alignment, and the per-frame FaceProcessor.

Shared by ``hac-prepare``, training's dataset cache and the runtime. OpenCV and
dlib are imported when a detector, predictor or aligner is used.
"""
from hac_runtime.faces.align import ALIGNERS, TEMPLATE, FaceAligner, SequenceAligner, TemplateAligner, make_aligner
from hac_runtime.faces.detectors import DEFAULT_DETECTOR, DETECTORS, Box, FaceDetector, make_detector
from hac_runtime.faces.landmarks import LandmarkPredictor, box_from_landmarks, eye_centres, interocular
from hac_runtime.faces.models import model_path
from hac_runtime.faces.processor import FaceFrame, FaceProcessor

__all__ = [
    "ALIGNERS", "DEFAULT_DETECTOR", "DETECTORS", "TEMPLATE", "Box", "FaceAligner", "FaceDetector", "FaceFrame",
    "FaceProcessor", "LandmarkPredictor", "SequenceAligner", "TemplateAligner", "box_from_landmarks", "eye_centres",
    "interocular", "make_aligner", "make_detector", "model_path",
]
