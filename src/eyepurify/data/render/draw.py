"""The clean rasteriser: per-pixel albedo and normals on the image grid, then lighting.

``surface(params, lay)`` evaluates everything that does not depend on the light (albedo,
normals, ambient occlusion, the anti-aliased eye opening) once; ``compose`` lights it. The
indoor look is ``compose(surface, indoor_lighting(...))``; the wild domain relights the same
surface (see ``degrade``). All random texture comes from ``params.texture_seed``.
Working space is display RGB in [0, 1], float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from eyepurify.data.render import geometry as geo
from eyepurify.data.render.geometry import EyeLayout
from eyepurify.data.render.params import EyeParams

F32 = np.float32
HAIR_RGB = np.array([0.07, 0.05, 0.04], F32)
PUPIL_RGB = np.array([0.025, 0.022, 0.025], F32)
CARUNCLE_RGB = np.array([0.80, 0.52, 0.50], F32)
WATERLINE_RGB = np.array([0.85, 0.55, 0.52], F32)
VESSEL_RGB = np.array([0.72, 0.22, 0.2], F32)


@dataclass(frozen=True)
class Surface:
    """Light-independent layers of one render.

    skin_*: (H, W[, 3]) over the whole image; eye_*: over ``box`` = (y0, y1, x0, x1), the
    eye opening's bounding box, where ``alpha`` in [0, 1] is the anti-aliased opening.
    u, v: head-frame mm per pixel (for shadows). d_up: mm below the upper lid (box).
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
    rng = np.random.default_rng(params.texture_seed)
    h, w = lay.size
    s = lay.scale
    x, y = geo.pixel_grid(lay)
    u, v = geo.head_coords(lay, x, y)
    d_up, d_lo, b_up, t = geo.opening_distance(lay, u, v)
    above = -d_up  # mm above the upper margin
    below = -d_lo  # mm below the lower margin
    width = lay.u_out - lay.u_in
    inside_x = np.clip(np.minimum(t, 1.0 - t) * 8.0, 0.0, 1.0)  # fades out past the corners

    # --- skin albedo: base tone, blotches, crease, hollow, bags, redness, hair, lid margins
    rough = params.skin_roughness
    cells = (max(2, int(h / (2.5 * s)) + 2), max(2, int(w / (2.5 * s)) + 2))
    lum = 1.0 + 0.07 * rough * _smooth_noise(rng, (h, w), cells)
    lum += (0.025 * rough) * rng.standard_normal((h, w), dtype=F32)
    crease_v = params.crease_height * (0.35 + 0.65 * b_up)
    dark = params.crease_depth * 0.4 * _gauss(above - crease_v, 0.9)
    dark += 0.05 * _gauss(below - 3.5, 2.0)
    dark *= inside_x
    dark += 0.1 * _gauss(v + 0.55 * params.brow_height, 4.0)
    lum *= 1.0 - dark
    hair = params.brow_darkness * _gauss(v + params.brow_height - 0.012 * u * u, 2.2)
    hair *= np.clip(0.55 + 0.45 * _smooth_noise(rng, (h, w), (max(2, int(h / (1.5 * s))), max(2, int(w / (0.4 * s))))), 0, 1)
    hair *= np.exp(np.square(np.square(u * (1.0 / (0.9 * width)))) * -1.0)
    lash_pattern = 0.55 + 0.45 * np.cos((u + 0.5 * above * np.sign(u - 0.25 * width)) * (2.4 * 2 * np.pi))
    lash_up = np.exp(np.maximum(above - 0.3, 0.0) * (-1.0 / (0.4 * params.lash_length))) * (above > -0.05)
    lash_lo = 0.35 * np.exp(np.maximum(below, 0.0) * -2.0) * (below > 0.35)
    lash = np.maximum(lash_up * (0.6 + 0.4 * lash_pattern), lash_lo * lash_pattern)
    hair += (0.5 + 0.45 * params.lash_density) * lash * inside_x
    hair = np.clip(hair, 0.0, 0.95)
    water = 0.75 * _gauss(below - 0.3, 0.3) * inside_x
    red = params.redness * np.exp(np.maximum(np.maximum(above, below), 0.0) * (-1.0 / 3.0)) * inside_x

    # caruncle: a pink wet teardrop nasal of the inner corner (skin in the label map)
    car = np.zeros((h, w), F32)
    cpts = geo.caruncle_points(lay)
    cy0, cx0 = (max(0, int(np.floor(cpts[:, k].min())) - 1) for k in (1, 0))
    cy1, cx1 = (min(n, int(np.ceil(cpts[:, k].max())) + 2) for k, n in ((1, h), (0, w)))
    if cy1 > cy0 and cx1 > cx0:
        length, half, droop = geo.caruncle_shape(lay)
        cu, cv = u[cy0:cy1, cx0:cx1], v[cy0:cy1, cx0:cx1]
        ca = (lay.u_in - cu) * (1.0 / length)
        car_sd = geo.caruncle_profile(ca, half) - np.abs(cv - (lay.v_in + droop * ca))
        car[cy0:cy1, cx0:cx1] = np.clip(car_sd * lay.v_px_per_mm + 0.5, 0.0, 0.55) * ((ca > 0) & (ca < 1))

    # all skin layers in one colour mix: base (with redness), then hair, waterline, caruncle
    skin_rgb = np.asarray(params.skin_rgb, F32)
    keep_w = 1.0 - water
    keep_c = 1.0 - car
    base = lum * (1.0 - hair) * keep_w * keep_c
    weights = np.stack([base, base * red, hair * keep_w * keep_c, water * keep_c, car], axis=-1)
    colours = np.stack([
        skin_rgb,
        -skin_rgb * np.array([0.0, 0.22, 0.2], F32),
        HAIR_RGB,
        WATERLINE_RGB * skin_rgb**0.3,
        CARUNCLE_RGB * (0.6 + 0.4 * skin_rgb),
    ]).astype(F32)
    skin = weights @ colours

    # --- skin normals from a height field: lid bulge over the eyeball, crease, brow ridge
    sig2 = 1.0 / (lay.eyeball_radius * 1.15) ** 2
    bulge = (5.0 * 2.0 * sig2) * np.exp((0.5 * u * u + v * v) * -sig2)
    hu = -0.5 * u * bulge
    cv_ = above - crease_v
    bv = v + (params.brow_height - 3.0)
    hv = -v * bulge + (params.crease_depth * 2.1) * cv_ * _gauss(cv_, 1.2) * inside_x - 0.24 * bv * _gauss(bv, 5.0)
    nrm = 1.0 / np.sqrt(hu * hu + hv * hv + 1.0)
    skin_normal = np.stack([hu * -nrm, hv * -nrm, -nrm], axis=-1) @ lay.head_rot.T.astype(F32)

    # --- the eye inside its bounding box
    y0, y1, x0, x1 = box = geo.eye_box(lay)
    xb = x[:, x0:x1]
    yb = y[y0:y1, :]
    dub = d_up[y0:y1, x0:x1]
    dlb = d_lo[y0:y1, x0:x1]
    alpha = np.clip(np.minimum(dub, dlb) * lay.v_px_per_mm + 0.5, 0.0, 1.0)
    R = lay.eyeball_radius
    ex = (xb - float(lay.center[0])) * (1.0 / s)
    ey = (yb - float(lay.center[1])) * (1.0 / s)
    ez = -np.sqrt(np.maximum(R * R - (ex * ex + ey * ey), 0.0))
    bh, bw = dub.shape
    eye_normal = np.empty((bh, bw, 3), F32)
    eye_normal[..., 0] = ex
    eye_normal[..., 1] = ey
    eye_normal[..., 2] = ez
    eye_normal *= (1.0 / np.sqrt(np.maximum(ex * ex + ey * ey + ez * ez, 1e-6)))[..., None]

    # sclera: vessels attached to the eyeball (eye-frame coordinates), lid occlusion
    et = (lay.eye_rot.T * (11.5 / R)).tolist()
    mx = et[0][0] * ex + et[0][1] * ey + et[0][2] * ez + 11.5
    my = et[1][0] * ex + et[1][1] * ey + et[1][2] * ez + 11.5
    grid = rng.standard_normal((24, 24), dtype=F32)
    nz = cv2.remap(grid, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    radial = np.sqrt(np.square(mx - 11.5) + np.square(my - 11.5)) * (1.0 / 11.5)
    vessel = params.vessel_amount * np.clip(1.0 - np.abs(nz) * 10.0, 0.0, 1.0) * np.clip((radial - 0.55) * 3.0, 0.0, 1.0)
    eye_ao = 1.0 - 0.5 * np.exp(np.maximum(dub, 0.0) * (-1.0 / 1.5)) - 0.2 * np.exp(np.maximum(dlb, 0.0) * (-1.0 / 0.7))
    tb = t[y0:y1, x0:x1]
    eye_ao -= 0.2 * np.exp(np.maximum(np.minimum(tb, 1.0 - tb), 0.0) * -8.0)  # darker corners

    # iris: polar texture (radial fibres), limbal ring, collarette; pupil
    q0, q1 = geo.iris_coords(lay, xb, yb)
    rho2 = q0 * q0 + q1 * q1
    rho = np.sqrt(rho2)
    (a00, a01), (a10, a11) = lay.iris_A_inv.tolist()
    g0 = a00 * q0 + a10 * q1
    g1 = a01 * q0 + a11 * q1
    px_per_rho = rho / np.sqrt(np.maximum(g0 * g0 + g1 * g1, 1e-12))  # 1 / |d rho / d px|
    fib = rng.standard_normal(98, dtype=F32)
    fib = 0.5 * fib[1:97] + 0.25 * (fib[:96] + fib[2:])
    rows = rng.standard_normal((6, 96), dtype=F32) * 0.5 + fib[None, :]
    tex = cv2.resize(rows, (96, 24), interpolation=cv2.INTER_LINEAR)
    tex = np.concatenate([tex, tex[:, :1]], axis=1)
    tx = (np.arctan2(q1, q0) + np.pi) * (96.0 / (2 * np.pi))
    ty = np.minimum(rho * 23.0, 23.0)
    fibre = cv2.remap(tex, tx, ty, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    pr = lay.pupil_ratio
    ilum = (1.0 + 0.28 * params.iris_contrast * fibre) * (
        1.0 - params.limbus_darkness * np.clip((rho - 0.75) * 4.0, 0.0, 1.0) ** 1.5)
    a_iris = np.clip(0.5 - (rho - 1.0) * px_per_rho, 0.0, 1.0)
    a_pupil = np.clip(0.5 - (rho - pr) * px_per_rho, 0.0, 1.0)
    # one colour mix: sclera, vessels, iris, collarette, pupil
    w_scl = (1.0 - a_iris) * (1.0 - a_pupil)
    w_iris = ilum * a_iris * (1.0 - a_pupil)
    plica = np.clip(vessel + 0.6 * np.exp(np.maximum(tb, 0.0) * -22.0), 0.0, 1.0)  # pink inner corner
    weights = np.stack([w_scl * (1.0 - plica), w_scl * vessel, w_scl * (plica - vessel), w_iris,
                        w_iris * (0.21 * _gauss(rho - pr - 0.12, 0.1)), a_pupil], axis=-1)
    iris_rgb = np.asarray(params.iris_rgb, F32)
    colours = np.stack([np.asarray(params.sclera_rgb, F32), VESSEL_RGB, CARUNCLE_RGB * 0.95, iris_rgb,
                        iris_rgb * np.array([1.0, 0.85, 0.5], F32), PUPIL_RGB]).astype(F32)
    eye = weights @ colours
    return Surface(
        skin_albedo=np.clip(skin, 0.0, 1.0).astype(F32),
        skin_normal=skin_normal.astype(F32),
        u=u,
        v=v,
        box=box,
        eye_albedo=np.clip(eye, 0.0, 1.0).astype(F32),
        eye_normal=eye_normal,
        eye_ao=eye_ao.astype(F32),
        alpha=alpha.astype(F32),
        d_up=dub.astype(F32),
        cornea=np.clip((1.15 - rho) * (1.0 / 0.15), 0.0, 1.0).astype(F32),
        labels=geo.labels_in_box(lay, box, dub, dlb, rho2),
    )


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
