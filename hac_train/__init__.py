"""HAC training: the paper's network, checkpoints, data, training and evaluation."""
from hac_runtime import __version__
from hac_train.checkpoint import load_checkpoint, save_checkpoint
from hac_train.model import HACConfig, HACNet

__all__ = ["HACConfig", "HACNet", "load_checkpoint", "save_checkpoint", "__version__"]
