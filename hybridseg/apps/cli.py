"""The ``hybridseg`` command line.

Each sub-command is one function registered with ``command``; its ``configure`` hook
adds its arguments and its body imports what it needs only when it runs, so
``hybridseg --help`` stays instant and a command that needs torch does not make the others
need it. ``info``, ``compare``, ``demo`` and ``segment`` are here.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys

__all__ = ["command", "main"]

_COMMANDS = {}


def command(name, *, help, configure=None):
    """Register ``func(args) -> int`` as ``hybridseg <name>``.

    Parameters
    ----------
    name : str
        The sub-command.
    help : str
        One line for ``hybridseg --help``; the function's docstring is the long help.
    configure : callable, optional
        ``configure(parser)`` adds the sub-command's arguments.
    """

    def register(func):
        if name in _COMMANDS:
            raise ValueError(f"command {name!r} is registered twice")
        _COMMANDS[name] = (func, help, configure)
        return func

    return register


def _configure_info(parser):
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument(
        "--no-probe", action="store_true",
        help="do not compile a tiny parallel function to find numba's threading layer",
    )


@command(
    "info", help="versions, numba threading, torch/CUDA, data cache", configure=_configure_info
)
def _info(args):
    """Show what this installation runs on: hybridseg and dependency versions, numba's
    threading layer and thread count, torch and CUDA availability, and where data is
    cached (set HYBRIDSEG_DATA_HOME to move it)."""
    from .._show_versions import collect_info, format_info

    info = collect_info(probe_numba=not args.no_probe)
    print(json.dumps(info, indent=2, default=str) if args.json else format_info(info))
    return 0


def _configure_compare(parser):
    from pathlib import Path

    parser.add_argument("--dataset", required=True, metavar="NAME|PATH",
                        help="camvid, isbi, voc, cityscapes, ade20k, pascal_context, "
                             "coco_stuff, sample (sample:membrane), or a folder with train/ "
                             "trainannot/ test/ testannot/ [val/ valannot/]; the five "
                             "benchmarks are tested on their official val")
    parser.add_argument("--data-root", type=Path, default=None, metavar="DIR",
                        help="where CamVid (default: the fetch_camvid copy), the ISBI "
                             "stack (image/, label/) or a benchmark's official tree lies")
    parser.add_argument("--methods", required=True, metavar="LIST",
                        help="comma-separated: splitmerge, pixel, pixel+grid, pixel+dense, "
                             "unet, fcn, segnet, deconvnet, parsenet, dilatednet, "
                             "deeplabv1, "
                             "deeplabv2, deeplabv3, "
                             "deeplabv3plus, pspnet, fcdensenet56, fcdensenet67, "
                             "fcdensenet103, refinenet, encnet, gcn, fpn, msd, enet "
                             "(each also +grid, "
                             "+dense), ARCH@BACKBONE (an ImageNet-pretrained backbone: "
                             "deeplabv3plus@resnet50), crfrnn, crfrnn:ARCH, and "
                             "model:PATH (a fitted model saved by hybridseg.save, used as "
                             "it is; also +grid, +dense)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="output folder (default: hybridseg-compare-<dataset>); rerun "
                             "with the same settings to resume")
    parser.add_argument("--limit-train", type=int, default=None, metavar="N",
                        help="use the first N training images (val: N/3)")
    parser.add_argument("--limit-test", type=int, default=None, metavar="N",
                        help="use the first N test images")
    parser.add_argument("--budget", type=float, default=None, metavar="MINUTES",
                        help="training minutes each network may take")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="run the methods on a Dask cluster, one task each: "
                             "tcp://HOST:PORT of a running scheduler (its workers must read "
                             "the data set and write --out at the same paths), or local:N "
                             "to start N worker processes here; needs pip install "
                             "'hybridseg[dask]'")
    parser.add_argument("--pairs", default=None, metavar="A:B,...",
                        help="more paired tests, between any two of the methods (B against "
                             "A on the same test images); each refinement is tested "
                             "against its base anyway")
    parser.add_argument("--n-jobs", type=int, default=None, metavar="N",
                        help="parallel jobs of the stages that take them")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    _device_and_path_options(parser)


def _device_and_path_options(parser):
    parser.add_argument("--device", default=None, metavar="DEVICE",
                        help="where the networks run: cpu, cuda, cuda:1 or auto (default: "
                             "the networks' own setting, auto: a GPU where there is one)")
    parser.add_argument("--python-path", action="append", default=[], metavar="DIR",
                        help="a folder to import your own modules from (a network class "
                             "or output function a model file refers to), here and in "
                             "the worker processes; repeatable")


@command("compare", help="fit and score methods side by side on a data set: report",
         configure=_configure_compare)
def _compare(args):
    """Fit each method on the training split (a CRF stage tuned on val), score it on the
    test split (mIoU, IoU per class, pixel accuracy, boundary F1) and measure it (fit
    seconds, predict seconds per image, peak memory), each in a process of its own. Writes
    results.csv, results.json, report.md, report.html (self-contained) and figure.png to
    --out, with the fitted models (models/, read them with hybridseg.load). Rerunning the
    same command skips the methods already done, so an interrupted run resumes.

    Examples:
      hybridseg compare --dataset sample --methods splitmerge,pixel,pixel+dense
      hybridseg compare --dataset camvid --data-root data/camvid --budget 20 \\
          --methods splitmerge,pixel,pixel+grid,pixel+dense,unet,unet+dense,crfrnn
      hybridseg compare --dataset mydata/ --methods unet,model:mine.hseg,model:mine.hseg+dense \\
          --python-path src/"""
    from ._common import add_python_path
    from ._compare import compare

    add_python_path(args.python_path)
    result = compare(args.methods, args.dataset, data_root=args.data_root, out=args.out,
                     limit_train=args.limit_train, limit_test=args.limit_test,
                     budget=args.budget, seed=args.seed, n_jobs=args.n_jobs,
                     device=args.device, scheduler=args.scheduler, pairs=args.pairs,
                     verbose=not args.quiet)
    print(result.to_markdown())
    for method, message in result.failed.items():
        print(f"{method} failed: {message}", file=sys.stderr)
    print(f"report: {result.out / 'report.html'}")
    return 1 if result.failed else 0


def _configure_demo(parser):
    from pathlib import Path

    parser.add_argument("--sample", choices=["camvid", "membrane"], default="camvid",
                        help="which embedded sample (default: camvid, 11 classes)")
    parser.add_argument("--out", type=Path, default=None, metavar="PNG",
                        help="where to write the figure (default: hybridseg-demo.png in "
                             "the current folder, or hybridseg-demo-1.png and so on when "
                             "that exists)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the file given with --out if it exists")
    parser.add_argument("--methods", default=None, metavar="LIST",
                        help="comma-separated rows, from prior, splitmerge, pixel, "
                             "pixel+grid, pixel+dense, unet, unet+dense, unet+crfrnn "
                             "(default: all that apply to the sample)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--n-jobs", type=int, default=-1, metavar="N",
                        help="parallel jobs of every stage (default: -1, every core)")
    parser.add_argument("--overlay", action="store_true",
                        help="draw the labels blended on the images instead of in flat "
                             "colours")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


@command("demo", help="fit the pipelines on the embedded sample: table and figure",
         configure=_configure_demo)
def _demo(args):
    """Fit the classical pipelines (split-and-merge rules; pixel classifier; pixel classifier
    with a grid CRF; with a dense CRF) and a no-pixel floor on the training images of the
    embedded sample, score them and the shipped CamVid networks (U-Net alone, with a dense
    CRF, with its CRF-as-RNN layer) on its test images (mean IoU, pixel accuracy, boundary
    F1, seconds) and write a figure of the image, the truth and each method's labels. Takes
    about a minute on two cores. Nothing is written over an existing file unless
    --overwrite is given with --out."""
    import os
    from pathlib import Path

    from ._demo import format_table, free_path, run_demo

    if args.out is None:
        out = free_path(Path("hybridseg-demo.png"))
    else:
        out = args.out
        if out.suffix.lower() != ".png":
            raise ValueError(f"--out must name a .png file, got {str(out)!r}")
        if os.path.lexists(out) and not args.overwrite:
            raise FileExistsError(f"{out} exists; pass --overwrite to replace it or "
                                  "choose another --out")
        if not out.parent.is_dir():
            raise FileNotFoundError(f"the folder of --out does not exist: {out.parent}")
    methods = None if args.methods is None else [
        m.strip() for m in args.methods.split(",") if m.strip()]
    results = run_demo(args.sample, methods=methods, out=out, random_state=args.seed,
                       n_jobs=args.n_jobs, verbose=not args.quiet,
                       style="overlay" if args.overlay else "flat")
    print(format_table(results, title=f"embedded {args.sample} sample, test images"))
    print(f"figure: {out}")
    return 0


def _configure_segment(parser):
    parser.add_argument("input", metavar="INPUT",
                        help="a folder of images (searched recursively), a glob pattern "
                             "in quotes ('photos/**/*.jpg') or one image file; png, "
                             "jpg/jpeg, tif/tiff, bmp, ppm and pgm are read")
    parser.add_argument("output", metavar="OUTPUT",
                        help="the output folder (created when missing): OUTPUT/<relative "
                             "path>.png for each image")
    parser.add_argument("--model", required=True, metavar="PATH",
                        help="a fitted segmenter or Pipeline written by hybridseg.save "
                             "(it is unpickled: use files you trust only)")
    parser.add_argument("--refine", choices=["none", "dense", "grid"], default="none",
                        help="add a DenseCRF or GridCRF with default parameters on top of "
                             "the model's probabilities (default: none)")
    parser.add_argument("--overwrite", action="store_true",
                        help="recompute and replace outputs that exist, and an existing "
                             "--report file (default: keep them and skip their images)")
    parser.add_argument("--save-proba", action="store_true",
                        help="also write OUTPUT/<relative path>.npy, the (H, W, K) class "
                             "probabilities as float16")
    parser.add_argument("--n-jobs", type=int, default=None, metavar="N",
                        help="worker processes on this machine, each loading the model "
                             "once (-1: one per core; default: 1, in this process, or "
                             "every worker of --scheduler)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="run on a Dask cluster: tcp://HOST:PORT of a running "
                             "scheduler (its workers must see INPUT, OUTPUT and the model "
                             "at the same paths), or local:N to start N worker processes "
                             "here; needs pip install 'hybridseg[dask]'")
    parser.add_argument("--tile-above", type=_pixels, default=4096 * 4096, metavar="PIXELS",
                        help="segment images of more pixels than this tile by tile, reading "
                             "TIFF and zarr inputs by windows, and write a tiled TIFF "
                             "(zarr for a zarr input) that a killed run resumes by tile; "
                             "'none': never (default: 16777216, 4096^2)")
    parser.add_argument("--tile-size", type=int, default=1024, metavar="N",
                        help="side of those tiles' cores; each is predicted and refined "
                             "with a margin (240 pixels with --refine dense, else 128) and "
                             "peak memory follows N + 2 * margin (default: 1024)")
    parser.add_argument("--report", default=None, metavar="JSON",
                        help="also write the run's report (counts, failures with their "
                             "messages, seconds, images/s) to this JSON file")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar (failures and the summary are still "
                             "printed)")
    _device_and_path_options(parser)


def _pixels(text):
    if text.lower() == "none":
        return None
    try:
        value = float(text)  # 1e8 and 100000000 alike
    except ValueError:
        value = float("nan")
    if not value >= 0 or value != int(value):
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels >= 0 or "
                                         f"'none', got {text!r}")
    return int(value)


@command("segment", help="label every image of a folder with a saved model",
         configure=_configure_segment)
def _segment(args):
    """Segment every image under INPUT with the model saved in --model (hybridseg.save)
    and write OUTPUT/<relative path>.png, a label map (uint8; uint16 with more than 255
    classes); --save-proba adds float16 class probabilities as .npy.

    Outputs are written to hidden temporary files and renamed, so no partial .png or .npy
    is ever visible. Outputs that exist are kept (same bytes, same time) and their images
    skipped unless --overwrite: run the same command again after an interruption and it
    finishes the rest. An image that cannot be read or segmented is reported by name and
    skipped; the others are still written, and the exit status is 1 when any failed.

    Examples:
      hybridseg segment photos/ labels/ --model unet.hseg --refine dense --n-jobs 2
      hybridseg segment 'scans/**/*.tif' out/ --model pixel.hseg --save-proba
      hybridseg segment photos/ labels/ --model unet.hseg --scheduler tcp://head:8786
      hybridseg segment photos/ labels/ --model mine.hseg --device cuda --python-path src/
      hybridseg segment slides/ labels/ --model unet.hseg --refine dense --scheduler local:4

    Images above --tile-above pixels (TIFF, BigTIFF, OME-TIFF, zarr; others are read
    whole) are segmented tile by tile: each tile is read with a margin, predicted and
    refined, and kept in OUTPUT/.<name>.parts/ until the last tile is done; then the label
    map is written as a tiled TIFF (a zarr store for a zarr input, a PNG for other
    images) and the parts are removed. A killed run, run again, resumes by tile; the
    tiles of one image are spread over --n-jobs or the --scheduler's workers.

    A model whose network class (or output function) lives in your own module needs that
    module importable: install it, run from its folder, or pass --python-path DIR."""
    import os

    from ._segment import segment

    if args.report is not None:
        if os.path.isdir(args.report):
            raise ValueError(f"--report must name a file, got the folder {args.report}")
        if not os.path.isdir(os.path.dirname(os.path.abspath(args.report))):
            raise FileNotFoundError(f"the folder of --report does not exist: {args.report}")
        if os.path.lexists(args.report) and not args.overwrite:
            raise FileExistsError(f"--report {args.report} exists; pass --overwrite to "
                                  "replace it, or name another file")
    try:
        report = segment(args.input, args.output, args.model, refine=args.refine,
                         overwrite=args.overwrite, save_proba=args.save_proba,
                         n_jobs=args.n_jobs, scheduler=args.scheduler,
                         device=args.device, python_path=args.python_path,
                         verbose=not args.quiet, tile_size=args.tile_size,
                         tile_above=args.tile_above)
    except (ImportError, RuntimeError) as exc:
        print(f"hybridseg segment: error: {exc}", file=sys.stderr)
        return 1
    if args.quiet:
        for rel, message in report.failed:
            print(f"{rel}: {message}", file=sys.stderr)
        print(f"segment: {report.summary()}", file=sys.stderr)
    if args.report is not None:
        from ..utils._io import write_text_atomic

        write_text_atomic(args.report, json.dumps(report.to_dict(), indent=2) + "\n")
    return 0 if report.ok else 1


def build_parser():
    """The ``argparse`` parser with every registered sub-command."""
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="hybridseg",
        description="Semantic segmentation with classical and deep methods on one footing.",
    )
    parser.add_argument("--version", action="version", version=f"hybridseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (func, help_, configure) in _COMMANDS.items():
        p = sub.add_parser(
            name, help=help_, description=inspect.cleandoc(func.__doc__ or ""),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if configure is not None:
            configure(p)
        p.set_defaults(_func=func)
    return parser


def main(argv=None):
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, OSError) as exc:
        print(f"hybridseg {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"hybridseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
