"""Market data: loading and validating bars, resampling, synthetic bars and bundled samples.

Everything here returns frames in one contract (see ``loaders``): a UTC ``DatetimeIndex`` named
``time``, strictly increasing, and float64 ``open, high, low, close, volume`` columns.
"""

from alphaloop.data.loaders import load_bars, load_many
from alphaloop.data.resample import resample_bars
from alphaloop.data.sample_data import SAMPLES, load_sample, sample_news_path, sample_paths, write_samples
from alphaloop.data.synthetic import REGIMES, generate_bars
from alphaloop.data.validation import validate_bars

__all__ = [
    "REGIMES",
    "SAMPLES",
    "generate_bars",
    "load_bars",
    "load_many",
    "load_sample",
    "resample_bars",
    "sample_news_path",
    "sample_paths",
    "validate_bars",
    "write_samples",
]
