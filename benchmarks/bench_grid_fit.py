"""GridCRF.fit's weight search: time and chosen (weight, beta) against an earlier commit.

    python benchmarks/bench_grid_fit.py [--baseline a5d97f9] [--repeats 2] [--n-jobs 2]
                                        [--sets demo,membrane,camvid-unet,camvid-noisy]

What ``GridCRF(pairwise="contrast").fit(U, y)`` costs and chooses, on unaries of several
kinds (the grid CRF of the ``pixel+grid`` pipeline, as the demo fits it):

- ``demo``: the embedded CamVid sample's 4 training images (360x480, K = 11) with the pixel
  classifier's out-of-fold probabilities, exactly what ``hybridseg demo`` tunes on;
- ``membrane``: the same on the embedded ISBI membrane sample (2 images, 256x256, K = 2);
- ``camvid-unet-i``: the shipped CamVid U-Net's probabilities on 6 CamVid val images
  (every 8th frame from frame ``i``), 360x480;
- ``camvid-noisy-i``: ``make_noisy_scores`` logits of 6 CamVid val label maps (seeded),
  the simulated mediocre model of benchmarks/fit_grid_crf.py.

Rows per set: this tree with ``search="exhaustive"`` (every weight, then every beta
factor) and ``search="coarse_to_fine"`` (the default); and, on the sets named by
``--baseline-sets`` (default ``demo``), the ``--baseline`` commit's fit (checked out in a
temporary git worktree), which scored every weight and beta with one Python-driven min cut
per move. Every fit runs in a fresh subprocess that warms numba up on a small problem
first; the rows alternate over ``--repeats`` rounds and the table gives median seconds.
``same`` says whether the row chose the same weight and beta factor as the exhaustive
search of this tree. Writes benchmarks/results/grid_fit.csv and .json.
"""

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _heldout import write_results

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = Path(os.environ.get("HYBRIDSEG_DATA", ROOT.parent / "shared" / "data"))

WORKER = r"""
import json, pickle, sys, time
import numpy as np
from hybridseg import Unaries
from hybridseg.crf import GridCRF
path, search, n_jobs = sys.argv[1], sys.argv[2], int(sys.argv[3])
images, scores, kind, labels = pickle.load(open(path, "rb"))
U = Unaries(images, scores, kind=kind)
params = {} if search == "baseline" else {"search": search}
rng = np.random.default_rng(0)  # warm-up: numba's caches and the thread pool
small = [rng.random((24, 32, scores[0].shape[-1])).astype(np.float32) for _ in range(2)]
small = [p / p.sum(-1, keepdims=True) for p in small]
GridCRF(pairwise="contrast", n_jobs=n_jobs, weight_grid=[0.0, 1.0], **params).fit(
    Unaries([im[:24, :32] for im in images[:2]], small, kind="proba"),
    [lab[:24, :32] for lab in labels[:2]])
crf = GridCRF(pairwise="contrast", n_jobs=n_jobs, **params)
t0 = time.perf_counter()
crf.fit(U, labels)
seconds = time.perf_counter() - t0
print(json.dumps(dict(seconds=seconds, weight=crf.weight_,
                      beta_scale=getattr(crf, "beta_scale_", 1.0),
                      n_weights=len(crf.cv_scores_),
                      n_betas=len(getattr(crf, "beta_scores_", {})),
                      miou=max(crf.cv_scores_.values()))))
"""


def demo_unaries(sample):
    from hybridseg.classical import make_classical_stage
    from hybridseg.datasets import load_splits

    train, val, _ = load_splits(f"sample:{sample}")
    X, y = train.images + val.images, train.labels + val.labels
    U = make_classical_stage("pixel", random_state=0, n_jobs=-1)._cross_fit(X, y)[0]
    return list(U.images), list(U.scores), "proba", list(y)


def camvid_val(start, n=6, step=8):
    from hybridseg.datasets import load_camvid

    val = load_camvid(SHARED / "camvid", "val")
    pick = range(start, start + n * step, step)
    return [val.images[i] for i in pick], [val.labels[i] for i in pick]


def unet_unaries(start):
    from hybridseg.deep import load_pretrained

    images, labels = camvid_val(start)
    U = load_pretrained("camvid-unet").transform(images)
    return images, list(U.scores), U.kind, labels


def noisy_unaries(start):
    from hybridseg.datasets import make_noisy_scores

    images, labels = camvid_val(start)
    scores = make_noisy_scores(labels, 11, random_state=start)
    return images, list(scores), "logits", labels


def unary_sets(names):
    sets = {}
    for name in names:
        if name in ("demo", "membrane"):
            sets[name] = demo_unaries("camvid" if name == "demo" else name)
        elif name == "camvid-unet":
            for start in (0, 3):
                sets[f"camvid-unet-{start}"] = unet_unaries(start)
        elif name == "camvid-noisy":
            for start in (1, 5):
                sets[f"camvid-noisy-{start}"] = noisy_unaries(start)
        else:
            raise SystemExit(f"unknown set {name!r}")
    return sets


def run_worker(python_path, data, search, n_jobs):
    env = dict(os.environ, PYTHONPATH=str(python_path))
    out = subprocess.run([sys.executable, "-c", WORKER, str(data), search, str(n_jobs)],
                         env=env, capture_output=True, text=True, check=False,
                         cwd=tempfile.gettempdir())
    if out.returncode:
        raise SystemExit(f"the {search} fit failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="a5d97f9",
                    help="commit whose fit is timed beside this tree's ('' for none)")
    ap.add_argument("--baseline-sets", default="demo")
    ap.add_argument("--sets", default="demo,membrane,camvid-unet,camvid-noisy")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()

    sets = unary_sets(args.sets.split(","))
    with tempfile.TemporaryDirectory(prefix="bench-grid-fit-") as tmp:
        tmp = Path(tmp)
        baseline = None
        if args.baseline:
            baseline = tmp / "baseline"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q",
                            str(baseline), args.baseline], check=True)
        try:
            rows = measure(sets, tmp, baseline, args)
        finally:
            if baseline is not None:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(baseline)], check=False)
    print(f"\n{'set':<16} {'images':>6} {'code':<22} {'seconds':>8} {'x faster':>8} "
          f"{'weight':>7} {'beta':>5} {'scored':>6} {'same':>5}")
    for r in rows:
        print(f"{r['set']:<16} {r['n_images']:>6} {r['code']:<22} {r['seconds']:>8.1f} "
              f"{r['speedup']:>8.1f} {r['weight']:>7.3g} {r['beta_scale']:>5.3g} "
              f"{r['n_weights']:>3}+{r['n_betas']:<2} {r['same']!s:>5}")
    write_results(args.out, "grid_fit", args, rows,
                  ["set", "n_images", "size", "code", "seconds", "speedup", "weight",
                   "beta_scale", "n_weights", "n_betas", "miou", "same"])


def measure(sets, tmp, baseline, args):
    rows = []
    for name, (images, scores, kind, labels) in sets.items():
        data = tmp / f"{name}.pkl"
        with open(data, "wb") as f:
            pickle.dump(([np.asarray(im) for im in images], [np.asarray(s) for s in scores],
                         kind, [np.asarray(lab) for lab in labels]), f)
        codes = [("exhaustive", ROOT), ("coarse_to_fine", ROOT)]
        if baseline is not None and name in args.baseline_sets.split(","):
            codes.insert(0, ("baseline", baseline))
        runs = {code: [] for code, _ in codes}
        for _ in range(args.repeats):
            for code, path in codes:
                runs[code].append(run_worker(path, data, code, args.n_jobs))
        ref = runs["exhaustive"][0]
        for code, _ in codes:
            r = dict(runs[code][0])
            r["seconds"] = float(np.median([x["seconds"] for x in runs[code]]))
            rows.append(dict(
                r, set=name, n_images=len(images), size="x".join(map(str, scores[0].shape)),
                code=f"{args.baseline} (before)" if code == "baseline" else code,
                same=(r["weight"], r["beta_scale"]) == (ref["weight"], ref["beta_scale"])))
        slowest = rows[-len(codes)]["seconds"]
        for r in rows[-len(codes):]:
            r["speedup"] = round(slowest / r["seconds"], 2)
            r["seconds"] = round(r["seconds"], 2)
        print(name, [(r["code"], r["seconds"], r["weight"], r["beta_scale"])
                     for r in rows[-len(codes):]], flush=True)
    return rows


if __name__ == "__main__":
    main()
