"""`eyepurify render` (labelled synthetic eyes to a folder) and `eyepurify render-sheet`."""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import cv2
import numpy as np

from eyepurify.data import unityeyes_spec as ue
from eyepurify.data.render import PROFILES, EyeParams, WildFactors, draw_params, render_domains
from eyepurify.errors import DataError, EyepurifyError
from eyepurify.imaging import parse_size, resize_image, to_gray
from eyepurify.io import list_images, read_image, write_image, write_json, write_text
from eyepurify.progress import progress_bar
from eyepurify.sample import EyeSample

NOMINAL_IRIS_RADIUS = 6.0  # mm; "iris_size" in the JSON is the iris radius over this
INDEX_COLUMNS = [
    "file", "domain", "gaze_x", "gaze_y", "gaze_z", "pitch", "yaw",
    "head_pitch", "head_yaw", "pupil_x", "pupil_y", "wild_profile",
]
DEFAULT_PROFILE = "v2"  # the CLI's wild look; the Python API's default stays "v1"


def unityeyes_json(
    sample: EyeSample, params: EyeParams, domain: str, factors: WildFactors | None, profile: str = "v1"
) -> dict[str, object]:
    """The UnityEyes-style annotation of a rendered sample (see ``unityeyes_spec``);
    ``profile``: the wild profile of the run (recorded for indoor too: indoor is the same
    in both)."""
    h = sample.image.shape[0]
    lm = sample.landmarks
    assert sample.gaze is not None and sample.head_pose is not None and sample.pupil_center is not None
    return {
        "interior_margin_2d": ue.points_to_json(lm["interior_margin"], h),
        "caruncle_2d": ue.points_to_json(lm["caruncle"], h),
        "iris_2d": ue.points_to_json(lm["iris"], h),
        "eye_details": {
            "look_vec": ue.format_tuple(ue.gaze_to_look_vec(sample.gaze)),
            "pupil_size": f"{ue.pupil_size_from_ratio(params.pupil_ratio):.7g}",
            "iris_size": f"{params.iris_radius / NOMINAL_IRIS_RADIUS:.7g}",
            "iris_texture": f"eyepurify_{params.iris_name}",
        },
        "head_pose": ue.format_tuple(ue.head_pose_to_unity(sample.head_pose)),
        "eyepurify": {
            "domain": domain,
            "size": list(sample.image.shape[:2]),
            "pupil_center": [float(v) for v in sample.pupil_center],
            "gaze": [float(v) for v in sample.gaze],
            "gaze_pitchyaw": [float(v) for v in sample.pitchyaw],  # type: ignore[union-attr]
            "head_pitchyaw": [float(v) for v in sample.head_pose],
            "iris_size_unit_mm": NOMINAL_IRIS_RADIUS,
            "params": params.to_dict(),
            "wild_profile": profile,
            "wild_factors": None if factors is None else factors.to_dict(),
        },
    }


def run_render(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise EyepurifyError(f"--n {args.n} is not positive (ask for at least 1 sample)")
    size = parse_size(args.size, lo=8)
    profile = args.wild_profile
    factors = WildFactors.parse(args.factors or "")
    factors.check_profile(profile)
    domains = ["indoor", "wild"] if args.domain == "both" else [args.domain]
    out = Path(args.out)
    ext = "." + args.format
    rows: list[list[object]] = []
    for i in progress_bar(range(args.n), total=args.n, desc="render", unit="eye"):
        params = draw_params(args.seed, i)
        wild_rng = np.random.default_rng([args.seed, i, 1])
        rendered = render_domains(params, size, domains, factors, wild_rng, profile=profile)
        for domain, (sample, resolved) in zip(domains, rendered, strict=True):
            name = f"{i:06d}"
            write_image(out / domain / f"{name}{ext}", to_gray(sample.image) if args.gray else sample.image)
            write_image(out / domain / "masks" / f"{name}.png", sample.labels)  # type: ignore[arg-type]
            write_json(out / domain / f"{name}.json", unityeyes_json(sample, params, domain, resolved, profile))
            g, py, hp, pc = sample.gaze, sample.pitchyaw, sample.head_pose, sample.pupil_center
            rows.append([f"{domain}/{name}{ext}", domain, *(f"{v:.6f}" for v in (*g, *py, *hp, *pc)), profile])  # type: ignore[misc]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(INDEX_COLUMNS)
    writer.writerows(rows)
    write_text(out / "index.csv", buf.getvalue())
    print(f"wrote {len(rows)} images ({', '.join(domains)}; wild profile {profile}) of {size[0]}x{size[1]} to {out}")
    return 0


# ---------------------------------------------------------------- contact sheet

LABEL_COLOURS = np.array([[0, 0, 0], [230, 230, 230], [60, 160, 60], [200, 40, 40]], np.uint8)


def _fit(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre-crop ``img`` to the aspect of ``size`` (H, W), then resize to it."""
    h, w = img.shape[:2]
    th, tw = size
    if w * th > h * tw:
        cw = max(1, round(h * tw / th))
        img = img[:, (w - cw) // 2 : (w - cw) // 2 + cw]
    else:
        ch = max(1, round(w * th / tw))
        img = img[(h - ch) // 2 : (h - ch) // 2 + ch]
    return resize_image(np.ascontiguousarray(img), size)


def _label_row(name: str, height: int, width: int) -> np.ndarray:
    pad = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(pad, name, (4, height // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return pad


def contact_sheet(
    data: Path | None, seed: int = 0, cols: int = 8, cell: tuple[int, int] = (72, 120), profile: str = "v1"
) -> tuple[np.ndarray, list[str]]:
    """(sheet image uint8 RGB, notes): indoor renders, their labels and paired wild renders
    (wild ``profile``), then (when ``data`` exists) real and synthetic reference images at
    the same size."""
    rows: list[tuple[str, list[np.ndarray]]] = []
    notes: list[str] = []
    for block in range(2):
        indoor, labels, wild = [], [], []
        for c in range(cols):
            i = block * cols + c
            params = draw_params(seed, i)
            (a, _), (b, _) = render_domains(params, cell, ["indoor", "wild"], None, np.random.default_rng([seed, i, 1]),
                                            profile=profile)
            indoor.append(a.image)
            labels.append(LABEL_COLOURS[a.labels])
            wild.append(b.image)
        rows += [("indoor", indoor), ("labels", labels), (f"wild {profile}", wild)]
    if data is not None and data.is_dir():
        rng = np.random.default_rng(seed)
        for name, sub in [
            ("UnityEyes", "unityeyes_seg/images"),
            ("real eyes", "real_eyes_seg/images"),
            ("MPIIGaze", "mpiigaze_patches"),
            ("SynthesEyes", "syntheseyes"),
        ]:
            folder = data / sub
            if not folder.is_dir():
                notes.append(f"{folder}: absent, row skipped")
                continue
            files = list_images(folder)
            pick = sorted(rng.choice(len(files), size=min(cols, len(files)), replace=False).tolist())
            imgs = []
            for k in pick:
                try:
                    imgs.append(_fit(read_image(files[k]), cell))
                except DataError as e:
                    notes.append(str(e))
            rows.append((name, imgs))
    elif data is not None:
        notes.append(f"{data}: no data folder, reference rows skipped")
    label_w = 96
    width = label_w + cols * cell[1]
    lines = []
    for name, imgs in rows:
        line = np.full((cell[0], width, 3), 255, np.uint8)
        line[:, :label_w] = _label_row(name, cell[0], label_w)
        for c, im in enumerate(imgs[:cols]):
            line[:, label_w + c * cell[1] : label_w + (c + 1) * cell[1]] = im
        lines.append(line)
    return np.concatenate(lines, axis=0), notes


def run_sheet(args: argparse.Namespace) -> int:
    data = Path(args.data) if args.data else None
    sheet, notes = contact_sheet(data, seed=args.seed, profile=args.wild_profile)
    for n in notes:
        print(f"note: {n}")
    write_image(args.out, sheet)
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render",
        help="render labelled synthetic eyes (indoor / wild / paired)",
        description="Render procedural eyes with label maps, gaze, head pose, pupil centres and "
        "UnityEyes-style JSON. Same --seed, same bytes.",
    )
    p.add_argument("--domain", choices=["indoor", "wild", "both"], default="both",
                   help="indoor (clean synthetic look), wild (outdoor look) or both (paired draws)")
    p.add_argument("--n", type=int, default=100, help="number of parameter draws")
    p.add_argument("--size", default="36x60", help="image size HxW (default 36x60)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--format", choices=["png", "jpg"], default="png", help="image format")
    p.add_argument("--gray", action="store_true", help="write luminance images (three equal channels), like MPIIGaze or IR cameras")
    p.add_argument("--factors", default="",
                   help="wild severities, e.g. shadow=0.5,noise=0,glasses=0 (0 = off; unset = drawn); "
                        "the v2-only factors (dark, cast, flare, motion, fringe, glasses, skin, sclera, lashes, "
                        "stamp, equalize) need --wild-profile v2")
    p.add_argument("--wild-profile", choices=list(PROFILES), default=DEFAULT_PROFILE,
                   help="wild look: v2 (default; wider, closer to real photos, docs/renderer.md) or v1 (the "
                        "original factors: pass it to reproduce data sets and models made before v2); "
                        "indoor renders are the same in both")
    p.set_defaults(func=run_render)

    s = sub.add_parser("render-sheet", help="contact sheet of renders next to real and synthetic eyes")
    s.add_argument("--out", required=True, help="output PNG")
    s.add_argument("--data", default=None,
                   help="also show rows from this data folder (unityeyes_seg, real_eyes_seg, mpiigaze_patches, "
                        "syntheseyes; e.g. ../shared/data); default: renders only")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--wild-profile", choices=list(PROFILES), default=DEFAULT_PROFILE, help="wild look of the wild rows")
    s.set_defaults(func=run_sheet)
