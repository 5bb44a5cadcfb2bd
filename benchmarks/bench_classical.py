"""Split-and-merge against scikit-image's felzenszwalb and SLIC at 512^2, 1024^2 and 2048^2.

    python benchmarks/bench_classical.py [--repeats 3] [--sizes 512 1024 2048]

On scikit-image's ``camera`` (gray) and ``astronaut`` (colour) images resized to each size
(bilinear, uint8), times ``SplitMerge().segment`` (default thresholds: split and merge at a
tenth of the gray range, regions under 16 pixels absorbed), the quadtree split alone,
``felzenszwalb(image, scale=100)`` (its documented example setting) and
``slic(image, n_segments=...)`` asked for as many segments as split-and-merge found (capped
at 10 000). Each row: median seconds of --repeats calls after a warm-up call, and the number
of regions. Prints a table and writes benchmarks/results/classical.csv and .json.
"""

import argparse
import json
import os
import platform
from functools import partial
from pathlib import Path

import numpy as np
from _timing import median_time
from skimage import data
from skimage.segmentation import felzenszwalb, slic
from skimage.transform import resize

from hybridseg.classical import SplitMerge, quadtree_split

HERE = Path(__file__).resolve().parent


def _resized(image, size):
    out = resize(image, (size, size), order=1, anti_aliasing=False, preserve_range=True)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    import numba
    import skimage

    sm = SplitMerge()
    sm.segment(np.zeros((16, 16), np.uint8))  # compile the kernels first
    rows = []
    print(f"{'image':<10} {'size':>5} {'method':<22} {'seconds':>8} {'regions':>8} "
          f"{'vs ours':>8}")
    for name, base in (("camera", data.camera()), ("astronaut", data.astronaut())):
        colour = base.ndim == 3
        for size in args.sizes:
            img = _resized(base, size)
            axis = -1 if colour else None
            calls = {
                "split-and-merge": partial(sm.segment, img),
                "  quadtree split only": partial(quadtree_split, img, threshold=25.5),
                "felzenszwalb": partial(felzenszwalb, img, scale=100, channel_axis=axis),
            }
            n_ours = int(calls["split-and-merge"]().max()) + 1
            # SLIC asked for as many segments as split-and-merge found.
            calls["slic"] = partial(slic, img, n_segments=min(n_ours, 10_000),
                                    channel_axis=axis)
            t_ours = median_time(calls["split-and-merge"], args.repeats)
            for method, call in calls.items():
                secs = t_ours if method == "split-and-merge" else median_time(
                    call, args.repeats)
                n = int(call().max()) + 1
                ratio = secs / t_ours
                rows.append(dict(image=name, size=size, method=method.strip(),
                                 seconds=secs, regions=n, relative_to_ours=ratio))
                print(f"{name:<10} {size:>5} {method:<22} {secs:>8.3f} {n:>8} "
                      f"{ratio:>7.1f}x")
    setup = (f"{platform.machine()}, {os.cpu_count()} cores, numba {numba.__version__} with "
             f"{numba.get_num_threads()} threads, scikit-image {skimage.__version__}, median "
             f"of {args.repeats} after a warm-up")
    print(setup)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "classical.csv", "w") as fh:
        fh.write("image,size,method,seconds,regions,relative_to_ours\n")
        for r in rows:
            fh.write(f"{r['image']},{r['size']},{r['method']},{r['seconds']:.4f},"
                     f"{r['regions']},{r['relative_to_ours']:.2f}\n")
    with open(args.out / "classical.json", "w") as fh:
        json.dump({"setup": setup, "rows": rows}, fh, indent=1)
    print(f"wrote {args.out / 'classical.csv'} and .json")


if __name__ == "__main__":
    main()
