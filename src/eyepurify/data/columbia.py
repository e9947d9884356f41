"""Columbia Gaze eye patches: ``SSSS_2m_{P}P_{V}V_{H}H_{L|R}.jpg`` with an optional labels.csv.

Layout: a folder of eye patches (directly, or in ``images/``), e.g. the shared
``columbia_gaze/``: 64×64 RGB JPEGs, square crops 1.5× the eye-landmark box, of the
Columbia Gaze Data Set (Smith, Yin, Feiner & Nayar, "Gaze Locking", UIST 2013; research
use only). The labels come from the file name alone: subject ``SSSS``, camera distance
(2 m), head pose ``P`` (−30…30° in 15° steps), vertical gaze ``V`` (−10, 0, 10°),
horizontal gaze ``H`` (−15…15° in 5° steps) and ``L``/``R`` (the image side the eye was
cropped from, per the data's README; not confirmed). A ``labels.csv`` (columns ``file,
subject, head_pose_deg, gaze_v_deg, gaze_h_deg, eye, bad_crop``) next to the images or in
the folder above ``images/`` is optional: its ``bad_crop`` = 1 rows are listed in ``bad``
and skipped, and a row whose labels disagree with its file name is reported and skipped.
Unparseable names are reported in ``bad``; unreadable files raise DataError when read
(``iter_valid``/``scan`` list them in ``bad``).

Gaze frame, measured on the shared patches (7,245 with bad_crop = 0). Pupil position: the
centroid of the darkest 3 % of the Gaussian-blurred (σ 2.5 px) grey patch inside rows
12–56, columns 8–56 (x), and the darkness-weighted row centroid in an 11-px column band
at that x (y). Pearson correlations, all samples, left / right eye:

* x with H +0.44 / +0.44, with H − P +0.66 / +0.71, with H + P −0.28 / −0.33, with P
  −0.52 / −0.58; within cells of fixed (subject, P, V): x with H +0.80 / +0.79; within
  fixed (subject, H, V): x with P −0.70 / −0.69. Per-subject least squares:
  x = 0.28 / 0.30 px/° · H − 0.16 / 0.19 px/° · P. The sign does not flip between L and R.
* y with V −0.21 / −0.22; within fixed (subject, P, H) −0.39 / −0.43 (−0.05 px/°: the
  crop follows the eyelids, which follow vertical gaze).

Decision. The crop is cut around the eye landmarks, which move with the head, so the
pupil's place in it tracks mostly the eye's rotation *in the head*, here H − P; H and V
themselves are relative to the camera. The dataset's page states that H = V = 0 is the
gaze-locking image (looking into the camera) of every head pose, and in the patches with
P = −30, H = +15 (and P = +30, H = −15) the iris sits in the eye's corner (rotated about
45° in the head), not near the middle as it would at 15°. The P term also fits an eye
model: pupil-in-box ≈ R·sin(gaze) − D·sin(head yaw), the eye-corner midpoint D in front
of the eyeball centre. With H camera-relative D/R = 0.56–0.61; with H head-relative D/R
would be 0.39–0.44, while the UnityEyes eye model has D/R ≈ 0.85 (shared
``unityeyes_json/1.json``: corner midpoint 27.8 px off the eyeball centre for a head
facing x = 0.40, pupil 82 px per unit gaze). So, in the MPIIGaze convention of
:mod:`eyepurify.gaze.geometry`:

* gaze (pitch, yaw) = (+V, −H) in radians: +H moves the pupil to the image's right
  (+x), and MPIIGaze yaw is positive towards −x; +V moves it up (y < 0, pitch > 0);
* head pose (pitch, yaw) = (0, −P): the P coefficient says a head with +P faces +x; the
  data set's head poses are horizontal only, so the head pitch is 0;
* gaze relative to the head: yaw −(H − P), pitch V.

Crop (``crop=(H, W)``, default the gaze estimators' 36×60): the patch is assumed to be a
square 1.5× the width of the eye-landmark box, centred on it, so the eye (corner to
corner, the visible eye opening) is ``W_patch / 1.5`` px wide (42.7 px of 64) and its
centre is the patch centre. :func:`eyepurify.eyescale.canonical_box` turns that box into
the box that gives the eye the render eye scale of ``EyeScale.for_renders(crop)`` (eye
width 0.633 of the width, centre at (0.492, 0.486) of the size);
:func:`eyepurify.eyescale.crop` cuts it (edges repeated; 67×40 px of a 64×64 patch for
36×60, so 1–2 columns are repeated) and resizes it. ``crop=None`` returns the file as is.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eyepurify import eyescale
from eyepurify.data.base import BadFile, EyeDataset
from eyepurify.errors import DataError
from eyepurify.gaze.geometry import pitchyaw_to_vector
from eyepurify.io import IMAGE_SUFFIXES, read_image
from eyepurify.sample import EyeSample

FORMAT = "columbia"
IMAGE_DIR = "images"
LABELS_CSV = "labels.csv"
#: The patch is a square this many times the eye-landmark box's width (see the docstring).
PATCH_PER_EYE_WIDTH = 1.5
NAME_PATTERN = "SSSS_2m_{P}P_{V}V_{H}H_{L|R}.jpg"
_NAME_RE = re.compile(
    r"^(\d{4})_(\d+)m_([+-]?\d+)P_([+-]?\d+)V_([+-]?\d+)H_([LR])\.jpe?g$", re.IGNORECASE
)
_SNIFF_NAMES = 8  # image names looked at by sniff
_SNIFF_ENTRIES = 256  # directory entries looked at by sniff, at most
_MAX_ANGLE = 90
_CSV_LABELS = ("subject", "head_pose_deg", "gaze_v_deg", "gaze_h_deg", "eye")
_CSV_FIX = "fix or remove labels.csv (labels are read from the file names)"


@dataclass(frozen=True)
class ColumbiaLabel:
    """Labels of one patch from its file name; angles in whole degrees.

    subject: "0001".."0056"; distance_m: camera distance (2); head_pose_deg: P (−30..30);
    gaze_v_deg: V (−10..10, + up); gaze_h_deg: H (−15..15, + towards the image's right);
    eye: "L" or "R" (image side).
    """

    subject: str
    distance_m: int
    head_pose_deg: int
    gaze_v_deg: int
    gaze_h_deg: int
    eye: str

    def gaze_pitchyaw(self) -> np.ndarray:
        """(2,) camera-frame gaze (pitch, yaw) radians, MPIIGaze convention: (V, −H)."""
        return np.radians([float(self.gaze_v_deg), -float(self.gaze_h_deg)])

    def head_pitchyaw(self) -> np.ndarray:
        """(2,) head pose (pitch, yaw) radians, same convention: (0, −P)."""
        return np.radians([0.0, -float(self.head_pose_deg)])


def parse_name(name: str) -> ColumbiaLabel:
    """Labels of a file name such as ``0001_2m_-15P_10V_-5H_L.jpg``; ValueError says why not."""
    m = _NAME_RE.match(name)
    if m is None:
        raise ValueError(f"name does not match {NAME_PATTERN}")
    subject, dist, p, v, h, eye = m.groups()
    label = ColumbiaLabel(subject, int(dist), int(p), int(v), int(h), eye.upper())
    for what, value in (("P", label.head_pose_deg), ("V", label.gaze_v_deg), ("H", label.gaze_h_deg)):
        if abs(value) > _MAX_ANGLE:
            raise ValueError(f"{what} = {value}° is out of range (|angle| <= {_MAX_ANGLE}°)")
    return label


def _image_dir(path: Path) -> Path:
    return path / IMAGE_DIR if (path / IMAGE_DIR).is_dir() else path


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def sniff(path: Path) -> bool:
    """True for a folder (or its ``images/``) whose first few image names follow the scheme.

    Looks at up to 8 image names in directory order; more than half must match.
    """
    path = Path(path)
    if not path.is_dir():
        return False
    names: list[str] = []
    try:
        with os.scandir(_image_dir(path)) as it:
            for k, entry in enumerate(it):
                if k >= _SNIFF_ENTRIES or len(names) >= _SNIFF_NAMES:
                    break
                if _is_image_name(entry.name):
                    names.append(entry.name)
    except OSError:
        return False
    hits = sum(_NAME_RE.match(n) is not None for n in names)
    return hits > 0 and 2 * hits > len(names)


def _labels_csv(root: Path, image_dir: Path) -> Path | None:
    """labels.csv in the dataset folder, beside the images, or above a folder named images/."""
    above = [root.parent / LABELS_CSV] if root.name == IMAGE_DIR else []
    for p in [root / LABELS_CSV, image_dir / LABELS_CSV, *above]:
        if p.is_file():
            return p
    return None


class ColumbiaGaze(EyeDataset):
    """Columbia Gaze eye patches of one folder, labelled from their file names.

    path: the folder holding the patches, directly or in ``images/``.
    crop: (H, W) output at the render eye scale (see the module docstring), or None for
        the 64×64 file as is.
    ``files[i]`` and ``entries[i]`` (:class:`ColumbiaLabel`) are sample i's path and labels;
    :meth:`subject` gives its subject id. Samples carry image, gaze, head_pose and source
    (the file path).
    """

    format_name = FORMAT

    def __init__(self, path: str | Path, crop: tuple[int, int] | None = (36, 60)) -> None:
        super().__init__()
        self.root = Path(path)
        if not self.root.is_dir():
            raise DataError(self.root, "not a folder", f"pass the folder of {NAME_PATTERN} patches")
        if crop is not None and (len(crop) != 2 or min(crop) < 2):
            raise ValueError(f"crop must be (H, W) with both >= 2, got {crop}")
        self.crop = None if crop is None else (int(crop[0]), int(crop[1]))
        self.image_dir = _image_dir(self.root)
        candidates = sorted(p for p in self.image_dir.iterdir() if p.is_file() and _is_image_name(p.name))
        parsed: list[tuple[Path, ColumbiaLabel]] = []
        for p in candidates:
            try:
                parsed.append((p, parse_name(p.name)))
            except ValueError as e:
                self._bad(p, str(e), "rename it to the Columbia scheme or move it out")
        if not parsed:
            raise DataError(
                self.image_dir, f"no Columbia Gaze patches found ({NAME_PATTERN})",
                "check the path; the labels are read from the file names",
            )
        self.labels_csv = _labels_csv(self.root, self.image_dir)
        skip = self._read_csv(self.labels_csv, {p.name: lab for p, lab in parsed}) if self.labels_csv else set()
        kept = [(p, lab) for p, lab in parsed if p.name not in skip]
        self.files: list[Path] = [p for p, _ in kept]
        self.entries: list[ColumbiaLabel] = [lab for _, lab in kept]

    def _bad(self, path: Path, problem: str, fix: str) -> None:
        self.bad.append(BadFile(str(path), str(DataError(path, problem, fix))))

    def _read_csv(self, csv_path: Path, by_name: dict[str, ColumbiaLabel]) -> set[str]:
        """Check labels.csv against the names; return the file names to skip (bad rows)."""
        try:
            with open(csv_path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                fields = [c.strip() for c in (reader.fieldnames or [])]
                missing = [c for c in ("file", "bad_crop") if c not in fields]
                if missing:
                    self._bad(csv_path, f"missing column(s) {', '.join(missing)}; labels.csv ignored", _CSV_FIX)
                    return set()
                rows = [({(k or "").strip(): (v or "").strip() for k, v in r.items() if isinstance(v, str)}, reader.line_num)
                        for r in reader]
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            self._bad(csv_path, f"cannot read ({type(e).__name__}: {e}); labels.csv ignored", _CSV_FIX)
            return set()
        skip: set[str] = set()
        seen: set[str] = set()
        for row, line in rows:
            name = Path(row.get("file", "")).name
            where = f"labels.csv line {line}"
            if name not in by_name:
                if name and not _NAME_RE.match(name):
                    continue  # a file already reported as badly named, or not a patch
                self._bad(csv_path, f"{where}: {row.get('file', '')!r} is not among the patches", _CSV_FIX)
                continue
            image = self.image_dir / name
            if name in seen:
                self._bad(csv_path, f"{where}: {name} is listed twice (first row used)", _CSV_FIX)
                continue
            seen.add(name)
            problem = _disagreement(row, by_name[name])
            if problem:
                self._bad(image, f"{where} disagrees with the file name: {problem}", _CSV_FIX)
                skip.add(name)
            elif row.get("bad_crop") not in ("0", "1"):
                self._bad(image, f"{where}: bad_crop is {row.get('bad_crop')!r}, not 0 or 1", _CSV_FIX)
                skip.add(name)
            elif row["bad_crop"] == "1":
                self._bad(image, f"flagged bad_crop = 1 in {where} (a black or flat crop); skipped", "")
                skip.add(name)
        return skip

    def __len__(self) -> int:
        return len(self.files)

    def source_of(self, index: int) -> str:
        """The patch file of sample ``index``."""
        return str(self.files[index])

    def subject(self, index: int) -> str:
        """Subject id ("0001"...) of sample ``index``."""
        return self.entries[index].subject

    def __getitem__(self, index: int) -> EyeSample:
        path, label = self.files[index], self.entries[index]
        image = read_image(path)
        if self.crop is not None:
            image = eyescale.crop(image, patch_crop_box(image.shape, self.crop), self.crop)
        return EyeSample(
            image=image,
            gaze=pitchyaw_to_vector(label.gaze_pitchyaw()),
            head_pose=label.head_pitchyaw(),
            source=str(path),
        )


def _disagreement(row: dict[str, str], label: ColumbiaLabel) -> str:
    """'' when the row's label columns (those present) match the name, else what differs."""
    expected = {
        "subject": label.subject, "head_pose_deg": label.head_pose_deg,
        "gaze_v_deg": label.gaze_v_deg, "gaze_h_deg": label.gaze_h_deg, "eye": label.eye,
    }
    diffs = []
    for col in _CSV_LABELS:
        if col not in row:
            continue
        want = expected[col]
        got = row[col]
        if isinstance(want, int):
            try:
                same = float(got) == want
            except ValueError:
                same = False
        else:
            same = got.upper() == str(want).upper()
        if not same:
            diffs.append(f"{col} {got!r} vs {want}")
    return ", ".join(diffs)


def patch_crop_box(shape: tuple[int, ...], size: tuple[int, int]) -> eyescale.Box:
    """The box of an H×W patch that gives its eye the render eye scale at ``size`` (H, W).

    The eye is assumed ``W / 1.5`` px wide and centred (the patch is a square 1.5× the
    eye-landmark box); for a 64×64 patch and (36, 60) this is x −1..66, y 12..52.
    """
    h, w = shape[:2]
    half = w / PATCH_PER_EYE_WIDTH / 2
    eye = (w / 2 - half, h / 2 - half, w / 2 + half, h / 2 + half)
    return eyescale.canonical_box(eye, eyescale.EyeScale.for_renders(size))


def open_dataset(path: Path, **kw: object) -> ColumbiaGaze:
    """Open a folder of Columbia Gaze patches (options as :class:`ColumbiaGaze`)."""
    return ColumbiaGaze(path, **kw)  # type: ignore[arg-type]
