"""Argument parsers shared by the commands."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from eyepurify.errors import EyepurifyError
from eyepurify.imaging import parse_size

if TYPE_CHECKING:
    from pathlib import Path

    from eyepurify.engines.run import RunOptions


def size_arg(text: str) -> tuple[int, int]:
    """:func:`parse_size` as an argparse ``type=`` (a usage error instead of an exception)."""
    try:
        return parse_size(text)
    except EyepurifyError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def pixels_arg(text: str) -> int:
    """``--max-pixels``: "50000000", "50M", "5e7" or "50_000_000" -> pixels (at least 1)."""
    t = (text or "").strip().replace("_", "").replace(",", "")
    scale = 1
    if t[-1:].upper() in ("K", "M", "G"):
        scale = {"K": 10**3, "M": 10**6, "G": 10**9}[t[-1].upper()]
        t = t[:-1]
    try:
        value = float(t) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad pixel count {text!r}: use e.g. 50000000 or 50M") from None
    if not 1 <= value < 1e12:
        raise argparse.ArgumentTypeError(f"pixel count {text!r} is out of range (1 .. 1e12)")
    return int(value)


def add_max_pixels(parser: argparse.ArgumentParser) -> None:
    """The shared ``--max-pixels`` option (the decode limit of :func:`eyepurify.io.pixel_limit`)."""
    from eyepurify.io import DEFAULT_MAX_PIXELS

    parser.add_argument(
        "--max-pixels", type=pixels_arg, default=DEFAULT_MAX_PIXELS, metavar="N",
        help=f"skip (and report) images whose header claims more than N pixels, before decoding "
        f"(default {DEFAULT_MAX_PIXELS // 10**6}M; accepts 50M, 5e7)",
    )


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every batch command shares: --batch, --resume, --overwrite, --max-pixels."""
    parser.add_argument("--batch", type=int, default=32, help="images per forward pass")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out (same model and settings, checked against its manifest; done files are skipped)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a non-empty --out, replacing earlier eyepurify results there "
                        "(files eyepurify did not write, and inputs, are never replaced)")
    add_max_pixels(parser)


def add_fast_arguments(parser: argparse.ArgumentParser, shard: bool = True) -> None:
    """The fast-path options of ``purify`` and ``segment`` (the batch engine's,
    :class:`eyepurify.engines.run.EngineOptions`): --backend, --io (and --shard)."""
    from eyepurify.backends import BACKENDS

    parser.add_argument(
        "--backend", choices=BACKENDS, default=None,
        help="inference backend (default: $EYEPURIFY_BACKEND, else auto): auto (openvino when OpenVINO is installed, "
        "else onnx when ONNX Runtime is, else torch), openvino (OpenVINO, float32, equal to torch within 1e-4), "
        "bf16 (OpenVINO in bfloat16, lossy, CPUs with AVX512-BF16/AMX), torch "
        "(BatchNorm folded), onnx (ONNX Runtime, equal to torch within 1e-4), int8 (ONNX Runtime, "
        "statically quantised; see bench throughput for its quality cost), eager (the networks as loaded: "
        "the reference); the first run of a model on openvino/bf16/onnx/int8 exports it once (cached); "
        "onnx and int8 need eyepurify[fast], openvino and bf16 eyepurify[openvino]",
    )
    if shard:
        parser.add_argument(
            "--shard", default=None, metavar="K/N",
            help="process only the K-th of N deterministic parts of the inputs (1 <= K <= N); "
            "the N runs' --out folders merge without name collisions",
        )
    parser.add_argument(
        "--io", choices=["threads", "serial"], default="threads",
        help="threads: decode ahead and encode/write behind inference (PNG level 1, one disk flush per "
        "chunk, manifest saved at most every 2 s; videos read ahead and written behind); serial: one after "
        "the other, PNG level 6, fsync per file, manifest saved after every chunk (the old path, for benchmarks)",
    )


def add_engine_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """--engine local|ray, --address, --workers (``what``: the network each worker holds)."""
    parser.add_argument("--engine", choices=["local", "ray"], default="local",
                        help="local: this process (decode, inference and encode overlapped on threads, see --io); "
                        f"ray: Ray Data, one {what} per worker (needs eyepurify[ray])")
    parser.add_argument("--address", default=None, help="--engine ray: the cluster to join (default: start a local one)")
    parser.add_argument("--workers", type=int, default=None,
                        help=f"--engine ray: {what} actors (default: the cluster's CPUs / 2)")


def backend_name(args: argparse.Namespace) -> str:
    """The backend asked for: ``--backend``, else ``$EYEPURIFY_BACKEND``, else auto; an
    unknown name in the environment variable is an EyepurifyError naming it (exit 2)."""
    import os

    from eyepurify.backends import BACKENDS

    if args.backend:
        return str(args.backend)
    env = os.environ.get("EYEPURIFY_BACKEND", "")
    if env and env not in BACKENDS:
        raise EyepurifyError(f"EYEPURIFY_BACKEND={env[:40]!r} is not a backend: set it to one of "
                             f"{', '.join(BACKENDS)}, or unset it")
    return env or "auto"


def run_options(args: argparse.Namespace) -> tuple[str, RunOptions]:
    """(the backend to run on, resolved: :func:`backend_name`; the batch options of this run:
    --resume, --overwrite, --shard, --max-pixels, --io, --engine, --address, --workers)."""
    from eyepurify.backends import resolve_backend
    from eyepurify.engines.run import EngineOptions, RunOptions

    engine = EngineOptions(io=args.io, engine=args.engine, address=args.address, workers=args.workers)
    return resolve_backend(backend_name(args)), RunOptions(
        resume=args.resume, overwrite=args.overwrite, shard=args.shard, max_pixels=args.max_pixels, engine=engine)


def add_run_arguments(parser: argparse.ArgumentParser, network: str) -> None:
    """Everything a batch run of ``purify`` and ``segment`` takes besides its model: the
    batch, fast-path and engine options (``network``: what each Ray worker holds)."""
    add_batch_arguments(parser)
    add_fast_arguments(parser)
    add_engine_arguments(parser, network)


def print_skipped(failed: list[tuple[str, str]], report: Path | str = "report.txt") -> None:
    """``skipped: <reason>`` on stderr per failed input while there are few, a count per
    reason when many fail alike (:func:`eyepurify.summary.print_failures`; all in ``report``)."""
    from eyepurify.summary import print_failures

    print_failures(failed, report)


def add_device_arguments(parser: argparse.ArgumentParser, ray: bool = False) -> None:
    """--device, --precision, --compile (and with ``ray``, --gpus-per-worker): where the
    networks run; :func:`eyepurify.cli.main` applies them (:func:`eyepurify.device.configure`)
    before the command writes anything."""
    parser.add_argument("--device", default="auto", metavar="auto|cpu|cuda|cuda:N|mps",
                        help="where the networks run (default auto: CUDA when available, else MPS, else the CPU)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                        help="autocast precision (default auto: bf16 on GPUs that have it, else fp16 on CUDA; fp32 on "
                        "the CPU); fp16 training uses a gradient scaler")
    parser.add_argument("--compile", action="store_true", help="torch.compile the networks (off by default; "
                        "the first batches are slower while it compiles)")
    if ray:
        parser.add_argument("--gpus-per-worker", type=float, default=None, metavar="G",
                            help="--engine ray: GPUs each worker asks Ray for (default 1 when --device resolves to "
                            "CUDA, else 0; 0.5 puts two workers on a GPU)")


def device_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run config's ``device``, ``precision`` and ``compile`` from --device, --precision,
    --compile (none when the command has no such options: the process's placement)."""
    if not hasattr(args, "device"):
        return {}
    return {"device": args.device, "precision": args.precision, "compile": bool(args.compile)}
