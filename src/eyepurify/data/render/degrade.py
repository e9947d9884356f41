"""The "wild" (outdoor) domain: relighting of the same surface plus camera effects.

Every factor has a severity in [0, 1]; 0 switches it off. With every factor off the wild
render is byte-identical to the indoor one (the test suite checks it). Factors:

light     directional key light turned away from the camera (severity = how far and how
          dominant over the ambient light)
shadow    cast shadows: the brow shadows the upper face, the upper lid the top of the
          eyeball (severity = darkness and reach)
color     white balance / colour temperature (warm or cool) and a green-magenta tint
exposure  exposure (±1.3 EV at severity 1) and gamma (0.65..1.5)
glint     strong corneal glints (a sun spot and secondary lights) and a window-like
          reflection across the cornea
noise     signal-dependent sensor noise with a chroma part
blur      Gaussian defocus (sigma up to 1.6 px per 60 px of width)
lowres    downsample by up to 4× (area) and upsample back (bilinear)
jpeg      JPEG compression, quality 95 (severity 0+) down to 15 (severity 1)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from eyepurify.data.render import geometry as geo
from eyepurify.data.render.draw import Lighting, indoor_lighting
from eyepurify.data.render.geometry import EyeLayout
from eyepurify.data.render.params import EyeParams
from eyepurify.errors import EyepurifyError

F32 = np.float32
FACTOR_NAMES = ("light", "shadow", "color", "exposure", "glint", "noise", "blur", "lowres", "jpeg")


@dataclass(frozen=True)
class WildFactors:
    """Severity per factor: None = draw uniformly in [0, 1] from the render's rng,
    0 = off, any other value in [0, 1] = that severity."""

    light: float | None = None
    shadow: float | None = None
    color: float | None = None
    exposure: float | None = None
    glint: float | None = None
    noise: float | None = None
    blur: float | None = None
    lowres: float | None = None
    jpeg: float | None = None

    def __post_init__(self) -> None:
        for name in FACTOR_NAMES:
            val = getattr(self, name)
            if val is not None and not (0.0 <= float(val) <= 1.0):
                raise EyepurifyError(f"wild factor {name}={val} is outside [0, 1] (use a severity in [0, 1])")

    @classmethod
    def off(cls) -> WildFactors:
        """Every factor switched off (renders like indoor)."""
        return cls(**{n: 0.0 for n in FACTOR_NAMES})

    @classmethod
    def parse(cls, text: str) -> WildFactors:
        """"shadow=0.5,noise=0" -> WildFactors with those set and the rest None (random)."""
        kw: dict[str, float] = {}
        for item in filter(None, (p.strip() for p in text.split(","))):
            name, sep, val = item.partition("=")
            name = name.strip()
            if not sep or name not in FACTOR_NAMES:
                raise EyepurifyError(
                    f"bad wild factor {item!r} (use name=severity with name in {', '.join(FACTOR_NAMES)})"
                )
            try:
                kw[name] = float(val)
            except ValueError:
                raise EyepurifyError(f"bad severity in {item!r} (use a number in [0, 1])") from None
        return cls(**kw)

    def resolve(self, rng: np.random.Generator) -> WildFactors:
        """Draw the missing severities (one draw per factor, in FACTOR_NAMES order)."""
        draws = rng.uniform(0.0, 1.0, len(FACTOR_NAMES))
        return WildFactors(**{
            n: float(d) if getattr(self, n) is None else float(getattr(self, n))  # type: ignore[arg-type]
            for n, d in zip(FACTOR_NAMES, draws, strict=True)
        })

    def to_dict(self) -> dict[str, float | None]:
        return dataclasses.asdict(self)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def wild_lighting(params: EyeParams, lay: EyeLayout, f: WildFactors, rng: np.random.Generator) -> Lighting:
    """The indoor rig changed by the light, shadow and glint factors (resolved ``f``)."""
    base = indoor_lighting(params, lay)
    r = rng.uniform(0.0, 1.0, 12)
    amb, key, ldir = base.ambient, base.key_rgb, np.asarray(base.key_dir, np.float64)
    if f.light:
        s = float(f.light)
        elev = np.radians(10 + 60 * r[0])  # above the horizon
        azim = np.radians(-80 + 160 * r[1])  # left/right of the camera axis
        sun = np.array([np.sin(azim) * np.cos(elev), -np.sin(elev), -np.cos(azim) * np.cos(elev)])
        ldir = _unit((1 - s) * ldir + s * sun)
        amb = amb * (1.0 - 0.6 * s)
        key = key * (1.0 + 1.6 * s)
    shadow = brow_edge = slope = lid = 0.0
    if f.shadow:
        s = float(f.shadow)
        shadow = 0.35 + 0.55 * s
        brow_edge = -params.brow_height + 2.0 + s * (params.brow_height - 2.0) * (0.4 + 0.6 * r[2])
        slope = (r[3] - 0.5) * 0.8
        lid = 0.4 + 2.5 * s * r[4]
    glints = base.glints
    reflection = (0.0, 0.0)
    if f.glint:
        s = float(f.glint)
        sun = _unit(np.array([r[5] - 0.5, -0.3 - 0.6 * r[6], -1.0]))
        gx, gy = geo.glint_position(lay, sun)
        sig = max(0.6, (0.35 + 0.6 * s) * lay.scale)
        glints = ((float(gx), float(gy), sig, 0.8 + 2.0 * s),)
        for k in range(int(1 + 3 * s * r[7])):
            other = _unit(np.array([rng.uniform(-0.7, 0.7), rng.uniform(-0.7, 0.4), -1.0]))
            ox, oy = geo.glint_position(lay, other)
            glints += ((float(ox), float(oy), max(0.5, 0.3 * lay.scale), 0.3 + 0.9 * s * (0.5 + 0.5 * k % 2)),)
        reflection = (0.25 * s * r[8], float(np.pi * r[9]))
    return Lighting(
        ambient=np.asarray(amb, F32), key_rgb=np.asarray(key, F32), key_dir=np.asarray(ldir, F32),
        shadow=shadow, brow_edge=brow_edge, edge_slope=slope, lid_shadow=lid,
        glints=glints, reflection=reflection,
    )


def camera(img: np.ndarray, f: WildFactors, rng: np.random.Generator) -> np.ndarray:
    """Camera effects on an (H, W, 3) float display-RGB image -> (H, W, 3) uint8.

    Order: blur, low resolution, sensor noise, white balance, exposure/gamma, 8-bit, JPEG.
    With every factor off this is exactly ``draw.to_uint8``.
    """
    h, w = img.shape[:2]
    r = rng.uniform(0.0, 1.0, 8)
    out = np.clip(img, 0.0, None).astype(F32)
    if f.blur:
        sigma = 0.2 + 1.4 * float(f.blur) * w / 60.0
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
    if f.lowres:
        k = 1.0 + 3.0 * float(f.lowres)
        small = cv2.resize(out, (max(2, round(w / k)), max(2, round(h / k))), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if f.noise:
        s = float(f.noise)
        lum = np.sqrt(np.clip(out, 0.0, 1.0) + 0.01)
        out = out + (0.06 * s) * lum * rng.standard_normal(out.shape, dtype=F32)
        out = out + (0.03 * s) * rng.standard_normal((h, w, 1), dtype=F32)
    if f.color:
        s = float(f.color)
        warm = (2 * r[0] - 1) * 0.35 * s
        tint = (2 * r[1] - 1) * 0.1 * s
        gains = np.array([1 + warm, 1 - tint, 1 - warm], F32)
        out = out * gains
    if f.exposure:
        s = float(f.exposure)
        ev = (2 * r[2] - 1) * 1.3 * s
        gamma = float(np.exp((2 * r[3] - 1) * 0.42 * s))
        out = np.power(np.clip(out * 2.0**ev, 0.0, 1.0), gamma)
    res = (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if f.jpeg:
        q = int(round(95 - 80 * float(f.jpeg)))
        ok, buf = cv2.imencode(".jpg", res[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
        if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
            raise EyepurifyError("JPEG encoding failed")
        res = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])
    return res
