"""Grid boundary conditions: domain walls and analytic colliders, as Taichi functions the grid-update
kernel inlines. Both project a grid node's velocity; both use one Coulomb friction rule."""


import taichi as ti

from ..colliders import BOX, CYLINDER, MODES, PLANE, SPHERE

SEPARATE, SLIP, STICKY = MODES["separate"], MODES["slip"], MODES["sticky"]


@ti.func
def project_velocity(v_rel, normal, mode: ti.template(), friction):
    """Velocity relative to a boundary after contact (normal points out of the solid).

    separate: change only an inward-moving velocity; slip: remove the normal part always;
    sticky: zero. Coulomb friction shrinks the tangential part by μ·|v_n| when pressed (v_n < 0).
    """
    out = v_rel
    if ti.static(mode == STICKY):
        out = ti.zero(v_rel)
    else:
        vn = v_rel.dot(normal)
        if ti.static(mode == SLIP) or vn < 0:
            v_t = v_rel - vn * normal
            if vn < 0:
                t_sq = v_t.norm_sqr()
                if t_sq > 0:  # sqrt only here: its derivative at 0 is infinite (NaN adjoints)
                    v_t = v_t * ti.max(0.0, 1 + friction * vn / ti.sqrt(t_sq))
            out = v_t
    return out


@ti.func
def wall_velocity(I, v, n_grid: ti.template(), bound: ti.template(), modes: ti.template(), friction):
    """Apply the domain walls to the grid velocity v at node I. modes: static ((lo, hi) per axis)."""
    dim = ti.static(len(modes))
    for a in ti.static(range(dim)):
        for side in ti.static(range(2)):
            if (side == 0 and I[a] <= bound) or (side == 1 and I[a] >= n_grid - bound):
                normal = ti.Vector.unit(dim, a, float) * (1.0 if ti.static(side == 0) else -1.0)
                v = project_velocity(v, normal, modes[a][side], friction)
    return v


@ti.func
def signed_distance(kind: ti.template(), r, params):
    """Signed distance (m) of r = x − origin to a collider of static `kind`, and its unit normal."""
    dim = ti.static(r.get_shape()[0])
    phi = 0.0
    normal = ti.Vector.zero(float, dim)
    if ti.static(kind == PLANE):
        for d in ti.static(range(dim)):
            normal[d] = params[d]
        phi = r.dot(normal)
    elif ti.static(kind == SPHERE):
        dist = r.norm()
        phi = dist - params[0]
        if dist > 0:
            normal = r / dist
    elif ti.static(kind == BOX):
        half = ti.Vector([params[d] for d in ti.static(range(dim))], dt=float)
        q = ti.abs(r) - half
        outside = ti.max(q, 0.0)
        phi = outside.norm() + ti.min(q.max(), 0.0)
        sign = ti.Vector([1.0 if r[d] >= 0 else -1.0 for d in ti.static(range(dim))], dt=float)
        if q.max() > 0:
            normal = sign * outside / outside.norm()
        else:  # inside: push out through the nearest face
            axis = 0
            for d in ti.static(range(1, dim)):
                if q[d] > q[axis]:
                    axis = d
            for d in ti.static(range(dim)):
                if d == axis:
                    normal[d] = sign[d]
    elif ti.static(kind == CYLINDER):
        axis = ti.Vector([params[0], params[1], params[2]], dt=float)
        along = r.dot(axis)
        radial_vec = r - along * axis
        radial = radial_vec.norm()
        radial_dir = radial_vec / radial if radial > 0 else ti.Vector.zero(float, 3)
        q = ti.Vector([radial - params[3], ti.abs(along) - params[4]], dt=float)
        outside = ti.max(q, 0.0)
        phi = outside.norm() + ti.min(q.max(), 0.0)
        cap = axis * (1.0 if along >= 0 else -1.0)
        if q.max() > 0:
            normal = (outside[0] * radial_dir + outside[1] * cap) / outside.norm()
        elif q[0] > q[1]:
            normal = radial_dir
        else:
            normal = cap
    return phi, normal


@ti.func
def collider_velocity(x, v, colliders: ti.template(), s, origin, velocity, params, friction):
    """Apply every collider (static list of (kind, mode)) to grid velocity v at position x, with the
    colliders' origins and velocities of substep slot s (origin[s, c], velocity[s, c])."""
    for c in ti.static(range(len(colliders))):
        kind, mode = ti.static(colliders[c])
        phi, normal = signed_distance(kind, x - origin[s, c], params[c])
        if phi < 0:
            v = velocity[s, c] + project_velocity(v - velocity[s, c], normal, mode, friction[c])
    return v
