"""Oracles of ``hybridseg.metrics``: pixel loops and brute-force distances."""

import math

import numpy as np


def naive_confusion(y_true, y_pred, k, ignore=255):
    """Confusion matrix (rows: truth) by a loop over pixels, void pixels skipped: the
    oracle of ``hybridseg.metrics.confusion_matrix``."""
    cm = np.zeros((k, k), np.int64)
    for t, p in zip(y_true, y_pred):
        for a, b in zip(np.ravel(t), np.ravel(p)):
            if a == ignore:
                continue
            cm[int(a), int(b)] += 1
    return cm


def naive_scores(cm):
    """IoU, accuracies and fwIoU written out class by class, with plain Python floats: the
    oracle of ``hybridseg.metrics``' IoU family (``mean_iou``, ``pixel_accuracy``, ...)."""
    k = cm.shape[0]
    total = cm.sum()
    ious, recalls, fw = [], [], 0.0
    for c in range(k):
        tp = cm[c, c]
        fn = cm[c, :].sum() - tp
        fp = cm[:, c].sum() - tp
        if tp + fp + fn > 0:
            ious.append(tp / (tp + fp + fn))
            if cm[c, :].sum() > 0:
                fw += cm[c, :].sum() / total * tp / (tp + fp + fn)
        if cm[c, :].sum() > 0:
            recalls.append(tp / cm[c, :].sum())
    return {
        "miou": sum(ious) / len(ious),
        "acc": np.trace(cm) / total,
        "macc": sum(recalls) / len(recalls),
        "fwiou": fw,
    }


def naive_boundary_f1_image(t, p, k, ignore, tol):
    """Boundary F1 of one image by brute force (boundary pixels by explicit neighbour
    tests, distances by all pairs): the oracle of ``hybridseg.metrics.boundary_f1``."""
    h, w = t.shape

    def bpix(lab, c):
        # Pixels of class c, not void, with a non-void 4-neighbour of another label.
        pts = []
        for i in range(h):
            for j in range(w):
                if lab[i, j] != c or t[i, j] == ignore:
                    continue
                for di, dj in ((0, 1), (1, 0), (0, -1), (-1, 0)):
                    a, b = i + di, j + dj
                    if 0 <= a < h and 0 <= b < w and lab[a, b] != c and t[a, b] != ignore:
                        pts.append((i, j))
                        break
        return pts

    def frac(src, dst):
        hits = 0
        for a in src:
            d = min(math.dist(a, b) for b in dst)
            hits += d <= tol
        return hits / len(src)

    valid = t != ignore
    present = set(np.unique(t[valid]).tolist()) | set(np.unique(p[valid]).tolist())
    scores = []
    for c in sorted(present):
        bt = bpix(t, c)
        bp = bpix(p, c)
        if not bt and not bp:
            scores.append(float((t[valid] == c).any() and (p[valid] == c).any()))
        elif not bt or not bp:
            scores.append(0.0)
        else:
            pr, rc = frac(bp, bt), frac(bt, bp)
            scores.append(0.0 if pr + rc == 0 else 2 * pr * rc / (pr + rc))
    return np.mean(scores)


def naive_boundary_miou(y_true, y_pred, k, ignore, width):
    """Boundary-band mIoU by pixel loops and all-pairs distances: the oracle of
    ``hybridseg.metrics.boundary_miou``. Boundary pixels of the truth have a 4-neighbour
    inside the image with another label (void is a label here); the band is the non-void
    pixels within ``width`` of one; the confusion is pooled over images."""
    cm = np.zeros((k, k), np.int64)
    for t, p in zip(y_true, y_pred):
        h, w = t.shape
        boundary = [(i, j) for i in range(h) for j in range(w)
                    if any(0 <= i + di < h and 0 <= j + dj < w and t[i + di, j + dj] != t[i, j]
                           for di, dj in ((0, 1), (1, 0), (0, -1), (-1, 0)))]
        if not boundary:
            continue
        for i in range(h):
            for j in range(w):
                if t[i, j] == ignore:
                    continue
                if min(math.dist((i, j), b) for b in boundary) <= width:
                    cm[int(t[i, j]), int(p[i, j])] += 1
    inter = np.diag(cm).astype(float)
    union = cm.sum(0) + cm.sum(1) - inter
    keep = union > 0
    return float(np.mean(inter[keep] / union[keep])) if keep.any() else float("nan")
