"""Augmentation: the fused path (one resampling, OpenCV) beside the blog's scipy chain.

Both run in one process, one thread, on the same 224x224x8 MRI image+segmentation
pairs (slices of nilearn's MNI152 template with its tissue labels) with the same
drawn parameters: all five blog transforms, then crop and resample to 224x224x8.
Also: sharpness (PSNR after rotating by +theta and back), and volumes/s of the
batched torch path on the CPU (and on the GPU when there is one).

Run: .venv/bin/python -m pytest -s -m benchmark tests/benchmarks/test_bench_augment.py
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage

from mlnb import cli
from mlnb.augment import Normalise, Pair, Rotate, Translate, affine, augment
from mlnb.augment.pair import Trace
from mlnb.augment.policy import copy_generator
from mlnb.augment.settings import AugmentSettings
from mlnb.augment.torch_batch import augment_batch, random_chains
from tests.augment.augment_helpers import warped_wave, wave_pair

DIMS = (224, 224, 8)
PAIRS = 6
#: spline orders of the blog's own functions (rotateit, scaleit, translateit, resampleit)
BLOG_ORDERS = {"rotate": 5, "scale": 3, "translate": 5, "resample": 5}


def blog_policy(**overrides):
    as_json = {key: list(value) if isinstance(value, tuple) else value for key, value in overrides.items()}
    return AugmentSettings.from_mapping(as_json).policy()


def mri_pairs(count: int = PAIRS) -> list[Pair]:
    """224x224x8 crops of the MNI152 template (2 mm) with a tissue label map (0..3)."""
    from nilearn import datasets

    template = np.asarray(datasets.load_mni152_template(resolution=2).dataobj, dtype=np.float32)
    masks = [np.asarray(load(resolution=2).dataobj) > 0 for load in (
        datasets.load_mni152_brain_mask, datasets.load_mni152_wm_mask, datasets.load_mni152_gm_mask)]
    labels = np.zeros(template.shape, np.uint8)
    labels[masks[0]], labels[masks[1]], labels[masks[2] & ~masks[1]] = 3, 2, 1
    pairs = []
    for index in range(count):
        slices = slice(30 + 4 * index, 38 + 4 * index)
        image, seg = template[:, :, slices], labels[:, :, slices]
        factors = (DIMS[0] / image.shape[0], DIMS[1] / image.shape[1], 1)
        pairs.append(Pair(ndimage.zoom(image, factors, order=1) * 10, ndimage.zoom(seg, factors, order=0),
                          "volume", source=f"mni slab {index}"))
    return pairs


def blog_chain(pair: Pair, chain, orders=None) -> np.ndarray:
    """The sequential reference, optionally with the blog's per-function spline orders."""
    trace = Trace(pair.source, pair.kind)
    image, codes = pair.image_planes(), pair.label_codes().codes
    for transform in chain:
        order = (orders or {}).get(transform.name, 3)
        image, codes = transform.reference(image, codes, order, trace)
    return image


def best_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def gradient_energy(image: np.ndarray) -> float:
    """Mean squared in-plane gradient: lower means blurrier."""
    rows, cols = np.gradient(image, axis=(0, 1))
    return float(np.mean(rows**2 + cols**2))


def psnr(estimate: np.ndarray, truth: np.ndarray) -> float:
    error = np.mean((estimate - truth) ** 2)
    return float("inf") if error == 0 else float(10 * np.log10(np.ptp(truth) ** 2 / error))


@pytest.mark.benchmark
def test_fused_against_the_blog_chain():
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    pairs = mri_pairs()
    policy = blog_policy(dims=DIMS, min_transforms=5, max_transforms=5)
    chains = [policy.draw(copy_generator(1, pair.source, 0), pair.kind, pair.depth) for pair in pairs]

    def run_fused():
        for pair, chain in zip(pairs, chains, strict=True):
            augment(pair, chain, "fused")

    def run_sequential(orders=None):
        for pair, chain in zip(pairs, chains, strict=True):
            blog_chain(pair, chain, orders)

    run_fused()  # warm-up (imports, caches)
    fused = best_time(run_fused, 5) / len(pairs)
    sequential = best_time(run_sequential, 1) / len(pairs)
    blog_orders = best_time(lambda: run_sequential(BLOG_ORDERS), 1) / len(pairs)
    print(f"\n224x224x8 image+segmentation, all five blog transforms + crop + resample, one thread "
          f"({len(pairs)} pairs):")
    print(f"  blog chain, scipy order 3:           {sequential * 1e3:8.1f} ms/pair")
    print(f"  blog chain, the blog's orders 5/3/5/5: {blog_orders * 1e3:6.1f} ms/pair")
    print(f"  fused, OpenCV cubic, one resampling: {fused * 1e3:8.2f} ms/pair")
    print(f"  ratio: {sequential / fused:.0f}x (order 3), {blog_orders / fused:.0f}x (blog's orders); "
          f"target >= 10x, aim 25x")
    inner = (slice(32, -32), slice(32, -32))

    # Accuracy on a non-identity chain with a known answer (see tests/augment: the wave image).
    wave = wave_pair(DIMS)
    chain = [Rotate(7.0), Translate(0.5, -0.5), Rotate(-12.0)]
    forward = affine.rotation(-12.0, wave.plane) @ affine.translation(0.5, -0.5) @ affine.rotation(7.0, wave.plane)
    truth = warped_wave(forward, wave.plane)[..., None]
    for order in (1, 3, 5):
        scores = {mode: psnr(augment(wave, chain, mode, order).image[inner], truth[inner]) for mode in
                  ("fused", "sequential")}
        print(f"  rotate 7, shift (0.5, -0.5), rotate -12, order {order}: PSNR against the exact warp: "
              f"fused {scores['fused']:.1f} dB, blog chain {scores['sequential']:.1f} dB")
    # Blur of the whole chain: every extra interpolation lowers the image's gradient energy.
    inner = (slice(32, -32), slice(32, -32))
    energy = {mode: np.mean([gradient_energy(augment(pair, chain, mode).image[inner])
                             for pair, chain in zip(pairs, chains, strict=True)]) for mode in ("fused", "sequential")}
    print(f"  gradient energy after the chain, fused / blog chain: {energy['fused'] / energy['sequential']:.3f}")
    assert energy["fused"] > energy["sequential"]

    batched_throughput(pairs)


def batched_throughput(pairs: list[Pair]) -> None:
    policy = blog_policy()
    batch = 16
    images = torch.stack([torch.from_numpy(np.moveaxis(pairs[i % len(pairs)].image, 2, 0).copy())
                          for i in range(batch)])
    segs = torch.stack([torch.from_numpy(np.moveaxis(pairs[i % len(pairs)].seg, 2, 0).copy())
                        for i in range(batch)])
    items = [f"item{i}" for i in range(batch)]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        on_device = images.to(device), segs.to(device)

        def run(epoch=0, on_device=on_device, device=device):
            chains = [[Normalise(), *chain] for chain in random_chains(policy, 1, items, epoch, "volume", DIMS[2])]
            augment_batch(*on_device, chains)
            if device == "cuda":
                torch.cuda.synchronize()

        run()
        seconds = best_time(run, 3 if device == "cpu" else 10)
        threads = torch.get_num_threads() if device == "cpu" else "-"
        print(f"  batched torch path on {device} (threads {threads}): {batch / seconds:.0f} volumes/s "
              f"(batch {batch} of 224x224x8 + segmentation)")


@pytest.mark.benchmark
def test_the_stage_at_the_command_line(tmp_path):
    """``mlnb augment`` as a user runs it: read the NIfTI pair, augment, write image, labels, record and
    preview; per copy, fused beside sequential, with every preview, only the first's, or none."""
    import nibabel as nib

    pair = mri_pairs(1)[0]
    image, seg = tmp_path / "slab.nii.gz", tmp_path / "slab_seg.nii.gz"
    nib.save(nib.Nifti1Image(pair.image, np.eye(4)), image)
    nib.save(nib.Nifti1Image(pair.seg, np.eye(4)), seg)
    copies = 8

    def per_copy(mode, previews):
        argv = ["augment", str(image), "--seg", str(seg), "--out", str(tmp_path / f"{mode}-{previews}"),
                "--copies", str(copies), "--dims", *map(str, DIMS), "--mode", mode, "--previews", previews,
                "--threads", "1"]
        return best_time(lambda: cli.main(argv), 2 if mode == "fused" else 1) / copies

    cli.main(["augment", str(image), "--seg", str(seg), "--out", str(tmp_path / "warm"), "--copies", "1"])
    print(f"\nmlnb augment, 224x224x8 NIfTI image + segmentation, {copies} copies, one thread, I/O included:")
    sequential = per_copy("sequential", "all")
    for previews in ("all", "first", "none"):
        fused = per_copy("fused", previews)
        print(f"  fused, previews {previews:5}: {fused * 1e3:7.1f} ms/copy   (sequential, previews all: "
              f"{sequential * 1e3:.1f} ms/copy -> {sequential / fused:.1f}x)")
