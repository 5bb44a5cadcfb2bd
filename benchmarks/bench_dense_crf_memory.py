"""Peak memory of DenseCRF.refine by image size and number of classes: what the dense
CRF's memory plan (``DenseCRF._check_memory``) estimates from.

    python benchmarks/bench_dense_crf_memory.py [--sides 1000 1500] [--classes 5 21]

Each run is a fresh process (the peak resident memory is per process); the figure is the
rise of that peak during one refine of a random colour image (the lattice's worst case:
random colours fill it) with 5 mean-field iterations, over the memory the inputs already
held. Prints a table and the per-pixel and per-pixel-and-class bytes fitted to it, and
writes benchmarks/results/bench_dense_crf_memory.csv / .json.
"""

import argparse
import itertools
import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

RUN = """
import resource, sys, numpy as np
from hybridseg.crf import DenseCRF
side, k = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
im = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
p = rng.dirichlet(np.ones(k), (side, side)).astype(np.float32)
DenseCRF(n_iter=2).refine(im[:32, :32], p[:32, :32])  # compile first
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
DenseCRF(n_iter=5).refine(im, p)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base)
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sides", type=int, nargs="+", default=[1000, 1500])
    ap.add_argument("--classes", type=int, nargs="+", default=[5, 21])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    rows = []
    for side, k in itertools.product(args.sides, args.classes):
        r = subprocess.run([sys.executable, "-c", RUN, str(side), str(k)],
                           capture_output=True, text=True, check=True)
        peak = int(r.stdout.split()[-1])
        rows.append({"side": side, "classes": k, "pixels": side * side, "peak_bytes": peak})
        print(f"{side}x{side}, K={k:3d}: {peak / 2**20:8.0f} MiB "
              f"({peak / (side * side):6.0f} bytes per pixel)", flush=True)
    a = np.array([[r["pixels"] * r["classes"], r["pixels"]] for r in rows], float)
    per_class, per_pixel = np.linalg.lstsq(a, [r["peak_bytes"] for r in rows], rcond=None)[0]
    print(f"fit: {per_class:.1f} bytes per pixel and class + {per_pixel:.0f} bytes per pixel")
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "bench_dense_crf_memory.csv", "w") as f:
        f.write("side,classes,pixels,peak_bytes\n")
        f.writelines(f"{r['side']},{r['classes']},{r['pixels']},{r['peak_bytes']}\n"
                     for r in rows)
    meta = {"args": {k: str(v) for k, v in vars(args).items()}, "machine": platform.machine(),
            "python": platform.python_version(), "rows": rows,
            "fit": {"bytes_per_pixel_and_class": per_class, "bytes_per_pixel": per_pixel}}
    (args.out / "bench_dense_crf_memory.json").write_text(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
