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

The v2 profile (``wild2``, ``profile="v2"``) adds the factors of ``V2_FACTOR_NAMES``; in the
default v1 profile they are off (0) and setting one is an error.
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
from eyepurify.records import AsDict

F32 = np.float32
FACTOR_NAMES = ("light", "shadow", "color", "exposure", "glint", "noise", "blur", "lowres", "jpeg")
#: Factors of the v2 wild profile only (see ``wild2``).
V2_FACTOR_NAMES = (
    "dark", "cast", "flare", "motion", "fringe", "glasses", "skin", "sclera", "lashes", "stamp", "equalize",
)
ALL_FACTOR_NAMES = FACTOR_NAMES + V2_FACTOR_NAMES
PROFILES = ("v1", "v2")


@dataclass(frozen=True)
class WildFactors(AsDict):
    """Severity per factor: None = drawn from the render's randomness, 0 = off, any other
    value in [0, 1] = that severity.

    The v1 factors (``FACTOR_NAMES``) are drawn uniformly in [0, 1]; the v2-only factors
    (``V2_FACTOR_NAMES``) are drawn by ``wild2.resolve_v2`` (present with a per-factor
    probability, then a uniform severity) and are off in the v1 profile.
    """

    light: float | None = None
    shadow: float | None = None
    color: float | None = None
    exposure: float | None = None
    glint: float | None = None
    noise: float | None = None
    blur: float | None = None
    lowres: float | None = None
    jpeg: float | None = None
    dark: float | None = None
    cast: float | None = None
    flare: float | None = None
    motion: float | None = None
    fringe: float | None = None
    glasses: float | None = None
    skin: float | None = None
    sclera: float | None = None
    lashes: float | None = None
    stamp: float | None = None
    equalize: float | None = None

    def __post_init__(self) -> None:
        for name in ALL_FACTOR_NAMES:
            val = getattr(self, name)
            if val is None:
                continue
            try:
                ok = 0.0 <= float(val) <= 1.0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise EyepurifyError(f"wild factor {name}={val} is outside [0, 1] (use a severity in [0, 1])")

    @classmethod
    def off(cls) -> WildFactors:
        """Every factor switched off (renders like indoor, in either profile)."""
        return cls(**{n: 0.0 for n in ALL_FACTOR_NAMES})

    @classmethod
    def parse(cls, text: str) -> WildFactors:
        """"shadow=0.5,noise=0" -> WildFactors with those set and the rest None (random)."""
        kw: dict[str, float] = {}
        for item in filter(None, (p.strip() for p in text.split(","))):
            name, sep, val = item.partition("=")
            name = name.strip()
            if not sep or name not in ALL_FACTOR_NAMES:
                raise EyepurifyError(
                    f"bad wild factor {item!r} (use name=severity with name in {', '.join(ALL_FACTOR_NAMES)})"
                )
            try:
                kw[name] = float(val)
            except ValueError:
                raise EyepurifyError(f"bad severity in {item!r} (use a number in [0, 1])") from None
        return cls(**kw)

    def check_profile(self, profile: str) -> None:
        """Raise EyepurifyError for an unknown profile, or a v2-only factor set in v1."""
        if profile not in PROFILES:
            raise EyepurifyError(f"unknown wild profile {profile!r} (use one of {', '.join(PROFILES)})")
        if profile == "v1":
            on = [n for n in V2_FACTOR_NAMES if getattr(self, n)]
            if on:
                raise EyepurifyError(
                    f"wild factor {on[0]}={getattr(self, on[0])} exists only in the v2 wild profile "
                    "(use profile='v2' / --wild-profile v2, or drop it)"
                )

    def resolve(self, rng: np.random.Generator) -> WildFactors:
        """Draw the missing v1 severities (one draw per factor, in FACTOR_NAMES order); the
        v2-only factors are left as they are (``wild2.resolve_v2`` draws them)."""
        draws = rng.uniform(0.0, 1.0, len(FACTOR_NAMES))
        return dataclasses.replace(self, **{
            n: float(d) if getattr(self, n) is None else float(getattr(self, n))
            for n, d in zip(FACTOR_NAMES, draws, strict=True)
        })

    def v1_only(self) -> WildFactors:
        """The same with every v2-only factor off (what the v1 profile renders)."""
        return dataclasses.replace(self, **{n: 0.0 for n in V2_FACTOR_NAMES})


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


@dataclass(frozen=True)
class CameraDraws:
    """The camera's draws from the wild rng: ``r`` (8,) uniforms (white balance, exposure,
    gamma); ``noise`` (H, W, 3) and ``lum_noise`` (H, W, 1) standard normals (None when the
    noise factor is off)."""

    r: np.ndarray
    noise: np.ndarray | None = None
    lum_noise: np.ndarray | None = None


def camera_draws(f: WildFactors, rng: np.random.Generator, size: tuple[int, int]) -> CameraDraws:
    """Everything ``camera`` draws from ``rng``, in the order it draws it."""
    h, w = size
    r = rng.uniform(0.0, 1.0, 8)
    if not f.noise:
        return CameraDraws(r)
    return CameraDraws(r, rng.standard_normal((h, w, 3), dtype=F32), rng.standard_normal((h, w, 1), dtype=F32))


def blur_step(out: np.ndarray, f: WildFactors) -> np.ndarray:
    """Gaussian defocus (sigma up to 1.6 px per 60 px of width)."""
    if not f.blur:
        return out
    sigma = 0.2 + 1.4 * float(f.blur) * out.shape[1] / 60.0
    return cv2.GaussianBlur(out, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)


def lowres_step(out: np.ndarray, f: WildFactors) -> np.ndarray:
    """Area-downsample by up to 4× and bilinear upsample back."""
    if not f.lowres:
        return out
    h, w = out.shape[:2]
    k = 1.0 + 3.0 * float(f.lowres)
    small = cv2.resize(out, (max(2, round(w / k)), max(2, round(h / k))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def noise_step(out: np.ndarray, f: WildFactors, d: CameraDraws) -> np.ndarray:
    """Signal-dependent noise (sigma up to 0.06) plus 0.03 luminance noise."""
    if not f.noise:
        return out
    assert d.noise is not None and d.lum_noise is not None
    s = float(f.noise)
    lum = np.sqrt(np.clip(out, 0.0, 1.0) + 0.01)
    out = out + (0.06 * s) * lum * d.noise
    return out + (0.03 * s) * d.lum_noise


def color_step(out: np.ndarray, f: WildFactors, d: CameraDraws) -> np.ndarray:
    """White balance ±35 % red/blue, ±10 % green-magenta."""
    if not f.color:
        return out
    s, r = float(f.color), d.r
    warm = (2 * r[0] - 1) * 0.35 * s
    tint = (2 * r[1] - 1) * 0.1 * s
    return out * np.array([1 + warm, 1 - tint, 1 - warm], F32)


def exposure_step(out: np.ndarray, f: WildFactors, d: CameraDraws) -> np.ndarray:
    """±1.3 EV and gamma 0.66..1.52 (the result is clipped to [0, 1])."""
    if not f.exposure:
        return out
    s, r = float(f.exposure), d.r
    ev = (2 * r[2] - 1) * 1.3 * s
    gamma = float(np.exp((2 * r[3] - 1) * 0.42 * s))
    return np.power(np.clip(out * 2.0**ev, 0.0, 1.0), gamma)


def quantize(out: np.ndarray) -> np.ndarray:
    """Float display RGB -> uint8 (clipped, rounded), as ``draw.to_uint8``."""
    return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def jpeg_step(res: np.ndarray, f: WildFactors) -> np.ndarray:
    """JPEG round trip, quality 95 (severity 0+) down to 15 (severity 1)."""
    if not f.jpeg:
        return res
    q = int(round(95 - 80 * float(f.jpeg)))
    ok, buf = cv2.imencode(".jpg", res[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
        raise EyepurifyError("JPEG encoding failed")
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert decoded is not None
    return np.ascontiguousarray(decoded[:, :, ::-1])


def camera(img: np.ndarray, f: WildFactors, rng: np.random.Generator) -> np.ndarray:
    """Camera effects on an (H, W, 3) float display-RGB image -> (H, W, 3) uint8.

    Order: blur, low resolution, sensor noise, white balance, exposure/gamma, 8-bit, JPEG.
    With every factor off this is exactly ``draw.to_uint8``.
    """
    return develop(img, f, camera_draws(f, rng, img.shape[:2]))


def develop(img: np.ndarray, f: WildFactors, d: CameraDraws) -> np.ndarray:
    """``camera`` with its draws given (the v1 pipeline)."""
    out = np.clip(img, 0.0, None).astype(F32)
    out = lowres_step(blur_step(out, f), f)
    out = exposure_step(color_step(noise_step(out, f, d), f, d), f, d)
    return jpeg_step(quantize(out), f)
