"""Renders and energy plots (simcore.viz): the files hold the frames asked for, at the size asked for,
with the particles drawn where and in the colours they should be; the energy diagnostics equal their
formulas on a free fall solved by hand."""

import os

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb

import simcore as sc
from simcore import viz
from simcore.viz import plot_energy, render

FRAME_DT = 1 / 60
C0, C1 = (np.array(to_rgb(c)) * 255 for c in ("tab:blue", "tab:orange"))  # the first two body colours


def lattice_square(corner, side=0.2, spacing=0.01, dim=2):
    g = (np.arange(round(side / spacing)) + 0.5) * spacing
    return np.stack(np.meshgrid(*[g] * dim), -1).reshape(-1, dim) + corner


def two_bodies(frames=4, velocity=True):
    """'jelly' (upper left) and 'sand' (lower right), 0.2 m squares of 400 particles at 0.01 m spacing,
    sliding down at 0.6 m/s; the sand speeds up by 0.6 m/s per frame, the jelly keeps 0.6 m/s."""
    x0 = np.concatenate([lattice_square((0.1, 0.55)), lattice_square((0.6, 0.2))])
    n = len(x0)
    body_id = np.repeat([0, 1], n // 2)
    t = np.arange(frames + 1) * FRAME_DT
    v = np.zeros((frames + 1, n, 2))
    v[:, :, 1] = -0.6 * np.where(body_id == 1, np.arange(frames + 1)[:, None] + 1, 1.0)
    x = x0 + np.concatenate([[np.zeros((n, 2))], np.cumsum(v[1:] * FRAME_DT, axis=0)])
    return sc.Trajectory(x=x, t=t, body_id=body_id, material_id=np.zeros(n, int), mass=np.full(n, 1e-4),
                         volume=np.full(n, 1e-4), body_names=["jelly", "sand"], material_names=["NeoHookean"],
                         meta={"dim": 2, "gravity": [0.0, -9.8], "frame_dt": FRAME_DT},
                         v=v if velocity else None)


@pytest.fixture(scope="module")
def traj():
    return two_bodies()


def pixels_near(image, rgb, tol=3):
    """(rows, cols) of the pixels within `tol` of colour `rgb` in every channel."""
    return np.nonzero(np.all(np.abs(image.astype(int) - np.asarray(rgb)) <= tol, axis=-1))


def test_gif_has_one_frame_per_trajectory_frame_at_the_requested_size(tmp_path, traj):
    path = render(traj, tmp_path / "a.gif", size=(320, 240))
    assert path == tmp_path / "a.gif"
    frames = iio.imread(path, index=None)
    assert frames.shape[:3] == (traj.frames + 1, 240, 320)
    assert iio.immeta(path)["loop"] == 0


def test_gif_frame_subset(tmp_path, traj):
    frames = iio.imread(render(traj, tmp_path / "a.gif", frames=[0, -1]), index=None)
    assert len(frames) == 2


def test_mp4_is_readable_with_the_right_frame_count(tmp_path, traj):
    path = render(traj, tmp_path / "a.mp4", fps=20, size=(320, 240))
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    frames = list(reader)
    assert meta["size"] == (320, 240) and meta["fps"] == 20
    assert len(frames) == traj.frames + 1
    assert imageio_ffmpeg.count_frames_and_secs(str(path))[0] == traj.frames + 1


def test_png_pattern_writes_one_file_per_frame_named_by_frame_index(tmp_path, traj):
    path = render(traj, tmp_path / "png" / "frame_%04d.png", frames=[1, 3, 4])
    assert path == tmp_path / "png" / "frame_%04d.png"
    assert sorted(os.listdir(tmp_path / "png")) == ["frame_0001.png", "frame_0003.png", "frame_0004.png"]
    assert iio.imread(tmp_path / "png" / "frame_0003.png").shape == (480, 640, 3)


def test_bodies_are_drawn_in_their_colours_where_they_are(tmp_path, traj):
    render(traj, tmp_path / "f%d.png", frames=[0])
    image = iio.imread(tmp_path / "f0.png")
    assert len(np.unique(image.reshape(-1, 3), axis=0)) >= 5  # not blank
    jelly, sand = pixels_near(image, C0), pixels_near(image, C1)
    # A 0.2 m square is ~ 78 × 78 px at this size; a legend marker alone is < 100 px.
    assert len(jelly[0]) > 2000 and len(sand[0]) > 2000
    # Jelly is left of and above the sand (image rows grow downwards): x and y are neither swapped
    # nor flipped.
    assert np.mean(jelly[1]) < np.mean(sand[1]) and np.mean(jelly[0]) < np.mean(sand[0])


def test_material_colouring_uses_one_colour_for_one_material(tmp_path, traj):
    render(traj, tmp_path / "f%d.png", frames=[0], color_by="material")
    image = iio.imread(tmp_path / "f0.png")
    assert len(pixels_near(image, C0)[0]) > 4000 and len(pixels_near(image, C1)[0]) == 0


def moving_cluster(dim, n=100):
    """A 0.1 m cluster that jumps by 0.4 m along every axis between frame 0 and frame 1."""
    rng = np.random.default_rng(0)
    x = 0.3 + 0.1 * rng.random((1, n, dim)) + np.array([0.0, 0.4])[:, None, None]
    return sc.Trajectory(x=x, t=np.arange(2) * FRAME_DT, body_id=np.zeros(n, int), material_id=np.zeros(n, int),
                         mass=np.full(n, 1e-4), volume=np.full(n, 1e-6), body_names=["a"], material_names=["m"],
                         meta={"gravity": [0.0, -9.8, 0.0][:dim]})


def tinted(image, rgb, cos=0.998, brightest=40):
    """(rows, cols) of the pixels whose colour is a multiple of `rgb` (the 3D splat renderer shades
    colours darker, keeping their hue)."""
    pixels = image.astype(float)
    direction = np.asarray(rgb, dtype=float) / np.linalg.norm(rgb)
    norm = np.linalg.norm(pixels, axis=-1)
    return np.nonzero((pixels @ direction > cos * norm) & (norm > brightest))


@pytest.mark.parametrize("dim, renderer", [(2, None), (3, None), (3, "matplotlib")])
def test_frames_do_not_jump(tmp_path, dim, renderer):
    """Fixed axes: when the particles move, they move on screen (autoscaled axes would follow them and
    keep them in place), and nothing but the particles and the time label changes."""
    frames = iio.imread(render(moving_cluster(dim), tmp_path / "a.gif", point_size=30, renderer=renderer),
                        index=None)
    (r0, c0), (r1, c1) = (tinted(f[:, :480], C0) for f in frames)  # left of the legend
    assert np.mean(r0) - np.mean(r1) > 50  # up (y is up in 2D, and in 3D with gravity along −y)
    if dim == 2:
        assert np.mean(c1) - np.mean(c0) > 50  # and right
    changed = np.any(frames[0] != frames[1], axis=-1).mean()
    assert changed < 0.05, f"{changed:.3f} of the pixels changed"


def three_d(frames=2, n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = 0.4 + 0.2 * rng.random((1, n, 3)) + np.arange(frames + 1)[:, None, None] * [0.05, 0.0, 0.0]
    return sc.Trajectory(x=x, t=np.arange(frames + 1) * FRAME_DT, body_id=np.repeat([0, 1], n // 2),
                         material_id=np.zeros(n, int), mass=np.full(n, 1e-4), volume=np.full(n, 0.2**3 / n),
                         body_names=["a", "b"], material_names=["m"], meta={"gravity": [0.0, 0.0, -9.8]},
                         v=rng.normal(size=(frames + 1, n, 3)))


def test_camera_puts_the_axis_against_gravity_up_and_keeps_the_picture_right_handed():
    traj3 = three_d()  # gravity along −z
    assert viz.camera_view(traj3, None) == (30.0, 20.0, (0, 1, 2))
    traj3.meta["gravity"] = [0.0, -9.8, 0.0]
    azimuth, elevation, order = viz.camera_view(traj3, dict(azimuth=-60, elevation=10))
    assert (azimuth, elevation, order) == (-60.0, 10.0, (2, 0, 1))  # plot (X, Y, Z) = data (z, x, y)
    assert np.linalg.det(np.eye(3)[list(order)]) == 1  # a rotation, not a mirror image
    assert viz.camera_view(traj3, dict(up="x"))[2] == (1, 2, 0)


def test_3d_render_with_camera_and_collider_outlines(tmp_path):
    traj3 = three_d()
    colliders = [sc.colliders.Plane(point=(0, 0.1, 0), normal=(0, 1, 0)),
                 sc.colliders.Box(center=(0.2, 0.5, 0.8), size=(0.1, 0.2, 0.1)),
                 sc.colliders.Sphere(center=(0.8, 0.8, 0.2), radius=0.1),
                 sc.colliders.Cylinder(center=(0.5, 0.5, 0.2), radius=0.1, height=0.2)]
    with_colliders = iio.imread(render(traj3, tmp_path / "c.gif", camera=dict(azimuth=30, elevation=20),
                                       colliders=colliders), index=None)
    without = iio.imread(render(traj3, tmp_path / "n.gif", camera=dict(azimuth=30, elevation=20)), index=None)
    assert with_colliders.shape == (3, 480, 640, 3)
    assert np.any(with_colliders[0] != without[0], axis=-1).sum() > 1000


def test_collider_outline_of_a_plane_is_where_it_cuts_the_domain():
    (loop,) = viz.collider_lines_3d(sc.colliders.Plane(point=(0, 0.25, 0), normal=(0, 2, 0)), np.zeros(3))
    assert loop.shape == (5, 3) and np.allclose(loop[0], loop[-1])
    assert np.allclose(loop[:, 1], 0.25)
    assert sorted(map(tuple, np.round(loop[:-1][:, [0, 2]], 12))) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    corners = np.concatenate(viz.collider_lines_3d(sc.colliders.Box(center=(0.5, 0.5, 0.5),
                                                                    size=(0.2, 0.4, 0.6)), np.zeros(3)))
    assert np.allclose(corners.min(0), [0.4, 0.3, 0.2]) and np.allclose(corners.max(0), [0.6, 0.7, 0.8])


def test_2d_colliders_are_filled_where_they_are(tmp_path, traj):
    grey = np.array(viz.COLLIDER_FACE[:3]) * 255
    render(traj, tmp_path / "none%d.png", frames=[0])
    floor = sc.colliders.Plane(point=(0, 0.1), normal=(0, 1))
    box = sc.colliders.Box(center=(0.88, 0.45), size=(0.1, 0.1))
    render(traj, tmp_path / "c%d.png", frames=[0], colliders=[floor, box])
    plain, image = iio.imread(tmp_path / "none0.png"), iio.imread(tmp_path / "c0.png")
    mask = np.zeros(image.shape[:2], bool)
    mask[pixels_near(image, grey)] = True
    mask[pixels_near(plain, grey)] = False  # antialiased text is grey here and there too
    rows, cols = np.nonzero(mask)
    floor_px = rows > np.max(pixels_near(image, C1)[0])  # below the lowest (sand) particle
    assert floor_px.sum() > 5000   # the floor strip is 0.1 m × 1 m ~ 39 × 390 px
    assert 800 < (~floor_px).sum() < 2500  # the box is 0.1 m × 0.1 m ~ 39 × 39 px, less its edge
    assert np.mean(cols[~floor_px]) > np.mean(pixels_near(image, C1)[1])  # right of the sand


def test_kinematic_collider_moves_like_the_scene_moves_it():
    traj = two_bodies(frames=3)
    traj.meta.update(substeps=[4, 4, 4], dt=[FRAME_DT / 4] * 3)
    constant = sc.colliders.Box(center=(0.5, 0.5), size=(0.1, 0.1), velocity=(0.3, 0.0))
    np.testing.assert_allclose(viz.collider_displacement(constant, traj)[:, 0], 0.3 * traj.t)
    # v(t) = (t, 0) m/s, summed over 4 substeps a frame: Σ dt·t_k = t²/2 − t·dt/2 exactly (left sums).
    ramp = sc.colliders.Box(center=(0.5, 0.5), size=(0.1, 0.1), velocity=lambda t: (t, 0.0))
    expected = traj.t**2 / 2 - traj.t * (FRAME_DT / 4) / 2
    np.testing.assert_allclose(viz.collider_displacement(ramp, traj)[:, 0], expected, rtol=1e-12)
    assert np.all(viz.collider_displacement(sc.colliders.Box(), traj) == 0)


def test_speed_colours_use_one_range_for_the_whole_trajectory(tmp_path, traj):
    coloring = viz.particle_colors(traj, "speed")
    assert coloring.norm.vmin == 0 and coloring.norm.vmax == pytest.approx(0.6 * (traj.frames + 1))
    jelly = traj.body("jelly")
    # The jelly's speed never changes, so neither does its colour, although the fastest speed does.
    np.testing.assert_array_equal(coloring.rgba(0)[jelly], coloring.rgba(traj.frames)[jelly])
    assert not np.allclose(coloring.rgba(0)[~jelly], coloring.rgba(traj.frames)[~jelly])
    image = iio.imread(render(traj, tmp_path / "s.gif", color_by="speed", frames=[0]), index=None)[0]
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 20  # a colour bar was drawn


def test_speed_without_velocities_says_to_record_them(tmp_path):
    with pytest.raises(ValueError, match=r"record=\('x', 'v'\)"):
        render(two_bodies(velocity=False), tmp_path / "a.gif", color_by="speed")
    assert not (tmp_path / "a.gif").exists()


@pytest.mark.parametrize("path, kwargs, match", [
    ("a.avi", {}, r"\.gif, \.mp4 or a PNG pattern"),
    ("frame_%04d.jpg", {}, "must end in .png"),
    ("frame_%s_%d.png", {}, "exactly one integer field"),
    ("a.mp4", dict(size=(641, 480)), "even width and height"),
    ("a.gif", dict(size=(10, 480)), ">= 64 pixels"),
    ("a.gif", dict(fps=0), "fps must be a positive"),
    ("a.gif", dict(color_by="density"), "color_by must be"),
    ("a.gif", dict(camera=dict(azimuth=30)), "camera applies to 3D"),
    ("a.gif", dict(frames=[9]), "out of range"),
])
def test_bad_arguments_say_what_to_do(tmp_path, traj, path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        render(traj, tmp_path / path, **kwargs)
    assert os.listdir(tmp_path) == []


def test_bad_camera_and_colliders_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown camera key"):
        render(three_d(), tmp_path / "a.gif", camera=dict(azimut=30))
    with pytest.raises(ValueError, match="Cylinder is 3D only"):
        render(two_bodies(), tmp_path / "a.gif", colliders=[sc.colliders.Cylinder()])
    with pytest.raises(TypeError, match="simcore.colliders"):
        render(two_bodies(), tmp_path / "a.gif", colliders=["floor"])


def test_a_failed_render_leaves_the_previous_file_untouched(tmp_path, traj, monkeypatch):
    path = render(traj, tmp_path / "a.gif", frames=[0])
    before = path.read_bytes()
    draw, calls = FigureCanvasAgg.draw, []

    def failing_draw(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise MemoryError("out of memory on frame 3")
        return draw(self, *args, **kwargs)

    monkeypatch.setattr(FigureCanvasAgg, "draw", failing_draw)
    with pytest.raises(MemoryError):
        render(traj, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["a.gif"]


def test_time_label_tells_consecutive_frames_apart():
    assert viz.time_label(1 / 60, 1 / 60) == "t = 0.017 s"
    assert viz.time_label(3e-4, 1e-4) == "t = 0.00030 s"


# ----------------------------------------------------------------------------------------------
# Energy
# ----------------------------------------------------------------------------------------------
def free_fall(g=(0.0, -9.8, 0.0), frames=10):
    """Particles released from rest: x = x0 + ½ g t², v = g t, so KE = ½ M |g|² t², PE = −M g·x and
    KE + PE = −M g·x0 at every time (Newton's second law, exact for uniform acceleration)."""
    rng = np.random.default_rng(3)
    g = np.asarray(g)
    n, t = 50, np.linspace(0.0, 0.2, frames + 1)
    x0, mass = 0.3 + 0.4 * rng.random((n, 3)), rng.uniform(1e-4, 3e-4, n)
    x = x0 + 0.5 * g * t[:, None, None] ** 2
    v = np.broadcast_to(g * t[:, None, None], x.shape).copy()
    traj = sc.Trajectory(x=x, t=t, body_id=np.zeros(n, int), material_id=np.zeros(n, int), mass=mass,
                         volume=np.full(n, 1e-6), body_names=["ball"], material_names=["m"],
                         meta={"dim": 3, "gravity": list(g)}, v=v)
    return traj, x0, mass


def test_energy_of_free_fall_matches_newton(tmp_path):
    traj, x0, mass = free_fall()
    g, M = np.array([0.0, -9.8, 0.0]), mass.sum()
    e = viz.energy(traj)
    np.testing.assert_allclose(e["kinetic"], 0.5 * M * 9.8**2 * traj.t**2, rtol=1e-12)
    np.testing.assert_allclose(e["potential"], -(mass[None] * (traj.x @ g)).sum(1), rtol=1e-12)
    np.testing.assert_allclose(e["total"], np.full_like(traj.t, -(mass * (x0 @ g)).sum()), rtol=1e-12)
    fig = plot_energy(traj, tmp_path / "energy.png")
    lines = fig.axes[0].get_lines()
    for line, key in zip(lines, ("kinetic", "potential", "total")):
        np.testing.assert_array_equal(line.get_xdata(), traj.t)
        np.testing.assert_array_equal(line.get_ydata(), e[key])
    assert fig.axes[0].get_ylabel() == "energy (J)" and fig.axes[0].get_xlabel() == "time (s)"
    assert iio.imread(tmp_path / "energy.png").shape[:2] == (400, 640)


def test_energy_gravity_argument_overrides_the_trajectory(tmp_path):
    traj, x0, mass = free_fall()
    sideways = viz.energy(traj, gravity=(9.8, 0.0, 0.0))["potential"]
    np.testing.assert_allclose(sideways, -9.8 * (mass[None] * traj.x[:, :, 0]).sum(1), rtol=1e-12)
    traj.meta.pop("gravity")
    with pytest.raises(ValueError, match=r"pass gravity="):
        viz.energy(traj)
    with pytest.raises(ValueError, match="3 finite numbers"):
        viz.energy(traj, gravity=(0.0, -9.8))


def test_plot_energy_without_velocities_says_to_record_them():
    with pytest.raises(ValueError, match="record"):
        plot_energy(two_bodies(velocity=False))
