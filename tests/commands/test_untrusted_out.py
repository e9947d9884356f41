"""Issue 25, trust nothing on disk: an edited manifest, links planted in --out, long and
undecodable names, temp-file look-alikes, a second run into the same --out, manifests that
are FIFOs or devices, and videos that are torn or truncated (purify, segment)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import eyepurify
from eyepurify.cli import main
from eyepurify.models.export import save_model
from eyepurify.models.segmentation import create_segmentation_net
from eyepurify.models.transformer import create_transform_net

from ..bad_corpus import eye
from .test_batch_safety import images, one_error_line, purify

SRC = Path(eyepurify.__file__).resolve().parents[1]  # the eyepurify under test, for subprocesses


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny purifier "p" and a tiny segmenter "s", at 36×60."""
    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    net = create_transform_net("test_tiny").eval()
    save_model(d / "p.safetensors", net, {"net": net.config.to_dict(), "train": {"size": [36, 60]}})
    seg = create_segmentation_net("test_tiny").eval()
    save_model(d / "s.safetensors", seg, {"kind": "segmentation", "net": seg.config.to_dict(), "size": [36, 60]})
    return {"p": d / "p.safetensors", "s": d / "s.safetensors"}


def files_under(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` (links not followed) and its bytes."""
    out = {}
    for folder, _, names in os.walk(root):
        for n in names:
            p = Path(folder) / n
            if p.is_file() and not p.is_symlink():
                out[str(p.relative_to(root))] = p.read_bytes()
    return out


def edit_manifest(out: Path, edit) -> None:  # type: ignore[no-untyped-def]
    m = json.loads((out / "manifest.json").read_text())
    edit(m)
    (out / "manifest.json").write_text(json.dumps(m))


class Hung(BaseException):
    """Raised by :func:`deadline` (not an OSError: the CLI must not turn it into an exit code)."""


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging (a read from a FIFO blocks forever)."""
    def boom(*_: object) -> None:
        raise Hung(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------- 1. an edited manifest.json


@pytest.mark.parametrize("mode", ["--resume", "--overwrite"])
@pytest.mark.parametrize("bad", ["../victim.txt", "ABSOLUTE", "masks/../../victim.txt"])
def test_edited_manifest_never_writes_outside_out(models, tmp_path, capsys, mode, bad):
    a, = images(tmp_path / "in", ["a.png"])
    victim = tmp_path / "victim.txt"
    victim.write_text("a user's file")
    out = tmp_path / "out"
    assert main(purify(models, str(a), "--out", str(out))) == 0
    bad = str(victim) if bad == "ABSOLUTE" else bad

    def edit(m: dict) -> None:
        m["items"]["a.png"].update(outputs=[bad, "masks/a.png"], status="pending")

    edit_manifest(out, edit)
    before = {k: v for k, v in files_under(tmp_path).items() if not k.startswith("out/")}
    assert main(purify(models, str(a), "--out", str(out), mode)) == 2
    line = one_error_line(capsys)
    assert "manifest.json" in line and "stay inside --out" in line, line
    assert {k: v for k, v in files_under(tmp_path).items() if not k.startswith("out/")} == before
    assert victim.read_text() == "a user's file"


def test_manifest_names_inside_out_are_never_reused(models, tmp_path, capsys):
    """Outputs come from the inputs: a manifest listing a user's file as the output of an
    input does not make eyepurify write it (and the file it no longer lists is not taken
    for eyepurify's either: the output becomes a_2.png)."""
    a, = images(tmp_path / "in", ["a.png"])
    out = tmp_path / "out"
    assert main(purify(models, str(a), "--out", str(out))) == 0
    (out / "notes.png").write_bytes(b"a user's file")
    edit_manifest(out, lambda m: m["items"]["a.png"].update(outputs=["notes.png", "masks/notes.png"]))
    for mode in ("--overwrite", "--resume"):
        assert main(purify(models, str(a), "--out", str(out), mode)) == 0
        assert (out / "notes.png").read_bytes() == b"a user's file"
        assert not (out / "masks" / "notes.png").exists()
        assert json.loads((out / "manifest.json").read_text())["items"]["a_2.png"]["outputs"] == ["a_2.png", "masks/a_2.png"]
    capsys.readouterr()


@pytest.mark.parametrize("command", ["purify", "segment"])
def test_symlinked_folder_inside_out_is_never_written_through(models, tmp_path, capsys, command):
    a, = images(tmp_path / "in", ["a.png"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / ("masks" if command == "purify" else "labels")).symlink_to(elsewhere, target_is_directory=True)
    argv = (purify(models, str(a), "--out", str(out), "--overwrite") if command == "purify" else
            ["segment", str(a), "--out", str(out), "--model", str(models["s"]), "--overwrite"])
    assert main(argv) == 2
    assert "symlink inside --out" in one_error_line(capsys)
    assert list(elsewhere.iterdir()) == []


# ---------------------------------------------------------------- 3. long names, 7. spellings, 8. temp files


def test_255_byte_names_and_their_collisions(models, tmp_path, capsys):
    long = "e" * 251 + ".png"  # 255 bytes, the longest name a file system takes
    files = images(tmp_path / "in", [long, "E" * 251 + ".png"])  # _2 would make 257 bytes
    video = tmp_path / "in" / ("v" * 251 + ".avi")
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (60, 36))
    for i in range(3):
        w.write(eye(i))
    w.release()
    out = tmp_path / "out"
    assert main(purify(models, *map(str, files), str(video), "--out", str(out))) == 0
    names = sorted(p.name for p in out.iterdir() if p.is_file())
    assert long in names and video.name in names
    second = [n for n in names if n.startswith("E")]
    assert len(second) == 1 and second[0].endswith("_2.png") and len(second[0].encode()) == 255
    assert main(purify(models, *map(str, files), str(video), "--out", str(out), "--resume")) == 0
    seg = tmp_path / "seg"
    assert main(["segment", *map(str, files), "--out", str(seg), "--model", str(models["s"])]) == 0
    assert (seg / "labels" / long).is_file()
    capsys.readouterr()


def test_resume_knows_inputs_by_resolved_path_and_content(models, tmp_path, capsys, monkeypatch):
    files = images(tmp_path / "in", ["a.png", "b.png"])
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    assert main(purify(models, "in/a.png", "in/b.png", "--out", "out")) == 0
    first = {n: (os.stat(out / n).st_ino, (out / n).read_bytes()) for n in ("a.png", "b.png")}
    assert main(purify(models, *map(str, files), "--out", str(out), "--resume")) == 0  # absolute this time
    assert not (out / "a_2.png").exists() and not (out / "b_2.png").exists()
    assert {n: (os.stat(out / n).st_ino, (out / n).read_bytes()) for n in first} == first  # nothing redone
    Image.fromarray(eye(7)).save(files[0])  # a changed input is redone, under its own name
    assert main(purify(models, *map(str, files), "--out", str(out), "--resume")) == 0
    assert (out / "a.png").read_bytes() != first["a.png"][1] and os.stat(out / "b.png").st_ino == first["b.png"][0]
    assert sorted(json.loads((out / "manifest.json").read_text())["items"]) == ["a.png", "b.png"]
    capsys.readouterr()


def test_only_the_killed_runs_temp_files_are_removed(models, tmp_path, capsys):
    a, = images(tmp_path / "in", ["a.png"])
    out = tmp_path / "out"
    assert main(purify(models, str(a), "--out", str(out))) == 0
    assert not (out / ".eyepurify.lock").exists()  # a finished run leaves no lock
    theirs = [out / ".a.png.abcd1234.tmp", out / "masks" / ".b.png.zz99yy88.tmp.png",
              out / ".eyepurify-0123456789abcdef-01234567.tmp"]
    for p in theirs:
        p.write_bytes(b"a user's file")
    killed = "fedcba9876543210"  # what a killed run's lock recorded, and its temp files
    (out / ".eyepurify.lock").write_text(f"999999 {killed}\n")
    ours = [out / f".eyepurify-{killed}-0badc0de.tmp", out / "masks" / f".eyepurify-{killed}-12345678.tmp.png"]
    for p in ours:
        p.write_bytes(b"torn")
    for mode in ("--resume", "--overwrite"):
        assert main(purify(models, str(a), "--out", str(out), mode)) == 0
        assert all(p.read_bytes() == b"a user's file" for p in theirs)
        assert not any(p.exists() for p in ours)
        assert not (out / ".eyepurify.lock").exists()
    capsys.readouterr()


# ---------------------------------------------------------------- 9. two runs, one --out


def _hold(out: Path, content: bytes) -> int:
    fd = os.open(out / ".eyepurify.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, content)
    return fd


def test_a_second_run_into_the_same_out_is_refused(models, tmp_path, capsys):
    a, = images(tmp_path / "in", ["a.png"])
    out = tmp_path / "out"
    out.mkdir()
    fd = _hold(out, b"4242 0123456789abcdef\n")  # another run, busy in this --out
    try:
        for argv in (purify(models, str(a), "--out", str(out)),
                     ["segment", str(a), "--out", str(out), "--model", str(models["s"]), "--overwrite"]):
            assert main(argv) == 2
            line = one_error_line(capsys)
            assert "another eyepurify run (pid 4242)" in line and str(out) in line
        assert sorted(p.name for p in out.iterdir()) == [".eyepurify.lock"]
    finally:
        os.close(fd)
    # its process died (kill -9): the lock went with it
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR);"
                               "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(120)",
                               str(out / ".eyepurify.lock")], stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
    assert main(purify(models, str(a), "--out", str(out))) == 2
    assert "another eyepurify run" in one_error_line(capsys)
    holder.kill()
    holder.wait()
    assert main(purify(models, str(a), "--out", str(out))) == 0
    capsys.readouterr()


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_planted_lock_file_is_refused(models, tmp_path, capsys, kind):
    a, = images(tmp_path / "in", ["a.png"])
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "users_file"
    target.write_text("mine")
    if kind == "symlink":
        (out / ".eyepurify.lock").symlink_to(target)
    else:
        os.mkfifo(out / ".eyepurify.lock")
    for mode in ("--overwrite", "--resume"):
        with deadline(60):
            assert main(purify(models, str(a), "--out", str(out), mode)) == 2
        assert ".eyepurify.lock" in one_error_line(capsys)
    assert target.read_text() == "mine"


# ---------------------------------------------------------------- 11. manifests that are not files, or malformed


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "link_to_a_users_json", "too_big"])
def test_a_manifest_that_is_not_a_regular_file(models, tmp_path, capsys, monkeypatch, kind):
    a, = images(tmp_path / "in", ["a.png"])
    out = tmp_path / "out"
    assert main(purify(models, str(a), "--out", str(out))) == 0
    (out / "manifest.json").unlink()
    if kind == "fifo":
        os.mkfifo(out / "manifest.json")
    elif kind == "dev_zero":
        (out / "manifest.json").symlink_to("/dev/zero")
    elif kind == "link_to_a_users_json":
        (tmp_path / "users.json").write_text(json.dumps({"items": {}, "meta": {}}))
        (out / "manifest.json").symlink_to(tmp_path / "users.json")
    else:
        import eyepurify.engines.manifest as mf

        monkeypatch.setattr(mf, "MANIFEST_LIMIT", 100)
        (out / "manifest.json").write_text(json.dumps({"items": {}, "meta": {}, "pad": "x" * 200}))
    for mode in ("--resume", "--overwrite"):
        with deadline(60):
            assert main(purify(models, str(a), "--out", str(out), mode)) == 2
        assert "manifest.json" in one_error_line(capsys)


@pytest.mark.parametrize(("edit", "rc"), [
    (lambda it: it.update(outputs=5), 2),
    (lambda it: it.update(outputs={"a": "b"}), 2),
    (lambda it: it.update(outputs=[3, None]), 2),
    (lambda it: it.pop("outputs"), 0),
    (lambda it: it.update(outputs=["a.png"]), 0),  # too few
    (lambda it: it.update(status="weird"), 2),
    (lambda it: it.update(input=["x"]), 2),
    (lambda it: it.update(labels=5), 2),
    (lambda it: it.update(labels={"gaze": "=1+1"}), 2),
    (lambda it: it.update(input_sha256="zz"), 2),
])
@pytest.mark.parametrize("mode", ["--resume", "--overwrite"])
def test_malformed_manifest_items_are_one_line_or_redone(models, tmp_path, capsys, edit, rc, mode):
    a, = images(tmp_path / "in", ["a.png"])
    out = tmp_path / "out"
    assert main(purify(models, str(a), "--out", str(out))) == 0
    edit_manifest(out, lambda m: edit(m["items"]["a.png"]))
    assert main(purify(models, str(a), "--out", str(out), mode)) == rc
    if rc == 2:
        assert "manifest.json" in one_error_line(capsys)
    else:
        assert (out / "a.png").is_file() and (out / "masks" / "a.png").is_file()
        capsys.readouterr()


# ---------------------------------------------------------------- 4. undecodable names, formula cells, odd locales


def test_undecodable_names_and_formula_cells_under_ascii_locales(models, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    names = [b"bad\xff.png", b"=cmd.png", b"+x.png", b"-x.png", b"@x.png", "ñ.png".encode()]
    for i, n in enumerate(names):
        Image.fromarray(eye(i)).save(os.fsdecode(bytes(folder) + b"/" + n))
    (folder / os.fsdecode(b"broken\xfe.png")).write_bytes(b"not an image")
    out = tmp_path / "out ü"
    env = {**os.environ, "PYTHONPATH": str(SRC), "LC_ALL": "C", "PYTHONIOENCODING": "ascii", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "eyepurify", *purify(models, str(folder), "--out", str(out))],
                       env=env, capture_output=True, timeout=300)
    assert r.returncode == 1, r.stderr.decode()[-2000:]
    assert b"Traceback" not in r.stderr and b"out \\xfc" in r.stdout
    report = (out / "report.txt").read_bytes().decode("utf-8")  # valid UTF-8
    assert "broken\\xfe.png" in report and "not an image" not in report.split("\t")[0]
    index = (out / "index.csv").read_bytes().decode("utf-8")
    rows = {line.split(",")[0] for line in index.splitlines()[1:]}
    assert {"bad\\xff.png", "'=cmd.png", "'+x.png", "'-x.png", "'@x.png", "ñ.png"} <= rows
    assert os.fsdecode(b"bad\xff.png") in {p.name for p in out.iterdir()}  # the output keeps the bytes


# ---------------------------------------------------------------- 12, 13. videos: torn writes, truncated inputs


def _video(path: Path, n: int) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (60, 36))
    for i in range(n):
        w.write(eye(i))
    w.release()
    return path


def test_truncated_video_is_reported(models, tmp_path, capsys):
    full = _video(tmp_path / "full.avi", 40)
    cut = tmp_path / "cut.avi"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    assert main(purify(models, str(cut), "--out", str(out))) == 1
    report = (out / "report.txt").read_text()
    assert "cut.avi: truncated:" in report and "of the 40 frames" in report
    assert (out / "cut.avi").is_file()  # the frames read are kept
    assert main(purify(models, str(cut), "--out", str(out), "--resume")) == 1  # still reported
    assert "truncated" in (out / "report.txt").read_text()
    capsys.readouterr()


def test_a_torn_video_never_gets_its_final_name(models, tmp_path, capsys, monkeypatch):
    video = _video(tmp_path / "v.avi", 12)
    real = cv2.VideoWriter

    class DiskFull:
        """OpenCV's writer on a full disk: no error, frames lost (the file is cut on release)."""

        def __init__(self, path: str, *a: object) -> None:
            self.path, self.w = path, real(path, *a)

        def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
            return bool(self.w.isOpened())

        def write(self, frame: np.ndarray) -> None:
            self.w.write(frame)

        def release(self) -> None:
            self.w.release()
            with open(self.path, "r+b") as f:
                f.truncate(os.path.getsize(self.path) // 3)

    monkeypatch.setattr(cv2, "VideoWriter", DiskFull)
    out = tmp_path / "out"
    assert main(purify(models, str(video), "--out", str(out))) == 2
    line = one_error_line(capsys)
    assert "v.avi: the video was not written completely" in line
    assert not (out / "v.avi").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    monkeypatch.setattr(cv2, "VideoWriter", real)
    assert main(purify(models, str(video), "--out", str(out), "--resume")) == 0
    assert (out / "v.avi").is_file()
    capsys.readouterr()


def test_backend_from_the_environment_is_checked(models, tmp_path, capsys, monkeypatch):
    a, = images(tmp_path / "in", ["a.png"])
    monkeypatch.setenv("EYEPURIFY_BACKEND", "junk")
    for argv in (purify(models, str(a), "--out", str(tmp_path / "p")),
                 ["segment", str(a), "--out", str(tmp_path / "s"), "--model", str(models["s"])]):
        assert main(argv) == 2
        assert "EYEPURIFY_BACKEND='junk'" in one_error_line(capsys)
    assert not (tmp_path / "p").exists() and not (tmp_path / "s").exists()
    assert main([*purify(models, str(a), "--out", str(tmp_path / "p")), "--backend", "torch"]) == 0  # the flag wins
    capsys.readouterr()

