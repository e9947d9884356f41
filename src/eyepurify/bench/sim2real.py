"""Sim2real: do synthetic-trained segmenters find the iris and pupil better on purified real photos?

Protocol (``eyepurify bench sim2real --out DIR``; the project's headline benchmark):

* Real photos (``--real``, images/ + masks/) are split once with ``--seed`` into a *test*
  part (every row is scored on it; its stems are recorded) and a *train* part, used only as
  unlabelled content of the purifiers trained here (masks predicted, never the truth).
* Everything works at the canonical eye scale (:mod:`eyepurify.eyescale`) at ``--size``
  (72×120): the shipped renders-only segmenter finds the eye in each photo and the box with
  the trained margin and aspect is cut and resized; UnityEyes images are cut the same way
  around their true eye; renders are canonical as drawn. Predictions on a crop are pasted
  back into a skin-filled map of the photo's size and scored against the photo's mask.
* Downstream models trained only on synthetic data, per source (``--synthetic`` UnityEyes
  folder; ``--renders N`` indoor renders): segmenter (a) without and (b) with strong
  photometric augmentation.
* Rows per source: raw, histogram matching, Reinhard, ours as shipped (renders-trained
  purifier, predicted masks), ours as shipped with the true masks, ours trained with real
  content (train part) towards this source's style at β = 1e4 (the loss default; it
  collapses) and at β = 10 with content augmentation (``--pur-steps-long``), Johnson trained
  the same way, a segmenter trained on the SimGAN-refined source set (``--simgan-steps``,
  ``--simgan-sources``), masked L-BFGS on ``--optimize-n`` test photos beside raw on that
  subset, and (b) on raw and purified crops. Ablations (render style): no content
  augmentation, one style image. A first block, "shipped defaults", is what a user gets
  from `eyepurify purify` then `eyepurify segment` on the whole photos; a last one the
  Fréchet distance of MPIIGaze patches (``--mpiigaze``) to gray renders, raw vs transformed.
* Columns: pooled iris / pupil IoU and their mean, pupil-centre error (% of the photo's
  width) over masks with a pupil, with paired-bootstrap 95 % intervals of each change
  against raw (same segmenter).

Outputs: ``sim2real.json``, ``sim2real.md``, ``sim2real_miou.png``; with real photos a
contact sheet ``sim2real_sheet.png`` (research-only images: keep it out of the repo).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from eyepurify.bench import command_line
from eyepurify.bench.classical import histogram_match, reference_stats, reinhard
from eyepurify.bench.models import OpenTrainer, Trainer
from eyepurify.bench.segmentation import Scored, changes_vs, load_photos, score, split_real
from eyepurify.data.labelled import ArrayDataset
from eyepurify.data.render_folder import write_wild_fixture
from eyepurify.eyescale import (
    Box,
    EyeScale,
    canonical_box,
    crop,
    crop_labels,
    eye_box,
    paste_labels,
)
from eyepurify.imaging import parse_size, resize_image, resize_images
from eyepurify.io import write_image, write_json, write_text

DEFAULT_SYNTHETIC = "../shared/data/unityeyes_seg"
DEFAULT_REAL = "../shared/data/real_eyes_seg"
DEFAULT_MPIIGAZE = "../shared/data/mpiigaze_patches"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--synthetic", default=DEFAULT_SYNTHETIC, help="labelled UnityEyes-like folder (images/ + masks/)")
    p.add_argument("--synthetic-n", type=int, default=600, help="synthetic images per source")
    p.add_argument("--renders", type=int, default=600, help="indoor renders as a second source (0: skip it)")
    p.add_argument("--real", default=DEFAULT_REAL, help="labelled real photos (images/ + masks/)")
    p.add_argument("--size", default="72x120", help="canonical crop HxW")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-fraction", type=float, default=0.5)
    p.add_argument("--seg-steps", type=int, default=1000)
    p.add_argument("--seg-batch", type=int, default=8)
    p.add_argument("--pur-steps", type=int, default=300)
    p.add_argument("--pur-batch", type=int, default=4)
    p.add_argument("--pur-net", default="small")
    p.add_argument("--pur-steps-long", type=int, default=1000, help="steps of the β = 10 real-content purifiers and ablations")
    p.add_argument("--simgan-steps", type=int, default=400, help="SimGAN refiner steps (0: skip the SimGAN rows)")
    p.add_argument("--simgan-sources", default="UnityEyes,renders", help="comma-separated sources that get a SimGAN row")
    p.add_argument("--optimize-n", type=int, default=20, help="test photos for the masked L-BFGS row (0: skip)")
    p.add_argument("--optimize-iters", type=int, default=20)
    p.add_argument("--no-ablations", dest="ablations", action="store_false", help="skip the ablation purifiers")
    p.add_argument("--mpiigaze", default=DEFAULT_MPIIGAZE, help="MPIIGaze patches for the Fréchet-distance block ('' skips it)")
    p.add_argument("--mpiigaze-n", type=int, default=144)
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--cache", default=None, help="trained-model cache (default runs/sim2real_cache; --quick: a temp folder)")


def canonical_set(images: list[np.ndarray], masks: list[np.ndarray], scale: EyeScale) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Labelled images cut around their *true* eye to the canonical scale (synthetic sources)."""
    ims, labs = [], []
    for im, m in zip(images, masks, strict=True):
        eye = eye_box(m)
        if eye is None:
            continue
        box = canonical_box(eye, scale)
        ims.append(crop(im, box, scale.size))
        labs.append(crop_labels(m, box, scale.size))
    return ims, labs


def indoor_renders(n: int, size: tuple[int, int], seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``n`` indoor renders at ``size`` (images, label maps), seeded."""
    from eyepurify.data.render import render_batch, sample_params

    rng = np.random.default_rng([seed, 81])
    out = render_batch([sample_params(rng) for _ in range(n)], size, "indoor")
    return [s.image for s in out], [s.labels for s in out]  # type: ignore[misc]


def _simgan_refined(trainer: Trainer, source: str, syn_ims: list[np.ndarray], real_crops: list[np.ndarray],
                    size: tuple[int, int], steps: int, seed: int) -> tuple[list[np.ndarray], str]:
    """The synthetic set refined by a SimGAN refiner trained (or reused) towards the real train crops."""
    from eyepurify.models.simgan import load_refiner, refine_arrays

    cfg = {"steps": steps, "size": size, "channels": 3, "seed": seed, "pretrain_refiner_steps": min(100, steps),
           "pretrain_disc_steps": min(50, steps), "eval_count": min(64, len(real_crops) // 2 or 1)}
    path, _ = trainer.refiner(source, cfg, np.stack(syn_ims), np.stack(real_crops))
    return refine_arrays(load_refiner(path), syn_ims), path.parent.name


def mpiigaze_domain(folder: Path, shipped, args: argparse.Namespace) -> dict[str, Any] | None:
    """Fréchet distance of MPIIGaze patches to gray indoor renders, raw vs transformed (``bench domain``'s measure)."""
    from eyepurify.bench.domain import Pair, compare_pair, to_gray3
    from eyepurify.bench.domain import load_folder as load_resized
    from eyepurify.bench.paired import render_pairs
    from eyepurify.models.backbones import create_backbone

    if not folder.is_dir():
        return None
    feat = (72, 120)
    native, _ = load_resized(folder, (36, 60), args.mpiigaze_n, args.seed)  # MPIIGaze's own 36×60 input
    synth = to_gray3(list(render_pairs(len(native), feat, args.seed).indoor))
    ref = reference_stats(synth)
    native = to_gray3(native)
    # every method sees the native patches; outputs are compared (and featurised) at 72×120
    methods = {
        "raw": lambda _: resize_images(native, feat),
        "histogram matching": lambda _: resize_images([histogram_match(im, ref) for im in native], feat),
        "Reinhard": lambda _: resize_images([reinhard(im, ref) for im in native], feat),
        "ours as shipped (gray model, canonical scale)": lambda _: resize_images(shipped.purify_arrays(list(native)), feat),
    }
    pair = Pair("MPIIGaze patches vs gray indoor renders", resize_images(native, feat), synth, feat, True,
                "patches purified at their own 36×60 size (the shipped path), then upsampled to 72×120 for features")
    return compare_pair(pair, methods, create_backbone("lite0"), 32, args.seed)


def paste_all(shapes: list[tuple[int, int]], labs: list[np.ndarray], boxes: list[Box]) -> list[np.ndarray]:
    """Label maps of canonical crops pasted back into skin-filled maps of their photos' shapes."""
    return [paste_labels(s, lab, b) for s, lab, b in zip(shapes, labs, boxes, strict=True)]


def _row(name: str, block: str, sc: Scored, base: Scored | None, args: argparse.Namespace, **extra: object) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name, "block": block, "scores": sc.summary, **extra}
    if base is not None:
        row["vs_raw"] = changes_vs(base, sc, args.n_boot, args.seed)
    return row


#: this benchmark asks for trained models (``eyepurify bench`` hands :func:`run` a trainer)
TRAINS = True


def run(args: argparse.Namespace, open_trainer: OpenTrainer) -> str:
    import torch

    from eyepurify.optimize import optimise_images
    from eyepurify.purify import Purifier
    from eyepurify.segment import Segmenter

    t0 = time.perf_counter()
    out = Path(args.out)
    size = parse_size(args.size)
    scale = EyeScale.for_renders(size)
    tmp = tempfile.TemporaryDirectory(prefix="sim2real_")
    s = dict(seg_steps=args.seg_steps, seg_batch=args.seg_batch, pur_steps=args.pur_steps, pur_batch=args.pur_batch,
             syn_n=args.synthetic_n, renders=args.renders, pur_steps_long=args.pur_steps_long,
             simgan_steps=args.simgan_steps, ablations=args.ablations)
    real_dir, syn_dir = Path(args.real), Path(args.synthetic)
    if args.quick:
        s.update(seg_steps=6, seg_batch=4, pur_steps=2, pur_batch=2, syn_n=12, renders=12, pur_steps_long=2, simgan_steps=2)
        args.optimize_n, args.optimize_iters = min(args.optimize_n, 1), min(args.optimize_iters, 1)
        args.n_boot = min(args.n_boot, 50)
        if not (real_dir / "images").is_dir():
            real_dir = write_wild_fixture(Path(tmp.name) / "real", 8, (96, 128), args.seed)
        if not (syn_dir / "images").is_dir():
            syn_dir = Path(tmp.name) / "none"
    cache = Path(args.cache) if args.cache else (Path(tmp.name) / "cache" if args.quick else Path("runs/sim2real_cache"))
    trainer = open_trainer(cache, False if args.quick else None)
    torch.manual_seed(args.seed)

    stems, photos, masks = load_photos(real_dir, limit=8 if args.quick else None)
    test, train = split_real(len(photos), args.test_fraction, args.seed)
    test_ph, test_masks = [photos[i] for i in test], [masks[i] for i in test]
    shapes = [m.shape for m in test_masks]
    locator = Segmenter.from_pretrained()  # renders only: finds the eye without real data
    located = locator.locate(test_ph, scale)
    boxes = [b for b, _ in located]
    crops = [crop(im, b, size) for im, b in zip(test_ph, boxes, strict=True)]
    true_crop_masks = [crop_labels(m, b, size) for m, b in zip(test_masks, boxes, strict=True)]
    shipped = Purifier.from_pretrained(segmenter=locator)
    pred_crop_masks = locator.predict(crops)
    ours_shipped = shipped.purify_arrays(crops, pred_crop_masks)
    ours_shipped_gt = shipped.purify_arrays(crops, true_crop_masks)

    rows: list[dict[str, Any]] = []
    # the default CLI path on whole photos: shipped purifier, then the shipped segmenter
    raw_full = score(locator.predict(test_ph), test_masks)
    pur_full = score(locator.predict(shipped.purify_arrays(test_ph)), test_masks)
    rows.append(_row("raw", "shipped defaults (whole photos)", raw_full, None, args))
    rows.append(_row("purified: ours as shipped", "shipped defaults (whole photos)", pur_full, raw_full, args))

    sources: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    if (syn_dir / "images").is_dir():
        _, syn_ims, syn_masks = load_photos(syn_dir, limit=s["syn_n"])
        sources["UnityEyes"] = canonical_set(syn_ims, syn_masks, scale)
    if s["renders"]:
        sources["renders"] = indoor_renders(int(s["renders"]), size, args.seed)

    # content for purifiers trained here: the real train part, cut and labelled by the locator
    train_ph = [photos[i] for i in train]
    train_boxes = [b for b, _ in locator.locate(train_ph, scale)]
    train_crops = [crop(im, b, size) for im, b in zip(train_ph, train_boxes, strict=True)]
    train_labs = locator.predict(train_crops)

    content = ArrayDataset(train_crops, train_labs, [f"c{i:04d}" for i in range(len(train_crops))])

    models: dict[str, Any] = {}
    samples: dict[str, list[np.ndarray]] = {"photo crop": crops, "ours as shipped": ours_shipped}
    n_opt = min(args.optimize_n, len(crops))
    opt_idx = np.linspace(0, len(crops) - 1, n_opt).astype(int) if n_opt else np.zeros(0, int)
    long = int(s["pur_steps_long"])
    for source, (syn_ims, syn_labs) in sources.items():
        ds = ArrayDataset(syn_ims, syn_labs, [f"{source}{i}" for i in range(len(syn_ims))])
        seg_paths = {}
        for tag, augment in (("a", "none"), ("b", "strong")):
            cfg = {"steps": s["seg_steps"], "batch": s["seg_batch"], "size": size, "seed": args.seed, "augment": augment}
            seg_paths[tag], reused = trainer.segmenter(f"sim2real_{source}_{tag}", cfg, [ds])
            models[f"{source} segmenter ({tag}, augment {augment})"] = {"path": str(seg_paths[tag]), "reused": reused}
        # downstream models: arg-max labels of the canonical crops, no orphan fix
        downstream = {t: Segmenter.from_checkpoint(p, eye_scale=False, orphan_fix=False) for t, p in seg_paths.items()}
        style_dir = Path(tmp.name) / f"style_{source}"  # its content is part of the purifiers' cache keys
        for i, (im, lab) in enumerate(zip(syn_ims[:16], syn_labs[:16], strict=True)):
            write_image(style_dir / "images" / f"s{i:02d}.png", im)
            write_image(style_dir / "masks" / f"s{i:02d}.png", lab)

        def real_purified(tag: str, steps: int, beta: float = 1e4, augment: str = "none", method: str = "ours",
                          style_limit: int = 16, style_dir: Path = style_dir, source: str = source) -> list[np.ndarray]:
            """Test crops purified by a purifier trained here: real train crops → this source's style."""
            pcfg = {"method": method, "net": args.pur_net if method == "ours" else "johnson_small", "size": size,
                    "batch": s["pur_batch"], "steps": steps, "seed": args.seed, "style_limit": style_limit,
                    "val_every": steps, "sample_every": steps, "checkpoint_every": max(100, steps),
                    "content_segmenter": None, "content_augment": augment, "loss": {} if beta == 1e4 else {"beta": beta}}
            name = f"sim2real_{source}" if tag == "" else f"sim2real_{source}_{tag}"
            ppath, reused = trainer.purifier(name, pcfg, content, [style_dir])
            models[f"purifier real→{source} {tag or 'β=1e4'}"] = {"path": str(ppath), "reused": reused, "steps": steps,
                                                                   "beta": beta, "augment": augment, "method": method,
                                                                   "style_limit": style_limit}
            pur = Purifier.from_pretrained(ppath, segmenter=None)
            return pur.purify_arrays(crops, pred_crop_masks if method == "ours" else None)

        ours_real = real_purified("", s["pur_steps"])
        ours_long = real_purified("long", long, beta=10.0, augment="strong")
        johnson = real_purified("johnson", long, beta=10.0, augment="strong", method="johnson")
        samples[f"ours real→{source} (β=1e4)"] = ours_real
        samples[f"ours real→{source} (β=10, aug)"] = ours_long
        samples[f"Johnson real→{source}"] = johnson
        ref = reference_stats(syn_ims[:200])
        real_name = f"purified: ours, real content → {source} style"
        long_name = f"purified: ours, real content + augmentation → {source} style (β = 10, {long} steps)"
        transforms: dict[str, Callable[[], list[np.ndarray]]] = {
            "raw": lambda: crops,
            "histogram matching": lambda ref=ref: [histogram_match(im, ref) for im in crops],  # type: ignore[misc]
            "Reinhard": lambda ref=ref: [reinhard(im, ref) for im in crops],  # type: ignore[misc]
            "purified: ours as shipped": lambda: ours_shipped,
            "purified: ours as shipped, true masks": lambda: ours_shipped_gt,
            f"{real_name} (β = 1e4, {s['pur_steps']} steps)": lambda o=ours_real: o,  # type: ignore[misc]
            long_name: lambda o=ours_long: o,  # type: ignore[misc]
            f"purified: Johnson, real content + augmentation → {source} style (β = 10, {long} steps)": lambda o=johnson: o,  # type: ignore[misc]
        }
        in_b = ("raw", "purified: ours as shipped", f"{real_name} (β = 1e4, {s['pur_steps']} steps)", long_name)
        raws: dict[str, Scored] = {}
        for tag in ("a", "b"):
            block = f"{source} segmenter ({tag}: {'no augmentation' if tag == 'a' else 'strong augmentation'})"
            base = None
            for name, make in transforms.items():
                if tag == "b" and name not in in_b:
                    continue
                sc = score(paste_all(shapes, downstream[tag].predict(make()), boxes), test_masks)
                rows.append(_row(name, block, sc, base, args))
                base = base or sc
            raws[tag] = base  # type: ignore[assignment]
            if tag == "a":
                block_a = block
        # SimGAN (downstream trained on refined synthetic images, scored on raw crops)
        if s["simgan_steps"] and source in args.simgan_sources.split(","):
            refined, gan_key = _simgan_refined(trainer, source, syn_ims, train_crops, size, int(s["simgan_steps"]), args.seed)
            models[f"SimGAN refiner {source}"] = {"key": gan_key, "steps": s["simgan_steps"]}
            cfg = {"steps": s["seg_steps"], "batch": s["seg_batch"], "size": size, "seed": args.seed, "augment": "none"}
            rds = ArrayDataset(refined, syn_labs, [f"{source}r{i}" for i in range(len(refined))])
            gpath, reused = trainer.segmenter(f"sim2real_{source}_simgan", cfg, [rds])
            models[f"{source} segmenter on SimGAN-refined set"] = {"path": str(gpath), "reused": reused}
            gseg = Segmenter.from_checkpoint(gpath, eye_scale=False, orphan_fix=False)
            sc = score(paste_all(shapes, gseg.predict(crops), boxes), test_masks)
            rows.append(_row(f"SimGAN: segmenter trained on refined {source} (raw photos)", block_a, sc, raws["a"], args))
        # masked L-BFGS on a subset (per-image optimisation is slow), beside raw on that subset
        if n_opt:
            from eyepurify.models.backbones import create_backbone

            sub = [int(i) for i in opt_idx]
            opt = optimise_images([crops[i] for i in sub], [pred_crop_masks[i] for i in sub], syn_ims[0], syn_labs[0],
                                  create_backbone("lite0"), args.optimize_iters)
            sub_shapes, sub_boxes, sub_masks = [shapes[i] for i in sub], [boxes[i] for i in sub], [test_masks[i] for i in sub]
            raw_sub = score(paste_all(sub_shapes, downstream["a"].predict([crops[i] for i in sub]), sub_boxes), sub_masks)
            opt_sc = score(paste_all(sub_shapes, downstream["a"].predict(opt), sub_boxes), sub_masks)
            rows.append(_row(f"raw (L-BFGS subset of {n_opt})", block_a, raw_sub, None, args, subset=sub))
            rows.append(_row(f"masked L-BFGS ({args.optimize_iters} it., one style image; subset of {n_opt})", block_a,
                             opt_sc, raw_sub, args, subset=sub))
        if source == "renders" and s["ablations"]:
            ablations = {
                f"main (real content, strong content augmentation, β = 10, style set of 16, {long} steps)": lambda o=ours_long: o,  # type: ignore[misc]
                "no content augmentation": lambda: real_purified("noaug", long, beta=10.0),
                "one style image": lambda: real_purified("onestyle", long, beta=10.0, augment="strong", style_limit=1),
            }
            if s["pur_steps"] != long:
                ablations[f"{s['pur_steps']} steps"] = lambda: real_purified("short", int(s["pur_steps"]), beta=10.0, augment="strong")
            outs = {name: make() for name, make in ablations.items()}
            for tag in ("a", "b"):
                block = f"ablations, renders style ({tag}: renders segmenter {'without' if tag == 'a' else 'with'} augmentation)"
                for name, o in outs.items():
                    sc = score(paste_all(shapes, downstream[tag].predict(o), boxes), test_masks)
                    rows.append(_row(name, block, sc, raws[tag], args))
        print(f"{source} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)

    domain = mpiigaze_domain(Path(args.mpiigaze), shipped, args) if args.mpiigaze and not args.quick else None
    result = {
        "benchmark": "sim2real", "command": command_line("sim2real", args), "quick": bool(args.quick),
        "settings": {**s, "size": list(size), "seed": args.seed, "test_fraction": args.test_fraction,
                     "eye_scale": scale.to_meta(), "real": str(real_dir), "synthetic": str(syn_dir)},
        "test_stems": [stems[i] for i in test], "eye_found": int(sum(f for _, f in located)), "n_test": len(test),
        "models": models, "rows": rows, "domain": domain, "seconds": round(time.perf_counter() - t0, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "sim2real.json", result)
    write_text(out / "sim2real.md", markdown(result))
    figure(result, out / "sim2real_miou.png")
    if not args.quick or (Path(args.real) / "images").is_dir():
        sheet(test_ph, test_masks, boxes, samples, out / "sim2real_sheet.png")
    tmp.cleanup()
    return headline(result)


def _fmt_change(ch: object, digits: int = 3) -> str:
    if not isinstance(ch, list | tuple) or len(ch) != 3:
        return ""
    d, lo, hi = ch
    return f"{d:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def markdown(r: dict[str, Any]) -> str:
    st = r["settings"]
    lines = [
        f"# sim2real (`{r['command']}`)", "",
        f"{r['n_test']} test photos (eye found in {r['eye_found']}), canonical crops {st['size'][0]}×{st['size'][1]}; "
        f"segmenters {st['seg_steps']} steps, purifiers trained here {st['pur_steps']} / {st.get('pur_steps_long')} steps, "
        f"SimGAN {st.get('simgan_steps')} steps; {r['seconds']} s.", "",
        "| block | row | iris IoU | pupil IoU | mIoU | Δ mIoU vs raw [95% CI] | pupil err. median % | Δ median | no eye |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        sc, vs = row["scores"], row.get("vs_raw", {})
        lines.append(
            f"| {row['block']} | {row['name']} | {sc['iou']['iris']:.3f} | {sc['iou']['pupil']:.3f} | {sc['miou_iris_pupil']:.3f} | "
            f"{_fmt_change(vs.get('miou'))} | {_num(sc.get('pupil_error_pct_median'))} | {_fmt_change(vs.get('err_pct_median'), 2)} | "
            f"{_num(sc.get('no_eye_share'))} |"
        )
    dom = r.get("domain")
    if dom:
        lines += ["", f"## {dom['pair']}", "",
                  f"{dom['n_real']} patches vs {dom['n_synth']} renders; {dom['note']}; lite0 features, PCA-{dom['pca_dims']}; "
                  f"noise floor (FD between halves of the renders) {dom['noise_floor']['fd_synth_halves']:.2f}.", "",
                  "| method | FD ↓ | real-vs-synthetic accuracy (0.5 best) | mean change from raw (0–255) |", "|---|---|---|---|"]
        for row in dom["rows"]:
            lines.append(f"| {row['method']} | {row['fd']:.2f} | {row['accuracy']:.3f} | {row['change_from_raw']:.1f} |")
    return "\n".join(lines) + "\n"


def _num(v: object) -> str:
    return f"{v:.2f}" if isinstance(v, int | float) else ""


def headline(r: dict[str, Any]) -> str:
    rows = r["rows"]
    def find(block_start: str, name: str) -> dict[str, Any] | None:
        return next((x for x in rows if str(x["block"]).startswith(block_start) and x["name"] == name), None)
    parts = []
    for src in ("UnityEyes", "renders"):
        raw = find(f"{src} segmenter (a", "raw")
        if raw is None:
            continue
        best = max((x for x in rows if str(x["block"]).startswith(f"{src} segmenter (a") and x["name"] != "raw" and "subset" not in x),
                   key=lambda x: x["scores"]["miou_iris_pupil"])
        parts.append(f"{src}-only segmenter mIoU raw {raw['scores']['miou_iris_pupil']:.3f} -> {best['name']} {best['scores']['miou_iris_pupil']:.3f}")
    a, b = find("shipped", "raw"), find("shipped", "purified: ours as shipped")
    parts.append(f"shipped defaults raw {a['scores']['miou_iris_pupil']:.3f} -> purified {b['scores']['miou_iris_pupil']:.3f}")  # type: ignore[index]
    return "sim2real: " + "; ".join(parts)


def figure(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = r["rows"]
    blocks = list(dict.fromkeys(x["block"] for x in rows))
    fig, axes = plt.subplots(len(blocks), 1, figsize=(8, 1.2 + 0.45 * len(rows)), squeeze=False)
    for ax, block in zip(axes[:, 0], blocks, strict=True):
        br = [x for x in rows if x["block"] == block]
        y = np.arange(len(br))
        v = [x["scores"]["miou_iris_pupil"] for x in br]
        err = [[0, 0] if "vs_raw" not in x else [x["vs_raw"]["miou"][0] - x["vs_raw"]["miou"][1], x["vs_raw"]["miou"][2] - x["vs_raw"]["miou"][0]] for x in br]
        ax.barh(y, v, xerr=np.array(err).T, color=["#888" if x["name"] == "raw" else "#3a7" for x in br], capsize=3)
        ax.set_yticks(y, [x["name"] for x in br], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(block, fontsize=9)
        ax.set_xlim(0, max(0.6, max(v) * 1.15))
    axes[-1, 0].set_xlabel("mIoU (iris, pupil) on real test photos; bars: 95% CI of the change vs raw")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sheet(photos: list[np.ndarray], masks: list[np.ndarray], boxes: list[Box], samples: dict[str, list[np.ndarray]], path: Path, n: int = 6) -> None:
    """Rows: test photos; columns: the photo's canonical crop, its true mask (crop), each transform."""
    from eyepurify.labels import colorize

    idx = np.linspace(0, len(photos) - 1, min(n, len(photos))).astype(int)
    rows = []
    for i in idx:
        cells = [colorize(crop_labels(masks[i], boxes[i], samples["photo crop"][i].shape[:2]))] + [v[i] for v in samples.values()]
        rows.append(np.concatenate([resize_image(c, (144, 240)) for c in cells], 1))
    write_image(path, np.concatenate(rows, 0))

