"""Segmentation of real eye photos by segmenters trained on synthetic eyes (issue 5).

Usage: OMP_NUM_THREADS=1 python benchmarks/segmentation_real.py [--data ../shared/data]
           [--default-seg FILE] [--unity-seg FILE] [--purifier FILE] [--style-dir DIR]
           [--select-sizes 72x120,96x128,120x160,180x240] [--subset 40] [--size HxW]
           [--limit N] [--out benchmarks/results/segmentation]

Test set: every photo of ``real_eyes_seg`` (640×480) with its mask, natural name order;
unreadable pairs are skipped and listed. Each photo is resized (area) to the *working size*,
the network's logits are resized (bilinear) to the photo's 640×480 and the arg-max scored
there against the mask by :func:`eyepurify.bench.segmentation.evaluate` (with and without
the orphan fix applied at 640×480) — exactly what ``Segmenter(net, size=working)`` does.

Working size: unless ``--size`` is given, the size in ``--select-sizes`` with the best
mIoU(iris, pupil) of the default segmenter (orphan fix on) over ``--subset`` evenly spaced
photos is used; every candidate's scores are written.

Rows: the default segmenter (renderer only) and the renderer + UnityEyes segmenter, each
with and without the orphan fix; then second passes for each segmenter: segment the photo
at the working size (orphan fix on), transform the working-size photo, segment the result
and score it as above. Transforms: the purifier (with the first-pass label map) and, as a
classical control, Reinhard colour transfer to the Lab statistics of the ``--style-dir``
renders (the purifier's style domain). Writes ``real.json`` and ``real.md`` (derived
numbers only; no image of the research-only data).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from eyepurify.bench.classical import reference_stats, reinhard
from eyepurify.bench.segmentation import SegmentationScores, evaluate
from eyepurify.errors import DataError, EyepurifyError
from eyepurify.imaging import resize_images
from eyepurify.io import list_images, read_image, read_mask, write_json, write_text
from eyepurify.labels import orphan_fix
from eyepurify.models.export import load_state_checked, read_model_meta
from eyepurify.models.segmentation import SegmentationNet, predict_labels
from eyepurify.purify import Purifier
from eyepurify.segment import load_segmentation_net

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
Size = tuple[int, int]


def _natural(p: Path) -> tuple[object, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.stem))


def _size(text: str) -> Size:
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def _first_existing(*paths: Path) -> Path:
    for p in paths:
        if p.is_file():
            return p
    raise EyepurifyError(f"none of {[str(p) for p in paths]} exists; train the model first or pass its path")


def load_real(folder: Path, limit: int | None) -> tuple[list[str], list[np.ndarray], list[np.ndarray], list[str]]:
    """(stems, images, masks, bad-file lines) of an images/ + masks/ folder, natural order."""
    stems, images, masks, bad = [], [], [], []
    for path in sorted(list_images(folder / "images"), key=_natural)[:limit]:
        try:
            image = read_image(path)
            mask = read_mask(folder / "masks" / f"{path.stem}.png", shape=image.shape[:2])
        except DataError as e:
            bad.append(str(e))
            continue
        stems.append(path.stem)
        images.append(image)
        masks.append(mask)
    return stems, images, masks, bad


def _rel(path: Path) -> str:
    """``path`` relative to the repository root when it lies inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def load_purifier(path: Path) -> tuple[Purifier, dict[str, object]]:
    """A Purifier from a model file, or from a training checkpoint's ``net.*`` weights."""
    from eyepurify.models.transformer import TransformNet
    from eyepurify.train.checkpoint import FORMAT, load_checkpoint
    from eyepurify.train.purifier import PurifierTrainConfig

    if read_model_meta(path).get("format") != FORMAT:
        p = Purifier.from_pretrained(path, segmenter=None)
        return p, {"path": str(path), "step": p.meta.get("step"), "from": "model file"}
    ckpt = load_checkpoint(path)
    cfg = PurifierTrainConfig.from_dict(ckpt.config)
    net = TransformNet(cfg.net_config())
    state = {k.removeprefix("net."): v for k, v in ckpt.model_state.items() if k.startswith("net.")}
    load_state_checked(net, state, path)
    return Purifier(net.eval(), None), {"path": str(path), "step": ckpt.step, "from": "checkpoint net.* weights"}


def _row(name: str, segmenter: str, fix: bool, second: str | None, scores: SegmentationScores) -> dict[str, object]:
    return {"name": name, "segmenter": segmenter, "orphan_fix": fix, "second_pass": second, "scores": scores.to_dict()}


def _fmt(v: object, pct: bool = False) -> str:
    if v is None:
        return "–"
    return f"{v:.1f}" if pct else f"{v:.3f}"  # type: ignore[str-format]


def markdown(result: dict[str, object]) -> str:
    """The results table (and working-size selection) as Markdown."""
    size = result["working_size"]
    lines = [
        f"# Segmentation of real photos (real_eyes_seg, {result['n_images']} images, 640×480)",
        "",
        f"Working size {size[0]}×{size[1]} (H×W); scored at 640×480. IoU pooled over all images. "  # type: ignore[index]
        f"Pupil error over the {result['n_gt_pupil']} masks with a pupil (mean / median; px at 640×480 "
        "and % of width); `miss` = masks with a pupil where no eye was predicted. "
        "`eye` = IoU of iris ∪ pupil; `pupil*` = pupil IoU over masks with a pupil only.",
        "",
        "| row | skin | sclera | iris | pupil | mIoU (iris, pupil) | mIoU (4) | eye | pupil* "
        "| pupil err px | pupil err % width | miss | no eye |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:  # type: ignore[attr-defined]
        s = r["scores"]
        iou = s["iou"]
        lines.append(
            f"| {r['name']} | {_fmt(iou['skin'])} | {_fmt(iou['sclera'])} | {_fmt(iou['iris'])} | "
            f"{_fmt(iou['pupil'])} | **{_fmt(s['miou_iris_pupil'])}** | {_fmt(s['miou_all'])} | "
            f"{_fmt(s['eye_iou'])} | {_fmt(s['pupil_iou_gt_pupil'])} | "
            f"{_fmt(s['pupil_error_px_mean'], True)} / {_fmt(s['pupil_error_px_median'], True)} | "
            f"{_fmt(s['pupil_error_pct_mean'], True)} / {_fmt(s['pupil_error_pct_median'], True)} | "
            f"{s['n_pupil_missed']} | {s['n_no_eye']} ({100 * s['no_eye_share']:.1f} %) |"
        )
    sel = result.get("size_selection")
    if sel:
        lines += ["", f"Working-size selection ({sel['model']}, orphan fix on, {sel['subset']} evenly spaced photos):", "",  # type: ignore[index]
                  "| working size | mIoU (iris, pupil) | eye IoU | pupil err % width (median) | no eye |",
                  "|---|---|---|---|---|"]
        for k, s in sel["results"].items():  # type: ignore[index]
            lines.append(f"| {k} | {_fmt(s['miou_iris_pupil'])} | {_fmt(s['eye_iou'])} | "
                         f"{_fmt(s['pupil_error_pct_median'], True)} | {s['n_no_eye']} |")
    lines += ["", "Models:", ""]
    for k, m in result["models"].items():  # type: ignore[attr-defined]
        lines.append(f"* {k}: `{m['path']}` (step {m.get('step')})")
    lines += ["", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--default-seg", default=None, help="default: runs/seg_default/model.safetensors, else its checkpoint")
    p.add_argument("--unity-seg", default=None, help="default: runs/seg_render_unity/model.safetensors, else last")
    p.add_argument("--purifier", default=None, help="default: runs/purifier_default/model.safetensors; '' to skip")
    p.add_argument("--style-dir", default=str(ROOT / "runs" / "data" / "train" / "indoor"))
    p.add_argument("--select-sizes", default="72x120,96x128,120x160,180x240")
    p.add_argument("--subset", type=int, default=40)
    p.add_argument("--size", default=None, help="working size HxW (skips choosing one)")
    p.add_argument("--limit", type=int, default=None, help="only the first N photos (quick checks)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "segmentation"))
    args = p.parse_args(argv)
    torch.manual_seed(0)
    start = time.perf_counter()
    data = Path(args.data)
    if not (data / "real_eyes_seg").is_dir():
        print(f"{data / 'real_eyes_seg'} is absent (research-only data, not shipped); nothing to do")
        return 2
    runs = ROOT / "runs"
    seg_paths = {
        "default (renderer)": Path(args.default_seg) if args.default_seg else _first_existing(
            *(runs / "seg_default" / n for n in ("model.safetensors", "checkpoint.safetensors", "last.safetensors"))),
        "renderer + UnityEyes": Path(args.unity_seg) if args.unity_seg else _first_existing(
            *(runs / "seg_render_unity" / n for n in ("model.safetensors", "checkpoint.safetensors", "last.safetensors"))),
    }
    nets: dict[str, SegmentationNet] = {}
    models: dict[str, dict[str, object]] = {}
    for name, path in seg_paths.items():
        nets[name], meta = load_segmentation_net(path)
        models[name] = {"path": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
                        "step": meta.get("step"), "trained_size": meta.get("size"),
                        "val_miou": meta.get("val_miou")}

    stems, images, masks, bad = load_real(data / "real_eyes_seg", args.limit)
    for line in bad:
        print(f"skipped: {line}")
    shapes = {m.shape for m in masks}
    if len(shapes) != 1:
        raise EyepurifyError(f"expected one photo size, got {sorted(shapes)}")
    full = next(iter(shapes))
    print(f"{len(images)} photos of {full[1]}×{full[0]} ({len(bad)} skipped)")
    default = "default (renderer)"

    selection = None
    candidates = [_size(s) for s in args.select_sizes.split(",") if s.strip()]
    if candidates:
        # An evenly spaced subset: consecutive photos are often one person and session.
        pick = np.linspace(0, len(images) - 1, min(args.subset, len(images))).round().astype(int)
        k = len(pick)
        results = {}
        for size in candidates:
            preds = [orphan_fix(q) for q in predict_labels(nets[default], resize_images([images[i] for i in pick], size), out_shape=full, batch=16)]
            results[f"{size[0]}x{size[1]}"] = evaluate(preds, [masks[i] for i in pick]).to_dict()
            print(f"size {size}: mIoU(iris, pupil) {results[f'{size[0]}x{size[1]}']['miou_iris_pupil']}")
        best = max(results, key=lambda s: results[s]["miou_iris_pupil"] or -1.0)  # type: ignore[operator]
        selection = {"model": default, "subset": k, "criterion": "miou_iris_pupil (orphan fix on)",
                     "best": best, "results": results}
    working = _size(args.size) if args.size else _size(selection["best"]) if selection else (120, 160)  # type: ignore[index]
    small = resize_images(images, working)

    rows: list[dict[str, object]] = []
    first_fixed: dict[str, list[np.ndarray]] = {}
    for name, net in nets.items():
        raw = predict_labels(net, small, out_shape=full, batch=16)
        fixed = [orphan_fix(q) for q in raw]
        rows.append(_row(f"{name}, no fix", name, False, None, evaluate(raw, masks)))
        rows.append(_row(f"{name}, orphan fix", name, True, None, evaluate(fixed, masks)))
        first_fixed[name] = [orphan_fix(q) for q in predict_labels(net, small, out_shape=working, batch=16)]
        print(rows[-2]["name"], rows[-2]["scores"]["miou_iris_pupil"], "|", rows[-1]["name"],  # type: ignore[index]
              rows[-1]["scores"]["miou_iris_pupil"])  # type: ignore[index]

    transforms: dict[str, Callable[[list[np.ndarray], list[np.ndarray]], list[np.ndarray]]] = {}
    style_files = sorted(list_images(args.style_dir), key=_natural)[:200] if Path(args.style_dir).is_dir() else []
    if style_files:
        ref = reference_stats([read_image(f) for f in style_files])
        transforms["Reinhard colour transfer"] = lambda ims, _labs: [reinhard(im, ref) for im in ims]
        models["Reinhard reference"] = {"path": f"{_rel(Path(args.style_dir))} (first {len(style_files)} renders)", "step": None}
    purifier_path = None
    if args.purifier != "":
        purifier_path = Path(args.purifier) if args.purifier else _first_existing(
            runs / "purifier_default" / "model.safetensors", runs / "purifier_default" / "checkpoint.safetensors")
        purifier, info = load_purifier(purifier_path)
        models["purifier"] = {**info, "path": _rel(purifier_path)}
        transforms["purifier"] = purifier.purify_arrays
    for tname, transform in transforms.items():
        for name, net in nets.items():
            changed = transform(small, first_fixed[name])
            raw = predict_labels(net, changed, out_shape=full, batch=16)
            for fix, labs in ((False, raw), (True, [orphan_fix(q) for q in raw])):
                label = f"{name}, {tname} then re-segment, {'orphan fix' if fix else 'no fix'}"
                rows.append(_row(label, name, fix, tname, evaluate(labs, masks)))
            print(rows[-1]["name"], rows[-1]["scores"]["miou_iris_pupil"])  # type: ignore[index]

    n_gt_pupil = rows[0]["scores"]["n_gt_pupil"]  # type: ignore[index]
    result = {
        "command": ("OMP_NUM_THREADS=1 python benchmarks/segmentation_real.py " + " ".join(argv or sys.argv[1:])).strip(),
        "data": "real_eyes_seg", "n_images": len(images), "n_gt_pupil": n_gt_pupil,
        "image_size": [full[0], full[1]], "working_size": list(working), "bad_files": bad,
        "size_selection": selection, "models": models, "rows": rows,
        "total_seconds": round(time.perf_counter() - start, 1),
        "note": "derived numbers only (real_eyes_seg is research-only data)",
    }
    out = Path(args.out)
    write_json(out / "real.json", result)
    write_text(out / "real.md", markdown(result))
    print(f"wrote {out / 'real.json'} and real.md in {result['total_seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
