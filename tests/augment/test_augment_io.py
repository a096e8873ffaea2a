"""NIfTI and PNG in and out: header, affine and label dtype kept; bad files named."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from mlnb.augment import CropToSegmentation, Normalise, Resample, Rotate, augment
from mlnb.augment.io import read_pair, write_image, write_segmentation
from mlnb.errors import DataError
from tests.augment.augment_helpers import write_nifti_pair, write_picture_pair


@pytest.mark.parametrize("seg_dtype", [np.uint8, np.int16])
def test_nifti_keeps_header_and_label_dtype_and_follows_the_grid(anatomical, tmp_path, seg_dtype):
    seg_path = write_nifti_pair(anatomical, tmp_path, seg_dtype)
    loaded = read_pair(anatomical, seg_path)
    assert loaded.pair.kind == "volume" and loaded.pair.image.dtype == np.int16  # native byte order now
    out = augment(loaded.pair, [Normalise(), Rotate(5), CropToSegmentation(), Resample((16, 16, 5))])
    write_image(out, loaded.image, tmp_path / "out.nii.gz")
    write_segmentation(out, loaded.seg, tmp_path / "out_seg.nii.gz")

    source = nib.load(anatomical)
    image, seg = nib.load(tmp_path / "out.nii.gz"), nib.load(tmp_path / "out_seg.nii.gz")
    assert image.shape == seg.shape == (16, 16, 5)
    assert image.get_data_dtype() == np.dtype(">f4")  # the source header is big-endian, and stays so
    assert seg.get_data_dtype() == np.dtype(seg_dtype)
    assert image.header["descrip"] == source.header["descrip"]
    assert image.header.get_xyzt_units() == source.header.get_xyzt_units()
    for written, original in ((image, source), (seg, nib.load(seg_path))):
        assert written.header.get_qform(coded=True)[1] == original.header.get_qform(coded=True)[1]
        assert written.header.get_sform(coded=True)[1] == original.header.get_sform(coded=True)[1]
    # The 33x41 plane is cropped to 33x33 (4 columns off each side) and resampled to 16x16;
    # 25 slices become 5: voxels are bigger, the world origin moves with the crop.
    expected = source.affine @ np.array([[32 / 15, 0, 0, 0], [0, 32 / 15, 0, 4], [0, 0, 24 / 4, 0], [0, 0, 0, 1]])
    np.testing.assert_allclose(image.affine, expected, atol=1e-5)
    np.testing.assert_allclose(seg.affine, expected, atol=1e-5)
    np.testing.assert_allclose(image.header.get_zooms(), (2 * 32 / 15, 2 * 32 / 15, 12), rtol=1e-6)
    assert set(np.unique(np.asanyarray(seg.dataobj))) <= {0, 1, 2}


@pytest.mark.parametrize("rgb", [True, False])
def test_pictures_round_trip_exactly_through_an_identity(tmp_path, rgb):
    image_path, seg_path = write_picture_pair(tmp_path, rgb=rgb)
    loaded = read_pair(image_path, seg_path)
    assert loaded.pair.kind == ("rgb" if rgb else "grey")
    assert 0.0 <= loaded.pair.image.min() and loaded.pair.image.max() <= 1.0
    out = augment(loaded.pair, [Rotate(0)])
    write_image(out, loaded.image, tmp_path / "out.png")
    write_segmentation(out, loaded.seg, tmp_path / "out_seg.png")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), np.asarray(Image.open(image_path)))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out_seg.png")), np.asarray(Image.open(seg_path)))


def test_palette_segmentations_keep_their_palette(tmp_path):
    labels = np.zeros((20, 20), np.uint8)
    labels[5:15, 5:15] = 3
    palette_png = Image.fromarray(labels)
    palette_png.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    palette_png.save(tmp_path / "seg.png")
    Image.fromarray(labels * 60).save(tmp_path / "img.png")
    loaded = read_pair(tmp_path / "img.png", tmp_path / "seg.png")
    write_segmentation(augment(loaded.pair, []), loaded.seg, tmp_path / "out.png")
    written = Image.open(tmp_path / "out.png")
    assert written.mode == "P" and written.getpalette()[:12] == palette_png.getpalette()[:12]


def test_bad_files_are_named(tmp_path, anatomical):
    image_path, seg_path = write_picture_pair(tmp_path)
    with pytest.raises(DataError, match=r"missing\.nii\.gz: file not found"):
        read_pair(tmp_path / "missing.nii.gz")
    (tmp_path / "broken.nii.gz").write_bytes(gzip.compress(b"not a nifti header"))
    with pytest.raises(DataError, match=r"broken\.nii\.gz: cannot read as NIfTI"):
        read_pair(tmp_path / "broken.nii.gz")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match=r"broken\.png: cannot read as an image"):
        read_pair(tmp_path / "broken.png")
    Image.open(image_path).save(tmp_path / "seg.jpg")
    with pytest.raises(DataError, match=r"seg\.jpg: a segmentation must be lossless"):
        read_pair(image_path, tmp_path / "seg.jpg")
    with pytest.raises(DataError, match=r"astronaut\.png: a segmentation PNG must have one channel"):
        read_pair(image_path, image_path)
    with pytest.raises(DataError, match=r"anatomical_seg\.nii\.gz: segmentation shape \(33, 41, 25\) differs"):
        read_pair(image_path, write_nifti_pair(anatomical, tmp_path))


def test_4d_and_nan_volumes_are_refused_by_name(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 2), np.float32), np.eye(4)), tmp_path / "series.nii.gz")
    with pytest.raises(DataError, match=r"series\.nii\.gz: a 4-D image of shape \(4, 4, 4, 2\)"):
        read_pair(tmp_path / "series.nii.gz")
    volume = np.zeros((4, 4, 4), np.float32)
    volume[1, 2, 3] = np.nan
    nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "nan.nii.gz")
    with pytest.raises(DataError, match=r"nan\.nii\.gz: the image holds 1 NaN"):
        read_pair(tmp_path / "nan.nii.gz")
    nib.save(nib.Nifti1Image(np.full((4, 4, 4), 0.5, np.float32), np.eye(4)), tmp_path / "soft.nii.gz")
    with pytest.raises(DataError, match=r"soft\.nii\.gz: the segmentation is not integer-valued"):
        read_pair(tmp_path / "nan.nii.gz".replace("nan", "soft"), tmp_path / "soft.nii.gz")
