"""FLOPs of one clip through the model, counted by PyTorch's FlopCounterMode (2 per multiply-add)."""
from __future__ import annotations


def clip_flops(model, k: int, image_size: int) -> int:
    """Floating-point operations for one ``(1, k, 3, S, S)`` clip (convolutions, matmuls, GRU gates)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, k, 3, image_size, image_size)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(x)
    total = counter.get_total_flops()
    if hasattr(model, "gru"):  # the GRU runs as one fused op the counter does not see: 3 gates, input + hidden
        gru = model.gru
        total += k * 2 * 3 * gru.hidden_size * (gru.input_size + gru.hidden_size)
    return int(total)
