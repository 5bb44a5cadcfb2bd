"""The permutohedral lattice of ``_lattice.py`` executed with torch tensor operations.

The same construction as the numba lattice (Krähenbühl and Koltun's, inside pydensecrf):
the features are scaled and elevated onto the plane ``sum = 0`` in ``d + 1`` dimensions,
each point splats onto the ``d + 1`` vertices of its simplex with barycentric weights, the
blur is one ``(0.5, 1, 0.5)`` pass per lattice direction, and slicing scales by
``1 / (1 + 2^-d)``. Only the bookkeeping differs, so that it runs on any device: the hash
table becomes a sort (``torch.unique`` of the vertex keys, packed into one int64 each),
neighbour lookup a ``searchsorted``, splatting and slicing sparse CSR matrix products
(no atomic additions, which contend on a GPU where many points share a vertex), or an
``index_add_`` and a gather.

The lattice is built once per image and kernel and then filters any number of channels,
any number of times. ``lattice_filter`` is an ``autograd.Function`` whose backward applies
the filter's exact transpose (the slice and splat weights swapped and the blur passes in
reverse order) to the incoming gradient: no intermediate of the lattice is kept for
autograd, and the gradient costs one more filtering. Features (the image) get no gradient.

torch is imported when this module is; the rest of ``hybridseg.crf`` does not import it.
"""

from __future__ import annotations

import math
import warnings

import torch

from ._kernels import NORM_EPS

__all__ = ["NormalizedKernel", "TorchLattice", "lattice_filter"]


def _elevate(features):
    """Scaled features elevated onto the ``d + 1`` dimensional plane: ``(N, d + 1)``."""
    d = features.shape[1]
    dtype = features.dtype
    i = torch.arange(d, device=features.device, dtype=torch.float64)
    scale = (math.sqrt(2.0 / 3.0) * (d + 1) / torch.sqrt((i + 1) * (i + 2))).to(dtype)
    cf = features * scale
    # E[0] = sum_i cf_i; E[j] = sum_{i >= j} cf_i - j cf_{j-1} for j = 1..d (0-based cf).
    tail = torch.flip(torch.cumsum(torch.flip(cf, (1,)), 1), (1,))  # tail[:, j] = sum_{i>=j}
    tail = torch.cat([tail, torch.zeros_like(tail[:, :1])], 1)      # (N, d + 1), last 0
    j = torch.arange(1, d + 1, device=features.device, dtype=dtype)
    rest = tail[:, 1:] - j * cf
    return torch.cat([tail[:, :1], rest], 1)


def _simplex(elevated):
    """Remainder-0 point, ranks and barycentric weights of every point, as ``_embed``."""
    n, dp1 = elevated.shape
    d = dp1 - 1
    v = torch.round(elevated / dp1)
    rem0 = v * dp1
    total = v.sum(1).to(torch.int64)
    diff = elevated - rem0
    # rank[i] = #{j > i: d_i < d_j} + #{j < i: d_j >= d_i}, the pairwise loop of _embed.
    di, dj = diff[:, :, None], diff[:, None, :]
    idx = torch.arange(dp1, device=elevated.device)
    later = (idx[None, :] > idx[:, None])[None]
    earlier = (idx[None, :] < idx[:, None])[None]
    rank = ((later & (di < dj)) | (earlier & (dj >= di))).sum(2) + total[:, None]
    low, high = rank < 0, rank > d
    rank = rank + dp1 * low - dp1 * high
    rem0 = rem0 + dp1 * low.to(rem0.dtype) - dp1 * high.to(rem0.dtype)
    vals = (elevated - rem0) / dp1
    bary = torch.zeros((n, d + 2), dtype=elevated.dtype, device=elevated.device)
    bary.scatter_add_(1, d - rank, vals)
    bary.scatter_add_(1, d - rank + 1, -vals)
    bary[:, 0] += 1.0 + bary[:, d + 1]
    return rem0.to(torch.int64), rank, bary[:, :dp1]


class _Packer:
    """Keys (rows of d int64) packed into one int64 each by mixed radix, when they fit."""

    def __init__(self, keys, margin):
        self.low = keys.amin(0) - margin
        span = keys.amax(0) + margin - self.low + 1
        self.ok = bool(torch.sum(torch.log2(span.double())) < 62)
        radix = torch.cumprod(torch.cat([torch.ones_like(span[:1]), span[:-1]]), 0)
        self.radix = radix

    def __call__(self, keys):
        return ((keys - self.low) * self.radix).sum(-1)


class TorchLattice:
    """A permutohedral lattice over ``N`` points with ``d`` features, on their device.

    Parameters
    ----------
    features : (N, d) torch.Tensor of float
        Point positions, already divided by the kernel's standard deviations (float32 or
        float64; the lattice computes in that precision).

    Attributes
    ----------
    n_points, n_features, n_lattice : int
    offsets : (N, d + 1) LongTensor
        Lattice vertex of each point's simplex corners.
    weights : (N, d + 1) Tensor
        Barycentric weights.
    neighbours : (d + 1, 2, M) LongTensor
        Blur neighbours along each direction (``M`` for a missing one: a zero row).
    alpha : float
        Slice scale ``1 / (1 + 2^-d)``.
    """

    def __init__(self, features):
        if not isinstance(features, torch.Tensor) or features.ndim != 2:
            raise ValueError("features must be an (N, d) tensor")
        n, d = features.shape
        if n == 0 or d == 0:
            raise ValueError(f"features must be a non-empty (N, d) tensor, got "
                             f"{tuple(features.shape)}")
        if not torch.isfinite(features).all():
            raise ValueError("features hold NaN or infinite values")
        f = features.detach()
        if not f.is_floating_point():
            f = f.float()
        self.n_points, self.n_features = n, d
        rem0, rank, bary = _simplex(_elevate(f))
        r = torch.arange(d + 1, device=f.device)
        # Vertex r of each simplex: rem0 + r where rank <= d - r, else rem0 + r - (d + 1).
        shift = torch.where(rank[:, None, :d] <= d - r[None, :, None], r[None, :, None],
                            r[None, :, None] - (d + 1))                     # (N, d+1, d)
        keys = rem0[:, None, :d] + shift
        flat = keys.reshape(-1, d)
        packer = _Packer(flat, d + 1)
        if packer.ok:
            codes = packer(flat)
            uniq, inverse = torch.unique(codes, sorted=True, return_inverse=True)
            m = uniq.numel()
            first = torch.full((m,), flat.shape[0], dtype=torch.int64, device=f.device)
            first.scatter_reduce_(0, inverse, torch.arange(flat.shape[0], device=f.device),
                                  "amin")
            vkeys = flat[first]
            self.neighbours = self._neighbours_packed(vkeys, uniq, packer, d)
        else:  # pragma: no cover - extreme feature ranges: rows instead of packed codes
            vkeys, inverse = torch.unique(flat, dim=0, return_inverse=True)
            m = vkeys.shape[0]
            self.neighbours = self._neighbours_rows(vkeys, d)
        self.offsets = inverse.reshape(n, d + 1)
        self.weights = bary.to(f.dtype)
        self.n_lattice = int(m)
        self.alpha = 1.0 / (1.0 + 2.0 ** (-d))
        self.device = f.device
        self.dtype = f.dtype

    @staticmethod
    def _step_keys(vkeys, d):
        """Neighbour keys along every direction: ``(d + 1, 2, M, d)``."""
        m = vkeys.shape[0]
        base_minus = vkeys[None].expand(d + 1, m, d) - 1
        base_plus = vkeys[None].expand(d + 1, m, d) + 1
        eye = torch.eye(d + 1, d, dtype=torch.bool, device=vkeys.device)[:, None, :]
        n1 = torch.where(eye, vkeys[None] + d, base_minus)
        n2 = torch.where(eye, vkeys[None] - d, base_plus)
        return torch.stack([n1, n2], 1)

    def _neighbours_packed(self, vkeys, uniq, packer, d):
        codes = packer(self._step_keys(vkeys, d))                     # (d+1, 2, M)
        pos = torch.searchsorted(uniq, codes).clamp_(max=uniq.numel() - 1)
        found = uniq[pos] == codes
        return torch.where(found, pos, torch.full_like(pos, uniq.numel()))

    def _neighbours_rows(self, vkeys, d):  # pragma: no cover - see __init__
        m = vkeys.shape[0]
        steps = self._step_keys(vkeys, d).reshape(-1, d)
        both = torch.cat([vkeys, steps])
        _, inv = torch.unique(both, dim=0, return_inverse=True)
        # A neighbour exists when its row's unique id is one of the vertices' ids.
        vid = inv[:m]
        lookup = torch.full((int(inv.max()) + 1,), m, dtype=torch.int64, device=vkeys.device)
        lookup[vid] = torch.arange(m, device=vkeys.device)
        return lookup[inv[m:]].reshape(d + 1, 2, m)

    def sparse(self, splat_weights, slice_weights):
        """The splat and slice of ``filter`` as sparse CSR matrices: ``(splat, slice)``
        of shapes ``(M + 1, N)`` and ``(N, M + 1)`` (row ``M`` of the lattice is the zero
        row that missing neighbours read), to pass to ``filter`` as ``matrices``."""
        n, dp1 = self.offsets.shape
        m = self.n_lattice
        flat = self.offsets.reshape(-1)
        order = torch.argsort(flat, stable=True)
        counts = torch.bincount(flat, minlength=m + 1)
        crow = torch.zeros(m + 2, dtype=torch.int64, device=flat.device)
        crow[1:] = torch.cumsum(counts, 0)
        points = order // dp1
        rows = torch.arange(0, n * dp1 + 1, dp1, device=flat.device)
        with warnings.catch_warnings():  # torch calls its sparse CSR support beta
            warnings.simplefilter("ignore", UserWarning)
            splat = torch.sparse_csr_tensor(crow, points, splat_weights.reshape(-1)[order],
                                            size=(m + 1, n), check_invariants=False)
            slice_ = torch.sparse_csr_tensor(rows, flat, slice_weights.reshape(-1),
                                             size=(n, m + 1), check_invariants=False)
        return splat, slice_

    def filter(self, values, splat_weights=None, slice_weights=None, transpose=False,
               matrices=None):
        """Gaussian-filter ``values`` (``(N, C)``): splat, blur, slice.

        Weights default to the barycentric ones (times ``alpha`` when slicing): the
        unnormalised filter. ``transpose`` applies the filter's exact transpose.
        ``matrices``, the ``sparse`` form of these weights (for the transpose, of the
        swapped ones), splats and slices by sparse products instead of ``index_add_`` and
        a gather: no atomic additions, which on a GPU contend where many points share a
        vertex.
        """
        sw = self.weights if splat_weights is None else splat_weights
        lw = self.weights * self.alpha if slice_weights is None else slice_weights
        if transpose:
            sw, lw = lw, sw
        n, c = values.shape
        dp1 = self.n_features + 1
        m = self.n_lattice
        if matrices is not None:
            lat = matrices[0] @ values
        else:
            src = (sw[:, :, None] * values[:, None, :]).reshape(n * dp1, c)
            lat = values.new_zeros((m + 1, c))
            lat.index_add_(0, self.offsets.reshape(-1), src)
        directions = range(dp1 - 1, -1, -1) if transpose else range(dp1)
        for j in directions:
            a, b = self.neighbours[j, 0], self.neighbours[j, 1]
            blurred = lat[:m] + 0.5 * (lat.index_select(0, a) + lat.index_select(0, b))
            lat = torch.cat([blurred, lat[m:]])
        if matrices is not None:
            return matrices[1] @ lat
        gathered = lat.index_select(0, self.offsets.reshape(-1)).reshape(n, dp1, c)
        return (gathered * lw[:, :, None]).sum(1)


class _LatticeFilter(torch.autograd.Function):
    """``K v`` with gradient ``K^T g``: the lattice is constant, only ``v`` is differentiated."""

    @staticmethod
    def forward(ctx, values, kernel, transpose):
        ctx.kernel = kernel
        ctx.transpose = transpose
        return kernel._apply(values, transpose)

    @staticmethod
    def backward(ctx, grad):
        return _LatticeFilter.apply(grad.contiguous(), ctx.kernel, not ctx.transpose), None, None


def lattice_filter(values, kernel):
    """``kernel``'s normalised filter of ``values`` (``(N, C)``), differentiable in ``values``.

    Parameters
    ----------
    values : (N, C) torch.Tensor
    kernel : NormalizedKernel or LatticeKernel
        A numba ``LatticeKernel`` filters on the CPU in float32.

    Returns
    -------
    filtered : (N, C) torch.Tensor
    """
    if not isinstance(kernel, NormalizedKernel):
        kernel = NormalizedKernel.from_lattice_kernel(kernel, values.dtype)
    return _LatticeFilter.apply(values, kernel, False)


class NormalizedKernel:
    """A Gaussian kernel over per-point features with pydensecrf's symmetric normalisation:
    ``filter(Q) = D^-1/2 K (D^-1/2 Q)``, ``D = K 1``, weight applied by the caller.

    On the CPU in float32 the numba lattice of ``_lattice.py`` does the filtering (faster
    there); anywhere else, or with ``engine="torch"``, the torch lattice. Both give the same
    filter up to float rounding.

    Parameters
    ----------
    features : (N, d) torch.Tensor
    dtype : torch.dtype
        Precision of the filtering.
    engine : {"auto", "torch", "numba"}, default="auto"
    splat : {"auto", "sparse", "index_add"}, default="auto"
        How the torch lattice splats and slices: sparse CSR products (``"auto"``; about
        twice as fast as the other on a CPU) or ``index_add_`` and a gather.
    """

    def __init__(self, features, dtype, engine="auto", splat="auto"):
        device = features.device
        if engine == "auto":
            engine = "numba" if device.type == "cpu" and dtype == torch.float32 else "torch"
        self.engine = engine
        self.device, self.dtype = device, dtype
        if engine == "numba":
            import numpy as np

            from ._meanfield import LatticeKernel

            f = features.detach().cpu().numpy().astype(np.float32)
            self._numba = LatticeKernel(f)
        else:
            lat = TorchLattice(features.detach().to(dtype))
            ones = torch.ones((lat.n_points, 1), dtype=dtype, device=device)
            mass = lat.filter(ones)[:, 0]
            norm = 1.0 / torch.sqrt(mass.double() + NORM_EPS)
            norm = norm.to(dtype)
            self._lattice = lat
            self._splat = lat.weights * norm[:, None]
            self._slice = lat.weights * (norm[:, None] * lat.alpha)
            if splat not in ("auto", "sparse", "index_add"):
                raise ValueError(f"splat must be 'auto', 'sparse' or 'index_add', got "
                                 f"{splat!r}")
            self._matrices = self._transposed = None
            if splat in ("auto", "sparse"):
                self._matrices = lat.sparse(self._splat, self._slice)
                self._transposed = lat.sparse(self._slice, self._splat)

    @classmethod
    def from_lattice_kernel(cls, kernel, dtype):
        """Wrap a numba :class:`~hybridseg.crf._meanfield.LatticeKernel` already built
        (a kept smoothness kernel, say)."""
        self = cls.__new__(cls)
        self.engine, self.device, self.dtype = "numba", torch.device("cpu"), dtype
        self._numba = kernel
        return self

    def _apply(self, values, transpose=False):
        if self.engine == "numba":
            import numpy as np

            v = np.ascontiguousarray(values.detach().cpu().numpy(), dtype=np.float32)
            return torch.from_numpy(self._numba.filter(v, transpose=transpose)).to(values.dtype)
        matrices = self._transposed if transpose else self._matrices
        return self._lattice.filter(values, self._splat, self._slice, transpose=transpose,
                                    matrices=matrices)
