"""The canonical eye scale (eyepurify.eyescale) and the inference paths that use it."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from eyepurify.cli import main
from eyepurify.data.render import render_batch, sample_params
from eyepurify.eyescale import (
    RENDER_EYE_WIDTH_FRAC,
    Box,
    EyeScale,
    canonical_box,
    crop,
    crop_labels,
    eye_box,
    is_patch,
    measure_eye_scale,
    paste,
    paste_labels,
    whole_image_box,
)
from eyepurify.io import read_image, write_image
from eyepurify.models.export import save_model
from eyepurify.models.segmentation import create_segmentation_net
from eyepurify.models.transformer import create_transform_net
from eyepurify.purify import Purifier
from eyepurify.segment import Segmenter

SCALE = EyeScale((36, 60), 38.0, (29.5, 17.5))
COLOURS = np.array([(0, 0, 0), (235, 235, 235), (90, 60, 40), (10, 10, 10)], np.uint8)  # per label


def photo(h: int = 240, w: int = 320, eye=(90, 100, 210, 150), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A skin-coloured photo with one eye (sclera ellipse, iris and pupil disks) in box ``eye``."""
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal((170, 120, 100), 6, (h, w, 3)), 0, 255).astype(np.uint8)
    lab = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = eye
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    cv2.ellipse(lab, (cx, cy), ((x1 - x0) // 2, (y1 - y0) // 2), 0, 0, 360, 1, -1)
    opening = lab > 0
    r = (y1 - y0) // 2
    cv2.circle(lab, (cx, cy), r, 2, -1)
    cv2.circle(lab, (cx, cy), r // 2, 3, -1)
    lab[~opening] = 0  # the iris is cut by the lids
    img[lab > 0] = COLOURS[lab[lab > 0]]
    return img, lab


def test_eye_box_takes_the_largest_region():
    lab = np.zeros((40, 60), np.uint8)
    lab[10:20, 5:35] = 1
    lab[30:32, 50:52] = 2
    assert eye_box(lab) == (5.0, 10.0, 35.0, 20.0)
    assert eye_box(np.zeros((4, 4), np.uint8)) is None
    assert eye_box(lab[30:32, 50:52], min_area=5) is None


def test_canonical_box_brings_the_eye_to_the_trained_width_and_centre():
    _, lab = photo()
    box = canonical_box(eye_box(lab), SCALE)
    assert box.width / box.height == pytest.approx(60 / 36, rel=0.02)
    patch = crop_labels(lab, box, SCALE.size)
    x0, y0, x1, y1 = eye_box(patch)
    assert x1 - x0 == pytest.approx(SCALE.eye_width, abs=1.5)
    assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx(SCALE.center, abs=1.5)


def test_crop_past_the_edges_and_paste_changes_only_the_box():
    img, lab = photo(eye=(0, 0, 120, 60))
    box = canonical_box(eye_box(lab), SCALE)
    assert box.x0 < 0 and box.y0 < 0  # the eye sits in the corner
    patch = crop(img, box, SCALE.size)
    assert patch.shape == (36, 60, 3)
    out = paste(img, np.full_like(patch, 7), box)
    assert out.shape == img.shape
    inside = np.zeros(img.shape[:2], bool)
    inside[max(box.y0, 0) : box.y1, max(box.x0, 0) : box.x1] = True
    assert np.array_equal(out[~inside], img[~inside])
    assert (out[inside] != img[inside]).any()
    # the feathered edge: the box's outermost pixels barely change, its centre is the patch
    cy, cx = (box.y0 + box.y1) // 2, (box.x0 + box.x1) // 2
    assert (out[cy, cx] == 7).all()
    full = paste_labels(img.shape[:2], crop_labels(lab, box, SCALE.size), box)
    assert full.shape == lab.shape and (full[~inside] == 0).all()
    assert np.mean(full[inside] == lab[inside]) > 0.9  # a 3× round trip through 36×60


def test_which_inputs_are_already_canonical():
    s = EyeScale.for_renders((72, 120))
    assert is_patch((36, 60), s) and is_patch((72, 120, 3), s) and is_patch((35, 55), s) and is_patch((144, 240), s)
    assert not is_patch((480, 640), s) and not is_patch((64, 64), s) and not is_patch((360, 600), s)
    b = whole_image_box((480, 640), s)
    assert b.width >= 640 and b.height >= 480 and b.width / b.height == pytest.approx(120 / 72, rel=0.01)


def test_render_scale_is_what_the_renderer_draws():
    ps = [sample_params(np.random.default_rng([1, i])) for i in range(40)]
    s = measure_eye_scale([r.labels for r in render_batch(ps, (72, 120), "indoor")])
    assert s.eye_width / 120 == pytest.approx(RENDER_EYE_WIDTH_FRAC, abs=0.04)
    assert EyeScale.from_meta({"eye_scale": s.to_meta()}) == EyeScale.from_meta({"eye_scale": json.loads(json.dumps(s.to_meta()))})
    assert EyeScale.from_meta({}, [36, 60]) == EyeScale.for_renders((36, 60))
    assert EyeScale.from_meta({}) is None and EyeScale.from_meta({"eye_scale": {"size": "x"}}) is None
    with pytest.raises(ValueError, match="no eye"):
        measure_eye_scale([np.zeros((4, 4), np.uint8)])


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(0)
    net = create_transform_net("test_tiny").eval()
    path = tmp_path / "m.safetensors"
    save_model(path, net, {"net": net.config.to_dict(), "train": {"size": [36, 60]}, "eye_scale": SCALE.to_meta()})
    return path


def test_purifier_normalises_photos_and_keeps_patches_as_they_were(model_file):
    p = Purifier.from_pretrained(model_file, segmenter=None)
    off = Purifier.from_pretrained(model_file, segmenter=None, eye_scale=False)
    assert p.scale == SCALE and off.scale is None
    img, lab = photo()
    (r,) = p.process([img], [lab])
    assert r.box is not None and r.eye_found and r.image.shape == img.shape and r.crop.shape == (36, 60, 3)
    assert r.box == canonical_box(eye_box(lab), SCALE)
    outside = np.ones(img.shape[:2], bool)
    outside[max(r.box.y0, 0) : r.box.y1, max(r.box.x0, 0) : r.box.x1] = False
    assert np.array_equal(r.image[outside], img[outside])
    assert r.labels.shape == lab.shape and r.crop_labels.shape == (36, 60)
    # an eye patch at the trained size: exactly what running at its own size gives
    patch, plab = crop(img, r.box, (36, 60)), crop_labels(lab, r.box, (36, 60))
    (q,) = p.process([patch], [plab])
    assert q.box is None and np.array_equal(q.image, off.purify_arrays([patch], [plab])[0])
    np.testing.assert_array_equal(q.image, r.crop)
    # a patch at twice the size: purified whole at the training size and resized back
    big, blab = cv2.resize(patch, (120, 72)), cv2.resize(plab, (120, 72), interpolation=cv2.INTER_NEAREST)
    (b,) = p.process([big], [blab])
    assert b.box is None and b.image.shape == big.shape and b.crop.shape == (36, 60, 3)
    np.testing.assert_array_equal(b.crop, off.purify_arrays([cv2.resize(big, (60, 36), interpolation=cv2.INTER_AREA)], [plab])[0])


def near(a: Box, b: Box, frac: float = 0.02) -> bool:
    """Boxes equal within ``frac`` of their width (the located eye passes through resampling)."""
    return max(abs(u - v) for u, v in zip(a.to_list(), b.to_list(), strict=True)) <= frac * b.width


class ColourSegmenter(Segmenter):
    """A segmenter whose network is replaced by the exact colours of :func:`photo`."""

    def _run(self, imgs, size=None):
        ref = np.array([(170, 120, 100), *COLOURS[1:]], np.float32)
        return [np.argmin(((im[..., None, :].astype(np.float32) - ref) ** 2).sum(-1), -1).astype(np.uint8) for im in imgs]


def test_segmenter_locates_the_eye_and_pastes_labels_back():
    seg = ColourSegmenter(create_segmentation_net("test_tiny"), size=(36, 60), scale=SCALE)
    img, lab = photo(eye=(150, 60, 250, 100))
    (box, found), = seg.locate([img])
    assert found and near(box, canonical_box(eye_box(lab), SCALE))
    full, small, box2, found2 = seg.predict_normalised([img])[0]
    assert box2 == box and found2 and small.shape == (36, 60) and full.shape == lab.shape
    assert np.mean(full == lab) > 0.99
    # no eye: the whole image at the trained aspect, reported as not found
    (box, found), = seg.locate([np.full((120, 100, 3), 170, np.uint8)])
    assert not found and box == whole_image_box((120, 100), SCALE)


def test_purifier_finds_the_eye_with_the_segmenter(model_file):
    seg = ColourSegmenter(create_segmentation_net("test_tiny"), size=(36, 60), scale=SCALE)
    p = Purifier.from_pretrained(model_file, segmenter=seg)
    img, lab = photo()
    (r,) = p.process([img])
    assert r.eye_found and near(r.box, canonical_box(eye_box(lab), SCALE))
    assert np.mean(r.labels == lab) > 0.98


def test_purify_cli_full_and_crop_outputs(model_file, tmp_path):
    img, lab = photo()
    write_image(tmp_path / "in" / "eye.png", img)
    write_image(tmp_path / "m" / "eye.png", lab)
    base = ["purify", str(tmp_path / "in" / "eye.png"), "--model", str(model_file), "--segmenter", "none",
            "--masks", str(tmp_path / "m")]
    assert main([*base, "--out", str(tmp_path / "full")]) == 0
    assert read_image(tmp_path / "full" / "eye.png").shape == img.shape
    item = json.loads((tmp_path / "full" / "manifest.json").read_text())["items"]["eye.png"]
    box = Box(*item["box"])
    assert item["eye_found"] and box == canonical_box(eye_box(lab), SCALE)
    assert main([*base, "--out", str(tmp_path / "crop"), "--output", "crop"]) == 0
    assert read_image(tmp_path / "crop" / "eye.png").shape == (36, 60, 3)
    assert main([*base, "--out", str(tmp_path / "off"), "--eye-scale", "off"]) == 0
    assert "box" not in json.loads((tmp_path / "off" / "manifest.json").read_text())["items"]["eye.png"]


def test_real_content_without_masks_is_labelled_and_cut_to_the_eye_box(tmp_path):
    from eyepurify.train.purifier_data import load_labelled_set

    for i in range(3):
        write_image(tmp_path / "real" / f"p{i}.png", photo(seed=i)[0])
    with pytest.raises(Exception, match="without label maps"):
        load_labelled_set([tmp_path / "real"], (36, 60), progress=False)
    seg = ColourSegmenter(create_segmentation_net("test_tiny"), size=(36, 60), scale=SCALE)
    images, labels, _ = load_labelled_set([tmp_path / "real"], (36, 60), progress=False, segmenter=seg)
    assert images.shape == (3, 36, 60, 3) and labels.shape == (3, 36, 60)
    x0, _, x1, _ = eye_box(labels[0])
    assert x1 - x0 == pytest.approx(SCALE.eye_width, abs=2)  # the eye at the canonical scale, not the photo's


def test_eye_alpha_and_mask_paste_change_only_the_eye():
    from eyepurify.eyescale import eye_alpha, looks_like_eye, paste

    lab = np.zeros((72, 120), np.uint8)
    lab[25:47, 22:98] = 1
    lab[28:44, 52:68] = 2
    a = eye_alpha(lab)
    assert a[36, 60] == pytest.approx(1.0, abs=1e-3) and a[2, 2] < 1e-3 and a[36, 5] < 0.1
    assert looks_like_eye(lab) and not looks_like_eye(np.zeros_like(lab)) and not looks_like_eye((lab > 0).astype(np.uint8))
    rng = np.random.default_rng(0)
    original = np.clip(rng.normal(120, 20, (200, 300, 3)), 0, 255).astype(np.uint8)
    box = Box(60, 40, 240, 148)  # 180×108: 1.5× the patch
    raw = crop(original, box, (72, 120))
    brighter = np.clip(raw.astype(int) + 60, 0, 255).astype(np.uint8)  # a "purified" patch: +60 everywhere
    rect = paste(original, brighter, box)
    masked = paste(original, brighter, box, labels=lab)
    outside = np.ones(original.shape[:2], bool)
    outside[box.y0 : box.y1, box.x0 : box.x1] = False
    assert (masked[outside] == original[outside]).all()
    eye_px = (slice(40 + 40, 40 + 66), slice(60 + 80, 60 + 100))  # the eye's centre, in photo pixels
    skin_px = (slice(40 + 4, 40 + 20), slice(60 + 4, 60 + 30))  # box corner: skin, far from the eye
    d = lambda x, s: np.abs(x[s].astype(int) - original[s].astype(int)).mean()  # noqa: E731
    assert d(masked, eye_px) > 40 and d(masked, skin_px) < 2  # only the eye changes
    assert d(rect, skin_px) > 10  # the rectangle blend shows a box


class SizeSegmenter(Segmenter):
    """A segmenter that records the sizes it ran at and labels everything with its tag."""

    def __init__(self, tag: int, size: tuple[int, int], scale: EyeScale) -> None:
        super().__init__(create_segmentation_net("test_tiny"), size=size, scale=scale)
        self.tag, self.seen = tag, []

    def _run(self, imgs, size=None):
        self.seen += [im.shape[:2] for im in imgs]
        return [np.full(im.shape[:2], self.tag, np.uint8) for im in imgs]


def test_scaled_segmenters_route_patches_to_the_nearest_scale_and_photos_to_the_first():
    from eyepurify.segment import ScaledSegmenters

    big = SizeSegmenter(1, (72, 120), EyeScale((72, 120), 76.0, (59.0, 35.0)))
    small = SizeSegmenter(2, (36, 60), SCALE)
    both = ScaledSegmenters([big, small])
    labs = both([np.zeros((36, 60, 3), np.uint8), np.zeros((72, 120, 3), np.uint8), np.zeros((40, 66, 3), np.uint8)])
    assert [int(lab[0, 0]) for lab in labs] == [2, 1, 2]
    assert [lab.shape for lab in labs] == [(36, 60), (72, 120), (40, 66)]
    assert big.seen == [(72, 120)]  # the gaze patch was not enlarged
    assert both.pick((480, 640, 3)) == 0 and both.scale == big.scale
