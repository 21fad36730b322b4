"""Draw one synthetic person: head and shoulders on a background, optionally masked.

A `Look` is fixed per person (skin, face shape, hair, clothes, background, age and gender
cues); a `Pose` varies per photo. Gender and age are visible: hair length, lipstick,
beard, jaw width; greying hair, wrinkles and skin tone that change continuously with age,
so the 30 and 60 boundaries are as hard to see as in real photos.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from maskops.labels import Gender
from maskops.synth.masks import MaskStyle, Placement, paint_mask

WIDTH, HEIGHT = 384, 512
EYE_W = 0.23
SPECULAR = 40.0
SS = 2  # supersampling factor for anti-aliased shapes
_YY, _XX = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)

SKIN_TONES = {
    "Asian": ((238, 205, 175), (205, 160, 120)),
    "White": ((245, 215, 195), (215, 170, 140)),
    "Black": ((165, 112, 80), (105, 68, 48)),
    "Hispanic": ((225, 180, 140), (180, 130, 95)),
}
RACE_WEIGHTS = {"Asian": 0.7, "White": 0.1, "Black": 0.1, "Hispanic": 0.1}
HAIR_COLORS = ((25, 20, 18), (45, 32, 25), (75, 50, 32), (110, 75, 45), (160, 120, 70), (20, 20, 24))
EYE_COLORS = ((60, 40, 25), (35, 25, 20), (70, 90, 60), (60, 90, 130))


def _rgb(values: np.ndarray) -> tuple[int, int, int]:
    v = np.clip(np.asarray(values, dtype=float), 0, 255)
    return (int(v[0]), int(v[1]), int(v[2]))


def _mix(a, b, t: float) -> tuple[int, int, int]:
    return _rgb(np.asarray(a, float) * (1 - t) + np.asarray(b, float) * t)


@dataclass(frozen=True)
class Look:
    """Everything about a person that stays the same across their seven photos."""

    gender: Gender
    age: int
    race: str
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    hair_style: str  # "short", "long", "bob", "bald", "bun"
    eye: tuple[int, int, int]
    face_aspect: float  # half-height / half-width of the face ellipse
    jaw: float  # 0 narrow .. 1 square
    beard: str  # "none", "stubble", "full", "moustache"
    lipstick: float
    earrings: bool
    clothes: tuple[int, int, int]
    clothes_style: str  # "crew", "v", "collar"
    background: str  # "flat", "gradient", "wall", "room"
    bg_colors: tuple[tuple[int, int, int], tuple[int, int, int]]

    @property
    def greyness(self) -> float:
        return float(np.clip((self.age - 32) / 38, 0, 1) ** 1.3)

    @property
    def wrinkles(self) -> float:
        return float(np.clip((self.age - 25) / 45, 0, 1))


def random_look(rng: np.random.Generator, gender: Gender, age: int, race: str) -> Look:
    """Draw a person's appearance from their (true) gender, age and race."""
    light, dark = SKIN_TONES[race]
    skin = np.asarray(light, float) + rng.uniform(0, 1) * (np.asarray(dark, float) - np.asarray(light, float))
    skin = skin * (1 - 0.08 * np.clip((age - 40) / 40, 0, 1)) + rng.normal(0, 4, 3)  # duller with age
    hair = np.asarray(HAIR_COLORS[rng.integers(len(HAIR_COLORS))], float)
    female = gender is Gender.FEMALE
    if female:
        hair_style = str(rng.choice(["long", "long", "long", "bob", "bun", "short"]))
        beard = "none"
    else:
        bald_p = float(np.clip((age - 40) / 60, 0, 0.45))
        hair_style = "bald" if rng.random() < bald_p else str(rng.choice(["short", "short", "short", "bob"]))
        beard = str(rng.choice(["none", "none", "none", "stubble", "full", "moustache"]))
    clothes = _rgb(rng.uniform(20, 235, 3))
    bg_a = _rgb(rng.uniform(90, 245, 3))
    bg_b = _rgb(np.asarray(bg_a) * rng.uniform(0.55, 0.95))
    return Look(
        gender=gender, age=age, race=race, skin=_rgb(skin), hair=_rgb(hair), hair_style=hair_style,
        eye=EYE_COLORS[rng.integers(len(EYE_COLORS))],
        face_aspect=float(rng.uniform(1.28, 1.42) if female else rng.uniform(1.2, 1.34)),
        jaw=float(rng.uniform(0.0, 0.4) if female else rng.uniform(0.45, 1.0)),
        beard=beard, lipstick=float(rng.uniform(0.35, 0.9) if female and rng.random() < 0.75 else 0.0),
        earrings=bool(female and rng.random() < 0.35), clothes=clothes,
        clothes_style=str(rng.choice(["crew", "v", "collar"])),
        background=str(rng.choice(["flat", "gradient", "wall", "room"])), bg_colors=(bg_a, bg_b),
    )  # fmt: skip


@dataclass(frozen=True)
class Pose:
    """Per-photo variation: position, size, tilt and light."""

    cx: float
    cy: float
    eye_distance: float
    tilt_deg: float
    light_angle: float
    light_strength: float
    brightness: float
    warmth: float
    blur: float
    noise: float


def random_pose(rng: np.random.Generator) -> Pose:
    return Pose(
        cx=WIDTH / 2 + rng.normal(0, 12), cy=HEIGHT * 0.42 + rng.normal(0, 12),
        eye_distance=float(rng.uniform(60, 76)), tilt_deg=float(rng.normal(0, 3)),
        light_angle=float(rng.uniform(0, 2 * np.pi)), light_strength=float(rng.uniform(0.0, 0.25)),
        brightness=float(rng.uniform(0.85, 1.12)), warmth=float(rng.normal(0, 0.04)),
        blur=float(rng.uniform(0.3, 1.0)), noise=float(rng.uniform(1.5, 5.0)),
    )  # fmt: skip


def background(look: Look, rng: np.random.Generator) -> Image.Image:
    """The person's backdrop (the same for all their photos)."""
    return Image.fromarray(np.clip(_backdrop_array(look, rng), 0, 255).astype(np.uint8))


def _backdrop_array(look: Look, rng: np.random.Generator) -> np.ndarray:
    a, b = (np.asarray(c, np.float32) for c in look.bg_colors)
    yy, xx = _YY, _XX
    if look.background == "flat":
        img = np.broadcast_to(a, (HEIGHT, WIDTH, 3)).copy()
    elif look.background == "gradient":
        t = (yy / HEIGHT)[..., None]
        img = a * (1 - t) + b * t
    elif look.background == "wall":
        t = ((xx // 48 + yy // 24) % 2)[..., None] * 0.15
        img = a * (1 - t) + b * t
    else:  # a room: a door frame and a floor line
        img = np.broadcast_to(a, (HEIGHT, WIDTH, 3)).copy()
        x0 = int(rng.uniform(0, WIDTH * 0.3))
        img[:, x0 : x0 + 70] = b
        img[int(HEIGHT * 0.8) :] = b * 0.8
    return img


class _Canvas:
    """Supersampled RGBA layer with drawing in full-size pixel coordinates."""

    def __init__(self) -> None:
        self.image = Image.new("RGBA", (WIDTH * SS, HEIGHT * SS), (0, 0, 0, 0))
        self.draw = ImageDraw.Draw(self.image)

    @staticmethod
    def _box(cx: float, cy: float, rx: float, ry: float) -> list[float]:
        return [(cx - rx) * SS, (cy - ry) * SS, (cx + rx) * SS, (cy + ry) * SS]

    def ellipse(self, cx, cy, rx, ry, fill) -> None:
        self.draw.ellipse(self._box(cx, cy, rx, ry), fill=fill)

    def chord(self, cx, cy, rx, ry, start, end, fill) -> None:
        self.draw.chord(self._box(cx, cy, rx, ry), start, end, fill=fill)

    def arc(self, cx, cy, rx, ry, start, end, fill, width) -> None:
        self.draw.arc(self._box(cx, cy, rx, ry), start, end, fill=fill, width=max(1, int(width * SS)))

    def polygon(self, points, fill) -> None:
        self.draw.polygon([(x * SS, y * SS) for x, y in points], fill=fill)

    def line(self, points, fill, width) -> None:
        self.draw.line([(x * SS, y * SS) for x, y in points], fill=fill, width=max(1, int(width * SS)), joint="curve")

    def finish(self) -> Image.Image:
        return self.image.reduce(SS)


def _draw_person(look: Look, pose: Pose, rng: np.random.Generator) -> tuple[Image.Image, np.ndarray]:
    """The person on a transparent layer (before tilt) and their five landmarks."""
    c = _Canvas()
    d = pose.eye_distance
    cx, cy = pose.cx, pose.cy
    a = 1.1 * d  # face half-width
    b = a * look.face_aspect  # face half-height
    skin = look.skin
    shadow = _mix(skin, (60, 35, 30), 0.22)
    hair = _mix(look.hair, (205, 205, 208), look.greyness)
    female = look.gender is Gender.FEMALE

    # hair behind the head
    if look.hair_style == "long":
        c.polygon(
            [(cx - 1.25 * a, cy - 0.4 * b), (cx + 1.25 * a, cy - 0.4 * b), (cx + 1.35 * a, cy + 1.75 * b), (cx - 1.35 * a, cy + 1.75 * b)],
            hair,
        )
    elif look.hair_style == "bob":
        c.polygon(
            [(cx - 1.2 * a, cy - 0.4 * b), (cx + 1.2 * a, cy - 0.4 * b), (cx + 1.2 * a, cy + 0.75 * b), (cx - 1.2 * a, cy + 0.75 * b)], hair
        )
    # neck and shoulders
    neck_w = (0.5 if female else 0.62) * a
    c.polygon(
        [(cx - neck_w, cy + 0.5 * b), (cx + neck_w, cy + 0.5 * b), (cx + neck_w * 1.1, cy + 1.55 * b), (cx - neck_w * 1.1, cy + 1.55 * b)],
        shadow,
    )
    shoulder_w = (2.5 if female else 2.9) * a
    top = cy + 1.35 * b
    c.ellipse(cx, HEIGHT + 0.2 * b, shoulder_w, HEIGHT - top + 0.2 * b, look.clothes)
    collar = _mix(look.clothes, (0, 0, 0), 0.25)
    if look.clothes_style == "v":
        c.polygon([(cx - neck_w * 1.1, top), (cx + neck_w * 1.1, top), (cx, top + 0.6 * b)], shadow)
    elif look.clothes_style == "collar":
        c.polygon(
            [(cx - neck_w * 1.2, top - 0.05 * b), (cx, top + 0.35 * b), (cx - neck_w * 1.9, top + 0.25 * b)],
            _mix(look.clothes, (255, 255, 255), 0.5),
        )
        c.polygon(
            [(cx + neck_w * 1.2, top - 0.05 * b), (cx, top + 0.35 * b), (cx + neck_w * 1.9, top + 0.25 * b)],
            _mix(look.clothes, (255, 255, 255), 0.5),
        )
    else:
        c.arc(cx, top, neck_w * 1.15, 0.25 * b, 0, 180, collar, 0.05 * a)
    # ears, face, jaw
    for side in (-1, 1):
        c.ellipse(cx + side * 0.98 * a, cy + 0.02 * b, 0.16 * a, 0.26 * b, shadow)
        if look.earrings:
            c.ellipse(cx + side * 1.0 * a, cy + 0.3 * b, 0.05 * a, 0.05 * a, (225, 190, 70))
    c.ellipse(cx, cy, a, b, skin)
    jaw_w = (0.55 + 0.35 * look.jaw) * a
    c.polygon(
        [
            (cx - a * 0.97, cy + 0.1 * b),
            (cx + a * 0.97, cy + 0.1 * b),
            (cx + jaw_w, cy + 0.82 * b),
            (cx, cy + b),
            (cx - jaw_w, cy + 0.82 * b),
        ],
        skin,
    )
    # hair on top: a cap over the skull, cut by a rounded hairline
    hairline = cy - (0.66 + 0.08 * look.greyness) * b
    if look.hair_style == "bald":
        for side in (-1, 1):
            c.chord(cx + side * 0.85 * a, cy - 0.25 * b, 0.22 * a, 0.35 * b, 90, 270 if side < 0 else 450, hair)
    else:
        if look.hair_style == "bun":
            c.ellipse(cx, cy - 1.05 * b, 0.38 * a, 0.28 * b, hair)
        c.chord(cx, cy - 0.15 * b, 1.1 * a, 1.0 * b, 180, 360, hair)
        forehead_cy = cy + 0.1 * b
        c.chord(cx, forehead_cy, 0.92 * a, forehead_cy - hairline, 180, 360, skin)
    # eyes and brows
    eye_y = cy - 0.1 * b
    brow = _mix(look.hair, (200, 200, 200), look.greyness * 0.8)
    for side in (-1, 1):
        ex = cx + side * d / 2
        c.line(
            [(ex - 0.2 * a, eye_y - 0.2 * b), (ex, eye_y - 0.25 * b), (ex + 0.2 * a, eye_y - 0.21 * b)],
            brow,
            (0.055 if female else 0.08) * a,
        )
        _draw_eye(c, ex, eye_y, EYE_W * a, side, skin, look.eye, female)
        if look.wrinkles > 0.35:  # bags and crow's feet
            t = look.wrinkles
            c.arc(ex, eye_y + 0.06 * b, 0.17 * a, 0.07 * b, 20, 160, _mix(skin, (80, 50, 40), 0.35 * t), 0.02 * a)
            for k in (-1, 0, 1):
                c.line(
                    [(ex + side * 0.24 * a, eye_y + k * 0.03 * b), (ex + side * 0.36 * a, eye_y + k * 0.06 * b)],
                    _mix(skin, (80, 50, 40), 0.3 * t),
                    0.015 * a,
                )
    # nose
    nose = np.array([cx, cy + 0.26 * b])
    c.line([(cx - 0.06 * a, eye_y + 0.05 * b), (cx - 0.1 * a, nose[1] - 0.02 * b)], shadow, 0.04 * a)
    c.ellipse(cx, nose[1], 0.13 * a, 0.07 * b, _mix(skin, shadow, 0.45))
    for side in (-1, 1):
        c.ellipse(cx + side * 0.075 * a, nose[1] + 0.04 * b, 0.045 * a, 0.022 * b, _mix(skin, (40, 20, 20), 0.6))
    # mouth
    mouth_y = cy + 0.52 * b
    mw = 0.36 * a
    lip = _mix(_mix(skin, (170, 70, 70), 0.45), (190, 20, 50), look.lipstick)
    c.ellipse(cx, mouth_y, mw, 0.055 * b, lip)
    c.line([(cx - mw, mouth_y), (cx, mouth_y + 0.012 * b), (cx + mw, mouth_y)], _mix(lip, (20, 5, 5), 0.6), 0.025 * a)
    # age lines: forehead, nasolabial folds
    line_col = _mix(skin, (70, 45, 35), 0.35 * look.wrinkles)
    for k in range(int(look.wrinkles * 4)):
        y = hairline + 0.06 * b + (k + 1) * 0.07 * b
        if y < eye_y - 0.3 * b:
            c.arc(cx, y + 0.3 * b, 0.45 * a, 0.3 * b, 235, 305, line_col, 0.018 * a)
    if look.wrinkles > 0.2:
        for side in (-1, 1):
            c.line([(cx + side * 0.2 * a, nose[1] + 0.02 * b), (cx + side * 0.42 * a, mouth_y + 0.1 * b)], line_col, 0.025 * a)
    # facial hair
    beard_col = _mix(hair, skin, 0.1)
    if look.beard == "full":
        c.polygon(
            [
                (cx - 0.93 * a, cy + 0.2 * b),
                (cx - mw * 1.2, mouth_y - 0.05 * b),
                (cx - mw * 0.8, mouth_y + 0.13 * b),
                (cx + mw * 0.8, mouth_y + 0.13 * b),
                (cx + mw * 1.2, mouth_y - 0.05 * b),
                (cx + 0.93 * a, cy + 0.2 * b),
                (cx + jaw_w, cy + 0.85 * b),
                (cx, cy + 1.03 * b),
                (cx - jaw_w, cy + 0.85 * b),
            ],
            beard_col,
        )
    if look.beard in {"full", "moustache"}:
        c.polygon(
            [
                (cx - mw * 1.05, mouth_y - 0.02 * b),
                (cx, mouth_y - 0.14 * b),
                (cx + mw * 1.05, mouth_y - 0.02 * b),
                (cx, mouth_y - 0.07 * b),
            ],
            beard_col,
        )
    if look.beard == "full":  # the lips show through the beard
        c.ellipse(cx, mouth_y, mw * 0.92, 0.045 * b, lip)

    layer = c.finish()
    if look.beard == "stubble":
        layer = _stubble(layer, cx, cy, a, b, mouth_y, rng)
    light = np.array([np.cos(pose.light_angle) * 0.35, -0.45, 0.82])
    layer = _shade_face(layer, cx, cy, a, b, light / np.linalg.norm(light))
    landmarks = np.array([[cx - d / 2, eye_y], [cx + d / 2, eye_y], nose, [cx - mw * 0.95, mouth_y], [cx + mw * 0.95, mouth_y]])
    return layer, landmarks


def _almond(ex: float, ey: float, w: float, up: float, low: float, side: int, n: int = 12) -> list[tuple[float, float]]:
    t = np.linspace(0, 1, n)
    xs = ex - side * w + side * 2 * w * t  # from the inner to the outer corner
    tilt = -0.12 * up * t  # outer corner slightly higher
    upper = [(x, ey + tl - up * np.sin(np.pi * tt) ** 0.8) for x, tl, tt in zip(xs, tilt, t, strict=False)]
    lower = [(x, ey + tl + low * np.sin(np.pi * tt)) for x, tl, tt in zip(xs[::-1], tilt[::-1], t[::-1], strict=False)]
    return upper + lower


def _draw_eye(c: _Canvas, ex: float, ey: float, w: float, side: int, skin, iris, female: bool) -> None:
    """An almond-shaped eye: white, iris clipped by the lids, lash line and crease."""
    up, low = 0.42 * w, 0.3 * w
    c.polygon(_almond(ex, ey, w, up, low, side), (238, 236, 230))
    r = 0.5 * w
    c.ellipse(ex, ey, r, r, iris)
    c.ellipse(ex, ey, 0.45 * r, 0.45 * r, (12, 10, 10))
    c.ellipse(ex + 0.3 * r, ey - 0.3 * r, 0.15 * r, 0.15 * r, (245, 245, 245))
    lid = _mix(skin, (60, 40, 35), 0.12)
    outline = _almond(ex, ey, w, up, low, side)
    n = len(outline) // 2
    c.polygon(outline[:n] + [(x, y - 1.2 * r) for x, y in outline[:n][::-1]], lid)  # upper lid over the iris
    c.polygon(outline[n:] + [(x, y + 1.2 * r) for x, y in outline[n:][::-1]], skin)  # lower lid
    c.line(outline[:n], (25, 18, 16), (0.16 if female else 0.1) * w)
    c.line(outline[n:], _mix(skin, (60, 40, 35), 0.5), 0.05 * w)
    c.line([(x, y - 0.45 * up) for x, y in outline[1 : n - 1]], _mix(skin, (60, 40, 35), 0.4), 0.05 * w)


def _stubble(layer: Image.Image, cx, cy, a, b, mouth_y, rng) -> Image.Image:
    arr = np.asarray(layer).copy()
    yy, xx = _YY, _XX
    region = (((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 < 1) & (yy > cy + 0.3 * b)
    region &= ~((np.abs(xx - cx) < 0.4 * a) & (np.abs(yy - mouth_y) < 0.07 * b))
    dots = region & (rng.random(region.shape) < 0.35)
    arr[dots, :3] = (arr[dots, :3] * 0.72).astype(np.uint8)
    return Image.fromarray(arr)


def _shade_face(layer: Image.Image, cx: float, cy: float, a: float, b: float, light: np.ndarray) -> Image.Image:
    """Lambertian shading of a face-shaped height field, so the face reads as a 3-D surface."""
    arr = np.asarray(layer).astype(np.float32)
    y0, y1 = int(max(cy - 1.25 * b, 0)), int(min(cy + 1.25 * b, HEIGHT))
    x0, x1 = int(max(cx - 1.25 * a, 0)), int(min(cx + 1.25 * a, WIDTH))
    X = (_XX[y0:y1, x0:x1] - cx) / a
    Y = (_YY[y0:y1, x0:x1] - cy) / b
    r2 = X * X + Y * Y
    ax = np.abs(X)
    height = np.sqrt(np.clip(1.0 - r2, 0.04, 1.0))
    height += 0.22 * np.exp(-((X / 0.09) ** 2) - ((Y - 0.08) / 0.2) ** 2)  # nose ridge
    height += 0.16 * np.exp(-((X / 0.13) ** 2) - ((Y - 0.24) / 0.07) ** 2)  # nose tip
    height += 0.10 * np.exp(-(((Y + 0.3) / 0.06) ** 2)) * np.exp(-((X / 0.6) ** 4))  # brow ridge
    height -= 0.12 * np.exp(-(((ax - 0.42) / 0.17) ** 2) - ((Y + 0.1) / 0.1) ** 2)  # eye sockets
    height += 0.08 * np.exp(-(((ax - 0.5) / 0.2) ** 2) - ((Y - 0.18) / 0.15) ** 2)  # cheekbones
    height += 0.06 * np.exp(-((X / 0.35) ** 2) - ((Y - 0.52) / 0.06) ** 2)  # lips
    height += 0.08 * np.exp(-((X / 0.25) ** 2) - ((Y - 0.88) / 0.1) ** 2)  # chin
    gy, gx = np.gradient(height * a)
    norm = np.sqrt(gx * gx + gy * gy + 1.0)
    lambert = np.clip((-gx * light[0] - gy * light[1] + light[2]) / norm, 0, 1)
    shade = 0.55 + 0.55 * lambert
    weight = np.clip((1.12 - r2) / 0.12, 0, 1)  # fade out beyond the face outline
    factor = 1 + weight * (shade - 1)
    # a soft specular highlight (forehead, nose, cheekbones) whatever the skin tone
    half = light + np.array([0.0, 0.0, 1.0])
    half /= np.linalg.norm(half)
    spec = np.clip((-gx * half[0] - gy * half[1] + half[2]) / norm, 0, 1) ** 24
    arr[y0:y1, x0:x1, :3] *= factor[..., None]
    arr[y0:y1, x0:x1, :3] += (SPECULAR * weight * spec)[..., None]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _rotate(points: np.ndarray, center: tuple[float, float], degrees: float) -> np.ndarray:
    # PIL rotates counter-clockwise on screen, i.e. clockwise in (x, y-down) maths.
    t = np.radians(degrees)
    rot = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    return (points - center) @ rot.T + center


def render(
    look: Look,
    pose: Pose,
    rng: np.random.Generator,
    placement: Placement | None = None,
    mask_style: MaskStyle | None = None,
    backdrop: Image.Image | None = None,
) -> tuple[Image.Image, np.ndarray]:
    """One photo of `look` in `pose`; returns (RGB image, five landmarks).

    Pass `backdrop` (from `background`) to reuse one background for all of a person's photos.
    """
    image = (backdrop if backdrop is not None else background(look, rng)).copy()
    layer, landmarks = _draw_person(look, pose, rng)
    center = (pose.cx, pose.cy)
    layer = layer.rotate(pose.tilt_deg, resample=Image.BILINEAR, center=center)
    landmarks = _rotate(landmarks, center, pose.tilt_deg)
    image.paste(layer, (0, 0), layer)
    if placement is not None:
        if mask_style is None:
            raise ValueError("a mask placement needs a mask style")
        image, _ = paint_mask(image, landmarks, placement, mask_style, rng)
    return _camera(image, pose, rng), landmarks


def _camera(image: Image.Image, pose: Pose, rng: np.random.Generator) -> Image.Image:
    """Directional light, exposure, white balance, lens blur and sensor noise."""
    gx = np.float32(2 * pose.light_strength * np.cos(pose.light_angle) / WIDTH)
    gy = np.float32(2 * pose.light_strength * np.sin(pose.light_angle) / HEIGHT)
    light = (
        _XX * gx + _YY * gy + np.float32(1 - pose.light_strength * (np.cos(pose.light_angle) + np.sin(pose.light_angle)))
    ) * np.float32(pose.brightness)
    tint = np.array([1 + pose.warmth, 1.0, 1 - pose.warmth], np.float32)
    arr = np.asarray(image, dtype=np.float32) * light[..., None] * tint
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(pose.blur))
    arr = np.asarray(img, dtype=np.float32) + pose.noise * rng.standard_normal((HEIGHT, WIDTH, 1), dtype=np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
