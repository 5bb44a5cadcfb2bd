"""Rebuild the embedded sample in hybridseg/datasets/data/sample from the shared data.

    python tools/build_sample.py ../shared/data

CamVid files are copied unchanged; ISBI slices are cropped to their top-left 256x256.
The choice of images is fixed here (several classes in each, train and test sequences
apart), so rerunning gives the same files.
"""

import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

CAMVID = {
    "train": ["0016E5_07920", "0006R0_f03780", "0001TP_007860", "0016E5_07830"],
    "test": ["0001TP_009960", "Seq05VD_f03960"],
}
ISBI = {"train": ["0", "1"], "test": ["28", "29"]}
CROP = 256


def main(shared):
    shared = Path(shared)
    out = Path(__file__).resolve().parents[1] / "hybridseg" / "datasets" / "data" / "sample"
    for sub in ("camvid", "membrane"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    for split, stems in CAMVID.items():
        for stem in stems:
            for kind, folder in (("images", split), ("labels", split + "annot")):
                dest = out / "camvid" / kind / f"{split}_{stem}.png"
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shared / "camvid" / folder / f"{stem}.png", dest)
    for split, stems in ISBI.items():
        for stem in stems:
            for kind, folder in (("images", "image"), ("labels", "label")):
                arr = np.asarray(Image.open(shared / "isbi2012_membrane" / folder / f"{stem}.png"))
                dest = out / "membrane" / kind / f"{split}_{int(stem):02d}.png"
                dest.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.ascontiguousarray(arr[:CROP, :CROP])).save(dest, optimize=True)
    total = sum(p.stat().st_size for p in out.rglob("*.png"))
    print(f"sample written to {out}: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
