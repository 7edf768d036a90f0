"""Types and small helpers shared by the rigid-body Taichi kernels (float64 throughout).

Taichi types bare float literals with the session's default float, which is f32 unless the MPM side
asked for f64: `x * 0.1` with x f64 multiplies by 0.1f. Every constant that is not exact in f32 is
therefore written `F(...)` (ti.f64), and every vector or matrix is built from the f64 types below.
"""

# No `from __future__ import annotations`: Taichi reads the functions' annotations (ti.template()).
from ...backend import ti

F = ti.f64
vec2 = ti.types.vector(2, F)
vec3 = ti.types.vector(3, F)
vec4 = ti.types.vector(4, F)
vec8 = ti.types.vector(8, F)
mat3 = ti.types.matrix(3, 3, F)

# ndarray argument types of the kernels
arr2 = ti.types.ndarray(dtype=F, ndim=2)
arr3 = ti.types.ndarray(dtype=F, ndim=3)
arr4 = ti.types.ndarray(dtype=F, ndim=4)
iarr1 = ti.types.ndarray(dtype=ti.i32, ndim=1)
iarr2 = ti.types.ndarray(dtype=ti.i32, ndim=2)

TINY = 1e-300  # floor of divisions by norms that can vanish (exact zero stays finite)


@ti.func
def get3(a: ti.template(), i, j, k):
    """a[i, j, k:k+3] of a 3-index ndarray as a vector."""
    return vec3(a[i, j, k], a[i, j, k + 1], a[i, j, k + 2])


@ti.func
def put3(a: ti.template(), i, j, k, v):
    for m in ti.static(range(3)):
        a[i, j, k + m] = v[m]


@ti.func
def get33(a: ti.template(), i, j, k):
    """a[i, j, k:k+9] of a 3-index ndarray as a row-major 3×3 matrix."""
    return mat3([[a[i, j, k], a[i, j, k + 1], a[i, j, k + 2]], [a[i, j, k + 3], a[i, j, k + 4], a[i, j, k + 5]],
                 [a[i, j, k + 6], a[i, j, k + 7], a[i, j, k + 8]]])


@ti.func
def put33(a: ti.template(), i, j, k, m):
    for r, c in ti.static(ti.ndrange(3, 3)):
        a[i, j, k + 3 * r + c] = m[r, c]


@ti.func
def identity3():
    return mat3([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


@ti.func
def skew(v):
    """[v]× (3, 3): [v]× a = v × a."""
    return mat3([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


@ti.func
def outer(a, b):
    return mat3([[a[0] * b[0], a[0] * b[1], a[0] * b[2]],
                 [a[1] * b[0], a[1] * b[1], a[1] * b[2]],
                 [a[2] * b[0], a[2] * b[1], a[2] * b[2]]])


@ti.func
def quat_matrix(q):
    """Rotation matrix (body → world) of the unit quaternion q = (w, x, y, z)."""
    w = q[0]
    u = vec3(q[1], q[2], q[3])
    return (w * w - u.dot(u)) * identity3() + 2.0 * outer(u, u) + 2.0 * w * skew(u)


@ti.func
def quat_multiply(p, q):
    pv = vec3(p[1], p[2], p[3])
    qv = vec3(q[1], q[2], q[3])
    v = p[0] * qv + q[0] * pv + pv.cross(qv)
    return vec4(p[0] * q[0] - pv.dot(qv), v[0], v[1], v[2])


@ti.func
def root(om, dt):
    """√(4/dt² − |ω|²): the scalar part of the step rotation ℓ(ω), times 2/dt."""
    return ti.sqrt(4.0 / (dt * dt) - om.dot(om))


@ti.func
def arrow(x):
    """Arrow matrix of the second-order cone's Jordan product: x ∘ y = Arrow(x) y."""
    return mat3([[x[0], x[1], x[2]], [x[1], x[0], 0.0], [x[2], 0.0, x[0]]])


@ti.func
def jordan(a, b):
    """a ∘ b = (a·b, a₀ b₁₂ + b₀ a₁₂)."""
    return vec3(a.dot(b), a[0] * b[1] + b[0] * a[1], a[0] * b[2] + b[0] * a[2])


@ti.func
def inverse3(m):
    """Inverse of a 3×3 matrix by cofactors."""
    c00 = m[1, 1] * m[2, 2] - m[1, 2] * m[2, 1]
    c01 = m[1, 2] * m[2, 0] - m[1, 0] * m[2, 2]
    c02 = m[1, 0] * m[2, 1] - m[1, 1] * m[2, 0]
    det = m[0, 0] * c00 + m[0, 1] * c01 + m[0, 2] * c02
    inv = mat3([[c00, m[0, 2] * m[2, 1] - m[0, 1] * m[2, 2], m[0, 1] * m[1, 2] - m[0, 2] * m[1, 1]],
                [c01, m[0, 0] * m[2, 2] - m[0, 2] * m[2, 0], m[0, 2] * m[1, 0] - m[0, 0] * m[1, 2]],
                [c02, m[0, 1] * m[2, 0] - m[0, 0] * m[2, 1], m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]]])
    return inv / det


# The symbolic table of a reduced system (runner.symbolic_lu), int32: a header [n, L entries, U entries,
# pattern entries], then the elimination order (n), the start of each step's L and U index lists (n + 1
# each), the L lists (rows below the pivot), the U lists (columns right of the pivot), and the pattern
# with its fill-in (flat i·n + j: the entries to zero before assembly).
SYM_ORDER = 4


@ti.func
def o(sym: ti.template(), k):
    """The k-th unknown of the elimination order."""
    return sym[SYM_ORDER + k]


@ti.func
def sparse_lu_factor(A: ti.template(), sym: ti.template(), b, n):
    """In-place LU of A[b] without pivoting over the precomputed pattern of `sym` (its fill-in included):
    O(entries) work. Returns 0 (A partly overwritten) when a pivot is zero or smaller than 1e-8 of the
    largest entry below it, for the caller to refactorize with partial pivoting (lu_factor)."""
    lp, up = SYM_ORDER + n, SYM_ORDER + 2 * n + 1
    li = SYM_ORDER + 3 * n + 2
    ui = li + sym[1]
    ok = 1
    for kk in range(n):
        k = sym[SYM_ORDER + kk]
        pivot = A[b, k, k]
        big = F(0.0)
        for t in range(sym[lp + kk], sym[lp + kk + 1]):
            big = ti.max(big, ti.abs(A[b, sym[li + t], k]))
        if not (ti.abs(pivot) > F(1e-8) * big and pivot != 0):
            ok = 0
            break
        for t in range(sym[lp + kk], sym[lp + kk + 1]):
            i = sym[li + t]
            f = A[b, i, k] / pivot
            A[b, i, k] = f
            if f != 0:
                for u in range(sym[up + kk], sym[up + kk + 1]):
                    j = sym[ui + u]
                    A[b, i, j] -= f * A[b, k, j]
    return ok


@ti.func
def sparse_lu_solve(A: ti.template(), sym: ti.template(), x: ti.template(), b, n, transposed):
    """Solve A x = rhs (transposed = 0) or Aᵀ x = rhs (1) with the factors of sparse_lu_factor, x[b, :n]
    the right-hand side on entry, the solution on exit: O(entries)."""
    lp, up = SYM_ORDER + n, SYM_ORDER + 2 * n + 1
    li = SYM_ORDER + 3 * n + 2
    ui = li + sym[1]
    if transposed == 0:
        for kk in range(n):  # L (unit lower), by columns
            k = sym[SYM_ORDER + kk]
            xk = x[b, k]
            for t in range(sym[lp + kk], sym[lp + kk + 1]):
                i = sym[li + t]
                x[b, i] -= A[b, i, k] * xk
        for q in range(n):  # U, by rows from the last
            kk = n - 1 - q
            k = sym[SYM_ORDER + kk]
            s = x[b, k]
            for u in range(sym[up + kk], sym[up + kk + 1]):
                j = sym[ui + u]
                s -= A[b, k, j] * x[b, j]
            x[b, k] = s / A[b, k, k]
    else:
        for kk in range(n):  # Uᵀ (lower), by columns
            k = sym[SYM_ORDER + kk]
            xk = x[b, k] / A[b, k, k]
            x[b, k] = xk
            for u in range(sym[up + kk], sym[up + kk + 1]):
                j = sym[ui + u]
                x[b, j] -= A[b, k, j] * xk
        for q in range(n):  # Lᵀ (unit upper), by rows from the last
            kk = n - 1 - q
            k = sym[SYM_ORDER + kk]
            s = x[b, k]
            for t in range(sym[lp + kk], sym[lp + kk + 1]):
                i = sym[li + t]
                s -= A[b, i, k] * x[b, i]
            x[b, k] = s


@ti.func
def zero_pattern(A: ti.template(), sym: ti.template(), b, n):
    """Zero the entries of A[b] in the pattern of `sym` (the only ones sparse_lu_factor reads)."""
    z = SYM_ORDER + 3 * n + 2 + sym[1] + sym[2]
    for t in range(sym[3]):
        e = sym[z + t]
        A[b, e // n, e % n] = 0.0


@ti.func
def lu_factor(A: ti.template(), piv: ti.template(), sym: ti.template(), b, n):
    """In-place LU with partial pivoting of A[b, :n, :n] (an ndarray of worlds' matrices) in the order of
    the symbolic table `sym` (SYM_ORDER: a permutation of 0 … n−1 applied to rows and columns alike, so
    the factors are those of P A Pᵀ); piv[b, k] the (ordered) row swapped into k, piv[b, n:2n] scratch.
    The fallback of sparse_lu_factor: a row with nothing below the pivot is skipped, and the update runs
    over the pivot row's nonzero columns only."""
    for k in range(n):
        p = k
        ok = o(sym, k)
        big = ti.abs(A[b, ok, ok])
        for i in range(k + 1, n):
            if ti.abs(A[b, o(sym, i), ok]) > big:
                big = ti.abs(A[b, o(sym, i), ok])
                p = i
        piv[b, k] = p
        if p != k:
            op = o(sym, p)
            for j in range(n):
                tmp = A[b, ok, o(sym, j)]
                A[b, ok, o(sym, j)] = A[b, op, o(sym, j)]
                A[b, op, o(sym, j)] = tmp
        nnz = 0
        for j in range(k + 1, n):
            if A[b, ok, o(sym, j)] != 0:
                piv[b, n + nnz] = o(sym, j)
                nnz += 1
        pivot = A[b, ok, ok]
        for i in range(k + 1, n):
            oi = o(sym, i)
            f = A[b, oi, ok] / pivot
            A[b, oi, ok] = f
            if f != 0:
                for jj in range(nnz):
                    j = piv[b, n + jj]
                    A[b, oi, j] -= f * A[b, ok, j]


@ti.func
def lu_solve(A: ti.template(), piv: ti.template(), sym: ti.template(), x: ti.template(), b, n):
    """Solve with the factors of lu_factor, x[b, :n] the right-hand side on entry, the solution on exit."""
    for k in range(n):
        p = piv[b, k]
        if p != k:
            tmp = x[b, o(sym, k)]
            x[b, o(sym, k)] = x[b, o(sym, p)]
            x[b, o(sym, p)] = tmp
    for i in range(n):
        oi = o(sym, i)
        s = x[b, oi]
        for j in range(i):
            if A[b, oi, o(sym, j)] != 0:
                s -= A[b, oi, o(sym, j)] * x[b, o(sym, j)]
        x[b, oi] = s
    for ii in range(n):
        i = n - 1 - ii
        oi = o(sym, i)
        s = x[b, oi]
        for j in range(i + 1, n):
            s -= A[b, oi, o(sym, j)] * x[b, o(sym, j)]
        x[b, oi] = s / A[b, oi, oi]


@ti.func
def lu_solve_transposed(A: ti.template(), piv: ti.template(), sym: ti.template(), x: ti.template(), b, n):
    """Solve Aᵀ y = x with the factors of lu_factor (P A Pᵀ = Πᵀ L U, Π the row swaps, so
    Aᵀ = Pᵀ Uᵀ Lᵀ Π P): x[b, :n] the right-hand side on entry, y on exit."""
    for i in range(n):  # Uᵀ (lower triangular)
        oi = o(sym, i)
        s = x[b, oi]
        for j in range(i):
            s -= A[b, o(sym, j), oi] * x[b, o(sym, j)]
        x[b, oi] = s / A[b, oi, oi]
    for ii in range(n):  # Lᵀ (upper triangular, unit diagonal)
        i = n - 1 - ii
        oi = o(sym, i)
        s = x[b, oi]
        for j in range(i + 1, n):
            if A[b, o(sym, j), oi] != 0:
                s -= A[b, o(sym, j), oi] * x[b, o(sym, j)]
        x[b, oi] = s
    for kk in range(n):  # the row swaps, transposed: in reverse order
        k = n - 1 - kk
        p = piv[b, k]
        if p != k:
            tmp = x[b, o(sym, k)]
            x[b, o(sym, k)] = x[b, o(sym, p)]
            x[b, o(sym, p)] = tmp


# Taichi 1.7's CPU backend gives each task of a parallel loop at least this many iterations (its adaptive
# block size): a loop over fewer than twice as many worlds runs on one core. runner.spread pads the world
# loop to CPU_TASK_ITEMS × tasks iterations and world_of deals the worlds out across the tasks.
CPU_TASK_ITEMS = 512


@ti.func
def world_of(item, tasks):
    """The world that iteration `item` of a padded world loop steps (tasks = 1: the loop is not padded);
    ≥ B for padding."""
    b = item
    if tasks > 1:
        b = (item % CPU_TASK_ITEMS) * tasks + item // CPU_TASK_ITEMS
    return b


PI = 3.141592653589793


@ti.func
def atan2(y, x):
    """atan2(y, x) in float64 from arithmetic and square roots only (SPIR-V's GLSL.std.450 has no 64-bit
    Atan2, so Vulkan needs this; one code path everywhere). atan of r = min/max(|x|, |y|) ∈ [0, 1] after
    three half-angle reductions atan(r) = 2 atan(r / (1 + √(1 + r²))) (|r| ≤ tan(π/32) < 0.1), then its
    Taylor series to r¹⁷ (truncation < 0.1¹⁹/19), then the octant. atan2(0, 0) = 0."""
    ax, ay = ti.abs(x), ti.abs(y)
    big, small = ti.max(ax, ay), ti.min(ax, ay)
    result = F(0.0)
    if big > 0:
        r = small / big
        for _ in ti.static(range(3)):
            r = r / (1.0 + ti.sqrt(1.0 + r * r))
        r2 = r * r
        series = F(0.0)
        for k in ti.static(range(8, -1, -1)):   # Horner: Σ (−1)ᵏ r²ᵏ / (2k + 1)
            series = series * r2 + F((-1.0) ** k / (2 * k + 1))
        a = 8.0 * r * series
        if ay > ax:
            a = F(PI / 2) - a
        if x < 0:
            a = F(PI) - a
        result = -a if y < 0 else a
    return result
