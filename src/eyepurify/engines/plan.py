"""Planning a run: what it is given and the output names of every input, claimed in the
manifest before any work.

Files, folders and globs become input items (:func:`expand_inputs`; a folder means the same to
every command: a dataset opened by ``open_dataset``, while ``purify --faces`` reads the photos
and videos inside it). Image files are named first (by their path relative to their common
folder), then datasets (an image folder keeps its file names, any other format its indexed
names), then videos (their own names), in input order (:func:`plan`, :func:`plan_files`).

``--shard K/N``: every run plans the *whole* job first (so each output gets the name it would
have in one unsharded run, collisions resolved over all inputs), then keeps the items whose
position in the sorted list of output keys is ≡ K − 1 (mod N) (:func:`keep_shard`). The N
shards are disjoint, cover every input, and their ``--out`` folders merge (copy them into
one) without a name collision; only ``manifest.json`` / ``report.txt`` are per shard.
"""

from __future__ import annotations

import functools
import glob
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from eyepurify.engines.job import Unit, describe_failure
from eyepurify.engines.manifest import Manifest, with_suffix
from eyepurify.errors import EyepurifyError
from eyepurify.io import IMAGE_SUFFIXES, not_a_file_reason, read_image
from eyepurify.sample import EyeSample

#: Output layouts (templates for :meth:`Manifest.claim`): purify writes the purified image and
#: the label map it used, segment the label map and its overlay on the image.
IMAGE_LAYOUT = ("{name}", "masks/{png}")
LABEL_LAYOUT = ("labels/{png}", "overlays/{png}")
MISSING = "no such image, video or folder"


def _unique(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def image_unit(path: Path, name: str, outs: list[str], mask_names: tuple[str, ...] = ()) -> Unit:
    """The unit of an image file that asked for ``name`` and got output names ``outs``."""
    return Unit(outs[0], str(path), outs, read=lambda: EyeSample(image=read_image(path), source=str(path)),
                mask_names=mask_names, where=str(path), name=name)


def video_unit(path: Path, name: str, outs: list[str]) -> Unit:
    """The unit of a video file that asked for ``name`` and got output names ``outs``."""
    return Unit(outs[0], str(path), outs, video=path, where=str(path), name=name)


def _image_units(items: list[InputItem], manifest: Manifest, layout: Sequence[str]) -> list[Unit]:
    """Explicit image files: named by their path relative to their common folder."""
    units = []
    for it, rel in zip(items, relative_names([it.path for it in items]), strict=True):
        name = with_suffix(rel, ".png")
        units.append(image_unit(it.path, name, manifest.claim(str(it.path), name, layout),
                                _unique((name, it.path.stem + ".png"))))
    return units


#: Loader options that give a dataset's samples as they are filed (Columbia patches at their own
#: 64×64 instead of a 36×60 crop): the purifier finds the eye itself, and ``--output full``
#: keeps the input's size.
AS_FILED: dict[str, dict[str, object]] = {"columbia": {"crop": None}}


def _filed_name(source: Path, root: Path) -> str:
    """A dataset sample's output name: its file's path relative to the dataset root, as .png."""
    try:
        rel = source.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        rel = source.name
    return with_suffix(rel, ".png")


def _dataset_units(path: Path, fmt: str | None, manifest: Manifest, layout: Sequence[str], labels: bool) -> list[Unit]:
    """Every sample of a dataset: a sample that is a file keeps its path relative to the
    dataset (image folders, Columbia, UnityEyes, render folders), others get indexed names
    (``<dataset>_000012.png``). ``labels`` False: a folder's
    ``masks/`` are not read (an image without one is then no bad sample)."""
    from eyepurify.data import open_dataset
    from eyepurify.data.detect import detect_format
    from eyepurify.data.folder import FORMAT as FOLDER
    from eyepurify.data.folder import ImageFolder

    fmt = dataset_format(path, fmt) or detect_format(path)
    ds = open_dataset(path, format=fmt, **({"masks": False} if not labels and fmt == FOLDER else {}),
                      **AS_FILED.get(fmt, {}))
    root = Path(getattr(ds, "image_dir", path))
    for b in ds.bad:
        manifest.fail_input(b.path, b.reason)
    base = path.name if path.is_dir() else path.stem
    units = []
    for i in range(len(ds)):
        source = ds.source_of(i)  # the file (or file#entry): traceable, and stable when files are added
        if isinstance(ds, ImageFolder):
            rel = ds.files[i].relative_to(ds.image_dir).as_posix()
            wanted, stem = with_suffix(rel, ".png"), ds.files[i].stem + ".png"
        elif "#" not in source and os.path.isfile(source):  # a sample with its own file keeps its name
            wanted, stem = _filed_name(Path(source), root), Path(source).stem + ".png"
        else:  # indexed names for samples without a file of their own (.mat/.h5 entries, frames)
            wanted = f"{base}_{i:06d}.png"
            stem = wanted if "#" in source else Path(source).stem + ".png"
        outs = manifest.claim(source, wanted, layout)
        units.append(Unit(outs[0], source, outs, read=functools.partial(ds.get_checked, i), mask_names=_unique((wanted, stem)),
                          where=source, from_dataset=True, thread_safe=isinstance(ds, ImageFolder), name=wanted))
    return units


def plan(
    items: list[InputItem],
    manifest: Manifest,
    layout: Sequence[str],
    *,
    fmt: str | None = None,
    labels: bool = True,
    videos: str | None = None,
    missing: str = MISSING,
) -> list[Unit]:
    """Claim output names for every input (image files first, then datasets, videos, in
    input order) and return their units. Inputs that cannot be used become failed lines:
    ``missing`` is the reason for a missing one; ``videos`` not None is the reason videos
    are refused (else they are claimed under their own names)."""
    units = _image_units([it for it in items if it.kind == "image"], manifest, layout)
    found: list[Unit] = []
    for it in items:
        if it.kind == "missing":
            manifest.fail_input(str(it.path), f"{it.path}: {it.reason or missing}")
        elif it.kind == "dataset":
            try:
                units += _dataset_units(it.path, fmt, manifest, layout, labels)
            except Exception as e:
                manifest.fail_input(str(it.path), describe_failure(e, str(it.path)))
        elif it.kind == "video":
            if videos is not None:
                manifest.fail_input(str(it.path), f"{it.path}: {videos}")
            else:
                name = with_suffix(it.path.name, it.path.suffix.lower())
                found.append(video_unit(it.path, name, manifest.claim(str(it.path), name)))
    return units + found


def expand_files(items: list[InputItem], manifest: Manifest) -> tuple[list[Path], list[Path]]:
    """(image files, video files): explicit ones and those directly or deeper in folders
    (``purify --faces``); anything else is a failed line."""
    images, videos = [], []
    for it in items:
        if it.kind == "missing":
            manifest.fail_input(str(it.path), f"{it.path}: {it.reason or MISSING}")
        elif it.kind == "image":
            images.append(it.path)
        elif it.kind == "video":
            videos.append(it.path)
        elif it.path.is_dir():
            files = sorted(p for p in it.path.rglob("*") if p.is_file() and not p.name.startswith("."))
            images += [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
            videos += [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
        else:
            manifest.fail_input(str(it.path), f"{it.path}: --faces takes face photos, videos or folders of them")
    return images, videos


def plan_files(items: list[InputItem], manifest: Manifest, image_layout: Sequence[str],
               video_layout: Sequence[str]) -> list[Unit]:
    """Photos, then videos (:func:`expand_files`), named by their path relative to their
    common folder; ``video_layout`` may say ``{ext}`` for the video's own suffix."""
    images, videos = expand_files(items, manifest)
    names = relative_names(images + videos)
    units = [image_unit(p, rel, manifest.claim(str(p), with_suffix(rel, ".png"), image_layout))
             for p, rel in zip(images, names[: len(images)], strict=True)]
    for p, rel in zip(videos, names[len(images):], strict=True):
        ext = p.suffix.lower()
        e = ext.replace("{", "{{").replace("}", "}}")
        layout = [t.replace("{ext}", e) for t in video_layout]
        units.append(video_unit(p, rel, manifest.claim(str(p), with_suffix(rel, ext), layout)))
    return units


def keep_shard(manifest: Manifest, shard: tuple[int, int] | None) -> set[str] | None:
    """``--shard K/N`` (the module docstring): once every input's names are claimed,
    drop the manifest items outside the shard and return the keys kept (None: no shard, all)."""
    if shard is None:
        return None
    keep = in_shard(list(manifest.items), shard)
    manifest.items = {k: v for k, v in manifest.items.items() if k in keep}
    return keep


VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".m4v")
#: single-file dataset formats, by suffix (a damaged one is then reported by its loader)
DATASET_SUFFIXES = {".h5": "mpiigaze-h5", ".hdf5": "mpiigaze-h5", ".he5": "mpiigaze-h5"}


@dataclass(frozen=True)
class InputItem:
    """One thing to process: an image file, a video file or a dataset (folder or file);
    "missing" carries the reason it cannot be used."""

    kind: str  # "image" | "video" | "dataset" | "missing"
    path: Path
    reason: str = ""


def _classify(p: Path) -> InputItem:
    if p.is_dir():
        return InputItem("dataset", p)
    if not os.path.lexists(p):
        return InputItem("missing", p, "no such file or folder")
    why = not_a_file_reason(p)
    if why:
        return InputItem("missing", p, why)
    suffix = p.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return InputItem("video", p)
    if suffix in IMAGE_SUFFIXES:
        return InputItem("image", p)
    if suffix in DATASET_SUFFIXES:
        return InputItem("dataset", p)
    try:  # a dataset file (an MPIIGaze HDF5 export)
        from eyepurify.data.detect import detect_format

        detect_format(p)
        return InputItem("dataset", p)
    except Exception:
        return InputItem("missing", p, f"unsupported file type {suffix or '(no suffix)'} "
                         f"(images: {' '.join(IMAGE_SUFFIXES)}; videos: {' '.join(VIDEO_SUFFIXES)}; "
                         "datasets: folders or .h5 files)")


def expand_inputs(inputs: list[str]) -> list[InputItem]:
    """Files, folders and globs → items in a stable order (globs sorted, repeats dropped: the
    same file however spelled, by its resolved path)."""
    items: list[InputItem] = []
    seen: set[str] = set()
    for raw in inputs:
        if re.search(r"[*?\[]", raw) and not os.path.lexists(raw):
            paths = [Path(p) for p in sorted(glob.glob(raw))]
            if not paths:
                items.append(InputItem("missing", Path(raw), "the pattern matched no files"))
        else:
            paths = [Path(raw)]
        for p in paths:
            key = os.path.realpath(p)
            if key not in seen:
                seen.add(key)
                items.append(_classify(p))
    return items


def dataset_format(path: Path, fmt: str | None = None) -> str | None:
    """``fmt``, else the format a dataset file's suffix names (``.h5``), else None (detect)."""
    return fmt or (DATASET_SUFFIXES.get(path.suffix.lower()) if path.is_file() else None)


def safe_name(source: str) -> str:
    """A file-name-safe id from a sample source ("p01/day03/0001 left" → "p01_day03_0001_left")."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", source).strip("._")
    return s or "sample"


def relative_names(paths: list[Path]) -> list[str]:
    """POSIX paths of files relative to their deepest common folder (just the file names
    when they share one): ``a/d/x.png b/d/x.png`` → ``a/d/x.png b/d/x.png``."""
    absolute = [os.path.abspath(p) for p in paths]
    if not absolute:
        return []
    base = os.path.commonpath([os.path.dirname(a) for a in absolute])
    return [PurePosixPath(*Path(os.path.relpath(a, base)).parts).as_posix() for a in absolute]


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """"2/4" → (2, 4) (1 ≤ K ≤ N); None or "" → None; EyepurifyError otherwise."""
    if not text:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise EyepurifyError(f"bad --shard {text!r}: use K/N with 1 <= K <= N, e.g. --shard 1/4")
    return int(m.group(1)), int(m.group(2))


def in_shard(keys: list[str], shard: tuple[int, int] | None) -> set[str]:
    """The keys shard ``(K, N)`` keeps (all of them for None)."""
    if shard is None:
        return set(keys)
    k, n = shard
    return {key for i, key in enumerate(sorted(set(keys))) if i % n == k - 1}
