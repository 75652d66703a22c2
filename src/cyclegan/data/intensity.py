"""Intensity windows: which stored values map onto the networks' [-1, 1], per domain.

A window is either fixed, `IntensityWindow(low, high)` (CT in Hounsfield units: -1000,2000),
or percentile, resolved from the data itself (MR, whose scale differs between scans): the
`p_low` and `p_high` percentiles of each 2-D image (scope "image") or of each whole file, a
volume or a 2-D image (scope "volume"). [low, high] maps linearly onto [-1, 1]; values outside
are clipped and counted, so a run can say how much it clipped. `from_unit` inverts the mapping,
so a CT translated in HU comes back in HU.

Without a window (`default_window`): 8-bit images map [0, 255] exactly as the project always
did (v / 127.5 - 1), 16-bit integers their full range; float images must be given one, since
stretching each image from its own minimum to maximum would give the same tissue a different
value in every slice.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cyclegan.errors import ConfigError

WINDOW_SCOPES = ("image", "volume")
PERCENTILE_PREFIX = "percentile:"
WINDOW_FLAGS = "--window-a/--window-b"


@dataclass(frozen=True)
class IntensityWindow:
    """[low, high] (fixed) or the [p_low, p_high] percentiles of the data (scope "image" or
    "volume"). A percentile window must be `resolved` on its data before it maps values."""

    low: float | None = None
    high: float | None = None
    p_low: float | None = None
    p_high: float | None = None
    scope: str = "volume"

    def __post_init__(self) -> None:
        fixed = self.low is not None or self.high is not None
        percentile = self.p_low is not None or self.p_high is not None
        if fixed == percentile:
            raise ConfigError("an intensity window is either LOW,HIGH or percentile:P_LOW,P_HIGH; give one of them")
        if fixed:
            _check_bounds(self.low, self.high, "LOW,HIGH")
        else:
            _check_bounds(self.p_low, self.p_high, "percentile:P_LOW,P_HIGH")
            if not 0.0 <= self.p_low < self.p_high <= 100.0:  # type: ignore[operator]
                raise ConfigError(f"percentiles must satisfy 0 <= P_LOW < P_HIGH <= 100, got {self.p_low},{self.p_high}")
        if self.scope not in WINDOW_SCOPES:
            raise ConfigError(f"window scope must be one of {', '.join(WINDOW_SCOPES)}, got {self.scope!r}")

    @property
    def is_percentile(self) -> bool:
        return self.p_low is not None

    @classmethod
    def parse(cls, text: str) -> IntensityWindow:
        """"-1000,2000" (fixed), "percentile:0.5,99.5" (per file: the volume, or the 2-D image),
        "percentile:0.5,99.5:image" (per 2-D image or slice)."""
        spec = text.strip()
        if spec.lower().startswith(PERCENTILE_PREFIX):
            body, _, scope = spec[len(PERCENTILE_PREFIX):].partition(":")
            p_low, p_high = _two_numbers(body, text)
            return cls(p_low=p_low, p_high=p_high, scope=scope.strip().lower() or "volume")
        low, high = _two_numbers(spec, text)
        return cls(low=low, high=high)

    def __str__(self) -> str:
        if self.is_percentile:
            return f"{PERCENTILE_PREFIX}{_number(self.p_low)},{_number(self.p_high)}:{self.scope}"
        return f"{_number(self.low)},{_number(self.high)}"

    def resolved(self, values: np.ndarray) -> IntensityWindow:
        """The fixed window this one means for `values` (itself when already fixed). For scope
        "volume" pass the whole volume, for "image" the 2-D image."""
        if not self.is_percentile:
            return self
        finite = np.asarray(values, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        if finite.size == 0:
            raise ConfigError("a percentile window needs finite values; the image holds none (all NaN or infinite)")
        low, high = (float(v) for v in np.percentile(finite, [self.p_low, self.p_high]))
        if not high > low:
            # A flat image: any window that holds its one value maps it to the centre.
            low, high = low - 0.5, low + 0.5
        return IntensityWindow(low=low, high=high)

    def to_unit(self, values: np.ndarray) -> tuple[np.ndarray, int]:
        """`values` mapped from [low, high] onto [-1, 1] as float32, and how many were outside
        (clipped; NaN counts and becomes low). A percentile window is resolved on `values`."""
        window = self.resolved(values)
        low, half_range = np.float32(window.low), np.float32((window.high - window.low) / 2.0)
        # float32 throughout, and (v - low) / half_range rather than v * scale + offset, so that
        # [0, 255] reproduces the project's 8-bit mapping v / 127.5 - 1 bit for bit.
        unit = (np.asarray(values).astype(np.float32) - low) / half_range - np.float32(1.0)
        outside = ~((unit >= -1.0) & (unit <= 1.0))
        clipped_count = int(np.count_nonzero(outside))
        if clipped_count:
            unit = np.clip(np.nan_to_num(unit, nan=-1.0), -1.0, 1.0)
        return unit, clipped_count

    def from_unit(self, unit: np.ndarray) -> np.ndarray:
        """[-1, 1] back onto [low, high] as float32 (clamped first; NaN becomes low), the
        inverse of `to_unit`. Rounding to a stored type is the writer's job."""
        if self.is_percentile:
            raise ValueError("resolve a percentile window on the input (IntensityWindow.resolved) before inverting it")
        low, half_range = np.float32(self.low), np.float32((self.high - self.low) / 2.0)
        clamped = np.clip(np.nan_to_num(np.asarray(unit, dtype=np.float32), nan=-1.0), -1.0, 1.0)
        return (clamped + np.float32(1.0)) * half_range + low

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready form for the run's config."""
        if self.is_percentile:
            return {"percentile": [self.p_low, self.p_high], "scope": self.scope}
        return {"low": self.low, "high": self.high}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> IntensityWindow:
        keys = set(record)
        if keys == {"low", "high"}:
            return cls(low=float(record["low"]), high=float(record["high"]))
        if keys == {"percentile", "scope"} and len(record["percentile"]) == 2:
            p_low, p_high = record["percentile"]
            return cls(p_low=float(p_low), p_high=float(p_high), scope=record["scope"])
        raise ConfigError(f"an intensity window record holds low and high, or percentile and scope; got {sorted(keys)}")


def default_window(dtype: np.dtype | type, flags: str = WINDOW_FLAGS) -> IntensityWindow:
    """The window of an image of `dtype` when none was given: an integer type of at most
    16 bits maps its full range (uint8: [0, 255], today's mapping); anything else needs one."""
    dtype = np.dtype(dtype)
    if dtype.kind in "ui" and dtype.itemsize <= 2:
        if dtype == np.uint8:
            return EIGHT_BIT_WINDOW
        if dtype == np.uint16:
            return SIXTEEN_BIT_WINDOW
        info = np.iinfo(dtype)
        return IntensityWindow(low=float(info.min), high=float(info.max))
    kind = "float" if dtype.kind == "f" else f"{dtype.name}"
    raise ConfigError(f"{kind} images need {flags} LOW,HIGH (or percentile:P_LOW,P_HIGH): "
                      "their values are never stretched per image")


def window_for(dtype: np.dtype | type, window: IntensityWindow | None, flags: str = WINDOW_FLAGS) -> IntensityWindow:
    """The given window, else the default for `dtype`."""
    return window if window is not None else default_window(dtype, flags)


def describe_values(channels: int, window: str | IntensityWindow | None, stored: np.dtype | type | None = None) -> str:
    """For people (a model card, an ONNX file's metadata): which stored values a domain's files
    hold and how they map onto [-1, 1] (and translations back), e.g. "1 channel, window
    -1000..2000 (mapped to [-1, 1], clipped)". Without a window, the default of `stored` (the
    files' type; None: 8-bit)."""
    counted = f"{channels} channel{'' if channels == 1 else 's'}"
    if isinstance(window, str):
        window = IntensityWindow.parse(window)
    if window is not None and window.is_percentile:
        each = "volume or 2-D file" if window.scope == "volume" else "2-D image or slice"
        # Percentiles of an output cannot be inverted: `inference.scientific` maps it back through
        # the input's window as resolved on each file.
        return (f"{counted}, window percentiles {_number(window.p_low)}..{_number(window.p_high)} of each {each} "
                "(mapped to [-1, 1], clipped; translations into it come back in the input's window)")
    if window is not None:
        return f"{counted}, window {_number(window.low)}..{_number(window.high)} (mapped to [-1, 1], clipped)"
    stored = np.dtype(np.uint8 if stored is None else stored)
    if stored.kind == "f" or stored.itemsize > 2:
        return f"{counted}, {stored.name} images without a window (refused: they need one)"
    default = default_window(stored)
    signed = "signed " if stored.kind == "i" else ""
    return (f"{counted}, {signed}{stored.itemsize * 8}-bit images, [{_number(default.low)}, {_number(default.high)}] "
            "→ [-1, 1]")


def _two_numbers(body: str, text: str) -> tuple[float, float]:
    parts = body.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise ConfigError(f"window {text!r} is not LOW,HIGH (e.g. -1000,2000) or percentile:P_LOW,P_HIGH "
                          "(e.g. percentile:0.5,99.5)") from None


def _check_bounds(low: float | None, high: float | None, form: str) -> None:
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(f"a window {form} needs two finite numbers, got {low},{high}")
    if not high > low:
        raise ConfigError(f"a window {form} needs the first number below the second, got {_number(low)},{_number(high)}")


def _number(value: float | None) -> str:
    return f"{value:g}" if value is not None else "?"


# Below the helpers that the dataclass's checks call.
EIGHT_BIT_WINDOW = IntensityWindow(low=0.0, high=255.0)
SIXTEEN_BIT_WINDOW = IntensityWindow(low=0.0, high=65535.0)
