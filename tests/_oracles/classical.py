"""Oracles of ``hybridseg.classical``: the quadtree split and split-and-merge in plain
Python, and the pixel features' derivatives by slicing."""

import numpy as np


def qtdecomp_oracle(img, threshold, min_size=1, max_size=None):
    """Recursive quadtree split, clipping blocks to the image (exact qtdecomp on 2^n
    squares): the oracle of ``hybridseg.classical.quadtree_split``."""
    img = np.asarray(img, np.float64)
    h, w = img.shape
    side = 1
    while side < max(h, w):
        side *= 2
    out = np.full((h, w), -1, np.int64)
    nxt = [0]

    def rec(r, c, s):
        if r >= h or c >= w:
            return
        b = img[r:r + s, c:c + s]
        big = max_size is not None and s > max_size
        if big or (s > min_size and b.max() - b.min() > threshold):
            half = s // 2
            for dr in (0, half):
                for dc in (0, half):
                    rec(r + dr, c + dc, half)
        else:
            out[r:r + s, c:c + s] = nxt[0]
            nxt[0] += 1

    rec(0, 0, side)
    return out


def same_partition(a, b):
    """Whether two label maps split the pixels into the same regions (ids aside)."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1).shape[1]
    return pairs == len(np.unique(a)) == len(np.unique(b))


def merge_oracle(img, threshold, merge_threshold, predicate="range", min_region_size=1):
    """Split-and-merge in plain Python over the blocks of quadtree_split: the oracle of
    ``hybridseg.classical.SplitMerge.segment``."""
    from hybridseg.classical import quadtree_split

    img = np.asarray(img, np.float64)
    blocks = quadtree_split(img, threshold=threshold)
    n = blocks.max() + 1
    vals = [img[blocks == b] for b in range(n)]
    cnt = [len(v) for v in vals]
    s = [v.sum() for v in vals]
    q = [(v * v).sum() for v in vals]
    lo = [v.min() for v in vals]
    hi = [v.max() for v in vals]
    pairs = set()
    for a, b in ((blocks[:, :-1], blocks[:, 1:]), (blocks[:-1, :], blocks[1:, :])):
        d = a != b
        pairs |= {(min(x, y), max(x, y)) for x, y in zip(a[d], b[d])}
    means = [s[b] / cnt[b] for b in range(n)]
    pairs = sorted(pairs, key=lambda p: abs(means[p[0]] - means[p[1]]))
    parent = list(range(n))

    def find(a):
        while parent[a] != a:
            a = parent[a]
        return a

    def union(a, b):
        if cnt[a] < cnt[b]:
            a, b = b, a
        parent[b] = a
        cnt[a] += cnt[b]
        s[a] += s[b]
        q[a] += q[b]
        lo[a] = min(lo[a], lo[b])
        hi[a] = max(hi[a], hi[b])

    changed = True
    while changed:
        changed = False
        for x, y in pairs:
            a, b = find(x), find(y)
            if a == b:
                continue
            m = cnt[a] + cnt[b]
            if predicate == "range":
                ok = max(hi[a], hi[b]) - min(lo[a], lo[b]) <= merge_threshold
            else:
                mean = (s[a] + s[b]) / m
                ok = (q[a] + q[b]) / m - mean**2 <= merge_threshold**2
            if ok:
                union(a, b)
                changed = predicate == "std"
    changed = min_region_size > 1
    while changed:
        changed = False
        for x, y in pairs:
            a, b = find(x), find(y)
            if a != b and min(cnt[a], cnt[b]) < min_region_size:
                union(a, b)
                changed = True
    roots = np.array([find(b) for b in range(n)])[blocks]
    _, first, inverse = np.unique(roots.ravel(), return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[inverse].reshape(img.shape)


def interior_hessian_eigs(smooth):
    """Hessian eigenvalues of the interior pixels by plain slicing and eigvalsh: the oracle
    of ``pixel_features``' Hessian features."""
    s = smooth.astype(np.float64)
    hrr = s[2:, 1:-1] - 2 * s[1:-1, 1:-1] + s[:-2, 1:-1]
    hcc = s[1:-1, 2:] - 2 * s[1:-1, 1:-1] + s[1:-1, :-2]
    hrc = (s[2:, 2:] - s[2:, :-2] - s[:-2, 2:] + s[:-2, :-2]) / 4
    mats = np.stack([np.stack([hrr, hrc], -1), np.stack([hrc, hcc], -1)], -2)
    eig = np.linalg.eigvalsh(mats)  # ascending
    return eig[..., 1], eig[..., 0]


def interior_sobel_magnitude(smooth):
    """Gradient magnitude of the interior pixels from the 3x3 Sobel sums: the oracle of
    ``pixel_features``' edge features."""
    s = smooth.astype(np.float64)
    w = np.array([1.0, 2.0, 1.0])
    gr = sum(w[j] * (s[2:, j:s.shape[1] - 2 + j] - s[:-2, j:s.shape[1] - 2 + j])
             for j in range(3))
    gc = sum(w[i] * (s[i:s.shape[0] - 2 + i, 2:] - s[i:s.shape[0] - 2 + i, :-2])
             for i in range(3))
    return np.hypot(gr, gc) / 8
