"""Print the model zoo's table of docs/guide/deep.md: each registered architecture, its
stride and its parameter counts at ``preset="small"`` (K = 11) and ``preset="paper"``
(K = 21, and K = 2 for U-Net as its paper), counted on torch's "meta" device (no memory),
and its CamVid test mIoU from the zoo's ``hybridseg compare`` run (alone, with the dense
CRF and with CRF-as-RNN, where the run has those rows).

    python tools/zoo_table.py [--results benchmarks/results/compare_camvid_zoo/results.csv]
    python tools/zoo_table.py --runs [--results ...]

``--runs`` prints instead where each network's budget went in that run: the working scale
and crop its training plan chose, the seconds a step took, the epochs run and the one kept,
the best val and the test mIoU (read from the run's ``methods/*.json``: its records keep the
plan's note, so the table needs no saved model).
"""

import argparse
import csv
import os
import re

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


#: A training plan's note (``TrainingPlan.note``): its scale, crop and step time.
PLAN = re.compile(r"scale (?P<scale>[\d.]+) \((?P<size>\d+x\d+)\), "
                  r"(?:(?P<crop>\d+x\d+) crops|whole images), batch \d+: "
                  r"(?P<step>[\d.]+) s per step")


def runs(results):
    """Where each network's budget went: one table row per network of the run."""
    import glob
    import json

    folder = os.path.dirname(results)
    print("| network | scale | crop | s per step | epochs (kept) | val mIoU | test mIoU |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for path in sorted(glob.glob(os.path.join(folder, "methods", "*.json"))):
        record = json.load(open(path))
        name, notes = record["spec"], record.get("notes", {})
        if name not in MODELS:
            continue
        plan = PLAN.search(notes.get("training_plan", ""))
        scale, crop, step = ((plan["scale"], plan["crop"] or "whole", plan["step"]) if plan
                             else ("-", "-", "-"))
        print(f"| `{name}` | {scale} | {crop} | {step} | "
              f"{notes.get('epochs')} ({notes.get('best_epoch')}) | "
              f"{100 * notes.get('best_val_miou', float('nan')):.1f} | "
              f"{100 * record['row']['miou']:.1f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=RESULTS)
    ap.add_argument("--runs", action="store_true")
    args = ap.parse_args()
    if args.runs:
        return runs(args.results)
    scores = camvid(args.results)
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
