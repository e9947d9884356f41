"""Eye-data formats (one module each) and the procedural renderer."""

from eyepurify.data.base import BadFile, EyeDataset
from eyepurify.data.detect import detect_format, open_dataset

__all__ = ["BadFile", "EyeDataset", "detect_format", "open_dataset"]
