"""Quality of the distilled fast pair against the shipped pair (docs/training.md, "Fast models").

Paired renders (held out: ``eyepurify render --domain both --n 200 --seed 2 --wild-profile v1``), at 72×120 (the
models' size) and at 36×60 (MPIIGaze's patch size, resized to 72×120 and back by the pipeline):
PSNR/SSIM of each output to the indoor render of the same draw with predicted masks (and the
true masks for reference), the pupil shift measured by the shipped segmenter, PSNR/SSIM of
the fast output to the shipped output, and each segmenter's mIoU against the true labels (wild
and indoor renders). Mixed pairs (fast purifier + shipped segmenter and the reverse) show
which student costs what.

With ``--real`` (research-only photos, e.g. ../shared/data/real_eyes_seg) it also scores the
sim2real benchmark's renders-only downstream segmenters (the cached ones named in
``--sim2real-json``) on the held-out photos cut by the shipped locator and purified by either
pair, exactly as ``eyepurify bench sim2real`` does for "ours as shipped"; only numbers are
written, never images of the photos.

    python benchmarks/fast_models.py --test runs/data/test --out benchmarks/results/fast_models \
        --real ../shared/data/real_eyes_seg --sim2real-json benchmarks/results/sim2real/sim2real.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from eyepurify.bench.metrics import psnr, ssim
from eyepurify.bench.paired import PSNR_CAP, PairedSet, evaluate, load_pairs, sample_sheet
from eyepurify.imaging import resize_image, resize_labels
from eyepurify.io import write_image, write_json, write_text
from eyepurify.labels import confusion_matrix, iou_from_confusion
from eyepurify.purify import Purifier, packaged_weights
from eyepurify.segment import Segmenter


def pairs(args: argparse.Namespace) -> dict[str, Purifier]:
    """The purifier pairs compared (all with predicted masks unless masks are passed)."""
    fp, fs = args.fast_purifier, args.fast_segmenter
    shipped_seg = packaged_weights("segmenter.safetensors")
    return {
        "shipped": Purifier.from_pretrained(),
        "fast": Purifier.from_pretrained(fp, segmenter=fs, gray=None),
        "fast purifier + shipped segmenter": Purifier.from_pretrained(fp, segmenter=shipped_seg, gray=None),
        "shipped purifier + fast segmenter": Purifier.from_pretrained(None, segmenter=fs),
    }


def at_size(data: PairedSet, size: tuple[int, int]) -> PairedSet:
    """The pairs resized to ``size`` (images by the imaging policy, labels nearest)."""
    if data.wild[0].shape[:2] == size:
        return data
    return PairedSet([resize_image(im, size) for im in data.wild], [resize_image(im, size) for im in data.indoor],
                     [resize_labels(lab, size) for lab in data.labels])


def miou(pred: list[np.ndarray], true: list[np.ndarray]) -> dict[str, object]:
    """Mean and per-class IoU (skin, sclera, iris, pupil) of label maps against the truth."""
    conf = sum(confusion_matrix(p, t) for p, t in zip(pred, true, strict=True))
    m, per = iou_from_confusion(conf)  # type: ignore[arg-type]
    return {"miou": float(m), "per_class": [float(v) for v in per]}


def paired_block(data: PairedSet, purifiers: dict[str, Purifier], scorer: Segmenter, tag: str,
                 out: Path) -> dict[str, object]:
    """PSNR/SSIM rows (predicted and true masks), fast-vs-shipped fidelity, a contact sheet."""
    methods = {}
    for name, p in purifiers.items():
        methods[name] = lambda ims, labs, p=p: p.purify_arrays(list(ims))
    for name in ("shipped", "fast"):
        p = purifiers[name]
        methods[f"{name}, true masks"] = lambda ims, labs, p=p: p.purify_arrays(list(ims), list(labs))
    keep: dict[str, list[np.ndarray]] = {}
    rows = evaluate(methods, data, segment=scorer, batch=64, keep=keep, n_keep=len(data.wild))
    a, b = keep["fast"], keep["shipped"]
    fidelity = {
        "psnr_fast_to_shipped": float(np.mean([min(psnr(x, y), PSNR_CAP) for x, y in zip(a, b, strict=True)])),
        "ssim_fast_to_shipped": float(np.mean([ssim(x, y) for x, y in zip(a, b, strict=True)])),
        "psnr_fast_to_shipped_true_masks": float(np.mean([min(psnr(x, y), PSNR_CAP) for x, y in zip(
            keep["fast, true masks"], keep["shipped, true masks"], strict=True)])),
    }
    n = 8
    sheet = {"wild input": data.wild[:n], "shipped": b[:n], "fast": a[:n],
             "fast pur + shipped seg": keep["fast purifier + shipped segmenter"][:n]}
    write_image(out / f"sheet_{tag}.png", sample_sheet(PairedSet(data.wild[:n], data.indoor[:n], data.labels[:n]), sheet,
                                                       scale=3 if data.wild[0].shape[0] < 50 else 2))
    return {"rows": rows, "fidelity": fidelity}


def segmenter_block(data: PairedSet, segs: dict[str, Segmenter]) -> dict[str, object]:
    """mIoU of each segmenter on the wild and indoor renders (true labels are the same draw's)."""
    res: dict[str, object] = {}
    for name, s in segs.items():
        res[name] = {dom: miou(s(list(ims)), data.labels) for dom, ims in (("wild", data.wild), ("indoor", data.indoor))}
    a, b = segs["fast"](list(data.wild)), segs["shipped"](list(data.wild))
    res["fast vs shipped (wild, agreement)"] = miou(a, b)
    return res


def sim2real_block(args: argparse.Namespace, purifiers: dict[str, Purifier]) -> dict[str, object]:
    """Renders-only downstream segmenters (bench sim2real's cached a/b) on held-out real photos,
    cut by the shipped locator, purified by each pair; paired bootstrap change vs shipped."""
    from eyepurify.bench.segmentation import changes_vs, load_photos, score, split_real
    from eyepurify.bench.sim2real import paste_all
    from eyepurify.eyescale import EyeScale, crop

    ref = json.loads(Path(args.sim2real_json).read_text())
    st = ref["settings"]
    size = tuple(st["size"])
    scale = EyeScale.for_renders(size)
    stems, photos, masks = load_photos(Path(args.real))
    test, _ = split_real(len(photos), st["test_fraction"], st["seed"])
    assert [stems[i] for i in test] == ref["test_stems"], "the test split differs from the sim2real run's"
    test_ph, test_masks = [photos[i] for i in test], [masks[i] for i in test]
    shapes = [m.shape for m in test_masks]
    locator = Segmenter.from_pretrained()
    boxes = [b for b, _ in locator.locate(test_ph, scale)]
    crops = [crop(im, b, size) for im, b in zip(test_ph, boxes, strict=True)]
    fast_seg = purifiers["fast"].segmenter
    variants = {
        "raw": crops,
        "shipped (shipped masks)": purifiers["shipped"].purify_arrays(crops, locator.predict(crops)),
        "fast (fast masks)": purifiers["fast"].purify_arrays(crops, fast_seg(crops)),  # type: ignore[misc]
        "fast purifier (shipped masks)": purifiers["fast"].purify_arrays(crops, locator.predict(crops)),
    }
    out: dict[str, object] = {"n_test": len(test), "segmenters": {}}
    for tag in ("a", "b"):
        name = f"renders segmenter ({tag}, augment {'none' if tag == 'a' else 'strong'})"
        path = ref["models"][name]["path"]
        path = path if os.path.isabs(path) else str(Path(args.sim2real_root) / path)
        down = Segmenter.from_checkpoint(path, eye_scale=False, orphan_fix=False)
        scored = {k: score(paste_all(shapes, down.predict(v), boxes), test_masks) for k, v in variants.items()}
        block: dict[str, object] = {}
        for k, sc in scored.items():
            block[k] = {"scores": sc.summary}
            if k != "shipped (shipped masks)" and k != "raw":
                block[k]["vs_shipped"] = changes_vs(scored["shipped (shipped masks)"], sc, args.n_boot, 0)
        out["segmenters"][name] = block  # type: ignore[index]
    # the default CLI path on whole photos (the pair finds the eye itself), scored by the shipped segmenter
    whole = {k: score(locator.predict(purifiers[k].purify_arrays(test_ph)), test_masks) for k in ("shipped", "fast")}
    out["whole photos, scored by the shipped segmenter"] = {
        "raw": score(locator.predict(test_ph), test_masks).summary,
        **{k: {"scores": v.summary} for k, v in whole.items()},
        "fast vs shipped": changes_vs(whole["shipped"], whole["fast"], args.n_boot, 0),
    }
    return out


def _ms(r: dict[str, object]) -> str:
    p, s = r["psnr"], r["ssim"]
    ps = r.get("pupil_shift_px", (float("nan"),) * 2)
    return f"| {r['method']} | {p[0]:.2f} ± {p[1]:.2f} | {s[0]:.3f} ± {s[1]:.3f} | {ps[0]:.2f} | {r['ms_per_image']:.2f} |"  # type: ignore[index]


def markdown(res: dict[str, object]) -> str:
    lines = ["# Fast (distilled) pair vs shipped pair", "", f"Command: `{res['command']}`", "",
             f"Held-out paired renders: {res['n']} (`{res['test']}`), masks predicted by each pair's own segmenter unless "
             "'true masks'. Pupil shift measured by the shipped segmenter on the output. ms/image on a shared 2-core "
             "machine (eager torch; noisy, speed is in bench throughput).", ""]
    for tag, block in res["paired"].items():  # type: ignore[union-attr]
        lines += [f"## {tag}", "", "| pair | PSNR to indoor (dB) | SSIM to indoor | pupil shift (px) | ms/image |", "|---|---|---|---|---|"]
        lines += [_ms(r) for r in block["rows"]]
        f = block["fidelity"]
        lines += ["", f"Fast output vs shipped output: PSNR {f['psnr_fast_to_shipped']:.2f} dB, SSIM "
                  f"{f['ssim_fast_to_shipped']:.3f} (true masks: PSNR {f['psnr_fast_to_shipped_true_masks']:.2f} dB).", ""]
    lines += ["## Segmenters (mIoU vs true labels; per class skin / sclera / iris / pupil)", "",
              "| segmenter | size | wild | indoor |", "|---|---|---|---|"]
    for size, segs in res["segmenters"].items():  # type: ignore[union-attr]
        for name, r in segs.items():
            if "wild" in r:
                cell = [f"{r[d]['miou']:.3f} ({' / '.join(f'{v:.2f}' for v in r[d]['per_class'])})" for d in ("wild", "indoor")]
                lines.append(f"| {name} | {size} | {cell[0]} | {cell[1]} |")
            else:
                lines.append(f"| {name} | {size} | {r['miou']:.3f} | |")
    s2r = res.get("sim2real")
    if s2r:
        lines += ["", f"## Real photos (research-only; {s2r['n_test']} held-out photos of bench sim2real's split)", "",
                  "Renders-only downstream segmenters (bench sim2real's cached a/b), mIoU(iris, pupil) on the photos "
                  "cut by the shipped locator; change vs shipped with a paired-bootstrap 95 % interval:", "",
                  "| segmenter | input | mIoU(iris, pupil) | pupil error (% width, median) | Δ vs shipped [95 % CI] |", "|---|---|---|---|---|"]
        for seg, block in s2r["segmenters"].items():
            for k, v in block.items():
                sc = v["scores"]
                d = v.get("vs_shipped", {}).get("miou")
                ci = f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]" if d is not None else ""
                lines.append(f"| {seg} | {k} | {sc['miou_iris_pupil']:.3f} | {sc['pupil_error_pct_median']:.1f} | {ci} |")
        w = s2r["whole photos, scored by the shipped segmenter"]
        lines += ["", "Whole photos through each pair (it finds the eye itself), then the shipped segmenter: mIoU(iris, pupil) "
                  f"raw {w['raw']['miou_iris_pupil']:.3f}, shipped {w['shipped']['scores']['miou_iris_pupil']:.3f}, "
                  f"fast {w['fast']['scores']['miou_iris_pupil']:.3f}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--test", default="runs/data/test", help="held-out paired render folder")
    ap.add_argument("--out", default="benchmarks/results/fast_models")
    ap.add_argument("--fast-purifier", default=str(packaged_weights("purifier_fast.safetensors")))
    ap.add_argument("--fast-segmenter", default=str(packaged_weights("segmenter_fast.safetensors")))
    ap.add_argument("--real", default=None, help="labelled real photos (images/ + masks/); research-only")
    ap.add_argument("--sim2real-json", default="benchmarks/results/sim2real/sim2real.json")
    ap.add_argument("--sim2real-root", default=".", help="folder the sim2real run's relative cache paths start from")
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--limit", type=int, default=None, help="first N pairs only (a quick check)")
    args = ap.parse_args()
    import shlex
    import sys

    t0 = time.perf_counter()
    out = Path(args.out)
    data = load_pairs(args.test, args.limit)
    purifiers = pairs(args)
    scorer = Segmenter.from_pretrained()
    res: dict[str, object] = {"command": "python " + shlex.join(sys.argv), "test": args.test, "n": len(data.wild),
                              "files": {"fast_purifier": args.fast_purifier, "fast_segmenter": args.fast_segmenter},
                              "paired": {}, "segmenters": {}}
    for tag, size in (("72x120", (72, 120)), ("36x60", (36, 60))):
        d = at_size(data, size)
        res["paired"][tag] = paired_block(d, purifiers, scorer, tag, out)  # type: ignore[index]
        segs = {"shipped": purifiers["shipped"].segmenter, "fast": purifiers["fast"].segmenter}
        res["segmenters"][tag] = segmenter_block(d, segs)  # type: ignore[index, arg-type]
    if args.real:
        res["sim2real"] = sim2real_block(args, purifiers)
    res["seconds"] = time.perf_counter() - t0
    write_json(out / "fast_models.json", res)
    write_text(out / "fast_models.md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
