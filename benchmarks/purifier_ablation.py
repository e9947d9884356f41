"""Purifier ablation: every candidate model on every judge, side by side in one run.

    python benchmarks/purifier_ablation.py --models v1=default a=runs/x/model.safetensors ... --out DIR

Judges (none of them used to train a purifier; the task models of v2 training are other
networks, trained with other seeds on other renders):

* paired held-out renders (``--pairs``): PSNR / SSIM of the output to the indoor render
  of the same draw, pupil-centre shift (shipped segmenter) against the true pupil, share of
  draws whose iris colour class (nearest renderer iris colour) matches the indoor target's;
* real photos (sim2real protocol: the test half of ``--real``, crops at the canonical eye
  scale found by the shipped segmenter): mIoU(iris, pupil) of a UnityEyes-only and a
  renders-only segmenter (no augmentation; trained here once and cached exactly as
  ``bench sim2real`` caches them), change vs raw with a paired-bootstrap 95 % interval;
* the look of whole purified photos (``eyepurify.bench.look``, true masks): skin ring
  change, iris chromaticity change, checkerboard vs the raw crop;
* Columbia gaze (``--columbia``; the test people of ``bench gaze``): mean angular error of
  gaze CNNs trained on indoor renders only (``--judges``, one per seed), per-person
  calibrated error, and the ordering measure (Spearman of predicted pitch with the true
  vertical gaze within person/pose/horizontal/eye groups; yaw likewise);
* gray MPIIGaze patches (``--mpiigaze``): luminance spread of the purified patches.

Writes ``ablation.json`` and ``ablation.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from eyepurify.imaging import resize_image


def _log(msg: str, t0: float) -> None:
    print(f"[ablation {time.perf_counter() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def load_purifier(spec: str):  # type: ignore[no-untyped-def]
    """A Purifier from 'default' / a shipped set name ('v1', 'v2', 'fast') / a model file (its own trained eye scale)."""
    from eyepurify.purify import Purifier

    return Purifier.from_pretrained(None if spec == "default" else spec)


def purify_patches(pur, images: list[np.ndarray], masks: list[np.ndarray] | None = None) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    """Eye patches purified at the model's trained size and returned at their own size."""
    return [r.image for r in pur.process(images, masks)]


# ------------------------------------------------------------------ judges


def paired_judge(models: dict[str, object], pairs_dir: str, n: int) -> dict[str, dict[str, float]]:
    from eyepurify.bench.look import iris_colour_class
    from eyepurify.bench.metrics import psnr, ssim
    from eyepurify.data.render_folder import load_pairs
    from eyepurify.labels import pupil_center
    from eyepurify.segment import Segmenter

    data = load_pairs(pairs_dir, limit=n)
    seg = Segmenter.from_pretrained()
    wild, indoor, labels = list(data.wild), list(data.indoor), list(data.labels)
    gt = [pupil_center(lab) for lab in labels]
    target_cls = [iris_colour_class(t, lab) for t, lab in zip(indoor, labels, strict=True)]
    out = {}
    for name, pur in {"raw": None, **models}.items():
        outs = wild if pur is None else purify_patches(pur, wild)
        shifts = []
        for lab_pred, g in zip(seg(outs), gt, strict=True):
            c = pupil_center(lab_pred)
            if g is not None and c is not None:
                shifts.append(float(np.hypot(*(np.asarray(c) - g))))
        kept = [iris_colour_class(o, lab) == t for o, lab, t in zip(outs, labels, target_cls, strict=True) if t is not None]
        out[name] = {
            "psnr": float(np.mean([min(psnr(o, t), 100.0) for o, t in zip(outs, indoor, strict=True)])),
            "ssim": float(np.mean([ssim(o, t) for o, t in zip(outs, indoor, strict=True)])),
            "pupil_shift_px": float(np.mean(shifts)) if shifts else float("nan"),
            "iris_class_kept": float(np.mean(kept)) if kept else float("nan"),
        }
    return out


def real_judges(models: dict[str, object], real: str, unity: str, cache: str, seed: int, t0: float,
                given: dict[str, str] | None = None) -> dict[str, object]:
    """mIoU of the UnityEyes-only and renders-only segmenters (a) on purified test crops, and the look."""
    from eyepurify.bench.look import checkerboard_ratio, iris_chroma_change, skin_ring_change
    from eyepurify.bench.segmentation import changes_vs, load_photos, score, split_real
    from eyepurify.bench.sim2real import canonical_set, indoor_renders
    from eyepurify.data.labelled import ArrayDataset
    from eyepurify.eyescale import EyeScale, crop, paste_labels
    from eyepurify.segment import Segmenter
    from eyepurify.train.cache import TrainCache

    size = (72, 120)
    scale = EyeScale.for_renders(size)
    stems, photos, masks = load_photos(Path(real))
    test, _ = split_real(len(photos), 0.5, seed)
    test_ph, test_masks = [photos[i] for i in test], [masks[i] for i in test]
    locator = Segmenter.from_pretrained()
    boxes = [b for b, _ in locator.locate(test_ph, scale)]
    crops = [crop(im, b, size) for im, b in zip(test_ph, boxes, strict=True)]
    judges = {}
    _, syn_ims, syn_masks = load_photos(Path(unity), limit=600)
    sources = {"UnityEyes": canonical_set(syn_ims, syn_masks, scale), "renders": indoor_renders(600, size, seed)}
    for source, (ims, labs) in sources.items():
        if given and source in given:  # judges trained before (e.g. by an earlier run)
            judges[source] = Segmenter.from_checkpoint(given[source], eye_scale=False, orphan_fix=False)
            continue
        ds = ArrayDataset(ims, labs, [f"{source}{i}" for i in range(len(ims))])
        cfg = {"steps": 1000, "batch": 8, "size": size, "seed": seed, "augment": "none"}
        path, _ = TrainCache(Path(cache)).segmenter(f"sim2real_{source}_a", cfg, [ds])
        judges[source] = Segmenter.from_checkpoint(path, eye_scale=False, orphan_fix=False)
    _log("real: judges ready", t0)
    shapes = [m.shape for m in test_masks]
    result: dict[str, object] = {}
    base: dict[str, object] = {}
    # the shipped default path: whole photos purified, then the shipped segmenter on them
    base["default_path"] = score(locator.predict(test_ph), test_masks)
    for name, pur in {"raw": None, **models}.items():
        outs = crops if pur is None else [r.crop for r in pur.process(crops)]
        row: dict[str, object] = {}
        for source, seg in judges.items():
            sc = score([paste_labels(s, lab, b) for s, lab, b in zip(shapes, seg.predict(outs), boxes, strict=True)], test_masks)
            row[source] = {"miou": sc.summary["miou_iris_pupil"], "iris": sc.summary["iou"]["iris"], "pupil": sc.summary["iou"]["pupil"]}
            if pur is None:
                base[source] = sc
            else:
                row[source]["vs_raw"] = changes_vs(base[source], sc, 2000, seed)["miou"]  # type: ignore[index]
        if pur is not None:  # the look of whole photos, true masks
            res = pur.process(test_ph)
            sc = score(locator.predict([r.image for r in res]), test_masks)
            row["default_path"] = {"miou": sc.summary["miou_iris_pupil"],
                                   "vs_raw": changes_vs(base["default_path"], sc, 2000, seed)["miou"]}  # type: ignore[arg-type,index]
            skin, iris, chk = [], [], []
            for ph, m, r in zip(test_ph, test_masks, res, strict=True):
                if r.box is None:
                    continue
                skin.append(skin_ring_change(ph, r.image, m, r.box))
                iris.append(iris_chroma_change(ph, r.image, m))
                chk.append(checkerboard_ratio(r.crop, crop(ph, r.box, r.crop.shape[:2])))
            row["look"] = {"skin": float(np.nanmean(skin)), "iris_chroma": float(np.nanmean(iris)),
                           "checker": float(np.nanmedian(chk)), "eye_found": float(np.mean([r.eye_found for r in res]))}
        if pur is None:
            row["default_path"] = {"miou": base["default_path"].summary["miou_iris_pupil"]}  # type: ignore[attr-defined]
        result[name] = row
        _log(f"real: {name}", t0)
    return result


def columbia_judge(models: dict[str, object], columbia: str, judges: list[str], n: int, seed: int) -> dict[str, object]:
    from eyepurify.bench.gaze import split_by_group
    from eyepurify.data.columbia import ColumbiaGaze
    from eyepurify.gaze.cnn import CNNEstimator
    from eyepurify.gaze.features import to_gray
    from eyepurify.gaze.geometry import angular_error
    from eyepurify.gaze.metrics import calibrated_errors, ordering_spearman
    from eyepurify.gaze.protocol import GazeSet

    c36 = ColumbiaGaze(Path(columbia), crop=(36, 60))
    c72 = ColumbiaGaze(Path(columbia), crop=(72, 120))
    groups = np.array([c36.subject(i) for i in range(len(c36))])
    full = GazeSet(np.zeros((len(groups), 1, 1, 3), np.uint8), np.zeros((len(groups), 2)), None, "columbia", groups)
    test, _ = split_by_group(full, seed)  # the test people of bench gaze
    pool = np.nonzero(np.isin(groups, sorted(set(map(str, test.groups)))))[0]  # type: ignore[arg-type]
    keep = [int(pool[i]) for i in np.random.default_rng([seed, 3]).permutation(len(pool))[:n]]
    lab = [c36.entries[i] for i in keep]
    s36 = [c36[i].image for i in keep]
    s72 = [c72[i].image for i in keep]
    py = np.array([lb.gaze_pitchyaw() for lb in lab])
    person = [lb.subject for lb in lab]
    g_pitch = [(lb.subject, lb.head_pose_deg, lb.gaze_h_deg, lb.eye) for lb in lab]
    g_yaw = [(lb.subject, lb.head_pose_deg, lb.gaze_v_deg, lb.eye) for lb in lab]
    frontal = np.array([lb.head_pose_deg == 0 for lb in lab])
    nets = [CNNEstimator.load(j) for j in judges]
    out: dict[str, object] = {}
    mean_err = float(np.mean(angular_error(np.tile(py.mean(0), (len(py), 1)), py)))
    out["mean-gaze predictor"] = {"mean": mean_err}
    for name, pur in {"raw": None, **models}.items():
        if pur is None:
            ims = s36
        else:
            at36 = any(e.scale is not None and tuple(e.scale.size) == (36, 60) for e in pur.nets)  # a 36×60 network: the patches as they are
            ims = purify_patches(pur, s36 if at36 else s72)
        gray = to_gray([resize_image(im, (36, 60)) for im in ims])
        per_seed = []
        for est in nets:
            pred = est.predict(gray)
            err = angular_error(pred, py)
            cal = calibrated_errors(pred, py, person, 9, seed)
            rp, _ = ordering_spearman(pred[:, 0], py[:, 0], g_pitch)
            ry, _ = ordering_spearman(pred[:, 1], py[:, 1], g_yaw)
            per_seed.append({"mean": float(err.mean()), "frontal": float(err[frontal].mean()),
                             "calibrated": float(cal.mean()), "rho_pitch": rp, "rho_yaw": ry, "errors": err})
        row = {k: float(np.mean([p[k] for p in per_seed])) for k in ("mean", "frontal", "calibrated", "rho_pitch", "rho_yaw")}
        row["seed_spread"] = float(np.ptp([p["mean"] for p in per_seed]))
        row["_errors"] = [p["errors"] for p in per_seed]
        out[name] = row
    raw_err = out["raw"]["_errors"]  # type: ignore[index]
    from eyepurify.bench.stats import paired_bootstrap

    for name, row in out.items():
        if isinstance(row, dict) and "_errors" in row:
            if name != "raw":
                row["vs_raw"] = [paired_bootstrap(r, e, 2000, seed) for r, e in zip(raw_err, row["_errors"], strict=True)]
            row.pop("_errors")
    return out


def gray_judge(models: dict[str, object], mpiigaze: str) -> dict[str, float]:
    from eyepurify.bench.look import luminance_spread
    from eyepurify.io import list_images, read_image

    ims = [read_image(p) for p in list_images(mpiigaze)]
    ims = [resize_image(im, (36, 60)) for im in ims]
    out = {"raw": float(np.mean([luminance_spread(im) for im in ims]))}
    for name, pur in models.items():
        out[name] = float(np.mean([luminance_spread(im) for im in purify_patches(pur, ims)]))
    return out


# ------------------------------------------------------------------ report


def markdown(res: dict[str, object]) -> str:
    lines = [f"# Purifier ablation (`{res['command']}`)", ""]
    names = ["raw", *res["models"]]  # type: ignore[misc]
    p, r, c, g = res.get("paired", {}), res.get("real", {}), res.get("columbia", {}), res.get("gray", {})
    head = ("| model | paired PSNR | SSIM | pupil shift px | iris class kept | UnityEyes seg mIoU (Δ) | renders seg mIoU (Δ) "
            "| purify → shipped segmenter mIoU (Δ) | skin ring | iris chroma | checker | Columbia CNN ° (seed spread) | frontal ° | calibrated ° | ρ pitch | ρ yaw | gray spread |")
    lines += [head, "|" + "---|" * 17]
    for n in names:
        pp = p.get(n, {})  # type: ignore[union-attr]
        rr = r.get(n, {})  # type: ignore[union-attr]
        cc = c.get(n, {})  # type: ignore[union-attr]

        def f(d: dict, k: str, fmt: str = "{:.3f}") -> str:
            v = d.get(k)
            return "" if v is None or (isinstance(v, float) and np.isnan(v)) else fmt.format(v)

        def seg(src: str, rr: dict = rr) -> str:
            d = rr.get(src, {})
            if not d:
                return ""
            s = f"{d['miou']:.3f}"
            if "vs_raw" in d:
                v = d["vs_raw"]
                s += f" ({v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}])"
            return s

        lk = rr.get("look", {})
        cells = [n, f(pp, "psnr", "{:.2f}"), f(pp, "ssim"), f(pp, "pupil_shift_px", "{:.2f}"), f(pp, "iris_class_kept", "{:.2f}"),
                 seg("UnityEyes"), seg("renders"), seg("default_path"), f(lk, "skin", "{:.1f}"), f(lk, "iris_chroma", "{:.1f}"),
                 f(lk, "checker", "{:.2f}"),
                 (f(cc, "mean", "{:.2f}") + (f" ({cc['seed_spread']:.2f})" if "seed_spread" in cc else "")),
                 f(cc, "frontal", "{:.2f}"), f(cc, "calibrated", "{:.2f}"), f(cc, "rho_pitch", "{:.2f}"), f(cc, "rho_yaw", "{:.2f}"),
                 f(g, n, "{:.0f}") if isinstance(g, dict) else ""]
        lines.append("| " + " | ".join(cells) + " |")
    if "mean-gaze predictor" in c:  # type: ignore[operator]
        lines += ["", f"Columbia: predicting the mean gaze scores {c['mean-gaze predictor']['mean']:.2f}°."]  # type: ignore[index]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", required=True, help="name=model (default|v1|fast|FILE)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--pairs", default="runs/data/test72", help="paired held-out renders")
    ap.add_argument("--n-pairs", type=int, default=200)
    ap.add_argument("--real", default="../shared/data/real_eyes_seg")
    ap.add_argument("--unity", default="../shared/data/unityeyes_seg")
    ap.add_argument("--columbia", default="../shared/data/columbia_gaze")
    ap.add_argument("--n-columbia", type=int, default=2000)
    ap.add_argument("--judges", nargs="*", default=[], help="gaze-cnn model files trained on indoor renders")
    ap.add_argument("--mpiigaze", default="../shared/data/mpiigaze_patches")
    ap.add_argument("--cache", default="runs/sim2real_cache")
    ap.add_argument("--seg-judges", nargs="*", default=[], metavar="SOURCE=FILE",
                    help="segmentation judges already trained (UnityEyes=FILE renders=FILE) instead of the cache")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip", nargs="*", default=[], choices=["paired", "real", "columbia", "gray"])
    args = ap.parse_args()
    t0 = time.perf_counter()
    models = {}
    for spec in args.models:
        name, _, path = spec.partition("=")
        models[name] = load_purifier(path or name)
    res: dict[str, object] = {"command": "python " + " ".join(sys.argv), "models": list(models)}
    if "paired" not in args.skip:
        res["paired"] = paired_judge(models, args.pairs, args.n_pairs)
        _log("paired done", t0)
    if "real" not in args.skip and Path(args.real).is_dir():
        res["real"] = real_judges(models, args.real, args.unity, args.cache, args.seed, t0,
                                  dict(j.split("=", 1) for j in args.seg_judges))
    if "columbia" not in args.skip and args.judges and Path(args.columbia).is_dir():
        res["columbia"] = columbia_judge(models, args.columbia, args.judges, args.n_columbia, args.seed)
        _log("columbia done", t0)
    if "gray" not in args.skip and Path(args.mpiigaze).is_dir():
        res["gray"] = gray_judge(models, args.mpiigaze)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps(res, indent=1, default=float))
    md = markdown(res)
    (out / "ablation.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
