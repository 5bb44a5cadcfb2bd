"""The label-statistics baselines on the embedded sample: the floor every pipeline must clear.

    python pipelines/baseline.py [--sample camvid|membrane]

Fits each ``DummySegmenter`` strategy on the sample's training images and prints mean IoU,
pixel accuracy, boundary F1 and seconds per image on its test images, then the per-class
report of the best one.
"""

import argparse
import time

from hybridseg import metrics
from hybridseg.datasets import load_splits
from hybridseg.dummy import DummySegmenter


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", choices=["camvid", "membrane"], default="camvid")
    args = ap.parse_args(argv)
    # Fitted on train and val together (the sample's training images), as the pipeline
    # scripts are (pipelines/_common.py): nothing here is tuned on val.
    train, val, test = load_splits(f"sample:{args.sample}")
    k = len(test.class_names)
    X_train, y_train = train.images + val.images, train.labels + val.labels
    X_test, y_test = test.images, test.labels
    print(f"sample-{args.sample}: {len(X_train)} training and {len(X_test)} test images, "
          f"{k} classes")
    print(f"{'method':<28} {'mIoU':>6} {'pixel acc':>9} {'BF':>6} {'s/image':>8}")
    best = None
    for strategy in ("uniform", "most_frequent", "prior", "spatial_prior"):
        seg = DummySegmenter(strategy, n_classes=k).fit(X_train, y_train)
        t0 = time.perf_counter()
        pred = seg.predict(X_test)
        sec = (time.perf_counter() - t0) / len(X_test)
        miou = metrics.mean_iou(y_test, pred, n_classes=k)
        acc = metrics.pixel_accuracy(y_test, pred, n_classes=k)
        bf = metrics.boundary_f1(y_test, pred, n_classes=k)
        print(f"{'dummy ' + strategy:<28} {100 * miou:>6.1f} {100 * acc:>9.1f} "
              f"{100 * bf:>6.1f} {sec:>8.4f}")
        if best is None or miou > best[0]:
            best = (miou, strategy, pred)
    print(f"\nper class, dummy {best[1]}:")
    print(metrics.segmentation_report(y_test, best[2], class_names=test.class_names))


if __name__ == "__main__":
    main()
