"""Oracles of the dense CRF: Gaussian kernels by brute force over all pixel pairs, and the
mean field of ``DenseCRF`` / ``CRFRNN`` / ``crf._learn`` with a hand-written backward, in
float64 (tiny images only: the kernels are ``(N, N)`` matrices).

The model, as hybridseg computes it (``crf/_meanfield.py``, ``crf/_learn.py``,
``deep/_crfrnn.py``): kernels ``K_m = D^-1/2 G_m D^-1/2`` with ``G_m`` the Gaussian
``exp(-|f_i - f_j|^2 / 2)`` on the scaled features (self term included) and ``D = G_m 1``
(pydensecrf's symmetric normalisation), and ``T`` parallel updates on the logits ``a``
(``a = -U``)::

    z_0 = a
    Q_{t-1} = softmax(z_{t-1})                    (over the labels)
    M_t = sum_m w_m K_m Q_{t-1}
    z_t = a - M_t mu^T                            (mu = -I for Potts)

``CRFRNN`` returns ``z_T``; ``DenseCRF.refine`` returns ``softmax(z_T)``.
"""

import numpy as np

# pydensecrf's normalisation adds this to each point's kernel mass before the square root.
NORM_EPS = 1e-20


def positions(shape, sxy):
    """``(N, 2)`` pixel positions ``(x / sxy, y / sxy)`` over the row-major pixels of
    ``shape = (H, W)``: x first, as pydensecrf orders them."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    return np.stack([xx.ravel() / sxy, yy.ravel() / sxy], 1)


def dense_crf_features(image, gaussian_sxy=3.0, bilateral_sxy=80.0, bilateral_srgb=13.0):
    """The features of the two built-in kernels of ``DenseCRF`` and ``CRFRNN`` on an
    ``(H, W)`` or ``(H, W, C)`` image: positions for the Gaussian kernel, positions and
    colours ``image / bilateral_srgb`` for the bilateral one."""
    image = np.asarray(image, np.float64)
    h, w = image.shape[:2]
    colour = image.reshape(h * w, -1) / bilateral_srgb
    return (positions((h, w), gaussian_sxy),
            np.hstack([positions((h, w), bilateral_sxy), colour]))


def gaussian_kernel(features):
    """``G[i, j] = exp(-|f_i - f_j|^2 / 2)`` over every pair of points, ``(N, N)``."""
    f = np.asarray(features, np.float64)
    return np.exp(-0.5 * ((f[:, None, :] - f[None, :, :]) ** 2).sum(-1))


def gaussian_filter(features, values):
    """``sum_j exp(-|f_i - f_j|^2 / 2) v_j`` for every ``i``: the oracle of the
    permutohedral lattice's filter (``crf._lattice.Lattice.filter``, which approximates it)
    and of ``crf._exact.exact_filter``."""
    return gaussian_kernel(features) @ np.asarray(values, np.float64)


def normalised_kernel(features):
    """``D^-1/2 G D^-1/2`` with ``D = G 1``: the oracle of ``crf._exact.ExactKernel``'s
    matrix and of what ``crf._meanfield.PairwiseKernel`` applies (with the lattice)."""
    g = gaussian_kernel(features)
    norm = 1.0 / np.sqrt(g.sum(1) + NORM_EPS)
    return norm[:, None] * g * norm[None, :]


def softmax(z):
    """Row-wise softmax of ``(N, K)``."""
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def mean_field(logits, kernels, weights, mu, n_iter):
    """``T = n_iter`` parallel mean-field updates (the module docstring's recursion).

    Parameters
    ----------
    logits : (N, K) array_like
        ``a = -U``.
    kernels : list of (N, N) arrays
        The normalised kernels ``K_m`` (``normalised_kernel``, or any linear filter as a
        matrix: ``filter(v) = K_m v``).
    weights : (M,) array_like
    mu : (K, K) array_like
        Label compatibility, used as given (``-I`` for Potts).
    n_iter : int

    Returns
    -------
    z : (N, K) ndarray
        The last update's logits ``z_T`` (``a`` when ``n_iter`` is 0); ``softmax(z)`` is
        the marginal.
    tape : tuple
        What ``mean_field_backward`` needs: every ``Q_{t-1}`` and ``M_t``.
    """
    a = np.asarray(logits, np.float64)
    mu = np.asarray(mu, np.float64)
    kernels = [np.asarray(k, np.float64) for k in kernels]
    weights = np.asarray(weights, np.float64)
    z, qs, messages = a, [], []
    for _ in range(n_iter):
        q = softmax(z)
        m = sum(w * (k @ q) for w, k in zip(weights, kernels))
        z = a - m @ mu.T
        qs.append(q)
        messages.append(m)
    return z, (qs, messages, kernels, weights, mu)


def mean_field_backward(tape, grad_z):
    """The reverse pass of ``mean_field``: from ``dL/dz_T`` to the gradients of ``L``
    with respect to the logits, the kernel weights and the compatibility.

    Walking ``t = T .. 1`` with ``g = dL/dz_t``: ``z_t = a - M_t mu^T`` gives ``g`` to
    ``a`` and ``-g^T M_t`` to ``mu``; ``dL/dM_t = -g mu``; ``M_t = sum_m w_m K_m Q`` gives
    ``<dL/dM_t, K_m Q>`` to ``w_m`` and ``sum_m w_m K_m^T dL/dM_t`` to ``Q = Q_{t-1}``; the
    softmax turns that into ``dL/dz_{t-1} = Q * (dL/dQ - rowsum(dL/dQ * Q))``; finally
    ``z_0 = a``.

    Returns
    -------
    grad_logits : (N, K) ndarray
    grad_weights : (M,) ndarray
    grad_mu : (K, K) ndarray
    """
    qs, messages, kernels, weights, mu = tape
    g = np.asarray(grad_z, np.float64)
    grad_a = np.zeros_like(g)
    grad_w = np.zeros(len(weights))
    grad_mu = np.zeros_like(mu)
    for q, m in zip(reversed(qs), reversed(messages)):
        grad_a += g
        grad_mu -= g.T @ m
        grad_m = -g @ mu
        grad_w += [np.sum(grad_m * (k @ q)) for k in kernels]
        grad_q = sum(w * (k.T @ grad_m) for w, k in zip(weights, kernels))
        g = q * (grad_q - (grad_q * q).sum(1, keepdims=True))
    return grad_a + g, grad_w, grad_mu


def log_loss(z, labels, class_weights):
    """``-sum_i c_{y_i} log softmax(z)_{i, y_i}`` over the points with ``y_i >= 0``, and its
    gradient ``c_{y_i} (softmax(z)_i - onehot(y_i))`` with respect to ``z``: the objective
    of ``crf._learn.LearningProblem`` (with ``z = z_T``)."""
    labels = np.asarray(labels)
    c = np.asarray(class_weights, np.float64)
    q = softmax(np.asarray(z, np.float64))
    rows = np.flatnonzero(labels >= 0)
    y = labels[rows]
    loss = -np.sum(c[y] * np.log(q[rows, y]))
    grad = np.zeros_like(q)
    grad[rows] = c[y][:, None] * q[rows]
    grad[rows, y] -= c[y]
    return float(loss), grad


def free_energy(unary, q, mats, mu):
    """Mean-field free energy ``<Q, U> + <Q, log Q> + 1/2 <Q, (sum_m w_m K_m Q) mu^T>`` with
    the weighted kernels ``mats = [w_m K_m]`` (``mu`` None for Potts, ``-I``): what
    ``DenseCRF``'s ``return_trace=True`` reports."""
    msg = sum(m @ q for m in mats)
    pair = -0.5 * np.sum(q * msg) if mu is None else 0.5 * np.sum(q * (msg @ mu.T))
    return np.sum(q * unary) + np.sum(q * np.log(np.maximum(q, 1e-30))) + pair


def lattice_splat(offsets, weights, values, n_lattice, n_blocks=1):
    """The permutohedral splat in float32 as ``crf._lattice`` sums it: the points cut into
    ``n_blocks`` contiguous blocks, each scattered serially (``out[offsets[k, r]] +=
    weights[k, r] * values[k]`` over points ``k`` and corners ``r`` in that order), and
    the blocks' sums then added in block order. ``(M + 1, C)``, the last row zero."""
    n, dp1 = offsets.shape
    out = np.zeros((n_lattice + 1, values.shape[1]), np.float32)
    for b in range(n_blocks):
        rows = slice(b * n // n_blocks, (b + 1) * n // n_blocks)
        part = np.zeros_like(out)
        np.add.at(part, offsets[rows].ravel(),
                  (weights[rows].reshape(-1, 1)
                   * np.repeat(values[rows], dp1, axis=0)).astype(np.float32))
        out += part
    return out
