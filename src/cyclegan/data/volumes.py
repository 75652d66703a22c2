"""Medical volumes (NIfTI files, DICOM series) as stacks of 2-D slices, and written back intact.

`read_volume(path)` reads a `.nii` / `.nii.gz` file (nibabel) or a folder holding one DICOM
series (pydicom) into a `Volume`: physical values (rescale slope and intercept applied) as
float32 in voxel order, the voxel-to-patient affine (RAS+ millimetres, as NIfTI has it), the
stored voxel type, and what it takes to write the volume back. A series whose slices disagree
on orientation, pixel spacing or size is refused, naming the file.

`Volume.slice` / `Volume.foreground_slices` give the 2-D images a CycleGAN trains on, along
`slice_axis` (default: the acquisition's own, `Volume.default_slice_axis`); `write_volume`
writes translated values back with the same shape, voxel type, scaling and geometry: the same
header and affine for NIfTI, and for DICOM a new series marked DERIVED, with new UIDs, in which
every slice keeps its position and rescale.

nibabel and pydicom are the optional extra `medical`, imported only when a volume is read.
"""
from __future__ import annotations

import copy
import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cyclegan.data.images import _describe as describe_exception
from cyclegan.errors import ConfigError, UnreadableImageError
from cyclegan.fileio import write_atomic, write_bytes_atomic

MEDICAL_EXTRA = "pip install 'cyclegan[medical]'"
NIFTI_SUFFIXES = (".nii.gz", ".nii")
DICOM_SUFFIX = ".dcm"
DERIVATION_DESCRIPTION = "translated by cyclegan"
# Direction cosines and spacings that differ by less than this are the same geometry (they are
# written as decimal strings of limited length).
GEOMETRY_TOLERANCE = 1e-4

_WORLD_AXIS_CODES = (("L", "R"), ("P", "A"), ("I", "S"))
_PLANE_OF_WORLD_AXIS = ("sagittal", "coronal", "axial")
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
# Pixel statistics that a translation makes wrong; removed from the derived series.
_STALE_PIXEL_TAGS = ("SmallestImagePixelValue", "LargestImagePixelValue",
                     "SmallestPixelValueInSeries", "LargestPixelValueInSeries")


@dataclass
class Volume:
    """One 3-D scan. `values[i, j, k]` is voxel (i, j, k); `affine` maps voxel indices to
    patient millimetres in RAS+ (x to the Right, y Anterior, z Superior)."""

    path: Path
    format: str  # "nifti" or "dicom"
    values: np.ndarray  # float32, rescale applied
    stored_dtype: np.dtype
    affine: np.ndarray
    default_slice_axis: int
    # NIfTI: the image, for its header; DICOM: the files in stacking order.
    source: Any = field(repr=False, default=None)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.values.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Millimetres between neighbouring voxels along each voxel axis."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def orientation(self) -> str:
        """The patient direction each voxel axis points to, e.g. "LAS" (NIfTI's axis codes)."""
        return "".join(_WORLD_AXIS_CODES[world][positive] for world, positive in _axis_directions(self.affine))

    def check_slice_axis(self, axis: int | None) -> int:
        """`axis`, or the default slice axis for None; refuses one that is not a voxel axis."""
        if axis is None:
            return self.default_slice_axis
        if not 0 <= axis < 3:
            raise ConfigError(f"--slice-axis must be 0, 1 or 2 (a voxel axis of {self.path}), got {axis}")
        return axis

    def slice(self, index: int, axis: int | None = None) -> np.ndarray:
        """The 2-D slice `index` along `axis` (float32, the other two voxel axes in order)."""
        axis = self.check_slice_axis(axis)
        return np.take(self.values, index, axis=axis)

    def slice_count(self, axis: int | None = None) -> int:
        return self.values.shape[self.check_slice_axis(axis)]

    def foreground_slices(self, axis: int | None = None, min_foreground: float = 0.0,
                          threshold: float | None = None) -> list[int]:
        """Indices of the slices worth training on: more than `min_foreground` of their voxels
        (a fraction) above `threshold` (the window's low end; default the volume's minimum).
        A slice with no voxel above it is always skipped (air outside the body)."""
        if not 0.0 <= min_foreground < 1.0:
            raise ConfigError(f"--min-foreground is a fraction in [0, 1), got {min_foreground}")
        axis = self.check_slice_axis(axis)
        threshold = float(np.nanmin(self.values)) if threshold is None else threshold
        other_axes = tuple(a for a in range(3) if a != axis)
        fractions = np.mean(self.values > threshold, axis=other_axes)
        return [int(i) for i in np.flatnonzero((fractions > min_foreground) & (fractions > 0.0))]

    def assemble(self, slices: Sequence[np.ndarray], axis: int | None = None) -> np.ndarray:
        """Every slice along `axis`, translated, as one array of this volume's shape."""
        axis = self.check_slice_axis(axis)
        if len(slices) != self.values.shape[axis]:
            raise ValueError(f"{self.path}: {len(slices)} slices given, the volume has "
                             f"{self.values.shape[axis]} along axis {axis}")
        return np.stack([np.asarray(s, dtype=np.float32) for s in slices], axis=axis)


def is_volume(path: str | os.PathLike) -> bool:
    """A NIfTI file, or a folder holding .dcm files (one DICOM series)."""
    path = Path(path)
    if path.is_dir():
        return any(_dicom_files(path))
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def volume_stem(path: str | os.PathLike) -> str:
    """The name without its volume extension: "ct.nii.gz" -> "ct"; a series folder's name."""
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def nifti_dtype(path: str | os.PathLike) -> np.dtype:
    """The voxel type a NIfTI file stores, from its header; uint8 where the header cannot be read
    (reading the volume then says what is wrong)."""
    try:
        return np.dtype(_nibabel().load(path).get_data_dtype()).newbyteorder("=")
    except ConfigError:
        raise
    except Exception:
        return np.dtype(np.uint8)


def read_volume(path: str | os.PathLike) -> Volume:
    """Read a NIfTI file or a folder holding one DICOM series. Raises UnreadableImageError
    naming the file for anything unreadable or inconsistent."""
    path = Path(path)
    if path.is_dir():
        return _read_dicom_series(path)
    if path.name.lower().endswith(NIFTI_SUFFIXES):
        return _read_nifti(path)
    raise UnreadableImageError(f"{path}: not a volume; volumes are .nii / .nii.gz files or folders of .dcm files")


def write_volume(volume: Volume, values: np.ndarray, destination: str | os.PathLike) -> Path:
    """Write `values` (the volume's shape, physical units) as `volume` was stored: a NIfTI file
    at `destination` (.nii or .nii.gz), or a DICOM series in the folder `destination`, one file
    per slice under the original names. Returns what was written."""
    destination = Path(destination)
    values = np.asarray(values, dtype=np.float32)
    if values.shape != volume.values.shape:
        raise ValueError(f"{volume.path}: values of shape {values.shape} for a volume of shape {volume.values.shape}")
    if volume.format == "nifti":
        _write_nifti(volume, values, destination)
    else:
        _write_dicom_series(volume, values, destination)
    return destination


def describe(volume: Volume) -> str:
    """One line for `cyclegan data check`."""
    world, _ = _axis_directions(volume.affine)[volume.default_slice_axis]
    shape = "x".join(str(n) for n in volume.shape)
    spacing = "x".join(f"{s:.3g}" for s in volume.spacing)
    kind = "NIfTI" if volume.format == "nifti" else f"DICOM series of {len(volume.source)} files"
    return (f"{volume.path.name}: {kind}, {shape} {volume.stored_dtype.name}, spacing {spacing} mm, "
            f"orientation {volume.orientation}, {volume.slice_count()} slices along axis "
            f"{volume.default_slice_axis} ({_PLANE_OF_WORLD_AXIS[world]})")


def _nibabel():
    try:
        import nibabel
    except ImportError:
        raise ConfigError(f"reading NIfTI volumes needs nibabel: {MEDICAL_EXTRA}") from None
    return nibabel


def _pydicom():
    try:
        import pydicom
    except ImportError:
        raise ConfigError(f"reading DICOM series needs pydicom: {MEDICAL_EXTRA}") from None
    return pydicom


def _axis_directions(affine: np.ndarray) -> list[tuple[int, int]]:
    """For each voxel axis, (the world axis it is closest to, 1 if it points the positive way).

    Pairs are taken by decreasing |cosine| so that an oblique scan never gives two voxel axes
    the same world axis."""
    directions = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    pairs = sorted(((abs(directions[w, v]), v, w) for v in range(3) for w in range(3)), reverse=True)
    chosen: dict[int, tuple[int, int]] = {}
    used: set[int] = set()
    for _, voxel_axis, world_axis in pairs:
        if voxel_axis not in chosen and world_axis not in used:
            chosen[voxel_axis] = (world_axis, int(directions[world_axis, voxel_axis] > 0))
            used.add(world_axis)
    return [chosen[v] for v in range(3)]


def _read_nifti(path: Path) -> Volume:
    nibabel = _nibabel()
    try:
        image = nibabel.load(path)
        shape = tuple(image.shape)
        while len(shape) > 3 and shape[-1] == 1:
            shape = shape[:-1]
        if len(shape) != 3:
            raise UnreadableImageError(f"{path}: a NIfTI of shape {tuple(image.shape)} is not one 3-D volume; "
                                       "split time series into volumes (e.g. fslsplit)")
        stored_dtype = np.dtype(image.get_data_dtype())
        if stored_dtype.kind not in "uif":
            raise UnreadableImageError(f"{path}: voxels of type {stored_dtype} (colour or complex); "
                                       "convert it to a scalar volume")
        values = np.asarray(image.get_fdata(dtype=np.float32)).reshape(shape)
    except (UnreadableImageError, ConfigError):
        raise
    except Exception as exc:
        raise UnreadableImageError(f"{path}: not a readable NIfTI volume ({describe_exception(exc)}); "
                                   "re-export it or remove it") from None
    axial = next(v for v, (world, _) in enumerate(_axis_directions(image.affine)) if world == 2)
    return Volume(path=path, format="nifti", values=values, stored_dtype=stored_dtype.newbyteorder("="),
                  affine=np.array(image.affine, dtype=np.float64), default_slice_axis=axial, source=image)


def _write_nifti(volume: Volume, values: np.ndarray, destination: Path) -> None:
    _nibabel()  # only to fail as reading does when nibabel is missing: the image's own type writes it
    if not destination.name.lower().endswith(NIFTI_SUFFIXES):
        raise ConfigError(f"{destination}: a NIfTI volume is written as .nii or .nii.gz")
    original = volume.source
    slope, inter = float(original.dataobj.slope), float(original.dataobj.inter)
    stored = _to_stored(values, slope, inter, volume.stored_dtype, _dtype_range(volume.stored_dtype))
    written = type(original)(stored.reshape(original.shape), original.affine, original.header.copy())
    if (slope, inter) != (1.0, 0.0):
        # The constructor clears the scaling; set after it, the file keeps the original's.
        written.header.set_slope_inter(slope, inter)
    data = written.to_bytes()
    if destination.name.lower().endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    write_bytes_atomic(destination, data)


def _dicom_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == DICOM_SUFFIX)


@dataclass(frozen=True)
class _DicomSlice:
    path: Path
    position: np.ndarray
    slope: float
    intercept: float


def _read_dicom_series(folder: Path) -> Volume:
    pydicom = _pydicom()
    files = _dicom_files(folder)
    if not files:
        raise UnreadableImageError(f"{folder}: holds no .dcm files")
    headers = []
    for file in files:
        try:
            headers.append(pydicom.dcmread(file, stop_before_pixels=True))
        except Exception as exc:
            raise UnreadableImageError(f"{file}: not a readable DICOM file ({describe_exception(exc)}); "
                                       "remove it from the series") from None
    first = headers[0]
    row_cosines, column_cosines, pixel_spacing = _check_series_geometry(files, headers)
    normal = np.cross(row_cosines, column_cosines)
    slices = [_DicomSlice(path=file, position=np.array([float(v) for v in header.ImagePositionPatient]),
                          slope=float(header.get("RescaleSlope", 1.0) or 1.0),
                          intercept=float(header.get("RescaleIntercept", 0.0) or 0.0))
              for file, header in zip(files, headers)]
    slices.sort(key=lambda s: float(s.position @ normal))
    distances = [float(s.position @ normal) for s in slices]
    for (a, b), (da, db) in zip(zip(slices, slices[1:]), zip(distances, distances[1:])):
        if abs(db - da) < GEOMETRY_TOLERANCE:
            raise UnreadableImageError(f"{folder}: {a.path.name} and {b.path.name} lie at the same position; "
                                       "a series holds each slice once (remove the duplicate)")
    planes = []
    stored_dtype = None
    for dicom_slice in slices:
        try:
            pixels = pydicom.dcmread(dicom_slice.path).pixel_array
        except Exception as exc:
            raise UnreadableImageError(f"{dicom_slice.path}: the pixel data cannot be decoded "
                                       f"({describe_exception(exc)}); install its codec (pylibjpeg) or "
                                       "re-export it uncompressed") from None
        if stored_dtype is not None and pixels.dtype != stored_dtype:
            raise UnreadableImageError(f"{dicom_slice.path}: stores {pixels.dtype.name} pixels, the rest of the "
                                       f"series {stored_dtype.name}; keep one pixel format per series")
        stored_dtype = pixels.dtype
        planes.append(pixels.astype(np.float32) * np.float32(dicom_slice.slope) + np.float32(dicom_slice.intercept))
    values = np.stack(planes, axis=0)
    # Voxel axes: 0 the stacking order, 1 the rows (down the column direction), 2 the columns.
    if len(slices) > 1:
        step = slices[1].position - slices[0].position
    else:
        step = normal * float(first.get("SliceThickness", 1.0) or 1.0)
    affine = np.eye(4)
    affine[:3, 0] = _LPS_TO_RAS @ step
    affine[:3, 1] = _LPS_TO_RAS @ column_cosines * pixel_spacing[0]
    affine[:3, 2] = _LPS_TO_RAS @ row_cosines * pixel_spacing[1]
    affine[:3, 3] = _LPS_TO_RAS @ slices[0].position
    return Volume(path=folder, format="dicom", values=values, stored_dtype=np.dtype(stored_dtype).newbyteorder("="),
                  affine=affine,
                  default_slice_axis=0, source=slices)


def _check_series_geometry(files: list[Path], headers: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The series' row and column direction cosines and pixel spacing; raises naming the first
    file that differs from the first one in series, orientation, spacing or size."""
    reference_file, reference = files[0], headers[0]

    def geometry(file: Path, header: Any) -> tuple[str, np.ndarray, np.ndarray, tuple[int, int]]:
        missing = [k for k in ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing", "Rows", "Columns")
                   if k not in header]
        if missing:
            raise UnreadableImageError(f"{file}: has no {', '.join(missing)}, so it cannot be placed in a volume; "
                                       "remove it from the series")
        if int(header.get("NumberOfFrames", 1) or 1) > 1 or int(header.get("SamplesPerPixel", 1)) != 1:
            raise UnreadableImageError(f"{file}: a multi-frame or colour DICOM; series of single-frame grayscale "
                                       "slices are read (export it as such)")
        return (str(header.get("SeriesInstanceUID", "")), np.array([float(v) for v in header.ImageOrientationPatient]),
                np.array([float(v) for v in header.PixelSpacing]), (int(header.Rows), int(header.Columns)))

    series, orientation, spacing, size = geometry(reference_file, reference)
    for file, header in zip(files[1:], headers[1:]):
        other_series, other_orientation, other_spacing, other_size = geometry(file, header)
        if other_series != series:
            raise UnreadableImageError(f"{file}: belongs to series {other_series}, not {series} like "
                                       f"{reference_file.name}; keep one series per folder")
        for what, mine, theirs in (("orientation", orientation, other_orientation), ("pixel spacing", spacing, other_spacing)):
            if mine.shape != theirs.shape or not np.allclose(mine, theirs, atol=GEOMETRY_TOLERANCE, rtol=0):
                raise UnreadableImageError(f"{file}: {what} {theirs.tolist()} differs from {reference_file.name}'s "
                                           f"{mine.tolist()}: mixed geometry in one series; keep one geometry per folder")
        if other_size != size:
            raise UnreadableImageError(f"{file}: {other_size[0]}x{other_size[1]} pixels, {reference_file.name} has "
                                       f"{size[0]}x{size[1]}: mixed geometry in one series; keep one geometry per folder")
    return orientation[:3], orientation[3:], spacing


def _write_dicom_series(volume: Volume, values: np.ndarray, folder: Path) -> None:
    pydicom = _pydicom()
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder}: a DICOM series is written into a folder, and this is a file")
    series_uid = generate_uid()
    for index, dicom_slice in enumerate(volume.source):
        dataset = pydicom.dcmread(dicom_slice.path)
        bits_stored = int(dataset.get("BitsStored", dataset.BitsAllocated))
        signed = int(dataset.get("PixelRepresentation", 0)) == 1
        limits = (-(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1) if signed else (0, 2 ** bits_stored - 1)
        stored = _to_stored(values[index], dicom_slice.slope, dicom_slice.intercept, volume.stored_dtype, limits)
        derived = copy.deepcopy(dataset)
        derived.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        derived.PixelData = stored.astype(volume.stored_dtype.newbyteorder("<")).tobytes()
        derived["PixelData"].VR = "OW" if derived.BitsAllocated > 8 else "OB"
        image_type = list(dataset.get("ImageType", ["ORIGINAL", "PRIMARY"]))
        image_type[0] = "DERIVED"
        if len(image_type) > 1:
            image_type[1] = "SECONDARY"
        derived.ImageType = image_type
        derived.DerivationDescription = DERIVATION_DESCRIPTION
        derived.SeriesInstanceUID = series_uid
        derived.SOPInstanceUID = generate_uid()
        derived.file_meta.MediaStorageSOPInstanceUID = derived.SOPInstanceUID
        description = str(dataset.get("SeriesDescription", "")).strip()
        derived.SeriesDescription = f"{description} ({DERIVATION_DESCRIPTION})".strip()[:64]
        for tag in _STALE_PIXEL_TAGS:
            if tag in derived:
                delattr(derived, tag)
        write_atomic(folder / dicom_slice.path.name,
                     lambda temporary, derived=derived: derived.save_as(temporary, enforce_file_format=True))


def _dtype_range(dtype: np.dtype) -> tuple[float, float] | None:
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return None


def _to_stored(values: np.ndarray, slope: float, intercept: float, dtype: np.dtype,
               limits: tuple[float, float] | None) -> np.ndarray:
    """Physical values back to the stored numbers of `dtype`: (value - intercept) / slope,
    rounded and clipped to `limits` for integers."""
    raw = (values.astype(np.float64) - intercept) / slope
    if dtype.kind == "f":
        return raw.astype(dtype.newbyteorder("="))
    return np.clip(np.rint(raw), limits[0], limits[1]).astype(dtype.newbyteorder("="))
