"""Grid CRF: ours (numba) against PyMaxflow and gco-wrapper, on one real CamVid val image.

    python benchmarks/bench_grid_crf.py [--repeats 3] [--image 0] [--scale 100]

Four 4-connected problems at 360x480, built like ../shared/acceptance/grid_crf.py from the
image's labels (void folded into class 0), with integer unary costs:

- binary road vs rest, ``cost = 4 [label != truth] + U{0..6}``, Potts weight 3;
- the same costs with contrast-sensitive weights ``3 exp(-beta |I_i - I_j|^2)``;
- 11 labels, ``cost = 6 [label != truth] + U{0..9}``, Potts weight 4;
- the same costs with contrast-sensitive weights ``4 exp(-beta |I_i - I_j|^2)``.

gco takes integers only, so the contrast-sensitive problems are solved by every method in
units of ``1 / --scale``: costs times the scale, edge weights ``round(scale * w_ij)``; the
energies are reported divided by the scale again. Every energy is computed by one function,
``hybridseg.crf._grid_graph.labelling_energy``, on the same costs, edges and weights.

Rows: on the binary problems, our ``binary_energy_min`` (edge list and residual graph built
inside the timed call) against PyMaxflow (graph built inside too), whose cut is exact; on
all problems our alpha-expansion, alpha-beta swap, ICM (and TRW-S when
``hybridseg/crf/_trws.py`` imports: its final energy, best lower bound and the relative gap
``(energy - bound) / |bound|``) against gco's expansion and swap (``cut_grid_graph_simple``
for Potts, ``cut_general_graph`` on our int32 edge list for contrast). Each row: median
seconds of --repeats runs after a warm-up, the energy, and its relative difference to the
reference (PyMaxflow's exact minimum for the binary problems, gco's expansion otherwise).
Prints a table and writes benchmarks/results/grid_crf.csv and grid_crf.json.
"""

import argparse
import json
import os
import platform
import sys
from functools import partial
from pathlib import Path

import numpy as np
from _timing import median_time

from hybridseg.crf._expansion import alpha_beta_swap, alpha_expansion
from hybridseg.crf._grid_graph import (
    adjacency,
    edge_weights,
    grid_edges,
    icm,
    labelling_energy,
)
from hybridseg.crf._maxflow import binary_energy_min

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("HYBRIDSEG_DATA", HERE.parent.parent / "shared" / "data"))

try:
    from hybridseg.crf._trws import trws
except ImportError as exc:  # being written: the TRW-S rows appear once it imports
    trws = None
    TRWS_NOTE = f"TRW-S rows skipped: hybridseg.crf._trws does not import ({exc})"
else:
    TRWS_NOTE = None


def load(index):
    """Image (H, W, 3) uint8 and labels (H, W) in 0..10 of one CamVid val image."""
    from PIL import Image

    files = sorted((SHARED / "camvid" / "val").glob("*.png"))
    if not files:
        sys.exit(f"CamVid val images not found under {SHARED}")
    f = files[index % len(files)]
    image = np.asarray(Image.open(f).convert("RGB"))
    gt = np.asarray(Image.open(str(f).replace("/val/", "/valannot/"))).astype(int)
    gt[gt == 11] = 0
    return image, gt, f.name


def problems(image, gt, scale, seed):
    """The four problems: integer-valued float64 costs (N, K), edges, weights and mu."""
    rng = np.random.default_rng(seed)
    shape = gt.shape
    edges, dist = grid_edges(shape, 4)
    pixels = image.reshape(-1, image.shape[-1]).astype(np.float64)
    b = (gt == 3).astype(int)
    c2 = np.stack([b, 1 - b], -1) * 4 + rng.integers(0, 7, (*shape, 2))
    ck = (1 - np.eye(11, dtype=int)[gt]) * 6 + rng.integers(0, 10, (*shape, 11))
    out = []
    for name, cost, weight in (("binary", c2, 3.0), ("11 labels", ck, 4.0)):
        k = cost.shape[-1]
        cost = cost.reshape(-1, k).astype(np.float64)
        potts = np.full(len(edges), weight)
        out.append(dict(problem=f"{name} Potts w={weight:g}", cost=cost, w=potts,
                        weight=weight, contrast=False, scale=1))
        wc, beta = edge_weights(pixels, edges, dist, pairwise="contrast", weight=weight)
        out.append(dict(problem=f"{name} contrast w={weight:g}", cost=cost * scale,
                        w=np.rint(wc * scale), weight=weight, contrast=True, scale=scale,
                        beta=beta))
    for p in out:
        p.update(shape=shape, edges=edges, mu=1.0 - np.eye(p["cost"].shape[1]))
    return out


# ---------------------------------------------------------------- solvers: labels (N,)
def ours_mincut(p):
    edges, _ = grid_edges(p["shape"], 4)
    return binary_energy_min(p["cost"][:, 0], p["cost"][:, 1], edges, p["w"])[0]


def pymaxflow(p):
    import maxflow

    h, w = p["shape"]
    cost = p["cost"].reshape(h, w, 2)
    g = maxflow.Graph[float]()
    ids = g.add_grid_nodes((h, w))
    if not p["contrast"]:
        g.add_grid_edges(ids, weights=p["weight"], symmetric=True)
    else:
        # Our edge list holds the horizontal edges (H, W-1), then the vertical (H-1, W).
        n_h = h * (w - 1)
        right = np.zeros((h, w))
        right[:, :-1] = p["w"][:n_h].reshape(h, w - 1)
        down = np.zeros((h, w))
        down[:-1] = p["w"][n_h:].reshape(h - 1, w)
        for weights, structure in ((right, [[0, 0, 0], [0, 0, 1], [0, 0, 0]]),
                                   (down, [[0, 0, 0], [0, 0, 0], [0, 1, 0]])):
            g.add_grid_edges(ids, weights=weights, structure=np.array(structure),
                             symmetric=True)
    g.add_grid_tedges(ids, cost[..., 1], cost[..., 0])
    g.maxflow()
    return g.get_grid_segments(ids).astype(np.int64).ravel()


def ours_expansion(p, max_cycles):
    edges, _ = grid_edges(p["shape"], 4)
    return alpha_expansion(p["cost"], edges, p["w"], p["mu"], max_cycles=max_cycles)[0]


def ours_swap(p, max_cycles):
    edges, _ = grid_edges(p["shape"], 4)
    return alpha_beta_swap(p["cost"], edges, p["w"], p["mu"], max_cycles=max_cycles)[0]


def ours_icm(p, max_sweeps):
    edges, _ = grid_edges(p["shape"], 4)
    ptr, nbr, wgt = adjacency(p["cost"].shape[0], edges, p["w"])
    return icm(p["cost"], ptr, nbr, wgt, p["mu"], max_sweeps=max_sweeps)[0]


def ours_trws(p, n_iter):
    edges, _ = grid_edges(p["shape"], 4)
    kw = {} if n_iter is None else {"n_iter": n_iter}
    return trws(p["cost"], edges, p["w"], p["mu"], **kw)


def gco_cut(p, algorithm):
    import gco

    cost = p["cost"].astype(np.int32)
    mu = p["mu"].astype(np.int32)
    if not p["contrast"]:
        h, w = p["shape"]
        pair = (p["weight"] * p["mu"]).astype(np.int32)
        return gco.cut_grid_graph_simple(cost.reshape(h, w, -1), pair, connect=4,
                                         algorithm=algorithm).astype(np.int64)
    # down_weight_factor=1: with int32 inputs, the default factor divides the costs by
    # their maximum and truncates them to integers (zero), so gco would ignore them.
    return gco.cut_general_graph(p["edges32"], p["w"].astype(np.int32), cost, mu,
                                 algorithm=algorithm, down_weight_factor=1).astype(np.int64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--image", type=int, default=0, help="index into sorted CamVid val")
    ap.add_argument("--scale", type=int, default=100,
                    help="integer units per cost unit on the contrast-sensitive problems")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-cycles", type=int, default=20,
                    help="label cycles of our expansion and swap at most (gco: to the end)")
    ap.add_argument("--icm-sweeps", type=int, default=100)
    ap.add_argument("--trws-iter", type=int, default=None,
                    help="TRW-S iterations (default: trws's own default)")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    import numba

    image, gt, name = load(args.image)
    if TRWS_NOTE:
        print(TRWS_NOTE)
    print(f"CamVid val {name}, {gt.shape[0]}x{gt.shape[1]}, 4-connected; median of "
          f"{args.repeats} after a warm-up")
    # Compile the numba kernels on a small problem first.
    small = problems(image[:24, :32], gt[:24, :32], args.scale, args.seed)
    for p in small:
        p["edges32"] = p["edges"].astype(np.int32)
        ours_expansion(p, 2), ours_swap(p, 1), ours_icm(p, 2)
        if p["cost"].shape[1] == 2:
            ours_mincut(p)
        if trws is not None:
            ours_trws(p, 2)

    rows = []
    head = (f"{'problem':<22} {'method':<18} {'seconds':>8} {'energy':>12} {'vs ref':>9} "
            f"{'bound':>12} {'gap':>9}")
    print(head)
    for p in problems(image, gt, args.scale, args.seed):
        p["edges32"] = p["edges"].astype(np.int32)
        binary = p["cost"].shape[1] == 2
        methods = []
        if binary:
            methods += [("PyMaxflow min cut", partial(pymaxflow, p)),
                        ("ours min cut", partial(ours_mincut, p))]
        methods += [("gco expansion", partial(gco_cut, p, "expansion")),
                    ("gco swap", partial(gco_cut, p, "swap")),
                    ("ours expansion", partial(ours_expansion, p, args.max_cycles)),
                    ("ours swap", partial(ours_swap, p, args.max_cycles)),
                    ("ours icm", partial(ours_icm, p, args.icm_sweeps))]
        if trws is not None:
            methods.append(("ours trws", partial(ours_trws, p, args.trws_iter)))
        ref = None
        for method, func in methods:
            seconds = median_time(func, args.repeats)
            out = func()
            bound = None
            if method == "ours trws":
                labels, _, bounds = out
                bound = float(np.max(bounds)) / p["scale"]
                n_iter = len(bounds)
            else:
                labels = out
            labels = np.asarray(labels, np.int64).ravel()
            energy = labelling_energy(p["cost"], labels, p["edges"], p["w"],
                                      p["mu"]) / p["scale"]
            if ref is None:
                ref = energy
            row = dict(problem=p["problem"], method=method, seconds=seconds, energy=energy,
                       rel_to_ref=(energy - ref) / abs(ref), bound=bound,
                       rel_gap=None if bound is None else (energy - bound) / abs(bound))
            if bound is not None:
                row["trws_iters"] = n_iter
            rows.append(row)
            b = "" if bound is None else f"{bound:12.2f} {row['rel_gap']:9.2e}"
            print(f"{p['problem']:<22} {method:<18} {seconds:8.3f} {energy:12.2f} "
                  f"{row['rel_to_ref']:+9.2e} {b}", flush=True)
    setup = (f"{platform.machine()}, {os.cpu_count()} cores, numba {numba.__version__} "
             f"with {numba.get_num_threads()} threads, median of {args.repeats}; CamVid val "
             f"{name}; contrast problems in units of 1/{args.scale}")
    print(setup)
    args.out.mkdir(parents=True, exist_ok=True)
    keys = ["problem", "method", "seconds", "energy", "rel_to_ref", "bound", "rel_gap",
            "trws_iters"]
    with open(args.out / "grid_crf.csv", "w") as fh:
        fh.write(",".join(keys) + "\n")
        for r in rows:
            vals = [r.get(c) for c in keys]
            fh.write(",".join("" if v is None else f"{v:.10g}" if isinstance(v, float)
                              else str(v) for v in vals) + "\n")
    with open(args.out / "grid_crf.json", "w") as fh:
        json.dump({"setup": setup, "trws": TRWS_NOTE or "included",
                   "args": {k: str(v) for k, v in vars(args).items()}, "rows": rows},
                  fh, indent=2)
    print(f"wrote {args.out / 'grid_crf.csv'} and .json")


if __name__ == "__main__":
    main()
