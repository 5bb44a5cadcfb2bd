"""Print the model zoo's table of docs/guide/deep.md: each registered architecture, its
stride and its parameter counts at ``preset="small"`` (K = 11) and ``preset="paper"``
(K = 21, and K = 2 for U-Net as its paper), counted on torch's "meta" device (no memory),
and its CamVid test mIoU from the zoo's ``hybridseg compare`` run (alone, with the dense
CRF and with CRF-as-RNN, where the run has those rows).

    python tools/zoo_table.py [--results benchmarks/results/compare_camvid_zoo/results.csv]
"""

import argparse
import csv
import os

import torch

from hybridseg.deep.models import MODELS, build_model

RESULTS = os.path.join("benchmarks", "results", "compare_camvid_zoo", "results.csv")


def count(name, k, preset):
    with torch.device("meta"):
        net = build_model(name, 3, k, preset=preset)
    return sum(p.numel() for p in net.parameters()) / 1e6, net.stride


def camvid(path):
    """``{method: mIoU in %}`` of a compare run's results.csv (empty where it is not)."""
    if not os.path.isfile(path):
        return {}
    with open(path, newline="") as f:
        return {r["method"]: 100 * float(r["miou"]) for r in csv.DictReader(f) if r["miou"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=RESULTS)
    scores = camvid(ap.parse_args().results)
    print("| name | stride (small) | parameters, small (K = 11) | parameters, paper | "
          "CamVid test mIoU: alone / +dense / crfrnn |")
    print("|---|---:|---:|---:|---:|")
    for name in sorted(MODELS):
        small, stride = count(name, 11, "small")
        k = 2 if name == "unet" else 21
        paper, _ = count(name, k, "paper")
        fmt = (lambda m: f"{1000 * m:.0f} K") if small < 0.1 else (lambda m: f"{m:.2f} M")
        cells = [scores.get(m) for m in (name, f"{name}+dense", f"crfrnn:{name}")]
        miou = " / ".join("-" if v is None else f"{v:.1f}" for v in cells)
        print(f"| `{name}` | {stride} | {fmt(small)} | {fmt(paper)} (K = {k}) | {miou} |")


if __name__ == "__main__":
    main()
