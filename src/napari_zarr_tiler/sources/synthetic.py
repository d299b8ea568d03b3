"""A deterministic, slide-like synthetic image: tissue islands with nuclei on a dark background."""

from __future__ import annotations

from typing import Literal

import numpy as np


def _smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise (periodic, through the FFT), scaled to zero mean, unit std."""
    noise = rng.standard_normal((size, size)).astype(np.float32)
    frequencies = np.fft.fftfreq(size).astype(np.float32)
    kernel = np.exp(
        -2 * (np.pi * sigma) ** 2 * (frequencies[:, None] ** 2 + frequencies[None, :] ** 2)
    )
    smooth = np.fft.irfft2(np.fft.rfft2(noise) * kernel[:, : size // 2 + 1], s=(size, size))
    smooth = smooth.astype(np.float32)
    smooth -= smooth.mean()
    smooth /= smooth.std() + 1e-12
    return smooth


def _upsample(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling of a square image to ``size`` x ``size``."""
    source = image.shape[0]
    coords = (np.arange(size, dtype=np.float32) + 0.5) * source / size - 0.5
    coords = np.clip(coords, 0, source - 1)
    low = np.floor(coords).astype(np.intp)
    high = np.minimum(low + 1, source - 1)
    weight = (coords - low).astype(np.float32)
    rows = image[low] * (1 - weight)[:, None] + image[high] * weight[:, None]
    return rows[:, low] * (1 - weight)[None, :] + rows[:, high] * weight[None, :]


def synthetic_slide(
    size: int = 4096, *, dtype: Literal["uint8", "uint16"] = "uint8", seed: int = 0
) -> np.ndarray:
    """Make a slide-like test image: tissue islands, texture and nuclei on a dark background.

    Parameters
    ----------
    size : int
        Side of the square image, in pixels (at least 64).
    dtype : {"uint8", "uint16"}
        Pixel type; 16-bit images span most of the 16-bit range.
    seed : int
        Random seed; the same arguments always give the same image.

    Returns
    -------
    numpy.ndarray
        A ``size`` x ``size`` array of ``dtype``.
    """
    if size < 64:
        msg = f"size must be at least 64 pixels, got {size}"
        raise ValueError(msg)
    if dtype not in ("uint8", "uint16"):
        msg = f"dtype must be 'uint8' or 'uint16', got {dtype!r}"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    tissue = _tissue(rng, size)
    texture = _upsample(_smooth_noise(rng, max(size // 8, 16), sigma=1.5), size)
    nuclei = _nuclei(rng, size)
    background = 0.04 + 0.01 * texture
    stroma = 0.30 + 0.08 * texture
    image = background + tissue * (stroma - background) + tissue * nuclei * 0.55
    image += rng.standard_normal((size, size), dtype=np.float32) * 0.008
    image = np.clip(image, 0, 1)
    maximum = 255 if dtype == "uint8" else 60000
    return (image * maximum).astype(dtype)


def _tissue(rng: np.random.Generator, size: int) -> np.ndarray:
    """Soft-edged tissue islands: 1 inside, 0 outside, from coarse smooth noise."""
    coarse = max(size // 32, 16)
    tissue_field = _upsample(_smooth_noise(rng, coarse, sigma=coarse / 16), size)
    return np.clip((tissue_field - 0.3) * 3, 0, 1)


def _nuclei(rng: np.random.Generator, size: int) -> np.ndarray:
    """Bright blurred spots scattered at random (about one grid cell in 40), in [0, 1]."""
    nuclei_grid = max(size // 4, 16)
    impulses = np.zeros((nuclei_grid, nuclei_grid), dtype=np.float32)
    count = nuclei_grid * nuclei_grid // 40
    rows = rng.integers(0, nuclei_grid, count)
    cols = rng.integers(0, nuclei_grid, count)
    impulses[rows, cols] = rng.uniform(0.6, 1.0, count).astype(np.float32)
    frequencies = np.fft.fftfreq(nuclei_grid).astype(np.float32)
    blur = np.exp(
        -2 * (np.pi * 0.9) ** 2 * (frequencies[:, None] ** 2 + frequencies[None, :] ** 2)
    )
    spots = np.fft.irfft2(
        np.fft.rfft2(impulses) * blur[:, : nuclei_grid // 2 + 1], s=impulses.shape
    )
    return np.clip(_upsample(spots.astype(np.float32), size) * 4, 0, 1)
