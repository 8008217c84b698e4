"""Face warping and normalisation on a torch device, so a GPU pipeline feeds the engine without host round trips.

Each frame is uploaded once; every face on it is cut out by ``grid_sample`` with
the aligner's own ``2×3`` matrix (the same transform as ``cv2.warpAffine`` in
``faces.align``: bilinear, zero border, pixel centres at integer coordinates);
the aligned faces stay on the device as ``(S, S, 3)`` uint8 RGB, and
``normalize_torch`` turns a batch of them into the model input there.
"""
from __future__ import annotations

import numpy as np


def _pixel_to_normalized(w: int, h: int) -> np.ndarray:
    """3×3 map from pixel coordinates (centres at integers) to grid_sample's [-1, 1] (align_corners=False)."""
    return np.array([[2.0 / w, 0, 1.0 / w - 1], [0, 2.0 / h, 1.0 / h - 1], [0, 0, 1]], np.float64)


class TorchFaceWarper:
    """``upload(bgr)`` once per frame, then ``warp(frame, matrix)`` per face → ``(S, S, 3)`` uint8 RGB on ``device``."""

    def __init__(self, size: int, device):
        import torch

        self.size = size
        self.device = torch.device(device)

    def upload(self, bgr: np.ndarray):
        """BGR uint8 ``(H, W, 3)`` → float32 RGB ``(1, 3, H, W)`` on the device."""
        import torch

        t = torch.from_numpy(np.ascontiguousarray(bgr)).to(self.device, non_blocking=True)
        return t.flip(-1).permute(2, 0, 1).unsqueeze(0).float()

    def warp(self, frame, matrix: np.ndarray):
        """The crop that ``matrix`` (frame pixels → crop pixels) defines, as uint8 RGB ``(S, S, 3)``."""
        import torch
        import torch.nn.functional as F

        _, _, h, w = frame.shape
        m = np.vstack([np.asarray(matrix, np.float64), [0, 0, 1]])
        scale = float(np.sqrt(abs(np.linalg.det(m[:2, :2]))))
        if scale < 0.5:  # area-filter the frame first, as faces.align.warp_face does, against aliasing
            f = scale
            small = F.interpolate(frame, size=(max(1, round(h * f)), max(1, round(w * f))), mode="area")
            sh, sw = small.shape[2:]
            pre = np.array([[w / sw, 0, 0.5 * w / sw - 0.5], [0, h / sh, 0.5 * h / sh - 0.5], [0, 0, 1]])
            m, frame, (h, w) = m @ pre, small, (sh, sw)
        # output normalised → output pixels → frame pixels (inverse warp) → frame normalised
        theta = _pixel_to_normalized(w, h) @ np.linalg.inv(m) @ np.linalg.inv(_pixel_to_normalized(self.size, self.size))
        theta_t = torch.as_tensor(theta[:2], dtype=torch.float32, device=self.device).unsqueeze(0)
        grid = F.affine_grid(theta_t, [1, 3, self.size, self.size], align_corners=False)
        crop = F.grid_sample(frame, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return crop[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8)


def normalize_torch(faces, mean, std):
    """``(n, S, S, 3)`` uint8 RGB tensor → ``(n, 3, S, S)`` float32, ``(x/255 - mean) / std`` (as ``clips.normalize``)."""
    import torch

    x = faces.permute(0, 3, 1, 2).float().div_(255.0)
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return ((x - mean_t) / std_t).contiguous()
