"""Is this "eye image" a face photo? `purify` without ``--faces`` takes every input as an eye
crop; a face photo would come out with the whole head purified as one giant eye. So, when the
face detector is installed (``pip install 'eyepurify[faces]'``), every image input of at least
:data:`MIN_SIDE` px (eye patches such as MPIIGaze's 36×60 or Columbia's 64×64 are never
checked) and the first frame of every video are run through MTCNN at a small size (about
40 ms for a 640×480 photo); a confident face (score ≥ :data:`MIN_SCORE`) at least
:data:`MIN_FACE` of the shorter side wide makes that input a failed one:
"looks like a face photo: add --faces" (in report.txt; the run exits 1). On the 280 eye
close-ups of real_eyes_seg no face passes these thresholds; the astronaut and camera-man
test images do. ``--no-face-check`` turns the check off. Without the faces extra nothing is
checked.

Decision (issue 23): this refusal, not ``--faces auto``: one run keeps one kind of output
(eye crops purified whole, or faces with their eyes pasted back), and a user who meant eye
crops learns why in one line instead of getting a different kind of output.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from eyepurify.errors import DataError

#: Images whose shorter side is below this are eye patches: never checked.
MIN_SIDE = 100
#: The detector runs with the longer side at most this (faster; faces this check cares about stay large).
WORK_SIDE = 240
MIN_SCORE = 0.95
#: A face narrower than this fraction of the shorter side is not "a face photo".
MIN_FACE = 0.12
PROBLEM = "looks like a face photo (a face fills much of it), not an eye crop"
FIX = "add --faces to purify the eyes of face photos and videos, or crop the eye; --no-face-check skips this check"


def face_extra_installed() -> bool:
    try:
        from eyepurify.models.mtcnn import weights_dir

        return Path(weights_dir()).is_dir()
    except Exception:
        return False


class FacePhotoCheck:
    """``check(image, where)`` raises :class:`DataError` when ``image`` looks like a face photo.
    The detector is loaded on first use and shared by the decoding threads (one at a time)."""

    def __init__(self, detector: Any = None) -> None:
        self._detector = detector
        self._lock = threading.Lock()

    def _get(self) -> Any:
        if self._detector is None:
            from eyepurify.models.mtcnn import MTCNN

            self._detector = MTCNN.from_package()
        return self._detector

    def face_size(self, image: np.ndarray) -> float:
        """The largest confident face's width as a fraction of the shorter side (0: none)."""
        h, w = image.shape[:2]
        if min(h, w) < MIN_SIDE or image.ndim != 3 or image.shape[2] != 3:
            return 0.0
        small = image
        s = WORK_SIDE / max(h, w)
        if s < 1:
            import cv2

            small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        with self._lock:
            dets = self._get()(np.ascontiguousarray(small))
        sizes = [d.size / min(small.shape[:2]) for d in dets if d.score >= MIN_SCORE]
        return max(sizes, default=0.0)

    def __call__(self, image: np.ndarray, where: object) -> None:
        if self.face_size(image) >= MIN_FACE:
            raise DataError(where, PROBLEM, FIX)


def face_check(enabled: bool = True) -> FacePhotoCheck | None:
    """The check of this run: None when turned off or the faces extra is not installed."""
    return FacePhotoCheck() if enabled and face_extra_installed() else None
