"""Build the figures of the documentation from the embedded sample.

    python tools/make_doc_figures.py                 # writes docs/figures/
    python tools/make_doc_figures.py --out /tmp/figs

The figures are generated files: they are not committed, and the mkdocs hook
``docs/hooks/figures.py`` runs this script before each docs build when they are missing or
older than this script. Only PIL draws them (no matplotlib). Nothing is written outside the
output folder: each figure is written to a temporary file there, then renamed over
``<out>/<name>`` (so a link at that name is replaced, not followed).

``crfrnn_camvid.png`` shows the shipped CamVid networks (the U-Net alone, with a dense CRF
after it, and with its CRF-as-RNN layer trained end to end) on the same two test images.

``dense_crf_two_lines.png`` shows ``DenseCRF().refine(image, logits, kind="logits")`` on
the two test images of the embedded CamVid sample. The logits are *simulated* from the
truth, not produced by a model: the one-hot truth blurred with a Gaussian, plus Gaussian
noise, plus a few rectangles pushed towards a wrong class. The random draws are seeded, so
every run gives the same figure.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hybridseg.crf import DenseCRF
from hybridseg.datasets import load_sample, make_noisy_scores
from hybridseg.metrics import mean_iou, pixel_accuracy
from hybridseg.viz import colorize, figure_grid, save_png, tile, with_legend

# Every file build() writes. A literal, so that docs/hooks/figures.py can read it without
# importing this script (and hybridseg) when the figures are up to date.
FIGURES = ("dense_crf_two_lines.png", "crfrnn_camvid.png")
FIGURE = FIGURES[0]
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "figures"

SEED = 0
VOID = 255
# How the stand-in logits are made from the truth (hybridseg.datasets.make_noisy_scores).
SIMULATION = dict(blur=4.0, scale=10.0, noise=3.0, n_patches=3, patch_boost=10.0)


def dense_crf_two_lines(out_dir):
    """Build ``dense_crf_two_lines.png``: simulated logits before and after ``DenseCRF``.

    On each test image of the embedded CamVid sample, the columns are the image, the
    argmax of the simulated logits, the argmax of ``DenseCRF().refine(image, logits,
    kind="logits")`` and the truth, with the pixel accuracy and mean IoU of both argmaxes
    (computed at full size, void pixels left out).

    Parameters
    ----------
    out_dir : str or path-like
        Existing folder the PNG is written into.

    Returns
    -------
    path : pathlib.Path
        The PNG written.
    scores : list of dict
        Per image: ``name``, and ``acc`` and ``miou`` of ``"logits"`` and ``"crf"``.
    """
    sample = load_sample("camvid")
    n_classes = len(sample.class_names)
    rng = np.random.default_rng(SEED)
    crf = DenseCRF()
    rows, scores = [], []
    for image, label, name, split in zip(sample.images, sample.labels, sample.filenames,
                                         sample.split):
        if split != "test":
            continue
        logits = make_noisy_scores([label], n_classes, random_state=rng, **SIMULATION)[0]
        before = logits.argmax(-1)
        after = crf.refine(image, logits, kind="logits").argmax(-1)
        score = {"name": name}
        row = [(tile(image), name.removesuffix(".png"))]
        for key, pred in (("logits", before), ("crf", after)):
            acc = pixel_accuracy([label], [pred], n_classes=n_classes, ignore_index=VOID)
            miou = mean_iou([label], [pred], n_classes=n_classes, ignore_index=VOID)
            score[key] = {"acc": acc, "miou": miou}
            row.append((tile(colorize(pred, sample.colors), labels=True),
                        f"pixel acc {100 * acc:.1f}%   mIoU {miou:.3f}"))
        row.append((tile(colorize(label, sample.colors), labels=True),
                    "CamVid labels (void black)"))
        rows.append(row)
        scores.append(score)
    titles = ["image", "argmax of simulated logits", "argmax after DenseCRF", "truth"]
    path = Path(out_dir) / FIGURE
    save_png(with_legend(figure_grid(rows, titles), sample.colors, sample.class_names), path)
    return path, scores


def crfrnn_camvid(out_dir):
    """Build ``crfrnn_camvid.png``: the shipped CamVid U-Net alone, with a post-hoc
    ``DenseCRF`` (default kernels) and with its CRF-as-RNN layer trained end to end
    (``load_pretrained("camvid-unet-crfrnn")``), on the two test images of the embedded
    CamVid sample (CamVid test images that neither network saw).

    Parameters
    ----------
    out_dir : str or path-like
        Existing folder the PNG is written into.

    Returns
    -------
    path : pathlib.Path
        The PNG written.
    scores : list of dict
        Per image: ``name`` and the mean IoU of ``"unet"``, ``"dense"`` and ``"crfrnn"``.
    """
    from hybridseg.deep import load_pretrained

    sample = load_sample("camvid")
    n_classes = len(sample.class_names)
    test = [i for i, s in enumerate(sample.split) if s == "test"]
    images = [sample.images[i] for i in test]
    unet = load_pretrained("camvid-unet", device="cpu")
    crfrnn = load_pretrained("camvid-unet-crfrnn", device="cpu")
    U = unet.transform(images)
    preds = {"unet": [p.argmax(-1) for p in U.scores],
             "dense": DenseCRF().fit(U).predict(U),
             "crfrnn": crfrnn.predict(images)}
    rows, scores = [], []
    for j, i in enumerate(test):
        label, name = sample.labels[i], sample.filenames[i]
        row = [(tile(sample.images[i]), name.removesuffix(".png"))]
        score = {"name": name}
        for key in ("unet", "dense", "crfrnn"):
            miou = mean_iou([label], [preds[key][j]], n_classes=n_classes,
                            ignore_index=VOID)
            score[key] = miou
            row.append((tile(colorize(preds[key][j], sample.colors), labels=True),
                        f"mIoU {miou:.3f}"))
        row.append((tile(colorize(label, sample.colors), labels=True),
                    "CamVid labels (void black)"))
        rows.append(row)
        scores.append(score)
    titles = ["image", "U-Net", "U-Net + DenseCRF (post hoc)",
              "U-Net + CRF-as-RNN (end to end)", "truth"]
    path = Path(out_dir) / FIGURES[1]
    save_png(with_legend(figure_grid(rows, titles), sample.colors, sample.class_names), path)
    return path, scores


def build(out_dir=DEFAULT_OUT):
    """Build every documentation figure into ``out_dir``, creating it if needed.

    Parameters
    ----------
    out_dir : str or path-like, default=docs/figures of this checkout
        Folder the figures are written into; no file outside it is written.

    Returns
    -------
    scores : list of dict
        What ``dense_crf_two_lines`` measured.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path, scores = dense_crf_two_lines(out_dir)
    print(f"{path} ({path.stat().st_size / 1e3:.0f} kB)")
    for s in scores:
        print(f"  {s['name']}: simulated logits acc {100 * s['logits']['acc']:.1f}% "
              f"mIoU {s['logits']['miou']:.3f} -> after DenseCRF acc "
              f"{100 * s['crf']['acc']:.1f}% mIoU {s['crf']['miou']:.3f}")
    path, deep_scores = crfrnn_camvid(out_dir)
    print(f"{path} ({path.stat().st_size / 1e3:.0f} kB)")
    for s in deep_scores:
        print(f"  {s['name']}: mIoU U-Net {s['unet']:.3f}, + DenseCRF {s['dense']:.3f}, "
              f"CRF-as-RNN {s['crfrnn']:.3f}")
    return scores


def main(argv=None):
    """Command line: ``python tools/make_doc_figures.py [--out DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                        help="folder to write the figures into (default: docs/figures)")
    args = parser.parse_args(argv)
    build(args.out)


if __name__ == "__main__":
    main()
