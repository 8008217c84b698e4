"""Datasets: layout adapters (CK+, Oulu-CASIA, AFEW, label folders, CSV), the face cache, the torch dataset."""
from hac_train.data.cache import PreparedClip, SkippedClip, default_cache, prepare_faces
from hac_train.data.dataset import ClipDataset, augment_clip
from hac_train.data.layouts import LAYOUTS, DatasetIndex, Sample, detect_layout, load_index, load_unlabelled

__all__ = ["LAYOUTS", "ClipDataset", "DatasetIndex", "PreparedClip", "Sample", "SkippedClip", "augment_clip",
           "default_cache", "detect_layout", "load_index", "load_unlabelled", "prepare_faces"]
