"""Dense CRF: ours (numba) against pydensecrf, one run, on real CamVid images.

    python benchmarks/bench_dense_crf.py [--repeats 3] [--quick] [--profile]

For 360x480 and 720x960 (CamVid val images, bilinearly upscaled for the latter), K = 2, 11,
21 and 5 and 10 iterations (and K = 150 and 256 at 360x480, 5 iterations), with noisy
softmax unaries and the default kernels (3/3, 80/13/10): median seconds of --repeats runs
after a warm-up, label agreement between the two, then peak memory (each method in a fresh
process, resident set growth) and the first-call time with a cold and a warm numba cache
(fresh processes). Prints a table and writes benchmarks/results/dense_crf.csv and
dense_crf.json.

With --profile, instead: where one refine's time goes at 720x960, K = 21, 10 iterations
(the lattices' builds, and per iteration the fused slice-update-splat pass and the
lattices' block sums and blurs), with the numba threads given by NUMBA_NUM_THREADS;
written to benchmarks/results/dense_crf_profile.json.
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


def profile(h=720, w=960, k=21, n_iter=10, repeats=3):
    """Seconds of one refine by part: each numba kernel wrapped by a timer for the call."""
    import hybridseg.crf._lattice as lattice
    import hybridseg.crf._meanfield as meanfield

    image, proba = problem(h, w, k)
    parts = {}
    wrapped = [(meanfield, "_forward_pass", "pass: slice + update + splat"),
               (meanfield, "_backward_pass", "backward pass"),
               (lattice, "_gather_rows", "sum of the blocks' rows"),
               (meanfield, "_blur", "blur"), (lattice, "_blur", "blur"),
               (meanfield, "_neg_unary_rows", "log of the scores")]
    originals = []

    def timed(fn, name):
        def call(*args, **kwargs):
            t = time.perf_counter()
            out = fn(*args, **kwargs)
            parts[name] = parts.get(name, 0.0) + time.perf_counter() - t
            return out
        return call

    build = meanfield.LatticeKernel.__init__
    originals.append((meanfield.LatticeKernel, "__init__", build))
    for module, attr, name in wrapped:
        originals.append((module, attr, getattr(module, attr)))
        setattr(module, attr, timed(getattr(module, attr), name))

    def init(self, features):
        t = time.perf_counter()
        build(self, features)
        key = f"lattice build, d = {features.shape[1]}"
        parts[key] = parts.get(key, 0.0) + time.perf_counter() - t
    meanfield.LatticeKernel.__init__ = init
    try:
        run("ours", image, proba, n_iter)  # compiled, and the smoothness kernel kept
        rows = []
        for kept in (False, True):
            for _ in range(repeats):
                if not kept:
                    meanfield._POSITION_KERNELS.clear()
                parts.clear()
                t = time.perf_counter()
                run("ours", image, proba, n_iter)
                total = time.perf_counter() - t
                rows.append((kept, total, dict(parts)))
    finally:
        for module, attr, fn in originals:
            setattr(module, attr, fn)
    out = {}
    for kept in (False, True):
        runs = [r for r in rows if r[0] == kept]
        i = int(np.argsort([r[1] for r in runs])[len(runs) // 2])  # the median run
        total, p = runs[i][1], runs[i][2]
        p["validation, features, the rest"] = total - sum(p.values())
        out["smoothness kernel kept" if kept else "every lattice built"] = {"total_s": total,
                                                                            "parts_s": p}
    return out


def print_profile(prof):
    for label, r in prof.items():
        print(f"{label}: {r['total_s']:.3f} s")
        for name, sec in sorted(r["parts_s"].items(), key=lambda x: -x[1]):
            print(f"  {name:<34} {sec:7.3f} s  {100 * sec / r['total_s']:5.1f}%")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="only 720x960, K=21, 10 iterations")
    ap.add_argument("--profile", action="store_true",
                    help="where one refine's time goes (720x960, K=21, 10 iterations)")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child)
    import numba

    if args.profile:
        prof = profile(repeats=args.repeats)
        print(f"720x960, K=21, 10 iterations, {numba.get_num_threads()} numba threads "
              f"(median of {args.repeats})")
        print_profile(prof)
        args.out.mkdir(parents=True, exist_ok=True)
        with open(args.out / "dense_crf_profile.json", "w") as fh:
            json.dump({"setup": f"{platform.machine()}, {os.cpu_count()} cores, numba "
                                f"{numba.__version__} with {numba.get_num_threads()} threads",
                       "size": [720, 960], "n_classes": 21, "n_iter": 10, **prof}, fh,
                      indent=2)
        return

    sizes = [(720, 960)] if args.quick else [(360, 480), (720, 960)]
    ks = [21] if args.quick else [2, 11, 21]
    iters = [10] if args.quick else [5, 10]
    rows = []
    print(f"{'size':>8} {'K':>3} {'it':>3} {'pydensecrf s':>13} {'ours s':>8} {'speed-up':>9} "
          f"{'agree %':>8}")
    configs = [(h, w, k, it) for h, w in sizes for k in ks for it in iters]
    if not args.quick:
        configs += [(360, 480, 150, 5), (360, 480, 256, 5)]  # ADE20K's K, and more
    for h, w, k, n_iter in configs:
        image, proba = problem(h, w, k)
        t_ref = median_time(partial(run, "ref", image, proba, n_iter), args.repeats)
        t_our = median_time(partial(run, "ours", image, proba, n_iter), args.repeats)
        agree = float(np.mean(run("ref", image, proba, n_iter).argmax(-1)
                              == run("ours", image, proba, n_iter).argmax(-1)))
        rows.append(dict(height=h, width=w, n_classes=k, n_iter=n_iter, pydensecrf_s=t_ref,
                         ours_s=t_our, speedup=t_ref / t_our, agreement=agree))
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
