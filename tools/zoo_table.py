"""Print the model zoo's table of docs/guide/deep.md: each registered architecture, its
stride and its parameter counts at ``preset="small"`` (K = 11) and ``preset="paper"``
(K = 21, and K = 2 for U-Net as its paper), counted on torch's "meta" device (no memory).

    python tools/zoo_table.py
"""

import torch

from hybridseg.deep.models import MODELS, build_model


def count(name, k, preset):
    with torch.device("meta"):
        net = build_model(name, 3, k, preset=preset)
    return sum(p.numel() for p in net.parameters()) / 1e6, net.stride


def main():
    print("| name | stride (small) | parameters, small (K = 11) | parameters, paper |")
    print("|---|---:|---:|---:|")
    for name in sorted(MODELS):
        small, stride = count(name, 11, "small")
        k = 2 if name == "unet" else 21
        paper, _ = count(name, k, "paper")
        fmt = (lambda m: f"{1000 * m:.0f} K") if small < 0.1 else (lambda m: f"{m:.2f} M")
        print(f"| `{name}` | {stride} | {fmt(small)} | {fmt(paper)} (K = {k}) |")


if __name__ == "__main__":
    main()
