"""Image sequences to files: animated GIF, H.264 MP4, numbered PNGs. Each writer takes an iterator of
(trajectory frame index, (height, width, 3) uint8 image) and writes atomically (simcore.io)."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np

from ..io import atomic_path, atomic_write


def output_kind(path) -> str:
    """"gif", "mp4" or "png" (a pattern with one integer field), from the output path."""
    text = str(path)
    if "%" in text:
        try:
            text % 0
        except (TypeError, ValueError):
            raise ValueError(f"PNG pattern {text!r} needs exactly one integer field such as %04d, "
                             "e.g. 'out/frame_%04d.png'") from None
        if not text.lower().endswith(".png"):
            raise ValueError(f"an image pattern must end in .png, e.g. 'out/frame_%04d.png'; got {text!r}")
        return "png"
    suffix = Path(text).suffix.lower()
    if suffix in (".gif", ".mp4"):
        return suffix[1:]
    raise ValueError(f"render writes .gif, .mp4 or a PNG pattern such as 'out/frame_%04d.png'; got {text!r}")


def check_size(size, kind) -> tuple[int, int]:
    """(width, height) px, both >= 64 (and even for MP4)."""
    try:
        width, height = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (width, height) in pixels, got {size!r}") from None
    if min(width, height) < 64 or (width, height) != tuple(size):
        raise ValueError(f"size must be two integers >= 64 pixels (width, height), got {size!r}")
    if kind == "mp4" and (width % 2 or height % 2):
        raise ValueError(f"MP4 (H.264, yuv420p) needs an even width and height, got {size!r}; "
                         f"use e.g. {(width + width % 2, height + height % 2)}")
    return width, height


def write_gif(images, path, fps, size) -> Path:
    """Animated GIF that loops; frame duration 1000 / fps ms."""
    path = Path(path)
    with atomic_write(path) as handle, iio.imopen(handle, "w", extension=".gif", plugin="pillow") as out:
        for _, image in images:
            # bits=8 keeps each buffered frame as a 1-byte-per-pixel palette image (pillow writes at close).
            out.write(image, duration=1000 / fps, loop=0, bits=8)
    return path


def write_mp4(images, path, fps, size) -> Path:
    """H.264 (libx264, yuv420p) through imageio-ffmpeg's bundled ffmpeg; `size` (width, height) even."""
    path = Path(path)
    with atomic_path(path) as tmp:  # ffmpeg writes by file name
        writer = imageio_ffmpeg.write_frames(str(tmp), size, fps=fps, codec="libx264", quality=8,
                                             macro_block_size=2, ffmpeg_log_level="error")
        writer.send(None)
        try:
            for _, image in images:
                writer.send(np.ascontiguousarray(image))
        finally:
            writer.close()
    return path


def write_png_sequence(images, pattern, fps, size) -> Path:
    """One PNG per frame, named by `pattern` % trajectory frame index."""
    for i, image in images:
        with atomic_write(str(pattern) % i) as handle:
            iio.imwrite(handle, image, extension=".png")
    return Path(pattern)


WRITERS = {"gif": write_gif, "mp4": write_mp4, "png": write_png_sequence}
