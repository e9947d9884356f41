"""The renderer's output bytes are pinned: speed work must not change a single pixel;
the batch API returns exactly what the one-draw API returns. The v1 digests date from
before the v2 wild profile and must not move with it; v2 has digests of its own.

The digests cover images and label maps (uint8, identical on every x86-64 CPU we tried)
and landmarks and pupil centres rounded to 1/1000 px (their raw float64 bits depend on
the CPU's SIMD kernels), of both domains at two sizes, for the locked numpy / OpenCV
(requirements/lock.txt). A change that alters them changes every dataset rendered from a
seed; if that is intended (or the lock moves numpy / OpenCV), re-pin deliberately and say so.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from eyepurify.data.render import (
    WildFactors,
    draw,
    geometry,
    render,
    render_batch,
    render_domains,
    render_domains_batch,
    render_pair,
    sample_params,
)
from eyepurify.errors import EyepurifyError
from eyepurify.sample import EyeSample

PINNED = {
    ((36, 60), "indoor"): "492cb4459e9e93eb",
    ((36, 60), "wild"): "8e48f1c70927cdb1",
    ((72, 120), "indoor"): "4800cc69c745a846",
    ((72, 120), "wild"): "4a89d94f8f0eadc9",
}
PINNED_PAIR = "afe1a420a3a5e516"
# The v2 wild profile (wild2), pinned when it was introduced; indoor is the same as above.
PINNED_V2 = {
    (36, 60): "0e70ae441a0ca3fd",
    (72, 120): "e3486ac3e54a064a",
}
PINNED_PAIR_V2 = "6fa4d9f7eb683f31"


def digest(samples: list[EyeSample], decimals: int | None = 3) -> str:
    """Digest of images, label maps, landmarks and pupil centres.

    ``decimals``: landmarks and pupil centres rounded to this many decimals (1/1000 px):
    their last float64 bits depend on which SIMD kernels numpy dispatches to on this CPU,
    while the uint8 images and label maps do not. None hashes the raw float bytes (the
    same-machine determinism check).
    """

    def geom(a: np.ndarray) -> bytes:
        a = np.asarray(a, dtype=np.float64)
        return (a if decimals is None else np.round(a, decimals) + 0.0).tobytes()

    h = hashlib.sha256()
    for s in samples:
        assert s.labels is not None and s.pupil_center is not None
        h.update(s.image.tobytes())
        h.update(s.labels.tobytes())
        for k in sorted(s.landmarks):
            h.update(geom(s.landmarks[k]))
        h.update(geom(s.pupil_center))
    return h.hexdigest()[:16]


def _pinned_samples(size: tuple[int, int], domain: str, profile: str = "v1") -> list[EyeSample]:
    return [render(sample_params(np.random.default_rng([11, i])), size, domain, profile=profile) for i in range(4)]


@pytest.mark.parametrize(("size", "domain"), list(PINNED))
def test_render_bytes_are_pinned(size, domain):
    assert digest(_pinned_samples(size, domain)) == PINNED[(size, domain)]


def test_render_pair_bytes_are_pinned():
    p = sample_params(np.random.default_rng(5))
    assert digest(list(render_pair(p, (36, 60), WildFactors(noise=0.0, jpeg=0.5)))) == PINNED_PAIR


@pytest.mark.parametrize("size", list(PINNED_V2))
def test_v2_render_bytes_are_pinned(size):
    assert digest(_pinned_samples(size, "wild", "v2")) == PINNED_V2[size]
    assert digest(_pinned_samples(size, "indoor", "v2")) == PINNED[(size, "indoor")]


def test_v2_render_pair_bytes_are_pinned():
    p = sample_params(np.random.default_rng(5))
    f = WildFactors(noise=0.0, jpeg=0.5, glasses=0.8, stamp=0.6, dark=0.0)
    assert digest(list(render_pair(p, (36, 60), f, profile="v2"))) == PINNED_PAIR_V2


@pytest.mark.parametrize("domain", ["indoor", "wild"])
def test_same_seed_same_machine_same_bytes(domain):
    # Determinism: on one machine, one seed gives identical float64 bytes, not just rounded ones.
    a = digest(_pinned_samples((36, 60), domain), decimals=None)
    b = digest(_pinned_samples((36, 60), domain), decimals=None)
    assert a == b


def test_cached_constants_cannot_be_edited():
    p = sample_params(np.random.default_rng(0))
    lay = geometry.layout(p, (36, 60))
    x, y = geometry.pixel_grid(lay)
    with pytest.raises(ValueError, match="read-only"):
        x[0, 0] = 5.0
    with pytest.raises(ValueError, match="read-only"):
        y[0, 0] = 5.0
    # landmarks are fresh arrays per call (callers may edit them)
    a = geometry.landmarks(lay)
    a["iris"][:] = 0.0
    a["caruncle"][:] = 0.0
    b = geometry.landmarks(lay)
    assert np.abs(b["iris"]).sum() > 0 and np.abs(b["caruncle"]).sum() > 0


def same(a: EyeSample, b: EyeSample) -> bool:
    return digest([a]) == digest([b]) and a.source == b.source


@pytest.mark.parametrize("profile", ["v1", "v2"])
@pytest.mark.parametrize("size", [(36, 60), (21, 50)])
def test_render_batch_equals_render(size, profile):
    ps = [sample_params(np.random.default_rng([3, i])) for i in range(5)]
    for domain in ("indoor", "wild"):
        batch = render_batch(ps, size, domain, profile=profile)
        assert all(same(b, render(p, size, domain, profile=profile)) for b, p in zip(batch, ps, strict=True))


@pytest.mark.parametrize("profile", ["v1", "v2"])
def test_batch_with_generators_factors_and_chunks_equals_one_by_one(profile):
    ps = [sample_params(np.random.default_rng([4, i])) for i in range(5)]
    f = WildFactors(blur=0.0, jpeg=0.7)
    one = []
    rngs_one = [np.random.default_rng(i) for i in range(5)]
    for p, r in zip(ps, rngs_one, strict=True):
        one.append(render_domains(p, (36, 60), ["wild", "indoor"], f, r, profile=profile))
    rngs = [np.random.default_rng(i) for i in range(5)]
    many = render_domains_batch(ps, (36, 60), ["wild", "indoor"], f, rngs, chunk=2, profile=profile)
    for a, b in zip(one, many, strict=True):
        assert [x[1] for x in a] == [x[1] for x in b]  # resolved factors
        assert all(same(x[0], y[0]) for x, y in zip(a, b, strict=True))
    # the callers' generators advanced exactly as one-by-one rendering advanced them
    for r1, r2 in zip(rngs_one, rngs, strict=True):
        assert r1.integers(0, 2**62) == r2.integers(0, 2**62)


def test_batched_surfaces_equal_single_surfaces():
    ps = [sample_params(np.random.default_rng([5, i])) for i in range(3)]
    lays = [geometry.layout(p, (30, 48)) for p in ps]
    for p, lay, s in zip(ps, lays, draw.surfaces(ps, lays), strict=True):
        one = draw.surface(p, lay)
        assert s.box == one.box
        for name in ("skin_albedo", "skin_normal", "u", "v", "eye_albedo", "eye_normal", "eye_ao", "alpha",
                     "d_up", "d_lo", "cornea", "labels"):
            a, b = getattr(s, name), getattr(one, name)
            assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), name


def test_batch_arguments():
    ps = [sample_params(np.random.default_rng([6, i])) for i in range(2)]
    assert render_batch([], (36, 60)) == []
    with pytest.raises(EyepurifyError, match="generators for 2 draws"):
        render_batch(ps, (36, 60), "wild", rngs=[None])
    with pytest.raises(EyepurifyError, match="chunk 0"):
        render_domains_batch(ps, (36, 60), chunk=0)
    with pytest.raises(EyepurifyError, match="unknown render domain"):
        render_batch(ps, (36, 60), "outdoor")
    lays = [geometry.layout(ps[0], (36, 60)), geometry.layout(ps[1], (40, 60))]
    with pytest.raises(EyepurifyError, match="different image sizes"):
        draw.surfaces(ps, lays)
