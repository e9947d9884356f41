"""Issue 25's adversarial cases, run through the CLI, one subprocess each, and tallied.

``python -m tests.hostile DIR [--only WORD]`` builds tiny models and inputs under DIR, runs
every case (a hostile --out, manifest, lock, name, model file, cache entry, video or
environment), and prints one line per case and the table the issue asks for: cases tried,
clear errors, tracebacks, files written outside --out, user files changed, silent wrong
results. Every case runs with a 4 GB address-space limit and a timeout, so it can also be
run against an older eyepurify (``PYTHONPATH=OLD/src``) to see what it did.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import torch
from PIL import Image

from .bad_corpus import eye

LIMIT_AS = 4 << 30
TIMEOUT_S = 120


@dataclass
class Case:
    """``setup(d)`` prepares folder ``d`` and returns the argv; ``expect``: "refuse" (exit 2,
    one line), "report" (exit 1, listed in report.txt), "ok" (exit 0 and ``check(d)``) or
    "either" (exit 0 only with ``check(d)``); ``always``: ``check`` must hold whatever the exit."""

    name: str
    item: int
    setup: Callable[[Path], list[str]]
    expect: str
    check: Callable[[Path], bool] | None = None
    env: dict[str, str] = field(default_factory=dict)
    always: bool = False


def snapshot(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    out = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if not any((Path(folder) / x) == root / s for s in skip)]
        for f in files:
            p = Path(folder) / f
            if p.is_symlink() or not p.is_file():
                out[str(p.relative_to(root))] = "link-or-special"
                continue
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# ---------------------------------------------------------------- the material


def make_models(d: Path) -> dict[str, Path]:
    from eyepurify.models.export import save_model
    from eyepurify.models.segmentation import create_segmentation_net
    from eyepurify.models.transformer import create_transform_net

    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, seed in (("p", 0), ("q", 1)):
        torch.manual_seed(seed)
        net = create_transform_net("test_tiny").eval()
        save_model(d / f"{name}.safetensors", net, {"net": net.config.to_dict(), "train": {"size": [36, 60]}})
        out[name] = d / f"{name}.safetensors"
    torch.manual_seed(0)
    seg = create_segmentation_net("test_tiny").eval()
    save_model(d / "s.safetensors", seg, {"kind": "segmentation", "net": seg.config.to_dict(), "size": [36, 60]})
    out["s"] = d / "s.safetensors"

    def broken(name: str, kind: str, how: str) -> None:
        torch.manual_seed(0)
        net = create_transform_net("test_tiny").eval() if kind == "purifier" else create_segmentation_net("test_tiny").eval()
        with torch.no_grad():
            for m in net.modules():
                if how == "var" and isinstance(m, torch.nn.BatchNorm2d):
                    m.running_var.fill_(-1.0)
                if how == "huge" and isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                    m.weight.mul_(1e4)
            if how == "zero":
                (net.decoder[-1][1] if kind == "purifier" else net.head).weight.zero_()
        save_model(d / f"{name}.safetensors", net, {"kind": kind, "net": net.config.to_dict(), "size": [36, 60]})
        out[name] = d / f"{name}.safetensors"

    for name, kind, how in (("p_var", "purifier", "var"), ("p_huge", "purifier", "huge"), ("p_zero", "purifier", "zero"),
                            ("s_var", "segmentation", "var"), ("s_huge", "segmentation", "huge"),
                            ("s_zero", "segmentation", "zero")):
        broken(name, kind, how)

    from safetensors.torch import save_file

    torch.manual_seed(0)
    tiny = create_transform_net("test_tiny").eval()
    state = {k: v.contiguous() for k, v in tiny.state_dict().items()}
    net = tiny.config.to_dict()
    scale = {"size": [36, 60], "eye_width": 38.0, "center": [30.0, 18.0]}
    for name, meta in {
        "m_wide": {"net": {**net, "width": 4096, "n_res": 64}},
        "m_big": {"net": {**net, "width": 256, "n_res": 32}},
        "m_ew_half": {"net": net, "eye_scale": {**scale, "eye_width": 0.5}},
        "m_ew_huge": {"net": net, "eye_scale": {**scale, "eye_width": 1e12}},
        "m_ew_tiny": {"net": net, "eye_scale": {**scale, "eye_width": 1e-300}},
        "m_centre": {"net": net, "eye_scale": {**scale, "center": [1e300, 1e300]}},
        "m_size": {"net": net, "size": [4096, 4096], "train": {"size": [4096, 4096]}},
    }.items():
        save_file(state, str(d / f"{name}.safetensors"), metadata={"eyepurify": json.dumps(meta)})
        out[name] = d / f"{name}.safetensors"
    return out


def put_image(p: Path, seed: int = 0) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(eye(seed)).save(p, format="PNG")
    return p


def put_video(p: Path, n: int = 12) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    w = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (60, 36))
    for i in range(n):
        w.write(eye(i))
    w.release()
    return p


# ---------------------------------------------------------------- the cases


def cases(models: dict[str, Path]) -> list[Case]:
    P = ["--model", str(models["p"]), "--segmenter", str(models["s"])]  # noqa: N806
    S = ["--model", str(models["s"])]  # noqa: N806
    out: list[Case] = []

    def add(name: str, item: int, expect: str, check: Callable[[Path], bool] | None = None,
            env: dict[str, str] | None = None, always: bool = False) -> Callable[[Callable[[Path], list[str]]], None]:
        def deco(fn: Callable[[Path], list[str]]) -> None:
            out.append(Case(name, item, fn, expect, check, env or {}, always))
        return deco

    def first_run(d: Path, command: str = "purify") -> Path:
        a = put_image(d / "in" / "a.png")
        argv = ["purify", str(a), "--out", str(d / "out"), *P] if command == "purify" else \
            ["segment", str(a), "--out", str(d / "out"), *S]
        run_cli(argv, {})
        return a

    def edit(d: Path, fn: Callable[[dict], None]) -> None:
        m = json.loads((d / "out" / "manifest.json").read_text())
        fn(m)
        (d / "out" / "manifest.json").write_text(json.dumps(m))

    # 1. an edited manifest.json
    for mode in ("--resume", "--overwrite"):
        for label, bad in (("parent", "../user/victim.png"), ("absolute", "ABS"), ("dotdot-inside", "masks/../../user/victim.png")):
            def setup(d: Path, mode: str = mode, bad: str = bad) -> list[str]:
                put_image(d / "user" / "victim.png", 9)
                a = first_run(d)
                target = str(d / "user" / "victim.png") if bad == "ABS" else bad
                edit(d, lambda m: m["items"]["a.png"].update(outputs=[target, "masks/a.png"], status="pending"))
                return ["purify", str(a), "--out", str(d / "out"), *P, mode]
            add(f"manifest outputs {label} {mode}", 1, "refuse")(setup)
    for mode in ("--resume", "--overwrite"):
        def setup_seg(d: Path, mode: str = mode) -> list[str]:
            put_image(d / "user" / "photo.png", 9)
            a = first_run(d, "segment")
            edit(d, lambda m: m["items"]["labels/a.png"].update(outputs=[str(d / "user" / "photo.png"), "overlays/a.png"],
                                                                 status="pending"))
            return ["segment", str(a), "--out", str(d / "out"), *S, mode]
        add(f"segment manifest output = a user's photo {mode}", 1, "refuse")(setup_seg)

    @add("manifest lists a user's file inside --out", 1, "ok",
         check=lambda d: (d / "out" / "notes.png").read_bytes() == b"user")
    def _(d: Path) -> list[str]:
        a = first_run(d)
        (d / "out" / "notes.png").write_bytes(b"user")
        edit(d, lambda m: m["items"]["a.png"].update(outputs=["notes.png", "masks/notes.png"]))
        return ["purify", str(a), "--out", str(d / "out"), *P, "--overwrite"]

    # 2. links planted in --out
    for command, folder in (("purify", "masks"), ("segment", "labels"), ("segment", "overlays"), ("purify", "sub")):
        def setup_link(d: Path, command: str = command, folder: str = folder) -> list[str]:
            (d / "user" / "elsewhere").mkdir(parents=True)
            (d / "out").mkdir()
            (d / "out" / folder).symlink_to(d / "user" / "elsewhere", target_is_directory=True)
            if folder == "sub":
                files = [put_image(d / "in" / "sub" / "a.png"), put_image(d / "in" / "top" / "b.png", 1)]
            else:
                files = [put_image(d / "in" / "a.png")]
            models_ = P if command == "purify" else S
            return [command, *map(str, files), "--out", str(d / "out"), *models_, "--overwrite"]
        add(f"{command}: --out/{folder} is a symlink to elsewhere", 2, "refuse")(setup_link)

    # 3. long names
    long = "e" * 251 + ".png"
    add("255-byte image name (purify)", 3, "ok", check=lambda d: (d / "out" / long).is_file())(
        lambda d: ["purify", str(put_image(d / "in" / long)), "--out", str(d / "out"), *P])
    add("255-byte image name (segment)", 3, "ok", check=lambda d: (d / "out" / "labels" / long).is_file())(
        lambda d: ["segment", str(put_image(d / "in" / long)), "--out", str(d / "out"), *S])
    add("255-byte video name", 3, "ok", check=lambda d: (d / "out" / ("v" * 251 + ".avi")).is_file())(
        lambda d: ["purify", str(put_video(d / "in" / ("v" * 251 + ".avi"))), "--out", str(d / "out"), *P])
    add("two 255-byte names equal but for case (a _2 would be 257 bytes)", 3, "ok",
        check=lambda d: len([p for p in (d / "out").iterdir() if p.suffix == ".png"]) == 2)(
        lambda d: ["purify", str(put_image(d / "in" / long)), str(put_image(d / "in" / long.upper(), 1)), "--out", str(d / "out"), *P])

    def resume_long(d: Path) -> list[str]:
        a = put_image(d / "in" / long)
        run_cli(["purify", str(a), "--out", str(d / "out"), *P], {})
        return ["purify", str(a), "--out", str(d / "out"), *P, "--resume"]
    add("--resume over a 255-byte name", 3, "ok")(resume_long)

    # 4. names that are not UTF-8, odd locales
    bad_name = os.fsdecode(b"bad\xff.png")
    for env in ({}, {"LC_ALL": "C"}, {"PYTHONIOENCODING": "ascii"}, {"LC_ALL": "C", "PYTHONIOENCODING": "ascii"}):
        def setup_name(d: Path) -> list[str]:
            put_image(d / "in" / bad_name)
            (d / "in" / os.fsdecode(b"broken\xfe.png")).write_bytes(b"not an image")
            return ["purify", str(d / "in"), "--out", str(d / "out ü"), *P]
        add(f"non-UTF-8 names into a unicode --out {env or ''}", 4, "report",
            check=lambda d: (d / "out ü" / "report.txt").read_bytes().decode("utf-8") != "", env=env)(setup_name)
    add("segment a non-UTF-8 name", 4, "ok")(lambda d: ["segment", str(put_image(d / "in" / bad_name)), "--out", str(d / "out"), *S])

    # 5. networks with finite weights and useless outputs
    for name, command in (("p_var", "purify"), ("p_huge", "purify"), ("p_zero", "purify"),
                          ("s_var", "segment"), ("s_huge", "segment"), ("s_zero", "segment")):
        def setup_model(d: Path, name: str = name, command: str = command) -> list[str]:
            a = put_image(d / "in" / "a.png")
            flags = ["--model", str(models[name]), "--segmenter", str(models["s"])] if command == "purify" else \
                ["--model", str(models[name])]
            return [command, str(a), "--out", str(d / "out"), *flags]
        add(f"{command} with {name} (NaN / saturated / flat network)", 5, "refuse")(setup_model)

    # 6. the export cache
    cache_env = {"EYEPURIFY_BACKEND": "onnx"}
    for how in ("swapped", "forged", "garbage", "record-fifo"):
        def setup_cache(d: Path, how: str = how) -> list[str]:
            a = put_image(d / "in" / "a.png")
            env = {"EYEPURIFY_CACHE_DIR": str(d / "cache"), **cache_env}
            run_cli(["purify", str(a), "--out", str(d / "ref"), *P], env)
            run_cli(["purify", str(a), "--out", str(d / "other"), "--model", str(models["q"]), "--segmenter", str(models["s"])], env)
            ours = sorted((d / "cache").glob("purifier-*-fp32.onnx"), key=os.path.getmtime)
            first, second = ours[0], ours[-1]
            if how in ("swapped", "forged"):
                first.write_bytes(second.read_bytes())
                rec = first.with_name(first.name + ".json")
                if how == "forged" and rec.exists():
                    r = json.loads(rec.read_text())
                    r["export_sha256"] = hashlib.sha256(first.read_bytes()).hexdigest()
                    rec.write_text(json.dumps(r))
            elif how == "garbage":
                first.write_bytes(b"\x08\x07garbage" * 100)
            else:
                rec = first.with_name(first.name + ".json")
                if rec.exists():
                    rec.unlink()
                os.mkfifo(rec)
            return ["purify", str(a), "--out", str(d / "out"), *P]
        add(f"export cache entry {how}", 6, "ok", check=_same_as_ref, env={**cache_env, "EYEPURIFY_CACHE_DIR": "{d}/cache"})(setup_cache)

    # 7. the same input spelled differently
    def spelled(d: Path) -> list[str]:
        a = put_image(d / "in" / "a.png")
        run_cli(["purify", "in/a.png", "--out", "out", *P], {}, cwd=d)
        return ["purify", str(a), "--out", str(d / "out"), *P, "--resume"]
    add("--resume with the input spelled absolute, not relative", 7, "ok", check=lambda d: not (d / "out" / "a_2.png").exists())(spelled)

    def linked(d: Path) -> list[str]:
        a = put_image(d / "in" / "a.png")
        run_cli(["purify", str(a), "--out", str(d / "out"), *P], {})
        (d / "link").symlink_to(d / "in", target_is_directory=True)
        return ["purify", str(d / "link" / "a.png"), "--out", str(d / "out"), *P, "--resume"]
    add("--resume with the input reached through a link", 7, "ok", check=lambda d: not (d / "out" / "a_2.png").exists())(linked)

    # 8. user files that look like temp files
    for mode in ("--resume", "--overwrite"):
        def temps(d: Path, mode: str = mode) -> list[str]:
            a = first_run(d)
            for n in (".a.png.abcd1234.tmp", ".eyepurify-0123456789abcdef-01234567.tmp"):
                (d / "out" / n).write_bytes(b"user")
                (d / "user").mkdir(exist_ok=True)
            return ["purify", str(a), "--out", str(d / "out"), *P, mode]
        add(f"user files named like temp files, {mode}", 8, "ok",
            check=lambda d: (d / "out" / ".a.png.abcd1234.tmp").is_file()
            and (d / "out" / ".eyepurify-0123456789abcdef-01234567.tmp").is_file())(temps)

    # 9. two runs, one --out
    def busy(d: Path) -> list[str]:
        a = put_image(d / "in" / "a.png")
        (d / "out").mkdir()
        hold = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT);"
                                 "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'4242 0123456789abcdef'); print(1, flush=True);"
                                 "time.sleep(300)", str(d / "out" / ".eyepurify.lock")], stdout=subprocess.PIPE)
        assert hold.stdout is not None
        hold.stdout.readline()
        (d / "holder.pid").write_text(str(hold.pid))
        return ["purify", str(a), "--out", str(d / "out"), *P]
    add("a second run while another writes the same --out", 9, "refuse")(busy)

    def concurrent(d: Path) -> list[str]:
        a = put_image(d / "in" / "a.png")
        slow = subprocess.Popen([sys.executable, "-m", "eyepurify", "purify", str(a), "--out", str(d / "out"),
                                 "--model", str(models["q"]), "--segmenter", str(models["s"])], env=_env({}),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        (d / "holder.pid").write_text(str(slow.pid))
        return ["purify", str(a), "--out", str(d / "out"), *P]
    add("two runs started at once into one --out (not both exit 0)", 9, "either", check=_not_both_ok)(concurrent)

    def stale(d: Path) -> list[str]:
        a = first_run(d)
        (d / "out" / ".eyepurify.lock").write_text("999999 fedcba9876543210\n")
        return ["purify", str(a), "--out", str(d / "out"), *P, "--resume"]
    add("a stale lock file of a killed run", 9, "ok")(stale)
    for kind in ("symlink", "fifo"):
        def planted(d: Path, kind: str = kind) -> list[str]:
            a = put_image(d / "in" / "a.png")
            (d / "out").mkdir()
            (d / "user").mkdir()
            (d / "user" / "file").write_text("user")
            if kind == "symlink":
                (d / "out" / ".eyepurify.lock").symlink_to(d / "user" / "file")
            else:
                os.mkfifo(d / "out" / ".eyepurify.lock")
            return ["purify", str(a), "--out", str(d / "out"), *P]
        add(f"--out/.eyepurify.lock is a {kind}", 9, "refuse")(planted)

    # 10. model metadata
    for name in ("m_wide", "m_big", "m_ew_half", "m_ew_huge", "m_ew_tiny", "m_centre", "m_size"):
        add(f"model metadata {name}", 10, "refuse")(
            lambda d, name=name: ["purify", str(put_image(d / "in" / "a.png")), "--out", str(d / "out"),
                                  "--model", str(models[name]), "--segmenter", str(models["s"])])

    # 11. manifests that are not files, or malformed
    for kind in ("fifo", "dev_zero", "link_to_user_json"):
        def not_file(d: Path, kind: str = kind) -> list[str]:
            a = first_run(d)
            (d / "out" / "manifest.json").unlink()
            if kind == "fifo":
                os.mkfifo(d / "out" / "manifest.json")
            elif kind == "dev_zero":
                (d / "out" / "manifest.json").symlink_to("/dev/zero")
            else:
                (d / "user").mkdir()
                (d / "user" / "m.json").write_text('{"items": {}, "meta": {}}')
                (d / "out" / "manifest.json").symlink_to(d / "user" / "m.json")
            return ["purify", str(a), "--out", str(d / "out"), *P, "--resume"]
        add(f"manifest.json is a {kind}", 11, "refuse")(not_file)
    for label, change, expect in (("int", 5, "refuse"), ("dict", {"a": 1}, "refuse"), ("missing", None, "ok"),
                                  ("too few", ["a.png"], "ok"), ("list of ints", [1, 2], "refuse")):
        def malformed(d: Path, change: object = change) -> list[str]:
            a = first_run(d)
            edit(d, lambda m: m["items"]["a.png"].pop("outputs") if change is None else m["items"]["a.png"].update(outputs=change))
            return ["purify", str(a), "--out", str(d / "out"), *P, "--resume"]
        add(f"manifest outputs {label}", 11, expect)(malformed)

    def deep(d: Path) -> list[str]:
        a = first_run(d)
        (d / "out" / "manifest.json").write_text('{"items": {"a.png": ' + "[" * 100_000 + "]" * 100_000 + "}}")
        return ["purify", str(a), "--out", str(d / "out"), *P, "--resume"]
    add("manifest nested 100,000 deep", 11, "refuse")(deep)

    # 12, 13. videos, environment, CSV cells
    def truncated(d: Path) -> list[str]:
        v = put_video(d / "in" / "v.avi", 40)
        data = v.read_bytes()
        v.write_bytes(data[: len(data) // 2])
        return ["purify", str(v), "--out", str(d / "out"), *P]
    add("a truncated AVI", 13, "report")(truncated)
    add("EYEPURIFY_BACKEND=junk", 13, "refuse", env={"EYEPURIFY_BACKEND": "junk"})(
        lambda d: ["purify", str(put_image(d / "in" / "a.png")), "--out", str(d / "out"), *P])

    def formula(d: Path) -> list[str]:
        for i, n in enumerate(("=cmd.png", "+1.png", "-1.png", "@x.png")):
            put_image(d / "in" / n, i)
        return ["purify", str(d / "in"), "--out", str(d / "out"), *P]
    add("index.csv cells that start like formulas", 13, "ok", check=_no_formula)(formula)

    if _tmpfs_possible():
        def full_video(d: Path) -> list[str]:
            v = put_video(d / "in" / "v.avi", 400)
            _mount(d / "small", 40)
            return ["purify", str(v), "--out", str(d / "small" / "out"), *P]
        add("disk fills while a video is written", 12, "refuse", check=_no_torn_video, always=True)(full_video)

        def full_cache(d: Path) -> list[str]:
            _mount(d / "small", 40)
            return ["purify", str(put_image(d / "in" / "a.png")), "--out", str(d / "out"), *P]
        add("the cache disk is full", 13, "refuse", env={"EYEPURIFY_BACKEND": "onnx", "EYEPURIFY_CACHE_DIR": "{d}/small"})(full_cache)
    return out


def _same_as_ref(d: Path) -> bool:
    return (d / "out" / "a.png").read_bytes() == (d / "ref" / "a.png").read_bytes()


def _not_both_ok(d: Path) -> bool:
    pid = int((d / "holder.pid").read_text())
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) != 0


def _no_formula(d: Path) -> bool:
    cells = [line.split(",")[0] for line in (d / "out" / "index.csv").read_text().splitlines()[1:]]
    return bool(cells) and not any(c[:1] in "=+-@" for c in cells)


def _no_torn_video(d: Path) -> bool:
    v = d / "small" / "out" / "v.avi"
    if not v.exists():
        return True
    cap = cv2.VideoCapture(str(v))
    n = 0
    while cap.grab():
        n += 1
    return n == 400


def _tmpfs_possible() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


def _mount(path: Path, kib: int) -> None:
    path.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(path)], check=True)


def _env(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "EYEPURIFY_BACKEND": os.environ.get("EYEPURIFY_BACKEND", "torch"), **extra}


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_AS, LIMIT_AS))


def run_cli(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run([sys.executable, "-m", "eyepurify", *argv], env=_env(env), cwd=cwd, capture_output=True,
                              timeout=TIMEOUT_S, preexec_fn=_limit)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(e.cmd, -signal.SIGALRM, e.stdout or b"", (e.stderr or b"") + b"\nHANG")


# ---------------------------------------------------------------- running and tallying


def run_case(case: Case, d: Path) -> dict[str, object]:
    d.mkdir(parents=True)
    argv = case.setup(d)
    env = {k: v.replace("{d}", str(d)) for k, v in case.env.items()}
    outs = {Path(argv[i + 1]).resolve() for i, a in enumerate(argv) if a == "--out"}
    skip = tuple(str(o.relative_to(d.resolve())) for o in outs if d.resolve() in o.parents)
    skip += ("cache", "ref", "other", "small") if case.item in (6, 12, 13) else ()
    before_all = snapshot(d, skip)
    t = time.perf_counter()
    r = run_cli(argv, env)
    seconds = time.perf_counter() - t
    pid = d / "holder.pid"
    if pid.exists() and case.check is not _not_both_ok:
        with _suppress():
            os.kill(int(pid.read_text()), signal.SIGKILL)
    after_all = snapshot(d, skip)
    err = r.stderr.decode("utf-8", "replace")
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("[")]  # "[mjpeg @ ...]": FFmpeg's log
    traceback = "Traceback" in err or r.returncode < 0 or r.returncode not in (0, 1, 2)
    outside = sorted(k for k in after_all if k not in before_all)
    user = sorted(k for k in before_all if k.split("/")[0] in ("user", "in") and after_all.get(k) != before_all[k])
    errors = [ln for ln in lines if ln.startswith("eyepurify: error: ")]
    clear = not traceback and ((r.returncode == 2 and len(errors) == 1 and not [ln for ln in lines if ln not in errors
                                                                                 and "warning" not in ln])
                               or r.returncode == 1)
    try:
        ok_check = case.check(d) if case.check is not None else True
    except Exception:
        ok_check = False
    wrong = (r.returncode == 0 and (case.expect in ("refuse", "report") or not ok_check)) or (case.always and not ok_check)
    for m in (d / "small",):
        if m.is_dir():
            subprocess.run(["umount", str(m)], check=False)
    return {"case": case.name, "item": case.item, "expect": case.expect, "rc": r.returncode, "seconds": round(seconds, 1),
            "clear_error": clear, "as_expected": {"refuse": r.returncode == 2 and clear, "report": r.returncode == 1,
                                                   "ok": r.returncode == 0 and ok_check,
                                                   "either": r.returncode == 2 and clear or r.returncode == 0 and ok_check}[case.expect],
            "traceback": traceback, "outside": outside, "user_changed": user, "silent_wrong": wrong,
            "stderr": lines[-1][:300] if lines else ""}


def _suppress():  # type: ignore[no-untyped-def]
    import contextlib

    return contextlib.suppress(OSError)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--only", default="")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    root = Path(args.dir).resolve()
    root.mkdir(parents=True)
    models = make_models(root / "models")
    results = []
    todo = [c for c in cases(models) if args.only in c.name]
    for i, case in enumerate(todo):
        res = run_case(case, root / f"case{i:03d}")
        results.append(res)
        flags = [k for k in ("traceback", "silent_wrong") if res[k]] + [k for k in ("outside", "user_changed") if res[k]]
        print(f"{i:3d} [{res['item']:2d}] rc={res['rc']} {res['seconds']:5.1f}s {'OK ' if not flags else 'BAD'} "
              f"{case.name}  {' '.join(flags)}  {res['stderr'][:160]}", flush=True)
    n = len(results)
    table = {
        "cases tried": n,
        "clear errors (exit 2 with one line, or exit 1 with report.txt)": sum(bool(r["clear_error"]) for r in results),
        "outcome as expected (refused / reported / done right)": sum(bool(r["as_expected"]) for r in results),
        "tracebacks or hangs": sum(bool(r["traceback"]) for r in results),
        "files written outside --out": sum(len(r["outside"]) for r in results),  # type: ignore[arg-type]
        "user files changed": sum(len(r["user_changed"]) for r in results),  # type: ignore[arg-type]
        "silent wrong results": sum(bool(r["silent_wrong"]) for r in results),
    }
    print()
    for k, v in table.items():
        print(f"| {k} | {v} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"table": table, "cases": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
