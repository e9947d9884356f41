"""The v2 wild profile (eyepurify.data.render.wild2): appearance only, each factor by name,
each factor's randomness its own."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from eyepurify.data.render import (
    FACTOR_NAMES,
    V2_FACTOR_NAMES,
    WildFactors,
    render,
    render_domains,
    render_domains_batch,
    sample_params,
    wild2,
)
from eyepurify.errors import EyepurifyError

SMALL = (36, 60)
EYE = (72, 120)
F32 = np.float32


def draw(seed: int):  # type: ignore[no-untyped-def]
    return sample_params(np.random.default_rng([21, seed]))


def v1_set(rng_seed: int) -> dict[str, float]:
    """Explicit (random but fixed) severities for every v1 factor."""
    vals = np.random.default_rng(rng_seed).uniform(0.2, 0.9, len(FACTOR_NAMES))
    return {n: float(v) for n, v in zip(FACTOR_NAMES, vals, strict=True)}


def wild_v2(p, f: WildFactors, seed: int = 0, size=SMALL):  # type: ignore[no-untyped-def]
    return render_domains(p, size, ["wild"], f, np.random.default_rng(seed), profile="v2")[0]


@pytest.mark.parametrize("size", [SMALL, EYE])
def test_indoor_labels_and_landmarks_do_not_depend_on_the_profile(size):
    for seed in range(3):
        p = draw(seed)
        (in1, _), (w1, _) = render_domains(p, size, ["indoor", "wild"], None, np.random.default_rng(seed))
        (in2, _), (w2, f2) = render_domains(p, size, ["indoor", "wild"], None, np.random.default_rng(seed), profile="v2")
        assert in1.image.tobytes() == in2.image.tobytes() and in1.source == in2.source
        for s in (w1, w2):
            np.testing.assert_array_equal(s.labels, in1.labels)
            np.testing.assert_array_equal(s.pupil_center, in1.pupil_center)
            np.testing.assert_array_equal(s.gaze, in1.gaze)
            np.testing.assert_array_equal(s.head_pose, in1.head_pose)
            for k in in1.landmarks:
                np.testing.assert_array_equal(s.landmarks[k], in1.landmarks[k])
        assert not np.array_equal(w1.image, w2.image)
        assert f2 is not None and all(0.0 <= getattr(f2, n) <= 1.0 for n in (*FACTOR_NAMES, *V2_FACTOR_NAMES))


def test_v2_with_its_factors_off_is_v1_and_everything_off_is_indoor():
    for seed in range(4):
        p = draw(seed)
        kw = v1_set(seed)
        v1 = render(p, SMALL, "wild", WildFactors(**kw), np.random.default_rng(seed))
        f = WildFactors(**kw, **{n: 0.0 for n in V2_FACTOR_NAMES})
        v2, resolved = wild_v2(p, f, seed)
        assert v1.image.tobytes() == v2.image.tobytes()
        assert resolved is not None and resolved.to_dict() == {**kw, **{n: 0.0 for n in V2_FACTOR_NAMES}}
        off, _ = wild_v2(p, WildFactors.off(), seed)
        assert off.image.tobytes() == render(p, SMALL).image.tobytes()


@pytest.mark.parametrize("name", V2_FACTOR_NAMES)
def test_each_v2_factor_changes_only_the_image(name):
    p = dataclasses.replace(draw(7), gaze_pitch=0.0, gaze_yaw=0.0, head_pitch=0.0, head_yaw=0.0, upper_open=6.5)
    indoor = render(p, EYE)
    f = dataclasses.replace(WildFactors.off(), **{name: 1.0})
    diffs = []
    for seed in range(3):  # a factor's shape is random: it must show in most draws
        s, _ = wild_v2(p, f, seed, EYE)
        np.testing.assert_array_equal(s.labels, indoor.labels)
        diffs.append(np.abs(s.image.astype(int) - indoor.image.astype(int)).mean())
    assert max(diffs) > 0.3, diffs


# The functions that carry each v2 factor's effect, and an identity for each.
_IDENTITY = {
    "dark": {"dark_expose": lambda out, s, rng: (out, 1.0), "dark_noise": lambda out, s, gain, rng: out},
    "cast": {"cast_step": lambda out, s, rng: out},
    "flare": {"flare_step": lambda out, s, rng: out},
    "motion": {"_motion_kernel": lambda length, angle: np.ones((1, 1), F32)},
    "fringe": {"fringe_step": lambda out, s, rng: out},
    "glasses": {"glasses": lambda img, surf, lay, s, rng: img},
    "skin": {"skin_albedo": lambda surf, lay, s, rng: surf.skin_albedo},
    "sclera": {"eye_albedo": lambda surf, lay, s, rng: surf.eye_albedo},
    "lashes": {"lashes": lambda img, lay, params, s, rng: img},
    "stamp": {"stamp_step": lambda res, s, rng: res},
    "equalize": {"equalize_step": lambda res, s: res},
}


def test_identity_table_covers_every_factor():
    assert set(_IDENTITY) == set(V2_FACTOR_NAMES)


@pytest.mark.parametrize("name", V2_FACTOR_NAMES)
def test_a_factor_at_zero_is_a_no_op_and_changes_no_other_factor(name, monkeypatch):
    # Rendering with `name` = 0 must give exactly the image of rendering with `name` drawn
    # but its effect replaced by the identity: nothing else (other factors' severities,
    # shapes, noise) may move when one factor is switched off.
    others = {n: None for n in V2_FACTOR_NAMES}
    if name == "dark":
        others["flare"] = 0.0  # dark damps the flare by design
    for seed in range(3):
        p = draw(seed)
        base = {**v1_set(seed), **others}
        off, f_off = wild_v2(p, WildFactors(**{**base, name: 0.0}), seed, EYE)
        with monkeypatch.context() as m:
            for fn, ident in _IDENTITY[name].items():
                m.setattr(wild2, fn, ident)
            on, f_on = wild_v2(p, WildFactors(**{**base, name: 0.9}), seed, EYE)
            # and at 0 the effect is never even called
            for fn in _IDENTITY[name]:
                m.setattr(wild2, fn, _boom)
            again, _ = wild_v2(p, WildFactors(**{**base, name: 0.0}), seed, EYE)
        assert off.image.tobytes() == on.image.tobytes() == again.image.tobytes()
        assert f_off is not None and f_on is not None
        assert dataclasses.replace(f_on, **{name: 0.0}) == f_off


def _boom(*args: object, **kwargs: object) -> None:
    raise AssertionError("effect called at severity 0")


def test_unset_v2_severities_come_from_their_own_streams():
    f = wild2.resolve_v2(WildFactors(), 12345)
    g = wild2.resolve_v2(WildFactors(glasses=0.5, skin=0.0), 12345)
    for n in V2_FACTOR_NAMES:
        if n not in ("glasses", "skin"):
            assert getattr(f, n) == getattr(g, n)
    assert g.glasses == 0.5 and g.skin == 0.0
    # presence rates follow PRESENT
    draws = [wild2.resolve_v2(WildFactors(), k) for k in range(400)]
    for n in V2_FACTOR_NAMES:
        rate = np.mean([getattr(d, n) > 0 for d in draws])
        assert abs(rate - wild2.PRESENT[n]) < 0.08, (n, rate)


def test_unset_v1_factors_are_reshaped_in_v2_and_set_ones_kept():
    rng = np.random.default_rng(3)
    asked = WildFactors(blur=0.4)
    drawn = asked.resolve(rng)
    shaped = wild2.reshape_v1(asked, drawn)
    assert shaped.blur == drawn.blur == 0.4
    assert shaped.noise == pytest.approx(drawn.noise ** wild2.V1_SHAPE["noise"])  # type: ignore[operator]


def test_batch_and_chunks_equal_one_by_one_in_v2():
    ps = [draw(i) for i in range(5)]
    f = WildFactors(glasses=0.7, stamp=0.5, jpeg=0.0)
    one = [render_domains(p, SMALL, ["wild", "indoor"], f, np.random.default_rng(i), profile="v2") for i, p in enumerate(ps)]
    many = render_domains_batch(ps, SMALL, ["wild", "indoor"], f, [np.random.default_rng(i) for i in range(5)], chunk=2,
                                profile="v2")
    for a, b in zip(one, many, strict=True):
        assert [x[1] for x in a] == [x[1] for x in b]
        for (x, _), (y, _) in zip(a, b, strict=True):
            assert x.image.tobytes() == y.image.tobytes() and x.labels.tobytes() == y.labels.tobytes()


def test_profile_errors_are_one_line():
    p = draw(0)
    with pytest.raises(EyepurifyError, match="only in the v2 wild profile") as e:
        render(p, SMALL, "wild", WildFactors(glasses=0.5))
    assert "\n" not in str(e.value)
    render(p, SMALL, "wild", WildFactors(glasses=0.0))  # explicitly off is fine in v1
    with pytest.raises(EyepurifyError, match="unknown wild profile"):
        render(p, SMALL, "wild", profile="v3")
    with pytest.raises(EyepurifyError, match="outside"):
        WildFactors(stamp=1.5)
    with pytest.raises(EyepurifyError, match="outside"):
        WildFactors(skin=float("nan"))
    with pytest.raises(EyepurifyError, match="bad severity"):
        WildFactors.parse("lashes=lots")
    with pytest.raises(EyepurifyError, match="bad wild factor"):
        WildFactors.parse("fog=1")
    assert WildFactors.parse("equalize=0.3,dark=0").equalize == 0.3
