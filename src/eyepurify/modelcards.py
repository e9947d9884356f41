"""Model cards: ``docs/models/NAME.md`` for every model file shipped in
``src/eyepurify/weights/`` (read by ``eyepurify models``).

A card starts with ``field: value`` lines between two ``---`` lines (file, kind, style,
training data, command, real data, limitations), then free Markdown. Adding a model is
adding its weights file and its card; nothing here lists models by name. The eye scale is
read from the model file's metadata, not the card.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import eyepurify

WEIGHTS = Path(eyepurify.__file__).resolve().parent / "weights"
#: The cards of a source checkout (an editable install, as README line 1 does).
CARDS = Path(eyepurify.__file__).resolve().parents[2] / "docs" / "models"
FIELDS = ("file", "kind", "style", "training data", "command", "real data", "limitations")


@dataclass
class Card:
    name: str
    path: Path
    fields: dict[str, str] = field(default_factory=dict)
    body: str = ""

    @property
    def file(self) -> Path:
        return WEIGHTS / self.fields.get("file", f"{self.name}.safetensors")


def parse(path: Path) -> Card:
    """A card file → :class:`Card` (ValueError naming the file when its header is malformed)."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---" or "---" not in (ln.strip() for ln in lines[1:]):
        raise ValueError(f"{path}: a model card starts with '---', its 'field: value' lines, then '---'")
    end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    fields = {}
    for ln in lines[1:end]:
        key, sep, value = ln.partition(":")
        if not sep:
            raise ValueError(f"{path}: header line {ln!r} is not 'field: value'")
        fields[key.strip().lower()] = value.strip()
    return Card(path.stem, path, fields, "\n".join(lines[end + 1:]).strip() + "\n")


def cards(folder: Path = CARDS) -> list[Card]:
    """Every card in ``folder`` (README.md is the index, not a card), by name."""
    if not folder.is_dir():
        return []
    return [parse(p) for p in sorted(folder.glob("*.md")) if p.name.lower() != "readme.md"]


def shipped_files() -> list[Path]:
    return sorted(WEIGHTS.glob("*.safetensors"))


def eye_scale_text(path: Path) -> str:
    """The eye scale a model file records ("72×120, eye width 76 px"), or its working size."""
    from eyepurify.models.export import read_model_meta

    try:
        meta = read_model_meta(path)
    except Exception as e:  # a damaged file: say so in the listing
        return f"unreadable ({type(e).__name__})"
    es = meta.get("eye_scale") if isinstance(meta, dict) else None
    if isinstance(es, dict) and isinstance(es.get("size"), list):
        h, w = es["size"]
        return f"{h}×{w}, eye width {es.get('eye_width', '?')} px"
    size = meta.get("size") if isinstance(meta, dict) else None
    if not isinstance(size, list):
        train = meta.get("train") if isinstance(meta, dict) else None
        size = train.get("size") if isinstance(train, dict) else None
    return f"{size[0]}×{size[1]}" if isinstance(size, list) and len(size) == 2 else "its input size"
