"""A user's model behind one call: ONNX (ONNX Runtime), TorchScript, our own model files.

:func:`load_estimator` returns a gaze estimator ``predict(rgb images) -> N×2 (pitch, yaw)``
radians; :func:`load_segmenter` a segmenter ``predict(rgb images) -> label maps``.

The input contract of a foreign model is an :class:`InputContract` (MPIIGaze defaults:
36×60 gray, values in [0, 1], no histogram equalisation, NCHW float32); its output is
``pitchyaw`` (N×2 radians, MPIIGaze convention: pitch up positive, yaw towards the image's
left positive, (0, 0) looks into the camera) or ``vector`` (N×3 gaze direction in the
camera frame, x right, y down, z forward: (0, 0, −1) looks into the camera). A model whose
input or output does not fit raises :class:`ContractError` (one line, exit 2) naming the
expected and the actual shapes.

Our own ``gaze-cnn`` model files (``eyepurify train-gaze``) and ``default`` (the shipped
estimator, ``weights/gaze.safetensors``) carry their own contract: the image is made gray at
36×60 (:data:`eyepurify.gaze.protocol.GAZE_SIZE`, the protocol of ``bench gaze``) and the
network resizes it to its input size; the flags are ignored for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eyepurify.errors import EyepurifyError

#: the shipped gaze estimator's file under eyepurify/weights
SHIPPED_GAZE = "gaze.safetensors"
RANGES = ("0-1", "0-255", "imagenet")
OUTPUTS = ("pitchyaw", "vector")
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


class ContractError(EyepurifyError):
    """A model whose input or output shape does not fit the contract (exit 2)."""


@dataclass(frozen=True)
class InputContract:
    """How images are turned into the model's input tensor (N×C×H×W float32)."""

    size: tuple[int, int] = (36, 60)
    gray: bool = True
    range: str = "0-1"
    equalize: bool = False

    @property
    def channels(self) -> int:
        return 1 if self.gray else 3

    def shape(self, n: int | str = "N") -> list[int | str]:
        return [n, self.channels, *self.size]

    def describe(self) -> str:
        h, w = self.size
        return (f"--input-size {h}x{w} {'--gray' if self.gray else '--color'} --range {self.range}"
                + (" --equalize" if self.equalize else ""))


def preprocess(images: Sequence[np.ndarray] | np.ndarray, contract: InputContract) -> np.ndarray:
    """uint8 RGB (or gray) images of any size → N×C×H×W float32 by ``contract``."""
    import cv2

    from eyepurify.gaze.features import to_gray
    from eyepurify.imaging import resize_image

    if contract.range not in RANGES:
        raise EyepurifyError(f"unknown --range {contract.range!r} (use one of {', '.join(RANGES)})")
    if contract.gray:
        g = to_gray(list(images), contract.size)
        if contract.equalize:
            g = np.stack([cv2.equalizeHist(im) for im in g]) if len(g) else g
        x = g[:, None].astype(np.float32)
    else:
        rgb = []
        for im in images:
            im = np.asarray(im)
            im = np.repeat(im[..., None], 3, 2) if im.ndim == 2 else im[..., :3] if im.shape[2] >= 3 else np.repeat(im, 3, 2)
            im = resize_image(np.ascontiguousarray(im), contract.size)
            if contract.equalize:  # the luma channel, colours kept
                ycc = cv2.cvtColor(im, cv2.COLOR_RGB2YCrCb)
                ycc[..., 0] = cv2.equalizeHist(ycc[..., 0])
                im = cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)
            rgb.append(im)
        h, w = contract.size
        x = (np.stack(rgb) if rgb else np.zeros((0, h, w, 3), np.uint8)).transpose(0, 3, 1, 2).astype(np.float32)
    if contract.range == "0-255":
        return np.ascontiguousarray(x)
    x = (x / 255.0).astype(np.float32)
    if contract.range == "imagenet":
        mean = _IMAGENET_MEAN.mean() if contract.gray else _IMAGENET_MEAN
        std = _IMAGENET_STD.mean() if contract.gray else _IMAGENET_STD
        x = np.asarray((x - np.reshape(mean, (1, -1, 1, 1))) / np.reshape(std, (1, -1, 1, 1)), np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


# --------------------------------------------------------------------------- runners


def _kind(path: Path) -> str:
    """"onnx", "torchscript" or "ours" from the file's first bytes (not its name)."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:4] == b"PK\x03\x04":
        return "torchscript"  # a zip archive: torch.jit.save
    if len(head) == 8 and 0 < int.from_bytes(head, "little") < 100_000_000 and head != b"\x08" * 8:
        # safetensors: 8-byte little-endian header length, then '{'
        with open(path, "rb") as f:
            f.seek(8)
            if f.read(1) == b"{":
                return "ours"
    return "onnx"


class _Runner:
    """float32 N×C×H×W → float32 N×K, in batches."""

    def __init__(self, path: Path, kind: str, threads: int | None) -> None:
        self.path, self.kind = path, kind
        self.input_shape: list[object] | None = None
        self.output_shape: list[object] | None = None
        if kind == "onnx":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            if threads:
                opts.intra_op_num_threads = threads
                opts.inter_op_num_threads = 1
            try:
                self.sess: Any = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            except Exception as e:  # noqa: BLE001 - any failure to parse is the file's fault
                raise EyepurifyError(f"{path}: not a readable ONNX, TorchScript or eyepurify model file ({_first(e)})") from None
            inp, out = self.sess.get_inputs(), self.sess.get_outputs()
            self.input_name = inp[0].name
            self.input_shape, self.output_shape = list(inp[0].shape), list(out[0].shape)
        else:
            import torch

            try:
                self.module = torch.jit.load(str(path), map_location="cpu").eval()
            except Exception as e:  # noqa: BLE001
                raise EyepurifyError(f"{path}: not a readable TorchScript file ({_first(e)})") from None

    def __call__(self, x: np.ndarray, batch: int = 256) -> np.ndarray:
        outs = []
        for s in range(0, len(x), batch):
            xb = x[s : s + batch]
            try:
                if self.kind == "onnx":
                    y = self.sess.run(None, {self.input_name: xb})[0]
                else:
                    import torch

                    with torch.inference_mode():
                        y = self.module(torch.from_numpy(xb))
                    y = (y[0] if isinstance(y, list | tuple) else y).float().numpy()
            except Exception as e:  # noqa: BLE001 - a shape the model refuses
                raise ContractError(f"{self.path}: the model fails on input {list(xb.shape)} ({_first(e)}); "
                                    "set --input-size/--gray/--color to what it expects") from None
            outs.append(np.asarray(y, np.float32))
        return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)


def _first(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return (s[0] if s else type(e).__name__)[:300]


def _check_static_input(runner: _Runner, contract: InputContract) -> None:
    """Compare the model's declared input shape (ONNX) with the contract's, before running."""
    want = contract.shape()
    have = runner.input_shape
    if have is None:
        return
    fixed = [d if isinstance(d, int) and d > 0 else None for d in have]
    if len(fixed) != 4 or any(f is not None and f != w for f, w in zip(fixed[1:], want[1:], strict=True)):
        raise ContractError(f"{runner.path}: the model expects input {_fmt(have)}, {contract.describe()} gives "
                            f"{_fmt(want)} (set --input-size, --gray/--color to the model's input)")


def _fmt(shape: Sequence[object]) -> str:
    return "[" + ", ".join("N" if i == 0 and not isinstance(d, int) else str(d) if d not in (None, -1) else "?"
                           for i, d in enumerate(shape)) + "]"


# --------------------------------------------------------------------------- gaze


@dataclass
class GazeModel:
    """A gaze estimator: ``predict(rgb images) -> N×2 (pitch, yaw)`` radians."""

    name: str
    kind: str  # "ours" | "onnx" | "torchscript"
    contract: InputContract | None = None
    output: str = "pitchyaw"
    _runner: _Runner | None = None
    _cnn: Any = None

    def predict(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        from eyepurify.gaze.geometry import vector_to_pitchyaw

        if self._cnn is not None:
            from eyepurify.gaze.features import to_gray
            from eyepurify.gaze.protocol import GAZE_SIZE

            return np.asarray(self._cnn.predict(to_gray(list(images), GAZE_SIZE)), np.float64)
        assert self._runner is not None and self.contract is not None
        y = self._runner(preprocess(images, self.contract)).reshape(len(images), -1)
        k = 2 if self.output == "pitchyaw" else 3
        if y.shape[1] != k:
            raise ContractError(f"{self._runner.path}: --output {self.output} expects output [N, {k}], the model "
                                f"gives [N, {y.shape[1]}] (set --output pitchyaw for 2 values, vector for 3)")
        if not np.all(np.isfinite(y)):
            raise EyepurifyError(f"{self._runner.path}: the model outputs NaN or inf")
        if self.output == "pitchyaw":
            return y.astype(np.float64)
        if np.any(np.linalg.norm(y, axis=1) == 0):
            raise EyepurifyError(f"{self._runner.path}: the model outputs a zero gaze vector")
        return vector_to_pitchyaw(y.astype(np.float64))


def shipped_gaze_path() -> Path:
    from eyepurify.purify import packaged_weights

    return packaged_weights(SHIPPED_GAZE)


def load_estimator(spec: str | Path, contract: InputContract | None = None, output: str = "pitchyaw",
                   threads: int | None = None) -> GazeModel:
    """``spec``: ``default`` (the shipped estimator), a ``gaze-cnn`` model file, an ONNX file or
    a TorchScript file. Checks the contract on a probe batch (ContractError, exit 2)."""
    from eyepurify.gaze.cnn import CNNEstimator

    if output not in OUTPUTS:
        raise EyepurifyError(f"unknown --output {output!r} (use pitchyaw or vector)")
    if str(spec) == "default":
        path = shipped_gaze_path()
        if not path.is_file():
            raise EyepurifyError(f"the shipped gaze estimator {path} is missing (reinstall eyepurify)")
        return GazeModel("default", "ours", _cnn=CNNEstimator.load(path))
    path = Path(spec)
    if not path.is_file():
        raise EyepurifyError(f"{path}: no such model file (an ONNX, TorchScript or eyepurify gaze-cnn file, or 'default')")
    kind = _kind(path)
    if kind == "ours":
        return GazeModel(path.name, "ours", _cnn=CNNEstimator.load(path))
    contract = contract or InputContract()
    runner = _Runner(path, kind, threads)
    _check_static_input(runner, contract)
    model = GazeModel(path.name, kind, contract, output, runner)
    h, w = contract.size
    model.predict(np.full((2, h, w, 3), 128, np.uint8))  # the probe: shapes checked before any work
    return model


# --------------------------------------------------------------------------- segmentation


@dataclass
class SegmentationModel:
    """``predict(rgb images) -> label maps`` (0 skin, 1 sclera, 2 iris, 3 pupil) at each image's size.

    A foreign model outputs N×C×H×W class scores (C ≥ 4, argmax) or N×H×W labels."""

    name: str
    contract: InputContract | None = None
    _runner: _Runner | None = None
    _ours: Any = None

    def predict(self, images: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
        from eyepurify.imaging import resize_labels

        if self._ours is not None:
            return [np.asarray(m, np.uint8) for m in self._ours(list(images))]
        assert self._runner is not None and self.contract is not None
        y = self._runner(preprocess(images, self.contract))
        h, w = self.contract.size
        if y.ndim == 4 and y.shape[1] >= 4 and y.shape[2:] == (h, w):
            lab = y.argmax(1)
        elif y.ndim == 3 and y.shape[1:] == (h, w):
            lab = np.rint(y)
        elif y.ndim == 4 and y.shape[1] == 1 and y.shape[2:] == (h, w):
            lab = np.rint(y[:, 0])
        else:
            raise ContractError(f"{self._runner.path}: a segmenter must output [N, C>=4, {h}, {w}] scores or "
                                f"[N, {h}, {w}] labels, the model gives {list(y.shape)}")
        lab = np.clip(lab, 0, 3).astype(np.uint8)
        return [resize_labels(m, im.shape[:2]) for m, im in zip(lab, images, strict=True)]


def load_segmenter(spec: str | Path, contract: InputContract | None = None, threads: int | None = None) -> SegmentationModel:
    """``default`` (the shipped segmenter), one of our segmentation model files, ONNX or TorchScript."""
    if str(spec) == "default":
        from eyepurify.segment import Segmenter, default_weights_path

        if not default_weights_path().is_file():
            raise EyepurifyError("the shipped segmenter is missing (reinstall eyepurify)")
        return SegmentationModel("default", _ours=Segmenter.from_pretrained())
    path = Path(spec)
    if not path.is_file():
        raise EyepurifyError(f"{path}: no such model file (an ONNX, TorchScript or eyepurify segmentation file, or 'default')")
    kind = _kind(path)
    if kind == "ours":
        from eyepurify.segment import Segmenter

        seg = Segmenter.from_pretrained(path)
        return SegmentationModel(path.name, _ours=seg)
    contract = contract or InputContract(size=(72, 120), gray=False)
    runner = _Runner(path, kind, threads)
    _check_static_input(runner, contract)
    model = SegmentationModel(path.name, contract, runner)
    h, w = contract.size
    model.predict(np.full((2, h, w, 3), 128, np.uint8))
    return model
