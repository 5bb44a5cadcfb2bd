"""Time the metrics on 1,000 CamVid-size label maps (360x480, 11 classes + void).

    python benchmarks/bench_metrics.py [--n 1000] [--repeats 5]

Prints a table and writes benchmarks/results/metrics.csv and metrics.json. The label maps
are real CamVid test labels (repeated to reach --n) when ../shared/data is present, else
random blocky maps of the same size. Times are the median of --repeats runs after a
warm-up call (numba compiles, or loads its cache, on the first call).
"""

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np
from _timing import median_time

from hybridseg import metrics

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("HYBRIDSEG_DATA", HERE.parent.parent / "shared" / "data"))


def label_maps(n, rng):
    root = SHARED / "camvid"
    if root.is_dir():
        from hybridseg.datasets import load_camvid

        _, labels = load_camvid(root, "test", return_X_y=True)
        source = "CamVid test labels"
    else:
        labels = [np.kron(rng.integers(0, 12, (45, 60)), np.ones((8, 8), int)).astype(
            np.uint8) for _ in range(50)]
        for lab in labels:
            lab[lab == 11] = 255
        source = "random blocky maps"
    y_true = [labels[i % len(labels)] for i in range(n)]
    # A prediction that is wrong on ~20 % of the labelled pixels.
    y_pred = []
    for t in labels:
        p = np.where(t == 255, 0, t).astype(np.uint8)
        flip = rng.random(p.shape) < 0.2
        p[flip] = rng.integers(0, 11, flip.sum())
        y_pred.append(p)
    y_pred = [y_pred[i % len(y_pred)] for i in range(n)]
    return y_true, y_pred, source


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    y_true, y_pred, source = label_maps(args.n, rng)
    k = 11
    stacked_t = np.stack(y_true)
    stacked_p = np.stack(y_pred)

    def numpy_bincount():
        # The usual hand-written baseline: mask, combine, bincount, map by map.
        cm = np.zeros((k, k), np.int64)
        for t, p in zip(y_true, y_pred):
            m = t != 255
            cm += np.bincount(t[m].astype(np.int64) * k + p[m], minlength=k * k).reshape(k, k)
        return cm

    rows = [
        ("confusion_matrix (list of maps)",
         median_time(lambda: metrics.confusion_matrix(y_true, y_pred, n_classes=k), args.repeats)),
        ("confusion_matrix (stacked array)",
         median_time(lambda: metrics.confusion_matrix(stacked_t, stacked_p, n_classes=k),
               args.repeats)),
        ("mean_iou", median_time(lambda: metrics.mean_iou(y_true, y_pred, n_classes=k),
                           args.repeats)),
        ("numpy bincount baseline", median_time(numpy_bincount, args.repeats)),
    ]
    n_bf = min(50, args.n)
    bf = median_time(lambda: metrics.boundary_f1(y_true[:n_bf], y_pred[:n_bf], n_classes=k),
               max(1, args.repeats // 2))
    rows.append((f"boundary_f1 ({n_bf} maps, per map x{args.n // n_bf} for {args.n})",
                 bf * args.n / n_bf))
    assert np.array_equal(numpy_bincount(),
                          metrics.confusion_matrix(y_true, y_pred, n_classes=k))

    import numba

    header = (f"{args.n} maps of 360x480, K={k}, {source}; {platform.processor() or 'cpu'}, "
              f"{os.cpu_count()} cores, numba threads {numba.get_num_threads()}")
    print(header)
    print(f"{'what':<55} {'seconds':>9} {'maps/s':>10}")
    for name, sec in rows:
        print(f"{name:<55} {sec:>9.3f} {args.n / sec:>10.0f}")
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "metrics.csv", "w") as fh:
        fh.write("what,seconds,maps_per_second\n")
        for name, sec in rows:
            fh.write(f"\"{name}\",{sec:.6f},{args.n / sec:.1f}\n")
    with open(args.out / "metrics.json", "w") as fh:
        json.dump({"setup": header, "n_maps": args.n, "repeats": args.repeats,
                   "rows": [{"what": n, "seconds": s} for n, s in rows]}, fh, indent=2)


if __name__ == "__main__":
    main()
