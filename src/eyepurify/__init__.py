"""eyepurify: purify real eye images into the style of synthetic ones."""

from eyepurify.errors import DataError, EyepurifyError, WeightsError
from eyepurify.sample import IRIS, PUPIL, SCLERA, SKIN, EyeSample

__version__ = "0.1.0"

__all__ = [
    "IRIS", "PUPIL", "SCLERA", "SKIN",
    "DataError", "EyeSample", "EyepurifyError", "WeightsError", "__version__",
]
