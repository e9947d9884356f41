"""`eyepurify segment INPUT... --out DIR`: label maps and colour overlays for eye images.

Writes ``DIR/labels/<name>.png`` (uint8 label map, 0 skin, 1 sclera, 2 iris, 3 pupil),
``DIR/overlays/<name>.png`` (classes blended over the image), ``DIR/manifest.json``
(per-input status, pupil centre and how it was fitted) and ``DIR/report.txt`` (bad
inputs, one line each). Inputs and names as for ``purify`` (:mod:`eyepurify.batch`): explicit
files keep their path relative to their common folder, a folder is a dataset (an image
folder keeps its file names, other formats get indexed names), ``x_2`` when two would
collide. Exit 0: all done; 1: some inputs failed; 2: nothing done.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from eyepurify.batch import (
    LABEL_LAYOUT,
    EngineOptions,
    Manifest,
    SegmentJob,
    expand_inputs,
    plan,
    run_batch,
)
from eyepurify.commands._args import (
    absolute_paths,
    add_batch_arguments,
    add_engine_arguments,
    add_fast_arguments,
    backend_name,
    size_arg,
)
from eyepurify.errors import EyepurifyError
from eyepurify.io import file_sha256, pixel_limit
from eyepurify.preflight import refuse_when_nothing_can_run
from eyepurify.shard import parse_shard
from eyepurify.summary import print_failures


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "segment",
        help="predict skin/sclera/iris/pupil label maps for eye images",
        description=(
            "Segment eye images (files, folders of images, globs) into label maps (0 skin, "
            "1 sclera, 2 iris, 3 pupil) with colour overlays. Exit 0: all done; 1: some "
            "inputs failed (see report.txt); 2: nothing could be done."
        ),
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders of images, globs, dataset folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", default=None, help="segmentation model file or training checkpoint (default: the shipped one)")
    p.add_argument("--no-orphan-fix", action="store_true", help="keep the raw prediction (no orphan-label fix)")
    p.add_argument("--pupil-factor", type=float, default=0.4, help="orphan fix: pupil radius / iris radius (default 0.4)")
    p.add_argument(
        "--size",
        type=size_arg,
        default=None,
        help="override: every whole image resized to HxW, no eye normalisation (default: the trained eye scale)",
    )
    p.add_argument(
        "--eye-scale",
        choices=["auto", "off"],
        default="auto",
        help="auto: find the eye and segment it at the model's trained eye scale; off: every image resized to the training size",
    )
    add_batch_arguments(p)
    add_fast_arguments(p)
    add_engine_arguments(p, "segmenter")
    p.set_defaults(func=run)


#: What a --engine ray worker needs to rebuild the driver's segmenter (plain values).
REMOTE_KEYS = ("model", "no_orphan_fix", "pupil_factor", "batch", "size", "eye_scale")


def build_segmenter(args: argparse.Namespace, backend: str):  # type: ignore[no-untyped-def]
    """The run's :class:`~eyepurify.segment.Segmenter` on ``backend``."""
    from eyepurify.backends import accelerate_segmenter
    from eyepurify.segment import Segmenter

    seg = Segmenter.from_pretrained(
        args.model, orphan_fix=not args.no_orphan_fix, pupil_factor=args.pupil_factor, batch_size=args.batch,
        **({"size": args.size} if args.size else {"eye_scale": args.eye_scale == "auto"}),
    )
    accelerate_segmenter(seg, backend)
    return seg


def remote_job(settings: dict[str, object]) -> SegmentJob:
    """The job of one --engine ray worker: the driver's, rebuilt from ``settings``."""
    args = argparse.Namespace(**settings)
    return SegmentJob(build_segmenter(args, str(settings["backend"])))


def engine_options(args: argparse.Namespace, backend: str) -> EngineOptions:
    """The batch engine's options of this run (--io, --engine, --address, --workers)."""
    if args.engine != "ray":
        return EngineOptions(io=args.io)
    import functools

    settings = absolute_paths({**{k: getattr(args, k) for k in REMOTE_KEYS}, "backend": backend}, ("model",))
    return EngineOptions(io=args.io, engine="ray", address=args.address, workers=args.workers,
                         remote_job=functools.partial(remote_job, settings))


def run(args: argparse.Namespace) -> int:
    from eyepurify.backends import resolve_backend
    from eyepurify.segment import default_weights_path

    if args.batch < 1:
        raise EyepurifyError("--batch must be at least 1")
    if not args.pupil_factor > 0:
        raise EyepurifyError("--pupil-factor must be > 0")
    out = Path(args.out)
    items = expand_inputs(args.inputs)
    refuse_when_nothing_can_run(items)  # before --out is created
    shard = parse_shard(args.shard)  # a bad --shard fails before any work
    backend = resolve_backend(backend_name(args))
    if args.engine == "ray":
        from eyepurify.engines.ray_engine import RAY_HINT, ray_available

        if not ray_available():  # before --out is created
            raise EyepurifyError(f"--engine ray needs ray and pyarrow: {RAY_HINT}")
    seg = build_segmenter(args, backend)
    settings = {
        "command": "segment", "model_sha256": file_sha256(args.model or default_weights_path()),
        "orphan_fix": not args.no_orphan_fix, "pupil_factor": args.pupil_factor,
        "size": args.size and list(args.size), "eye_scale": args.eye_scale,
        "backend": backend, "shard": args.shard,
    }
    meta = {"model": args.model or "default", "orphan_fix": not args.no_orphan_fix, "pupil_factor": args.pupil_factor,
            "size": args.size and list(args.size), "eye_scale": seg.scale.to_meta() if seg.scale else None,
            "inputs": args.inputs, "max_pixels": args.max_pixels}
    manifest = Manifest.open(out, resume=args.resume, overwrite=args.overwrite, settings=settings, meta=meta,
                             inputs=[it.path for it in items if it.kind != "missing"])
    try:
        with pixel_limit(args.max_pixels):
            try:
                units, _ = plan(items, manifest, LABEL_LAYOUT, labels=False, missing="no such image or folder",
                                videos="videos are not supported by segment (extract frames first)", shard=shard)
                skipped = run_batch(units, SegmentJob(seg), out, manifest, args.batch, options=engine_options(args, backend))
            except BaseException:
                with contextlib.suppress(Exception):  # keep what is done for --resume
                    manifest.finish()
                raise
        report = manifest.finish()
    finally:
        manifest.close()

    done = sum(1 for v in manifest.items.values() if v.get("status") == "done")
    failed = manifest.failures()
    print_failures(failed, report)
    msg = f"segmented {done} image(s) into {out}"
    if skipped:
        msg += f" ({skipped} already done)"
    print(msg + f"; {len(failed)} failed" + (f" (see {report})" if failed else ""))
    if done == 0:
        return 2
    return 1 if failed else 0
