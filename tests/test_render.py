"""The 3D splat renderer (simcore.viz.projection, splat, splat_frames): points land on the pixels the
camera's geometry says, the nearer surface hides the farther one whatever the drawing order, colours
keep the hue their option maps them to, the camera looks the way matplotlib's would, and videos are
written whole, atomically, with one frame per trajectory frame."""

import os

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d import proj3d

import simcore as sc
from simcore import viz
from simcore.viz.projection import DISTANCE, Projection
from simcore.viz.splat import DepthBuffer
from simcore.viz.splat_frames import SplatFrames

BLUE, ORANGE = (np.array(to_rgb(c)) for c in ("tab:blue", "tab:orange"))   # body colours 0 and 1
# Looking along +y from the eye at (0.5, 0.5 − DISTANCE, 0.5): x to the right, z up (gravity along −z).
FRONT = dict(azimuth=-90, elevation=0)


def particles(x, body_id=None, v=None, volume=1e-6, gravity=(0.0, 0.0, -9.8)):
    """A trajectory of the points x (frames + 1, n, 3) m."""
    x = np.asarray(x, dtype=float)
    n = x.shape[1]
    body_id = np.zeros(n, int) if body_id is None else np.asarray(body_id)
    return sc.Trajectory(x=x, t=np.arange(len(x)) / 60, body_id=body_id, material_id=1 - body_id,
                         mass=np.full(n, 1e-3), volume=np.full(n, volume), body_names=["a", "b"],
                         material_names=["m0", "m1"], meta={"gravity": list(gravity), "frame_dt": 1 / 60}, v=v)


def tinted(image, rgb, cos=0.998, brightest=40):
    """(rows, cols) of the pixels whose colour is a multiple of `rgb` (same hue, any brightness), not
    too dark to tell."""
    pixels = image.astype(float)
    norm = np.linalg.norm(pixels, axis=-1)
    direction = np.asarray(rgb, dtype=float) / np.linalg.norm(rgb)
    return np.nonzero((pixels @ direction > cos * norm) & (norm > brightest))


def view_of(traj, camera=None, point_size=None, size=(640, 480), color_by="body"):
    frames = SplatFrames(traj, size, viz.camera_view(traj, camera), viz.particle_colors(traj, color_by), [],
                         point_size, None)
    return frames


# ----------------------------------------------------------------------------------------------
# Camera
# ----------------------------------------------------------------------------------------------
def test_projection_follows_the_geometry_of_the_front_view():
    """Eye at (0.5, 0.5 − 3, 0.5) looking along +y: right = +x, up = +z, depth = 3 − (0.5 − y) m.
    The cube's near face (y = 0, depth 2.5 m) spans ±0.5/2.5 focal and fills 94% of a 400 px area."""
    p = Projection.fit((-90.0, 0.0, (0, 1, 2)), (0, 0, 400, 400))
    assert p.distance == DISTANCE == 3.0
    assert p.focal == pytest.approx(400 * 0.94 / 0.4)
    points = np.array([[0.5, 0.5, 0.5], [0.75, 0.5, 0.5], [0.5, 0.5, 0.75], [0.75, 0.25, 0.5]])
    column, row, depth = p.project(points)
    np.testing.assert_allclose(depth, [3.0, 3.0, 3.0, 2.75])
    np.testing.assert_allclose(column, [200, 200 + p.focal * 0.25 / 3, 200, 200 + p.focal * 0.25 / 2.75])
    np.testing.assert_allclose(row, [200, 200, 200 - p.focal * 0.25 / 3, 200])


@pytest.mark.parametrize("azimuth, elevation", [(30, 20), (-60, 30), (120, -10), (200, 45)])
def test_camera_looks_the_way_matplotlib_looks(azimuth, elevation):
    """Each axis points the same way on screen as in an mplot3d axes with the same view_init."""
    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(projection="3d")
    ax.set(xlim=(0, 1), ylim=(0, 1), zlim=(0, 1))
    ax.set_box_aspect((1, 1, 1))
    ax.view_init(elev=elevation, azim=azimuth)
    p = Projection.fit((azimuth, elevation, (0, 1, 2)), (0, 0, 400, 400))
    center = np.full(3, 0.5)
    for axis in np.eye(3) * 0.05:
        xs, ys, _ = proj3d.proj_transform(*np.stack([center, center + axis]).T, ax.get_proj())
        theirs = np.array([xs[1] - xs[0], ys[1] - ys[0]])
        column, row, _ = p.project(np.stack([center, center + axis]))
        ours = np.array([column[1] - column[0], row[0] - row[1]])   # rows grow downwards
        assert ours @ theirs / np.linalg.norm(ours) / np.linalg.norm(theirs) > 0.999


def test_a_single_particle_lands_on_the_pixel_the_camera_predicts():
    x = np.array([[[0.7, 0.4, 0.35]]])
    frames = view_of(particles(x), FRONT, point_size=20)
    column, row, _ = frames.projection.project(x[0])
    rows, cols = tinted(frames.render_view(0), BLUE)
    assert len(rows) > 5
    assert abs(np.mean(cols) - column[0]) < 1.0 and abs(np.mean(rows) - row[0]) < 1.0
    # It is right of and below the centre, as x = 0.7 > 0.5 and z = 0.35 < 0.5 say.
    assert column[0] > frames.side / 2 + 20 and row[0] > frames.side / 2 + 20
    # And the full picture holds this view where the layout puts it.
    image = frames.image(0)
    np.testing.assert_array_equal(image[frames.area][tuple(np.array([rows, cols]))],
                                  frames.render_view(0)[rows, cols])


@pytest.mark.parametrize("near_body", [0, 1])
@pytest.mark.parametrize("near_first", [True, False])
def test_the_nearer_particle_hides_the_farther_one(near_body, near_first):
    """Two spheres on one line of sight: only the nearer one's colour shows, whichever is drawn first."""
    near, far = [0.5, 0.45, 0.5], [0.5, 0.55, 0.5]
    x = np.array([[near, far] if near_first else [far, near]])
    body = [near_body, 1 - near_body] if near_first else [1 - near_body, near_body]
    view = view_of(particles(x, body_id=np.array(body)), FRONT, point_size=100).render_view(0)
    shown, hidden = (BLUE, ORANGE) if near_body == 0 else (ORANGE, BLUE)
    assert len(tinted(view, shown)[0]) > 50 and len(tinted(view, hidden)[0]) == 0


def test_depth_buffer_keeps_the_nearest_whatever_the_order():
    rng = np.random.default_rng(0)
    n = 2000
    column, row = rng.uniform(0, 64, n), rng.uniform(0, 64, n)
    depth, radius = rng.uniform(1, 2, n), rng.uniform(0.3, 3, n)
    results = []
    for order in (np.arange(n), rng.permutation(n)):
        buffer = DepthBuffer(64, 64, max_depth=4.0)
        buffer.discs(column[order], row[order], depth[order], radius[order], np.arange(n)[order], bulge=0.01)
        results.append(buffer.resolve())
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    pixels, ids, drawn = results[0]
    # Each pixel holds the nearest disc covering it (brute force over every disc; flat discs, so the
    # depth compared is the centre's).
    flat = DepthBuffer(64, 64, max_depth=4.0)
    flat.discs(column, row, depth, radius, np.arange(n))
    pixels, ids, drawn = flat.resolve()
    for pixel, winner in zip(pixels[::37], ids[::37]):
        dy, dx = pixel // 64 - np.floor(row), pixel % 64 - np.floor(column)
        covering = dx**2 + dy**2 <= np.minimum(radius, 12) ** 2
        assert winner == np.flatnonzero(covering)[np.argmin(depth[covering])]


# ----------------------------------------------------------------------------------------------
# Colours
# ----------------------------------------------------------------------------------------------
def two_apart(v=None):
    """Particle 0 (body 'a', material 'm1') left, particle 1 (body 'b', material 'm0') right."""
    return particles(np.array([[[0.3, 0.5, 0.5], [0.7, 0.5, 0.5]]]), body_id=np.array([0, 1]), v=v)


@pytest.mark.parametrize("color_by, left, right", [
    ("body", BLUE, ORANGE),
    ("material", ORANGE, BLUE),                                    # material_id = 1 − body_id
    ("speed", colormaps["viridis"](0.0)[:3], colormaps["viridis"](1.0)[:3]),   # at rest, fastest
])
def test_colour_options_keep_their_hue(color_by, left, right):
    v = np.array([[[0.0, 0.0, 0.0], [0.0, 0.0, -2.0]]])
    frames = view_of(two_apart(v), FRONT, point_size=100, color_by=color_by)
    view = frames.render_view(0)
    half = frames.side // 2
    for rgb, side in ((left, slice(0, half)), (right, slice(half, None))):
        rows, cols = tinted(view[:, side], rgb)
        assert len(rows) > 30, f"{color_by}: {rgb} not found"
        # Shading darkens, never brightens: the brightest pixel is at most the colour itself.
        assert view[:, side][rows, cols].max() <= np.ceil(255 * max(rgb))
    assert len(tinted(view[:, :half], right)[0]) == 0 and len(tinted(view[:, half:], left)[0]) == 0


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------
def block(frames=3, side=12):
    """side³ particles at 0.02 m spacing, moving +x 0.05 m per frame."""
    g = (np.arange(side) + 0.5) * 0.02
    x0 = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3) + 0.3
    x = x0 + np.arange(frames + 1)[:, None, None] * np.array([0.05, 0.0, 0.0])
    return particles(x, body_id=(x0[:, 2] > 0.42).astype(int), volume=0.02**3, gravity=(0.0, -9.8, 0.0))


def test_mp4_is_written_atomically_and_reads_back_with_one_frame_per_trajectory_frame(tmp_path):
    traj = block()
    path = viz.render(traj, tmp_path / "a.mp4", size=(320, 240), fps=24)
    assert os.listdir(tmp_path) == ["a.mp4"]
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    frames = [np.frombuffer(f, np.uint8).reshape(240, 320, 3) for f in reader]
    assert meta["size"] == (320, 240) and meta["fps"] == 24 and len(frames) == traj.frames + 1
    # The block moves right on screen from frame to frame (x is to the right at the default camera).
    centres = [np.mean(tinted(f, BLUE, cos=0.99)[1]) for f in frames]
    assert np.all(np.diff(centres) > 3)


def test_a_failed_3d_render_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    traj = block()
    path = viz.render(traj, tmp_path / "a.mp4", size=(320, 240), frames=[0])
    before = path.read_bytes()
    image, calls = SplatFrames.image, []

    def failing(self, i):
        calls.append(i)
        if len(calls) == 3:
            raise MemoryError("out of memory on the third frame")
        return image(self, i)

    monkeypatch.setattr(SplatFrames, "image", failing)
    with pytest.raises(MemoryError):
        viz.render(traj, path, size=(320, 240))
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["a.mp4"]


def test_splat_is_the_3d_default_and_matplotlib_stays_available(tmp_path, monkeypatch):
    traj = block(frames=1)
    used = []
    monkeypatch.setattr(SplatFrames, "image", lambda self, i, image=SplatFrames.image: used.append(i) or
                        image(self, i))
    viz.render(traj, tmp_path / "s%d.png", frames=[0])
    assert used == [0]
    viz.render(traj, tmp_path / "m%d.png", frames=[0], renderer="matplotlib")
    splat, mpl = iio.imread(tmp_path / "s0.png"), iio.imread(tmp_path / "m0.png")
    assert used == [0] and splat.shape == mpl.shape == (480, 640, 3) and not np.array_equal(splat, mpl)
    with pytest.raises(ValueError, match="renderer must be"):
        viz.render(traj, tmp_path / "x.gif", renderer="vtk")
    two_d = particles(np.zeros((1, 3, 2)) + 0.5, gravity=(0.0, -9.8))
    with pytest.raises(ValueError, match="draws 3D trajectories"):
        viz.render(two_d, tmp_path / "x.gif", renderer="splat")
