"""Dense CRF: ours (numba) against pydensecrf, one run, on real CamVid images.

    python benchmarks/bench_dense_crf.py [--repeats 3] [--quick]

For 360x480 and 720x960 (CamVid val images, bilinearly upscaled for the latter), K = 2, 11,
21 and 5 and 10 iterations, with noisy softmax unaries and the default kernels
(3/3, 80/13/10): median seconds of --repeats runs after a warm-up, label agreement between
the two, then peak memory (each method in a fresh process, resident set growth) and the
first-call time with a cold and a warm numba cache (fresh processes). Prints a table and
writes benchmarks/results/dense_crf.csv and dense_crf.json.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
from _timing import median_time

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("HYBRIDSEG_DATA", HERE.parent.parent / "shared" / "data"))


def problem(h, w, k, seed=0):
    from PIL import Image

    files = sorted((SHARED / "camvid" / "val").glob("*.png"))
    if not files:
        sys.exit(f"CamVid val images not found under {SHARED}")
    img = Image.open(files[seed % len(files)])
    lab = Image.open(str(files[seed % len(files)]).replace("/val/", "/valannot/"))
    if (h, w) != (360, 480):
        img = img.resize((w, h), Image.BILINEAR)
        lab = lab.resize((w, h), Image.NEAREST)
    image = np.asarray(img)
    gt = np.asarray(lab).astype(int) % k
    rng = np.random.default_rng(seed)
    logits = 2.0 * np.eye(k, dtype=np.float32)[gt] + rng.normal(0, 1.5, (h, w, k))
    p = np.exp(logits - logits.max(-1, keepdims=True))
    return image, (p / p.sum(-1, keepdims=True)).astype(np.float32)


def run(method, image, proba, n_iter):
    from hybridseg.crf import DenseCRF

    backend = "numba" if method == "ours" else "pydensecrf"
    return DenseCRF(n_iter=n_iter, backend=backend).refine(image, proba)


def peak_rss_kb():
    """This process's peak resident set (VmHWM; ru_maxrss is inherited from the parent
    across fork and exec on Linux, so it would report the benchmark's own peak)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(argv):
    """Run inside a fresh process: peak memory or first-call time of one method."""

    what, method, n_iter, path = argv[0], argv[1], int(argv[2]), argv[3]
    # The inputs come from a file so that making them does not set the peak.
    with np.load(path) as data:
        image, proba = data["image"], data["proba"]
    if what == "memory":
        before = peak_rss_kb()
        run(method, image, proba, n_iter)
        print(json.dumps({"peak_growth_mb": (peak_rss_kb() - before) / 1024}))
    else:
        t0 = time.perf_counter()
        run(method, image[:64, :64], proba[:64, :64], 2)
        print(json.dumps({"first_call_s": time.perf_counter() - t0}))


def in_child(args, env=None):
    out = subprocess.run([sys.executable, __file__, "--child", *map(str, args)],
                         capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="only 720x960, K=21, 10 iterations")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child)
    import numba

    sizes = [(720, 960)] if args.quick else [(360, 480), (720, 960)]
    ks = [21] if args.quick else [2, 11, 21]
    iters = [10] if args.quick else [5, 10]
    rows = []
    print(f"{'size':>8} {'K':>3} {'it':>3} {'pydensecrf s':>13} {'ours s':>8} {'speed-up':>9} "
          f"{'agree %':>8}")
    for h, w in sizes:
        for k in ks:
            image, proba = problem(h, w, k)
            for n_iter in iters:
                t_ref = median_time(partial(run, "ref", image, proba, n_iter), args.repeats)
                t_our = median_time(partial(run, "ours", image, proba, n_iter), args.repeats)
                agree = float(np.mean(run("ref", image, proba, n_iter).argmax(-1)
                                      == run("ours", image, proba, n_iter).argmax(-1)))
                rows.append(dict(height=h, width=w, n_classes=k, n_iter=n_iter,
                                 pydensecrf_s=t_ref, ours_s=t_our, speedup=t_ref / t_our,
                                 agreement=agree))
                print(f"{h}x{w:<4} {k:>3} {n_iter:>3} {t_ref:>13.3f} {t_our:>8.3f} "
                      f"{t_ref / t_our:>8.2f}x {100 * agree:>8.2f}")
    tmp = tempfile.TemporaryDirectory()
    inputs = Path(tmp.name) / "inputs.npz"
    image, proba = problem(720, 960, 21)
    np.savez(inputs, image=image, proba=proba)
    mem = {m: in_child(["memory", m, 10, inputs])["peak_growth_mb"]
           for m in ("ref", "ours")}
    print(f"peak memory growth at 720x960, K=21, 10 it: pydensecrf {mem['ref']:.0f} MB, "
          f"ours {mem['ours']:.0f} MB ({mem['ours'] / mem['ref']:.2f}x)")
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        cold = in_child(["first", "ours", 10, inputs], env)["first_call_s"]
        warm = in_child(["first", "ours", 10, inputs], env)["first_call_s"]
    tmp.cleanup()
    print(f"first call on a 64x64 image in a fresh process: cold numba cache {cold:.2f} s, "
          f"warm cache {warm:.2f} s")
    setup = (f"{platform.machine()}, {os.cpu_count()} cores, numba {numba.__version__} "
             f"with {numba.get_num_threads()} threads, median of {args.repeats}")
    print(setup)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "dense_crf.csv", "w") as fh:
        fh.write(",".join(rows[0]) + "\n")
        for r in rows:
            fh.write(",".join(f"{v:.6g}" if isinstance(v, float) else str(v)
                              for v in r.values()) + "\n")
    with open(args.out / "dense_crf.json", "w") as fh:
        json.dump({"setup": setup, "rows": rows, "peak_memory_growth_mb": mem,
                   "first_call_s": {"cold_cache": cold, "warm_cache": warm}}, fh, indent=2)


if __name__ == "__main__":
    main()
