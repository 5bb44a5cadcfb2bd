"""A new user's first comparison: a few hundred images larger than CamVid's and a short
budget, the default U-Net against the classical pixel classifier.

    python benchmarks/new_user_budget.py [--budget 6] [--out DIR] [--data-root DIR]

The data set is built from CamVid so that anyone can rebuild it: 280 train, 40 val and
60 test frames (train's first 280, every second val frame, every third test frame),
upscaled twice to 720x960 (images bilinear, labels nearest; CamVid's void 11 as 255), in
the folder layout ``hybridseg compare`` reads (``train/ trainannot/ val/ valannot/
test/ testannot/``), under ``DIR/data``. Then ``hybridseg compare --dataset DIR/data
--budget B --methods pixel,unet --out DIR/compare`` runs as a user would type it; its
report is in ``DIR/compare``. The issue this answers: with a budget of 6 minutes on such a
set the default U-Net once trained 3 epochs and lost to the pixel classifier.
"""

import argparse
import glob
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("HYBRIDSEG_DATA", HERE.parent.parent / "shared" / "data"))
SPLITS = (("train", 280, 1), ("val", 40, 2), ("test", 60, 3))


def build(src, dst):
    """The 720x960 folder data set from CamVid (skipped where it is already there)."""
    for split, n, step in SPLITS:
        (dst / split).mkdir(parents=True, exist_ok=True)
        (dst / f"{split}annot").mkdir(exist_ok=True)
        files = sorted(glob.glob(str(src / split / "*.png")))[::step][:n]
        if len(files) < n:
            raise SystemExit(f"{src / split} has {len(files)} usable images, {n} needed")
        for f in files:
            name = os.path.basename(f)
            if (dst / f"{split}annot" / name).is_file():
                continue
            Image.open(f).resize((960, 720), Image.BILINEAR).save(dst / split / name)
            lab = np.array(Image.open(src / f"{split}annot" / name))
            lab = np.where(lab == 11, 255, lab).astype(np.uint8)
            Image.fromarray(lab).resize((960, 720), Image.NEAREST).save(
                dst / f"{split}annot" / name)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=6.0)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "new_user_budget")
    ap.add_argument("--data-root", type=Path, default=SHARED / "camvid")
    args = ap.parse_args(argv)
    data = args.out / "data"
    build(args.data_root, data)
    cmd = [sys.executable, "-m", "hybridseg", "compare", "--dataset", str(data),
           "--budget", f"{args.budget:g}", "--methods", "pixel,unet",
           "--out", str(args.out / "compare")]
    print(" ".join(cmd), flush=True)
    raise SystemExit(subprocess.call(cmd))


if __name__ == "__main__":
    main()
