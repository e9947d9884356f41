"""Procedural eye renderer: labelled eye images in a clean "indoor" and an outdoor "wild" domain.

    rng = np.random.default_rng(0)
    p = sample_params(rng)
    clean = render(p, (36, 60), "indoor")
    wild = render(p, (36, 60), "wild", rng=rng)   # same eye, same labels, outdoor look
    wild2 = render(p, (36, 60), "wild", rng=rng, profile="v2")  # the wider v2 outdoor look
    many = render_batch(list_of_params, (36, 60), "indoor")  # = [render(p, ...) for p in ...]

Geometry is in ``geometry`` (3-D eyeball and lids -> 2-D), texture and shading in ``draw``,
the outdoor factors in ``degrade`` (v1, the default) and ``wild2`` (the v2 profile's
additions); ``docs/renderer.md`` describes the parameters.
The batch functions evaluate the per-pixel layers of several draws at once (faster at small
sizes, where per-call numpy overhead dominates) and return exactly the bytes of the
one-draw functions.
"""

from __future__ import annotations

import numpy as np

from eyepurify.data.render import draw, geometry, wild2
from eyepurify.data.render.degrade import (
    ALL_FACTOR_NAMES,
    FACTOR_NAMES,
    PROFILES,
    V2_FACTOR_NAMES,
    WildFactors,
    camera,
    camera_draws,
    wild_lighting,
)
from eyepurify.data.render.params import EyeParams, draw_params, rotation, sample_params
from eyepurify.errors import EyepurifyError
from eyepurify.sample import EyeSample

DOMAINS = ("indoor", "wild")
CHUNK_PIXELS = 40_000  # default pixels per batch chunk of render_domains_batch

__all__ = [
    "ALL_FACTOR_NAMES",
    "DOMAINS",
    "FACTOR_NAMES",
    "PROFILES",
    "V2_FACTOR_NAMES",
    "EyeParams",
    "WildFactors",
    "draw_params",
    "render",
    "render_batch",
    "render_domains",
    "render_domains_batch",
    "render_pair",
    "rotation",
    "sample_params",
]


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise EyepurifyError(f"render size {size!r} is not (H, W) (use two integers)") from None
    if h < 8 or w < 8:
        raise EyepurifyError(f"render size {h}×{w} is too small (use at least 8×8)")
    return h, w


def _sample(
    params: EyeParams,
    lay: geometry.EyeLayout,
    surf: draw.Surface,
    marks: dict[str, np.ndarray],
    image: np.ndarray,
    source: str,
) -> EyeSample:
    return EyeSample(
        image=image,
        labels=surf.labels.copy(),
        gaze=params.gaze,
        head_pose=params.head_pose,
        pupil_center=lay.iris_center.copy(),
        landmarks={k: v.copy() for k, v in marks.items()},
        source=source,
    )


def render_domains(
    params: EyeParams,
    size: tuple[int, int],
    domains: tuple[str, ...] | list[str] = DOMAINS,
    wild: WildFactors | None = None,
    rng: np.random.Generator | None = None,
    *,
    profile: str = "v1",
) -> list[tuple[EyeSample, WildFactors | None]]:
    """Render one draw in each of ``domains`` from one geometry and surface evaluation.

    Returns (sample, resolved wild factors or None for indoor) per domain, in order.
    wild: factor severities (None = all drawn from ``rng``); rng: the wild domain's
    randomness (None = derived from ``params.texture_seed``). Indoor uses no rng, so a wild
    render is the same whether or not indoor is rendered alongside.
    profile: the wild look, "v1" (default, the original factors) or "v2" (``wild2``: more
    factors); indoor, labels and landmarks are the same in both.
    """
    return render_domains_batch([params], size, domains, wild, [rng], profile=profile)[0]


def render_domains_batch(
    params_list: list[EyeParams],
    size: tuple[int, int],
    domains: tuple[str, ...] | list[str] = DOMAINS,
    wild: WildFactors | None = None,
    rngs: list[np.random.Generator | None] | None = None,
    chunk: int | None = None,
    *,
    profile: str = "v1",
) -> list[list[tuple[EyeSample, WildFactors | None]]]:
    """``render_domains`` of many draws, faster at small sizes; entry i is byte for byte
    ``render_domains(params_list[i], size, domains, wild, rngs[i])``.

    rngs: one wild-domain generator (or None) per draw, None = all derived from the seeds.
    chunk: draws whose per-pixel layers are evaluated together (peak memory about
    chunk × H × W × 250 bytes); None = about CHUNK_PIXELS pixels' worth (18 draws at 36×60,
    4 at 72×120: larger chunks stop paying once the arrays leave the CPU caches).
    profile: the wild look, "v1" or "v2" (see ``render_domains``).
    """
    h, w = _check_size(size)
    (wild or WildFactors()).check_profile(profile)
    bad = [d for d in domains if d not in DOMAINS]
    if bad:
        raise EyepurifyError(f"unknown render domain {bad[0]!r} (use one of {', '.join(DOMAINS)})")
    if rngs is not None and len(rngs) != len(params_list):
        raise EyepurifyError(f"{len(rngs)} generators for {len(params_list)} draws (pass one per draw, or None)")
    if chunk is None:
        chunk = max(1, CHUNK_PIXELS // (h * w))
    if chunk < 1:
        raise EyepurifyError(f"chunk {chunk} is not positive (use 1 or more draws per chunk)")
    out: list[list[tuple[EyeSample, WildFactors | None]]] = []
    for start in range(0, len(params_list), chunk):
        batch = params_list[start : start + chunk]
        lays = [geometry.layout(p, (h, w)) for p in batch]
        surfs = draw.surfaces(batch, lays)
        for k, (params, lay, surf) in enumerate(zip(batch, lays, surfs, strict=True)):
            rng = None if rngs is None else rngs[start + k]
            out.append(_domains(params, lay, surf, domains, wild, rng, profile))
    return out


def _domains(
    params: EyeParams,
    lay: geometry.EyeLayout,
    surf: draw.Surface,
    domains: tuple[str, ...] | list[str],
    wild: WildFactors | None,
    rng: np.random.Generator | None,
    profile: str,
) -> list[tuple[EyeSample, WildFactors | None]]:
    out: list[tuple[EyeSample, WildFactors | None]] = []
    marks = geometry.landmarks(lay)
    for domain in domains:
        if domain == "indoor":
            image = draw.to_uint8(draw.compose(surf, lay, draw.indoor_lighting(params, lay)))
            out.append((_sample(params, lay, surf, marks, image, f"render/indoor/{params.texture_seed}"), None))
            continue
        if rng is None:
            rng = np.random.default_rng([params.texture_seed, 1])
        factors = (wild or WildFactors()).resolve(rng)
        if profile == "v1":
            factors = factors.v1_only()
            image = camera(draw.compose(surf, lay, wild_lighting(params, lay, factors, rng)), factors, rng)
        else:
            factors = wild2.reshape_v1(wild or WildFactors(), factors)
            image, factors = _wild_v2(params, lay, surf, factors, rng)
        out.append((_sample(params, lay, surf, marks, image, f"render/wild/{params.texture_seed}"), factors))
    return out


def _wild_v2(
    params: EyeParams, lay: geometry.EyeLayout, surf: draw.Surface, factors: WildFactors, rng: np.random.Generator
) -> tuple[np.ndarray, WildFactors]:
    """The v2 wild image and its resolved factors. Every draw from ``rng`` happens first and
    in the v1 order (lighting, camera), then one key for the v2 factors' own streams."""
    light = wild_lighting(params, lay, factors, rng)
    cam = camera_draws(factors, rng, lay.size)
    key = int(rng.integers(0, 2**63 - 1))
    factors = wild2.resolve_v2(factors, key)
    img = draw.compose(wild2.wild_surface(surf, lay, factors, key), lay, light)
    img = wild2.scene(img, surf, lay, params, factors, key)
    return wild2.camera(img, factors, cam, key), factors


def render(
    params: EyeParams,
    size: tuple[int, int] = (36, 60),
    domain: str = "indoor",
    wild: WildFactors | None = None,
    rng: np.random.Generator | None = None,
    *,
    profile: str = "v1",
) -> EyeSample:
    """Render one draw at ``size`` = (H, W) px in ``domain`` "indoor" or "wild".

    wild: factor severities for the wild domain (None = all drawn from ``rng``).
    rng: randomness of the wild domain only (light direction, noise, unset severities);
    None = derived from ``params.texture_seed``, so a draw alone fixes the image.
    profile: the wild look, "v1" (default) or "v2" (more factors, see ``wild2``).
    Labels, gaze, head pose, pupil centre and landmarks never depend on the domain.
    """
    return render_domains(params, size, [domain], wild, rng, profile=profile)[0][0]


def render_pair(
    params: EyeParams,
    size: tuple[int, int] = (36, 60),
    wild: WildFactors | None = None,
    rng: np.random.Generator | None = None,
    *,
    profile: str = "v1",
) -> tuple[EyeSample, EyeSample]:
    """(indoor, wild) renders of one draw (paired: same geometry, labels and texture);
    profile: the wild look, "v1" (default) or "v2"."""
    (indoor, _), (wild_sample, _) = render_domains(params, size, DOMAINS, wild, rng, profile=profile)
    return indoor, wild_sample


def render_batch(
    params_list: list[EyeParams],
    size: tuple[int, int] = (36, 60),
    domain: str = "indoor",
    wild: WildFactors | None = None,
    rngs: list[np.random.Generator | None] | None = None,
    *,
    profile: str = "v1",
) -> list[EyeSample]:
    """``render`` of many draws (faster at small sizes): entry i is byte for byte
    ``render(params_list[i], size, domain, wild, rngs[i], profile=profile)`` (rngs None =
    seed-derived)."""
    return [d[0][0] for d in render_domains_batch(params_list, size, [domain], wild, rngs, profile=profile)]
