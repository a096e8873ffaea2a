"""The U-Net's plan for anisotropic voxels and its output shapes."""

from __future__ import annotations

import pytest
import torch

from mlnb.errors import ConfigError
from mlnb.segment.network import UNet3D, plan_levels, total_stride


def test_thick_slices_pool_in_plane_first_and_outputs_match_inputs():
    levels = plan_levels((8, 32, 32), spacing=(3.0, 1.0, 1.0), depth=4, base_width=4)
    # in-plane first; the slices stop pooling at 4 (below 8)
    assert [level.stride for level in levels] == [(1, 1, 1), (1, 2, 2), (2, 2, 2), (1, 2, 2)]
    assert [level.kernel for level in levels] == [(1, 3, 3), (3, 3, 3), (3, 3, 3), (3, 3, 3)]
    assert [level.width for level in levels] == [4, 8, 16, 32]
    assert total_stride(levels) == (2, 8, 8)
    model = UNet3D(levels, labels=3)
    for shape in ((8, 32, 32), (6, 16, 40)):  # any multiple of the total stride
        assert model(torch.zeros(2, 1, *shape)).shape == (2, 3, *shape)


def test_isotropic_voxels_pool_every_axis_until_it_is_small_and_widths_are_capped():
    levels = plan_levels((16, 64, 64), spacing=(1.0, 1.0, 1.0), depth=5, base_width=64)
    assert [level.stride for level in levels] == [(1, 1, 1), (2, 2, 2), (2, 2, 2), (1, 2, 2), (1, 2, 2)]
    assert [level.width for level in levels] == [64, 128, 256, 320, 320]


@pytest.mark.parametrize(("patch", "depth", "message"), [
    ((8, 30, 32), 3, r"segment.patch_size \[8, 30, 32\]: axis 1 has 15 voxels at level 2"),
    ((8, 8, 8), 4, "segment.depth 4: patches of"),
])
def test_plans_that_cannot_be_built_are_refused(patch, depth, message):
    with pytest.raises(ConfigError, match=message):
        plan_levels(patch, (1.0, 1.0, 1.0), depth, 4)
    with pytest.raises(ConfigError, match="at least 2 labels"):
        UNet3D(plan_levels((8, 8, 8), (1.0, 1.0, 1.0), 1, 4), labels=1)
