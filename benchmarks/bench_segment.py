"""``hybridseg segment`` at scale: a saved U-Net + dense CRF over the CamVid test images, in
this process, on 2 local worker processes and on a Dask LocalCluster of 2 worker
processes; images per second each way, identical outputs, and peak memory at 100 vs 1,000
images (repeated files), which must stay within 10%.

    python benchmarks/bench_segment.py                  # the full run (about 15 minutes
                                                        # on 2 cores)
    python benchmarks/bench_segment.py --quick          # 12 images, memory at 10 vs 40

The model: ``Pipeline([("cnn", load_pretrained("camvid-unet")), ("crf", DenseCRF())])``
(the DenseCRF with its default kernels, fitted only to record K = 11) written with
``hybridseg.save``, so that the model file itself is U-Net + dense CRF. Each run is the
command line in a fresh process (``python -m hybridseg segment IN OUT --model M --quiet
--report R`` with ``--n-jobs N`` or ``--scheduler tcp://...``), into a fresh output
folder; the Dask cluster (``LocalCluster(n_workers=2, threads_per_worker=1,
processes=True)``) is started for each run by a helper process of this script.
images/s is the report's: images written over the wall-clock seconds of ``segment``
(model loading, the workers' start and their first, compiling, image included; the
cluster's start not). Peak memory is the largest sum of the resident set sizes of every
process this script started (the command, its workers, the cluster's scheduler, nannies
and workers), sampled every 50 ms with psutil. Outputs of each way are compared file by
file with those of the in-process and the local run (``identical_to_*``: files with the
same bytes; ``differing_pixels_vs_*``: label pixels that differ in the others); the labels
are scored against CamVid's test annotations as a check.

Other jobs may run on this machine at the same time: each row records the load average
before and after its run. Prints a table; writes benchmarks/results/bench_segment.csv and
.json.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import psutil
from _heldout import write_results

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("HYBRIDSEG_DATA", HERE.parent.parent / "shared" / "data"))

CLUSTER_HELPER = '''
import sys

import distributed

if __name__ == "__main__":
    with distributed.LocalCluster(n_workers=int(sys.argv[1]), threads_per_worker=1,
                                  processes=True, dashboard_address=None) as cluster:
        print(cluster.scheduler_address, flush=True)
        sys.stdin.read()  # until the benchmark closes the pipe
'''

KEYS = ["mode", "n_images", "written", "failed", "seconds", "images_per_s",
        "peak_rss_mb", "identical_to_in-process", "differing_pixels_vs_in-process",
        "identical_to_local", "differing_pixels_vs_local", "load_before", "load_after"]


class TreeMemory:
    """Peak of the summed RSS of every descendant of this process, sampled in a thread."""

    def __init__(self, interval=0.05):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in me.children(recursive=True):
                try:
                    total += p.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


def build_model(path, crf=True):
    """Save U-Net + DenseCRF as one Pipeline file (the U-Net alone without ``crf``)."""
    from sklearn.pipeline import Pipeline

    import hybridseg
    from hybridseg.crf import DenseCRF
    from hybridseg.datasets._base import read_image

    unet = hybridseg.deep.load_pretrained("camvid-unet", device="cpu")
    if not crf:
        hybridseg.save(unet, path)
        return path
    first = sorted((SHARED / "camvid" / "test").glob("*.png"))[0]
    dense = DenseCRF().fit(unet.transform([read_image(first)[:64, :64]]))
    hybridseg.save(Pipeline([("cnn", unet), ("crf", dense)]), path)
    return path


def link_images(sources, n, folder):
    """``n`` symlinks cycling through ``sources`` (repeated files) in ``folder``."""
    folder.mkdir(parents=True)
    for i in range(n):
        src = sources[i % len(sources)]
        (folder / f"r{i:05d}_{src.name}").symlink_to(src)
    return folder


class Cluster:
    """A LocalCluster of ``n`` worker processes in a helper process (closed on exit)."""

    def __init__(self, n, tmp):
        helper = tmp / "cluster_helper.py"
        helper.write_text(CLUSTER_HELPER)
        self.proc = subprocess.Popen([sys.executable, str(helper), str(n)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self.address = self.proc.stdout.readline().strip()
        if not self.address.startswith("tcp://"):
            raise RuntimeError("the LocalCluster helper did not start")

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_segment(mode, inp, out, model, tmp, workers):
    """One CLI run in a fresh process; its report, peak tree RSS and load averages."""
    report = tmp / f"report_{out.name}.json"
    cmd = [sys.executable, "-m", "hybridseg", "segment", str(inp), str(out),
           "--model", str(model), "--quiet", "--report", str(report)]
    load_before = os.getloadavg()[0]
    with TreeMemory() as mem:
        cluster = None
        if mode == "dask":
            cluster = Cluster(workers, tmp)
            cmd += ["--scheduler", cluster.address]
        else:
            cmd += ["--n-jobs", str(1 if mode == "in-process" else workers)]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True)
        finally:
            if cluster is not None:
                cluster.close()
    if result.returncode != 0:
        print(result.stderr, file=sys.stderr)
        raise RuntimeError(f"{mode}: hybridseg segment exited with {result.returncode}")
    rep = json.loads(report.read_text())
    return dict(
        written=rep["written"], failed=len(rep["failed"]), seconds=round(rep["seconds"], 2),
        images_per_s=round(rep["images_per_second"], 3),
        peak_rss_mb=round(mem.peak / 2**20, 1), load_before=round(load_before, 2),
        load_after=round(os.getloadavg()[0], 2),
    )


def identical(a, b):
    """How many .png files under ``a`` have the same bytes under ``b``, and the number
    of files; and the number of label pixels that differ."""
    same = n = pixels = 0
    from PIL import Image

    for p in sorted(a.rglob("*.png")):
        q = b / p.relative_to(a)
        n += 1
        if q.is_file() and p.read_bytes() == q.read_bytes():
            same += 1
        elif q.is_file():
            with Image.open(p) as x, Image.open(q) as y:
                pixels += int((np.asarray(x) != np.asarray(y)).sum())
    return same, n, pixels


def score_miou(out, names, inp):
    """Mean IoU of the written labels against CamVid's test annotations (``inp``: the
    input folder, whose symlinks name the test images)."""
    from PIL import Image

    from hybridseg.datasets._camvid import _read_camvid_label
    from hybridseg.metrics import confusion_matrix

    cm = np.zeros((11, 11), np.int64)
    for name in names:
        with Image.open(out / name) as im:
            pred = np.asarray(im)
        source = (inp / name).resolve().name
        truth = _read_camvid_label(SHARED / "camvid" / "testannot" / source)
        cm += confusion_matrix([truth], [pred], n_classes=11)
    inter = np.diag(cm).astype(float)
    union = cm.sum(0) + cm.sum(1) - inter
    return float(np.nanmean(np.where(union > 0, inter / np.maximum(union, 1), np.nan)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-images", type=int, default=None,
                    help="CamVid test images for the speed runs (default: all 233)")
    ap.add_argument("--memory-sizes", default="100,1000",
                    help="the two numbers of (repeated) images of the memory runs")
    ap.add_argument("--modes", default="in-process,local,dask",
                    help="comma-separated: in-process (--n-jobs 1), local (--n-jobs "
                         "WORKERS), dask (a LocalCluster of WORKERS processes)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--quick", action="store_true",
                    help="a check: 12 images, memory at 10 vs 40")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--name", default="bench_segment")
    ap.add_argument("--no-crf", action="store_true",
                    help="the U-Net alone (10x quicker per image: memory runs at 1,000 "
                         "images in minutes)")
    args = ap.parse_args()
    if args.quick:
        args.n_images, args.memory_sizes = 12, "10,40"
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    sizes = [int(s) for s in args.memory_sizes.split(",") if s.strip()]
    test_dir = SHARED / "camvid" / "test"
    sources = sorted(test_dir.glob("*.png"))
    if not sources:
        sys.exit(f"no CamVid test images in {test_dir} (set HYBRIDSEG_DATA)")
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_segment_") as tmp:
        tmp = Path(tmp)
        model = build_model(tmp / "model.hseg", crf=not args.no_crf)
        n = len(sources) if args.n_images is None else min(args.n_images, len(sources))
        speed_in = test_dir if n == len(sources) else link_images(sources[:n], n,
                                                                  tmp / "speed_in")
        kind = "U-Net" if args.no_crf else "U-Net + DenseCRF Pipeline"
        print(f"model: {model.stat().st_size / 2**20:.1f} MiB ({kind}); "
              f"{n} CamVid test images; load average {os.getloadavg()}", flush=True)
        outs = {}
        for mode in modes:
            out = tmp / f"speed_{mode}"
            row = dict(mode=mode, n_images=n, **run_segment(mode, speed_in, out, model, tmp,
                                                            args.workers))
            outs[mode] = out
            rows.append(row)
            print(row, flush=True)
        names = sorted(p.relative_to(outs[modes[0]]).as_posix()
                       for p in outs[modes[0]].rglob("*.png"))
        miou = score_miou(outs[modes[0]], names, speed_in)
        for row in rows:
            for ref in ("in-process", "local"):
                if ref in outs and ref != row["mode"]:
                    same, total, pixels = identical(outs[ref], outs[row["mode"]])
                    row[f"identical_to_{ref}"] = f"{same}/{total}"
                    row[f"differing_pixels_vs_{ref}"] = pixels
        for size in sizes:
            inp = link_images(sources, size, tmp / f"mem_in_{size}")
            for mode in modes:
                out = tmp / f"mem_{mode}_{size}"
                row = dict(mode=mode, n_images=size,
                           **run_segment(mode, inp, out, model, tmp, args.workers))
                rows.append(row)
                print(row, flush=True)
                for p in out.rglob("*.png"):  # keep the disk small
                    p.unlink()
    memory = {}
    if len(sizes) == 2:
        for mode in modes:
            small, large = (next(r["peak_rss_mb"] for r in rows
                                 if r["mode"] == mode and r["n_images"] == s) for s in sizes)
            memory[mode] = dict(small=small, large=large,
                                ratio=round(large / small, 3),
                                within_10_percent=bool(abs(large / small - 1) <= 0.10))
    print(f"\n{'mode':<11} {'images':>6} {'seconds':>8} {'images/s':>9} {'peak MB':>8} "
          f"{'same as in-process':>18} {'same as local':>13} {'load':>11}")
    for r in rows:
        print(f"{r['mode']:<11} {r['n_images']:>6} {r['seconds']:>8.1f} "
              f"{r['images_per_s']:>9.2f} {r['peak_rss_mb']:>8.0f} "
              f"{r.get('identical_to_in-process', ''):>18} "
              f"{r.get('identical_to_local', ''):>13} "
              f"{r['load_before']:>5.2f}-{r['load_after']:<5.2f}")
    print(f"\nmean IoU of the labels on the {n} CamVid test images: {miou:.4f}")
    for mode, m in memory.items():
        print(f"peak memory {mode}: {m['small']:.0f} MB at {sizes[0]} images, "
              f"{m['large']:.0f} MB at {sizes[1]} ({m['ratio']:.3f}x, within 10%: "
              f"{m['within_10_percent']})")
    write_results(args.out, args.name, args, rows, KEYS,
                  started=started, finished=datetime.now(timezone.utc).isoformat(
                      timespec="seconds"),
                  load_average_at_end=os.getloadavg(), test_miou=miou, memory=memory,
                  note="other jobs may have run on this machine at the same time: see "
                       "each row's load_before/load_after (1-minute load average)")


if __name__ == "__main__":
    main()
