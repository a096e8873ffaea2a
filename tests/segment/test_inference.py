"""Sliding windows reproduce a known label map; predictions go back to the original grid and header."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from mlnb.segment.inference import sliding_window, to_original, window_starts, write_prediction
from mlnb.segment.preprocess import Source, load_volume, preprocess, to_internal
from tests.segment.cases import bars_and_blobs, write_case


def test_window_starts_cover_the_axis_with_the_overlap_asked_for():
    assert window_starts(10, 16, 0.5) == [0]
    assert window_starts(32, 16, 0.5) == [0, 8, 16]
    starts = window_starts(37, 16, 0.25)
    assert starts[0] == 0 and starts[-1] == 21 and max(np.diff(starts)) <= 12


def test_sliding_windows_reproduce_a_label_map_with_a_model_that_reads_it():
    labels = torch.from_numpy(np.random.default_rng(0).integers(0, 3, (11, 30, 37)))

    def model(windows):  # logits that pick the label each voxel holds: only stitching can go wrong
        return 10 * F.one_hot(windows.long(), 3).movedim(-1, 1).float()

    probabilities = sliding_window(model, labels.float(), (8, 16, 16), overlap=0.5, labels=3, batch=3)
    assert probabilities.shape == (3, 11, 30, 37)
    assert torch.equal(probabilities.argmax(dim=0), labels)
    torch.testing.assert_close(probabilities.sum(dim=0), torch.ones(11, 30, 37))


def test_predictions_return_to_the_original_grid_with_the_images_affine(tmp_path):
    image, labels = bars_and_blobs(3)
    image[:, :, :4] = image.min()  # a margin outside the body: cropped, then restored as background
    paths = write_case(tmp_path, "case", image, labels, spacing=(2.0, 1.3, 0.7))
    volume = load_volume(Source("case", "case", *paths))
    _, resampled, record = preprocess(volume, (1.0, 1.0, 1.0))
    assert resampled.shape != labels.shape
    probabilities = F.one_hot(torch.from_numpy(resampled).long(), 2).movedim(-1, 0).float()
    back = to_original(probabilities, record)
    assert back.shape == labels.shape and np.mean(back == labels) > 0.97
    write_prediction(back, paths[0], tmp_path / "prediction.nii.gz")
    written, source = nib.load(tmp_path / "prediction.nii.gz"), nib.load(paths[0])
    np.testing.assert_array_equal(written.affine, source.affine)
    assert written.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(to_internal(np.asarray(written.dataobj)), back)
