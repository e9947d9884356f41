"""`eyepurify live [--camera N | --video FILE] [--faces] [--gaze]`: raw | purified side by side, live."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from eyepurify.errors import DataError, EyepurifyError

if TYPE_CHECKING:
    import numpy as np

    from eyepurify.faces import FacePurifier, Stabiliser
    from eyepurify.gaze.draw import EyeGaze
    from eyepurify.gaze.models import GazeModel
    from eyepurify.purify import Purifier

HELP = "camera or video: raw | purified side by side, gaze arrows, frames/s"


def register(sub: argparse._SubParsersAction) -> None:
    from eyepurify.backends import BACKENDS

    p = sub.add_parser(
        "live", help=HELP,
        description=(
            "Purify a camera or a video frame by frame and show raw | purified side by side with the "
            "frames per second (and, with --gaze, an arrow per eye). With --faces the face is tracked and "
            "its eyes normalised, purified and pasted back, stabilised over time exactly as "
            "'purify --faces' does for videos; without it each frame is one eye close-up. Opens a window "
            "where a display exists (q or Esc quits); otherwise, or with --out, writes the side-by-side "
            "video (.mp4, or .avi for MJPEG)."
        ),
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--camera", type=int, default=None, metavar="N", help="camera index (default 0)")
    src.add_argument("--video", default=None, metavar="FILE", help="a video file instead of the camera")
    p.add_argument("--faces", action="store_true", help="frames show faces (needs: pip install 'eyepurify[faces]')")
    p.add_argument("--gaze", action="store_true", help="draw the gaze of each eye (shipped estimator)")
    p.add_argument("--model", default="fast", help="purifier: fast (default), default, v1, v2 or a model file")
    p.add_argument("--temporal", choices=["off", "flow"], default="flow",
                   help="flow (default): blend each purified eye with the previous output warped by optical flow")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="write the side-by-side video here (default without a display: live.mp4)")
    p.add_argument("--no-window", action="store_true", help="never open a window (write --out instead)")
    p.add_argument("--frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--backend", default=None, choices=BACKENDS,
                   help="purifier backend (default: $EYEPURIFY_BACKEND, else auto; see 'purify --help')")
    p.add_argument("--focal", type=float, default=None, help="faces: camera focal length in pixels (default: frame width)")
    p.set_defaults(func=run)


def has_display() -> bool:
    """A window can be opened: a display variable on Linux (always on macOS and Windows)
    and an OpenCV build with a GUI backend."""
    import sys

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    import cv2

    info = cv2.getBuildInformation()
    gui = info.split("GUI:", 1)[1].splitlines()[0].strip() if "GUI:" in info else ""
    return gui not in ("", "NONE")


class Live:
    """One frame in, raw | purified side by side out (RGB), with gaze arrows and frames/s."""

    def __init__(self, purifier: Purifier, faces: bool, gaze: bool, temporal: bool, fps: float,
                 focal: float | None) -> None:
        from eyepurify.faces import FaceTracker, Stabiliser

        self.purifier = purifier
        self.fp: FacePurifier | None = None
        if faces:
            from eyepurify.faces import FacePurifier

            self.fp = FacePurifier(purifier, focal=focal)
            self.tracker = FaceTracker(self.fp.detector, fps=fps)
        self.stab: Stabiliser | None = Stabiliser() if temporal else None
        self.estimator: GazeModel | None = None
        if gaze:
            from eyepurify.gaze.models import load_estimator

            self.estimator = load_estimator("default")
        self.fps = 0.0
        self.frames = 0
        self.missing = 0
        self._t = time.perf_counter()

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        import numpy as np

        from eyepurify.gaze.draw import draw_arrows, eye_images_gaze, faces_gaze

        raw_g: list[EyeGaze] = []
        pur_g: list[EyeGaze] = []
        if self.fp is not None:
            lm = self.tracker(rgb)
            if lm is None:
                self.missing += 1
                if self.stab is not None:
                    self.stab.reset()
                out = rgb
            else:
                r = self.fp.purify(rgb, [lm], self.stab)
                out = r.image
                if self.estimator is not None:
                    raw_g = faces_gaze(self.estimator, self.fp, rgb, [(e.face, e.norm, e.raw) for e in r.eyes])
                    pur_g = faces_gaze(self.estimator, self.fp, rgb, [(e.face, e.norm, e.purified) for e in r.eyes])
        else:
            res = self.purifier.process([rgb])[0]
            out = res.image
            if self.stab is not None:
                region = None if res.labels is None else res.labels > 0
                out = self.stab(rgb, out, region)
            if self.estimator is not None:
                raw_g = eye_images_gaze(self.estimator, None, [rgb])
                pur_g = eye_images_gaze(self.estimator, self.purifier, [rgb], [res])
        left, right = draw_arrows(rgb, raw_g), draw_arrows(out, pur_g)
        now = time.perf_counter()
        dt, self._t = now - self._t, now
        self.fps = 1.0 / max(dt, 1e-6) if self.frames == 0 else 0.9 * self.fps + 0.1 / max(dt, 1e-6)
        self.frames += 1
        side = np.ascontiguousarray(np.hstack([left, right]))
        _label(side, "raw", (8, 22))
        _label(side, f"purified  {self.fps:.1f} fps", (rgb.shape[1] + 8, 22))
        return side


def _label(image: np.ndarray, text: str, at: tuple[int, int]) -> None:
    import cv2

    s = max(0.4, image.shape[0] / 800)
    cv2.putText(image, text, at, cv2.FONT_HERSHEY_SIMPLEX, s, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, at, cv2.FONT_HERSHEY_SIMPLEX, s, (255, 255, 255), 1, cv2.LINE_AA)


def run(args: argparse.Namespace) -> int:
    import cv2

    from eyepurify.bench.evaluate import load_purifier
    from eyepurify.commands._args import backend_name

    if args.video is not None:
        if not Path(args.video).is_file():
            raise DataError(args.video, "no such video file", "check --video")
        cap = cv2.VideoCapture(str(args.video))
        what = args.video
    else:
        cam = 0 if args.camera is None else args.camera
        cap = cv2.VideoCapture(cam)
        what = f"camera {cam}"
    if not cap.isOpened():
        raise EyepurifyError(f"{what}: cannot open it (pass --camera N for another camera, or --video FILE)")
    window = has_display() and not args.no_window and args.out is None
    if not window and args.out is None:
        args.out = "live.mp4"
    fps_in = cap.get(cv2.CAP_PROP_FPS) or 25.0
    fps_in = fps_in if 1 <= fps_in <= 240 else 25.0
    purifier = load_purifier(args.model, backend_name(args))
    live = Live(purifier, args.faces, args.gaze, args.temporal == "flow", fps_in, args.focal)
    writer = None
    out = Path(args.out) if args.out else None
    tmp = None
    t0 = time.perf_counter()
    try:
        while args.frames is None or live.frames < args.frames:
            ok, frame = cap.read()
            if not ok:
                break
            side = live(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            bgr = cv2.cvtColor(side, cv2.COLOR_RGB2BGR)
            if out is not None:
                if writer is None:
                    tmp = out.with_name(f".{out.stem}.eyepurify-tmp{out.suffix or '.mp4'}")
                    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if out.suffix.lower() == ".avi" else "mp4v"))  # type: ignore[attr-defined]
                    writer = cv2.VideoWriter(str(tmp), fourcc, fps_in, (bgr.shape[1], bgr.shape[0]))
                    if not writer.isOpened():
                        raise EyepurifyError(f"{out}: cannot write a video there (use .mp4 or .avi)")
                writer.write(bgr)
            if window:
                cv2.imshow("eyepurify live (q quits)", bgr)
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
    except KeyboardInterrupt:
        pass
    finally:
        cap.release()
        if writer is not None:
            writer.release()
        if window:
            cv2.destroyAllWindows()
    if live.frames == 0:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise DataError(what, "no frame could be read", "check the camera or the video file")
    if tmp is not None and out is not None:
        os.replace(tmp, out)
    dt = time.perf_counter() - t0
    print(f"{live.frames} frames in {dt:.1f} s: {live.frames / dt:.1f} frames/s"
          + (f" ({live.missing} without a face)" if args.faces else "")
          + (f"; side-by-side video in {out}" if out is not None else ""))
    return 0
