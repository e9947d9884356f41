"""Iris/pupil segmentation of real eye photos: raw vs purified vs strong augmentation (issue 6).

Protocol (``eyepurify bench pupil --out DIR``):

* Real photos (``--real``, images/ + masks/) are split once with ``--seed`` into a *test*
  part (every row is scored on it) and a *train* part (``--test-fraction`` of the photos go
  to test, the rest to train). The train part is used only by the real-trained ceiling
  segmenter and, as unlabelled photos with *predicted* masks, by the purifiers. Its ground
  truth never reaches the synthetic-trained rows.
* Everything runs at one working size (``--size``, H×W, default 96×128: the photos' 4:3
  aspect). Segmenters are trained at it; a photo is area-resized to it, transformed there,
  segmented, and the logits resized (bilinear) to the photo's resolution, where the arg-max
  (no orphan fix) is scored against the mask.
* Per synthetic source (``--synthetic``: UnityEyes-like folder; ``--renders N``: N indoor
  renders of the project's renderer, eye width scaled to the photos'), segmenter (a) is
  trained without photometric augmentation and (b) with ``augment="strong"``. Rows: raw,
  histogram matching and Reinhard to the source's statistics, purified by ours and by
  Johnson (trained with STYLE = the source, CONTENT = the real train part with masks
  predicted by (a)), masked L-BFGS optimisation on ``--optimize-n`` test photos (beside the
  raw row on the same subset), (b) on raw photos, and the ceiling (trained on the real train
  part). Purifiers get (a)'s masks (orphan fix on) of the raw test photo.
* Columns (definitions in :mod:`eyepurify.bench.segmentation`): pooled iris / pupil IoU,
  their mean, pupil-centre error (% of width) over test masks with a pupil, no-eye share;
  paired bootstrap 95 % intervals (:mod:`eyepurify.bench.stats`) of each change against raw.
* Ground-truth preservation: shift of the :func:`eyepurify.labels.fit_pupil` centre of (a)'s
  prediction between the raw and the transformed working-size photo, in px and as a fraction
  of the true eye width (columns spanned by the mask's eye) at the working size.

Trained models are cached in ``--cache`` under a hash of their settings and data.
Outputs: ``pupil.json``, ``pupil.md``, ``pupil_miou.png``, ``pupil_shift.png`` (plots only).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eyepurify.bench import command_line
from eyepurify.bench.classical import histogram_match, reference_stats, reinhard
from eyepurify.bench.models import OpenTrainer, Trainer
from eyepurify.bench.segmentation import (
    Scored,
    centre_shifts,
    changes_vs,
    eye_width,
    load_photos,
    score,
    split_real,
)
from eyepurify.data.labelled import ArrayDataset
from eyepurify.data.render_folder import RENDER_EYE_SCALE, write_renders, write_wild_fixture
from eyepurify.errors import DataError
from eyepurify.imaging import parse_size, resize_images, resize_labels
from eyepurify.io import write_json, write_text
from eyepurify.labels import orphan_fix
from eyepurify.models.segmentation import predict_labels
from eyepurify.optimize import optimise_images
from eyepurify.sample import PUPIL

Size = tuple[int, int]
DEFAULT_SYNTHETIC = "../shared/data/unityeyes_seg"
DEFAULT_REAL = "../shared/data/real_eyes_seg"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--synthetic", default=DEFAULT_SYNTHETIC, help="labelled synthetic folder (images/ + masks/), e.g. UnityEyes")
    p.add_argument("--renders", type=int, default=800, help="indoor renders as a second synthetic source (0: skip it)")
    p.add_argument("--real", default=DEFAULT_REAL, help="labelled real photos (images/ + masks/)")
    p.add_argument("--size", default="96x128", help="working size HxW (segmenters, purifiers, transforms)")
    p.add_argument("--seed", type=int, default=0, help="seed of the real split, renders, training and bootstrap")
    p.add_argument("--test-fraction", type=float, default=0.5, help="share of the real photos in the test part")
    p.add_argument("--limit", type=int, default=None, help="use only the first N real photos (checks)")
    p.add_argument("--seg-steps", type=int, default=400)
    p.add_argument("--seg-batch", type=int, default=8)
    p.add_argument("--seg-model", default="default", help="segmentation network preset")
    p.add_argument("--pur-steps", type=int, default=300)
    p.add_argument("--pur-batch", type=int, default=4)
    p.add_argument("--backbone", default="lite0", help="loss network of the purifiers and the optimisation")
    p.add_argument("--optimize-n", type=int, default=6, help="test photos for the masked L-BFGS row (0: skip)")
    p.add_argument("--optimize-iters", type=int, default=20)
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--cache", default=None, help="trained-model cache (default runs/pupil_cache; --quick: a temp folder)")


# ---------------------------------------------------------------- prediction


def predict(net: torch.nn.Module, small: Sequence[np.ndarray], out_shape: Size) -> list[np.ndarray]:
    """Arg-max H×W uint8 label maps at ``out_shape`` of same-size working images
    (:func:`eyepurify.models.segmentation.predict_labels`, logits resized bilinearly)."""
    with torch.inference_mode():
        return predict_labels(net, list(small), out_shape=out_shape, batch=16)


# ---------------------------------------------------------------- one source block


def run_source(
    source: str,
    folder: Path,
    real: dict[str, Any],
    ceiling_net: torch.nn.Module,
    args: argparse.Namespace,
    s: dict[str, Any],
    trainer: Trainer,
) -> dict[str, Any]:
    """All rows of one synthetic source (a block of the table)."""
    from eyepurify.data import open_dataset
    from eyepurify.models.backbones import create_backbone
    from eyepurify.purify import Purifier
    from eyepurify.segment import load_segmentation_net

    size: Size = s["size"]
    seeds = args.seed
    source_ds = open_dataset(folder)
    models: dict[str, Any] = {}
    nets = {}
    for tag, augment in (("a", "none"), ("b", "strong")):
        cfg = {"steps": s["seg_steps"], "batch": s["seg_batch"], "size": size, "seed": seeds, "augment": augment,
               "model": s["seg_model"]}
        path, reused = trainer.segmenter(f"{source}_{tag}", cfg, [source_ds])
        nets[tag], meta = load_segmentation_net(path)
        models[f"segmenter ({tag})"] = {"path": str(path), "reused": reused, "augment": augment,
                                        "val_miou_synthetic": meta.get("val_miou"), "config": {**cfg, "data": [str(folder)]}}

    test_small: list[np.ndarray] = real["test_small"]
    masks: list[np.ndarray] = real["test_masks"]
    full: Size = real["full"]
    lab_a = [orphan_fix(q) for q in predict(nets["a"], test_small, size)]  # purifier / optimisation masks

    _, syn_images, syn_masks = load_photos(folder, limit=None)
    syn_small = resize_images(syn_images[:200], size)
    ref = reference_stats(syn_small)

    # purifiers: style = the source, content = real train photos + masks predicted by (a)
    train_small: list[np.ndarray] = real["train_small"]
    train_lab = [orphan_fix(q) for q in predict(nets["a"], train_small, size)]
    content = ArrayDataset(train_small, train_lab, [f"c{i:04d}" for i in range(len(train_small))])
    purifiers: dict[str, Purifier] = {}
    for method, net in (("ours", s["pur_net"]), ("johnson", s["johnson_net"])):
        pcfg = {"method": method, "net": net, "backbone": args.backbone, "size": size, "batch": s["pur_batch"],
                "steps": s["pur_steps"], "seed": seeds, "style_limit": 16, "val_every": s["pur_steps"],
                "sample_every": s["pur_steps"], "checkpoint_every": max(100, s["pur_steps"])}
        path, reused = trainer.purifier(f"{source}_{method}", pcfg, content, [folder])
        purifiers[method] = Purifier.from_pretrained(path, segmenter=None)
        models[f"purifier {method}"] = {"path": str(path), "reused": reused,
                                        "config": {**pcfg, "style": [str(folder)], "content": "real train part, masks by (a)"}}

    transforms: dict[str, Callable[[list[np.ndarray]], list[np.ndarray]]] = {
        "histogram matching": lambda ims: [histogram_match(im, ref) for im in ims],
        "Reinhard": lambda ims: [reinhard(im, ref) for im in ims],
        "purified: ours": lambda ims: purifiers["ours"].purify_arrays(ims, lab_a),
        "purified: Johnson": lambda ims: purifiers["johnson"].purify_arrays(ims, None),
    }
    widths = [eye_width(m) * size[1] / m.shape[1] for m in masks]
    rows: list[dict[str, Any]] = []
    base = score(predict(nets["a"], test_small, full), masks)

    def add(name: str, segmenter: str, sc: Scored, vs: Scored | None, note: str = "", **extra: object) -> None:
        row: dict[str, Any] = {"name": name, "segmenter": segmenter, "note": note, "scores": sc.summary, **extra}
        if vs is not None:
            row["vs_raw"] = changes_vs(vs, sc, args.n_boot, seeds)
        rows.append(row)

    add("raw", "a", base, None)
    shifts: dict[str, Any] = {}
    for name, fn in transforms.items():
        changed = fn(test_small)
        add(name, "a", score(predict(nets["a"], changed, full), masks), base)
        shifts[name] = centre_shifts(lab_a, [orphan_fix(q) for q in predict(nets["a"], changed, size)], widths)
    add("strong augmentation (domain randomisation), raw photos", "b", score(predict(nets["b"], test_small, full), masks), base)
    add("real-trained ceiling, raw photos", "ceiling", score(predict(ceiling_net, test_small, full), masks), base,
        note="trained on the real train part")
    n_opt = min(s["optimize_n"], len(test_small))
    if n_opt > 0:
        pick = np.linspace(0, len(test_small) - 1, n_opt).round().astype(int)
        sub_small, sub_masks = [test_small[i] for i in pick], [masks[i] for i in pick]
        style_small = resize_images([syn_images[0]], size)[0]
        style_lab = resize_labels(syn_masks[0], size)
        backbone = create_backbone(args.backbone)
        opt = optimise_images(sub_small, [lab_a[i] for i in pick], style_small, style_lab, backbone, s["optimize_iters"])
        sub_base = score(predict(nets["a"], sub_small, full), sub_masks)
        name = f"masked optimisation ({args.backbone}, {s['optimize_iters']} it)"
        add(f"raw (optimisation subset, {n_opt} photos)", "a", sub_base, None, subset=pick.tolist())
        add(name, "a", score(predict(nets["a"], opt, full), sub_masks), sub_base, note="vs raw on the same subset",
            subset=pick.tolist())
        shifts[name] = centre_shifts([lab_a[i] for i in pick], [orphan_fix(q) for q in predict(nets["a"], opt, size)],
                                     [widths[i] for i in pick])
    return {"source": source, "folder": str(folder), "n_synthetic": len(source_ds), "models": models,
            "rows": rows, "centre_shift": shifts}


# ---------------------------------------------------------------- report


def _f(v: object, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def _ci(t: Any, digits: int = 3) -> str:
    if not t:
        return "–"
    d, lo, hi = t
    return f"{d:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def block_table(block: dict[str, Any]) -> list[str]:
    """Markdown lines of one source's rows."""
    lines = [
        "| row | seg | iris IoU | pupil IoU | mIoU | Δ mIoU [95 % CI] | pupil err % (mean / median) | Δ mean | Δ median | no eye |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in block["rows"]:
        sc, vs = r["scores"], r.get("vs_raw", {})
        lines.append(
            f"| {r['name']} | {r['segmenter']} | {_f(sc['iou']['iris'])} | {_f(sc['iou']['pupil'])} | "
            f"**{_f(sc['miou_iris_pupil'])}** | {_ci(vs.get('miou'))} | {_f(sc['pupil_error_pct_mean'], 1)} / "
            f"{_f(sc['pupil_error_pct_median'], 1)} | {_ci(vs.get('err_pct_mean'), 1)} | "
            f"{_ci(vs.get('err_pct_median'), 1)} | {100 * sc['no_eye_share']:.1f} % |"
        )
    return lines


def markdown(result: dict[str, Any]) -> str:
    """pupil.md: one table per synthetic source, the centre-shift table, settings."""
    st = result["settings"]
    size = st["size"]
    lines = [
        "# Iris/pupil segmentation of real photos: raw vs purified vs strong augmentation",
        "",
        f"Real test part: {result['n_test']} photos ({result['n_test_pupil']} with a pupil in the mask; pupil errors over "
        f"those), seed-split from {result['n_real']} (train part {result['n_train']}: ceiling segmenter and purifier content "
        f"only). Working size {size[0]}×{size[1]}; arg-max scored at the photo's resolution, IoU pooled; pupil error in % of "
        "width (mean / median); Δ = change vs raw with paired bootstrap 95 % interval "
        f"({st['n_boot']} draws; error changes over photos measured in both rows).",
        "",
    ]
    for block in result["blocks"]:
        a = block["models"]["segmenter (a)"]
        lines += [
            f"## Synthetic source: {block['source']} ({block['n_synthetic']} images; segmenter (a) synthetic val mIoU "
            f"{_f(a['val_miou_synthetic'])})",
            "",
            *block_table(block),
        ]
        lines += ["", "Pupil-centre shift raw → transformed (fit_pupil of segmenter (a)'s label map, working size; "
                  "paper: 0.8 ± 1.1 px at eye width 55 px):", "",
                  "| transform | n | shift px (mean ± std) | median px | fraction of eye width (mean ± std) | eye width px |",
                  "|---|---|---|---|---|---|"]
        for name, c in block["centre_shift"].items():
            lines.append(f"| {name} | {c['n']}/{c['n_total']} | {_f(c['px_mean'], 2)} ± {_f(c['px_std'], 2)} | "
                         f"{_f(c['px_median'], 2)} | {_f(c['frac_mean'], 3)} ± {_f(c['frac_std'], 3)} | {_f(c['eye_width_mean'], 1)} |")
        lines.append("")
    lines += ["Segmenters: a = synthetic, no photometric augmentation; b = synthetic, strong augmentation; ceiling = "
              "the real train part (same ceiling in every block).", "",
              f"Settings: `{json.dumps(st)}`", "", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def figures(result: dict[str, Any], out: Path) -> None:
    """pupil_miou.png (mIoU per row with the 95 % interval of the change) and pupil_shift.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = result["blocks"]
    fig, axes = plt.subplots(1, len(blocks), figsize=(6.5 * len(blocks), 4.2), squeeze=False)
    for ax, block in zip(axes[0], blocks, strict=True):
        rows = [r for r in block["rows"] if "subset" not in r]
        raw = rows[0]["scores"]["miou_iris_pupil"]
        vals = [r["scores"]["miou_iris_pupil"] or 0.0 for r in rows]
        err = np.array([[raw + r["vs_raw"]["miou"][0] - (raw + r["vs_raw"]["miou"][1]),
                         raw + r["vs_raw"]["miou"][2] - (raw + r["vs_raw"]["miou"][0])] if "vs_raw" in r else [0, 0]
                        for r in rows]).T
        ax.barh(range(len(rows)), vals, xerr=err, color="#4c72b0", capsize=3)
        ax.set_yticks(range(len(rows)), [r["name"].split(",")[0] for r in rows], fontsize=8)
        ax.axvline(raw, color="k", lw=0.8, ls="--")
        ax.invert_yaxis()
        ax.set_xlabel("mIoU (iris, pupil) on real test photos")
        ax.set_title(f"source: {block['source']}")
    fig.tight_layout()
    fig.savefig(out / "pupil_miou.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(blocks), figsize=(6 * len(blocks), 3.6), squeeze=False)
    for ax, block in zip(axes[0], blocks, strict=True):
        for name in ("purified: ours", "purified: Johnson", "Reinhard"):
            px = block["centre_shift"].get(name, {}).get("px", [])
            if px:
                ax.hist(np.clip(px, 0, 20), bins=np.arange(0, 20.5, 0.5), histtype="step", lw=1.5,
                        label=f"{name} (mean {np.mean(px):.2f} px)")
        ax.set_xlabel("pupil-centre shift raw → transformed (px at working size, clipped at 20)")
        ax.set_ylabel("photos")
        ax.set_title(f"source: {block['source']}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "pupil_shift.png", dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- entry point


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        return {"size": (24, 32), "seg_steps": 12, "seg_batch": 4, "seg_model": "test_tiny", "pur_steps": 3, "pur_batch": 2,
                "pur_net": "test_tiny", "johnson_net": "test_tiny_johnson", "optimize_n": min(1, args.optimize_n),
                "optimize_iters": 2, "n_boot": 200, "renders": min(args.renders, 12) if args.renders else 0}
    return {"size": parse_size(args.size, lo=8), "seg_steps": args.seg_steps, "seg_batch": args.seg_batch, "seg_model": args.seg_model,
            "pur_steps": args.pur_steps, "pur_batch": args.pur_batch, "pur_net": "small", "johnson_net": "johnson_small",
            "optimize_n": args.optimize_n, "optimize_iters": args.optimize_iters, "n_boot": args.n_boot, "renders": args.renders}


#: this benchmark asks for trained models (``eyepurify bench`` hands :func:`run` a trainer)
TRAINS = True


def run(args: argparse.Namespace, open_trainer: OpenTrainer) -> str:
    start = time.perf_counter()
    if args.quick:
        args.backbone = "test_tiny"
    torch.set_num_threads(max(1, args.threads))
    s = _settings(args)
    args.n_boot = s["n_boot"]
    size: Size = s["size"]
    temp = tempfile.TemporaryDirectory(prefix="pupil_quick_") if args.quick else None
    try:
        cache = Path(args.cache) if args.cache else Path(temp.name) / "cache" if temp else Path("runs/pupil_cache")
        synthetic, real_dir = Path(args.synthetic), Path(args.real)
        for what, path, default in (("--synthetic", synthetic, DEFAULT_SYNTHETIC), ("--real", real_dir, DEFAULT_REAL)):
            if not path.is_dir():
                if temp is None or str(path) != default:
                    raise DataError(path, f"{what} folder not found", f"pass {what} DIR (a folder with images/ and masks/)")
        if temp is not None and not synthetic.is_dir():  # --quick without shared data: tiny renders stand in
            synthetic = write_renders(Path(temp.name) / "synthetic", 12, (36, 48), args.seed + 100)
        if temp is not None and not real_dir.is_dir():
            real_dir = write_wild_fixture(Path(temp.name) / "real", 12, (48, 64), args.seed + 200)
        limit = args.limit if args.limit else (16 if args.quick else None)
        stems, images, masks = load_photos(real_dir, limit)
        test_idx, train_idx = split_real(len(stems), args.test_fraction, args.seed)
        assert not set(test_idx.tolist()) & set(train_idx.tolist())
        full_shapes = {m.shape for m in masks}
        if len(full_shapes) != 1:
            raise DataError(real_dir, f"photos come in several sizes {sorted(full_shapes)}", "use photos of one size")
        full = next(iter(full_shapes))
        real = {
            "full": full,
            "test_small": resize_images([images[i] for i in test_idx], size), "test_masks": [masks[i] for i in test_idx],
            "train_small": resize_images([images[i] for i in train_idx], size),
        }
        test_masks: list[np.ndarray] = real["test_masks"]  # type: ignore[assignment]

        from eyepurify.segment import load_segmentation_net

        trainer = open_trainer(cache, False if args.quick else None)
        ceil_cfg = {"steps": s["seg_steps"], "batch": s["seg_batch"], "size": size, "seed": args.seed,
                    "augment": "strong", "model": s["seg_model"]}
        ceil_ds = ArrayDataset([images[i] for i in train_idx], [masks[i] for i in train_idx], [stems[i] for i in train_idx])
        ceil_path, ceil_reused = trainer.segmenter("real_ceiling", ceil_cfg, [ceil_ds])
        ceiling_net, ceil_meta = load_segmentation_net(ceil_path)
        del images

        sources: list[tuple[str, Path]] = [("UnityEyes" if synthetic.resolve() == Path(DEFAULT_SYNTHETIC).resolve() else synthetic.name, synthetic)]
        if s["renders"]:
            rfolder = cache / f"renders_n{s['renders']}_s{args.seed}_{size[0]}x{size[1]}"
            if not (rfolder / "masks").is_dir():
                write_renders(rfolder, s["renders"], size, args.seed)
            sources.append(("renderer", rfolder))
        blocks = [run_source(name, folder, real, ceiling_net, args, s, trainer) for name, folder in sources]

        n_test_pupil = sum(bool((m == PUPIL).any()) for m in test_masks)
        settings = {**s, "size": list(size), "seed": args.seed, "test_fraction": args.test_fraction, "backbone": args.backbone,
                    "threads": args.threads, "cache": str(cache), "scoring": "arg-max at photo resolution, no orphan fix",
                    "purifier_masks": "segmenter (a), orphan fix, working size", "style_limit": 16,
                    "render_eye_scale": RENDER_EYE_SCALE if s["renders"] else None}
        result: dict[str, Any] = {
            "command": command_line("pupil", args), "settings": settings, "real": str(real_dir), "synthetic": str(synthetic),
            "n_real": len(stems), "n_test": len(test_idx), "n_train": len(train_idx), "n_test_pupil": n_test_pupil,
            "full_size": list(full), "test_stems": [stems[i] for i in test_idx], "train_stems": [stems[i] for i in train_idx],
            "ceiling": {"path": str(ceil_path), "reused": ceil_reused, "val_miou_real_train_val": ceil_meta.get("val_miou"),
                        "config": {**ceil_cfg, "size": list(size), "data": []}},  # the in-memory train part
            "blocks": blocks, "note": "derived numbers only; no real photo is written by this benchmark",
        }
        result["seconds"] = round(time.perf_counter() - start, 1)
        out = Path(args.out)
        write_json(out / "pupil.json", result)
        write_text(out / "pupil.md", markdown(result))
        figures(result, out)
    finally:
        if temp is not None:
            temp.cleanup()
    b = blocks[0]
    by = {r["name"]: r for r in b["rows"]}
    raw = by["raw"]["scores"]["miou_iris_pupil"]
    ours = by["purified: ours"]
    strong = by["strong augmentation (domain randomisation), raw photos"]
    return ("\n".join(block_table(b)) + "\n\n"
            f"pupil ({b['source']} segmenter, {len(test_idx)} real test photos): mIoU(iris, pupil) raw {_f(raw)}, "
            f"ours {_f(ours['scores']['miou_iris_pupil'])} (Δ {_ci(ours['vs_raw']['miou'])}), strong augmentation "
            f"{_f(strong['scores']['miou_iris_pupil'])} (Δ {_ci(strong['vs_raw']['miou'])})")
