"""`python -m hac_train`: build the paper's default network and classify one random clip.

A smoke run on a fresh machine (no dataset, no download): prints the config,
the parameter count and the per-class probabilities of the untrained model.
"""
import time

import torch

from hac_train.model import HACConfig, HACNet, count_parameters


def main() -> None:
    torch.manual_seed(0)
    config = HACConfig()
    model = HACNet(config).eval().to(memory_format=torch.channels_last)
    x = torch.randn(1, config.k, 3, 224, 224)
    with torch.inference_mode():
        model(x)
        t0 = time.perf_counter()
        logits, attn = model(x, return_attention=True)
        ms = (time.perf_counter() - t0) * 1e3
    print(f"HAC {config.to_dict()}")
    print(f"parameters: {count_parameters(model):,}")
    print(f"clip (1, {config.k}, 3, 224, 224) -> logits {tuple(logits.shape)} in {ms:.0f} ms (eager, CPU, untrained)")
    print("self-attention weights per frame:", [round(v, 3) for v in attn["self"][0].tolist()])
    print("probabilities:", [round(v, 3) for v in logits.softmax(-1)[0].tolist()])


if __name__ == "__main__":
    main()
