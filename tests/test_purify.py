import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from eyepurify.cli import main
from eyepurify.errors import EyepurifyError, WeightsError
from eyepurify.models.export import save_model
from eyepurify.models.transformer import create_transform_net
from eyepurify.purify import Purifier


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(0)
    net = create_transform_net("test_tiny").eval()
    path = tmp_path / "m.safetensors"
    save_model(path, net, {"net": net.config.to_dict()})
    return path


def _eye(h=20, w=30, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    lab = np.zeros((h, w), np.uint8)
    lab[5:15, 5:25] = 1
    lab[7:13, 12:18] = 2
    lab[9:11, 14:16] = 3
    return img, lab


def test_api_roundtrip_types_and_sizes(model_file):
    p = Purifier.from_pretrained(model_file, segmenter=None)
    img, lab = _eye()
    out = p(img, lab)
    assert out.shape == img.shape and out.dtype == np.uint8
    img2, lab2 = _eye(24, 40, 1)
    outs = p([img, img2], [lab, lab2])
    assert [o.shape for o in outs] == [img.shape, img2.shape]
    np.testing.assert_array_equal(outs[0], out)  # batching does not change results
    x = torch.rand(2, 3, 16, 24)
    y = p(x, torch.zeros(2, 16, 24, dtype=torch.long))
    assert y.shape == x.shape and y.dtype == torch.float32


def test_api_errors(model_file, tmp_path):
    p = Purifier.from_pretrained(model_file, segmenter=None)
    img, lab = _eye()
    with pytest.raises(EyepurifyError, match="no segmenter"):
        p(img)
    with pytest.raises(EyepurifyError, match="masks must match"):
        p([img], [lab[:-1]])
    with pytest.raises(EyepurifyError, match="NaN"):
        p(torch.full((1, 3, 8, 8), float("nan")), torch.zeros(1, 8, 8, dtype=torch.long))
    with pytest.raises(WeightsError, match="not found"):
        Purifier.from_pretrained(tmp_path / "nope.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="bad.safetensors"):
        Purifier.from_pretrained(tmp_path / "bad.safetensors")


def test_segmenter_callable_used_without_masks(model_file):
    calls = []

    def seg(images):
        calls.append(len(images))
        return [np.zeros(im.shape[:2], np.uint8) for im in images]

    p = Purifier.from_pretrained(model_file, segmenter=seg)
    img, _ = _eye()
    assert p(img).shape == img.shape and calls == [1]


def test_cli_batch_skip_report_resume(model_file, tmp_path, capsys):
    src, masks, out = tmp_path / "in", tmp_path / "masks", tmp_path / "out"
    src.mkdir()
    masks.mkdir()
    for i in range(3):
        img, lab = _eye(seed=i)
        Image.fromarray(img).save(src / f"e{i}.png")
        Image.fromarray(lab).save(masks / f"e{i}.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    args = ["purify", str(src / "*.png"), "--out", str(out), "--model", str(model_file), "--masks", str(masks), "--segmenter", "none"]
    assert main(args) == 1  # one bad file: done with failures
    err = capsys.readouterr().err
    assert "broken.png" in err
    man = json.loads((out / "manifest.json").read_text())["items"]
    assert {k for k, v in man.items() if v["status"] == "done"} == {"e0.png", "e1.png", "e2.png"}
    assert "broken.png" in (out / "report.txt").read_text()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    # a second run refuses to overwrite; --resume skips what is done
    assert main(args) == 2
    before = (out / "e0.png").stat().st_mtime_ns
    assert main([*args, "--resume"]) == 1
    assert (out / "e0.png").stat().st_mtime_ns == before


def test_cli_dataset_folder_carries_masks(model_file, tmp_path):
    ds = tmp_path / "ds"
    (ds / "images").mkdir(parents=True)
    (ds / "masks").mkdir()
    for i in range(2):
        img, lab = _eye(seed=i)
        Image.fromarray(img).save(ds / "images" / f"a{i}.png")
        Image.fromarray(lab).save(ds / "masks" / f"a{i}.png")
    out = tmp_path / "out"
    assert main(["purify", str(ds), "--out", str(out), "--model", str(model_file), "--segmenter", "none"]) == 0
    outs = sorted(p.name for p in out.glob("*.png"))
    assert len(outs) == 2 and len(list((out / "masks").glob("*.png"))) == 2


def test_cli_video(model_file, tmp_path):
    vid = tmp_path / "v.avi"
    w = cv2.VideoWriter(str(vid), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 24))
    assert w.isOpened()
    for i in range(5):
        w.write(np.full((24, 32, 3), 40 * i, np.uint8))
    w.release()

    def seg(images):
        return [np.zeros(im.shape[:2], np.uint8) for im in images]

    import eyepurify.purify as pm

    p = pm.Purifier.from_pretrained(model_file, segmenter=seg)
    from eyepurify.engines.jobs import PurifyJob
    from eyepurify.engines.local import run_local
    from eyepurify.engines.manifest import Manifest
    from eyepurify.engines.plan import video_unit
    from eyepurify.engines.run import EngineOptions

    out = tmp_path / "out"
    out.mkdir()
    man = Manifest(out)
    for io in ("serial", "threads"):
        run_local([video_unit(vid, "v.avi", ["v.avi"])], PurifyJob(p), man, 2, 10**7, EngineOptions(io=io))
    cap = cv2.VideoCapture(str(out / "v.avi"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 5 and man.items["v.avi"]["frames"] == 5


def test_cli_missing_input_and_no_segmenter(model_file, tmp_path, capsys):
    img, _ = _eye()
    Image.fromarray(img).save(tmp_path / "x.png")
    rc = main(["purify", str(tmp_path / "x.png"), "--out", str(tmp_path / "o"), "--model", str(model_file), "--segmenter", "none"])
    assert rc == 2
    assert "no segmenter" in capsys.readouterr().err


def test_cli_segment_size_reaches_the_segmenter(model_file, tmp_path, monkeypatch):
    import eyepurify.segment as seg_mod

    seen = {}
    real = seg_mod.Segmenter.from_pretrained.__func__

    def spy(cls, path=None, **kw):
        seen.update(kw, path=path)
        return real(cls, path, **kw)

    monkeypatch.setattr(seg_mod.Segmenter, "from_pretrained", classmethod(spy))
    img, _ = _eye(48, 64)
    src = tmp_path / "a.png"
    Image.fromarray(img).save(src)
    out = tmp_path / "o"
    assert main(["purify", str(src), "--out", str(out), "--model", str(model_file), "--segment-size", "24x32"]) == 0
    assert seen["size"] == (24, 32) and seen["path"] == seg_mod.default_weights_path()
    assert json.loads((out / "manifest.json").read_text())["meta"]["segment_size"] == [24, 32]
    assert np.asarray(Image.open(out / "a.png")).shape == (48, 64, 3)


def test_gray_inputs_use_the_gray_model_and_stay_gray(model_file, tmp_path):
    from eyepurify.imaging import is_gray, to_gray

    torch.manual_seed(1)
    gnet = create_transform_net("test_tiny").eval()
    gpath = tmp_path / "g.safetensors"
    save_model(gpath, gnet, {"net": gnet.config.to_dict()})
    p = Purifier.from_pretrained(model_file, segmenter=None, gray=gpath)
    colour_only = Purifier.from_pretrained(model_file, segmenter=None)
    gray_only = Purifier.from_pretrained(gpath, segmenter=None)
    assert colour_only.gray_net is None  # a user's model: no shipped gray model mixed in
    img, lab = _eye()
    g = to_gray(img)
    out_c, out_g = p([img, g], [lab, lab])
    np.testing.assert_array_equal(out_c, colour_only(img, lab))
    assert is_gray(out_g)
    np.testing.assert_array_equal(out_g, to_gray(gray_only(g, lab)))
    assert is_gray(colour_only(g, lab))  # gray in, gray out, with either model


def test_the_shipped_purifier_brings_its_gray_model():
    from eyepurify.imaging import is_gray, to_gray

    for name in ("v1", None):
        p = Purifier.from_pretrained(name)
        assert p.gray_net is not None and p.scale is not None and p.scale.size == (72, 120)
        img = to_gray(_eye(36, 60)[0])
        assert is_gray(p(img))


def test_the_v2_default_runs_each_input_at_its_own_eye_scale():
    from eyepurify.imaging import to_gray
    from eyepurify.segment import ScaledSegmenters

    p = Purifier.from_pretrained()
    assert p.files["model"].name == "purifier_v2.safetensors"
    sizes = [(e.scale.size, e.gray) for e in p.nets]  # type: ignore[union-attr]
    assert sizes == [((72, 120), False), ((36, 60), False), ((36, 60), True)]
    assert isinstance(p.segmenter, ScaledSegmenters)
    assert [s.size for s in p.segmenter.segmenters] == [(72, 120), (36, 60)]
    patch = _eye(36, 60)[0]
    assert p.network_for(False, patch.shape) == 1 and p.network_for(True, patch.shape) == 2 and p.network_for(False, None) == 0
    assert p.network_for(False, (72, 120, 3)) == 0
    out = p([patch, to_gray(patch)])
    assert [o.shape for o in out] == [(36, 60, 3), (36, 60, 3)]
    assert "model_segmenter_2" in p.files and Purifier.from_pretrained("v1").files["model"].name == "purifier.safetensors"


def test_a_photo_without_an_eye_comes_back_unchanged_and_is_noted(tmp_path):
    from eyepurify.eyescale import EyeScale

    net = create_transform_net("test_tiny").eval()

    def cheek(images):  # "finds" a blob of sclera only: located, but no eye there
        out = []
        for im in images:
            lab = np.zeros(im.shape[:2], np.uint8)
            h, w = lab.shape
            lab[h // 3 : h // 2, w // 3 : w // 2] = 1
            out.append(lab)
        return out

    p = Purifier(net, cheek, scale=EyeScale.for_renders((36, 60)))
    photo = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    r = p.process([photo])[0]
    assert r.box is not None and not r.eye_found
    np.testing.assert_array_equal(r.image, photo)
    # the CLI: written unchanged, noted in report.txt and the manifest, exit 0
    Image.fromarray(np.full((240, 320, 3), 150, np.uint8)).save(tmp_path / "flat.png")
    assert main(["purify", str(tmp_path / "flat.png"), "--out", str(tmp_path / "o"), "--backend", "eager"]) == 0
    item = next(iter(json.loads((tmp_path / "o" / "manifest.json").read_text())["items"].values()))
    assert item["eye_found"] is False and "no eye found" in item["note"]
    assert "note: no eye found" in (tmp_path / "o" / "report.txt").read_text()
    assert (np.asarray(Image.open(tmp_path / "o" / "flat.png")) == 150).all()
