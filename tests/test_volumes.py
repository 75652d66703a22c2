"""Medical volumes: NIfTI files and DICOM series read with their scaling and geometry, split into
slices, and written back with the same shape, voxel type and geometry (DICOM as a derived series)."""

import sys
from pathlib import Path

import numpy as np
import pytest

from cyclegan.data.volumes import Volume, describe, is_volume, read_volume, volume_stem, write_volume
from cyclegan.errors import ConfigError, UnreadableImageError


def nibabel():
    return pytest.importorskip("nibabel", reason="NIfTI volumes need nibabel: pip install 'cyclegan[medical]'")


def pydicom():
    return pytest.importorskip("pydicom", reason="DICOM series need pydicom: pip install 'cyclegan[medical]'")


def write_nifti(path, raw, affine, slope=None, inter=None):
    nib = nibabel()
    image = nib.Nifti1Image(raw, affine)
    image.header.set_data_dtype(raw.dtype)
    if slope is not None:
        image.header.set_slope_inter(slope, inter)
    nib.save(image, path)
    return path


def ct_raw(shape=(6, 5, 4)):
    """Stored int16 values whose physical values (slope 2, intercept -1024) span -1024..about 1100 HU."""
    return (np.arange(int(np.prod(shape))).reshape(shape) * 17 % 1063).astype(np.int16)


# Exact in float32, the type NIfTI stores the affine in.
AFFINE = np.array([[0.75, 0.0, 0.0, -10.0], [0.0, 0.875, 0.0, 20.0], [0.0, 0.0, 2.5, 5.0], [0.0, 0.0, 0.0, 1.0]])


def test_nifti_is_read_with_its_scaling_and_stored_type(tmp_path):
    raw = ct_raw()
    path = write_nifti(tmp_path / "ct.nii.gz", raw, AFFINE, slope=2.0, inter=-1024.0)

    volume = read_volume(path)

    assert volume.format == "nifti"
    assert volume.shape == (6, 5, 4)
    assert volume.values.dtype == np.float32
    assert np.array_equal(volume.values, raw * 2.0 - 1024.0)
    assert volume.stored_dtype == np.int16
    assert np.array_equal(volume.affine, AFFINE)
    assert volume.spacing == (0.75, 0.875, 2.5)
    assert volume.orientation == "RAS"


def test_nifti_split_into_slices_and_written_back_keeps_shape_dtype_affine_and_values(tmp_path):
    nib = nibabel()
    raw = ct_raw()
    original = write_nifti(tmp_path / "ct.nii.gz", raw, AFFINE, slope=2.0, inter=-1024.0)
    volume = read_volume(original)

    slices = [volume.slice(i) for i in range(volume.slice_count())]
    written = write_volume(volume, volume.assemble(slices), tmp_path / "out" / "ct.nii.gz")

    back = nib.load(written)
    assert [s.shape for s in slices] == [(6, 5)] * 4
    assert back.shape == (6, 5, 4)
    assert back.get_data_dtype() == np.int16
    assert np.array_equal(back.affine, nib.load(original).affine)
    assert np.array_equal(back.affine, AFFINE)
    assert (back.dataobj.slope, back.dataobj.inter) == (2.0, -1024.0)
    assert np.array_equal(np.asanyarray(back.dataobj.get_unscaled()), raw)


def test_translated_values_are_stored_through_the_original_scaling(tmp_path):
    nib = nibabel()
    volume = read_volume(write_nifti(tmp_path / "ct.nii", ct_raw(), AFFINE, slope=2.0, inter=-1024.0))
    translated = np.full(volume.shape, 40.4, dtype=np.float32)

    back = nib.load(write_volume(volume, translated, tmp_path / "out.nii"))

    # (40.4 + 1024) / 2 = 532.2, stored as 532, which reads 40 HU: the nearest the scaling holds.
    assert np.array_equal(np.asanyarray(back.dataobj.get_unscaled()), np.full(volume.shape, 532, np.int16))
    assert np.array_equal(back.get_fdata(), np.full(volume.shape, 40.0))


def test_orientation_codes_follow_an_oblique_affine_one_world_axis_per_voxel_axis():
    # Voxel axis 0 runs head to feet (-z), axis 1 right to left, axis 2 front to back, tilted.
    affine = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [-3.0, 0.0, 0.1, 0.0], [0.0, 0.0, 0.0, 1.0]])
    volume = Volume(path=Path("tilted.nii"), format="nifti", values=np.zeros((4, 5, 6), np.float32),
                    stored_dtype=np.dtype(np.int16), affine=affine, default_slice_axis=0)

    assert volume.orientation == "ILP"


def test_nifti_acquired_head_to_feet_on_its_first_axis_slices_along_it(tmp_path):
    affine = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [-3.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])

    volume = read_volume(write_nifti(tmp_path / "tilted.nii", ct_raw((4, 5, 6)), affine))

    assert volume.default_slice_axis == 0
    assert volume.slice(2).shape == (5, 6)
    assert describe(volume) == ("tilted.nii: NIfTI, 4x5x6 int16, spacing 3x1x1 mm, orientation IRA, "
                                "4 slices along axis 0 (axial)")


def test_foreground_slices_skip_empty_slices_and_those_below_the_fraction(tmp_path):
    raw = np.zeros((4, 4, 5), np.int16)
    raw[:, :, 1] = 100  # all foreground
    raw[:2, :2, 2] = 100  # a quarter
    raw[0, 0, 3] = 100  # one voxel of sixteen
    volume = read_volume(write_nifti(tmp_path / "mask.nii", raw, AFFINE))

    assert volume.foreground_slices() == [1, 2, 3]
    assert volume.foreground_slices(min_foreground=0.1) == [1, 2]
    assert volume.foreground_slices(min_foreground=0.5) == [1]
    assert volume.foreground_slices(threshold=100.0) == []
    with pytest.raises(ConfigError, match="--min-foreground is a fraction in"):
        volume.foreground_slices(min_foreground=1.0)


def test_a_slice_axis_that_is_not_a_voxel_axis_is_refused(tmp_path):
    volume = read_volume(write_nifti(tmp_path / "ct.nii", ct_raw(), AFFINE))

    with pytest.raises(ConfigError) as caught:
        volume.slice(0, axis=3)

    assert str(caught.value) == f"--slice-axis must be 0, 1 or 2 (a voxel axis of {tmp_path / 'ct.nii'}), got 3"


def test_a_time_series_nifti_is_refused_naming_the_file(tmp_path):
    path = write_nifti(tmp_path / "bold.nii.gz", np.zeros((4, 4, 3, 2), np.int16), AFFINE)

    with pytest.raises(UnreadableImageError, match=f"^{path}: a NIfTI of shape \\(4, 4, 3, 2\\) is not one 3-D volume"):
        read_volume(path)


def test_nibabels_own_sample_volume_round_trips(tmp_path):
    nib = nibabel()
    sample = Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii"
    if not sample.is_file():
        pytest.skip(f"nibabel's sample data is not installed ({sample})")

    volume = read_volume(sample)
    back = nib.load(write_volume(volume, volume.values, tmp_path / "anatomical.nii"))

    assert describe(volume) == ("anatomical.nii: NIfTI, 33x41x25 int16, spacing 2x2x2 mm, orientation LAS, "
                                "25 slices along axis 2 (axial)")
    assert back.get_data_dtype() == np.dtype(">i2")
    assert np.array_equal(back.affine, nib.load(sample).affine)
    assert np.array_equal(back.get_fdata(dtype=np.float32), volume.values)


def test_missing_nibabel_is_reported_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nibabel", None)

    with pytest.raises(ConfigError) as caught:
        read_volume(tmp_path / "ct.nii.gz")

    assert str(caught.value) == "reading NIfTI volumes needs nibabel: pip install 'cyclegan[medical]'"


def test_volume_names_and_kinds(tmp_path):
    (tmp_path / "series").mkdir()
    (tmp_path / "series" / "1.dcm").write_bytes(b"")
    (tmp_path / "photos").mkdir()

    assert [is_volume(tmp_path / name) for name in ("ct.nii.gz", "ct.NII", "series", "photos", "ct.png")] \
        == [True, True, True, False, False]
    assert [volume_stem(name) for name in ("ct.nii.gz", "mr.nii", "series")] == ["ct", "mr", "series"]


# DICOM ------------------------------------------------------------------------------------------

ROWS, COLUMNS = 6, 5
PIXEL_SPACING = [0.5, 0.75]
ORIENTATION = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def write_ct_slice(path, z, raw, series_uid, pixel_spacing=PIXEL_SPACING, orientation=ORIENTATION):
    dicom = pydicom()
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = CTImageStorage
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    dataset.SeriesInstanceUID = series_uid
    dataset.Modality = "CT"
    dataset.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    dataset.SeriesDescription = "chest"
    dataset.Rows, dataset.Columns = raw.shape
    dataset.PixelSpacing = pixel_spacing
    dataset.ImageOrientationPatient = orientation
    dataset.ImagePositionPatient = [-12.0, -30.0, z]
    dataset.SliceThickness = 2.5
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 1
    dataset.RescaleSlope = 1
    dataset.RescaleIntercept = -1024
    dataset.PixelData = raw.astype("<i2").tobytes()
    dataset.save_as(path, enforce_file_format=True)
    return dicom


def write_ct_series(folder, count=4):
    """`count` slices 2.5 mm apart, named so that file order is not position order."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = "1.2.826.0.1.3680043.8.498.2"
    heights = [10.0 + 2.5 * i for i in range(count)]
    raws = [np.full((ROWS, COLUMNS), 1000 + 100 * i, np.int16) + np.arange(COLUMNS, dtype=np.int16) for i in range(count)]
    for i, (z, raw) in enumerate(zip(heights, raws)):
        write_ct_slice(folder / f"slice{(count - i) * 7 % 10}.dcm", z, raw, series_uid)
    return heights, raws


def test_dicom_series_is_read_in_position_order_with_its_rescale_and_geometry(tmp_path):
    heights, raws = write_ct_series(tmp_path / "ct")

    volume = read_volume(tmp_path / "ct")

    assert volume.format == "dicom"
    assert volume.shape == (4, ROWS, COLUMNS)
    assert volume.stored_dtype == np.int16
    assert np.array_equal(volume.values, np.stack(raws).astype(np.float32) - 1024.0)
    assert volume.spacing == pytest.approx((2.5, 0.5, 0.75))
    assert volume.default_slice_axis == 0
    assert volume.orientation == "SPL"
    assert describe(volume) == ("ct: DICOM series of 4 files, 4x6x5 int16, spacing 2.5x0.5x0.75 mm, "
                                "orientation SPL, 4 slices along axis 0 (axial)")


def test_dicom_series_written_back_is_derived_with_new_uids_and_the_same_geometry(tmp_path):
    dicom = pydicom()
    write_ct_series(tmp_path / "ct")
    volume = read_volume(tmp_path / "ct")
    translated = volume.values + 5.0

    write_volume(volume, translated, tmp_path / "out")

    originals = {p.name: dicom.dcmread(p) for p in (tmp_path / "ct").iterdir()}
    written = {p.name: dicom.dcmread(p) for p in (tmp_path / "out").iterdir()}
    assert sorted(written) == sorted(originals)
    assert len({d.SeriesInstanceUID for d in written.values()}) == 1
    assert len({d.SOPInstanceUID for d in written.values()}) == 4
    for name, derived in written.items():
        original = originals[name]
        assert list(derived.ImageType) == ["DERIVED", "SECONDARY", "AXIAL"]
        assert derived.SeriesInstanceUID != original.SeriesInstanceUID
        assert derived.SOPInstanceUID != original.SOPInstanceUID
        assert derived.file_meta.MediaStorageSOPInstanceUID == derived.SOPInstanceUID
        assert derived.StudyInstanceUID == original.StudyInstanceUID
        assert derived.SeriesDescription == "chest (translated by cyclegan)"
        for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns",
                    "RescaleSlope", "RescaleIntercept"):
            assert derived.get(tag) == original.get(tag), tag
        assert np.array_equal(derived.pixel_array, original.pixel_array + 5)
    back = read_volume(tmp_path / "out")
    assert np.array_equal(back.affine, volume.affine)
    assert np.array_equal(back.values, translated)


@pytest.mark.parametrize("change, message", [
    ({"pixel_spacing": [0.5, 0.7]}, "pixel spacing [0.5, 0.7] differs from slice4.dcm's [0.5, 0.75]"),
    ({"orientation": [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]},
     "orientation [0.0, 1.0, 0.0, 0.0, 0.0, -1.0] differs from slice4.dcm's [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]"),
    ({"raw": np.zeros((ROWS + 1, COLUMNS), np.int16)}, "7x5 pixels, slice4.dcm has 6x5"),
])
def test_a_series_with_mixed_geometry_is_refused_naming_the_file(tmp_path, change, message):
    write_ct_series(tmp_path / "ct", count=2)  # slice4.dcm and slice7.dcm
    change = dict(change)
    raw = change.pop("raw", np.zeros((ROWS, COLUMNS), np.int16))
    write_ct_slice(tmp_path / "ct" / "slice9.dcm", 20.0, raw, "1.2.826.0.1.3680043.8.498.2", **change)

    with pytest.raises(UnreadableImageError) as caught:
        read_volume(tmp_path / "ct")

    assert str(caught.value).startswith(f"{tmp_path / 'ct' / 'slice9.dcm'}: {message}")


def test_two_series_in_one_folder_are_refused_naming_the_file(tmp_path):
    write_ct_series(tmp_path / "ct", count=2)
    write_ct_slice(tmp_path / "ct" / "other.dcm", 20.0, np.zeros((ROWS, COLUMNS), np.int16), "1.2.3")

    with pytest.raises(UnreadableImageError) as caught:
        read_volume(tmp_path / "ct")

    assert str(caught.value) == (f"{tmp_path / 'ct' / 'slice4.dcm'}: belongs to series 1.2.826.0.1.3680043.8.498.2, "
                                 "not 1.2.3 like other.dcm; keep one series per folder")


def test_two_slices_at_one_position_are_refused(tmp_path):
    write_ct_series(tmp_path / "ct", count=2)
    write_ct_slice(tmp_path / "ct" / "copy.dcm", 10.0, np.zeros((ROWS, COLUMNS), np.int16), "1.2.826.0.1.3680043.8.498.2")

    with pytest.raises(UnreadableImageError, match="lie at the same position"):
        read_volume(tmp_path / "ct")


def test_nibabels_sample_mr_series_round_trips(tmp_path):
    dicom = pydicom()
    nib = nibabel()
    samples = [Path(nib.__file__).parent / "tests" / "data" / name for name in ("0.dcm", "1.dcm")]
    if not all(p.is_file() for p in samples):
        pytest.skip("nibabel's sample DICOM files are not installed")
    (tmp_path / "mr").mkdir()
    for sample in samples:
        (tmp_path / "mr" / sample.name).write_bytes(sample.read_bytes())

    volume = read_volume(tmp_path / "mr")
    write_volume(volume, volume.values, tmp_path / "out")
    back = read_volume(tmp_path / "out")

    assert volume.shape == (2, 256, 256)
    assert volume.spacing == pytest.approx((3.0, 1.796875, 1.796875), abs=1e-4)
    assert np.array_equal(back.values, volume.values)
    assert np.array_equal(back.affine, volume.affine)
    assert dicom.dcmread(tmp_path / "out" / "0.dcm").ImageType[0] == "DERIVED"
