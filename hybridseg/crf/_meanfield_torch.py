"""The mean-field engine on torch tensors: its torch execution (any device, float32 or
float64, gradients by autograd through the lattice filter's exact transpose), and the
autograd bridge to its numba execution (float32 on the CPU, the engine's own backward).

Imported only when tensors reach ``mean_field_forward`` (torch is not a dependency of
``hybridseg.crf``).
"""

from __future__ import annotations

import numpy as np

from ..utils._torch import require_torch

torch = require_torch()


def _numba_forward(logits, weights, mu, kernels, n_iter, tape):
    """The numba engine's forward on tensors (float32, CPU): ``Z_T`` as a tensor on the
    logits' device, and the tape when asked."""
    from ._meanfield import forward, logits_rows

    a = logits.detach().cpu().numpy()  # any strides: logits_rows copies it once
    k = a.shape[1]
    w = weights.detach().cpu().numpy().astype(np.float64)
    mu32 = None
    if mu is not None:
        mu32 = np.ascontiguousarray(mu.detach().cpu().numpy(), dtype=np.float32)
        if np.array_equal(mu32, -np.eye(k, dtype=np.float32)):
            mu32 = None  # Potts, the fast update (the backward gives mu's gradient)
    result = forward(logits_rows(a, "logits"), list(kernels), w, mu32, n_iter, k=k,
                     output="logits", tape=tape, pool_tape=True)
    out, taped = result if tape else (result, None)
    return torch.from_numpy(out).to(logits.device), taped


class MeanFieldNumba(torch.autograd.Function):
    """The whole mean field of one image in float32 with the numba engine: forward with a
    tape, then the engine's exact backward (the one ``DenseCRF.fit`` learns with).

    Inputs: ``logits`` (N, K), ``weights`` (M,), ``mu`` (K, K) or None (Potts), the
    unit-weight lattice kernels, ``n_iter`` and ``output``.
    """

    @staticmethod
    def forward(ctx, logits, weights, mu, kernels, n_iter, output):
        z, ctx.tape = _numba_forward(logits, weights, mu, kernels, n_iter, tape=True)
        ctx.want_mu = mu is not None and bool(ctx.needs_input_grad[2])
        ctx.has_mu = mu is not None
        if output == "proba":
            z = torch.softmax(z, dim=1)
            ctx.save_for_backward(z)
        ctx.output = output
        return z

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        from ._meanfield import backward

        g = grad_out
        if ctx.output == "proba":  # through the last softmax
            (q,) = ctx.saved_tensors
            g = q * (g - (g * q).sum(1, keepdim=True))
        g = np.asarray(g.detach().cpu().numpy(), dtype=np.float32)  # any strides
        grad_a, grad_w, grad_mu = backward(ctx.tape, g, want_mu=ctx.want_mu)
        device = grad_out.device
        grad_mu_t = None
        if ctx.has_mu:
            k = g.shape[1]
            grad_mu_t = torch.from_numpy(
                np.zeros((k, k), np.float32) if grad_mu is None
                else grad_mu.astype(np.float32)).to(device)
        return (torch.from_numpy(grad_a).to(device),
                torch.from_numpy(grad_w.astype(np.float32)).to(device), grad_mu_t, None,
                None, None)


def forward_torch(logits, kernels, weights, mu, n_iter, output):
    """The mean field with the torch lattice, differentiable by autograd in the logits,
    the weights and ``mu`` (the lattice filter's backward is its exact transpose).

    ``Z_t = a + M_t`` (Potts, ``mu`` None) or ``a - M_t mu^T``, ``M_t = sum_m w_m K_m
    Q_{t-1}``, ``Q_t = softmax(Z_t)``: the recursion of the numba execution.
    """
    from ._torch_lattice import lattice_filter

    z = logits
    for _ in range(n_iter):
        q = torch.softmax(z, dim=1)
        message = None
        for w, kernel in zip(weights, kernels):
            term = w * lattice_filter(q, kernel)
            message = term if message is None else message + term
        if message is None:
            z = logits
        else:
            z = logits + message if mu is None else logits - message @ mu.T
    return z if output == "logits" else torch.softmax(z, dim=1)


def mean_field_tensors(logits, kernels, weights, mu, n_iter, output):
    """Dispatch tensors to an execution: numba when the kernels are numba lattice kernels,
    torch otherwise."""
    from ._meanfield import LatticeKernel

    numba = [getattr(k, "_numba", k) for k in kernels]
    if numba and all(isinstance(k, LatticeKernel) for k in numba):
        # the numba engine runs in float32; other dtypes are cast (autograd follows)
        w = weights if isinstance(weights, torch.Tensor) else torch.stack(
            [torch.as_tensor(x, dtype=torch.float32) for x in weights])
        inputs = (logits.to(torch.float32), w.to(torch.float32).reshape(-1),
                  None if mu is None else mu.to(torch.float32))
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs):
            out = MeanFieldNumba.apply(*inputs, tuple(numba), int(n_iter), output)
        else:  # no gradient wanted: no tape
            out, _ = _numba_forward(*inputs, tuple(numba), int(n_iter), tape=False)
            if output == "proba":
                out = torch.softmax(out, dim=1)
        return out.to(logits.dtype)
    return forward_torch(logits, kernels, weights, mu, n_iter, output)
