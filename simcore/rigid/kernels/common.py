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


@ti.func
def lu_factor(A: ti.template(), piv: ti.template(), o: ti.template(), b, n):
    """In-place LU with partial pivoting of A[b, :n, :n] (an ndarray of worlds' matrices) in the order o
    (a permutation of 0 … n−1 applied to rows and columns alike: the factors are those of P A Pᵀ);
    piv[b, k] the (ordered) row swapped into k, piv[b, n:2n] scratch. The reduced systems of mechanisms
    are sparse and, in a good order (runner.elimination_order), fill in little: a row with nothing below
    the pivot is skipped, and the update runs over the pivot row's nonzero columns only."""
    for k in range(n):
        p = k
        ok = o[k]
        big = ti.abs(A[b, ok, ok])
        for i in range(k + 1, n):
            if ti.abs(A[b, o[i], ok]) > big:
                big = ti.abs(A[b, o[i], ok])
                p = i
        piv[b, k] = p
        if p != k:
            op = o[p]
            for j in range(n):
                tmp = A[b, ok, o[j]]
                A[b, ok, o[j]] = A[b, op, o[j]]
                A[b, op, o[j]] = tmp
        nnz = 0
        for j in range(k + 1, n):
            if A[b, ok, o[j]] != 0:
                piv[b, n + nnz] = o[j]
                nnz += 1
        pivot = A[b, ok, ok]
        for i in range(k + 1, n):
            oi = o[i]
            f = A[b, oi, ok] / pivot
            A[b, oi, ok] = f
            if f != 0:
                for jj in range(nnz):
                    j = piv[b, n + jj]
                    A[b, oi, j] -= f * A[b, ok, j]


@ti.func
def lu_solve(A: ti.template(), piv: ti.template(), o: ti.template(), x: ti.template(), b, n):
    """Solve with the factors of lu_factor (order o), x[b, :n] the right-hand side on entry, the solution
    on exit."""
    for k in range(n):
        p = piv[b, k]
        if p != k:
            tmp = x[b, o[k]]
            x[b, o[k]] = x[b, o[p]]
            x[b, o[p]] = tmp
    for i in range(n):
        oi = o[i]
        s = x[b, oi]
        for j in range(i):
            if A[b, oi, o[j]] != 0:
                s -= A[b, oi, o[j]] * x[b, o[j]]
        x[b, oi] = s
    for ii in range(n):
        i = n - 1 - ii
        oi = o[i]
        s = x[b, oi]
        for j in range(i + 1, n):
            s -= A[b, oi, o[j]] * x[b, o[j]]
        x[b, oi] = s / A[b, oi, oi]


@ti.func
def lu_solve_transposed(A: ti.template(), piv: ti.template(), o: ti.template(), x: ti.template(), b, n):
    """Solve Aᵀ y = x with the factors of lu_factor (order o; P A Pᵀ = L U up to the row swaps, so
    Aᵀ = Pᵀ (Uᵀ Lᵀ Π) P): x[b, :n] the right-hand side on entry, y on exit."""
    for i in range(n):  # Uᵀ (lower triangular)
        oi = o[i]
        s = x[b, oi]
        for j in range(i):
            s -= A[b, o[j], oi] * x[b, o[j]]
        x[b, oi] = s / A[b, oi, oi]
    for ii in range(n):  # Lᵀ (upper triangular, unit diagonal)
        i = n - 1 - ii
        oi = o[i]
        s = x[b, oi]
        for j in range(i + 1, n):
            if A[b, o[j], oi] != 0:
                s -= A[b, o[j], oi] * x[b, o[j]]
        x[b, oi] = s
    for kk in range(n):  # the row swaps, transposed: in reverse order
        k = n - 1 - kk
        p = piv[b, k]
        if p != k:
            tmp = x[b, o[k]]
            x[b, o[k]] = x[b, o[p]]
            x[b, o[p]] = tmp


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
