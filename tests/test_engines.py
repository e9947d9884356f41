"""Every input kind takes the same road (:mod:`eyepurify.engines`): videos and face photos and
videos split with ``--shard K/N`` and merge into the unsharded run, and ``--engine ray``
writes what the local engine writes, byte for byte."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from eyepurify.cli import main
from eyepurify.io import write_image

PER_RUN = {"manifest.json", "report.txt", "index.csv"}


def _files(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in d.rglob("*") if p.is_file() and p.name not in PER_RUN}


def _decoded(path: Path) -> np.ndarray:
    """An image's pixels, or a video's frames stacked."""
    if path.suffix == ".png":
        return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    cap, frames = cv2.VideoCapture(str(path)), []
    while (f := cap.read())[0]:
        frames.append(f[1])
    return np.stack(frames)


def _items(d: Path) -> dict[str, dict]:
    items = json.loads((d / "manifest.json").read_text())["items"]
    return {k: {f: v for f, v in it.items() if f != "resolved"} for k, it in items.items()}


def _video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    h, w = frames[0].shape[:2]
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for f in frames:
        wr.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    wr.release()
    return path


def _sharded(tmp_path: Path, argv: list[str], n: int = 2) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(files of the unsharded run, files of the N shards merged); shards never collide."""
    assert main([*argv, "--out", str(tmp_path / "full")]) in (0, 1)
    merged: dict[str, bytes] = {}
    for k in range(1, n + 1):
        out = tmp_path / f"s{k}"
        assert main([*argv, "--out", str(out), "--shard", f"{k}/{n}"]) in (0, 1, 2)
        part = _files(out)
        assert not set(part) & set(merged)
        merged.update(part)
    return _files(tmp_path / "full"), merged


@pytest.fixture()
def eye_inputs(tmp_path: Path) -> list[str]:
    """Three eye images and two short eye videos."""
    rng = np.random.default_rng(4)
    paths = []
    for name in ("a.png", "b.png", "c.png"):
        p = tmp_path / "in" / name
        write_image(p, rng.integers(0, 256, (36, 60, 3), dtype=np.uint8))
        paths.append(str(p))
    for name in ("v.avi", "w.avi"):
        frames = [rng.integers(0, 256, (36, 60, 3), dtype=np.uint8) for _ in range(3)]
        paths.append(str(_video(tmp_path / "in" / name, frames)))
    return paths


def test_videos_shard_and_resume_like_images(tmp_path, eye_inputs):
    argv = ["purify", *eye_inputs, "--backend", "torch", "--batch", "2"]
    full, merged = _sharded(tmp_path, argv)
    assert {"v.avi", "w.avi", "a.png", "masks/a.png"} <= set(full)
    assert merged == full
    # a resumed shard redoes nothing and keeps to its shard
    before = _files(tmp_path / "s1")
    assert main([*argv, "--out", str(tmp_path / "s1"), "--shard", "1/2", "--resume"]) == 0
    assert _files(tmp_path / "s1") == before


def test_video_io_modes_write_the_same_bytes(tmp_path, eye_inputs):
    outs = {}
    for io in ("serial", "threads"):
        outs[io] = tmp_path / io
        assert main(["purify", *eye_inputs[3:], "--backend", "torch", "--batch", "2", "--io", io,
                     "--out", str(outs[io])]) == 0
    a, b = _files(outs["serial"]), _files(outs["threads"])
    assert set(a) == {"v.avi", "w.avi"} and a == b
    assert _items(outs["serial"]) == _items(outs["threads"])


@pytest.fixture(scope="module")
def face_inputs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A face photo, a photo without a face and a short face video."""
    skimage_data = pytest.importorskip("skimage.data")
    from eyepurify.bench.video import face_video
    from eyepurify.models.mtcnn import weights_dir

    try:
        weights_dir()
    except Exception as e:  # the faces extra is not installed
        pytest.skip(str(e))
    d = tmp_path_factory.mktemp("faces")
    write_image(d / "astro.png", skimage_data.astronaut())
    write_image(d / "flat.png", np.full((120, 160, 3), 128, np.uint8))
    _video(d / "face.avi", face_video(3, (240, 320)), 12.0)
    return [str(d / "astro.png"), str(d / "flat.png"), str(d / "face.avi")]


@pytest.mark.parametrize("output", ["full", "crop"])
def test_faces_shard_like_images(tmp_path, face_inputs, output):
    argv = ["purify", *face_inputs, "--faces", "--output", output, "--backend", "torch"]
    full, merged = _sharded(tmp_path, argv)
    names = {"full": {"astro.png", "face.avi"},
             "crop": {"astro_right.png", "astro_left.png", "face_right.avi", "face_left.avi", "face_geometry.json"}}
    assert set(full) == names[output]
    assert merged == full
    assert "flat.png" in (tmp_path / "full" / "report.txt").read_text()


@pytest.mark.slow
def test_ray_writes_what_local_writes_for_every_kind(tmp_path, eye_inputs, face_inputs):
    pytest.importorskip("ray")
    runs = {
        "eyes": ["purify", *eye_inputs, str(tmp_path / "missing.png"), "--backend", "torch", "--batch", "2"],
        "faces": ["purify", *face_inputs, "--faces", "--output", "crop", "--backend", "torch"],
    }
    for name, argv in runs.items():
        local, ray = tmp_path / f"{name}_local", tmp_path / f"{name}_ray"
        # the local run in a fresh process, like the Ray workers: state other tests leave in this
        # process (torch threads, loaded modules) must not decide the bytes being compared
        # and with one thread, as each of the two Ray workers on this 2-core machine runs
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        rc = subprocess.run([sys.executable, "-m", "eyepurify", *argv, "--out", str(local)], capture_output=True, env=env).returncode
        assert rc == 1  # one input fails in each
        assert main([*argv, "--out", str(ray), "--engine", "ray", "--workers", "2"]) == 1
        assert _files(local) and _files(local).keys() == _files(ray).keys()
        for rel, data in _files(local).items():  # pixels within one level: the engines batch differently,
            other = _files(ray)[rel]                # and oneDNN's kernels may round by batch size
            if rel.endswith((".png", ".avi", ".mp4")):
                a, b = _decoded(local / rel), _decoded(ray / rel)
                assert a.shape == b.shape and np.abs(a.astype(int) - b).max() <= 1, rel
            else:
                assert data == other, rel
        assert _items(local).keys() == _items(ray).keys()
        assert sorted((local / "report.txt").read_text().splitlines()) == sorted((ray / "report.txt").read_text().splitlines())
