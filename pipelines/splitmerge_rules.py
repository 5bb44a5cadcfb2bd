"""Split-and-merge regions, classes by rules learned from region statistics.

    python pipelines/splitmerge_rules.py [--dataset sample|sample:membrane|camvid|isbi]
                                         [--threshold T] [--max-depth D]

The classical gray-level pipeline: a quadtree split into blocks of gray-level range at most
T, adjacent regions merged while their union stays within T, then a decision tree of depth D
on region statistics (mean, spread, size, position) that says which class each region is.
Prints the learned rules and the test scores.
"""

from _common import fit_and_report, parser
from sklearn.pipeline import Pipeline

from hybridseg.classical import SplitMerge


def main(argv=None):
    ap = parser(__doc__)
    ap.add_argument("--threshold", type=float, default=None,
                    help="split and merge threshold in gray levels (default: a tenth of "
                         "the range)")
    ap.add_argument("--max-depth", type=int, default=3)
    args = ap.parse_args(argv)
    pipe = Pipeline([("splitmerge", SplitMerge(args.threshold, max_depth=args.max_depth,
                                               random_state=args.seed))])
    fit_and_report(pipe, args, "split-and-merge rules")
    print("rules:\n" + pipe.named_steps["splitmerge"].rules_)


if __name__ == "__main__":
    main()
