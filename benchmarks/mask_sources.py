"""Where is the vertical gaze cue lost? One purifier fed different masks, judged by gaze CNNs.

    python benchmarks/mask_sources.py --model FILE [--model-nomask FILE] --judges J1 J2 J3 --out DIR

A purifier that reads label maps redraws the eye that its mask describes. On Columbia patches
(no true masks) and on held-out wild renders (true masks) the same network is given: the
true label maps (renders only), the shipped segmenter's arg-max labels ("predicted"), its
class probabilities ("soft", the one-hot channels replaced by probabilities) and no
information (every channel zero: "none"); a network trained without a mask input is a row of
its own. Judges: gaze CNNs trained on indoor renders only (``train-gaze``), mean angular
error and the ordering ρ (Spearman of the predicted pitch with the true vertical target
within person/pose/horizontal/eye groups on Columbia; within the test renders the Pearson
correlation of predicted and true pitch). Writes ``mask_sources.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _probs(seg, images: list[np.ndarray]) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """N×4×H×W class probabilities of the shipped segmenter on same-size patches (its trained size, resized back)."""
    import torch.nn.functional as F

    from eyepurify.imaging import resize_image
    from eyepurify.tensors import images_to_tensor

    h, w = images[0].shape[:2]
    size = seg.size or (h, w)
    x = images_to_tensor([resize_image(im, size) for im in images])
    with torch.inference_mode():
        logits = seg.model(x)
    return F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False).softmax(1)


def purify_with(pur, images: list[np.ndarray], masks: torch.Tensor | None) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    """Patches (at the network's size) through its network with the given N×4×H×W mask channels."""
    from eyepurify.imaging import resize_image
    from eyepurify.tensors import images_to_tensor, tensor_to_images

    size = pur.scale.size
    x = images_to_tensor([resize_image(im, size) for im in images])
    if masks is not None and tuple(masks.shape[-2:]) != tuple(size):
        masks = torch.nn.functional.interpolate(masks, size=size, mode="bilinear", align_corners=False)
    with torch.inference_mode():
        y = pur.net(x, masks)
    return [resize_image(im, images[0].shape[:2]) for im in tensor_to_images(y)]


def main() -> None:
    from eyepurify.data.columbia import ColumbiaGaze
    from eyepurify.data.render_folder import load_pairs
    from eyepurify.gaze.cnn import CNNEstimator
    from eyepurify.gaze.features import to_gray
    from eyepurify.gaze.geometry import angular_error, vector_to_pitchyaw
    from eyepurify.gaze.metrics import ordering_spearman
    from eyepurify.imaging import resize_image
    from eyepurify.purify import Purifier
    from eyepurify.segment import Segmenter
    from eyepurify.tensors import labels_to_tensor, one_hot

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a purifier that reads masks")
    ap.add_argument("--model-nomask", default=None, help="a purifier without a mask input (its own row)")
    ap.add_argument("--judges", nargs="+", required=True)
    ap.add_argument("--columbia", default="../shared/data/columbia_gaze")
    ap.add_argument("--renders", default="runs/data/test36", help="paired held-out renders with gaze")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    pur = Purifier.from_pretrained(args.model)
    size = pur.scale.size
    seg = Segmenter.from_pretrained()
    judges = [CNNEstimator.load(j) for j in args.judges]
    nomask = Purifier.from_pretrained(args.model_nomask) if args.model_nomask else None

    def judge(images: list[np.ndarray], py: np.ndarray, groups: list | None) -> dict[str, float]:
        gray = to_gray([resize_image(im, (36, 60)) for im in images])
        errs, rhos = [], []
        for j in judges:
            pred = j.predict(gray)
            errs.append(float(angular_error(pred, py).mean()))
            if groups is not None:
                rhos.append(ordering_spearman(pred[:, 0], py[:, 0], groups)[0])
            else:
                rhos.append(float(np.corrcoef(pred[:, 0], py[:, 0])[0, 1]))
        return {"error": float(np.mean(errs)), "rho_pitch": float(np.mean(rhos))}

    result: dict[str, dict[str, dict[str, float]]] = {}
    # held-out wild renders: true masks exist
    pairs = load_pairs(args.renders, size)
    wild = list(pairs.wild)
    py_r = vector_to_pitchyaw(pairs.gaze)  # type: ignore[arg-type]
    sets = {"renders": (wild, py_r, None, labels_to_tensor(list(pairs.labels)))}
    # Columbia: the test people of bench gaze
    ds = ColumbiaGaze(Path(args.columbia), crop=size)
    rng = np.random.default_rng([args.seed, 3])
    keep = sorted(rng.permutation(len(ds))[: args.n].tolist())
    ims = [ds[i].image for i in keep]
    lab = [ds.entries[i] for i in keep]
    py_c = np.array([e.gaze_pitchyaw() for e in lab])
    groups = [(e.subject, e.head_pose_deg, e.gaze_h_deg, e.eye) for e in lab]
    sets["columbia"] = (ims, py_c, groups, None)
    for name, (images, py, grp, true) in sets.items():
        rows: dict[str, dict[str, float]] = {"raw": judge(images, py, grp)}
        pred = labels_to_tensor(list(seg(images)))
        variants = {"predicted": one_hot(pred), "soft": _probs(seg, images), "none (all channels 0)": torch.zeros(len(images), 4, *images[0].shape[:2])}
        if true is not None:
            variants = {"true": one_hot(true), **variants}
        for v, masks in variants.items():
            rows[f"mask input: {v}"] = judge(purify_with(pur, images, masks), py, grp)
        if nomask is not None:
            rows["network without mask input"] = judge(purify_with(nomask, images, None), py, grp)
        result[name] = rows
        print(name, json.dumps(rows, indent=1), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "mask_sources.json").write_text(json.dumps({"command": "python " + " ".join(sys.argv), **result}, indent=1))
    lines = [f"# Mask sources (`python {' '.join(sys.argv)}`)", "",
             "| set | row | gaze CNN error ° (mean of judges) | ρ pitch |", "|---|---|---|---|"]
    for name, rows in result.items():
        for r, v in rows.items():
            lines.append(f"| {name} | {r} | {v['error']:.2f} | {v['rho_pitch']:.3f} |")
    (out / "mask_sources.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
