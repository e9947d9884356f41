"""MPIIGaze normalized eye patches: the original .mat files and two common HDF5 exports.

``mpiigaze-mat``: ``<root>/Data/Normalized/pXX/dayYY.mat`` (root = the MPIIGaze folder, or
the ``Data/Normalized`` folder itself). Each file holds ``filenames`` (N names such as
"0069.jpg") and a struct ``data`` with ``left`` and ``right``, each with ``image``
(N×36×60 uint8 grayscale), ``gaze`` (N×3 unit gaze vectors) and ``pose`` (N×3 head rotation
vectors). The labels follow the original MPIIGaze normalisation (Zhang et al., CVPR 2015,
with the scaling matrix): ``gaze`` is the normalized gaze vector (x right, y down,
z forward; looking at the camera is about (0, 0, -1)) and ``pose`` the normalized head pose.
As in hysts/pytorch_mpiigaze ``tools/preprocess_mpiigaze.py``: the head pose is reported as
(pitch, yaw) = (asin(z_y), atan2(z_x, z_z)) of the z column z of its rotation matrix, and
right eyes are mirrored (image flipped left-right, gaze x negated so gaze yaw flips sign,
head-pose yaw negated) so that every sample looks like a left eye.
``subset="evaluation"`` keeps only the images listed in ``Evaluation Subset/sample list for
eye image/pXX.txt`` (lines "day08/0069.jpg left"), the protocol of the MPIIGaze paper;
listed images that are missing from the .mat files are reported in ``bad``.

``mpiigaze-h5``: ``pXX/{image, gaze, pose}`` (the MPIIGaze.h5 written by pytorch_mpiigaze:
evaluation-subset images N×36×60, gaze and pose N×2 (pitch, yaw), right eyes already
mirrored) or ``train|test/pXX/{eye, gaze, head}`` (GazeML's MPIIGaze.h5, read by its
``datasources/hdf5.py``: gaze and head N×2 (pitch, yaw)). A gaze of 3 columns is read as a
vector. (pitch, yaw) use the MPIIGaze convention of :mod:`eyepurify.gaze.geometry`.
"""

from __future__ import annotations

import re
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import scipy.io

from eyepurify.data.base import BadFile, EyeDataset
from eyepurify.errors import DataError, read_error
from eyepurify.gaze.geometry import pitchyaw_to_vector
from eyepurify.sample import EyeSample

FORMAT = "mpiigaze-mat"
FORMAT_H5 = "mpiigaze-h5"
EVAL_DIR = Path("Evaluation Subset") / "sample list for eye image"
SIDES = ("left", "right")

_PERSON_RE = re.compile(r"^p\d{2}$")
_DAY_RE = re.compile(r"^day\d{2}\.mat$")
_H5_SUFFIXES = (".h5", ".hdf5", ".he5")
_MAT_ERRORS = (ValueError, TypeError, OSError, KeyError, IndexError, AttributeError,
               NotImplementedError, UnicodeDecodeError, EOFError, MemoryError, zlib.error,
               scipy.io.matlab.MatReadError)


# ---------------------------------------------------------------- conversions (pure)

def pose_to_pitchyaw(rvec: np.ndarray) -> np.ndarray:
    """(3,) head rotation vector (Rodrigues) -> (2,) (pitch, yaw) radians of its z axis.

    pitch = asin(z_y), yaw = atan2(z_x, z_z) for z the third column of the rotation matrix,
    as pytorch_mpiigaze's ``convert_pose``.
    """
    r = np.asarray(rvec, dtype=np.float64).reshape(-1)
    if r.size != 3 or not np.all(np.isfinite(r)):
        raise ValueError(f"head pose must be 3 finite numbers, got {r.tolist()}")
    z = cv2.Rodrigues(r.reshape(3, 1))[0][:, 2]
    return np.array([np.arcsin(np.clip(z[1], -1.0, 1.0)), np.arctan2(z[0], z[2])])


def mirror_gaze(gaze: np.ndarray) -> np.ndarray:
    """(..., 3) gaze vectors mirrored left-right (x negated): yaw changes sign."""
    return np.asarray(gaze, dtype=np.float64) * np.array([-1.0, 1.0, 1.0])


def mirror_pitchyaw(py: np.ndarray) -> np.ndarray:
    """(..., 2) (pitch, yaw) mirrored left-right (yaw negated)."""
    return np.asarray(py, dtype=np.float64) * np.array([1.0, -1.0])


def mirror_image(image: np.ndarray) -> np.ndarray:
    """H×W[×C] image flipped left-right (a new array)."""
    return np.ascontiguousarray(np.asarray(image)[:, ::-1])


def _gray_to_rgb(img: np.ndarray, where: str) -> np.ndarray:
    if img.dtype != np.uint8:
        raise DataError(where, f"eye image is {img.dtype}, expected uint8", "re-export the images as 8-bit")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 2:
        raise DataError(where, f"eye image has shape {img.shape}", "expected H×W grayscale or H×W×3")
    return np.ascontiguousarray(img)


def _unit(v: np.ndarray, where: str, what: str) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    n = np.linalg.norm(v)
    if v.size != 3 or not np.all(np.isfinite(v)) or not n > 0:
        raise DataError(where, f"{what} is not a finite non-zero 3-vector: {v.tolist()}", "re-export the labels")
    return v / n


# ---------------------------------------------------------------- .mat files

@dataclass(frozen=True)
class _Entry:
    mat: Path
    person: str
    day: str
    row: int
    side: str
    name: str


@dataclass(frozen=True)
class _MatData:
    names: list[str]
    image: dict[str, np.ndarray]
    gaze: dict[str, np.ndarray]
    pose: dict[str, np.ndarray]


def _names(value: Any, path: Path) -> list[str]:
    if value is None:
        raise DataError(path, "missing variable 'filenames'", "the .mat is not an MPIIGaze normalized file; re-download it")
    arr = np.atleast_1d(np.asarray(value, dtype=object)).reshape(-1)
    return [str(np.asarray(x).reshape(-1)[0] if np.ndim(x) else x).strip() for x in arr]


def read_mat_filenames(path: Path) -> list[str]:
    """The ``filenames`` of one MPIIGaze .mat (a light read). DataError for unreadable files."""
    try:
        m = scipy.io.loadmat(str(path), variable_names=["filenames"], squeeze_me=True)
    except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
        raise read_error(path, e) from None
    except _MAT_ERRORS as e:
        raise DataError(path, f"cannot read .mat ({type(e).__name__}: {e})",
                        "the file is corrupt or truncated; re-download it") from None
    return _names(m.get("filenames"), path)


def read_mat(path: Path) -> _MatData:
    """Load and check one MPIIGaze normalized .mat; DataError names the file and the field."""
    try:
        m = scipy.io.loadmat(str(path), struct_as_record=False, squeeze_me=True)
    except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
        raise read_error(path, e) from None
    except _MAT_ERRORS as e:
        raise DataError(path, f"cannot read .mat ({type(e).__name__}: {e})",
                        "the file is corrupt or truncated; re-download it") from None
    if "data" not in m:
        raise DataError(path, "missing variable 'data'", "the .mat is not an MPIIGaze normalized file; re-download it")
    names = _names(m.get("filenames"), path)
    n = len(names)
    fix = "the .mat is not an MPIIGaze normalized file; re-download it"
    images, gazes, poses = {}, {}, {}
    for side in SIDES:
        s = getattr(m["data"], side, None)
        if s is None:
            raise DataError(path, f"missing field 'data.{side}'", fix)
        arrays = {}
        for field, width in (("image", None), ("gaze", 3), ("pose", 3)):
            v = getattr(s, field, None)
            if v is None:
                raise DataError(path, f"missing field 'data.{side}.{field}'", fix)
            a = np.asarray(v)
            if width is None:
                a = a[None] if (n == 1 and a.ndim == 2) else a
                ok = a.ndim == 3 and a.dtype == np.uint8
                want = "N×H×W uint8"
            else:
                a = a.reshape(1, -1) if (n == 1 and a.ndim == 1) else a
                ok = a.ndim == 2 and a.shape[1] == width and a.dtype.kind in "iuf"
                want = f"N×{width} numbers"
            if not ok:
                raise DataError(path, f"data.{side}.{field} has shape {a.shape} {a.dtype}, expected {want}", fix)
            if a.shape[0] != n:
                raise DataError(path, f"data.{side}.{field} has {a.shape[0]} rows but filenames has {n}", fix)
            arrays[field] = a
        images[side], gazes[side], poses[side] = arrays["image"], arrays["gaze"], arrays["pose"]
    return _MatData(names=names, image=images, gaze=gazes, pose=poses)


def _person_dirs(norm: Path) -> list[Path]:
    try:
        return sorted(p for p in norm.iterdir() if p.is_dir() and _PERSON_RE.match(p.name))
    except OSError:
        return []


def _locate(path: Path) -> tuple[Path, Path | None]:
    """-> (the Normalized folder, the evaluation-list folder or None)."""
    if (path / "Data" / "Normalized").is_dir():
        return path / "Data" / "Normalized", _existing(path / EVAL_DIR)
    if _person_dirs(path):
        base = path.parent.parent if (path.name == "Normalized" and path.parent.name == "Data") else None
        return path, (_existing(base / EVAL_DIR) if base is not None else None)
    raise DataError(path, "no Data/Normalized/pXX folders found",
                    "give the MPIIGaze folder or its Data/Normalized folder")


def _existing(p: Path) -> Path | None:
    return p if p.is_dir() else None


def sniff(path: Path) -> str | bool:
    """FORMAT for an MPIIGaze .mat folder, FORMAT_H5 for an HDF5 export, else False."""
    if sniff_mat(path):
        return FORMAT
    if sniff_h5(path):
        return FORMAT_H5
    return False


def sniff_mat(path: Path) -> bool:
    """True for an MPIIGaze folder (or its Data/Normalized folder) holding pXX/dayYY.mat."""
    path = Path(path)
    if not path.is_dir():
        return False
    norm = path / "Data" / "Normalized" if (path / "Data" / "Normalized").is_dir() else path
    for person in _person_dirs(norm)[:3]:
        try:
            if any(_DAY_RE.match(f.name) for f in person.iterdir()):
                return True
        except OSError:
            continue
    return False


class _LRU:
    """A small least-recently-used cache of loaded .mat files."""

    def __init__(self, size: int) -> None:
        self.size = max(1, int(size))
        self._d: OrderedDict[Path, _MatData] = OrderedDict()

    def get(self, path: Path) -> _MatData:
        if path in self._d:
            self._d.move_to_end(path)
            return self._d[path]
        data = read_mat(path)
        self._d[path] = data
        while len(self._d) > self.size:
            self._d.popitem(last=False)
        return data


class MPIIGazeMatDataset(EyeDataset):
    """MPIIGaze normalized .mat files as 36×60 eye samples (right eyes mirrored by default).

    root: the MPIIGaze folder or its ``Data/Normalized`` folder.
    subset: "evaluation" (the images listed in ``Evaluation Subset``), "all" (every left and
        right eye of every .mat), or None: "evaluation" when the lists exist, else "all".
    persons: e.g. ["p00", "p03"]; None for all.
    mirror_right: flip right eyes (and their gaze/head yaw) to look like left eyes.
    cache_size: how many loaded .mat files to keep in memory.
    """

    format_name = FORMAT

    def __init__(self, root: Path, subset: str | None = None, persons: list[str] | None = None,
                 mirror_right: bool = True, cache_size: int = 4) -> None:
        super().__init__()
        self.root = Path(root)
        self.normalized, self.eval_dir = _locate(self.root)
        if subset is None:
            subset = "evaluation" if self.eval_dir is not None else "all"
        if subset not in ("evaluation", "all"):
            raise ValueError(f"subset must be 'evaluation' or 'all', got {subset!r}")
        self.subset = subset
        self.mirror_right = mirror_right
        self._cache = _LRU(cache_size)
        dirs = _person_dirs(self.normalized)
        if persons is not None:
            wanted = set(persons)
            unknown = sorted(wanted - {d.name for d in dirs})
            if unknown:
                raise DataError(self.normalized, f"no folder for persons {unknown}",
                                f"choose from {[d.name for d in dirs]}")
            dirs = [d for d in dirs if d.name in wanted]
        self.entries: list[_Entry] = []
        if subset == "all":
            for d in dirs:
                self._index_all(d)
        else:
            if self.eval_dir is None:
                raise DataError(self.root / EVAL_DIR, "evaluation lists not found",
                                "give the full MPIIGaze folder, or use subset='all'")
            for d in dirs:
                self._index_evaluation(d)
        if not self.entries:
            why = f" ({len(self.bad)} problem(s), first: {self.bad[0].reason})" if self.bad else ""
            raise DataError(self.normalized, f"no usable eye images{why}",
                            "check the .mat files and the evaluation lists")

    def _index_all(self, person_dir: Path) -> None:
        for mat in sorted(p for p in person_dir.iterdir() if _DAY_RE.match(p.name)):
            try:
                names = read_mat_filenames(mat)
            except DataError as e:
                self.bad.append(BadFile(str(mat), str(e)))
                continue
            for row, name in enumerate(names):
                for side in SIDES:
                    self.entries.append(_Entry(mat, person_dir.name, mat.stem, row, side, name))

    def _index_evaluation(self, person_dir: Path) -> None:
        listing = self.eval_dir / f"{person_dir.name}.txt"  # type: ignore[operator]
        try:
            lines = listing.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as e:
            self.bad.append(BadFile(str(listing), f"{listing}: cannot read evaluation list ({e.strerror})"))
            return
        names_of: dict[str, dict[str, int] | None] = {}
        missing: dict[str, list[str]] = {}
        for k, line in enumerate(lines, 1):
            parts = line.split()
            if not parts:
                continue
            day_file = parts[0].split("/")
            if len(parts) != 2 or len(day_file) != 2 or parts[1] not in SIDES:
                self.bad.append(BadFile(str(listing), f"{listing}: line {k} is not 'dayXX/NNNN.jpg left|right': {line!r}"))
                continue
            (day, fname), side = day_file, parts[1]
            if day not in names_of:
                mat = person_dir / f"{day}.mat"
                try:
                    names_of[day] = {n: i for i, n in enumerate(read_mat_filenames(mat))}
                except DataError as e:
                    names_of[day] = None
                    self.bad.append(BadFile(str(mat), str(e)))
            index = names_of[day]
            if index is None:
                continue
            if fname not in index:
                missing.setdefault(day, []).append(f"{fname} {side}")
                continue
            self.entries.append(_Entry(person_dir / f"{day}.mat", person_dir.name, day, index[fname], side, fname))
        for day, items in missing.items():
            mat = person_dir / f"{day}.mat"
            self.bad.append(BadFile(str(mat), (
                f"{mat}: {len(items)} image(s) listed in {listing.name} are not in its filenames "
                f"(e.g. {', '.join(items[:3])})")))

    def __len__(self) -> int:
        return len(self.entries)

    def source_of(self, index: int) -> str:
        e = self.entries[index]
        return f"{e.mat}#{e.name}/{e.side}"

    def __getitem__(self, index: int) -> EyeSample:
        e = self.entries[index]
        data = self._cache.get(e.mat)
        if e.row >= len(data.names) or data.names[e.row] != e.name:
            raise DataError(e.mat, f"{e.name} is no longer at row {e.row}", "the file changed since indexing; reopen the dataset")
        where = f"{e.mat}#{e.name}/{e.side}"
        image = _gray_to_rgb(data.image[e.side][e.row], where)
        gaze = _unit(data.gaze[e.side][e.row], where, "gaze")
        try:
            head = pose_to_pitchyaw(data.pose[e.side][e.row])
        except ValueError as err:
            raise DataError(where, str(err), "re-export the labels") from None
        if e.side == "right" and self.mirror_right:
            image, gaze, head = mirror_image(image), mirror_gaze(gaze), mirror_pitchyaw(head)
        stem = e.name.rsplit(".", 1)[0]
        return EyeSample(image=image, gaze=gaze, head_pose=head, source=f"{e.person}/{e.day}/{stem}/{e.side}")

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = _LRU(self._cache.size)
        return state


# ---------------------------------------------------------------- HDF5 exports

@dataclass(frozen=True)
class _H5Group:
    key: str
    image: str
    gaze: str
    pose: str | None
    n: int


def _h5_layout(f: Any) -> tuple[str, list[tuple[str, str, str, str | None]]] | None:
    """-> (layout, [(group key, image name, gaze name, pose name)]) or None when unknown."""
    import h5py

    def has(g: Any, name: str) -> bool:
        return isinstance(g.get(name), h5py.Dataset)

    groups = []
    persons = [k for k in f.keys() if _PERSON_RE.match(k) and isinstance(f[k], h5py.Group)]
    if persons and all(has(f[k], "image") and has(f[k], "gaze") for k in persons):
        for k in sorted(persons):
            groups.append((k, "image", "gaze", "pose" if has(f[k], "pose") else None))
        return "person", groups
    splits = [s for s in ("train", "test") if isinstance(f.get(s), h5py.Group)]
    for s in splits:
        for k in sorted(f[s].keys()):
            g = f[s][k]
            if _PERSON_RE.match(k) and isinstance(g, h5py.Group) and has(g, "eye") and has(g, "gaze"):
                groups.append((f"{s}/{k}", "eye", "gaze", "head" if has(g, "head") else None))
    return ("split", groups) if groups else None


def sniff_h5(path: Path) -> bool:
    """True for an HDF5 file with the pXX/{image,gaze} or train|test/pXX/{eye,gaze} layout."""
    path = Path(path)
    if not (path.is_file() and path.suffix.lower() in _H5_SUFFIXES):
        return False
    import h5py

    try:
        if not h5py.is_hdf5(str(path)):
            return False
        with h5py.File(path, "r") as f:
            return _h5_layout(f) is not None
    except Exception:  # a damaged file is not this format; opening it says why
        return False


class MPIIGazeH5Dataset(EyeDataset):
    """MPIIGaze eye patches from an HDF5 export (pytorch_mpiigaze or GazeML layout).

    persons: keep only these person ids (e.g. ["p00"]); split: "train" or "test" to keep one
    split of the GazeML layout (None: all). The file is opened lazily in each process.
    """

    format_name = FORMAT_H5

    def __init__(self, path: Path, persons: list[str] | None = None, split: str | None = None) -> None:
        super().__init__()
        import h5py

        self.path = Path(path)
        if split not in (None, "train", "test"):
            raise ValueError(f"split must be 'train', 'test' or None, got {split!r}")
        try:
            f = h5py.File(self.path, "r")
        except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
            raise read_error(self.path, e) from None
        except OSError as e:
            raise DataError(self.path, f"cannot open HDF5 ({e})", "the file is corrupt or not HDF5") from None
        self.groups: list[_H5Group] = []
        try:
            with f:
                self._index(f, persons, split)
        except DataError:
            raise
        except Exception as e:  # h5py raises many kinds on a damaged file
            raise DataError(self.path, f"cannot read HDF5 ({type(e).__name__}: {e})",
                            "the file is corrupt or truncated; re-export it") from None
        if not self.groups:
            why = f" ({len(self.bad)} skipped, first: {self.bad[0].reason})" if self.bad else ""
            raise DataError(self.path, f"no usable person groups after the persons/split filter{why}",
                            "check the persons and split options")
        self._starts = np.cumsum([0] + [g.n for g in self.groups])
        self._h5: Any = None

    def _index(self, f: Any, persons: list[str] | None, split: str | None) -> None:
        found = _h5_layout(f)
        if found is None:
            raise DataError(self.path, "unrecognised HDF5 layout",
                            "expected pXX/{image,gaze,pose} or train|test/pXX/{eye,gaze,head}")
        self.layout, specs = found
        for key, image, gaze, pose in specs:
            person = key.rsplit("/", 1)[-1]
            if persons is not None and person not in persons:
                continue
            if split is not None and not key.startswith(split + "/"):
                continue
            g = self._check_group(f[key], key, image, gaze, pose)
            if g is not None:
                self.groups.append(g)

    def _check_group(self, g: Any, key: str, image: str, gaze: str, pose: str | None) -> _H5Group | None:
        im, gz = g[image], g[gaze]
        where = f"{self.path}#{key}"
        problems = []
        if im.dtype != np.uint8 or im.ndim not in (3, 4) or (im.ndim == 4 and im.shape[3] not in (1, 3)):
            problems.append(f"{image} is {im.shape} {im.dtype}, expected N×H×W[×1|3] uint8")
        if gz.ndim != 2 or gz.shape[1] not in (2, 3):
            problems.append(f"{gaze} is {gz.shape}, expected N×2 (pitch, yaw) or N×3")
        if pose is not None and (g[pose].ndim != 2 or g[pose].shape[1] != 2):
            problems.append(f"{pose} is {g[pose].shape}, expected N×2 (pitch, yaw)")
        if problems:
            self.bad.append(BadFile(where, f"{where}: " + "; ".join(problems)))
            return None
        counts = [im.shape[0], gz.shape[0]] + ([g[pose].shape[0]] if pose else [])
        n = min(counts)
        if len(set(counts)) > 1:
            self.bad.append(BadFile(where, f"{where}: datasets have {counts} rows; using the first {n}"))
        return _H5Group(key, f"{key}/{image}", f"{key}/{gaze}", f"{key}/{pose}" if pose else None, n)

    def __len__(self) -> int:
        return int(self._starts[-1])

    def source_of(self, index: int) -> str:
        gi = int(np.searchsorted(self._starts, index, side="right")) - 1
        return f"{self.path}#{self.groups[gi].key}/{index - int(self._starts[gi])}" if 0 <= gi < len(self.groups) else f"{self.path}#{index}"

    def _file(self) -> Any:
        if self._h5 is None:
            import h5py

            try:
                self._h5 = h5py.File(self.path, "r")
            except OSError as e:
                raise DataError(self.path, f"cannot open HDF5 ({e})", "the file is corrupt or not HDF5") from None
        return self._h5

    def __getitem__(self, index: int) -> EyeSample:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        gi = int(np.searchsorted(self._starts, index, side="right")) - 1
        g, row = self.groups[gi], index - int(self._starts[gi])
        where = f"{self.path}#{g.key}/{row}"
        f = self._file()
        try:
            image = np.asarray(f[g.image][row])
            gz = np.asarray(f[g.gaze][row], dtype=np.float64)
            head = np.asarray(f[g.pose][row], dtype=np.float64) if g.pose else None
        except (OSError, KeyError, ValueError) as e:
            raise DataError(where, f"cannot read ({e})", "the file is corrupt or truncated") from None
        if gz.size == 2:
            if not np.all(np.isfinite(gz)):
                raise DataError(where, f"gaze is not finite: {gz.tolist()}", "re-export the labels")
            gaze = pitchyaw_to_vector(gz)
        else:
            gaze = _unit(gz, where, "gaze")
        if head is not None and not np.all(np.isfinite(head)):
            raise DataError(where, f"head pose is not finite: {head.tolist()}", "re-export the labels")
        return EyeSample(image=_gray_to_rgb(image, where), gaze=gaze, head_pose=head, source=f"{g.key}/{row}")

    def close(self) -> None:
        """Close the open HDF5 handle (reopened on the next access)."""
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_h5"] = None
        return state


# ---------------------------------------------------------------- entry points

def open_mat(path: Path, **kw: Any) -> MPIIGazeMatDataset:
    """Open MPIIGaze .mat files (options: subset, persons, mirror_right, cache_size)."""
    return MPIIGazeMatDataset(Path(path), **kw)


def open_h5(path: Path, **kw: Any) -> MPIIGazeH5Dataset:
    """Open an MPIIGaze HDF5 export (options: persons, split)."""
    return MPIIGazeH5Dataset(Path(path), **kw)


def open_dataset(path: Path, **kw: Any) -> EyeDataset:
    """An HDF5 file -> :class:`MPIIGazeH5Dataset`; a folder -> :class:`MPIIGazeMatDataset`."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in _H5_SUFFIXES:
        return open_h5(path, **kw)
    return open_mat(path, **kw)


FORMATS = {FORMAT: (sniff_mat, open_mat), FORMAT_H5: (sniff_h5, open_h5)}
