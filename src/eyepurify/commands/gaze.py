"""`eyepurify gaze INPUT... --out DIR [--faces]`: gaze per eye (CSV + JSON) and arrows drawn on the images."""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

from eyepurify.errors import EyepurifyError

HELP = "estimate gaze per eye (shipped estimator) and draw arrows on the images"


def register(sub: argparse._SubParsersAction) -> None:
    from eyepurify.backends import BACKENDS

    p = sub.add_parser(
        "gaze", help=HELP,
        description=(
            "Estimate the gaze of every eye: eye images (each image one eye; for a whole close-up the eye "
            "the purifier finds) or, with --faces, face photos (every eye of every face, normalised "
            "MPIIGaze-style). Each eye is purified first (--purifier none reads the raw eye). Writes "
            "OUT/gaze.csv and OUT/gaze.json (pitch, yaw in radians and the unit gaze vector in the camera "
            "frame: x right, y down, z forward; (0, 0, -1) looks into the camera) and OUT/<name>.png with "
            "one arrow per eye (faces: from the eye centre)."
        ),
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    p.add_argument("--out", required=True, help="output folder (new or empty)")
    p.add_argument("--faces", action="store_true", help="inputs are face photos (needs: pip install 'eyepurify[faces]')")
    p.add_argument("--purifier", default="default",
                   help="purify each eye first: default, v1, v2, fast, a model file, or none (the raw eye)")
    p.add_argument("--estimator", default="default", metavar="MODEL",
                   help="gaze estimator: default (shipped), or a model file as for 'eyepurify evaluate'")
    p.add_argument("--backend", default=None, choices=BACKENDS,
                   help="purifier backend (default: $EYEPURIFY_BACKEND, else auto; see 'purify --help')")
    p.add_argument("--focal", type=float, default=None, help="faces: camera focal length in pixels (default: image width)")
    p.add_argument("--max-faces", type=int, default=None, help="faces: at most N faces per photo (largest first)")
    p.set_defaults(func=run)


def _inputs(items: list[str]) -> list[Path]:
    from eyepurify.io import list_images

    out: list[Path] = []
    for it in items:
        path = Path(it)
        if path.is_dir():
            out += list_images(path)
        elif path.is_file():
            out.append(path)
        else:
            raise EyepurifyError(f"{it}: no such file or folder")
    if not out:
        raise EyepurifyError("no images found in the inputs")
    return out


def _names(paths: list[Path]) -> list[str]:
    seen: set[str] = set()
    names = []
    for p in paths:
        stem, k = p.stem, 1
        name = f"{stem}.png"
        while name.lower() in seen:
            k += 1
            name = f"{stem}_{k}.png"
        seen.add(name.lower())
        names.append(name)
    return names


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from eyepurify.bench.evaluate import load_purifier
    from eyepurify.commands._args import backend_name
    from eyepurify.gaze.draw import draw_arrows, eye_images_gaze, faces_gaze
    from eyepurify.gaze.models import load_estimator
    from eyepurify.io import csv_cell, read_image, write_image, write_json, write_text

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EyepurifyError(f"{out}: exists and is not an empty folder; choose a new --out")
    paths = _inputs(args.inputs)
    estimator = load_estimator(args.estimator)
    use = args.purifier != "none"
    purifier = load_purifier("default" if not use else args.purifier, backend_name(args))
    fp = None
    if args.faces:
        from eyepurify.faces import FacePurifier

        fp = FacePurifier(purifier, focal=args.focal, max_faces=args.max_faces)
    rows: list[list[object]] = []
    record: list[dict[str, object]] = []
    failed: list[str] = []
    for path, name in zip(paths, _names(paths), strict=True):
        try:
            im = read_image(path)
        except EyepurifyError as e:
            failed.append(f"{path}\t{e}")
            continue
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, 2)
        im = np.ascontiguousarray(im[..., :3])
        if fp is not None:
            faces = fp.detect(im)
            if use and faces:
                res = fp.purify(im, faces)
                shown, eyes = res.image, [(e.face, e.norm, e.purified) for e in res.eyes]
            else:
                shown, eyes = im, fp.normalise(im, faces)
            gazes = faces_gaze(estimator, fp, im, eyes)
            if not faces:
                failed.append(f"{path}\tno face found")
        else:
            done = purifier.process([im]) if use else None
            gazes = eye_images_gaze(estimator, purifier if use else None, [im], done)
            shown = done[0].image if done else im
        write_image(out / name, draw_arrows(shown, gazes))
        for g in gazes:  # the values of g.to_dict()
            rows.append([str(path), name, g.face, g.eye, *(round(v, 6) for v in (*g.pitchyaw, *g.vector))])
        record.append({"input": str(path), "output": name, "eyes": [g.to_dict() for g in gazes]})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["input", "output", "face", "eye", "pitch", "yaw", "x", "y", "z"])
    for r in rows:
        w.writerow([csv_cell(v) for v in r])
    write_text(out / "gaze.csv", buf.getvalue())
    write_json(out / "gaze.json", {"estimator": args.estimator, "purifier": args.purifier, "faces": bool(args.faces),
                                    "units": "radians; vector in the camera frame (x right, y down, z forward)",
                                    "images": record})
    if failed:
        write_text(out / "report.txt", "\n".join(failed) + "\n")
    print(f"gaze of {len(rows)} eyes in {len(record)} images -> {out}/gaze.csv"
          + (f"; {len(failed)} inputs failed (see {out}/report.txt)" if failed else ""))
    return 1 if failed else 0
