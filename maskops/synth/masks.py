"""Paint a face mask that follows five facial landmarks.

The same painter serves the synthetic people (landmarks known from the drawing) and the
generated dataset (landmarks from MTCNN on real photos), like MaskTheFace in the original
solution but without dlib: the mask outline is laid out in a frame aligned with the eyes,
scaled by the eye-nose-mouth distances, shaded like cloth and modulated by the lighting
of the face underneath.

Landmark order is MTCNN's: left eye, right eye, nose tip, left mouth corner, right mouth corner.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SUPERSAMPLE = 2
LIGHT_BLUR = 8
LIGHT_GAMMA = 0.6


class Placement(StrEnum):
    """Where the mask sits: worn correctly or in one of two incorrect positions."""

    WEAR = "wear"  # covers nose and mouth
    UNDER_NOSE = "under_nose"  # nose visible, mouth covered
    CHIN = "chin"  # nose and mouth visible


INCORRECT_PLACEMENTS = (Placement.UNDER_NOSE, Placement.CHIN)


@dataclass(frozen=True)
class MaskStyle:
    """Look of one mask."""

    color: tuple[int, int, int]
    pleats: int  # 0 for a fitted cloth / KF94 mask
    pattern: str  # "plain", "dots", "stripes"
    pattern_color: tuple[int, int, int]
    loop_color: tuple[int, int, int]


MASK_COLORS = (
    (168, 205, 228), (120, 175, 215), (226, 228, 230), (232, 232, 228), (40, 40, 46),
    (90, 92, 100), (225, 180, 195), (70, 95, 150), (160, 200, 170), (200, 190, 170),
)  # fmt: skip


def random_style(rng: np.random.Generator) -> MaskStyle:
    """A plausible mask: surgical (pleated), fitted cloth, or patterned cloth."""
    base = np.array(MASK_COLORS[rng.integers(len(MASK_COLORS))], dtype=float)
    color = tuple(int(c) for c in np.clip(base + rng.normal(0, 8, 3), 0, 255))
    pleats = int(rng.choice([0, 3, 3, 4]))
    pattern = str(rng.choice(["plain", "plain", "plain", "dots"]))
    pattern_color = tuple(int(c) for c in np.clip(255 - np.array(color) * 0.6 + rng.normal(0, 20, 3), 0, 255))
    loop = tuple(int(c) for c in np.clip(np.array(color) * 0.9, 0, 255))
    return MaskStyle(color, pleats, pattern, pattern_color, loop)


@dataclass(frozen=True)
class FaceFrame:
    """Eye-aligned frame: origin between the eyes, x along the eye line, unit = eye distance."""

    origin: np.ndarray
    ex: np.ndarray
    ey: np.ndarray
    unit: float
    nose_y: float  # nose tip below the eye line, in units
    mouth_y: float  # mouth centre below the eye line, in units

    @classmethod
    def from_landmarks(cls, landmarks: np.ndarray) -> FaceFrame:
        pts = np.asarray(landmarks, dtype=float).reshape(5, 2)
        left, right, nose = pts[0], pts[1], pts[2]
        mouth = (pts[3] + pts[4]) / 2
        origin = (left + right) / 2
        axis = right - left
        unit = float(np.linalg.norm(axis))
        if unit < 1e-6:
            raise ValueError("eye landmarks coincide; cannot place a mask")
        ex = axis / unit
        ey = np.array([-ex[1], ex[0]])  # image y grows downwards
        nose_y = float((nose - origin) @ ey) / unit
        mouth_y = float((mouth - origin) @ ey) / unit
        if not 0.15 < nose_y < mouth_y:
            raise ValueError(f"landmarks are not a frontal face (nose {nose_y:.2f}, mouth {mouth_y:.2f} eye distances below the eyes)")
        return cls(origin, ex, ey, unit, nose_y, mouth_y)

    def to_image(self, xy: np.ndarray) -> np.ndarray:
        """Frame coordinates (N, 2) -> image pixels (N, 2)."""
        xy = np.asarray(xy, dtype=float)
        return self.origin + self.unit * (xy[:, :1] * self.ex + xy[:, 1:2] * self.ey)

    @property
    def chin_y(self) -> float:
        return self.mouth_y + 1.9 * (self.mouth_y - self.nose_y)


def mask_outline(frame: FaceFrame, placement: Placement, rng: np.random.Generator | None = None) -> np.ndarray:
    """Polygon (N, 2) in frame units for a mask at `placement`."""
    n, m, chin = frame.nose_y, frame.mouth_y, frame.chin_y
    lip = m - n
    if placement is Placement.WEAR:
        top, bottom = 0.42 * n, chin + 0.08
    elif placement is Placement.UNDER_NOSE:
        top, bottom = n + 0.30 * lip, chin + 0.12
    else:
        top, bottom = m + 0.55 * lip, chin + 0.28
    jitter = (lambda s: rng.normal(0, s)) if rng is not None else (lambda s: 0.0)
    half_top = 0.80 + jitter(0.03)
    half_mid = 1.02 + jitter(0.03)
    mid = top + 0.45 * (bottom - top)
    pts = [(0.0, top - 0.06)]  # raised over the nose bridge
    pts += [(half_top * 0.55, top), (half_top, top + 0.04), (half_mid, mid)]
    # rounded bottom following the jaw
    for t in np.linspace(0.0, np.pi, 9)[1:-1]:
        pts.append((half_mid * 0.78 * np.cos(t), mid + (bottom - mid) * np.sin(t)))
    pts += [(-half_mid, mid), (-half_top, top + 0.04), (-half_top * 0.55, top)]
    poly = np.array(pts)
    # slight perspective: one side a little wider, as when the head turns
    yaw = jitter(0.06)
    poly[:, 0] *= 1 + yaw * np.sign(poly[:, 0])
    return poly


def _shading(frame: FaceFrame, fx: np.ndarray, fy: np.ndarray, outline: np.ndarray, pleats: int, rng: np.random.Generator) -> np.ndarray:
    """Brightness multiplier of cloth draped over the face, lit from the upper front.

    The surface is a cylinder across the face with a tent over the nose that falls off
    towards the mouth and a bulge over the chin; pleats add shadowed folds; grain adds noise.
    """
    half = np.abs(outline[:, 0]).max()
    top, bottom = outline[:, 1].min(), outline[:, 1].max()
    u = np.clip(fx / half, -1.0, 1.0)
    v = np.clip((fy - top) / max(bottom - top, 1e-3), 0.0, 1.0)
    n, m = frame.nose_y, frame.mouth_y
    height = np.sqrt(1.0 - 0.9 * u * u)
    tent = np.where(fy < n, np.clip((fy - top) / max(n - top, 1e-3), 0, 1), np.clip(1 - (fy - n) / (1.6 * (m - n)), 0, 1))
    height += 0.45 * tent * np.exp(-((fx / (0.22 + 0.25 * np.clip(fy - top, 0, 1))) ** 2))
    height += 0.2 * np.exp(-((fx / 0.55) ** 2) - ((fy - frame.chin_y + 0.35) / 0.35) ** 2)
    if pleats:
        height += 0.015 * np.sin(v * pleats * 2 * np.pi + rng.uniform(0, np.pi))
    gy, gx = np.gradient(height * half * frame.unit)
    light = np.array([rng.uniform(-0.35, 0.35), -0.4, 0.85])
    light /= np.linalg.norm(light)
    lambert = np.clip((-gx * light[0] - gy * light[1] + light[2]) / np.sqrt(gx * gx + gy * gy + 1.0), 0, 1)
    shade = 0.45 + 0.62 * lambert
    shade *= 1 + 0.025 * rng.standard_normal(u.shape, dtype=np.float32)
    return shade.astype(np.float32)


def _texture(fx: np.ndarray, fy: np.ndarray, style: MaskStyle) -> np.ndarray:
    """Base colour with an optional printed pattern, in frame units."""
    tex = np.empty((*fx.shape, 3), np.float32)
    tex[:] = style.color
    period = 0.22
    if style.pattern == "stripes":
        on = (fy / period) % 1.0 < 0.35
    elif style.pattern == "dots":
        gx = (fx / period) % 1.0 - 0.5
        gy = (fy / period) % 1.0 - 0.5
        on = gx * gx + gy * gy < 0.04
    else:
        return tex
    tex[on] = style.pattern_color
    return tex


def paint_mask(
    image: Image.Image,
    landmarks: np.ndarray,
    placement: Placement | str,
    style: MaskStyle,
    rng: np.random.Generator,
) -> tuple[Image.Image, np.ndarray]:
    """Paint a mask on a copy of `image`; returns (image, coverage alpha in 0..1 of shape HxW)."""
    placement = Placement(placement)
    frame = FaceFrame.from_landmarks(landmarks)
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    h, w = rgb.shape[:2]

    outline = mask_outline(frame, placement, rng)
    poly = frame.to_image(outline)
    x0, y0 = (int(v) - 2 for v in np.floor(poly.min(axis=0)))
    x1, y1 = (int(v) + 2 for v in np.ceil(poly.max(axis=0)))
    bw, bh = x1 - x0, y1 - y0
    s = SUPERSAMPLE
    alpha_img = Image.new("L", (bw * s, bh * s), 0)
    ImageDraw.Draw(alpha_img).polygon([tuple((p - (x0, y0)) * s) for p in poly], fill=255)
    alpha_img = alpha_img.resize((bw, bh), Image.LANCZOS).filter(ImageFilter.GaussianBlur(0.6))
    local_alpha = np.asarray(alpha_img, dtype=np.float32) / 255.0

    # Cloth texture and shading are computed in the eye-aligned frame, so they follow the head's tilt.
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    rel_x, rel_y = xx - frame.origin[0], yy - frame.origin[1]
    fx = (rel_x * frame.ex[0] + rel_y * frame.ex[1]) / frame.unit
    fy = (rel_x * frame.ey[0] + rel_y * frame.ey[1]) / frame.unit
    tex = _texture(fx, fy, style)
    shade = _shading(frame, fx, fy, outline, style.pleats, rng)
    # Lighting of the face underneath: a blurred luminance ratio, clamped.
    ys, xs = slice(max(y0, 0), min(y1, h)), slice(max(x0, 0), min(x1, w))
    region = rgb[ys, xs]
    lum = Image.fromarray(region.mean(axis=2).astype(np.uint8))
    lum = np.asarray(lum.filter(ImageFilter.GaussianBlur(float(max(1.5, bw / LIGHT_BLUR)))), dtype=np.float32)
    inside = local_alpha[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    ref = float(np.median(lum[inside > 0.5])) if (inside > 0.5).any() else float(lum.mean())
    light = np.clip(lum / max(ref, 1.0), 0.45, 1.4) ** LIGHT_GAMMA

    inner = (slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))
    color = tex[inner] * shade[inner][..., None] * light[..., None]
    a = inside[..., None]
    out = rgb.copy()
    out[ys, xs] = region * (1 - a) + np.clip(color, 0, 255) * a

    result = Image.fromarray(out.astype(np.uint8))
    _draw_loops(result, frame, outline, style, placement)
    coverage = np.zeros((h, w), dtype=np.float32)
    coverage[ys, xs] = inside
    return result, coverage


def _draw_loops(image: Image.Image, frame: FaceFrame, outline: np.ndarray, style: MaskStyle, placement: Placement) -> None:
    """Ear loops from the mask's upper corner and widest point back towards the ears."""
    draw = ImageDraw.Draw(image)
    width = max(1, round(frame.unit * 0.035))
    ear_y = 0.3 * frame.nose_y if placement is Placement.WEAR else 0.8 * frame.nose_y
    for corner_index, side in ((2, 1), (-2, -1)):
        top, widest = outline[corner_index], outline[corner_index + side]
        ear = np.array([side * 1.08, ear_y])
        for start in (top, widest):
            a, b = frame.to_image(np.array([start, ear]))
            draw.line([tuple(a), tuple(b)], fill=style.loop_color, width=width)


def covers(coverage: np.ndarray, point: np.ndarray, threshold: float = 0.5) -> bool:
    """Whether the painted mask covers an image point (x, y)."""
    x, y = round(point[0]), round(point[1])
    h, w = coverage.shape
    return 0 <= x < w and 0 <= y < h and coverage[y, x] >= threshold
