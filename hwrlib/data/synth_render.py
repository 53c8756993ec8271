"""Rendering handwriting-like characters from Make Me a Hanzi stroke medians, with per-writer style.

A median is a stroke's centre line, a list of points in a 1024x1024 frame whose y axis points
up (the glyph's baseline sits at y = -124, its top at 900: hanzi-writer draws with
``y' = 900 - y``). A writer draws every character with one style (size, aspect, slant,
stroke width, ink, how shaky) and each sample varies around it: strokes are moved and
rotated a little one by one, the whole character is bent by a smooth random displacement
field (elastic distortion), and the centre lines are drawn as thick round-capped lines at 2x
resolution, then averaged down, which gives grey edges like a scanned pen stroke.
The bitmap is the character's bounding box plus a small margin, so its size varies like
HWDB's (about 60-130 px at the default settings).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

Medians = list[list[list[float]]]  # strokes -> points -> (x, y) in the 1024 frame, y up
SUPERSAMPLE = 2  # drawing resolution factor: anti-aliased edges after the box downsample
STEP = 0.02  # resampling step of the centre lines, in character heights: keeps bends smooth


@dataclass(frozen=True)
class Style:
    """One writer's habits (lengths in pixels of the final bitmap)."""
    size: float  # height of the character's frame
    aspect: float  # width / height
    slant: float  # shear, tan of the angle from vertical
    width: float  # stroke width
    ink: int  # darkest grey value of the ink
    jitter: float  # per-stroke displacement std, fraction of the frame
    elastic: float  # amplitude of the displacement field, fraction of the frame


def draw_style(rng: np.random.Generator, size_range: tuple[float, float], width_range: tuple[float, float],
               slant_deg: float, aspect_range: tuple[float, float], jitter: float, elastic: float) -> Style:
    """A random writer style; ``jitter`` and ``elastic`` are the upper ends of the writer's ranges."""
    return Style(size=rng.uniform(*size_range), aspect=float(np.exp(rng.uniform(*np.log(aspect_range)))),
                 slant=float(np.tan(np.radians(rng.normal(0, slant_deg)))), width=rng.uniform(*width_range),
                 ink=int(rng.integers(0, 70)), jitter=rng.uniform(0.3, 1) * jitter,
                 elastic=rng.uniform(0.3, 1) * elastic)


def resample(points: np.ndarray, step: float) -> np.ndarray:
    """Points along the polyline ``points`` (K, 2) about ``step`` apart (ends kept)."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arc = np.concatenate([[0], np.cumsum(seg)])
    if arc[-1] == 0:
        return points[:1]
    t = np.linspace(0, arc[-1], max(2, int(np.ceil(arc[-1] / step)) + 1))
    return np.stack([np.interp(t, arc, points[:, 0]), np.interp(t, arc, points[:, 1])], axis=1)


def _elastic_field(rng: np.random.Generator, amplitude: float):
    """A smooth displacement field: two random low-frequency plane waves per axis."""
    # (axis, wave, xy) spatial frequencies of 0.5-1.5 cycles per frame: bends, not wiggles
    turn = rng.uniform(0, 2 * np.pi, (2, 2))
    k = rng.uniform(0.5, 1.5, (2, 2, 1)) * np.stack([np.cos(turn), np.sin(turn)], axis=-1)
    phase = rng.uniform(0, 2 * np.pi, (2, 2))
    amp = rng.normal(0, amplitude, (2, 2))

    def field(p: np.ndarray) -> np.ndarray:
        waves = np.sin(2 * np.pi * np.einsum("awx,nx->anw", k, p) + phase[:, None, :])  # (axis, N, wave)
        return (waves * amp[:, None, :]).sum(-1).T  # (N, 2)
    return field


def _strokes(medians: Medians, style: Style, rng: np.random.Generator) -> list[np.ndarray]:
    """Transformed centre lines in frame units (frame height 1, y down, origin at the frame centre)."""
    field = _elastic_field(rng, style.elastic)
    out = []
    for m in medians:
        p = np.asarray(m, np.float64)
        p = np.stack([p[:, 0] - 512, 388 - p[:, 1]], axis=1) / 1024  # y down, centred on the glyph box
        p = resample(p, STEP)
        c = p.mean(axis=0)
        a = rng.normal(0, 3 * style.jitter)  # radians: a small turn of the stroke about its centre
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        p = (p - c) @ rot.T + c + rng.normal(0, style.jitter, 2)
        out.append(p + field(p))
    return out


def render(medians: Medians, style: Style, rng: np.random.Generator) -> np.ndarray:
    """One sample of a character as a uint8 bitmap (H, W), dark ink on background 255."""
    size = style.size * np.exp(rng.normal(0, 0.07))  # a writer's size varies from sample to sample
    sx, sy = size * np.sqrt(style.aspect), size / np.sqrt(style.aspect)
    slant = style.slant + rng.normal(0, 0.03)
    width = max(1.0, style.width * np.exp(rng.normal(0, 0.1)))
    strokes = [np.stack([(p[:, 0] - slant * p[:, 1]) * sx, p[:, 1] * sy], axis=1)
               for p in _strokes(medians, style, rng)]
    pts = np.concatenate(strokes)
    margin = width / 2 + rng.uniform(1, 4)
    lo = pts.min(axis=0) - margin
    w, h = np.ceil(pts.max(axis=0) + margin - lo).astype(int)
    f = SUPERSAMPLE
    img = Image.new("L", (int(w) * f, int(h) * f), 0)
    draw = ImageDraw.Draw(img)
    r = width * f / 2
    for p in strokes:
        q = (p - lo) * f
        draw.line(q.ravel().tolist(), fill=255, width=max(1, round(width * f)))
        # a disc on every vertex gives round joints and caps; PIL's joint="curve" costs 5x more
        for x, y in q.tolist():
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    cover = np.asarray(img.reduce(f), np.float32) / 255  # ink coverage 0..1 per final pixel
    return np.round(255 - cover * (255 - style.ink)).astype(np.uint8)
