"""The dataset interface every loader implements, and skip-and-report scanning."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

from eyepurify.errors import DataError
from eyepurify.sample import EyeSample


@dataclass(frozen=True)
class BadFile:
    """A file that could not be used, and why (one line)."""

    path: str
    reason: str


class EyeDataset(ABC):
    """A sequence of :class:`EyeSample` read lazily from disk.

    Subclasses index their files in ``__init__`` (cheap: names only, plus whatever the
    format must parse to count samples) and decode in ``__getitem__``, which raises
    :class:`DataError` naming the file when one is bad. Problems found while indexing
    (listed files that are missing, unreadable index files) go into ``self.bad``.
    """

    format_name: str = "unknown"

    def __init__(self) -> None:
        self.bad: list[BadFile] = []

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, index: int) -> EyeSample: ...

    def source_of(self, index: int) -> str:
        """The file (or file#entry) sample ``index`` is read from, for error messages."""
        root = getattr(self, "root", None) or getattr(self, "path", None) or self.format_name
        return f"{root}#{index}"

    def get_checked(self, index: int) -> EyeSample:
        """``self[index]``, with any failure turned into a one-line DataError naming the file
        (a loader's own DataError as it is; anything else, e.g. a RecursionError or
        OverflowError from a malformed file, with its type)."""
        try:
            return self[index]
        except DataError:
            raise
        except Exception as e:
            raise DataError(
                self.source_of(index), f"unreadable sample ({type(e).__name__}: {e})",
                "the file is corrupt or malformed; fix or remove it",
            ) from None

    def __iter__(self) -> Iterator[EyeSample]:
        for i in range(len(self)):
            yield self[i]

    def iter_valid(self) -> Iterator[tuple[int, EyeSample]]:
        """Yield (index, sample) for every readable sample; bad ones are appended to ``bad``."""
        for i in range(len(self)):
            try:
                sample = self.get_checked(i)
            except DataError as e:
                self.bad.append(BadFile(e.path, str(e)))
                continue
            yield i, sample

    def scan(self, progress: bool = False) -> tuple[list[int], list[BadFile]]:
        """Decode every sample once; return (good indices, all bad files)."""
        from eyepurify.progress import progress_bar

        good = []
        it = self.iter_valid()
        for i, _ in progress_bar(it, total=len(self), desc=f"scan {self.format_name}", disable=not progress):
            good.append(i)
        return good, list(self.bad)
