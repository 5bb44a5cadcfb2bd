"""Images of any size: time per megapixel and peak memory of ``refine_tiles`` against the
image's size, beside the whole-image refine where that fits.

    python benchmarks/bench_huge.py [--sizes 1024,2048,4096,8192,16384] [--whole-max 4096]
                                    [--tile-sizes 512,1024,2048] [--data-dir DIR]

The problem (one per size): a mosaic of CamVid val frames and noisy float16 logits of their
labels, K = 8, both numpy memmaps on disk (the scores are 4.3 GB at 16,384^2), refined by
``DenseCRF(n_iter=5)`` with 1024-pixel tiles and the default 240-pixel margin, and by
``GridCRF(weight=2)`` (512-pixel tiles, 32-pixel margin) up to 2048^2. Each run is a fresh
process that reads the memmaps, writes the labels into a memmap and reports its seconds
and its peak resident set (VmHWM: ``ru_maxrss`` would report the parent's peak, being
carried across fork and exec); the tiled labels are compared with the whole image's.
``--tile-sizes`` adds, at 4096^2, the dense CRF's peak for other tile sizes (the memory
table of the docs). Prints a table and writes benchmarks/results/bench_huge.csv and .json.
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


def refiner(name):
    from hybridseg.crf import DenseCRF, GridCRF

    return DenseCRF(n_iter=5) if name == "dense" else GridCRF(weight=2.0)


def child(folder, n, name, how, tile):
    """In a fresh process: one refine of the problem in ``folder``; prints a JSON line."""
    from hybridseg.crf import refine_tiles

    folder, n, tile = Path(folder), int(n), int(tile)
    image = np.memmap(folder / "image.u8", np.uint8, "r", shape=(n, n, 3))
    scores = np.memmap(folder / "scores.f16", np.float16, "r", shape=(n, n, K))
    out = np.lib.format.open_memmap(folder / f"{name}_{how}_{tile}.npy", mode="w+",
                                    dtype=np.uint8, shape=(n, n))
    crf = refiner(name)
    crf.refine(np.asarray(image[:64, :64]), np.asarray(scores[:64, :64], np.float32),
               kind="logits")  # numba's compile (or cache load) is not timed
    t0 = time.perf_counter()
    if how == "whole":
        q = crf.refine(np.asarray(image), np.asarray(scores, np.float32), kind="logits")
        out[:] = q.argmax(-1)
    else:
        overlap = None if name == "dense" else 32
        refine_tiles(crf, image, scores, kind="logits", tile_size=tile, overlap=overlap,
                     out=out)
    seconds = time.perf_counter() - t0
    out.flush()
    print(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb()}))


def run_child(folder, n, name, how, tile):
    r = subprocess.run([sys.executable, __file__, "--child", str(folder), str(n), name, how,
                        str(tile)], capture_output=True, text=True)
    if r.returncode:
        tail = (r.stderr.strip().splitlines() or ["?"])[-1]
        print(f"  {name} {how} {n}^2 failed: {tail}", flush=True)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1024,2048,4096,8192,16384")
    ap.add_argument("--whole-max", type=int, default=4096,
                    help="largest side refined whole as well (4096^2 peaks near 5 GB)")
    ap.add_argument("--grid-max", type=int, default=2048)
    ap.add_argument("--tile-sizes", default="512,1024,2048",
                    help="dense CRF tile sizes measured at 4096^2 (empty: none)")
    ap.add_argument("--data-dir", type=Path, help="where the memmaps go (kept); default: "
                    "a temporary folder, removed")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(*args.child)
    import numba

    sizes = [int(s) for s in args.sizes.split(",")]
    tiles = [int(s) for s in args.tile_sizes.split(",") if s]
    root = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-huge-"))
    runs = []
    for n in sizes:
        runs += [(n, "dense", "tiled", 1024)]
        runs += [(n, "dense", "whole", 0)] if n <= args.whole_max else []
        if n <= args.grid_max:
            runs += [(n, "grid", "tiled", 512), (n, "grid", "whole", 0)]
    if 4096 in sizes:
        runs += [(4096, "dense", "tiled", t) for t in tiles if t != 1024]
    rows = []
    try:
        make_problem(root / str(sizes[0]), sizes[0])
        for name in ("dense", "grid"):  # numba's compile (or cache check) on these shapes
            run_child(root / str(sizes[0]), sizes[0], name, "tiled", 512)
        for n, name, how, tile in runs:
            folder = root / str(n)
            make_problem(folder, n)
            r = run_child(folder, n, name, how, tile)
            if r is None:
                continue
            print(f"  {name} {how} {tile or ''} {n}^2: {r['seconds']:.1f} s, peak "
                  f"{r['peak_mb']:.0f} MB", flush=True)
            rows.append({"refiner": name, "size": n, "megapixels": n * n / 1e6,
                         "how": how if how == "whole" else f"tiled {tile}",
                         "tile_size": tile, "seconds": r["seconds"],
                         "s_per_mp": r["seconds"] / (n * n / 1e6), "peak_mb": r["peak_mb"],
                         "agree": None})
        for row in rows:  # each tiled run against the whole image's labels
            folder = root / str(row["size"])
            whole = folder / f"{row['refiner']}_whole_0.npy"
            if row["tile_size"] and whole.exists():
                tiled = np.load(folder / f"{row['refiner']}_tiled_{row['tile_size']}.npy",
                                mmap_mode="r")
                row["agree"] = float(np.mean(tiled == np.load(whole, mmap_mode="r")))
    finally:
        if args.data_dir is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"{'refiner':>7} {'size':>7} {'how':>11} {'s':>8} {'s/MP':>6} {'peak MB':>8} "
          f"{'agree %':>8}")
    for r in rows:
        agree = "" if r["agree"] is None else f"{100 * r['agree']:.2f}"
        print(f"{r['refiner']:>7} {r['size']:>5}^2 {r['how']:>11} {r['seconds']:8.1f} "
              f"{r['s_per_mp']:6.2f} {r['peak_mb']:8.0f} {agree:>8}")
    args.out.mkdir(parents=True, exist_ok=True)
    fields = list(rows[0]) if rows else []
    with open(args.out / "bench_huge.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    setup = (f"{platform.machine()}, {os.cpu_count()} cores, numba {numba.__version__} with "
             f"{numba.get_num_threads()} threads; K = {K}; DenseCRF(n_iter=5), default "
             "overlap 240; GridCRF(weight=2), overlap 32; float16 memmap scores")
    with open(args.out / "bench_huge.json", "w") as fh:
        json.dump({"setup": setup, "rows": rows}, fh, indent=2)
    print(setup)


if __name__ == "__main__":
    main()
