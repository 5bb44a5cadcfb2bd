"""Rewrite model files of the earlier ``CNNSegmenter.save`` format in hybridseg's one
format (``hybridseg.save``), checking that the predictions do not change.

    python tools/convert_models.py OLD.pt NEW.hseg [OLD2.pt NEW2.hseg ...]

The shipped models in ``hybridseg/deep/data`` were converted with it; their SHA-256 in
``hybridseg/deep/_pretrained.py`` is that of the converted files. Nothing is overwritten.
"""

import argparse
import sys

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pairs", nargs="+", metavar="OLD NEW")
    args = parser.parse_args(argv)
    if len(args.pairs) % 2:
        parser.error("give pairs of files: OLD NEW")
    import hybridseg
    from hybridseg.datasets import load_sample

    images = load_sample().images[:2]
    for old, new in zip(args.pairs[::2], args.pairs[1::2]):
        seg = hybridseg.load(old)
        before = seg.predict_proba(images)
        hybridseg.save(seg, new)
        after = hybridseg.load(new)
        same = all(np.array_equal(a, b) for a, b in zip(before, after.predict_proba(images)))
        print(f"{old} -> {new}: {type(seg).__name__}, predictions "
              f"{'identical' if same else 'DIFFER'}")
        if not same:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
