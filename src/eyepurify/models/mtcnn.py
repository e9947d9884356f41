"""MTCNN face detector with five landmarks (Zhang, Zhang, Li & Qiao, IEEE SPL 2016), in PyTorch.

The three networks (P-, R-, O-Net) are written here; their trained weights come from the PyPI
package ``mtcnn`` (MIT licence, 1.9 MB wheel; the ``faces`` extra), which ships them as
lz4-compressed joblib pickles of Keras weight lists under ``mtcnn/assets/weights``. That
package's own code needs TensorFlow; eyepurify never imports it: the files are found with
``importlib.util.find_spec`` and read with an unpickler that builds nothing but numpy arrays
(any other class in the file is refused), then checked shape by shape against the networks.

Landmarks, in image terms: the eye on the image's left (the subject's right eye), the eye on
the image's right, the nose tip, the mouth corner on the left and on the right.
"""

from __future__ import annotations

import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from eyepurify.errors import EyepurifyError, WeightsError
from eyepurify.imaging import resize_image

MTCNN_PACKAGE = "mtcnn"
FACES_EXTRA = "pip install 'eyepurify[faces]'"
WEIGHT_FILES = {"pnet": "pnet.lz4", "rnet": "rnet.lz4", "onet": "onet.lz4"}
_ALLOWED = {("joblib.numpy_pickle", "NumpyArrayWrapper"), ("numpy", "dtype"), ("numpy", "ndarray"),
            ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}


class FacesUnavailable(EyepurifyError):
    """The optional face detector is not installed (exit 2 with the install line)."""


def weights_dir() -> Path:
    """The ``mtcnn`` package's weight folder, found without importing the package."""
    spec = importlib.util.find_spec(MTCNN_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FacesUnavailable(
            f"face detection (--faces) needs the MTCNN weights of the Python package {MTCNN_PACKAGE!r}, "
            f"which is not installed: {FACES_EXTRA}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "assets" / "weights"


def load_keras_weights(path: str | Path) -> list[np.ndarray]:
    """The list of numpy arrays in one of the ``mtcnn`` package's ``.lz4`` files (safe load)."""
    path = Path(path)
    try:
        import joblib.numpy_pickle as npk
        import lz4.frame
    except ImportError as e:
        raise FacesUnavailable(f"reading {path.name} needs {e.name!r}: {FACES_EXTRA}") from None

    class _Restricted(npk.NumpyUnpickler):
        def find_class(self, module: str, name: str):
            if (module, name) not in _ALLOWED:
                raise WeightsError(f"{path}: refuses to load {module}.{name} (not a weights file)")
            return super().find_class(module, name)

    try:
        data = lz4.frame.decompress(path.read_bytes())
        arrays = _Restricted(str(path), io.BytesIO(data), True).load()
    except FileNotFoundError:
        raise WeightsError(f"{path}: missing from the installed {MTCNN_PACKAGE} package "
                           f"(reinstall it: pip install --force-reinstall {MTCNN_PACKAGE})") from None
    except WeightsError:
        raise
    except Exception as e:
        raise WeightsError(f"{path}: cannot read MTCNN weights ({type(e).__name__}: {e})") from None
    if not isinstance(arrays, list) or not all(isinstance(a, np.ndarray) for a in arrays):
        raise WeightsError(f"{path}: not a list of weight arrays")
    return arrays


class _Net(nn.Module):
    """Loads a Keras weight list in layer order: conv (kernel HWIO, bias), PReLU alphas,
    dense (kernel in×out, bias)."""

    def load_keras(self, arrays: list[np.ndarray], path: object = "weights") -> None:
        params: list[tuple[nn.Module, str]] = []
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                params += [(m, "weight"), (m, "bias")]
            elif isinstance(m, nn.PReLU):
                params.append((m, "weight"))
        if len(arrays) != len(params):
            raise WeightsError(f"{path}: {len(arrays)} arrays for {len(params)} parameters")
        with torch.no_grad():
            for a, (m, name) in zip(arrays, params, strict=True):
                t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
                if isinstance(m, nn.Conv2d) and name == "weight":
                    t = t.permute(3, 2, 0, 1)
                elif isinstance(m, nn.Linear) and name == "weight":
                    t = t.t()
                t = t.reshape(-1) if isinstance(m, nn.PReLU) else t
                p = getattr(m, name)
                if tuple(t.shape) != tuple(p.shape):
                    raise WeightsError(f"{path}: array of shape {tuple(a.shape)} does not fit {type(m).__name__} {tuple(p.shape)}")
                p.copy_(t)


def _flat(x: torch.Tensor) -> torch.Tensor:
    """Keras' Permute((2, 1, 3)) + Flatten on an N×C×H×W map: (w, h, c) order."""
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class PNet(_Net):
    """Proposal network: any size in, (box offsets N×4×h×w, face probability N×h×w) out."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 4, 1), nn.Conv2d(32, 2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_1(x), F.softmax(self.conv4_2(x), dim=1)[:, 1]


class RNet(_Net):
    """Refinement network: N×3×24×24 in, (box offsets N×4, face probability N) out."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.fc4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.fc5_1, self.fc5_2 = nn.Linear(128, 4), nn.Linear(128, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2)
        x = self.prelu4(self.fc4(_flat(self.prelu3(self.conv3(x)))))
        return self.fc5_1(x), F.softmax(self.fc5_2(x), dim=1)[:, 1]


class ONet(_Net):
    """Output network: N×3×48×48 in, (box offsets N×4, landmarks N×10 (x0..x4, y0..y4) as
    fractions of the box, face probability N) out."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.fc5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.fc6_1, self.fc6_2, self.fc6_3 = nn.Linear(256, 4), nn.Linear(256, 10), nn.Linear(256, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu5(self.fc5(_flat(self.prelu4(self.conv4(x)))))
        return self.fc6_1(x), self.fc6_2(x), F.softmax(self.fc6_3(x), dim=1)[:, 1]


@dataclass(frozen=True)
class Detection:
    """One face: ``box`` (x0, y0, x1, y1) px, ``score`` (O-Net probability) and
    ``landmarks`` 5×2 (x, y) px: image-left eye, image-right eye, nose, mouth left, mouth right."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray

    @property
    def size(self) -> float:
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Indices kept by greedy non-maximum suppression (IoU, or overlap / smaller area)."""
    order = np.argsort(-scores)
    area = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        xx0, yy0 = np.maximum(boxes[i, 0], boxes[rest, 0]), np.maximum(boxes[i, 1], boxes[rest, 1])
        xx1, yy1 = np.minimum(boxes[i, 2], boxes[rest, 2]), np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.maximum(xx1 - xx0, 0) * np.maximum(yy1 - yy0, 0)
        den = np.minimum(area[i], area[rest]) if method == "min" else area[i] + area[rest] - inter
        order = rest[inter / np.maximum(den, 1e-9) <= threshold]
    return np.array(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    b = boxes.copy()
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    s = np.maximum(w, h)
    b[:, 0] += (w - s) / 2
    b[:, 1] += (h - s) / 2
    b[:, 2], b[:, 3] = b[:, 0] + s, b[:, 1] + s
    return b


def _patches(image: np.ndarray, boxes: np.ndarray, size: int) -> torch.Tensor:
    """Bilinear crops of the normalised H×W×3 float image, box corners onto the patch
    corners (as TensorFlow's crop_and_resize), zero (mid-gray) past the edges."""
    out = np.empty((len(boxes), size, size, 3), np.float32)
    for k, (x0, y0, x1, y1) in enumerate(boxes[:, :4]):
        sx, sy = (x1 - x0) / (size - 1), (y1 - y0) / (size - 1)
        m = np.array([[sx, 0, x0], [0, sy, y0]], np.float64)
        out[k] = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return torch.from_numpy(out).permute(0, 3, 1, 2)


class MTCNN:
    """``MTCNN.from_package()(rgb_uint8) -> [Detection]`` (largest face first)."""

    def __init__(self, pnet: PNet, rnet: RNet, onet: ONet, min_face: float = 20.0,
                 thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8), factor: float = 0.709) -> None:
        self.pnet, self.rnet, self.onet = pnet.eval(), rnet.eval(), onet.eval()
        self.min_face = min_face
        self.thresholds = thresholds
        self.factor = factor

    @classmethod
    def from_package(cls, folder: str | Path | None = None, **kw: float) -> MTCNN:
        """The three networks with the ``mtcnn`` package's weights (or those in ``folder``)."""
        d = Path(folder) if folder is not None else weights_dir()
        nets = []
        for net, name in ((PNet(), "pnet"), (RNet(), "rnet"), (ONet(), "onet")):
            path = d / WEIGHT_FILES[name]
            net.load_keras(load_keras_weights(path), path)
            nets.append(net)
        return cls(*nets, **kw)  # type: ignore[arg-type]

    @staticmethod
    def normalise(image: np.ndarray) -> np.ndarray:
        return (np.asarray(image, np.float32) - 127.5) / 128.0

    def _scales(self, h: int, w: int, min_face: float) -> list[float]:
        m = 12.0 / min_face
        side = min(h, w) * m
        scales = []
        while side >= 12:
            scales.append(m)
            m *= self.factor
            side *= self.factor
        return scales

    @torch.inference_mode()
    def proposals(self, x: np.ndarray, min_face: float | None = None) -> np.ndarray:
        """P-Net over the image pyramid → square candidate boxes K×5 (x0, y0, x1, y1, score)."""
        h, w = x.shape[:2]
        found = []
        for s in self._scales(h, w, min_face or self.min_face):
            sh, sw = int(np.ceil(h * s)), int(np.ceil(w * s))
            im = resize_image(x, (sh, sw))  # area when shrinking (pyramid scales are ≤ 1 for faces ≥ 12 px)
            reg, prob = self.pnet(torch.from_numpy(im).permute(2, 0, 1)[None])
            prob, reg = prob[0].numpy(), reg[0].numpy()
            yy, xx = np.nonzero(prob > self.thresholds[0])
            if not len(yy):
                continue
            x0, y0 = (xx * 2 + 1).astype(np.float64), (yy * 2 + 1).astype(np.float64)
            x1, y1 = xx * 2 + 12.0, yy * 2 + 12.0
            bw, bh = x1 - x0, y1 - y0
            b = np.stack([x0 + reg[0, yy, xx] * bw, y0 + reg[1, yy, xx] * bh,
                          x1 + reg[2, yy, xx] * bw, y1 + reg[3, yy, xx] * bh], 1) / s
            b = np.concatenate([b, prob[yy, xx, None]], 1)
            found.append(b[_nms(b[:, :4], b[:, 4], 0.5)])
        if not found:
            return np.empty((0, 5))
        b = np.concatenate(found)
        b = b[_nms(b[:, :4], b[:, 4], 0.7)]
        return np.concatenate([_square(b[:, :4]), b[:, 4:]], 1)

    @torch.inference_mode()
    def refine(self, x: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """R-Net on candidate boxes → refined square boxes K×5."""
        if not len(boxes):
            return boxes
        reg, prob = self.rnet(_patches(x, boxes, 24))
        keep = prob.numpy() > self.thresholds[1]
        b, reg = boxes[keep].copy(), reg.numpy()[keep]
        b[:, 4] = prob.numpy()[keep]
        wh = np.stack([b[:, 2] - b[:, 0] + 1, b[:, 3] - b[:, 1] + 1] * 2, 1)
        b[:, :4] += reg * wh
        b = b[_nms(b[:, :4], b[:, 4], 0.7)]
        return np.concatenate([_square(b[:, :4]), b[:, 4:]], 1)

    @torch.inference_mode()
    def output(self, x: np.ndarray, boxes: np.ndarray, nms: bool = True) -> list[Detection]:
        """O-Net on boxes → detections (score above the last threshold), largest first."""
        if not len(boxes):
            return []
        reg, lm, prob = self.onet(_patches(x, boxes, 48))
        reg, lm, prob = reg.numpy(), lm.numpy(), prob.numpy()
        keep = prob > self.thresholds[2]
        b, reg, lm, prob = boxes[keep, :4].copy(), reg[keep], lm[keep], prob[keep]
        w, h = b[:, 2:3] - b[:, 0:1] + 1, b[:, 3:4] - b[:, 1:2] + 1
        pts = np.stack([w * lm[:, :5] + b[:, 0:1] - 1, h * lm[:, 5:] + b[:, 1:2] - 1], -1)
        b += reg * np.concatenate([w, h, w, h], 1)
        idx = _nms(b, prob, 0.7, "min") if nms else np.arange(len(b))
        dets = [Detection(tuple(float(v) for v in b[i]), float(prob[i]), pts[i].astype(np.float64)) for i in idx]  # type: ignore[arg-type]
        return sorted(dets, key=lambda d: -d.size)

    def __call__(self, image: np.ndarray, min_face: float | None = None) -> list[Detection]:
        """Faces in an H×W×3 RGB uint8 image, largest first."""
        x = self.normalise(image)
        return self.output(x, self.refine(x, self.proposals(x, min_face)))

    def track(self, image: np.ndarray, box: tuple[float, float, float, float]) -> Detection | None:
        """O-Net alone on the square around ``box`` (the last frame's face): the fast path of
        video, about 1 ms. None when O-Net no longer sees a face there."""
        b = _square(np.array([box], np.float64))
        dets = self.output(self.normalise(image), np.concatenate([b, [[1.0]]], 1), nms=False)
        return dets[0] if dets else None
