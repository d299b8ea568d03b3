"""The console script, run for real in subprocesses on generated TIFFs, zarr stores and .npy files."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from napari_zarr_tiler.converter.regions import JOURNAL
from napari_zarr_tiler.converter.staging import staging_path
from napari_zarr_tiler.sources.synthetic import synthetic_slide

from ..conftest import reference_mean

EXE = (
    shutil.which("napari-zarr-tiler", path=str(Path(sys.executable).parent)) or "napari-zarr-tiler"
)


def run(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300, check=False)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def assert_one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode != 0
    lines = [
        line for line in result.stderr.splitlines() if line.startswith("napari-zarr-tiler: error")
    ]
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.tile(synthetic_slide(1024, dtype="uint16", seed=2), (2, 3))  # 2048 x 3072


@pytest.fixture(scope="module")
def tiffs(tmp_path_factory: pytest.TempPathFactory, image: np.ndarray) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tiffs")
    paths = {
        "stripped": folder / "stripped.tif",
        "tiled": folder / "tiled_bigtiff.tif",
        "ome": folder / "pyramid.ome.tif",
        "rgb": folder / "rgb.tif",
    }
    tifffile.imwrite(paths["stripped"], image, rowsperstrip=37)
    tifffile.imwrite(paths["tiled"], image, tile=(256, 256), compression="zlib", bigtiff=True)
    channels = np.stack([image, image[::-1], image[:, ::-1]])
    with tifffile.TiffWriter(paths["ome"], ome=True, bigtiff=True) as writer:
        writer.write(
            channels,
            tile=(256, 256),
            subifds=2,
            metadata={
                "axes": "CYX",
                "PhysicalSizeX": 0.25,
                "PhysicalSizeXUnit": "µm",
                "PhysicalSizeY": 0.5,
                "PhysicalSizeYUnit": "µm",
                "Channel": {"Name": ["DAPI", "GFP", "RFP"]},
            },
        )
        writer.write(channels[:, ::2, ::2], tile=(256, 256), subfiletype=1)
        writer.write(channels[:, ::4, ::4], tile=(256, 256), subfiletype=1)
    rgb = (np.stack([image, image[::-1], image[:, ::-1]], axis=-1) // 256).astype(np.uint8)
    tifffile.imwrite(paths["rgb"], rgb[:500, :700], photometric="rgb")
    return paths


@pytest.mark.parametrize("kind", ["stripped", "tiled"])
def test_convert_plain_tiffs(
    tiffs: dict[str, Path], image: np.ndarray, tmp_path: Path, kind: str
) -> None:
    dest = tmp_path / "out.zarr"
    result = run(
        "convert",
        str(tiffs[kind]),
        str(dest),
        "--chunks",
        "256",
        "--compressor",
        "blosc-lz4",
        check=True,
    )
    assert "wrote" in result.stderr
    assert "\r" not in result.stderr  # no progress bar when stderr is not a terminal
    # Uncompressed strips are read directly (a region reads its own bytes, not whole strips).
    assert ("read directly" in result.stderr) == (kind == "stripped")
    group = zarr.open_group(str(dest), mode="r")
    np.testing.assert_array_equal(group["0"][...], image)
    assert group["0"].chunks == (256, 256)
    assert len(group.attrs["ome"]["multiscales"][0]["datasets"]) == 5


@pytest.mark.parametrize("kind", ["stripped", "tiled"])
def test_converting_a_tiff_never_imports_dask(
    tiffs: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    # dask.array (and the scipy it imports) cost ~0.25 s of every run's start-up.
    script = textwrap.dedent(
        f"""
        import sys
        from napari_zarr_tiler.cli import main
        status = main(["convert", {str(tiffs[kind])!r}, {str(tmp_path / "out.zarr")!r}, "--quiet"])
        print(status, "dask" in sys.modules, "scipy" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "False", "False"]


def test_convert_ome_tiff_keeps_physical_sizes_and_channel_names(
    tiffs: dict[str, Path], image: np.ndarray, tmp_path: Path
) -> None:
    dest = tmp_path / "ome.zarr"
    run("convert", str(tiffs["ome"]), str(dest), "--chunks", "512", "--quiet", check=True)
    group = zarr.open_group(str(dest), mode="r")
    ome = group.attrs["ome"]
    multiscale = ome["multiscales"][0]
    assert [a["name"] for a in multiscale["axes"]] == ["c", "y", "x"]
    assert multiscale["axes"][1]["unit"] == "micrometer"
    assert multiscale["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 0.5, 0.25]
    assert [c["label"] for c in ome["omero"]["channels"]] == ["DAPI", "GFP", "RFP"]
    np.testing.assert_array_equal(group["0"][1], image[::-1])


def test_convert_rgb_tiff(tiffs: dict[str, Path], tmp_path: Path) -> None:
    dest = tmp_path / "rgb.zarr"
    run("convert", str(tiffs["rgb"]), str(dest), "--quiet", check=True)
    assert zarr.open_group(str(dest), mode="r")["0"].shape == (3, 500, 700)


def test_retile_the_classic_100px_store_and_npy(tmp_path: Path, image: np.ndarray) -> None:
    classic = tmp_path / "classic.zarr"
    z = zarr.open(str(classic), mode="w", shape=image.shape, chunks=(100, 100), dtype=image.dtype)
    z[:] = image
    dest = tmp_path / "retiled.zarr"
    run("convert", str(classic), str(dest), "--chunks", "512", "--quiet", check=True)
    np.testing.assert_array_equal(zarr.open_group(str(dest), mode="r")["0"][...], image)
    npy = tmp_path / "image.npy"
    np.save(npy, image)
    dest2 = tmp_path / "from_npy.zarr"
    run("convert", str(npy), str(dest2), "--zarr-format", "2", "--quiet", check=True)
    np.testing.assert_array_equal(zarr.open_group(str(dest2), mode="r")["0"][...], image)
    assert (dest2 / ".zgroup").is_file()


def test_info_describes_a_store(tmp_path: Path, image: np.ndarray) -> None:
    dest = tmp_path / "described.zarr"
    np.save(tmp_path / "a.npy", image)
    run(
        "convert",
        str(tmp_path / "a.npy"),
        str(dest),
        "--chunks",
        "256",
        "--shards",
        "1024",
        "--quiet",
        check=True,
    )
    result = run("info", str(dest), check=True)
    out = result.stdout
    assert "OME-Zarr 0.5 image" in out
    assert "level 0: shape (2048, 3072) uint16, chunks (256, 256), shards (1024, 1024)" in out
    assert "MB on disk" in out
    assert "compression)" in out
    assert "codecs zstd (level 3)" in out  # named as the options spell it, with the level


def test_info_lists_the_images_of_a_bioformats2raw_collection(
    tmp_path: Path, image: np.ndarray
) -> None:
    root = tmp_path / "b2r.zarr"
    zarr.open_group(str(root), mode="w", zarr_format=2).attrs.put({"bioformats2raw.layout": 3})
    for series in ("0", "1", "10", "2"):
        zarr.open_group(str(root / series), mode="w", zarr_format=2)
        zarr.create_array(str(root / series / "0"), data=image[:64, :64], zarr_format=2)
    out = run("info", str(root), check=True).stdout
    assert "bioformats2raw collection" in out
    assert "groups: 0, 1, 2, 10 (describe one with" in out


@pytest.mark.parametrize(
    ("options", "codec"),
    [
        (("--compressor", "blosc-lz4"), "blosc-lz4 (clevel 5, shuffle)"),
        (("--compressor", "blosc-zstd", "--zarr-format", "2"), "blosc-zstd (clevel 3, shuffle)"),
        (("--compressor", "gzip", "--clevel", "4", "--zarr-format", "2"), "gzip (level 4)"),
    ],
)
def test_info_names_codecs_as_the_options_do(
    tmp_path: Path, options: tuple[str, ...], codec: str
) -> None:
    np.save(tmp_path / "a.npy", np.arange(300 * 200, dtype=np.uint16).reshape(300, 200))
    dest = tmp_path / "a.zarr"
    run("convert", str(tmp_path / "a.npy"), str(dest), *options, "--quiet", check=True)
    out = run("info", str(dest), check=True).stdout
    assert f"codecs {codec}," in out


def test_resume_of_a_complete_store_is_refused_and_of_nothing_starts_afresh(
    tmp_path: Path, image: np.ndarray
) -> None:
    np.save(tmp_path / "a.npy", image)
    done = tmp_path / "done.zarr"
    run("convert", str(tmp_path / "a.npy"), str(done), "--quiet", check=True)
    before = tree_bytes(done)
    result = run("convert", str(tmp_path / "a.npy"), str(done), "--resume")
    assert_one_line_error(result, "already complete: there is no interrupted conversion")
    assert tree_bytes(done) == before
    fresh = tmp_path / "elsewhere" / "done.zarr"  # same name: same metadata
    result = run("convert", str(tmp_path / "a.npy"), str(fresh), "--resume", check=True)
    assert "no interrupted conversion to resume; converted from the start" in result.stderr
    assert tree_bytes(fresh) == before


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["convert", "/nonexistent/image.tif", "{tmp}/a.zarr"], "no such file or folder"),
        (["convert", "{tmp}/notes.txt", "{tmp}/b.zarr"], "not a readable TIFF image"),
        (["convert", "{tmp}/truncated.tif", "{tmp}/c.zarr"], "truncated or corrupt"),
        (["convert", "{tmp}/img.npy", "{tmp}/exists.zarr"], "already exists"),
        (
            ["convert", "{tmp}/img.npy", "{tmp}/notes.txt/d.zarr"],
            "cannot create the destination folder",
        ),
        (["convert", "{tmp}/img.npy", "{tmp}/e.zarr", "--chunks", "0"], "chunks must be positive"),
        (
            ["convert", "{tmp}/img.npy", "{tmp}/f.zarr", "--chunks", "64", "--shards", "100"],
            "multiple of the chunks",
        ),
        (
            ["convert", "{tmp}/img.npy", "{tmp}/g.zarr", "--shards", "1024", "--zarr-format", "2"],
            "zarr format 3",
        ),
        (
            ["convert", "{tmp}/img.npy", "{tmp}/h.zarr", "--compressor", "none", "--clevel", "5"],
            "no effect without a compressor",
        ),
        (["info", "{tmp}/notes.txt"], "not a zarr store"),
    ],
)
def test_bad_input_gets_one_line_and_nonzero_exit(
    tmp_path: Path, tiffs: dict[str, Path], args: list[str], fragment: str
) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    np.save(tmp_path / "img.npy", np.zeros((64, 64), dtype=np.uint8))
    (tmp_path / "exists.zarr").mkdir()
    data = tiffs["tiled"].read_bytes()
    (tmp_path / "truncated.tif").write_bytes(data[: len(data) // 2])
    result = run(*[a.format(tmp=tmp_path) for a in args])
    assert_one_line_error(result, fragment)
    for leftover in ("c.zarr", "e.zarr", "f.zarr", "g.zarr"):
        assert not (tmp_path / leftover).exists()
        assert not staging_path(tmp_path / leftover).exists()


@pytest.mark.parametrize(
    ("axes", "shape", "stored_axes", "to_stored", "channel_names"),
    [
        # ImageJ hyperstack / OME DimensionOrder XYCZT order: stored t, c, z, y, x.
        ("TZCYX", (2, 5, 3, 64, 80), ["t", "c", "z", "y", "x"], (0, 2, 1, 3, 4), ["A", "B", "C"]),
        # Planar RGB: stored as RGB (samples to a channel axis, shown as RGB again).
        ("SYX", (3, 64, 80), ["c", "y", "x"], (0, 1, 2), None),
        # Gray + alpha: two samples are two channels.
        ("YXS", (64, 80, 2), ["c", "y", "x"], (2, 0, 1), None),
        # RGB over time: napari shows RGB only with Z, so the samples become channels after t.
        ("TYXS", (4, 64, 80, 3), ["t", "c", "y", "x"], (0, 3, 1, 2), None),
    ],
    ids=["tzcyx", "planar-rgb", "gray-alpha", "rgb-over-time"],
)
def test_tiff_axes_are_stored_in_ome_order(
    tmp_path: Path,
    axes: str,
    shape: tuple[int, ...],
    stored_axes: list[str],
    to_stored: tuple[int, ...],
    channel_names: list[str] | None,
) -> None:
    data = np.random.default_rng(3).integers(0, 250, size=shape, dtype=np.uint8)
    src = tmp_path / "in.ome.tif"
    metadata: dict = {"axes": axes, "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
    if "Z" in axes:
        metadata["PhysicalSizeZ"] = 2.0
    if channel_names:
        metadata["Channel"] = {"Name": channel_names}
    photometric = "rgb" if axes in ("SYX", "TYXS") else "minisblack"
    planar = "separate" if axes == "SYX" else None
    tifffile.imwrite(
        src,
        data,
        ome=True,
        metadata=metadata,
        photometric=photometric,
        planarconfig=planar,
        extrasamples=[2] if axes == "YXS" else None,
    )
    dest = tmp_path / "out.zarr"
    run("convert", str(src), str(dest), "--chunks", "32", "--quiet", check=True)
    group = zarr.open_group(str(dest), mode="r")
    multiscale = group.attrs["ome"]["multiscales"][0]
    assert [a["name"] for a in multiscale["axes"]] == stored_axes
    expected = np.transpose(data, to_stored)
    np.testing.assert_array_equal(group["0"][...], expected)
    np.testing.assert_array_equal(group["1"][...], reference_mean(expected))
    scale = multiscale["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale[-2:] == [0.5, 0.5]
    if "Z" in axes:
        assert scale[stored_axes.index("z")] == 2.0
    if channel_names:
        assert [c["label"] for c in group.attrs["ome"]["omero"]["channels"]] == channel_names


def test_reconverting_an_ome_zarr_keeps_its_channels(tmp_path: Path) -> None:
    from napari_zarr_tiler import convert

    image = np.random.default_rng(0).integers(0, 255, (2, 300, 400), dtype=np.uint8)
    convert(
        image,
        tmp_path / "a.zarr",
        axes=("c", "y", "x"),
        scale=(1.0, 0.25, 0.25),
        units=(None, "micrometer", "micrometer"),
        channel_names=("DAPI", "GFP"),
        colors=("#0000ff", "#00ff00"),
        contrast_limits=((10, 100), (5, 50)),
    )
    run("convert", str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr"), "--chunks", "128",
        "--quiet", check=True)  # fmt: skip
    before = zarr.open_group(str(tmp_path / "a.zarr"), mode="r").attrs["ome"]
    after = zarr.open_group(str(tmp_path / "b.zarr"), mode="r").attrs["ome"]
    assert after["omero"]["channels"] == before["omero"]["channels"]
    assert after["multiscales"][0]["axes"] == before["multiscales"][0]["axes"]
    assert (
        after["multiscales"][0]["datasets"][0]["coordinateTransformations"]
        == before["multiscales"][0]["datasets"][0]["coordinateTransformations"]
    )


def test_a_stack_of_rgb_pages_stays_rgb(tmp_path: Path) -> None:
    """tifffile names the page axis of a plain multi-page RGB TIFF Q: stored as it was, RGB."""
    data = np.random.default_rng(4).integers(0, 250, size=(5, 64, 80, 3), dtype=np.uint8)
    src = tmp_path / "pages.tif"
    tifffile.imwrite(src, data, photometric="rgb")
    dest = tmp_path / "pages.zarr"
    run("convert", str(src), str(dest), "--chunks", "32", "--quiet", check=True)
    group = zarr.open_group(str(dest), mode="r")
    np.testing.assert_array_equal(group["0"][...], np.moveaxis(data, -1, 0))
    assert group["1"].shape == (3, 5, 32, 40)
    assert group.attrs["napari-zarr-tiler"]["rgb"] is True


def test_a_truncated_multi_page_tiff_is_refused_not_cut_short(tmp_path: Path) -> None:
    """tifffile opens what it can of a cut stack (fewer pages); converting that would lose planes."""
    stack = np.arange(7 * 300 * 500, dtype=np.uint16).reshape(7, 300, 500)
    whole = tmp_path / "stack.tif"
    tifffile.imwrite(whole, stack, imagej=True)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    result = run("convert", str(cut), str(tmp_path / "cut.zarr"))
    assert_one_line_error(result, "truncated or corrupt")
    assert not (tmp_path / "cut.zarr").exists()


@pytest.mark.parametrize(
    "damage",
    ["broken-zarr-json", "empty-zgroup", "store-with-stray-file"],
)
def test_overwrite_never_replaces_a_folder_that_is_not_a_store(
    tmp_path: Path, damage: str
) -> None:
    np.save(tmp_path / "img.npy", np.zeros((64, 64), dtype=np.uint8))
    dest = tmp_path / "thesis"
    if damage == "store-with-stray-file":
        run("convert", str(tmp_path / "img.npy"), str(dest), "--quiet", check=True)
    else:
        dest.mkdir()
        name, text = ("zarr.json", "not json") if damage == "broken-zarr-json" else (".zgroup", "")
        (dest / name).write_text(text)
    (dest / "thesis.docx").write_text("four years of work")
    result = run("convert", str(tmp_path / "img.npy"), str(dest), "--overwrite")
    assert_one_line_error(result, "is not a zarr store; it will not be replaced")
    assert (dest / "thesis.docx").read_text() == "four years of work"


def test_invalid_option_values_are_usage_errors(tmp_path: Path) -> None:
    result = run("convert", "a.tif", str(tmp_path / "x.zarr"), "--levels", "many")
    assert result.returncode == 2
    assert "levels must be 'auto' or a number" in result.stderr


# gzip at level 9: slow enough to interrupt mid-way; the reference and resumed runs use the same.
SLOW_OPTIONS = ("--chunks", "256", "--compressor", "gzip", "--clevel", "9")


# Run the command as a terminal would: a shell that started pytest in the background (`cmd &`)
# hands its children SIGINT ignored, and Python then never raises KeyboardInterrupt. A tiny
# exec wrapper restores the default (preexec_fn is unsafe in a process with threads).
INTERRUPTIBLE = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def _start_slow_conversion(src: Path, dest: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", INTERRUPTIBLE, EXE, "convert", str(src), str(dest), *SLOW_OPTIONS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_journal(dest: Path, regions: int, process: subprocess.Popen[str]) -> None:
    journal = staging_path(dest) / JOURNAL
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if journal.is_file() and len(journal.read_text().splitlines()) > regions:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    pytest.fail("the conversion wrote no region in time")


def _killed_conversion(src: Path, dest: Path, *, after_regions: int) -> None:
    """Start the slow conversion and SIGKILL it once the journal lists ``after_regions``+ regions."""
    process = _start_slow_conversion(src, dest)
    _wait_for_journal(dest, after_regions, process)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)


@pytest.fixture(scope="module")
def big_tiff(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.tif"
    tile = synthetic_slide(2048, dtype="uint16", seed=4)
    # 8192 x 12288 (201 MB): 12 regions in the first pass, so that an interrupt sent after the
    # second one is journaled always lands mid-way.
    tifffile.imwrite(path, np.tile(tile, (4, 6)), tile=(512, 512))
    return path


@pytest.fixture(scope="module")
def reference_store(tmp_path_factory: pytest.TempPathFactory, big_tiff: Path) -> Path:
    dest = tmp_path_factory.mktemp("reference") / "out.zarr"
    run(
        "convert",
        str(big_tiff),
        str(dest),
        *SLOW_OPTIONS,
        "--quiet",
        check=True,
    )
    return dest


@pytest.mark.parametrize(
    ("how", "damage"),
    [
        (signal.SIGINT, None),
        (signal.SIGKILL, None),
        (signal.SIGKILL, "truncate"),
        (signal.SIGKILL, "delete"),
    ],
    ids=["ctrl-c", "sigkill", "sigkill-truncated-chunk", "sigkill-lost-chunk"],
)
def test_interrupt_then_resume_gives_the_same_store(
    tmp_path: Path, big_tiff: Path, reference_store: Path, how: signal.Signals, damage: str | None
) -> None:
    dest = tmp_path / "out.zarr"
    process = _start_slow_conversion(big_tiff, dest)
    _wait_for_journal(dest, 2, process)
    process.send_signal(how)
    _, stderr = process.communicate(timeout=60)
    assert not dest.exists(), stderr  # never looks complete
    assert staging_path(dest).exists()
    if how == signal.SIGINT:
        assert process.returncode == 130
        assert "--resume" in stderr
        assert "Traceback" not in stderr
    done_before = len((staging_path(dest) / JOURNAL).read_text().splitlines()) - 1
    if damage is not None:
        # As after a power cut: a chunk of a journaled region is torn or gone. Resume must notice.
        chunk = staging_path(dest) / "0" / "c" / "0" / "0"
        assert chunk.is_file()
        if damage == "truncate":
            chunk.write_bytes(chunk.read_bytes()[:100])
        else:
            chunk.unlink()
    level0 = staging_path(dest) / "0" / "c"
    written_before = {
        path.relative_to(level0): path.stat().st_mtime_ns
        for path in level0.rglob("*")
        if path.is_file()
    }
    result = run("convert", str(big_tiff), str(dest), *SLOW_OPTIONS, "--resume", check=True)
    assert done_before >= 2
    # It says how much it kept: every journaled region but a damaged one.
    kept = re.search(r"resumed: (\d+) regions of the interrupted run were kept", result.stderr)
    assert kept is not None, result.stderr
    assert done_before - (damage is not None) - 1 <= int(kept.group(1)) <= done_before
    assert not staging_path(dest).exists()
    assert tree_bytes(dest) == tree_bytes(reference_store)
    assert result.returncode == 0
    # The journaled regions were verified and skipped, not written again: their chunk files
    # (128 per region here) are untouched; the damaged one was rewritten.
    untouched = {
        name
        for name, mtime in written_before.items()
        if (dest / "0" / "c" / name).stat().st_mtime_ns == mtime
    }
    assert len(untouched) >= 100, len(untouched)
    if damage == "truncate":
        assert Path("0", "0") not in untouched


def test_a_second_conversion_to_the_same_destination_waits_its_turn(
    tmp_path: Path, big_tiff: Path, reference_store: Path
) -> None:
    """It is refused while the first runs (never takes over or deletes its partial store)."""
    dest = tmp_path / "out.zarr"
    first = _start_slow_conversion(big_tiff, dest)
    _wait_for_journal(dest, 1, first)
    second = run("convert", str(big_tiff), str(dest), *SLOW_OPTIONS)
    assert_one_line_error(second, "another conversion to this destination is running")
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert tree_bytes(dest) == tree_bytes(reference_store)
    assert not staging_path(dest).exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out.zarr"]


@pytest.mark.parametrize(
    "other_options",
    [("--chunks", "512"), ("--levels", "9"), ("--zarr-format", "2")],
    ids=["chunks", "more-levels", "zarr-2"],
)
def test_resume_refuses_other_options(
    tmp_path: Path, big_tiff: Path, reference_store: Path, other_options: tuple[str, str]
) -> None:
    dest = tmp_path / "out.zarr"
    _killed_conversion(big_tiff, dest, after_regions=1)
    partial = tree_bytes(staging_path(dest))
    result = run("convert", str(big_tiff), str(dest), *SLOW_OPTIONS, *other_options, "--resume")
    assert_one_line_error(result, "started with other options")
    # The refusal changes nothing in the partial store (no arrays or metadata of the other
    # options), and the right command still resumes it into the store an uninterrupted run
    # writes.
    assert tree_bytes(staging_path(dest)) == partial
    run("convert", str(big_tiff), str(dest), *SLOW_OPTIONS, "--resume", "--quiet", check=True)
    assert tree_bytes(dest) == tree_bytes(reference_store)


def test_direct_io_without_the_zarrs_pipeline_is_refused(
    tmp_path: Path, tiffs: dict[str, Path]
) -> None:
    dest = tmp_path / "out.zarr"
    result = subprocess.run(
        [EXE, "convert", str(tiffs["stripped"]), str(dest), "--direct-io", "on"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "NAPARI_ZARR_TILER_PIPELINE": "default"},
    )
    assert_one_line_error(result, "direct I/O needs the zarrs codec pipeline")
    assert not dest.exists()
    assert not staging_path(dest).exists()


def test_local_dask_cluster_writes_the_same_bytes(
    tmp_path: Path, big_tiff: Path, reference_store: Path
) -> None:
    dest = tmp_path / "out.zarr"
    env_result = subprocess.run(
        [
            EXE,
            "convert",
            str(big_tiff),
            str(dest),
            *SLOW_OPTIONS,
            "--scheduler",
            "local",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=False,
    )
    assert env_result.returncode == 0, env_result.stderr
    assert tree_bytes(dest) == tree_bytes(reference_store)


def test_an_interrupted_store_is_never_reported_or_opened_as_complete(
    tmp_path: Path, big_tiff: Path
) -> None:
    from napari_zarr_tiler import read_zarr
    from napari_zarr_tiler.errors import StoreReadError

    dest = tmp_path / "out.zarr"
    _killed_conversion(big_tiff, dest, after_regions=1)
    partial = staging_path(dest)
    assert not dest.exists()
    for path in (partial, partial / "0"):
        with pytest.raises(StoreReadError, match="incomplete conversion"):
            read_zarr(path)
    assert_one_line_error(run("info", str(partial)), "incomplete conversion")


@pytest.mark.parametrize(
    ("shape", "options"),
    [
        ((700, 900), {"rowsperstrip": 33}),
        ((300, 400, 3), {"photometric": "rgb"}),
        ((3, 200, 300), {"photometric": "minisblack", "planarconfig": "separate"}),
        (
            (2, 3, 50, 60),
            {"byteorder": ">", "photometric": "minisblack", "metadata": {"axes": "ZCYX"}},
        ),
        ((700, 900), {"tile": (256, 256)}),
        ((300, 500, 3), {"tile": (128, 128), "photometric": "rgb"}),
    ],
    ids=["strips", "rgb", "channels", "big-endian-4d", "tiles", "rgb-tiles"],
)
def test_uncompressed_tiff_reads_equal_tifffile(  # read by positioned reads, not zarr
    tmp_path: Path, shape: tuple[int, ...], options: dict
) -> None:
    from napari_zarr_tiler.sources.formats import (
        AxisOrderView,
        ContiguousFileArray,
        SourceSpec,
        TiledFileArray,
    )

    rng = np.random.default_rng(3)
    data = rng.integers(0, 60000, size=shape, dtype=np.uint16)
    path = tmp_path / "raw.tif"
    tifffile.imwrite(path, data, **options)
    array = SourceSpec(str(path)).open().array
    if isinstance(array, AxisOrderView):  # ZCYX is stored as CZYX; the view reads the file
        np.testing.assert_array_equal(array[1, :, 3:40], data[:, 1, 3:40])
        array = array.array
    assert isinstance(array, ContiguousFileArray | TiledFileArray)
    np.testing.assert_array_equal(array[...], data)
    lead = (0,) * (len(shape) - 2)
    window = (
        (*lead, slice(17, 121), slice(5, 77))
        if len(shape) != 3 or shape[-1] != 3
        else (slice(17, 121), slice(5, 77))
    )
    np.testing.assert_array_equal(array[window], data[window])
    np.testing.assert_array_equal(array[-1], data[-1])


def test_choose_a_series_of_a_multi_series_tiff(tmp_path: Path, image: np.ndarray) -> None:
    path = tmp_path / "two_series.tif"
    with tifffile.TiffWriter(path) as writer:
        writer.write(image[:300, :400], tile=(128, 128))
        writer.write(image[:200, :100], tile=(128, 128))
    dest = tmp_path / "second.zarr"
    run("convert", str(path), str(dest), "--series", "1", "--quiet", check=True)
    np.testing.assert_array_equal(
        zarr.open_group(str(dest), mode="r")["0"][...], image[:200, :100]
    )
    assert_one_line_error(
        run("convert", str(path), str(tmp_path / "x.zarr"), "--series", "5"), "no series 5"
    )


def test_progress_bar_on_a_terminal(tmp_path: Path, image: np.ndarray) -> None:
    """With stderr on a terminal (a pseudo-terminal here) the bar shows tiles, MB/s and ETA."""
    import pty

    np.save(tmp_path / "img.npy", image)
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [EXE, "convert", str(tmp_path / "img.npy"), str(tmp_path / "out.zarr"), "--chunks", "128"],
        stdout=subprocess.DEVNULL,
        stderr=secondary,
    )
    os.close(secondary)
    output = b""
    while True:
        try:
            data = os.read(primary, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        output += data
    os.close(primary)
    assert process.wait(timeout=120) == 0
    text = output.decode(errors="replace")
    assert "\r" in text
    assert "tiles" in text
    assert "MB/s" in text
    assert "ETA" in text
    assert "100%" in text


def test_retiling_a_label_image_keeps_it_a_label_image(tmp_path: Path) -> None:
    from napari_zarr_tiler import convert, read_zarr

    labels = np.zeros((300, 300), dtype=np.uint16)
    labels[::3, ::3] = 7  # a mean would give values other than 0 and 7
    source = tmp_path / "labels.zarr"
    convert(labels, source, chunks=64, label=True)
    dest = tmp_path / "retiled.zarr"
    run("convert", str(source), str(dest), "--chunks", "128", "--quiet", check=True)
    group = zarr.open_group(str(dest), mode="r")
    assert "image-label" in group.attrs["ome"]
    assert set(np.unique(group["1"][...])) <= {0, 7}
    assert read_zarr(dest).layers[0].layer_type == "labels"


def test_an_incomplete_conversion_is_refused_as_a_source(tmp_path: Path, big_tiff: Path) -> None:
    dest = tmp_path / "out.zarr"
    _killed_conversion(big_tiff, dest, after_regions=1)
    result = run("convert", str(staging_path(dest)), str(tmp_path / "copy.zarr"))
    assert_one_line_error(result, "incomplete conversion")


def test_uncompressed_tiff_regions_read_only_their_bytes(tmp_path: Path) -> None:
    """Reading a 200 MB uncompressed stripped TIFF region by region keeps the process small."""
    path = tmp_path / "stripped.tif"
    with tifffile.TiffWriter(path, bigtiff=True) as writer:
        writer.write(
            (np.full((512, 10240), row, dtype=np.uint16) for row in range(20)),
            shape=(10240, 10240),
            dtype=np.uint16,
            rowsperstrip=512,
        )
    script = textwrap.dedent(
        f"""
        from napari_zarr_tiler.sources.formats import ContiguousFileArray, SourceSpec
        array = SourceSpec({str(path)!r}).open().array
        assert isinstance(array, ContiguousFileArray)
        total = 0
        for y in range(0, 10240, 2048):
            for x in range(0, 10240, 2048):
                total += int(array[y : y + 2048, x : x + 2048][0, 0])
        status = open("/proc/self/status").read()
        print(total, int(status.split("VmHWM:")[1].split()[0]) // 1024)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    total, peak_mb = map(int, result.stdout.split())
    assert total == sum(range(0, 20, 4)) * 5  # the right rows were read
    assert peak_mb < 150, f"peak {peak_mb} MB after reading a 200 MB file"


def test_a_tiff_of_huge_compressed_strips_is_refused_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One compressed strip is decoded whole for every region that touches it: refused past a
    size, with what to do instead; smaller strips convert."""
    from napari_zarr_tiler.errors import SourceError
    from napari_zarr_tiler.sources import formats as sources
    from napari_zarr_tiler.sources.formats import SourceSpec

    data = np.arange(512 * 600, dtype=np.uint16).reshape(512, 600)
    path = tmp_path / "one_strip.tif"
    tifffile.imwrite(path, data, compression="zlib", rowsperstrip=512)
    monkeypatch.setattr(sources, "MAX_SEGMENT_BYTES", 512 * 600 * 2 - 1)
    with pytest.raises(SourceError, match="each compressed strip holds"):
        SourceSpec(str(path)).open()
    monkeypatch.setattr(sources, "MAX_SEGMENT_BYTES", 512 * 600 * 2)
    opened = SourceSpec(str(path)).open()
    try:
        np.testing.assert_array_equal(opened.array[100:200, 50:60], data[100:200, 50:60])
    finally:
        opened.close()
