"""8-wide float32 operations for the mean-field passes, as numba intrinsics.

A point's row holds ``kp`` labels, a few dozen at most (``kp`` a multiple of 8 by
``_meanfield._padded_width``). LLVM's loop vectoriser unrolls a loop of unknown length 4 x
16 lanes deep on AVX-512 machines and runs the shorter rows in its scalar tail: the
passes' slice, exponential and reductions ran one label at a time. These intrinsics do one
8-label chunk each in registers (AVX2 width; a machine without it gets the same LLVM
vector code split into narrower instructions). Each computes its chunk the same way
whatever the thread count, so the passes keep their bits.

All arrays are float32 (int32 for offsets) and C-contiguous; indices are flat element
indices. Nothing here checks bounds: the callers' indices come from the lattice.
"""

from __future__ import annotations

import contextlib

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_F32 = ir.FloatType()
_I32 = ir.IntType(32)
_V8 = ir.VectorType(_F32, 8)
_VI8 = ir.VectorType(_I32, 8)


def _splat(builder, value, vec=_V8):
    out = ir.Constant(vec, ir.Undefined)
    for j in range(vec.count):
        out = builder.insert_element(out, value, ir.Constant(_I32, j))
    return out


def _vec_ptr(context, builder, arr_type, arr_value, index):
    """Pointer to ``<8 x float>`` at flat ``index`` of a C-contiguous array."""
    arr = context.make_array(arr_type)(context, builder, arr_value)
    return builder.bitcast(builder.gep(arr.data, [index]), _V8.as_pointer())


def _intrinsic_fn(builder, name, ret, args):
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, args), name)


def _fma(builder, a, b, c):
    return builder.call(_intrinsic_fn(builder, "llvm.fma.v8f32", _V8, [_V8] * 3), [a, b, c])


def _as_intp(context, builder, value, ty):
    return context.cast(builder, value, ty, types.intp)


def _arg_ptr(context, builder, signature, args, arr, index):
    """Pointer to ``<8 x float>`` in argument ``arr`` at the flat index argument ``index``."""
    tys = signature.args
    return _vec_ptr(context, builder, tys[arr], args[arr],
                    _as_intp(context, builder, args[index], tys[index]))


def _arg_splat(context, builder, signature, args, pos):
    """Argument ``pos`` as float32, in all 8 lanes."""
    return _splat(builder, context.cast(builder, args[pos], signature.args[pos],
                                        types.float32))


@intrinsic
def _int32_bits_as_float32(typingctx, x):
    """Reinterpret the bits of an int32 as a float32 (a no-op that vectorises)."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], _F32)

    return sig, codegen


@intrinsic
def _float32_bits_as_int32(typingctx, x):
    """Reinterpret the bits of a float32 as an int32 (a no-op that vectorises)."""
    sig = types.int32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], _I32)

    return sig, codegen


@intrinsic
def _axpy8(typingctx, dst, di, src, si, w):
    """``dst.flat[di:di + 8] += w * src.flat[si:si + 8]``, one fused multiply-add."""
    sig = types.void(dst, di, src, si, w)

    def codegen(context, builder, signature, args):
        d_ptr = _arg_ptr(context, builder, signature, args, 0, 1)
        s_ptr = _arg_ptr(context, builder, signature, args, 2, 3)
        w_v = _arg_splat(context, builder, signature, args, 4)
        out = _fma(builder, w_v, builder.load(s_ptr, align=4), builder.load(d_ptr, align=4))
        builder.store(out, d_ptr, align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _fill8(typingctx, dst, di, value):
    """``dst.flat[di:di + 8] = value``."""
    sig = types.void(dst, di, value)

    def codegen(context, builder, signature, args):
        builder.store(_arg_splat(context, builder, signature, args, 2),
                      _arg_ptr(context, builder, signature, args, 0, 1), align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _mul8(typingctx, dst, di, src, si, s):
    """``dst.flat[di:di + 8] = s * src.flat[si:si + 8]``."""
    sig = types.void(dst, di, src, si, s)

    def codegen(context, builder, signature, args):
        src = builder.load(_arg_ptr(context, builder, signature, args, 2, 3), align=4)
        builder.store(builder.fmul(src, _arg_splat(context, builder, signature, args, 4)),
                      _arg_ptr(context, builder, signature, args, 0, 1), align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _softmax_grad8(typingctx, g, acc, ai, q, dq, c0, inner):
    """``g[c0:c0 + 8] = q[c0:] * (dq[c0:] - inner)`` and ``acc.flat[ai:ai + 8] += g``: the
    gradient through a softmax, 8 labels at a time, added to a running sum."""
    sig = types.void(g, acc, ai, q, dq, c0, inner)

    def codegen(context, builder, signature, args):
        g_ptr = _arg_ptr(context, builder, signature, args, 0, 5)
        a_ptr = _arg_ptr(context, builder, signature, args, 1, 2)
        q_v = builder.load(_arg_ptr(context, builder, signature, args, 3, 5), align=4)
        dq_v = builder.load(_arg_ptr(context, builder, signature, args, 4, 5), align=4)
        inner_v = _arg_splat(context, builder, signature, args, 6)
        x = builder.fmul(q_v, builder.fsub(dq_v, inner_v))
        builder.store(x, g_ptr, align=4)
        builder.store(builder.fadd(builder.load(a_ptr, align=4), x), a_ptr, align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _combine8(typingctx, dst, di, mat, mi, stride, x, n, scale):
    """``dst.flat[di:di + 8] += scale * sum_{j < n} x[j] mat.flat[mi + j stride:][:8]``: 8
    columns of a vector-matrix product, summed in four registers (``j`` modulo 4, so that
    four chains of fused multiply-adds overlap) and written once (axpys into ``dst`` would
    chain a store and a reload per step)."""
    sig = types.void(dst, di, mat, mi, stride, x, n, scale)

    def codegen(context, builder, signature, args):
        tys = signature.args
        m_arr = context.make_array(tys[2])(context, builder, args[2])
        x_arr = context.make_array(tys[5])(context, builder, args[5])
        mi_v, stride_v, n_v = (_as_intp(context, builder, args[j], tys[j]) for j in (3, 4, 6))
        zero = ir.Constant(_V8, [0.0] * 8)
        accs = [cgutils.alloca_once_value(builder, zero) for _ in range(4)]

        def step(j, acc):
            xj = _splat(builder, builder.load(builder.gep(x_arr.data, [j])))
            at = builder.add(mi_v, builder.mul(j, stride_v))
            row = builder.load(builder.bitcast(builder.gep(m_arr.data, [at]),
                                               _V8.as_pointer()), align=4)
            builder.store(_fma(builder, xj, row, builder.load(acc)), acc)

        two = ir.Constant(n_v.type, 2)
        quads = builder.ashr(n_v, two)
        with cgutils.for_range(builder, quads) as loop:
            j0 = builder.shl(loop.index, two)
            for u in range(4):
                step(builder.add(j0, ir.Constant(n_v.type, u)), accs[u])
        with cgutils.for_range(builder, builder.sub(n_v, builder.shl(quads, two))) as loop:
            step(builder.add(builder.shl(quads, two), loop.index), accs[0])
        total = builder.fadd(builder.fadd(builder.load(accs[0]), builder.load(accs[1])),
                             builder.fadd(builder.load(accs[2]), builder.load(accs[3])))
        d_ptr = _arg_ptr(context, builder, signature, args, 0, 1)
        scale_v = _arg_splat(context, builder, signature, args, 7)
        builder.store(_fma(builder, scale_v, total, builder.load(d_ptr, align=4)), d_ptr,
                      align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _outer4(typingctx, part, cols, c, count, rows, start, c0):
    """``part[c + u, c0:c0 + 8] -= sum_{j < count} cols[c + u, j] rows[start + j,
    c0:c0 + 8]`` for ``u = 0 .. 3``: four rows of a ``S^T Q`` product, each row of ``rows``
    loaded once for the four (``part`` and ``rows`` flat, ``kp`` wide; ``cols`` (kp, R),
    ``S`` transposed)."""
    sig = types.void(part, cols, c, count, rows, start, c0)

    def codegen(context, builder, signature, args):
        tys = signature.args
        p_arr = context.make_array(tys[0])(context, builder, args[0])
        cols_arr = context.make_array(tys[1])(context, builder, args[1])
        rows_arr = context.make_array(tys[4])(context, builder, args[4])
        c_v, n_v, start_v, c0_v = (_as_intp(context, builder, args[j], tys[j])
                                   for j in (2, 3, 5, 6))
        kp, width = cgutils.unpack_tuple(builder, cols_arr.shape, 2)
        zero = ir.Constant(_V8, [0.0] * 8)
        accs = [cgutils.alloca_once_value(builder, zero) for _ in range(4)]
        with cgutils.for_range(builder, n_v) as loop:
            j = loop.index
            at = builder.add(builder.mul(builder.add(start_v, j), kp), c0_v)
            row = builder.load(builder.bitcast(builder.gep(rows_arr.data, [at]),
                                               _V8.as_pointer()), align=4)
            for u in range(4):
                ci = builder.add(builder.mul(builder.add(c_v, ir.Constant(c_v.type, u)),
                                             width), j)
                x = _splat(builder, builder.load(builder.gep(cols_arr.data, [ci])))
                builder.store(_fma(builder, x, row, builder.load(accs[u])), accs[u])
        for u in range(4):
            pi = builder.add(builder.mul(builder.add(c_v, ir.Constant(c_v.type, u)), kp), c0_v)
            ptr = builder.bitcast(builder.gep(p_arr.data, [pi]), _V8.as_pointer())
            builder.store(builder.fsub(builder.load(ptr, align=4), builder.load(accs[u])),
                          ptr, align=4)
        return context.get_dummy_value()

    return sig, codegen


@contextlib.contextmanager
def _corners(context, builder, signature, args, table, rows, w, i, c0, scale):
    """Loop over the simplex corners ``r`` of point ``args[i]``, yielding ``(ptr, wr)``:
    the ``<8 x float>`` pointer to columns ``c0:c0 + 8`` of row ``rows[i, r]`` of the
    2-D table ``args[table]``, and the corner's weight ``args[w][i, r] * args[scale]``.
    The argument positions of the slice and the splat differ; the walk is the same."""
    tys = signature.args
    table_arr = context.make_array(tys[table])(context, builder, args[table])
    rows_arr = context.make_array(tys[rows])(context, builder, args[rows])
    w_arr = context.make_array(tys[w])(context, builder, args[w])
    i_v = _as_intp(context, builder, args[i], tys[i])
    c0_v = _as_intp(context, builder, args[c0], tys[c0])
    scale_v = context.cast(builder, args[scale], tys[scale], types.float32)
    kp = cgutils.unpack_tuple(builder, table_arr.shape, 2)[1]
    dp1 = cgutils.unpack_tuple(builder, rows_arr.shape, 2)[1]
    row0 = builder.mul(i_v, dp1)
    with cgutils.for_range(builder, dp1) as loop:
        at = builder.add(row0, loop.index)
        o = builder.sext(builder.load(builder.gep(rows_arr.data, [at])), kp.type)
        wr = builder.fmul(builder.load(builder.gep(w_arr.data, [at])), scale_v)
        ptr = builder.bitcast(builder.gep(table_arr.data,
                                          [builder.add(builder.mul(o, kp), c0_v)]),
                              _V8.as_pointer())
        yield ptr, _splat(builder, wr)


@intrinsic
def _slice8(typingctx, dst, lat, off, w, i, cf, c0):
    """``dst[c0:c0 + 8] += cf * sum_r w[i, r] lat[off[i, r], c0:c0 + 8]``: 8 labels of
    one point's slice of one lattice (all ``off.shape[1]`` simplex corners) into the
    point's row ``dst``, summed in a register from the loaded chunk of ``dst``."""
    sig = types.void(dst, lat, off, w, i, cf, c0)

    def codegen(context, builder, signature, args):
        d_ptr = _arg_ptr(context, builder, signature, args, 0, 6)
        acc = cgutils.alloca_once_value(builder, builder.load(d_ptr, align=4))
        with _corners(context, builder, signature, args, 1, 2, 3, 4, 6, 5) as (v_ptr, wr):
            builder.store(_fma(builder, wr, builder.load(v_ptr, align=4),
                               builder.load(acc)), acc)
        builder.store(builder.load(acc), d_ptr, align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _splat8(typingctx, acc, rows, w, i, src, si, scale):
    """``acc[rows[i, r], si:si + 8] += scale w[i, r] src.flat[si:si + 8]`` for every
    corner ``r`` of point ``i``: the chunk of ``src`` is loaded once, then one fused
    multiply-add per corner."""
    sig = types.void(acc, rows, w, i, src, si, scale)

    def codegen(context, builder, signature, args):
        chunk = builder.load(_arg_ptr(context, builder, signature, args, 4, 5), align=4)
        with _corners(context, builder, signature, args, 0, 1, 2, 3, 5, 6) as (a_ptr, wr):
            builder.store(_fma(builder, wr, chunk, builder.load(a_ptr, align=4)), a_ptr,
                          align=4)
        return context.get_dummy_value()

    return sig, codegen


def _reduce(builder, vec, op):
    """Horizontal ``op`` ("fadd" or "fmax") of an 8-vector in three halvings (a fixed
    order, so a fixed result)."""
    width = 8
    while width > 1:
        half = width // 2
        lo = builder.shuffle_vector(vec, vec, ir.Constant(ir.VectorType(_I32, half),
                                                          list(range(half))))
        hi = builder.shuffle_vector(vec, vec, ir.Constant(ir.VectorType(_I32, half),
                                                          list(range(half, width))))
        if op == "fadd":
            vec = builder.fadd(lo, hi)
        else:
            vec = builder.select(builder.fcmp_ordered(">", lo, hi), lo, hi)
        width = half
    return builder.extract_element(vec, ir.Constant(_I32, 0))


@intrinsic
def _max8(typingctx, src, si):
    """``max(src.flat[si:si + 8])``."""
    sig = types.float32(src, si)

    def codegen(context, builder, signature, args):
        ptr = _arg_ptr(context, builder, signature, args, 0, 1)
        return _reduce(builder, builder.load(ptr, align=4), "fmax")

    return sig, codegen


@intrinsic
def _dot8(typingctx, a, ai, b, bi):
    """``sum(a.flat[ai:ai + 8] * b.flat[bi:bi + 8])`` in float64: the marginals reach
    exp(-60) and a float32 product of two small factors would be a denormal (each costs
    about a hundred cycles; the reverse pass ran 50% slower with float32 products)."""
    sig = types.float64(a, ai, b, bi)

    def codegen(context, builder, signature, args):
        pa = _arg_ptr(context, builder, signature, args, 0, 1)
        pb = _arg_ptr(context, builder, signature, args, 2, 3)
        wide = ir.VectorType(ir.DoubleType(), 8)
        prod = builder.fmul(builder.fpext(builder.load(pa, align=4), wide),
                            builder.fpext(builder.load(pb, align=4), wide))
        return _reduce(builder, prod, "fadd")

    return sig, codegen


# exp(x) for x <= 0: the constants of ``_meanfield._exp_nonpos`` (Cody-Waite reduction,
# Cephes' degree-7 polynomial), the arguments floored at -60.
_EXP_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
             1.6666665459e-1, 5.0000001201e-1)


def _exp_nonpos_v8(builder, x):
    const = lambda v: ir.Constant(_V8, [float(v)] * 8)  # noqa: E731
    x = builder.select(builder.fcmp_ordered("<", x, const(-60.0)), const(-60.0), x)
    t = builder.fmul(x, const(1.44269504088896341))
    n = builder.fptosi(builder.fsub(t, const(0.5)), _VI8)
    nf = builder.sitofp(n, _V8)
    r = _fma(builder, nf, const(-0.693359375), x)
    r = _fma(builder, nf, const(2.12194440e-4), r)
    p = const(_EXP_POLY[0])
    for c in _EXP_POLY[1:]:
        p = _fma(builder, p, r, const(c))
    p = _fma(builder, p, builder.fmul(r, r), builder.fadd(r, const(1.0)))
    bits = builder.shl(builder.add(n, ir.Constant(_VI8, [127] * 8)),
                       ir.Constant(_VI8, [23] * 8))
    return builder.fmul(p, builder.bitcast(bits, _V8))


@intrinsic
def _exp8(typingctx, row, ri, shift):
    """``row.flat[ri:ri + 8] = exp(row.flat[ri:ri + 8] - shift)`` (arguments at most 0,
    floored at -60 like ``_exp_nonpos``); returns the chunk's sum."""
    sig = types.float32(row, ri, shift)

    def codegen(context, builder, signature, args):
        ptr = _arg_ptr(context, builder, signature, args, 0, 1)
        s = _arg_splat(context, builder, signature, args, 2)
        e = _exp_nonpos_v8(builder, builder.fsub(builder.load(ptr, align=4), s))
        builder.store(e, ptr, align=4)
        return _reduce(builder, e, "fadd")

    return sig, codegen

