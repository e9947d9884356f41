"""Eye-data formats (one module each) and the procedural renderer."""

from eyepurify.data.base import BadFile, EyeDataset

__all__ = ["BadFile", "EyeDataset"]
