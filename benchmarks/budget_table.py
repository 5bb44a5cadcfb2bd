"""The training budget a data set needs, by network, image count and image size, on this
machine: the table of the deep guide's "Training under a budget".

    python benchmarks/budget_table.py [--networks unet,enet,...] [--threads 2]

A network trained from scratch by ``CNNSegmenter`` under ``max_time`` asks for about 30
passes over the training images (``_budget.target_steps``: 300 to 3000 steps of 8 crops).
For each network, one training step (forward, backward, optimiser step; batch 8, K = 11)
is timed at 360x480 and at 180x240 by ``_budget._StepTimer`` (the timer the plan uses),
in the precision ``CNNSegmenter(amp="auto")`` trains in here (``--amp``);
step time is taken in proportion to pixels between and beyond those sizes (an estimate:
measured steps of some networks grow faster than their pixels). The table gives the
minutes that many steps take, with the plan's share of the budget for steps (85%), at full
resolution on whole images, and at the plan's least work (half scale, half-side crops: a
sixteenth of the pixels). Below the second figure the plan goes down to lower scales, and
below roughly a third of it a network seldom beats the pixel classifier.

Writes benchmarks/results/budget_table.csv and .json.
"""

import argparse
import csv
import json
import os
import platform

import torch

from hybridseg.deep import _budget
from hybridseg.deep._inference import amp_supported
from hybridseg.deep.models import build_model

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = [(256, 256), (360, 480), (720, 960)]
COUNTS = [30, 100, 300, 1000, 3000]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default="unet,enet,fpn,deeplabv3plus,segnet,"
                        "fcdensenet56")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--amp", choices=["auto", "on", "off"], default="auto",
                        help="mixed precision as CNNSegmenter's amp (auto: bfloat16 on "
                             "CPUs with AMX)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    amp = amp_supported(cpu, {"auto": "auto", "on": True, "off": False}[args.amp])
    print(f"torch {torch.__version__}, {args.threads} threads, "
          f"{'bfloat16' if amp else 'float32'} steps")
    rows = []
    for name in args.networks.split(","):
        torch.manual_seed(0)
        net = build_model(name, 3, 11)
        stride = 32
        timer = _budget._StepTimer(net, 8, 3, cpu, None, amp)
        big = timer.time((_round(360, stride), _round(480, stride)))
        small = timer.time((_round(180, stride), _round(240, stride)))
        per_pixel = big / (_round(360, stride) * _round(480, stride))
        print(f"{name}: {big:.2f} s per step at 360x480, {small:.2f} s at 180x240",
              flush=True)
        for h, w in SIZES:
            for n in COUNTS:
                steps = _budget.target_steps(n, 8)
                full = steps * per_pixel * h * w / _budget.STEP_SHARE / 60
                rows.append({"network": name, "images": n, "size": f"{h}x{w}",
                             "steps": steps, "step_360x480_s": round(big, 3),
                             "step_180x240_s": round(small, 3),
                             "minutes_full": round(full, 1),
                             "minutes_least": round(full / 16, 1)})
    print(f"\n{'network':14s} {'size':>8s} " + " ".join(f"{n:>12d}" for n in COUNTS))
    for name in args.networks.split(","):
        for h, w in SIZES:
            cells = [r for r in rows if r["network"] == name and r["size"] == f"{h}x{w}"]
            print(f"{name:14s} {h}x{w:<4d} " + " ".join(
                f"{r['minutes_least']:>5.0f}-{r['minutes_full']:<6.0f}" for r in cells))
    out = os.path.join(HERE, "results", "budget_table")
    with open(out + ".csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(out + ".json", "w") as f:
        json.dump({"machine": platform.processor() or platform.machine(),
                   "cpus": os.cpu_count(), "threads": args.threads, "bfloat16": amp,
                   "torch": torch.__version__, "rows": rows}, f, indent=1)
    print(f"\nminutes: least work (half scale, half-side crops) - full resolution; "
          f"wrote {out}.csv and .json")


def _round(side, stride):
    return -(-side // stride) * stride


if __name__ == "__main__":
    main()
