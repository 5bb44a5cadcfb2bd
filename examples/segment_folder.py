"""Segment a folder of images with a saved model, and resume.

    python examples/segment_folder.py

``hybridseg.save`` writes any fitted stage or ``Pipeline`` to one file; ``hybridseg.segment``
(the ``hybridseg segment`` command) reads that file and labels every image under a folder,
searched recursively: ``photos/<rel>.jpg`` becomes ``labels/<rel>.png``, a label map. It
streams one image at a time, writes each output through a temporary file and a rename, and
keeps outputs that exist, so a run that was interrupted finishes the rest when run again.

Here the model is the U-Net that ships with hybridseg (``load_pretrained("camvid-unet")``),
saved to ``unet.hseg``; the folder holds the six images of the embedded CamVid sample in
two subfolders, plus one file that is not an image at all, which is reported by name and
skipped while every other image is written. The second run writes nothing: every output
is there. Everything goes to ``segment-demo/`` in ``$HYBRIDSEG_GALLERY_OUT`` (or the
current folder), replaced on each run; the figure shows the inputs and the label maps read
back from the written files. Needs torch (the ``deep`` extra).
"""

import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

import hybridseg
from hybridseg.datasets import load_sample
from hybridseg.deep import load_pretrained
from hybridseg.viz import colorize, figure_grid, save_png, tile, with_legend

root = Path(os.environ.get("HYBRIDSEG_GALLERY_OUT", ".")) / "segment-demo"
shutil.rmtree(root, ignore_errors=True)
photos, labels = root / "photos", root / "labels"

# A folder of images in two subfolders, and one broken file.
data = load_sample("camvid")
for image, name, split in zip(data.images, data.filenames, data.split):
    (photos / split).mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(photos / split / name)
(photos / "test" / "notes.png").write_text("not an image")

# Any fitted stage or Pipeline, saved to one file.
model = hybridseg.save(load_pretrained("camvid-unet", device="cpu"), root / "unet.hseg")

report = hybridseg.segment(photos, labels, model, refine="dense", verbose=False)
print("first run: ", report.summary().split(";")[0])
for rel, message in report.failed:
    print(f"  {rel}: {message.replace(str(root.resolve()), root.name)}")
again = hybridseg.segment(photos, labels, model, refine="dense", verbose=False)
print("second run:", again.summary().split(";")[0])

written = sorted(labels.rglob("*.png"))
print("\n".join(str(p.relative_to(root)) for p in written))
maps = [np.asarray(Image.open(p)) for p in written]
print(f"{len(maps)} label maps, {maps[0].shape} {maps[0].dtype}, classes "
      f"{sorted(set(np.concatenate([np.unique(m) for m in maps]).tolist()))}")

rows = [[(tile(np.asarray(Image.open(photos / p.relative_to(labels)).convert("RGB"))),
          str(p.relative_to(labels))),
         (tile(colorize(m, data.colors), labels=True), "U-Net + dense CRF")]
        for p, m in zip(written, maps)]
pairs = [rows[i] + rows[i + 1] for i in range(0, len(rows), 2)]
save_png(with_legend(figure_grid(pairs, ["image", "labels", "image", "labels"]),
                     data.colors, data.class_names),
         Path(os.environ.get("HYBRIDSEG_GALLERY_OUT", ".")) / "segment_folder.png")
