"""The v2 wild profile: the v1 wild domain plus what real eye photos show and v1 lacks.

Every v2 factor changes only the wild image (never labels, landmarks, gaze or the indoor
render). With every v2 factor at 0 a v2 wild render is byte-identical to the v1 one, and
with every factor at 0 to the indoor one. Factors (severity in [0, 1], 0 = off):

dark     low light: up to -3.8 EV at the sensor, part of it gained back (so the noise is
         gained with it), shot + read noise with a blotchy chroma part, softer focus
cast     strong colour casts (purple/magenta as from IR-contaminated webcams, blue, green,
         orange), desaturation and a coloured black level
flare    veiling glare from one side plus a push of exposure into clipping (damped by dark)
motion   motion blur along a random direction (up to 4.5 px per 60 px of width)
fringe   lateral chromatic aberration: red and blue scaled and shifted against green
glasses  a lens over the eye: a smooth bright or coloured reflection band with one sharp
         edge, a slight haze, and (often) the frame's rim around the eye
skin     fine skin structure in the head frame: pores, grain, mottling, fine wrinkles
         parallel to the lids, crow's feet, freckles
sclera   a less clean sclera: greyish / yellowish / pinkish tint, shading by both lids
lashes   individual curved upper lashes; some hang over the top of the eye opening
stamp    a burned-in date/time text near the bottom (as webcams and phones print)
equalize histogram equalisation of the luminance, blended in by severity (MPIIGaze's
         normalised patches are equalised; phones and webcams apply auto-levels)

Randomness: ``key`` is one integer drawn from the wild rng after every v1 draw, so the
v1 factors draw exactly what they draw in v1. Factor k's presence and severity are row k
of ``default_rng([key, 0]).uniform(size=(11, 2))`` (always drawn whole) and its shape comes
from its own generator ``default_rng([key, 1 + k])``, so switching one factor off or fixing
its severity changes no other factor.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import cv2
import numpy as np

from eyepurify.data.render import degrade
from eyepurify.data.render import geometry as geo
from eyepurify.data.render.degrade import V2_FACTOR_NAMES, CameraDraws, WildFactors
from eyepurify.data.render.draw import Surface
from eyepurify.data.render.geometry import EyeLayout
from eyepurify.data.render.params import EyeParams

F32 = np.float32
EV_DARK = 2.0  # most underexposure of the dark factor (EV, at severity 1)
SS = 4  # supersampling of drawn strokes (lashes, rims, text)

#: Probability that a v2 factor left unset (None) is present in a render; when present its
#: severity is uniform in [0, 1]. Chosen by looking at real eye crops side by side.
PRESENT = {
    "dark": 0.2, "cast": 0.7, "flare": 0.15, "motion": 0.3, "fringe": 0.5,
    "glasses": 0.4, "skin": 0.9, "sclera": 0.85, "lashes": 0.75, "stamp": 0.12, "equalize": 0.3,
}


#: In v2 an unset v1 factor's uniform draw u (the same draw as in v1) becomes u ** k: k > 1
#: makes the factor rarer at full strength (the whole range stays covered). Real eye crops
#: are far less noisy and pixelated, and less often strongly mis-balanced, than v1's
#: uniform draws make them; the Fréchet distances to all three real sets fall with these.
V1_SHAPE = {"light": 1.0, "shadow": 1.0, "color": 2.0, "exposure": 2.0, "glint": 1.0,
            "noise": 3.0, "blur": 1.0, "lowres": 3.0, "jpeg": 1.0}


def stream(key: int, name: str) -> np.random.Generator:
    """The generator of v2 factor ``name``'s shape (where, how, which colour)."""
    return np.random.default_rng([key, 1 + V2_FACTOR_NAMES.index(name)])


def severity_draws(key: int) -> np.ndarray:
    """(len(V2_FACTOR_NAMES), 2) uniforms: row k = (presence, severity) draws of factor k.
    Every row is always drawn, so fixing one factor moves no other factor's draws."""
    return np.random.default_rng([key, 0]).uniform(0.0, 1.0, (len(V2_FACTOR_NAMES), 2))


def reshape_v1(f: WildFactors, drawn: WildFactors) -> WildFactors:
    """``drawn`` (v1 factors resolved by ``WildFactors.resolve``) with the severities that
    ``f`` left unset mapped by ``V1_SHAPE``; set ones are kept exactly."""
    return dataclasses.replace(drawn, **{
        n: float(getattr(drawn, n)) ** V1_SHAPE[n] for n in V1_SHAPE if getattr(f, n) is None})


def resolve_v2(f: WildFactors, key: int) -> WildFactors:
    """``f`` with every unset v2 factor drawn from its row of ``severity_draws`` (see ``PRESENT``)."""
    draws = severity_draws(key)
    kw = {}
    for name, (u, s) in zip(V2_FACTOR_NAMES, draws.tolist(), strict=True):
        if getattr(f, name) is None:
            kw[name] = float(s) if u < PRESENT[name] else 0.0
        else:
            kw[name] = float(getattr(f, name))
    return dataclasses.replace(f, **kw)


# ---------------------------------------------------------------- surface (albedo) effects


def _texture(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, cell: tuple[float, float],
             lo: tuple[float, float] | None = None, hi: tuple[float, float] | None = None) -> np.ndarray:
    """(H, W) float32 unit-variance noise fixed to the head frame: cells of ``cell`` = (du, dv)
    mm, sampled at the head-frame coordinates (u, v) mm of each pixel; ``lo`` / ``hi``: the
    (u, v) range if known."""
    u0, v0 = (float(u.min()), float(v.min())) if lo is None else lo
    u1, v1 = (float(u.max()), float(v.max())) if hi is None else hi
    gw = int(math.ceil((u1 - u0) / cell[0])) + 4
    gh = int(math.ceil((v1 - v0) / cell[1])) + 4
    grid = rng.standard_normal((gh, gw), dtype=F32)
    mx = ((u - u0) * (1.0 / cell[0]) + 1.5).astype(F32)
    my = ((v - v0) * (1.0 / cell[1]) + 1.5).astype(F32)
    return cv2.remap(grid, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def skin_albedo(surf: Surface, lay: EyeLayout, s: float, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) skin albedo with pores, grain, mottling, wrinkles and freckles of severity s."""
    u, v = surf.u, surf.v
    px = 1.0 / lay.scale  # mm per pixel
    lo, hi = (float(u.min()), float(v.min())), (float(u.max()), float(v.max()))
    fine = max(0.3, 0.9 * px)
    grain = _texture(rng, u, v, (fine, fine), lo, hi)
    pores = np.clip(grain - 1.1, 0.0, 2.0)
    mottle = _texture(rng, u, v, (2.2, 2.2), lo, hi)
    # distance outside the opening, measured from the nearer lid (lines parallel to the lids)
    d_up, d_lo, _, _ = geo.opening_distance(lay, u, v)
    below, above = -d_lo, -d_up
    line = max(0.8, 2.0 * px)  # wrinkle spacing: at least two pixels
    lines_lo = _texture(rng, u, below, (4.0, line), (lo[0], float(below.min())), (hi[0], float(below.max())))
    lines_up = _texture(rng, u, above, (5.0, line), (lo[0], float(above.min())), (hi[0], float(above.max())))
    sharp = 1.0 / max(0.12, 0.35 * px / line)  # ridges about a pixel wide
    wr = np.exp(np.square(lines_lo * sharp) * -1.0) * np.clip((below - 1.0) * 0.5, 0.0, 1.0) * np.exp(-below / 8.0)
    wr += 0.6 * np.exp(np.square(lines_up * sharp) * -1.0) * np.clip((above - 1.5) * 0.3, 0.0, 1.0) * np.exp(-above / 6.0)
    # crow's feet: lines radiating from the outer corner
    du, dv = u - lay.u_out, v - lay.v_out
    rad = np.sqrt(du * du + dv * dv)
    ang = np.arctan2(dv, np.maximum(du, 1e-3))
    feet = _texture(rng, ang * 8.0, rad, (max(0.8, 2.0 * px) * 0.5, 3.0))
    wr += np.exp(np.square(feet * sharp) * -1.0) * np.clip((du - 0.5) * 0.5, 0.0, 1.0) * np.exp(-rad / 10.0)
    dark = s * (0.1 * pores + 0.025 * grain + 0.22 * rng.uniform(0.5, 1.0) * wr)
    lum = (1.0 - dark) * (1.0 + s * 0.06 * mottle)
    # freckles and moles: a few small dark spots (points blurred to discs of one size per draw)
    n_spots = int(rng.poisson(8.0 * s))
    if n_spots:
        h, w = lum.shape
        sigma = rng.uniform(0.2, 0.55) * lay.scale  # px
        spots = np.zeros((h, w), F32)
        ys, xs = rng.integers(0, h, n_spots), rng.integers(0, w, n_spots)
        spots[ys, xs] = s * rng.uniform(0.12, 0.4, n_spots).astype(F32) * F32(2 * np.pi * max(sigma, 0.5) ** 2)
        spots = np.asarray(cv2.GaussianBlur(spots, (0, 0), sigmaX=max(sigma, 0.5), borderType=cv2.BORDER_CONSTANT), F32)
        lum *= 1.0 - np.minimum(spots, 0.6)
    out = surf.skin_albedo * lum[..., None].astype(F32)
    return np.clip(out, 0.0, 1.0).astype(F32)


SCLERA_TINTS = np.array([
    [0.86, 0.85, 0.84],  # grey
    [1.0, 0.93, 0.72],  # yellowish
    [1.0, 0.9, 0.87],  # pinkish / bloodshot
    [0.92, 0.88, 0.8],  # dull
], F32)


def eye_albedo(surf: Surface, lay: EyeLayout, s: float, rng: np.random.Generator) -> np.ndarray:
    """(box H, box W, 3) eye albedo: sclera tinted and dulled, the eye shaded by both lids."""
    y0, y1, x0, x1 = surf.box
    alb = surf.eye_albedo
    if alb.size == 0:
        return alb
    tint = SCLERA_TINTS[int(rng.integers(len(SCLERA_TINTS)))]
    amount = s * rng.uniform(0.5, 1.0)
    dim = 1.0 - s * rng.uniform(0.05, 0.3)
    sclera = (1.0 - surf.cornea)[..., None]  # 0 over the iris, 1 over the sclera
    gain = 1.0 + sclera * (amount * (tint * dim - 1.0))
    d_lo = surf.d_lo
    k_up, k_lo = s * rng.uniform(0.25, 0.6), s * rng.uniform(0.1, 0.35)
    reach_up, reach_lo = rng.uniform(0.8, 2.2), rng.uniform(0.5, 1.2)
    shade = (1.0 - k_up * np.exp(np.maximum(surf.d_up, 0.0) * (-1.0 / reach_up))
             - k_lo * np.exp(np.maximum(d_lo, 0.0) * (-1.0 / reach_lo)))
    blotch = 1.0 + s * 0.06 * _texture(rng, surf.u[y0:y1, x0:x1], surf.v[y0:y1, x0:x1], (1.5, 1.5))
    out = alb * gain.astype(F32) * (np.maximum(shade, 0.2) * blotch)[..., None].astype(F32)
    return np.clip(out, 0.0, 1.0).astype(F32)


def wild_surface(surf: Surface, lay: EyeLayout, f: WildFactors, key: int) -> Surface:
    """``surf`` with the skin and sclera factors applied (the same object when both are off)."""
    changes: dict[str, Any] = {}
    if f.skin:
        changes["skin_albedo"] = skin_albedo(surf, lay, float(f.skin), stream(key, "skin"))
    if f.sclera:
        changes["eye_albedo"] = eye_albedo(surf, lay, float(f.sclera), stream(key, "sclera"))
    return dataclasses.replace(surf, **changes) if changes else surf


# ---------------------------------------------------------------- scene effects (in front of the eye)


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, n: int = 5) -> np.ndarray:
    """(K, n, 2) points of quadratic Bézier curves with (K, 2) control points."""
    t = np.linspace(0.0, 1.0, n)[None, :, None]
    return (1 - t) ** 2 * p0[:, None] + 2 * (1 - t) * t * p1[:, None] + t**2 * p2[:, None]


def _coverage(size: tuple[int, int], draw_fn) -> np.ndarray:
    """(H, W) float32 coverage in [0, 1] of strokes drawn by ``draw_fn(canvas)`` on an SS×
    supersampled uint8 canvas (255 = covered), area-averaged back to ``size``."""
    h, w = size
    canvas = np.zeros((h * SS, w * SS), np.uint8)
    draw_fn(canvas)
    return cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA).astype(F32) * (1.0 / 255.0)


def lashes(img: np.ndarray, lay: EyeLayout, params: EyeParams, s: float, rng: np.random.Generator) -> np.ndarray:
    """Individual dark curved lashes along the upper lid (fanning out and curling up); a
    share hangs over the top of the opening (seen from above, foreshortened)."""
    n_up = int(round(s * (30 + 60 * params.lash_density)))
    n_down = int(round(s * (10 + 30 * params.lash_density) * rng.uniform(0.3, 1.0)))
    n = n_up + n_down
    if n == 0:
        return img
    t = rng.uniform(0.04, 0.96, n)
    v_up, _, _ = geo.lid_curves(lay, t)
    u = lay.u_in + (lay.u_out - lay.u_in) * t
    length = params.lash_length * rng.uniform(0.7, 1.3, n)
    fan = (t - 0.45) * 1.8 + rng.normal(0.0, 0.2, n)  # towards the corners the lashes lean outwards
    down = np.arange(n) >= n_up
    length[down] *= rng.uniform(0.3, 0.8, n_down)  # pointing at the camera: foreshortened
    dirv = np.where(down, 1.0, -1.0)
    root = np.stack([u, v_up + 0.1], axis=1)
    tip = root + np.stack([np.sin(fan) * length, dirv * np.cos(fan) * length], axis=1)
    bend = rng.uniform(0.2, 0.5, n) * length
    # upper lashes curl up and outwards; hanging ones bend sideways
    mid = (root + tip) / 2 + np.stack([np.sign(fan) * bend * np.where(down, 0.8, 0.5), np.where(down, 0.0, 0.6 * bend)],
                                      axis=1)
    pts = _bezier(root, mid, tip, 7)
    xy = lay.head_to_image(pts.reshape(-1, 2)).reshape(n, -1, 2) * SS
    width_px = 0.1 * lay.scale * SS  # a lash is about 0.1 mm thick at the root, thinner at the tip
    thick = max(1, int(round(width_px)))
    strength = min(1.0, width_px / thick)
    ixy = np.round(xy).astype(np.int32)
    roots = list(np.ascontiguousarray(ixy[:, :4]))
    tips = list(np.ascontiguousarray(ixy[:, 3:]))

    def strokes(c: np.ndarray) -> None:
        cv2.polylines(c, roots, False, 255, thick, cv2.LINE_8)
        cv2.polylines(c, tips, False, 255, max(1, thick - 1), cv2.LINE_8)

    cov = _coverage(lay.size, strokes)
    a = np.minimum(cov * (strength * (0.8 + 0.4 * s)), 0.9)[..., None]
    return img * (1.0 - a) + a * (img * 0.08)


GLASS_TINTS = np.array([
    [1.0, 1.0, 1.0],  # sky / window
    [0.8, 0.9, 1.0],  # bluish
    [0.8, 1.0, 0.85],  # green anti-reflective coating
    [0.95, 0.78, 1.0],  # purple anti-reflective coating
    [1.0, 0.93, 0.8],  # warm lamp
], F32)


def glasses(img: np.ndarray, surf: Surface, lay: EyeLayout, s: float, rng: np.random.Generator) -> np.ndarray:
    """A spectacle lens centred near the eye: reflection band with one sharp edge, haze, rim."""
    h, w = lay.size
    y0, y1, x0, x1 = surf.box
    if y1 <= y0 or x1 <= x0:
        y0, y1, x0, x1 = h // 3, 2 * h // 3, w // 4, 3 * w // 4
    cx = (x0 + x1) / 2 + rng.uniform(-0.08, 0.08) * w
    cy = (y0 + y1) / 2 + rng.uniform(-0.1, 0.1) * h
    thick = rng.uniform(0.6, 3.0) * lay.scale  # rim width px
    hx = max(abs(x0 - cx), abs(x1 - cx))
    hy = max(abs(y0 - cy), abs(y1 - cy))
    rx = max(rng.uniform(19.0, 27.0) * lay.scale, hx * 1.1 + thick)  # a lens is about 40-54 mm wide
    n_exp = rng.uniform(2.0, 4.0)  # superellipse exponent: round to rounded-rectangle lenses
    ry_min = hy / max(1.0 - (hx / rx) ** n_exp, 0.05) ** (1.0 / n_exp)
    ry = max(rng.uniform(13.0, 19.0) * lay.scale, ry_min * 1.05 + thick)  # the eye box lies inside
    x = np.arange(w, dtype=F32)[None, :]
    y = np.arange(h, dtype=F32)[:, None]
    ell = (np.abs((x - cx) / rx) ** n_exp + np.abs((y - cy) / ry) ** n_exp) ** (1.0 / n_exp)
    lens = np.clip((1.0 - ell) * min(rx, ry) + 0.5, 0.0, 1.0)  # 1 inside, anti-aliased edge
    # reflection: a band across the lens, sharp on one side, soft on the other
    ang = rng.uniform(0.0, np.pi)
    across = (x - cx) * math.cos(ang) + (y - cy) * math.sin(ang)
    along = -(x - cx) * math.sin(ang) + (y - cy) * math.cos(ang)
    width = rng.uniform(0.25, 0.9) * min(rx, ry)
    off = rng.uniform(-0.6, 0.6) * min(rx, ry)
    d = (across - off) * (1.0 if rng.uniform() < 0.5 else -1.0)
    sharp = np.clip(d + 0.5, 0.0, 1.0)  # the sharp edge (one pixel)
    soft = np.clip(1.0 - d / width, 0.0, 1.0) ** 1.5
    grad = np.clip(0.55 + 0.45 * along / max(rx, ry) * rng.choice([-1.0, 1.0]), 0.0, 1.0)
    band = sharp * soft * grad
    tint = GLASS_TINTS[int(rng.integers(len(GLASS_TINTS)))]
    strength = s * rng.uniform(0.25, 0.75)
    haze = s * rng.uniform(0.03, 0.12)
    mean = img.reshape(-1, 3).mean(axis=0)
    out = img * (1.0 - haze * lens[..., None]) + (haze * lens)[..., None] * mean
    out = out + (strength * band * lens)[..., None] * tint
    if rng.uniform() < 0.6:  # the frame's rim (outside the eye box by construction)
        rim_rgb = rng.choice([0.04, 0.1, 0.25, 0.6]) * rng.uniform(0.8, 1.2, 3).astype(F32)
        t = max(1, int(round(thick * SS)))
        phi = np.linspace(0.0, 2 * np.pi, 97)
        c, sn = np.cos(phi), np.sin(phi)
        px_ = cx + rx * np.sign(c) * np.abs(c) ** (2.0 / n_exp)
        py_ = cy + ry * np.sign(sn) * np.abs(sn) ** (2.0 / n_exp)
        outline = [np.round(np.stack([px_, py_], axis=1) * SS).astype(np.int32)]
        rim = _coverage(lay.size, lambda c: cv2.polylines(c, outline, True, 255, t, cv2.LINE_8))
        a = (rim * min(1.0, 0.6 + 0.5 * s))[..., None]
        out = out * (1.0 - a) + a * rim_rgb
    return out


# ---------------------------------------------------------------- camera effects


def _motion_kernel(length: float, angle: float) -> np.ndarray:
    """Normalised float32 line kernel of ``length`` px (anti-aliased by supersampling)."""
    k = int(math.ceil(length)) | 1
    k = max(k, 3)
    big = np.zeros((k * SS, k * SS), np.uint8)
    c = (k * SS - 1) / 2
    dx, dy = math.cos(angle) * length * SS / 2, math.sin(angle) * length * SS / 2
    cv2.line(big, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 255, SS, cv2.LINE_8)
    ker = cv2.resize(big, (k, k), interpolation=cv2.INTER_AREA).astype(F32)
    return ker / max(float(ker.sum()), 1e-6)


def flare_step(out: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Veiling glare from one side (a lifted, low-contrast veil) and an exposure push."""
    h, w = out.shape[:2]
    ang = rng.uniform(0.0, 2 * np.pi)
    x = np.linspace(-1.0, 1.0, w, dtype=F32)[None, :]
    y = np.linspace(-1.0, 1.0, h, dtype=F32)[:, None] * (h / w)
    ramp = np.clip(0.5 + 0.5 * (x * math.cos(ang) + y * math.sin(ang)), 0.0, 1.0) ** rng.uniform(1.0, 3.0)
    veil = s * rng.uniform(0.12, 0.45) * (0.25 + 0.75 * ramp)
    colour = np.array([1.0, rng.uniform(0.85, 1.0), rng.uniform(0.7, 1.0)], F32)
    glow = cv2.GaussianBlur(np.maximum(out - 0.6, 0.0), (0, 0), sigmaX=0.08 * w, borderType=cv2.BORDER_REFLECT)
    push = 2.0 ** (s * rng.uniform(0.0, 1.2))
    return (out * push) * (1.0 - veil[..., None]) + veil[..., None] * colour + s * 2.0 * glow


def fringe_step(out: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Red and blue magnified and shifted against green (lateral chromatic aberration)."""
    h, w = out.shape[:2]
    k = s * rng.uniform(0.006, 0.025)
    ang = rng.uniform(0.0, 2 * np.pi)
    shift = s * rng.uniform(0.2, 0.8) * w / 120.0
    dx, dy = shift * math.cos(ang), shift * math.sin(ang)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    x = np.arange(w, dtype=F32)[None, :] - cx
    y = np.arange(h, dtype=F32)[:, None] - cy
    res = out.copy()
    for ch, sign in ((0, 1.0), (2, -1.0)):
        mx = np.ascontiguousarray(np.broadcast_to(cx + x * (1 - sign * k) - sign * dx, (h, w)), dtype=F32)
        my = np.ascontiguousarray(np.broadcast_to(cy + y * (1 - sign * k) - sign * dy, (h, w)), dtype=F32)
        res[..., ch] = cv2.remap(np.ascontiguousarray(out[..., ch]), mx, my, cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REFLECT)
    return res


def dark_expose(out: np.ndarray, s: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Low light at the sensor: (image scaled by 2^-EV, gain that the camera applies back)."""
    ev = 0.2 + EV_DARK * s * rng.uniform(0.5, 1.0)
    gain = 2.0 ** (ev * rng.uniform(0.1, 0.4))
    return out * F32(2.0**-ev), gain


def dark_noise(out: np.ndarray, s: float, gain: float, rng: np.random.Generator) -> np.ndarray:
    """Shot and read noise on the dark raw signal, gained with it; chroma part is blotchy."""
    h, w = out.shape[:2]
    shot = rng.uniform(0.002, 0.007)
    read = rng.uniform(0.001, 0.003) * s
    sigma = shot * np.sqrt(np.clip(out, 0.0, 1.0) + 0.002) + read
    lum = rng.standard_normal((h, w, 1), dtype=F32)
    chroma = rng.standard_normal((h, w, 3), dtype=F32)
    blot = 0.5 + 0.5 * w / 120.0  # demosaicing and denoising leave colour noise in blotches
    chroma = cv2.GaussianBlur(chroma, (0, 0), sigmaX=blot, borderType=cv2.BORDER_REFLECT) * F32(1.0 + blot)
    out = out + sigma * (0.75 * lum + 0.6 * chroma)
    out = out * F32(gain)
    soft = s * rng.uniform(0.0, 0.7) * w / 120.0
    if soft > 0.05:
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=soft, borderType=cv2.BORDER_REFLECT)
    return out


CASTS = np.array([
    [1.0, 0.85, 1.15],  # purple (IR-contaminated webcam)
    [1.12, 0.85, 1.05],  # magenta-red
    [0.85, 0.95, 1.25],  # blue
    [0.88, 1.1, 0.85],  # green (fluorescent)
    [1.2, 1.0, 0.78],  # orange (tungsten)
], F32)
CAST_WEIGHTS = np.array([0.55, 0.15, 0.1, 0.08, 0.12])


def cast_step(out: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Strong colour cast: desaturate, multiply by the cast's gains, lift the black level."""
    kind = int(rng.choice(len(CASTS), p=CAST_WEIGHTS))
    gains = 1.0 + s * rng.uniform(0.6, 1.3) * (CASTS[kind] * rng.uniform(0.97, 1.03, 3).astype(F32) - 1.0)
    desat = s * rng.uniform(0.0, 0.35)
    lift = s * rng.uniform(0.0, 0.04)
    lum = out @ np.array([0.299, 0.587, 0.114], F32)
    out = out * F32(1.0 - desat) + (F32(desat) * lum)[..., None]
    return out * gains.astype(F32) + F32(lift) * (gains / gains.max()).astype(F32)


def stamp_step(res: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """A burned-in date and time near the bottom edge (uint8 in and out)."""
    h, w = res.shape[:2]
    text = (f"{rng.integers(2012, 2024)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d} "
            f"{rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}:{rng.integers(0, 60):02d}")
    cap = h * rng.uniform(0.06, 0.11) * SS  # cap height on the canvas
    scale = cap / 22.0  # HERSHEY_SIMPLEX cap height is about 22 px at scale 1
    thick = max(1, int(round(cap / 9.0)))
    (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    left = rng.uniform() < 0.6
    x = int(round(rng.uniform(-0.35, 0.05) * w * SS)) if left else int(round(w * SS - tw + rng.uniform(-0.05, 0.35) * w * SS))
    y = int(round(h * SS * (1.0 - rng.uniform(0.02, 0.1))))
    cov = _coverage((h, w), lambda c: cv2.putText(c, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thick, cv2.LINE_8))
    colour = np.array([255.0, 255.0, 255.0], F32) if rng.uniform() < 0.75 else np.array([255.0, 200.0, 60.0], F32)
    a = (cov * (0.55 + 0.45 * s))[..., None]
    return (res.astype(F32) * (1.0 - a) + a * colour + 0.5).astype(np.uint8)


EQ_CLIP = 4.0  # histogram bins are clipped at this multiple of the mean count before equalising


def equalize_step(res: np.ndarray, s: float) -> np.ndarray:
    """Histogram-equalised luminance (colour ratios kept), blended in by ``s`` (uint8 in and
    out). The histogram is clipped at ``EQ_CLIP`` × its mean first (as CLAHE does, globally),
    so large flat areas such as a render's smooth skin are not stretched into blotches."""
    f = res.astype(F32)
    lum = f @ np.array([0.299, 0.587, 0.114], F32)
    idx = np.clip(lum + 0.5, 0, 255).astype(np.uint8)
    hist = np.bincount(idx.ravel(), minlength=256).astype(np.float64)
    cap = EQ_CLIP * hist.sum() / 256.0
    hist = np.minimum(hist, cap) + (hist - np.minimum(hist, cap)).sum() / 256.0
    cdf = np.cumsum(hist)
    lut = ((cdf - cdf[0]) * (255.0 / max(cdf[-1] - cdf[0], 1e-9))).astype(F32)
    eq = lut[idx]
    out = f * (1.0 - s) + (s * (eq + 1.0) / (lum + 1.0))[..., None] * f
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def camera(img: np.ndarray, f: WildFactors, d: CameraDraws, key: int) -> np.ndarray:
    """The v2 camera: (H, W, 3) float display RGB -> uint8. The v1 steps in their v1 order
    (blur, low resolution, noise, white balance, exposure, 8-bit, JPEG) with flare before
    them, motion blur after the defocus, fringing after the low resolution, the dark
    exposure and its noise around the v1 noise, the cast after the white balance and the
    stamp before the JPEG; equalisation last (a data set's normalisation). Every v2 factor
    at 0 gives ``degrade.develop`` exactly."""
    out = np.clip(img, 0.0, None).astype(F32)
    dark = float(f.dark or 0.0)
    if f.flare and dark < 1.0:
        out = flare_step(out, float(f.flare) * (1.0 - dark), stream(key, "flare"))
    out = degrade.blur_step(out, f)
    if f.motion:
        rng = stream(key, "motion")
        length = float(f.motion) * rng.uniform(0.3, 1.0) * 4.5 * out.shape[1] / 60.0
        if length > 1.0:
            out = cv2.filter2D(out, -1, _motion_kernel(length, rng.uniform(0.0, np.pi)), borderType=cv2.BORDER_REFLECT)
    out = degrade.lowres_step(out, f)
    if f.fringe:
        out = fringe_step(out, float(f.fringe), stream(key, "fringe"))
    gain = 1.0
    if dark:
        rng_dark = stream(key, "dark")
        out, gain = dark_expose(out, dark, rng_dark)
    out = degrade.noise_step(out, f, d)
    if dark:
        out = dark_noise(out, dark, gain, rng_dark)
    out = degrade.color_step(out, f, d)
    if f.cast:
        out = cast_step(out, float(f.cast), stream(key, "cast"))
    out = degrade.exposure_step(out, f, d)
    res = degrade.quantize(out)
    if f.stamp:
        res = stamp_step(res, float(f.stamp), stream(key, "stamp"))
    res = degrade.jpeg_step(res, f)
    if f.equalize:
        res = equalize_step(res, float(f.equalize))
    return res


def scene(img: np.ndarray, surf: Surface, lay: EyeLayout, params: EyeParams, f: WildFactors, key: int) -> np.ndarray:
    """What sits between the eye and the camera: lashes, then a spectacle lens."""
    if f.lashes:
        img = lashes(img, lay, params, float(f.lashes), stream(key, "lashes"))
    if f.glasses:
        img = glasses(img, surf, lay, float(f.glasses), stream(key, "glasses"))
    return img
