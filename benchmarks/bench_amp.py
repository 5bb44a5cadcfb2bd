"""Mixed precision on the CPU: a training step and a prediction of every zoo network in
float32 against bfloat16 autocast on channels-last batches (what ``amp="auto"`` trains
with on a CPU with Intel AMX, and ``amp=True`` predicts with), and how far the shipped
U-Net's probabilities and labels move under bfloat16 on CamVid val images.

    python benchmarks/bench_amp.py [--names pspnet,unet] [--repeat 3] [--threads 2]

Training step: batch 8 of 224x288 crops, AdamW, cross-entropy over K = 11, the network at
its default preset. Prediction: a batch of 4 images at 360x480 (CamVid's test size,
padded to the network's stride), no gradients. Medians of ``--repeat`` runs after two
warm-ups (oneDNN builds its kernels for a new shape at the first calls). Prints a table;
writes
benchmarks/results/bench_amp.csv and .json. On a CPU without AMX, bfloat16 is emulated:
the table then shows what ``amp="auto"`` avoids by leaving it off.
"""

import argparse
import os
from pathlib import Path

import numpy as np
import torch
from _heldout import write_results
from _timing import median_time

from hybridseg.deep.models import MODELS, build_model

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("HYBRIDSEG_DATA", HERE.parent.parent / "shared" / "data"))
K = 11


def _median(func, repeat):
    """``median_time`` after one more warm-up: two in all."""
    func()
    return median_time(func, repeat)


def _logits(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def _step_time(name, bf16, repeat, crop=(224, 288)):
    torch.manual_seed(0)
    net = build_model(name, 3, K).train()
    layout = torch.channels_last if bf16 else torch.contiguous_format
    net.to(memory_format=layout)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x = torch.randn(8, 3, *crop).contiguous(memory_format=layout)
    y = torch.randint(0, K, (8, *crop))

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            z = _logits(net(x))
            z = torch.nn.functional.interpolate(z.float(), size=crop, mode="bilinear")
            loss = torch.nn.functional.cross_entropy(z, y)
        loss.backward()
        opt.step()

    return _median(step, repeat)


def _predict_time(name, bf16, repeat):
    torch.manual_seed(0)
    net = build_model(name, 3, K).eval()
    s = net.stride  # padded to the stride, as predict_logits pads
    x = torch.randn(4, 3, -(-360 // s) * s, -(-480 // s) * s)
    if bf16:
        x = x.contiguous(memory_format=torch.channels_last)

    def predict():
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            _logits(net(x))

    return _median(predict, repeat)


def _shipped_unet_drift(n):
    """The shipped CamVid U-Net on ``n`` val images, amp off and on: the largest
    probability difference and the share of pixels whose label changes."""
    from hybridseg.datasets import load_camvid
    from hybridseg.deep import load_pretrained

    try:
        data = load_camvid(SHARED / "camvid", "val", limit=n)
    except (FileNotFoundError, OSError):
        return None
    seg = load_pretrained("camvid-unet", device="cpu")
    seg.set_params(amp=False)
    p32 = seg.predict_proba(data.images)
    seg.set_params(amp=True)
    p16 = seg.predict_proba(data.images)
    diff = max(float(np.abs(a - b).max()) for a, b in zip(p32, p16))
    changed = np.mean([np.mean(a.argmax(-1) != b.argmax(-1)) for a, b in zip(p32, p16)])
    return {"images": len(data.images), "max_abs_proba_diff": round(diff, 4),
            "labels_changed_pct": round(100 * float(changed), 3)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--names", default=",".join(MODELS), help="zoo names, comma-separated")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--drift-images", type=int, default=20,
                    help="CamVid val images for the shipped U-Net's drift (0: none)")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    amx = bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())
    print(f"torch {torch.__version__}, {args.threads} threads, AMX: {amx}")
    print(f"{'network':<15}{'step fp32':>10}{'step bf16':>10}{'x':>6}"
          f"{'pred fp32':>11}{'pred bf16':>10}{'x':>6}")
    rows = []
    for name in args.names.split(","):
        r = {"network": name,
             "step_fp32_s": _step_time(name, False, args.repeat),
             "step_bf16_s": _step_time(name, True, args.repeat),
             "predict_fp32_s": _predict_time(name, False, args.repeat),
             "predict_bf16_s": _predict_time(name, True, args.repeat)}
        r["step_speedup"] = r["step_fp32_s"] / r["step_bf16_s"]
        r["predict_speedup"] = r["predict_fp32_s"] / r["predict_bf16_s"]
        r = {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
        rows.append(r)
        print(f"{name:<15}{r['step_fp32_s']:>10.3f}{r['step_bf16_s']:>10.3f}"
              f"{r['step_speedup']:>6.2f}{r['predict_fp32_s']:>11.3f}"
              f"{r['predict_bf16_s']:>10.3f}{r['predict_speedup']:>6.2f}", flush=True)
    drift = _shipped_unet_drift(args.drift_images) if args.drift_images else None
    if drift:
        print(f"shipped U-Net on {drift['images']} CamVid val images, amp=True against "
              f"False: max |p diff| {drift['max_abs_proba_diff']}, labels changed "
              f"{drift['labels_changed_pct']}%")
    write_results(Path(args.out), "bench_amp", args, rows,
                  ["network", "step_fp32_s", "step_bf16_s", "step_speedup",
                   "predict_fp32_s", "predict_bf16_s", "predict_speedup"],
                  amx=amx, torch=torch.__version__, shipped_unet_drift=drift)


if __name__ == "__main__":
    main()
