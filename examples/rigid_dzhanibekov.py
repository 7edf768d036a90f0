"""The Dzhanibekov (tennis-racket) effect: a free box spun about its intermediate principal axis flips.

A 1 kg box of 0.3 × 0.2 × 0.1 m (principal moments I₁ < I₂ < I₃ about x, y, z) floats without gravity,
spinning at Ω about y, the intermediate axis, with a tiny spin ε·Ω about x and z. Torque-free rotation about
the intermediate axis is unstable (Euler's equations, Landau & Lifshitz, Mechanics §37): the body-frame
angular velocity component along y, ω₂ ∝ sn(λt, k), reverses sign every half period 2K(k)/λ, with

    λ = √((I₃ − I₂)(L² − 2EI₁) / (I₁I₂I₃)),   k² = (I₂ − I₁)(2EI₃ − L²) / ((I₃ − I₂)(L² − 2EI₁))

(for L² > 2EI₂; the roles of I₁ and I₃ swap otherwise), while the kinetic energy E and the angular momentum
L (world frame) stay constant. Spins about x (minor) and z (major) axes are stable: their perturbation stays
of order ε. Printed: the flip times against 2K/λ, the drift of E and |L|, and the stable spins' wobble.

    python examples/rigid_dzhanibekov.py
    python examples/rigid_dzhanibekov.py --quick
"""

import argparse
import math

import numpy as np
import torch
from scipy.special import ellipk

import simcore.rigid as rigid
from simcore.rigid import quaternion as quat

SIZE, MASS = (0.3, 0.2, 0.1), 1.0   # m, kg


def moments(size=SIZE, mass=MASS):
    """Principal moments (3,) kg·m² of a solid box about its body axes."""
    a, b, c = size
    return mass / 12 * np.array([b * b + c * c, a * a + c * c, a * a + b * b])


def spin(axis=1, omega=10.0, epsilon=1e-3, dt=0.005, seconds=4.0):
    """Simulate the free box spun at `omega` rad/s about body axis `axis` (0 x, 1 y, 2 z) with a spin
    epsilon·omega about the two others. Returns (time (n,) s, body-frame ω (n, 3) rad/s, kinetic energy
    ½ωᵀIω (n,) J, world angular momentum (n − 1, 3) kg·m²/s, `discrete_momentum`)."""
    w0 = np.full(3, epsilon * omega)
    w0[axis] = omega
    world = rigid.World(dt=dt, gravity=(0, 0, 0), rtol=1e-12)
    world.add(rigid.Box(size=SIZE, mass=MASS, angular_velocity=w0))
    traj = world.run(steps=int(round(seconds / dt)))
    R = quat.to_matrix(torch.as_tensor(traj.orientation[:, 0])).numpy()   # (n, 3, 3)
    w_body = np.einsum("nji,nj->ni", R, traj.angular_velocity[:, 0])
    inertia = moments()
    energy = 0.5 * (inertia * w_body**2).sum(-1)
    return traj.time, w_body, energy, discrete_momentum(R, w_body, inertia, dt)


def discrete_momentum(R, w_body, inertia, dt):
    """World-frame angular momentum (n − 1, 3) kg·m²/s of the step integrator, conserved to round-off
    without torque: π_k = R_k (dt/2)(√(4/dt² − |ω|²) Iω + ω × Iω) with ω = ω_{k+1} the body-frame rate of the
    step from q_k to q_{k+1} (the discrete Legendre transform of the scheme's rotational equation, Dojo
    eq. 9 / integrator.py; → R I ω as dt → 0). R: (n, 3, 3); w_body: (n, 3) (row k: the step reaching k)."""
    w = w_body[1:]
    Iw = inertia * w
    root = np.sqrt(4 / dt**2 - (w * w).sum(-1, keepdims=True))
    return np.einsum("nij,nj->ni", R[:-1], 0.5 * dt * (root * Iw + np.cross(w, Iw)))


def flip_half_period(w0, inertia=None):
    """2K(k)/λ s: the time between successive sign changes of the intermediate-axis component ω₂ of a
    torque-free body with body-frame angular velocity w0 (3,) rad/s (I₁ < I₂ < I₃, Landau & Lifshitz §37)."""
    I1, I2, I3 = moments() if inertia is None else inertia
    w0 = np.asarray(w0, dtype=np.float64)
    L2 = float(((np.array([I1, I2, I3]) * w0) ** 2).sum())
    E2 = float((np.array([I1, I2, I3]) * w0**2).sum())      # 2E
    if L2 < E2 * I2:       # the motion encircles the minor axis: exchange the roles of I₁ and I₃
        I1, I3 = I3, I1
    lam = math.sqrt((I3 - I2) * (L2 - E2 * I1) / (I1 * I2 * I3))
    k2 = (I2 - I1) * (E2 * I3 - L2) / ((I3 - I2) * (L2 - E2 * I1))
    return 2 * ellipk(k2) / lam       # scipy's ellipk takes the parameter m = k²


def sign_changes(time, values):
    """Times (s) where `values` changes sign (linear interpolation)."""
    s = np.sign(values)
    i = np.nonzero(s[:-1] * s[1:] < 0)[0]
    return time[i] - values[i] * (time[i + 1] - time[i]) / (values[i + 1] - values[i])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Ω = 20 rad/s for 1.2 s at dt = 0.01 s (tests)")
    parser.add_argument("--omega", type=float, default=10.0, help="spin rate, rad/s")
    parser.add_argument("--epsilon", type=float, default=1e-3, help="relative perturbation")
    parser.add_argument("--dt", type=float, default=0.005)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    if args.quick:
        args.omega, args.dt, args.seconds = 20.0, 0.01, 1.2
    t, w, energy, momentum = spin(1, args.omega, args.epsilon, args.dt, args.seconds)
    flips = sign_changes(t, w[:, 1])
    w0 = np.array([args.epsilon * args.omega, args.omega, args.epsilon * args.omega])
    print(f"moments I = {moments().round(6).tolist()} kg·m²; spin {args.omega:g} rad/s about y (intermediate)")
    print(f"ω_y sign changes at t = {np.round(flips, 3).tolist()} s; intervals "
          f"{np.round(np.diff(flips), 4).tolist()} s; law 2K(k)/λ = {flip_half_period(w0):.4f} s")
    L = np.linalg.norm(momentum, axis=1)
    print(f"energy drift {np.abs(energy - energy[0]).max() / energy[0]:.2e} relative; |L| drift "
          f"{np.abs(L - L[0]).max() / L[0]:.2e}; largest |L − L₀| / |L₀| {np.linalg.norm(momentum - momentum[0], axis=1).max() / L[0]:.2e}")
    for axis, name in ((0, "x (minor)"), (2, "z (major)")):
        _, ws, _, _ = spin(axis, args.omega, args.epsilon, args.dt, args.seconds)
        others = np.delete(ws, axis, axis=1)
        print(f"spin about {name}: largest transverse ω {np.abs(others).max() / args.omega:.2e} Ω "
              f"(start {args.epsilon:g} Ω); ω along the axis keeps its sign: {bool((ws[:, axis] > 0).all())}")


if __name__ == "__main__":
    main()
