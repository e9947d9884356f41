"""Procedural eye renderer: labelled eye images in a clean "indoor" and an outdoor "wild" domain.

    rng = np.random.default_rng(0)
    p = sample_params(rng)
    clean = render(p, (36, 60), "indoor")
    wild = render(p, (36, 60), "wild", rng=rng)   # same eye, same labels, outdoor look

Geometry is in ``geometry`` (3-D eyeball and lids -> 2-D), texture and shading in ``draw``,
the outdoor factors in ``degrade``; ``docs/renderer.md`` describes the parameters.
"""

from __future__ import annotations

import numpy as np

from eyepurify.data.render import draw, geometry
from eyepurify.data.render.degrade import FACTOR_NAMES, WildFactors, camera, wild_lighting
from eyepurify.data.render.params import EyeParams, rotation, sample_params
from eyepurify.errors import EyepurifyError
from eyepurify.sample import EyeSample

DOMAINS = ("indoor", "wild")

__all__ = [
    "DOMAINS",
    "FACTOR_NAMES",
    "EyeParams",
    "WildFactors",
    "render",
    "render_domains",
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
    params: EyeParams, lay: geometry.EyeLayout, surf: draw.Surface, image: np.ndarray, source: str
) -> EyeSample:
    return EyeSample(
        image=image,
        labels=surf.labels.copy(),
        gaze=params.gaze,
        head_pose=params.head_pose,
        pupil_center=lay.iris_center.copy(),
        landmarks=geometry.landmarks(lay),
        source=source,
    )


def render_domains(
    params: EyeParams,
    size: tuple[int, int],
    domains: tuple[str, ...] | list[str] = DOMAINS,
    wild: WildFactors | None = None,
    rng: np.random.Generator | None = None,
) -> list[tuple[EyeSample, WildFactors | None]]:
    """Render one draw in each of ``domains`` from one geometry and surface evaluation.

    Returns (sample, resolved wild factors or None for indoor) per domain, in order.
    wild: factor severities (None = all drawn from ``rng``); rng: the wild domain's
    randomness (None = derived from ``params.texture_seed``). Indoor uses no rng, so a wild
    render is the same whether or not indoor is rendered alongside.
    """
    h, w = _check_size(size)
    bad = [d for d in domains if d not in DOMAINS]
    if bad:
        raise EyepurifyError(f"unknown render domain {bad[0]!r} (use one of {', '.join(DOMAINS)})")
    lay = geometry.layout(params, (h, w))
    surf = draw.surface(params, lay)
    out: list[tuple[EyeSample, WildFactors | None]] = []
    for domain in domains:
        if domain == "indoor":
            image = draw.to_uint8(draw.compose(surf, lay, draw.indoor_lighting(params, lay)))
            out.append((_sample(params, lay, surf, image, f"render/indoor/{params.texture_seed}"), None))
            continue
        if rng is None:
            rng = np.random.default_rng([params.texture_seed, 1])
        factors = (wild or WildFactors()).resolve(rng)
        image = camera(draw.compose(surf, lay, wild_lighting(params, lay, factors, rng)), factors, rng)
        out.append((_sample(params, lay, surf, image, f"render/wild/{params.texture_seed}"), factors))
    return out


def render(
    params: EyeParams,
    size: tuple[int, int] = (36, 60),
    domain: str = "indoor",
    wild: WildFactors | None = None,
    rng: np.random.Generator | None = None,
) -> EyeSample:
    """Render one draw at ``size`` = (H, W) px in ``domain`` "indoor" or "wild".

    wild: factor severities for the wild domain (None = all drawn from ``rng``).
    rng: randomness of the wild domain only (light direction, noise, unset severities);
    None = derived from ``params.texture_seed``, so a draw alone fixes the image.
    Labels, gaze, head pose, pupil centre and landmarks never depend on the domain.
    """
    return render_domains(params, size, [domain], wild, rng)[0][0]


def render_pair(
    params: EyeParams,
    size: tuple[int, int] = (36, 60),
    wild: WildFactors | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[EyeSample, EyeSample]:
    """(indoor, wild) renders of one draw (paired: same geometry, labels and texture)."""
    (indoor, _), (wild_sample, _) = render_domains(params, size, DOMAINS, wild, rng)
    return indoor, wild_sample
