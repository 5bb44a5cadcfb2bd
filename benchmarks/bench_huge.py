"""Images of any size: time per megapixel and peak memory of ``refine_tiles`` against the
image's size, beside the whole-image refine where that fits.

    python benchmarks/bench_huge.py [--sizes 1024,2048,4096,8192,16384] [--whole-max 4096]
                                    [--tile-sizes 512,1024,2048] [--overlaps 120,480]
                                    [--grid-weights 2,8,32] [--data-dir DIR]

The problem (one per size): a mosaic of CamVid val frames and noisy float16 logits of their
labels, K = 8, both numpy memmaps on disk (the scores are 4.3 GB at 16,384^2), refined by
``DenseCRF(n_iter=5)`` with 1024-pixel tiles and the default 240-pixel margin, and by a
``GridCRF`` of each ``--grid-weights`` (512-pixel tiles, 32-pixel margin) up to 2048^2.
Each run is a fresh process that reads the memmaps, writes the labels into a memmap and
reports its seconds and its peak resident set (VmHWM: ``ru_maxrss`` would report the
parent's peak, being carried across fork and exec); the tiled labels are compared with the
whole image's. ``--tile-sizes`` adds, at 4096^2, the dense CRF's peak for other tile sizes
(the memory table of the docs), and ``--overlaps`` its agreement with other margins.
Prints a table and writes benchmarks/results/bench_huge.csv and .json.
"""

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("HYBRIDSEG_DATA", HERE.parent.parent / "shared" / "data"))
K = 8


def peak_rss_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def block(seed=1, size=2048):
    """A size^2 mosaic of CamVid val frames, and its noisy float16 logits."""
    from PIL import Image

    files = sorted((SHARED / "camvid" / "val").glob("*.png"))
    if not files:
        sys.exit(f"CamVid val images not found under {SHARED}")
    image = np.zeros((size, size, 3), np.uint8)
    label = np.zeros((size, size), np.int64)
    i = 0
    for r in range(0, size, 360):
        for c in range(0, size, 480):
            f = files[i % len(files)]
            i += 7
            h, w = min(360, size - r), min(480, size - c)
            image[r:r + h, c:c + w] = np.asarray(Image.open(f))[:h, :w]
            g = np.asarray(Image.open(str(f).replace("/val/", "/valannot/"))).astype(int)
            label[r:r + h, c:c + w] = np.where(g == 11, 0, g)[:h, :w] % K
    rng = np.random.default_rng(seed)
    logits = 2.0 * np.eye(K, dtype=np.float32)[label] + rng.normal(0, 1.5, (*label.shape, K))
    return image, logits.astype(np.float16)


def make_problem(folder, n):
    """``image.u8`` (n, n, 3) and ``scores.f16`` (n, n, K) in ``folder``, by 2048^2 blocks."""
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "done").exists():
        return
    b = min(n, 2048)
    image, logits = block(size=b)
    im = np.memmap(folder / "image.u8", np.uint8, "w+", shape=(n, n, 3))
    sc = np.memmap(folder / "scores.f16", np.float16, "w+", shape=(n, n, K))
    for r in range(0, n, b):
        for c in range(0, n, b):
            im[r:r + b, c:c + b] = image
            sc[r:r + b, c:c + b] = logits
    im.flush()
    sc.flush()
    (folder / "done").touch()


def refiner(name, weight):
    from hybridseg.crf import DenseCRF, GridCRF

    return DenseCRF(n_iter=5) if name == "dense" else GridCRF(weight=float(weight))


def child(folder, n, name, how, tile, overlap, weight):
    """In a fresh process: one refine of the problem in ``folder``; prints a JSON line."""
    from hybridseg.crf import refine_tiles

    folder, n, tile, overlap = Path(folder), int(n), int(tile), int(overlap)
    image = np.memmap(folder / "image.u8", np.uint8, "r", shape=(n, n, 3))
    scores = np.memmap(folder / "scores.f16", np.float16, "r", shape=(n, n, K))
    out = np.lib.format.open_memmap(folder / label_file(name, how, tile, overlap, weight),
                                    mode="w+", dtype=np.uint8, shape=(n, n))
    crf = refiner(name, weight)
    crf.refine(np.asarray(image[:64, :64]), np.asarray(scores[:64, :64], np.float32),
               kind="logits")  # numba's compile (or cache load) is not timed
    t0 = time.perf_counter()
    if how == "whole":
        q = crf.refine(np.asarray(image), np.asarray(scores, np.float32), kind="logits")
        out[:] = q.argmax(-1)
    else:
        refine_tiles(crf, image, scores, kind="logits", tile_size=tile, overlap=overlap,
                     out=out)
    seconds = time.perf_counter() - t0
    out.flush()
    print(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb()}))


def label_file(name, how, tile, overlap, weight):
    return f"{name}{weight if name == 'grid' else ''}_{how}_{tile}_{overlap}.npy"


def run_child(folder, n, spec):
    r = subprocess.run([sys.executable, __file__, "--child", str(folder), str(n),
                        *map(str, spec)], capture_output=True, text=True)
    if r.returncode:
        tail = (r.stderr.strip().splitlines() or ["?"])[-1]
        print(f"  {spec} {n}^2 failed: {tail}", flush=True)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1024,2048,4096,8192,16384")
    ap.add_argument("--whole-max", type=int, default=4096,
                    help="largest side refined whole as well (4096^2 peaks near 5 GB)")
    ap.add_argument("--grid-max", type=int, default=2048)
    ap.add_argument("--grid-weights", default="2",
                    help="GridCRF weights, each tiled and whole up to --grid-max")
    ap.add_argument("--tile-sizes", default="512,1024,2048",
                    help="dense CRF tile sizes measured at 4096^2 (empty: none)")
    ap.add_argument("--overlaps", default="120,480",
                    help="dense CRF margins besides the default 240, at 4096^2 with 1024 "
                         "tiles (empty: none)")
    ap.add_argument("--data-dir", type=Path, help="where the memmaps go (kept); default: "
                    "a temporary folder, removed")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--child", nargs=7, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(*args.child)
    import numba

    from hybridseg.crf import DenseCRF, default_overlap

    dense_overlap = default_overlap(DenseCRF())
    sizes = [int(s) for s in args.sizes.split(",")]
    tiles = [int(s) for s in args.tile_sizes.split(",") if s]
    overlaps = [int(s) for s in args.overlaps.split(",") if s]
    weights = [float(s) for s in args.grid_weights.split(",") if s]
    root = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-huge-"))
    runs = []  # (size, (refiner, how, tile, overlap, grid weight))
    for n in sizes:
        runs += [(n, ("dense", "tiled", 1024, dense_overlap, 0))]
        runs += [(n, ("dense", "whole", 0, 0, 0))] if n <= args.whole_max else []
        for w in weights if n <= args.grid_max else []:
            runs += [(n, ("grid", "tiled", 512, 32, w)), (n, ("grid", "whole", 0, 0, w))]
    if 4096 in sizes:
        runs += [(4096, ("dense", "tiled", t, dense_overlap, 0)) for t in tiles if t != 1024]
        runs += [(4096, ("dense", "tiled", 1024, o, 0)) for o in overlaps
                 if o != dense_overlap]
    rows = []
    try:
        make_problem(root / str(sizes[0]), sizes[0])
        for name in ("dense", "grid"):  # numba's compile (or cache check) on these shapes
            run_child(root / str(sizes[0]), sizes[0], (name, "tiled", 512, 32, 2))
        for n, spec in runs:
            folder = root / str(n)
            make_problem(folder, n)
            r = run_child(folder, n, spec)
            if r is None:
                continue
            name, how, tile, overlap, weight = spec
            label = "whole" if how == "whole" else f"tiled {tile}+{overlap}"
            name = name if name == "dense" else f"grid {weight:g}"
            print(f"  {name} {label} {n}^2: {r['seconds']:.1f} s, peak {r['peak_mb']:.0f} MB",
                  flush=True)
            rows.append({"refiner": name, "size": n, "megapixels": n * n / 1e6,
                         "how": label, "tile_size": tile, "overlap": overlap,
                         "seconds": r["seconds"], "s_per_mp": r["seconds"] / (n * n / 1e6),
                         "peak_mb": r["peak_mb"], "agree": None,
                         "file": label_file(*spec)})
        for row in rows:  # each tiled run against the whole image's labels
            folder = root / str(row["size"])
            whole = [r for r in rows if (r["refiner"], r["size"], r["how"]) ==
                     (row["refiner"], row["size"], "whole")]
            if row["tile_size"] and whole:
                tiled = np.load(folder / row["file"], mmap_mode="r")
                row["agree"] = float(np.mean(
                    tiled == np.load(folder / whole[0]["file"], mmap_mode="r")))
    finally:
        if args.data_dir is None:
            shutil.rmtree(root, ignore_errors=True)
    for row in rows:
        del row["file"]
    print(f"{'refiner':>8} {'size':>7} {'how':>14} {'s':>8} {'s/MP':>6} {'peak MB':>8} "
          f"{'agree %':>8}")
    for r in rows:
        agree = "" if r["agree"] is None else f"{100 * r['agree']:.2f}"
        print(f"{r['refiner']:>8} {r['size']:>5}^2 {r['how']:>14} {r['seconds']:8.1f} "
              f"{r['s_per_mp']:6.2f} {r['peak_mb']:8.0f} {agree:>8}")
    args.out.mkdir(parents=True, exist_ok=True)
    fields = list(rows[0]) if rows else []
    with open(args.out / "bench_huge.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    setup = (f"{platform.machine()}, {os.cpu_count()} cores, numba {numba.__version__} with "
             f"{numba.get_num_threads()} threads; K = {K}; DenseCRF(n_iter=5); GridCRF, "
             "512-pixel tiles with a 32-pixel margin; float16 memmap scores")
    with open(args.out / "bench_huge.json", "w") as fh:
        json.dump({"setup": setup, "args": vars(args) | {"out": str(args.out),
                                                         "data_dir": str(args.data_dir)},
                   "rows": rows}, fh, indent=2)
    print(setup)


if __name__ == "__main__":
    main()
