"""Gaze estimation on wild renders, raw vs purified (paper Tables 2–3 and the cumulative-error figure).

Protocol (default): five estimators (SVR, ALR, random forest, kNN, the paper's CNN) are
trained on ``indoor`` renders (render seed S+100) and tested on ``wild`` renders of other
draws (S+101; the shipped models were trained on seed-1 renders, hence the offset): raw, histogram-matched and Reinhard-transferred to the training set's statistics,
purified by ours (shipped weights, masks from the shipped segmenter) and by Johnson
(``--johnson``), and masked L-BFGS optimisation on a subset (CNN and kNN only, next to
the raw subset). The paired ``indoor`` renders of the test draws give the same-domain
floor. A CNN trained on SimGAN-refined indoor renders (SimGAN's real set: unlabelled wild
renders of seed S+102) is tested on the raw wild set. ``--train`` / ``--test`` replace the
render sets with labelled data sets read by the loaders (UnityEyes / SynthesEyes →
MPIIGaze, the paper's protocol). Purifiers run at ``--size`` (the size the shipped
models were trained at); estimators see the result in gray at 36×60.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eyepurify.bench import command_line
from eyepurify.bench.evaluate import CALIBRATION_SAMPLES, N_BOOT, mean_gaze_errors, purify_images
from eyepurify.bench.models import OpenTrainer, Trainer
from eyepurify.gaze.protocol import GAZE_SIZE, GazeSet, cdf_figure, evaluate_estimator, summarize

if TYPE_CHECKING:
    from eyepurify.gaze.cnn import CNNEstimator
    from eyepurify.models.simgan import Refiner

CLASSICAL = ("svr", "alr", "rf", "knn")
OPT_ESTIMATORS = ("cnn", "knn")  # the optimisation rows are too slow for more than a subset
#: render seeds start here: the shipped purifier, Johnson model and segmenter were trained on
#: renders of seed 1 (runs/data/train; seed 2 is its test set), so low seeds would test
#: the purifiers on their own training images
SEED_OFFSET = 100


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0,
                   help=f"seed S: training renders S+{SEED_OFFSET}, test renders S+{SEED_OFFSET + 1}, SimGAN's real "
                        f"set S+{SEED_OFFSET + 2}; also splits and training")
    p.add_argument("--n-train", type=int, default=3000, help="training images (renders, or a limit on --train)")
    p.add_argument("--n-test", type=int, default=500, help="test images (renders, or a limit on --test)")
    p.add_argument("--size", default="72x120", help="render / purification size HxW (estimators see 36x60 gray)")
    p.add_argument("--train", default=None, help="labelled synthetic training set (any loader format) instead of indoor renders")
    p.add_argument("--test", default=None, help="labelled real test set (e.g. MPIIGaze) instead of wild renders")
    p.add_argument("--estimators", nargs="+", default=["svr", "alr", "rf", "knn", "cnn"],
                   choices=["svr", "alr", "rf", "knn", "cnn"], help="estimators (columns)")
    p.add_argument("--purifier", default=None, help="our purifier model file (default: the shipped one; 'none' skips)")
    p.add_argument("--johnson", default=None, help="a Johnson purifier model file (adds its row)")
    p.add_argument("--compare", nargs="*", default=[], metavar="NAME=MODEL",
                   help="more purifiers, each a row 'purified (NAME)': v1, default, fast or a model file")
    p.add_argument("--cnn-seeds", type=int, default=1,
                   help="train the CNN this many times (seeds S, S+1, ...) and add a table of the mean over seeds, its "
                        "spread, paired changes, per-person calibrated error and the ordering measure")
    p.add_argument("--optimize-n", type=int, default=20, help="test images for the masked optimisation rows (0 skips)")
    p.add_argument("--optimize-iters", type=int, default=100, help="L-BFGS iterations per image (lite0 loss)")
    p.add_argument("--simgan", default=None, help="a trained SimGAN refiner file (otherwise one is trained here)")
    p.add_argument("--simgan-steps", type=int, default=300, help="SimGAN steps when training one here (0 skips the row)")
    p.add_argument("--cache", default=None, help="trained-model cache (default runs/gaze_cache; --quick: a temp folder)")
    p.add_argument("--cnn-model", default="paper", help="gaze CNN: paper | small | test_tiny")
    p.add_argument("--cnn-file", default=None, metavar="MODEL",
                   help="a trained gaze-cnn model file, or 'default' (the shipped estimator): the CNN column tests it "
                        "as is instead of training one, and the CNN table (paired change, calibrated error) is added")
    p.add_argument("--cnn-batch", type=int, default=128, help="CNN batch (paper: 512 on ~10^6 images)")
    p.add_argument("--cnn-epochs", type=int, default=30, help="CNN epochs at most (early stopping decides)")
    p.add_argument("--cnn-patience", type=int, default=4, help="epochs without a better validation error before stopping")
    p.add_argument("--cnn-minutes", type=float, default=6.0, help="time limit of one CNN training (minutes)")
    p.add_argument("--augment-copies", type=int, default=2,
                   help="photometrically augmented copies of each training image for the augmented-CNN row (0 skips)")


def _log(msg: str, t0: float) -> None:
    print(f"[gaze {time.perf_counter() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ data


def render_gaze_set(seed: int, n: int, size: tuple[int, int], domains: tuple[str, ...]) -> dict[str, GazeSet]:
    """``n`` draws of ``eyepurify render --seed seed`` (same bytes) in each domain → {domain: set}."""
    from eyepurify.data.render import draw_params, render_domains_batch

    params = [draw_params(seed, i) for i in range(n)]
    rngs = [np.random.default_rng([seed, i, 1]) for i in range(n)]
    out = render_domains_batch(params, size, list(domains), None, rngs)  # type: ignore[arg-type]
    py = np.array([d[0][0].pitchyaw for d in out], np.float64)
    labels = np.stack([d[0][0].labels for d in out])  # type: ignore[misc]
    return {dom: GazeSet(np.stack([d[j][0].image for d in out]), py, labels, f"{dom} renders, seed {seed}")
            for j, dom in enumerate(domains)}


def _has_groups(path: str) -> bool:
    from eyepurify.data.detect import detect_format

    return detect_format(path) == "columbia"


def split_by_group(s: GazeSet, seed: int) -> tuple[GazeSet, GazeSet]:
    """(test, other) halves of a set by person (seeded), no person in both."""
    people = np.array(sorted(set(map(str, s.groups))))  # type: ignore[arg-type]
    chosen = set(np.random.default_rng([seed, 17]).permutation(people)[: len(people) // 2])
    mask = np.array([str(g) in chosen for g in s.groups])  # type: ignore[union-attr]
    return s.subset(np.nonzero(mask)[0]), s.subset(np.nonzero(~mask)[0])


def augment_copies(s: GazeSet, copies: int, seed: int) -> GazeSet:
    """The set plus ``copies`` photometrically augmented copies of every image (the segmenter's
    strong augmentation: gamma, brightness, contrast, colour temperature, noise, blur)."""
    import torch

    from eyepurify.tensors import images_to_tensor, photometric_augment, tensor_to_images

    g = torch.Generator().manual_seed(seed + 29)
    x = images_to_tensor(s.rgb)
    rgb = [s.rgb] + [tensor_to_images(photometric_augment(x, g)) for _ in range(copies)]
    return GazeSet(np.concatenate(rgb), np.tile(s.pitchyaw, (copies + 1, 1)), None, s.name + f" (+{copies} augmented copies)")


def _to_size(s: GazeSet, size: tuple[int, int]) -> GazeSet:
    if s.rgb.shape[1:3] == tuple(size):
        return s
    from eyepurify.imaging import resize_image, resize_labels

    rgb = np.stack([resize_image(im, size) for im in s.rgb])
    lab = None if s.labels is None else np.stack([resize_labels(m, size) for m in s.labels])
    return GazeSet(rgb, s.pitchyaw, lab, s.name, s.groups, s.conditions)


# ------------------------------------------------------------------------------ purifiers


def _simgan_refiner(args: argparse.Namespace, synthetic: np.ndarray, real: np.ndarray, quick: bool,
                    trainer: Trainer) -> tuple[Refiner, dict[str, Any]]:
    """(refiner, notes) from --simgan or trained (or reused) on gray 36×60 arrays."""
    from eyepurify.models.simgan import load_refiner

    if args.simgan:
        return load_refiner(args.simgan), {"source": str(args.simgan)}
    steps = 3 if quick else args.simgan_steps
    model = "test_tiny" if quick else "default"
    cfg = {"steps": steps, "batch": 8 if quick else 32, "size": GAZE_SIZE, "channels": 1, "model": model, "seed": args.seed,
           **({"pretrain_refiner_steps": 2, "pretrain_disc_steps": 2, "eval_count": 8} if quick else {})}
    path, reused = trainer.refiner("gaze", cfg, synthetic[..., None], real[..., None])
    return load_refiner(path), {"source": "trained for this bench", "path": str(path), "reused": reused, "steps": steps,
                                "model": model}


def _simgan_stats(refiner: object, synthetic: np.ndarray, refined: np.ndarray) -> dict[str, float | bool]:
    diff = float(np.abs(refined.astype(np.float64) - synthetic.astype(np.float64)).mean())
    from eyepurify.models.simgan import NEAR_IDENTITY_THRESHOLD

    return {"mean_abs_diff": diff, "near_identity": bool(diff < NEAR_IDENTITY_THRESHOLD),
            "near_identity_threshold": float(NEAR_IDENTITY_THRESHOLD)}


# ------------------------------------------------------------------------------ run


#: this benchmark asks for trained models (``eyepurify bench`` hands :func:`run` a trainer)
TRAINS = True


def run(args: argparse.Namespace, open_trainer: OpenTrainer) -> str:
    import torch

    from eyepurify.bench.classical import histogram_match, reference_stats, reinhard
    from eyepurify.errors import DataError
    from eyepurify.gaze.estimators import create_estimator
    from eyepurify.gaze.protocol import load_gaze_set
    from eyepurify.imaging import parse_size
    from eyepurify.io import write_json, write_text

    t0 = time.perf_counter()
    quick = bool(args.quick)
    seed = args.seed
    rseed = seed + SEED_OFFSET  # render seeds: train rseed, test rseed + 1, SimGAN's real set rseed + 2
    size = (36, 60) if quick else parse_size(args.size, lo=16)  # quick: the cheapest size
    n_train, n_test = (200, 100) if quick else (args.n_train, args.n_test)
    opt_n, opt_iters = (min(2, args.optimize_n), min(2, args.optimize_iters)) if quick else (args.optimize_n, args.optimize_iters)
    out = Path(args.out)
    torch.manual_seed(seed)
    for flag in ("johnson", "simgan", "train", "test"):
        path = getattr(args, flag)
        if path and not Path(path).exists():
            raise DataError(path, "does not exist", f"check --{flag}")

    # ---- data
    notes: list[str] = []
    if args.train:
        full = load_gaze_set(args.train, n_train + max(1, n_train // 10), size, seed)
        n_hold = max(1, len(full) // 11)
        train, floor = full.subset(slice(n_hold, None)), full.subset(slice(0, n_hold))
        floor_name = "held-out training-domain images (same domain)"
    else:
        train = render_gaze_set(rseed, n_train, size, ("indoor",))["indoor"]
        floor = None
        floor_name = "indoor renders of the test draws (same domain)"
    ceiling_train: GazeSet | None = None
    if args.test:
        test = load_gaze_set(args.test, None if _has_groups(args.test) else n_test, size, seed + 1)
        test_domain = "test set"
        if test.groups is not None:  # people known: half of them test, the other half train the real ceiling
            test, ceiling_train = split_by_group(test, seed)
            test = test.subset(np.random.default_rng([seed, 3]).permutation(len(test))[:n_test])
            notes.append(f"test people: {', '.join(sorted(set(map(str, test.groups))))}; the real-trained ceiling "  # type: ignore[arg-type]
                         f"uses the other {len(set(map(str, ceiling_train.groups)))} people ({len(ceiling_train)} patches)")  # type: ignore[arg-type]
        if floor is None:
            floor = render_gaze_set(rseed + 1, n_test, size, ("indoor",))["indoor"]
            floor_name = "indoor renders (same domain)"
    else:
        pair = render_gaze_set(rseed + 1, n_test, size, ("indoor", "wild"))
        test = pair["wild"]
        test_domain = "wild renders"
        if floor is None:
            floor = pair["indoor"]
    train, test, floor = (_to_size(s, size) for s in (train, test, floor))
    if ceiling_train is not None:
        ceiling_train = _to_size(ceiling_train, size)
    _log(f"data: train {len(train)} ({train.name}), test {len(test)} ({test.name}) at {size[0]}×{size[1]}", t0)

    # ---- purified test rows (RGB at the working size)
    rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # name -> (gray 36×60, pitchyaw)
    timing: dict[str, float] = {}

    def add(name: str, fn: Callable[[], np.ndarray | list[np.ndarray]], py: np.ndarray) -> None:
        t = time.perf_counter()
        ims = fn()
        timing[name] = (time.perf_counter() - t) / max(1, len(py))
        rows[name] = (GazeSet(np.stack(list(ims)), py).gray(), py)

    add(floor_name, lambda: floor.rgb, floor.pitchyaw)
    add("raw", lambda: test.rgb, test.pitchyaw)
    ref = reference_stats(list(train.rgb[:500]))
    add("histogram matching", lambda: [histogram_match(im, ref) for im in test.rgb], test.pitchyaw)
    add("Reinhard", lambda: [reinhard(im, ref) for im in test.rgb], test.pitchyaw)
    purifier_masks: list[np.ndarray] | None = None
    segmenter = None
    if args.purifier != "none":
        from eyepurify.purify import Purifier

        ours = Purifier.from_pretrained(args.purifier)
        segmenter = ours.segmenter
        if ours.needs_masks:
            purifier_masks = ours.predict_masks(list(test.rgb))
        add("purified (ours)", lambda: purify_images(ours, test.rgb, purifier_masks), test.pitchyaw)
        _log("purified by ours", t0)
    for spec in args.compare:
        from eyepurify.purify import Purifier

        cname, _, cpath = spec.partition("=")
        other = Purifier.from_pretrained(None if cpath in ("", "default") else cpath)
        add(f"purified ({cname})", lambda other=other: other.purify_arrays(list(test.rgb)), test.pitchyaw)  # type: ignore[misc]
        _log(f"purified by {cname}", t0)
    if args.johnson:
        from eyepurify.purify import Purifier

        john = Purifier.from_pretrained(args.johnson)
        add("purified (Johnson)", lambda: john.purify_arrays(list(test.rgb)), test.pitchyaw)
        _log("purified by Johnson", t0)
    opt_rows: list[str] = []
    if opt_n > 0 and opt_iters > 0:
        k = min(opt_n, len(test))
        sub = test.subset(slice(0, k))
        if purifier_masks is not None:
            masks = purifier_masks[:k]
        else:
            if segmenter is None:
                from eyepurify.segment import Segmenter

                segmenter = Segmenter.from_pretrained()
            masks = list(segmenter(list(sub.rgb))) if segmenter is not None else None
        if masks is None:
            notes.append("masked optimisation skipped: no segmenter for the test images' masks")
        else:
            style_lab = train.labels[0] if train.labels is not None else list(segmenter([train.rgb[0]]))[0]  # type: ignore[misc]
            raw_name, opt_name = f"raw (subset of {k})", f"masked optimisation (subset of {k}, lite0, {opt_iters} it)"
            add(raw_name, lambda: sub.rgb, sub.pitchyaw)
            from eyepurify.models.backbones import create_backbone
            from eyepurify.optimize import optimise_images

            add(opt_name, lambda: optimise_images(list(sub.rgb), masks, train.rgb[0], style_lab, create_backbone("lite0"),
                                                  opt_iters, desc="masked optimisation"), sub.pitchyaw)
            opt_rows = [raw_name, opt_name]
            _log(f"masked optimisation on {k} images", t0)

    # ---- estimators
    train_gray = train.gray()
    cnn_kw = {"model": "test_tiny" if quick else args.cnn_model, "batch": 64 if quick else args.cnn_batch,
              "max_epochs": 15 if quick else args.cnn_epochs, "patience": args.cnn_patience,
              "time_limit_s": None if quick else 60 * args.cnn_minutes}
    errors: dict[str, dict[str, np.ndarray]] = {}
    fit_info: dict[str, Any] = {}
    for name in args.estimators:
        t = time.perf_counter()
        est = create_estimator(name, seed, **(cnn_kw if name == "cnn" else {}))
        use = {r: v for r, v in rows.items() if r not in opt_rows or name in OPT_ESTIMATORS}
        if name == "cnn" and args.cnn_file:  # a trained model, tested as is
            est = _load_cnn(args.cnn_file)
            errors[name] = {r: angular_error_deg(est.predict(ims), py) for r, (ims, py) in use.items()}
        else:
            errors[name] = evaluate_estimator(est, (train_gray, train.pitchyaw), use)
        fit_info[name] = {"seconds": time.perf_counter() - t}
        if name == "cnn":
            fit_info[name].update({"epochs": est.epochs, "log": est.log, **cnn_kw})  # type: ignore[attr-defined]
        _log(f"{name}: raw {errors[name]['raw'].mean():.2f}°", t0)

    # ---- the CNN over several seeds: spread, paired changes, calibration, ordering
    seed_table, seed_result = "", None
    if "cnn" in args.estimators and (args.cnn_seeds > 1 or args.cnn_file):
        preds: dict[str, list[np.ndarray]] = {r: [] for r in rows if r not in opt_rows}
        for k in range(1 if args.cnn_file else args.cnn_seeds):
            if args.cnn_file:
                est = _load_cnn(args.cnn_file)
            else:
                est = create_estimator("cnn", seed + k, **cnn_kw)
                est.fit(train_gray, train.pitchyaw)
            for r in preds:
                preds[r].append(est.predict(rows[r][0]))
            _log(f"CNN seed {seed + k}: raw {angular_error_deg(preds['raw'][-1], test.pitchyaw).mean():.2f}°", t0)
        floor_row = next(iter(rows))
        seed_result = seed_analysis({r: v for r, v in preds.items() if r != floor_row}, test, N_BOOT, seed)
        seed_table = seed_markdown(seed_result, 1 if args.cnn_file else args.cnn_seeds)

    # ---- SimGAN row: CNN trained on refined training images, tested raw
    simgan_row = "CNN trained on SimGAN-refined training set, raw test"
    simgan_info: dict[str, Any] = {}
    if "cnn" in args.estimators and (args.simgan or args.simgan_steps > 0):
        from eyepurify.models.simgan import refine_arrays

        real = test.gray() if args.test or args.simgan else render_gaze_set(rseed + 2, n_test, size, ("wild",))["wild"].gray()
        with tempfile.TemporaryDirectory(prefix="gaze_simgan_") as tmp:
            cache = Path(args.cache) if args.cache else Path(tmp) if quick else Path("runs/gaze_cache")
            refiner, simgan_info = _simgan_refiner(args, train_gray, real, quick, open_trainer(cache, False if quick else None))
        refined = np.stack(refine_arrays(refiner, list(train_gray)))
        simgan_info.update(_simgan_stats(refiner, train_gray, refined))
        if args.simgan:
            simgan_info["real_set"] = "as recorded with the refiner file (trained outside this bench)"
        else:
            simgan_info["real_set"] = "the unlabelled test images (transductive)" if args.test else f"wild renders, seed {rseed + 2}"
        est = create_estimator("cnn", seed, **cnn_kw)
        errors["cnn"][simgan_row] = evaluate_estimator(est, (refined, train.pitchyaw), {"raw": rows["raw"]})["raw"]
        simgan_info["cnn_epochs"] = est.epochs  # type: ignore[attr-defined]
        if simgan_info["near_identity"]:
            notes.append(f"SimGAN's refiner is near-identity: mean |refined − input| = "
                         f"{simgan_info['mean_abs_diff']:.2f} grey levels, so its row measures the raw training set")
        else:
            notes.append(f"SimGAN's refiner changes the training images by {simgan_info['mean_abs_diff']:.2f} "
                         "grey levels on average (mean |refined − input|)")
        _log(f"SimGAN row: {errors['cnn'][simgan_row].mean():.2f}°", t0)
    # ---- CNN rows trained on other data, tested on the raw test set
    extra_rows: list[str] = []
    if "cnn" in args.estimators and args.augment_copies > 0:
        name = f"CNN trained with strong photometric augmentation ({args.augment_copies} copies), raw test"
        aug = augment_copies(train, args.augment_copies, seed)
        est = create_estimator("cnn", seed, **cnn_kw)
        errors["cnn"][name] = evaluate_estimator(est, (aug.gray(), aug.pitchyaw), {"raw": rows["raw"]})["raw"]
        extra_rows.append(name)
        _log(f"augmented CNN: {errors['cnn'][name].mean():.2f}°", t0)
    if "cnn" in args.estimators and ceiling_train is not None:
        name = f"CNN trained on real patches of other people ({len(ceiling_train)}), raw test (ceiling)"
        est = create_estimator("cnn", seed, **cnn_kw)
        errors["cnn"][name] = evaluate_estimator(est, (ceiling_train.gray(), ceiling_train.pitchyaw), {"raw": rows["raw"]})["raw"]
        extra_rows.append(name)
        _log(f"real ceiling: {errors['cnn'][name].mean():.2f}°", t0)

    # ---- outputs
    row_names = list(rows) + ([simgan_row] if "cnn" in errors and simgan_row in errors["cnn"] else []) + extra_rows
    summary = {r: {e: summarize(errors[e][r]) for e in errors if r in errors[e]} for r in row_names}
    table = markdown_table(summary, list(errors), row_names)
    cnn_curves = {r: errors["cnn"][r] for r in row_names if "cnn" in errors and r in errors["cnn"]}
    if cnn_curves:
        cdf_figure(cnn_curves, out / "gaze_cdf.png", f"gaze CNN trained on {train.name}, tested on {test_domain}")
    mean_guess = float(np.mean(mean_gaze_errors(train.pitchyaw, test.pitchyaw)))
    command = command_line("gaze", args)
    settings = {
        "seed": seed, "render_seeds": None if args.train and args.test else
        {"train": rseed, "test": rseed + 1, "simgan_real": rseed + 2}, "n_train": len(train), "n_test": len(test), "size": list(size), "gaze_size": list(GAZE_SIZE),
        "train": train.name, "test": test.name, "floor": floor.name, "estimators": list(errors),
        "optimize": {"n": len(rows[opt_rows[0]][1]) if opt_rows else 0, "iters": opt_iters},
        "purifier": args.purifier or "shipped", "johnson": args.johnson, "quick": quick, "cnn_file": args.cnn_file,
        "torch_threads": torch.get_num_threads(),
    }
    result = {
        "settings": settings, "command": command, "summary": summary, "ms_per_image": {k: 1000 * v for k, v in timing.items()},
        "fit": fit_info, "simgan": simgan_info, "notes": notes, "mean_guess_error_deg": mean_guess,
        "cnn_errors_deg": {r: [round(float(x), 4) for x in e] for r, e in cnn_curves.items()},
        "cnn_seeds": seed_result,
        "seconds": time.perf_counter() - t0,
    }
    write_json(out / "gaze.json", result)
    head = headline(summary, test_domain)
    md = [
        "# Gaze estimation: raw vs purified test images (paper Tables 2–3)", "",
        f"Angular error in degrees (mean ± std over test images) of estimators trained on {train.name} "
        f"({len(train)} images) and tested on {test.name} ({len(test)} images), each test row processed as named; "
        f"purifiers ran at {size[0]}×{size[1]}, estimators see 36×60 gray. Seed {seed}. "
        f"Predicting the training mean gaze scores {mean_guess:.2f}°.", "",
        table, "",
        seed_table, "",
        f"Optimisation rows: {opt_iters} L-BFGS iterations per image, evaluated with {', '.join(OPT_ESTIMATORS)} only."
        if opt_rows else "", "",
    ]
    if notes:
        md += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    if command:
        md += ["Command:", "", f"    {command}", ""]
    md.append(head)
    write_text(out / "gaze.md", "\n".join(md) + "\n")
    _log("done", t0)
    return table + head


def angular_error_deg(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    from eyepurify.gaze.geometry import angular_error

    return angular_error(pred, true)


def seed_analysis(preds: dict[str, list[np.ndarray]], test: GazeSet, n_boot: int, seed: int) -> dict[str, Any]:
    """Per row (N×2 predictions of each CNN seed): the mean error over seeds, its spread, the
    paired change against "raw" (per-image errors averaged over seeds, bootstrap 95 % interval),
    and where the test set knows them: per-person calibrated error (9 samples per person fit a
    linear correction), the frontal-head subset, and the ordering measure (Spearman ρ of the
    predicted pitch with the true vertical target within person/pose/horizontal/eye groups;
    yaw likewise)."""
    from eyepurify.bench.stats import paired_bootstrap
    from eyepurify.gaze.metrics import calibrated_errors, ordering_spearman

    true = test.pitchyaw
    cond, groups = test.conditions, test.groups
    per_image = {r: np.mean([angular_error_deg(p, true) for p in ps], axis=0) for r, ps in preds.items()}
    out: dict[str, Any] = {}
    for r, ps in preds.items():
        means = [float(angular_error_deg(p, true).mean()) for p in ps]
        row: dict[str, Any] = {"mean": float(np.mean(means)), "seed_means": means, "spread": float(np.ptp(means))}
        if r != "raw" and "raw" in per_image:
            row["vs_raw"] = paired_bootstrap(per_image["raw"], per_image[r], n_boot, seed)
        if groups is not None:
            row["calibrated"] = float(np.mean([calibrated_errors(p, true, list(groups), CALIBRATION_SAMPLES, seed).mean()
                                               for p in ps]))
        if cond is not None and groups is not None:
            frontal = cond[:, 0] == 0
            row["frontal"] = float(np.mean([angular_error_deg(p[frontal], true[frontal]).mean() for p in ps]))
            g_pitch = [(str(g), *c[[0, 2, 3]]) for g, c in zip(groups, cond, strict=True)]
            g_yaw = [(str(g), *c[[0, 1, 3]]) for g, c in zip(groups, cond, strict=True)]
            row["rho_pitch"] = float(np.mean([ordering_spearman(p[:, 0], true[:, 0], g_pitch)[0] for p in ps]))
            row["rho_yaw"] = float(np.mean([ordering_spearman(p[:, 1], true[:, 1], g_yaw)[0] for p in ps]))
        out[r] = row
    return out


def seed_markdown(result: dict[str, Any], k: int) -> str:
    """The seed table: one row per test row."""
    keys = [("calibrated", "calibrated °"), ("frontal", "frontal head °"), ("rho_pitch", "ρ pitch"), ("rho_yaw", "ρ yaw")]
    have = [(key, name) for key, name in keys if any(key in v for v in result.values())]
    lines = [f"CNN over {k} training seeds (mean over seeds; spread = max − min of the seed means; Δ vs raw: "
             "per-image errors averaged over seeds, paired bootstrap 95 % interval; calibrated: a per-person linear "
             "correction fitted on 9 samples, scored on the rest; ρ: ordering within person/pose/other-target/eye groups):", "",
             "| test images | CNN mean ° | spread ° | Δ vs raw ° [95 % CI] | " + " | ".join(n for _, n in have) + " |",
             "|---|---|---|---|" + "---|" * len(have)]
    for r, v in result.items():
        d = v.get("vs_raw")
        delta = f"{d[0]:+.2f} [{d[1]:+.2f}, {d[2]:+.2f}]" if d else ""
        cells = [f"{v[key]:.2f}" if key in v else "" for key, _ in have]
        lines.append(f"| {r} | {v['mean']:.2f} | {v['spread']:.2f} | {delta} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summarize_mean_guess(train_py: np.ndarray, test_py: np.ndarray) -> np.ndarray:
    """Errors (degrees) of predicting the mean training gaze for every test image."""
    return mean_gaze_errors(train_py, test_py)


def _load_cnn(spec: str) -> CNNEstimator:
    """A fitted CNN estimator from a gaze-cnn model file or 'default' (the shipped one)."""
    from eyepurify.gaze.cnn import CNNEstimator
    from eyepurify.gaze.models import shipped_gaze_path

    return CNNEstimator.load(shipped_gaze_path() if spec == "default" else spec)


def markdown_table(summary: dict[str, dict[str, dict[str, float]]], estimators: list[str], rows: list[str]) -> str:
    """Rows × estimators, cells "mean ± std" (– where not measured)."""
    names = {"svr": "SVR", "alr": "ALR", "rf": "RF", "knn": "kNN", "cnn": "CNN"}
    lines = ["| test images | " + " | ".join(names.get(e, e) for e in estimators) + " | CNN median |",
             "|---|" + "---|" * (len(estimators) + 1)]
    for r in rows:
        cells = []
        for e in estimators:
            s = summary[r].get(e)
            cells.append(f"{s['mean']:.2f} ± {s['std']:.2f}" if s else "–")
        c = summary[r].get("cnn")
        cells.append(f"{c['median']:.2f}" if c else "–")
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def headline(summary: dict[str, dict[str, dict[str, float]]], domain: str) -> str:
    raw = summary.get("raw", {}).get("cnn")
    ours = summary.get("purified (ours)", {}).get("cnn")
    if raw and ours:
        return f"gaze on {domain}, mean angular error: CNN raw {raw['mean']:.2f}° -> purified {ours['mean']:.2f}°"
    est = next(iter(summary.get("raw", {})), None)
    if est is None:
        return "gaze: no estimator ran"
    return f"gaze {est} on {domain}: raw {summary['raw'][est]['mean']:.2f}° mean angular error"
