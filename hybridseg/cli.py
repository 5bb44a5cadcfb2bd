"""The ``hybridseg`` command line.

Each sub-command is one function registered with ``command``; its ``configure`` hook
adds its arguments and its body imports what it needs only when it runs, so
``hybridseg --help`` stays instant and a command that needs torch does not make the others
need it. ``info`` and ``demo`` are here; later front ends (``compare``, ``segment``) slot in
the same way.
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
    from ._show_versions import collect_info, format_info

    info = collect_info(probe_numba=not args.no_probe)
    print(json.dumps(info, indent=2, default=str) if args.json else format_info(info))
    return 0


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
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


@command("demo", help="fit the pipelines on the embedded sample: table and figure",
         configure=_configure_demo)
def _demo(args):
    """Fit the classical pipelines (split-and-merge rules; pixel classifier; pixel classifier
    with a grid CRF; with a dense CRF) and a no-pixel floor on the training images of the
    embedded sample, score them and the shipped CamVid networks (U-Net alone, with a dense
    CRF, with its CRF-as-RNN layer) on its test images (mean IoU, pixel accuracy, boundary
    F1, seconds) and write a figure of the image, the truth and each method's labels. Takes a
    couple of minutes on two cores. Nothing is written over an existing file unless
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
                       n_jobs=args.n_jobs, verbose=not args.quiet)
    print(format_table(results, title=f"embedded {args.sample} sample, test images"))
    print(f"figure: {out}")
    return 0


def build_parser():
    """The ``argparse`` parser with every registered sub-command."""
    from ._version import __version__

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
