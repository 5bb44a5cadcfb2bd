"""Minimum s-t cuts by the Boykov-Kolmogorov max-flow algorithm, in numba.

The graph has ``N`` nodes, a capacity from the source to each node and from each node to the
sink, and pairwise edges with a capacity in each direction. Binary submodular energies (the
grid CRF's two-label moves) are minimised exactly by one minimum cut: see
:func:`binary_energy_min`.

The algorithm (Boykov & Kolmogorov, "An experimental comparison of min-cut/max-flow
algorithms for energy minimization in vision", PAMI 2004) grows two search trees, ``S`` from
the source and ``T`` from the sink, over the residual graph. Three stages repeat:

growth
    Active nodes (a FIFO queue) claim free neighbours through non-saturated arcs, until a
    node of one tree touches a node of the other: an augmenting path ``s -> ... -> t``.
augmentation
    The bottleneck capacity is pushed along the path; the nodes below a saturated arc (or a
    saturated terminal arc) lose their parent and become orphans.
adoption
    Each orphan looks for a new parent in its own tree, one that still reaches the tree's
    terminal through non-saturated arcs; failing that it becomes free, its children become
    orphans and its neighbours that could reach it become active again.

It stops when no node is active: the ``T`` tree is then the set of nodes that can still send
flow to the sink, i.e. the sink side of the minimum cut that is smallest on the sink side
(the same side PyMaxflow's ``get_grid_segments`` reports). The distance and timestamp
heuristics of the paper keep the trees shallow: a node remembers its distance to its
terminal and when that distance was last known to be right, orphans take the nearest
valid parent, and growth re-hangs a node under a closer one.

The residual graph is a CSR over the nodes: every edge gives two arcs ``a -> b`` and
``b -> a``, each holding its residual capacity and the index of its reverse arc. Terminal
arcs are folded into one signed residual per node (``> 0``: it can receive from the
source, ``< 0``: it can send to the sink), after the flow ``min(source, sink)`` each node
can pass straight through has been pushed.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["binary_energy_min", "min_cut"]

# Tree membership.
_FREE = 0
_SOURCE = 1
_SINK = 2
# Parent markers (a parent >= 0 is the arc from the node to its parent).
_TERMINAL = -1
_ORPHAN = -2
_NO_PARENT = -3


@numba.njit(cache=True, nogil=True, inline="always")
def _enqueue(queue, start, length, v):
    """Append ``v`` to the circular queue ``queue[start:start + length]``; new length."""
    pos = start + length
    if pos >= queue.shape[0]:
        pos -= queue.shape[0]
    queue[pos] = v
    return length + 1


@numba.njit(cache=True, nogil=True)
def _bk_maxflow(ptr, head, rev, cap, tr, tree, grow_source=True):
    """Boykov-Kolmogorov max-flow on a CSR residual graph, in place.

    Parameters
    ----------
    ptr : (N + 1,) ndarray of int64
        Arcs of node ``i`` are ``ptr[i]:ptr[i + 1]``.
    head : (A,) ndarray of int32 or int64
        Head node of each arc.
    rev : (A,) ndarray of int32 or int64 (the type of ``head``)
        Index of each arc's reverse arc.
    cap : (A,) ndarray of float64
        Residual capacities; updated in place.
    tr : (N,) ndarray of float64
        Signed terminal residuals (``> 0`` from the source, ``< 0`` to the sink), after the
        straight-through flow; updated in place.
    tree : (N,) ndarray of int8
        Output: ``_SOURCE``, ``_SINK`` or ``_FREE`` for every node at the end.

    Returns
    -------
    flow : float
        The flow pushed along augmenting paths (the straight-through part excluded).
    """
    n = tr.shape[0]
    index = head.dtype
    parent = np.full(n, _NO_PARENT, index)
    dist = np.zeros(n, index)
    stamp = np.zeros(n, np.int64)
    queued = np.zeros(n, np.bool_)
    # FIFO ring buffers: a node is at most once in each (``queued`` / parent == _ORPHAN).
    queue = np.empty(n, index)
    q_head = 0
    q_len = 0
    orphans = np.empty(n, index)
    o_head = 0
    o_len = 0

    for i in range(n):
        if tr[i] > 0.0:
            tree[i] = _SOURCE
        elif tr[i] < 0.0:
            tree[i] = _SINK
        else:
            tree[i] = _FREE
            continue
        parent[i] = _TERMINAL
        dist[i] = 1
        if tree[i] == _SOURCE and not grow_source:
            continue
        queued[i] = True
        q_pos = q_head + q_len
        queue[q_pos - n if q_pos >= n else q_pos] = i
        q_len += 1

    flow = 0.0
    time = 0
    cur = -1
    while True:
        # ---- pick the active node to grow from (keep the last one while it still can)
        if cur >= 0 and tree[cur] == _FREE:
            cur = -1
        while cur < 0 and q_len > 0:
            v = queue[q_head]
            q_head += 1
            if q_head == n:
                q_head = 0
            q_len -= 1
            queued[v] = False
            if tree[v] != _FREE:
                cur = v
        if cur < 0:
            break

        # ---- growth
        t_cur = tree[cur]
        mid = -1  # the arc from the S side to the T side of the path found
        for a in range(ptr[cur], ptr[cur + 1]):
            c = cap[a] if t_cur == _SOURCE else cap[rev[a]]
            if c <= 0.0:
                continue
            j = head[a]
            t_j = tree[j]
            if t_j == _FREE:
                tree[j] = t_cur
                parent[j] = rev[a]
                dist[j] = dist[cur] + 1
                stamp[j] = stamp[cur]
                if not queued[j]:
                    queued[j] = True
                    q_pos = q_head + q_len
                    queue[q_pos - n if q_pos >= n else q_pos] = j
                    q_len += 1
            elif t_j != t_cur:
                mid = a if t_cur == _SOURCE else rev[a]
                break
            elif stamp[j] <= stamp[cur] and dist[j] > dist[cur]:
                # ``cur`` is nearer its terminal: re-hang ``j`` under it.
                parent[j] = rev[a]
                stamp[j] = stamp[cur]
                dist[j] = dist[cur] + 1
        if mid < 0:
            cur = -1
            continue

        time += 1

        # ---- augmentation: bottleneck along s -> ... -> s_node -> t_node -> ... -> t
        s_node = head[rev[mid]]
        t_node = head[mid]
        bottleneck = cap[mid]
        v = s_node
        while parent[v] != _TERMINAL:
            a = parent[v]  # v -> parent; the flow runs parent -> v
            c = cap[rev[a]]
            if c < bottleneck:
                bottleneck = c
            v = head[a]
        if tr[v] < bottleneck:
            bottleneck = tr[v]
        v = t_node
        while parent[v] != _TERMINAL:
            a = parent[v]  # v -> parent, the direction of the flow
            c = cap[a]
            if c < bottleneck:
                bottleneck = c
            v = head[a]
        if -tr[v] < bottleneck:
            bottleneck = -tr[v]

        cap[mid] -= bottleneck
        cap[rev[mid]] += bottleneck
        v = s_node
        while parent[v] != _TERMINAL:
            a = parent[v]
            r = rev[a]
            cap[r] -= bottleneck
            cap[a] += bottleneck
            nxt = head[a]
            if cap[r] == 0.0:
                parent[v] = _ORPHAN
                o_len = _enqueue(orphans, o_head, o_len, v)
            v = nxt
        tr[v] -= bottleneck
        if tr[v] == 0.0:
            parent[v] = _ORPHAN
            o_len = _enqueue(orphans, o_head, o_len, v)
        v = t_node
        while parent[v] != _TERMINAL:
            a = parent[v]
            cap[a] -= bottleneck
            cap[rev[a]] += bottleneck
            nxt = head[a]
            if cap[a] == 0.0:
                parent[v] = _ORPHAN
                o_len = _enqueue(orphans, o_head, o_len, v)
            v = nxt
        tr[v] += bottleneck
        if tr[v] == 0.0:
            parent[v] = _ORPHAN
            o_len = _enqueue(orphans, o_head, o_len, v)
        flow += bottleneck

        # ---- adoption
        while o_len > 0:
            v = orphans[o_head]
            o_head += 1
            if o_head == n:
                o_head = 0
            o_len -= 1
            t_v = tree[v]
            best = -1
            best_d = np.iinfo(np.int64).max
            for a in range(ptr[v], ptr[v + 1]):
                j = head[a]
                if tree[j] != t_v:
                    continue
                c = cap[rev[a]] if t_v == _SOURCE else cap[a]
                if c <= 0.0:
                    continue
                # Does j still reach its terminal? Walk up, stopping at a node whose
                # distance is known to be right in this round.
                k = j
                d = 0
                valid = False
                while True:
                    if stamp[k] == time:
                        d += dist[k]
                        valid = True
                        break
                    pa = parent[k]
                    d += 1
                    if pa == _TERMINAL:
                        stamp[k] = time
                        dist[k] = 1
                        valid = True
                        break
                    if pa < 0:  # an orphan above: j is cut off too
                        break
                    k = head[pa]
                if not valid:
                    continue
                if d < best_d:
                    best_d = d
                    best = a
                # Mark the walked path with exact distances for this round.
                k = j
                while stamp[k] != time:
                    stamp[k] = time
                    dist[k] = d
                    d -= 1
                    k = head[parent[k]]
            if best >= 0:
                parent[v] = best
                stamp[v] = time
                dist[v] = best_d + 1
                continue
            # No parent: v becomes free; its children are orphaned, and the neighbours
            # that could grow into it again become active.
            for a in range(ptr[v], ptr[v + 1]):
                j = head[a]
                if tree[j] != t_v:
                    # Only the sink tree grows: a sink node that v can send to must
                    # come back to claim it.
                    if (not grow_source and t_v == _SOURCE and tree[j] == _SINK
                            and cap[a] > 0.0 and not queued[j]):
                        queued[j] = True
                        q_pos = q_head + q_len
                        queue[q_pos - n if q_pos >= n else q_pos] = j
                        q_len += 1
                    continue
                c = cap[rev[a]] if t_v == _SOURCE else cap[a]
                if c > 0.0 and not queued[j] and (grow_source or t_v == _SINK):
                    queued[j] = True
                    q_pos = q_head + q_len
                    queue[q_pos - n if q_pos >= n else q_pos] = j
                    q_len += 1
                pa = parent[j]
                if pa >= 0 and head[pa] == v:
                    parent[j] = _ORPHAN
                    o_len = _enqueue(orphans, o_head, o_len, j)
            tree[v] = _FREE
            parent[v] = _NO_PARENT
    return flow


@numba.njit(cache=True, nogil=True)
def _arcs(n, edges, index):
    """CSR arcs of the edges: ``(ptr, head, rev, forward)``, ``forward[e]`` the arc
    ``a -> b`` of edge ``e`` (-1 for a self-loop), its reverse ``rev[forward[e]]``."""
    m = edges.shape[0]
    ptr = np.zeros(n + 1, np.int64)
    for e in range(m):
        if edges[e, 0] != edges[e, 1]:
            ptr[edges[e, 0] + 1] += 1
            ptr[edges[e, 1] + 1] += 1
    for i in range(n):
        ptr[i + 1] += ptr[i]
    head = np.empty(ptr[n], index)
    rev = np.empty(ptr[n], index)
    forward = np.full(m, -1, np.int64)
    fill = ptr[:n].copy()
    for e in range(m):
        a = edges[e, 0]
        b = edges[e, 1]
        if a == b:
            continue
        pa = fill[a]
        pb = fill[b]
        fill[a] = pa + 1
        fill[b] = pb + 1
        head[pa] = b
        rev[pa] = pb
        head[pb] = a
        rev[pb] = pa
        forward[e] = pa
    return ptr, head, rev, forward


@numba.njit(cache=True, nogil=True)
def _residual_graph(n, edges, w_forward, w_backward, index):
    """CSR residual graph ``(ptr, head, rev, cap)`` of the edges, self-loops dropped.

    ``_arcs``'s graph with capacities: edge ``(a, b)`` gives the arc ``a -> b``
    (``w_forward``) in ``a``'s row and ``b -> a`` (``w_backward``) in ``b``'s. ``head`` and
    ``rev`` have the integer type ``index`` (int32 where it can number the arcs: less
    memory).
    """
    ptr, head, rev, forward = _arcs(n, edges, index)
    cap = np.empty(head.shape[0], np.float64)
    for e in range(edges.shape[0]):
        f = forward[e]
        if f >= 0:
            cap[f] = w_forward[e]
            cap[rev[f]] = w_backward[e]
    return ptr, head, rev, cap


def _capacities(name, values, size):
    out = np.asarray(values, dtype=np.float64).reshape(-1)
    if out.shape[0] != size:
        raise ValueError(f"{name} must have {size} entries, got {out.shape[0]}")
    if not np.isfinite(out).all():
        raise ValueError(f"{name} must be finite")
    if (out < 0).any():
        raise ValueError(f"{name} must be non-negative")
    return out


def min_cut(source_cap, sink_cap, edges, w_forward, w_backward=None):
    """Minimum s-t cut of a graph with terminal capacities and pairwise edges.

    Parameters
    ----------
    source_cap, sink_cap : (N,) array_like of float
        Capacities ``s -> i`` and ``i -> t``, finite and non-negative.
    edges : (E, 2) array_like of int
        Node pairs ``(a, b)``; self-loops are ignored.
    w_forward : (E,) array_like of float
        Capacity ``a -> b`` of every edge, finite and non-negative.
    w_backward : (E,) array_like of float, optional
        Capacity ``b -> a``; ``w_forward`` when omitted.

    Returns
    -------
    flow : float
        The maximum flow, equal to the capacity of the minimum cut.
    sink_side : (N,) ndarray of bool
        True where the node is on the sink side of the cut (PyMaxflow's
        ``get_grid_segments`` convention). Of the minimum cuts, this is the one with the
        fewest nodes on the sink side: the nodes that can still send flow to the sink.
    """
    source = _capacities("source_cap", source_cap, np.size(source_cap))
    n = source.shape[0]
    sink = _capacities("sink_cap", sink_cap, n)
    edges = np.asarray(edges)
    if edges.size == 0:
        edges = np.zeros((0, 2), np.int64)
    if edges.ndim != 2 or edges.shape[1] != 2:
        raise ValueError(f"edges must have shape (E, 2), got {edges.shape}")
    if not np.issubdtype(edges.dtype, np.integer):
        raise TypeError(f"edges must be integers, got {edges.dtype}")
    edges = np.ascontiguousarray(edges, np.int64)
    if edges.size and (edges.min() < 0 or edges.max() >= n):
        raise ValueError(f"edges must index nodes in [0, {n})")
    m = edges.shape[0]
    forward = _capacities("w_forward", w_forward, m)
    backward = forward if w_backward is None else _capacities("w_backward", w_backward, m)

    straight = np.minimum(source, sink)
    tr = source - sink
    tree = np.zeros(n, np.int8)
    if n == 0:
        return 0.0, np.zeros(0, bool)
    index = np.int32 if max(2 * m, n) < np.iinfo(np.int32).max else np.int64
    ptr, head, rev, cap = _residual_graph(n, edges, forward, backward, index)
    flow = _bk_maxflow(ptr, head, rev, cap, tr, tree)
    return float(straight.sum() + flow), tree == _SINK


def binary_energy_min(cost0, cost1, edges, w):
    """Exact minimiser of ``sum_i cost_{x_i}(i) + sum_e w_e [x_a != x_b]`` over ``x`` binary.

    With ``w >= 0`` the energy is submodular and one minimum cut minimises it: a node on the
    source side takes label 0 and cuts its arc to the sink (capacity ``cost0 - m``), a node
    on the sink side takes label 1 and cuts its arc from the source (``cost1 - m``), with
    ``m = min(cost0, cost1)`` per node so that the capacities are non-negative; an edge
    whose ends differ cuts one of its two arcs, each of capacity ``w_e``.

    Parameters
    ----------
    cost0, cost1 : (N,) array_like of float
        Unary costs of labels 0 and 1 (finite, of any sign).
    edges : (E, 2) array_like of int
    w : (E,) array_like of float
        Potts weights, non-negative.

    Returns
    -------
    labels : (N,) ndarray of int64
        A minimising labelling (label 1 on the sink side).
    energy : float
        Its energy.
    """
    cost0 = np.asarray(cost0, np.float64).reshape(-1)
    cost1 = np.asarray(cost1, np.float64).reshape(-1)
    if cost0.shape != cost1.shape:
        raise ValueError(f"cost0 and cost1 differ in size: {cost0.size} vs {cost1.size}")
    if not (np.isfinite(cost0).all() and np.isfinite(cost1).all()):
        raise ValueError("costs must be finite")
    low = np.minimum(cost0, cost1)
    _, sink_side = min_cut(cost1 - low, cost0 - low, edges, w)
    labels = sink_side.astype(np.int64)
    edges = np.asarray(edges, np.int64).reshape(-1, 2)
    w = np.asarray(w, np.float64).reshape(-1)
    energy = np.where(labels == 1, cost1, cost0).sum()
    if edges.size:
        energy += np.sum(w[labels[edges[:, 0]] != labels[edges[:, 1]]])
    return labels, float(energy)
