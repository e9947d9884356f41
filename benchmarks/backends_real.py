"""Real-photo quality of each inference backend (and model pair): `bench sim2real`'s
"ours as shipped" rows, re-run per backend side by side.

The research-only held-out photos (`--real`, the same seeded half `bench sim2real` tests on)
are purified by each row's whole path (its purifier *and* its segmenter on that backend),
then scored by fixed fp32 instruments: the shipped segmenter on the whole photos (the CLI's
`purify` then `segment`), and the renders-only / UnityEyes-only segmenters of `bench sim2real`
(cached in `runs/sim2real_cache`) on the canonical eye crops. Changes are paired bootstraps
against the eager fp32 row on the same photos.

    python benchmarks/backends_real.py --out benchmarks/results/backends_real \
        [--pair fast=src/eyepurify/weights/purifier_fast.safetensors,src/eyepurify/weights/segmenter_fast.safetensors]

Writes backends_real.json and backends_real.md (numbers only; no photo leaves the data folder).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from eyepurify.bench.pupil import DEFAULT_REAL
from eyepurify.bench.segmentation import changes_vs, load_photos, score, split_real
from eyepurify.bench.sim2real import paste_all
from eyepurify.eyescale import EyeScale, crop
from eyepurify.purify import Purifier
from eyepurify.segment import Segmenter


def _downstream(models_json: Path) -> dict[str, Path]:
    """The `bench sim2real` segmenters without augmentation (renders, UnityEyes), by name."""
    models = json.loads(models_json.read_text())["models"]
    want = {"renders-only segmenter": "renders segmenter (a, augment none)",
            "UnityEyes-only segmenter": "UnityEyes segmenter (a, augment none)"}
    return {k: Path(models[v]["path"]) for k, v in want.items() if v in models and Path(models[v]["path"]).is_file()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--real", default=DEFAULT_REAL)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--backends", default="eager,onnx,int8")
    p.add_argument("--pair", action="append", default=[], metavar="NAME=PURIFIER,SEGMENTER",
                   help="another model pair to run on every backend")
    p.add_argument("--sim2real", type=Path, default=Path("benchmarks/results/sim2real/sim2real.json"))
    p.add_argument("--test-fraction", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-boot", type=int, default=2000)
    a = p.parse_args()
    from eyepurify.backends import accelerate

    real = Path(a.real)
    if not (real / "images").is_dir():
        sys.exit(f"{real}: research-only photos not found (see ../shared/data/README); nothing measured")
    t0 = time.perf_counter()
    _, photos, masks = load_photos(real)
    test, _ = split_real(len(photos), a.test_fraction, a.seed)
    test_ph, test_masks = [photos[i] for i in test], [masks[i] for i in test]
    shapes = [m.shape for m in test_masks]
    scorer = Segmenter.from_pretrained()
    scale = EyeScale.for_renders((72, 120))
    boxes = [b for b, _ in scorer.locate(test_ph, scale)]
    crops = [crop(im, b, scale.size) for im, b in zip(test_ph, boxes, strict=True)]
    downstream = {k: Segmenter.from_checkpoint(v, eye_scale=False, orphan_fix=False) for k, v in _downstream(a.sim2real).items()}
    pairs: dict[str, tuple[str | None, str]] = {"shipped": (None, "default")}
    for spec in a.pair:
        name, files = spec.split("=", 1)
        pur, seg = files.split(",")
        pairs[name] = (pur, seg)

    rows, base = [], {}
    for pair, (pur_file, seg_file) in pairs.items():
        for backend in a.backends.split(","):
            seg = Segmenter.from_pretrained(None if seg_file == "default" else seg_file)
            pur = Purifier.from_pretrained(pur_file, segmenter=seg)
            used = accelerate(pur, backend)
            t = time.perf_counter()
            whole = pur.purify_arrays(test_ph)
            purified_crops = pur.purify_arrays(crops, seg.predict(crops))
            secs = time.perf_counter() - t
            scored = {"whole photos, shipped segmenter": score(scorer.predict(whole), test_masks)}
            for k, d in downstream.items():
                scored[f"eye crops, {k}"] = score(paste_all(shapes, d.predict(purified_crops), boxes), test_masks)
            for instrument, sc in scored.items():
                row = {"pair": pair, "backend": used, "instrument": instrument,
                       "miou_iris_pupil": sc.summary["miou_iris_pupil"], "seconds": secs}
                if instrument in base:
                    d, lo, hi = changes_vs(base[instrument], sc, a.n_boot, a.seed)["miou"]  # type: ignore[misc]
                    row["vs_eager_shipped"] = {"delta": d, "lo": lo, "hi": hi}
                else:
                    base[instrument] = sc
                rows.append(row)
                print(f"{pair} {used} | {instrument}: {row['miou_iris_pupil']:.3f}", file=sys.stderr)
    res = {"n_photos": len(test_ph), "rows": rows, "seconds": time.perf_counter() - t0}
    lines = [f"mIoU (iris, pupil) of {len(test_ph)} held-out real photos; Δ vs the shipped pair on eager fp32 "
             "(paired bootstrap, 95 %).", "", "| pair | backend | instrument | mIoU | Δ [95 %] |", "|---|---|---|---|---|"]
    for r in rows:
        d = r.get("vs_eager_shipped")
        ch = "—" if d is None else f"{d['delta']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"
        lines.append(f"| {r['pair']} | {r['backend']} | {r['instrument']} | {r['miou_iris_pupil']:.3f} | {ch} |")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "backends_real.json").write_text(json.dumps(res, indent=2, default=float) + "\n")
    (a.out / "backends_real.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
