"""CRF-as-RNN speed: the CRFRNN layer forward and forward+backward against DenseCRF's numba
forward, pydensecrf, and the reference PyTorch port (sadeepj/crfasrnn_pytorch) where its
extension is built; on a GPU also the dense CRF at 720x960, K = 21 against pydensecrf.

    python benchmarks/bench_crfrnn.py [--device auto] [--repeat 3] [--threads 2]
    CRFASRNN_SRC=/path/to/crfasrnn_pytorch python benchmarks/bench_crfrnn.py

Inputs: CamVid val images (or the embedded sample where the data set is absent) at
360x480 with random logits, K = 11, 5 iterations, the kernels of DenseCRF's defaults
(gaussian sxy 3 weight 3; bilateral sxy 80, srgb 13, weight 10), batch 1 and 4, and a
layer whose compatibility is not Potts (as after training) at batch 1. On CUDA:
the layer on the GPU, and ``DenseCRF(backend="torch")`` at 720x960 (the image upsampled),
K = 21, 10 iterations, against pydensecrf on the CPU. Medians of ``--repeat`` runs after
one warm-up. Prints a table; writes benchmarks/results/bench_crfrnn.csv and .json.

The reference port: fetch github.com/sadeepj/crfasrnn_pytorch outside this project, build
its extension there (``python setup.py build_ext --inplace`` in its ``crfasrnn/``), and
point ``CRFASRNN_SRC`` at the checkout. It is never vendored or installed here.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _heldout import write_results

from hybridseg.crf import DenseCRF
from hybridseg.deep import CRFRNN

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("HYBRIDSEG_DATA", HERE.parent.parent / "shared" / "data"))
KERNELS = dict(gaussian_sxy=3.0, gaussian_weight=3.0, bilateral_sxy=80.0,
               bilateral_srgb=13.0, bilateral_weight=10.0)


def _images(n):
    from hybridseg.datasets import load_camvid, load_sample

    try:
        data = load_camvid(SHARED / "camvid", "val", limit=n)
    except (FileNotFoundError, OSError):
        data = load_sample()
    return [np.ascontiguousarray(im) for im in data.images[:n]]


def _median(func, repeat, sync=None):
    func()
    if sync:
        sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _reference_port():
    src = os.environ.get("CRFASRNN_SRC", "")
    if not src or not os.path.isdir(src):
        return None
    sys.path[:0] = [src + "/crfasrnn", src]
    from crfasrnn.crfrnn import CrfRnn
    from crfasrnn.params import DenseCRFParams

    return CrfRnn(11, num_iterations=5, crf_init_params=DenseCRFParams(
        alpha=80.0, beta=13.0, gamma=3.0, spatial_ker_weight=3.0, bilateral_ker_weight=10.0))


def _phases(image, logits, device, row, repeat):
    """Where the GPU dense CRF's time goes: the lattices, the iterations, the copies; and
    the same with the ``index_add_`` splat instead of sparse products."""
    from hybridseg.crf._kernels import DENSE_CRF_DEFAULTS, builtin_kernels, kernel_features
    from hybridseg.crf._meanfield_torch import forward_torch
    from hybridseg.crf._torch_lattice import NormalizedKernel

    sync = torch.cuda.synchronize
    h, w, k = logits.shape
    im = torch.from_numpy(np.ascontiguousarray(image)).to(device)

    def build(splat):
        return tuple(NormalizedKernel(kernel_features(spec, im, (h, w), device=device),
                                      torch.float32, "torch", splat)
                     for spec in builtin_kernels(**DENSE_CRF_DEFAULTS))

    a = torch.from_numpy(logits.reshape(-1, k))

    def copies():  # as DenseCRF's torch backend does them: through page-locked buffers
        t = a.pin_memory().to(device, non_blocking=True)
        staging = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
        staging.copy_(t, non_blocking=True)
        sync()
        staging.numpy().copy()

    row("  copy logits to the GPU and back", 1, _median(copies, repeat, sync), device)
    for splat in ("sparse", "index_add"):
        row(f"  build both lattices ({splat})", 1,
            _median(lambda splat=splat: build(splat), repeat, sync), device)
        kg, kb = build(splat)
        a_dev = a.to(device)

        def iterations(kg=kg, kb=kb, a_dev=a_dev):
            with torch.no_grad():  # the engine's torch execution, as DenseCRF runs it
                forward_torch(a_dev, [kg, kb], [3.0, 10.0], None, 10, "proba")

        row(f"  10 iterations ({splat})", 1, _median(iterations, repeat, sync), device)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    rng = np.random.default_rng(0)
    images = _images(4)
    k = 11
    logits = [rng.normal(0, 1, (*im.shape[:2], k)).astype(np.float32) for im in images]
    rows = []

    def row(what, batch, seconds, on="cpu"):
        rows.append(dict(what=what, device=str(on), batch=batch,
                         seconds_per_image=seconds / batch))
        print(f"{what:<44} batch {batch}  {1000 * seconds / batch:8.1f} ms per image",
              flush=True)

    crf = DenseCRF(n_iter=5, **KERNELS)
    row("DenseCRF numba forward", 1,
        _median(lambda: crf.refine(images[0], logits[0], kind="logits"), args.repeat))
    try:
        import pydensecrf  # noqa: F401

        ref = DenseCRF(n_iter=5, backend="pydensecrf", **KERNELS)
        row("pydensecrf forward", 1,
            _median(lambda: ref.refine(images[0], logits[0], kind="logits"), args.repeat))
    except ImportError:
        print("pydensecrf not installed: its row is left out")
    layer = CRFRNN(k, n_iter=5, **KERNELS).to(device)
    for batch in (1, 4):
        L = torch.from_numpy(np.stack(logits[:batch])).permute(0, 3, 1, 2).contiguous()
        L = L.to(device).requires_grad_(True)
        im = torch.from_numpy(np.stack(images[:batch]).astype(np.float32))
        im = im.permute(0, 3, 1, 2).contiguous().to(device)

        def forward(L=L, im=im):
            with torch.no_grad():
                layer(L, im)

        def forward_backward(L=L, im=im):
            layer.zero_grad()
            L.grad = None
            layer(L, im).sum().backward()

        row("CRFRNN layer forward", batch, _median(forward, args.repeat, sync), device)
        row("CRFRNN layer forward+backward", batch,
            _median(forward_backward, args.repeat, sync), device)
    # A compatibility away from Potts, as after training: the general update, whose
    # backward also mixes the gradient through mu (at -I the Potts update runs).
    trained = CRFRNN(k, n_iter=5, **KERNELS).to(device)
    with torch.no_grad():
        trained.compat.add_(torch.from_numpy(
            0.05 * rng.normal(size=(k, k)).astype(np.float32)).to(device))
    L = torch.from_numpy(logits[0]).permute(2, 0, 1)[None].contiguous().to(device)
    L.requires_grad_(True)
    im = torch.from_numpy(images[0].astype(np.float32)).permute(2, 0, 1)[None]
    im = im.contiguous().to(device)

    def trained_fb():
        trained.zero_grad()
        L.grad = None
        trained(L, im).sum().backward()

    row("CRFRNN forward+backward, compat not Potts", 1,
        _median(trained_fb, args.repeat, sync), device)
    port = _reference_port()
    if port is not None:
        L = torch.from_numpy(logits[0]).permute(2, 0, 1)[None].contiguous()
        L.requires_grad_(True)
        im = torch.from_numpy(images[0].astype(np.float32)).permute(2, 0, 1)[None]

        def port_fb():
            port.zero_grad()
            L.grad = None
            port(im.contiguous(), L).sum().backward()

        row("crfasrnn_pytorch layer forward+backward (cpu)", 1, _median(port_fb, args.repeat))
    else:
        print("CRFASRNN_SRC not set: the reference port's row is left out")
    if device.type == "cuda":
        big = torch.nn.functional.interpolate(
            torch.from_numpy(images[0]).permute(2, 0, 1)[None].float(), size=(720, 960),
            mode="bilinear").round().clamp(0, 255).byte()[0].permute(1, 2, 0).numpy()
        big_logits = rng.normal(0, 1, (720, 960, 21)).astype(np.float32)
        gpu = DenseCRF(n_iter=10, backend="torch", device=device, **KERNELS)
        row("DenseCRF torch 720x960 K=21 10 it", 1,
            _median(lambda: gpu.refine(big, big_logits, kind="logits"), args.repeat), device)
        _phases(big, big_logits, device, row, args.repeat)
        layer = CRFRNN(21, n_iter=10, trainable=False, **KERNELS).to(device)
        L = torch.from_numpy(big_logits).permute(2, 0, 1)[None].contiguous().to(device)
        im = torch.from_numpy(big).permute(2, 0, 1)[None].float().to(device)

        def resident():
            with torch.no_grad():
                torch.softmax(layer(L, im), 1)

        row("CRFRNN no grad 720x960 K=21 10 it, tensors on GPU", 1,
            _median(resident, args.repeat, sync), device)
        try:
            ref = DenseCRF(n_iter=10, backend="pydensecrf", **KERNELS)
            row("pydensecrf 720x960 K=21 10 it", 1,
                _median(lambda: ref.refine(big, big_logits, kind="logits"), args.repeat))
        except ImportError:
            pass
    write_results(args.out, "bench_crfrnn", args, rows,
                  ["what", "device", "batch", "seconds_per_image"])


if __name__ == "__main__":
    main()
