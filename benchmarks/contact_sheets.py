"""Contact sheets of purifiers side by side: real photos, faces, MPIIGaze and Columbia patches.

    python benchmarks/contact_sheets.py --models v1=v1 v2=default --out DIR [--n 8]

Writes, under ``--out``: ``sheet_photos.png`` (real_eyes_seg photos: the whole photo, then
the eye region of the photo as each purifier returns it), ``sheet_crops.png`` (the canonical
eye crops), ``sheet_faces.png`` (scikit-image's public-domain astronaut portrait, the eye
region of each purified face), ``sheet_mpiigaze.png`` and ``sheet_columbia.png`` (patches,
each row raw then one column per purifier). Images of the research-only data sets must not
be committed (the repository's .gitignore lists these names); the face sheet may be.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from eyepurify.imaging import resize_image
from eyepurify.io import list_images, read_image, write_image

SHARED = Path("../shared/data")


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.putText(out, text, (3, 12), cv2.FONT_HERSHEY_PLAIN, 0.9, (0, 0, 0), 3)
    cv2.putText(out, text, (3, 12), cv2.FONT_HERSHEY_PLAIN, 0.9, (255, 255, 255), 1)
    return out


def _grid(rows: list[list[np.ndarray]], names: list[str], cell: tuple[int, int]) -> np.ndarray:
    h, w = cell
    head = [_label(np.full((16, w, 3), 255, np.uint8), n) for n in names]
    lines = [np.concatenate([np.pad(x, ((0, 0), (0, 2), (0, 0)), constant_values=255) for x in head], 1)]
    for r in rows:
        cells = [np.pad(resize_image(np.ascontiguousarray(x), (h, w)), ((0, 2), (0, 2), (0, 0)), constant_values=255) for x in r]
        lines.append(np.concatenate(cells, 1))
    return np.concatenate(lines, 0)


def _eye_view(image: np.ndarray, box, pad: float = 0.35) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The photo around ``box`` (grown by ``pad``), so the paste-back seam shows."""
    from eyepurify.eyescale import Box, crop

    dx, dy = int(box.width * pad), int(box.height * pad)
    b = Box(box.x0 - dx, box.y0 - dy, box.x1 + dx, box.y1 + dy)
    return crop(image, b, (b.height, b.width))


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from purifier_ablation import load_purifier

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", required=True, help="name=model (default|v1|fast|FILE)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--data", default=str(SHARED))
    args = ap.parse_args()
    out, data = Path(args.out), Path(args.data)
    models = {}
    for spec in args.models:
        name, _, path = spec.partition("=")
        models[name] = load_purifier(path or name)
    names = list(models)

    photos_dir = data / "real_eyes_seg" / "images"
    if photos_dir.is_dir():
        files = list_images(photos_dir)
        pick = [files[i] for i in np.linspace(0, len(files) - 1, args.n).astype(int)]
        whole, crops = [], []
        for f in pick:
            ph = read_image(f)
            res = {n: m.process([ph])[0] for n, m in models.items()}
            ref = next(iter(res.values()))
            box = ref.box
            row = [ph] + ([_eye_view(ph, box)] + [_eye_view(r.image, box) for r in res.values()] if box is not None else [])
            whole.append(row)
            from eyepurify.eyescale import crop

            crops.append([crop(ph, box, ref.crop.shape[:2]) if box is not None else ph] + [r.crop for r in res.values()])
        write_image(out / "sheet_photos.png", _grid(whole, ["photo", "eye region raw"] + names, (150, 200)))
        write_image(out / "sheet_crops.png", _grid(crops, ["raw crop"] + names, (108, 180)))
    try:
        from skimage import data as skdata

        from eyepurify.faces import FacePurifier

        face = skdata.astronaut()
        rows = []
        outs = {n: FacePurifier(m)(face) for n, m in models.items()}
        first = next(iter(outs.values()))
        ys, xs = np.nonzero(first.changed) if first.changed is not None and first.changed.any() else (np.array([120]), np.array([200]))
        y0, y1 = max(0, ys.min() - 40), min(face.shape[0], ys.max() + 40)
        x0, x1 = max(0, xs.min() - 40), min(face.shape[1], xs.max() + 40)
        rows.append([face[y0:y1, x0:x1]] + [o.image[y0:y1, x0:x1] for o in outs.values()])
        write_image(out / "sheet_faces.png", _grid(rows, ["face raw"] + names, (y1 - y0, x1 - x0)))
    except ImportError as e:
        print(f"faces skipped: {e}")
    for key, folder, size in (("mpiigaze", data / "mpiigaze_patches", (36, 60)), ("columbia", data / "columbia_gaze" / "images", (64, 64))):
        if not folder.is_dir():
            continue
        files = list_images(folder)
        pick = [files[i] for i in np.linspace(0, len(files) - 1, 2 * args.n).astype(int)]
        ims = [read_image(f) for f in pick]
        if key == "columbia":
            from eyepurify.data.columbia import patch_crop_box
            from eyepurify.eyescale import crop

            ims = [crop(im, patch_crop_box(im.shape, (36, 60)), (36, 60)) for im in ims]
        else:
            ims = [resize_image(im, size) for im in ims]
        rows = [[im] + [m.process([im])[0].image for m in models.values()] for im in ims]
        write_image(out / f"sheet_{key}.png", _grid(rows, ["raw"] + names, (72, 120)))
    print(f"sheets in {out}")


if __name__ == "__main__":
    main()
