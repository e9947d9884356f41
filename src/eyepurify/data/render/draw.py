"""The clean rasteriser: per-pixel albedo and normals on the image grid, then lighting.

``surface(params, lay)`` evaluates everything that does not depend on the light (albedo,
normals, ambient occlusion, the anti-aliased eye opening) once; ``compose`` lights it. The
indoor look is ``compose(surface, indoor_lighting(...))``; the wild domain relights the same
surface (see ``degrade``). All random texture comes from ``params.texture_seed``.
Working space is display RGB in [0, 1], float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from eyepurify.data.render import geometry as geo
from eyepurify.data.render.geometry import EyeLayout
from eyepurify.data.render.params import EyeParams
from eyepurify.errors import EyepurifyError

F32 = np.float32
HAIR_RGB = np.array([0.07, 0.05, 0.04], F32)
PUPIL_RGB = np.array([0.025, 0.022, 0.025], F32)
CARUNCLE_RGB = np.array([0.80, 0.52, 0.50], F32)
WATERLINE_RGB = np.array([0.85, 0.55, 0.52], F32)
VESSEL_RGB = np.array([0.72, 0.22, 0.2], F32)
_RED_TINT = np.array([0.0, 0.22, 0.2], F32)
_COLLARETTE = np.array([1.0, 0.85, 0.5], F32)
_PLICA_RGB = CARUNCLE_RGB * 0.95
for _a in (HAIR_RGB, PUPIL_RGB, CARUNCLE_RGB, WATERLINE_RGB, VESSEL_RGB, _RED_TINT, _COLLARETTE, _PLICA_RGB):
    _a.flags.writeable = False


def _stack_last(arrays: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """``np.stack(arrays, axis=-1)`` (one C-contiguous float32 array) for arrays broadcastable
    to ``shape``, without np.stack's per-call overhead."""
    out = np.empty((*shape, len(arrays)), F32)
    for k, a in enumerate(arrays):
        out[..., k] = a
    return out


@dataclass(frozen=True)
class Surface:
    """Light-independent layers of one render.

    skin_*: (H, W[, 3]) over the whole image; eye_*: over ``box`` = (y0, y1, x0, x1), the
    eye opening's bounding box, where ``alpha`` in [0, 1] is the anti-aliased opening.
    u, v: head-frame mm per pixel (for shadows). d_up / d_lo: mm below the upper lid / above
    the lower lid (box).
    cornea: (box) weight of the cornea for reflections (1 inside the iris, fading out).
    labels: (H, W) uint8 label map at pixel centres (equals ``geometry.label_map``).
    """

    skin_albedo: np.ndarray
    skin_normal: np.ndarray
    u: np.ndarray
    v: np.ndarray
    box: tuple[int, int, int, int]
    eye_albedo: np.ndarray
    eye_normal: np.ndarray
    eye_ao: np.ndarray
    alpha: np.ndarray
    d_up: np.ndarray
    cornea: np.ndarray
    labels: np.ndarray
    d_lo: np.ndarray


@dataclass(frozen=True)
class Lighting:
    """A light rig in display units.

    ambient, key_rgb: (3,) colours; key_dir: (3,) unit vector towards the key light
    (camera frame). shadow: darkness in [0, 1] of cast shadows; brow_edge: head-frame v
    (mm) above which the brow shadows the face, tilted by edge_slope (mm per mm of u);
    lid_shadow: mm of eyeball below the upper lid that the lid shadows.
    glints: rows (x px, y px, sigma px, intensity). reflection: (strength, angle rad) of a
    soft window-like reflection across the cornea (strength 0 = none).
    """

    ambient: np.ndarray
    key_rgb: np.ndarray
    key_dir: np.ndarray
    shadow: float = 0.0
    brow_edge: float = -100.0
    edge_slope: float = 0.0
    lid_shadow: float = 0.0
    glints: tuple[tuple[float, float, float, float], ...] = ()
    reflection: tuple[float, float] = (0.0, 0.0)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 smooth noise, about unit variance, ``cells`` random values per axis."""
    g = rng.standard_normal((max(cells[0], 2), max(cells[1], 2)), dtype=F32)
    return cv2.resize(g, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _gauss(x: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(np.square(x * (1.0 / sigma)) * -1.0)


def surface(params: EyeParams, lay: EyeLayout) -> Surface:
    """Albedo, normals, coverage and labels of one draw on the pixel grid of ``lay``."""
    return surfaces([params], [lay])[0]


def surfaces(params_list: list[EyeParams], lays: list[EyeLayout]) -> list[Surface]:
    """``surface`` of several draws of one image size (byte for byte the same results).

    Per-pixel layers are evaluated for all draws at once: skin over (B, H, W), the eye on
    the union of the draws' eye boxes, with per-draw scalars broadcast as (B, 1, 1) float32
    (numpy rounds a Python float against float32 the same way). Random texture, OpenCV
    calls and the colour-mix matrix products stay per draw, on the same arrays a single
    draw uses, so every output is identical. Memory grows with B (about 250 bytes per pixel
    per draw): pass a few dozen small draws at a time.
    """
    if len(params_list) != len(lays):
        raise EyepurifyError(f"{len(params_list)} parameter draws but {len(lays)} layouts (pass one layout per draw)")
    if not lays:
        return []
    h, w = lays[0].size
    if any(lay.size != (h, w) for lay in lays):
        raise EyepurifyError("layouts of different image sizes in one batch (batch draws of one size)")
    ps, n = params_list, len(lays)
    col = geo.per_draw
    rngs = [np.random.default_rng(p.texture_seed) for p in ps]
    x, y = geo.pixel_grid(lays[0])
    u, v = geo.head_coords_many(lays, x, y)
    d_up, d_lo, b_up, t = geo.opening_distance_many(lays, u, v)
    above = -d_up  # mm above the upper margin
    below = -d_lo  # mm below the lower margin
    width = [lay.u_out - lay.u_in for lay in lays]
    inside_x = np.clip(np.minimum(t, 1.0 - t) * 8.0, 0.0, 1.0)  # fades out past the corners

    # per-draw random texture, drawn in the order of the single-draw renderer
    blotch, grain, brow_noise = (np.empty((n, h, w), F32) for _ in range(3))
    for i, (lay, rng) in enumerate(zip(lays, rngs, strict=True)):
        s = lay.scale
        blotch[i] = _smooth_noise(rng, (h, w), (max(2, int(h / (2.5 * s)) + 2), max(2, int(w / (2.5 * s)) + 2)))
        grain[i] = rng.standard_normal((h, w), dtype=F32)
        brow_noise[i] = _smooth_noise(rng, (h, w), (max(2, int(h / (1.5 * s))), max(2, int(w / (0.4 * s)))))

    # --- skin albedo: base tone, blotches, crease, hollow, bags, redness, hair, lid margins
    lum = 1.0 + col([0.07 * p.skin_roughness for p in ps]) * blotch
    lum += col([0.025 * p.skin_roughness for p in ps]) * grain
    crease_v = col([p.crease_height for p in ps]) * (0.35 + 0.65 * b_up)
    dark = col([p.crease_depth * 0.4 for p in ps]) * _gauss(above - crease_v, 0.9)
    dark += 0.05 * _gauss(below - 3.5, 2.0)
    dark *= inside_x
    dark += 0.1 * _gauss(v + col([0.55 * p.brow_height for p in ps]), 4.0)
    lum *= 1.0 - dark
    hair = col([p.brow_darkness for p in ps]) * _gauss(v + col([p.brow_height for p in ps]) - 0.012 * u * u, 2.2)
    hair *= np.clip(0.55 + 0.45 * brow_noise, 0, 1)
    hair *= np.exp(np.square(np.square(u * col([1.0 / (0.9 * wd) for wd in width]))) * -1.0)
    lash_pattern = 0.55 + 0.45 * np.cos(
        (u + 0.5 * above * np.sign(u - col([0.25 * wd for wd in width]))) * (2.4 * 2 * np.pi))
    lash_up = np.exp(np.maximum(above - 0.3, 0.0) * col([-1.0 / (0.4 * p.lash_length) for p in ps])) * (above > -0.05)
    lash_lo = 0.35 * np.exp(np.maximum(below, 0.0) * -2.0) * (below > 0.35)
    lash = np.maximum(lash_up * (0.6 + 0.4 * lash_pattern), lash_lo * lash_pattern)
    hair += col([0.5 + 0.45 * p.lash_density for p in ps]) * lash * inside_x
    hair = np.clip(hair, 0.0, 0.95)
    water = 0.75 * _gauss(below - 0.3, 0.3) * inside_x
    red = col([p.redness for p in ps]) * np.exp(np.maximum(np.maximum(above, below), 0.0) * (-1.0 / 3.0)) * inside_x

    # caruncle: a pink wet teardrop nasal of the inner corner (skin in the label map)
    car = np.zeros((n, h, w), F32)
    for i, lay in enumerate(lays):
        _caruncle(lay, u[i], v[i], car[i])

    # all skin layers in one colour mix: base (with redness), then hair, waterline, caruncle
    keep_w = 1.0 - water
    keep_c = 1.0 - car
    base = lum * (1.0 - hair) * keep_w * keep_c
    weights = _stack_last([base, base * red, hair * keep_w * keep_c, water * keep_c, car], (n, h, w))

    # --- skin normals from a height field: lid bulge over the eyeball, crease, brow ridge
    sig2 = [1.0 / (lay.eyeball_radius * 1.15) ** 2 for lay in lays]
    bulge = col([5.0 * 2.0 * s2 for s2 in sig2]) * np.exp((0.5 * u * u + v * v) * col([-s2 for s2 in sig2]))
    hu = -0.5 * u * bulge
    cv_ = above - crease_v
    bv = v + col([p.brow_height - 3.0 for p in ps])
    hv = (-v * bulge + col([p.crease_depth * 2.1 for p in ps]) * cv_ * _gauss(cv_, 1.2) * inside_x
          - 0.24 * bv * _gauss(bv, 5.0))
    nrm = 1.0 / np.sqrt(hu * hu + hv * hv + 1.0)
    normals = _stack_last([hu * -nrm, hv * -nrm, -nrm], (n, h, w))

    eyes = _eyes(ps, lays, rngs, d_up, d_lo, t)
    out = []
    for i, (p, lay) in enumerate(zip(ps, lays, strict=True)):
        skin_rgb = np.asarray(p.skin_rgb, F32)
        colours = np.stack([
            skin_rgb,
            -skin_rgb * _RED_TINT,
            HAIR_RGB,
            WATERLINE_RGB * skin_rgb**0.3,
            CARUNCLE_RGB * (0.6 + 0.4 * skin_rgb),
        ])
        skin = weights[i] @ colours
        skin_normal = normals[i] @ lay.head_rot.T.astype(F32)
        out.append(Surface(skin_albedo=np.clip(skin, 0.0, 1.0), skin_normal=skin_normal, u=u[i], v=v[i],
                           **eyes[i]))  # type: ignore[arg-type]
    return out


def _caruncle(lay: EyeLayout, u: np.ndarray, v: np.ndarray, car: np.ndarray) -> None:
    """Write the caruncle coverage of one draw into its own fresh (H, W) layer ``car``."""
    h, w = lay.size
    cpts = geo.caruncle_points(lay)
    (cxa, cya), (cxb, cyb) = cpts.min(axis=0).tolist(), cpts.max(axis=0).tolist()
    cy0, cx0 = max(0, math.floor(cya) - 1), max(0, math.floor(cxa) - 1)
    cy1, cx1 = min(h, math.ceil(cyb) + 2), min(w, math.ceil(cxb) + 2)
    if cy1 > cy0 and cx1 > cx0:
        length, half, droop = geo.caruncle_shape(lay)
        cu, cv = u[cy0:cy1, cx0:cx1], v[cy0:cy1, cx0:cx1]
        ca = (lay.u_in - cu) * (1.0 / length)
        car_sd = geo.caruncle_profile(ca, half) - np.abs(cv - (lay.v_in + droop * ca))
        car[cy0:cy1, cx0:cx1] = np.clip(car_sd * lay.v_px_per_mm + 0.5, 0.0, 0.55) * ((ca > 0) & (ca < 1))


def _eyes(
    ps: list[EyeParams], lays: list[EyeLayout], rngs: list[np.random.Generator],
    d_up: np.ndarray, d_lo: np.ndarray, t: np.ndarray,
) -> list[dict[str, object]]:
    """The eye boxes of B draws (sclera, vessels, iris, pupil, coverage): the Surface fields
    box, eye_albedo, eye_normal, eye_ao, alpha, d_up, cornea, labels per draw.

    Per-pixel layers are evaluated for all draws on the union of their boxes; each draw's
    box is then cut out (contiguous, as a single-draw evaluation would produce it).
    """
    n = len(lays)
    col = geo.per_draw
    boxes = [geo.eye_box(lay) for lay in lays]
    y0u, y1u = min(b[0] for b in boxes), max(b[1] for b in boxes)
    x0u, x1u = min(b[2] for b in boxes), max(b[3] for b in boxes)
    y1u, x1u = max(y1u, y0u), max(x1u, x0u)
    x, y = geo.pixel_grid(lays[0])
    xb = x[None, :, x0u:x1u]
    yb = y[None, y0u:y1u, :]
    dub = d_up[:, y0u:y1u, x0u:x1u]
    dlb = d_lo[:, y0u:y1u, x0u:x1u]
    tb = t[:, y0u:y1u, x0u:x1u]
    cuts = [(slice(b[0] - y0u, b[1] - y0u), slice(b[2] - x0u, b[3] - x0u)) for b in boxes]
    alpha = np.clip(np.minimum(dub, dlb) * col([lay.v_px_per_mm for lay in lays]) + 0.5, 0.0, 1.0)
    radius = [lay.eyeball_radius for lay in lays]
    ex = (xb - col([float(lay.center[0]) for lay in lays])) * col([1.0 / lay.scale for lay in lays])
    ey = (yb - col([float(lay.center[1]) for lay in lays])) * col([1.0 / lay.scale for lay in lays])
    ez = -np.sqrt(np.maximum(col([r * r for r in radius]) - (ex * ex + ey * ey), 0.0))
    bh, bw = dub.shape[1:]
    eye_normal = np.empty((n, bh, bw, 3), F32)
    eye_normal[..., 0] = ex
    eye_normal[..., 1] = ey
    eye_normal[..., 2] = ez
    eye_normal *= (1.0 / np.sqrt(np.maximum(ex * ex + ey * ey + ez * ez, 1e-6)))[..., None]

    # sclera: vessels attached to the eyeball (eye-frame coordinates), lid occlusion
    et = [(lay.eye_rot.T * (11.5 / r)).tolist() for lay, r in zip(lays, radius, strict=True)]
    mx = (col([e[0][0] for e in et]) * ex + col([e[0][1] for e in et]) * ey
          + col([e[0][2] for e in et]) * ez + 11.5)
    my = (col([e[1][0] for e in et]) * ex + col([e[1][1] for e in et]) * ey
          + col([e[1][2] for e in et]) * ez + 11.5)
    nz = np.zeros((n, bh, bw), F32)
    for i, (rng, cut) in enumerate(zip(rngs, cuts, strict=True)):
        grid = rng.standard_normal((24, 24), dtype=F32)
        nz[i][cut] = cv2.remap(grid, np.ascontiguousarray(mx[i][cut]), np.ascontiguousarray(my[i][cut]),
                               cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    radial = np.sqrt(np.square(mx - 11.5) + np.square(my - 11.5)) * (1.0 / 11.5)
    vessel = (col([p.vessel_amount for p in ps]) * np.clip(1.0 - np.abs(nz) * 10.0, 0.0, 1.0)
              * np.clip((radial - 0.55) * 3.0, 0.0, 1.0))
    eye_ao = 1.0 - 0.5 * np.exp(np.maximum(dub, 0.0) * (-1.0 / 1.5)) - 0.2 * np.exp(np.maximum(dlb, 0.0) * (-1.0 / 0.7))
    eye_ao -= 0.2 * np.exp(np.maximum(np.minimum(tb, 1.0 - tb), 0.0) * -8.0)  # darker corners

    # iris: polar texture (radial fibres), limbal ring, collarette; pupil
    inv = [lay.iris_A_inv.tolist() for lay in lays]
    a00, a01, a10, a11 = (col([m[r][c] for m in inv]) for r, c in ((0, 0), (0, 1), (1, 0), (1, 1)))
    dx = xb - col([float(lay.iris_center[0]) for lay in lays])
    dy = yb - col([float(lay.iris_center[1]) for lay in lays])
    q0, q1 = a00 * dx + a01 * dy, a10 * dx + a11 * dy  # = geometry.iris_coords
    rho2 = q0 * q0 + q1 * q1
    rho = np.sqrt(rho2)
    g0 = a00 * q0 + a10 * q1
    g1 = a01 * q0 + a11 * q1
    px_per_rho = rho / np.sqrt(np.maximum(g0 * g0 + g1 * g1, 1e-12))  # 1 / |d rho / d px|
    tx = (np.arctan2(q1, q0) + np.pi) * (96.0 / (2 * np.pi))
    ty = np.minimum(rho * 23.0, 23.0)
    fibre = np.zeros((n, bh, bw), F32)
    for i, (rng, cut) in enumerate(zip(rngs, cuts, strict=True)):
        fib = rng.standard_normal(98, dtype=F32)
        fib = 0.5 * fib[1:97] + 0.25 * (fib[:96] + fib[2:])
        rows = rng.standard_normal((6, 96), dtype=F32) * 0.5 + fib[None, :]
        tex = cv2.resize(rows, (96, 24), interpolation=cv2.INTER_LINEAR)
        tex = np.concatenate([tex, tex[:, :1]], axis=1)
        fibre[i][cut] = cv2.remap(tex, np.ascontiguousarray(tx[i][cut]), np.ascontiguousarray(ty[i][cut]),
                                  cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    pr = col([lay.pupil_ratio for lay in lays])
    ilum = (1.0 + col([0.28 * p.iris_contrast for p in ps]) * fibre) * (
        1.0 - col([p.limbus_darkness for p in ps]) * np.clip((rho - 0.75) * 4.0, 0.0, 1.0) ** 1.5)
    a_iris = np.clip(0.5 - (rho - 1.0) * px_per_rho, 0.0, 1.0)
    a_pupil = np.clip(0.5 - (rho - pr) * px_per_rho, 0.0, 1.0)
    # one colour mix: sclera, vessels, iris, collarette, pupil
    w_scl = (1.0 - a_iris) * (1.0 - a_pupil)
    w_iris = ilum * a_iris * (1.0 - a_pupil)
    plica = np.clip(vessel + 0.6 * np.exp(np.maximum(tb, 0.0) * -22.0), 0.0, 1.0)  # pink inner corner
    weights = _stack_last([w_scl * (1.0 - plica), w_scl * vessel, w_scl * (plica - vessel), w_iris,
                           w_iris * (0.21 * _gauss(rho - pr - 0.12, 0.1)), a_pupil], (n, bh, bw))
    cornea = np.clip((1.15 - rho) * (1.0 / 0.15), 0.0, 1.0)
    out: list[dict[str, object]] = []
    for i, (p, lay, box, cut) in enumerate(zip(ps, lays, boxes, cuts, strict=True)):
        iris_rgb = np.asarray(p.iris_rgb, F32)
        colours = np.stack([np.asarray(p.sclera_rgb, F32), VESSEL_RGB, _PLICA_RGB, iris_rgb,
                            iris_rgb * _COLLARETTE, PUPIL_RGB])
        eye = np.ascontiguousarray(weights[i][cut]) @ colours
        out.append({
            "box": box,
            "eye_albedo": np.clip(eye, 0.0, 1.0),
            "eye_normal": np.ascontiguousarray(eye_normal[i][cut]),
            "eye_ao": np.ascontiguousarray(eye_ao[i][cut]),
            "alpha": np.ascontiguousarray(alpha[i][cut]),
            "d_up": np.ascontiguousarray(dub[i][cut]),
            "d_lo": np.ascontiguousarray(dlb[i][cut]),
            "cornea": np.ascontiguousarray(cornea[i][cut]),
            "labels": geo.labels_in_box(lay, box, dub[i][cut], dlb[i][cut], rho2[i][cut]),
        })
    return out


FRONT_LIGHT = np.array([0.0, -0.25, -1.0]) / np.sqrt(1.0 + 0.25**2)


def indoor_lighting(params: EyeParams, lay: EyeLayout) -> Lighting:
    """Uniform ambient plus a soft light from just above the camera, one small glint."""
    a = params.ambient
    gx, gy = geo.glint_position(lay, FRONT_LIGHT)
    return Lighting(
        ambient=np.full(3, a, F32),
        key_rgb=np.full(3, 1.0 - a + 0.1, F32),
        key_dir=FRONT_LIGHT.astype(F32),
        glints=((float(gx), float(gy), max(0.5, 0.35 * lay.scale), 0.7),),
    )


def compose(surf: Surface, lay: EyeLayout, light: Lighting) -> np.ndarray:
    """Light a surface: (H, W, 3) float32 display RGB (unclipped; speculars may exceed 1)."""
    ld = np.asarray(light.key_dir, F32)
    amb = np.asarray(light.ambient, F32)
    key = np.asarray(light.key_rgb, F32)
    lam = np.maximum(surf.skin_normal @ ld, 0.0)
    y0, y1, x0, x1 = surf.box
    if light.shadow > 0:
        edge = light.brow_edge + light.edge_slope * surf.u
        vis = 1.0 - light.shadow * np.clip((edge - surf.v) / 0.8 + 0.5, 0.0, 1.0)
    else:
        vis = None
    direct = lam if vis is None else lam * vis
    shade = amb + key * direct[..., None]
    if vis is not None:
        shade = shade * (0.55 + 0.45 * vis[..., None])
    img = surf.skin_albedo * shade
    if y1 > y0 and x1 > x0:
        elam = np.maximum(surf.eye_normal @ ld, 0.0)
        evis = None if vis is None else vis[y0:y1, x0:x1]
        if light.lid_shadow > 0 and light.shadow > 0:
            lid = 1.0 - light.shadow * np.clip((light.lid_shadow - surf.d_up) / 0.5 + 0.5, 0.0, 1.0)
            evis = lid if evis is None else evis * lid
        edirect = elam if evis is None else elam * evis
        eshade = amb * surf.eye_ao[..., None] + key * (edirect * surf.eye_ao)[..., None]
        if evis is not None:
            eshade = eshade * (0.55 + 0.45 * evis[..., None])
        eye = surf.eye_albedo * eshade
        x = np.arange(x0, x1, dtype=F32)[None, :]
        yy = np.arange(y0, y1, dtype=F32)[:, None]
        spec = np.zeros(surf.alpha.shape, F32)
        for gx, gy, sig, inten in light.glints:
            spec += inten * np.exp(-((x - gx) ** 2 + (yy - gy) ** 2) / (2.0 * sig * sig))
        strength, angle = light.reflection
        if strength > 0:
            cx, cy = lay.iris_center
            along = (x - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
            band = np.exp(-((along / (0.35 * lay.scale * 6.0)) ** 4))
            spec += strength * band
        eye = eye + (spec * surf.cornea)[..., None]
        a = surf.alpha[..., None]
        img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1.0 - a) + eye * a
    return img


def to_uint8(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) float display RGB -> uint8 (clipped, rounded)."""
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
