"""The staging lifecycle (check, stage, lock, commit, abort, resume): every state a crash or a
failure leaves is recognised and recoverable, and an overwrite replaces only a zarr store.

Crash states are made by real conversions in child processes killed (SIGKILL) at a chosen
point: an audit hook in the child kills it just before a chosen file operation, so the disk is
left exactly as a kill at that moment leaves it. Write failures come from a real file-size limit
(``RLIMIT_FSIZE``, as when a disk fills).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_zarr_tiler import convert, read_zarr
from napari_zarr_tiler.errors import DestinationError
from napari_zarr_tiler.zarr_names import STAGING_MARKER, staging_path

from ..helpers import run, tree_bytes

EXE = shutil.which("napari-zarr-tiler", path=str(Path(sys.executable).parent))


def image(shape: tuple[int, int] = (300, 500), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4000, size=shape, dtype=np.uint16)


def leftovers(folder: Path, keep: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != keep)


# ---------------------------------------------------------------------------------------------
# 1. An overwrite replaces only what is provably a zarr store
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    ["notes/thesis.docx", "results/table.csv", "0/notes.txt", "0/c/README", "link"],
)
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_overwrite_refuses_a_store_holding_other_files(
    tmp_path: Path, extra: str, zarr_format: int
) -> None:
    dest = tmp_path / "thesis.zarr"
    convert(image(), dest, chunks=128, zarr_format=zarr_format)
    if extra == "0/c/README" and zarr_format == 2:
        extra = "0/1/README"
    target = dest / extra
    target.parent.mkdir(parents=True, exist_ok=True)
    if extra == "link":
        (tmp_path / "elsewhere.txt").write_text("kept")
        target.symlink_to(tmp_path / "elsewhere.txt")
    else:
        target.write_text("four years of work")
    before = tree_bytes(dest)
    with pytest.raises(DestinationError, match="is not a zarr store") as caught:
        convert(image(seed=1), dest, overwrite=True)
    assert extra.split("/")[-1] in str(caught.value)  # names what it would have deleted
    assert tree_bytes(dest) == before
    assert leftovers(tmp_path, "thesis.zarr") == (["elsewhere.txt"] if extra == "link" else [])


def test_napari_save_refuses_a_store_holding_other_files(tmp_path: Path) -> None:
    from napari_zarr_tiler._napari.writer import write_image

    dest = tmp_path / "scan.zarr"
    convert(image(), dest)
    (dest / "notes").mkdir()
    (dest / "notes" / "thesis.docx").write_text("four years of work")
    with pytest.raises(DestinationError, match=r"thesis\.docx"):
        write_image(str(dest), image(seed=2), {"name": "scan"})
    assert (dest / "notes" / "thesis.docx").read_text() == "four years of work"


def test_cli_overwrite_refuses_a_store_holding_other_files(tmp_path: Path) -> None:
    np.save(tmp_path / "img.npy", image())
    dest = tmp_path / "out.zarr"
    convert(image(), dest)
    (dest / "results").mkdir()
    (dest / "results" / "table.csv").write_text("a,b\n1,2\n")
    result = subprocess.run(
        [EXE, "convert", str(tmp_path / "img.npy"), str(dest), "--overwrite"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1
    assert "table.csv" in result.stderr and "Traceback" not in result.stderr
    assert (dest / "results" / "table.csv").read_text() == "a,b\n1,2\n"


@pytest.mark.parametrize(
    "kind", ["v3", "v3-dot-keys", "v3-sharded", "v2-slash", "v2-dot", "bare-v2-array"]
)
def test_overwrite_replaces_real_zarr_stores(tmp_path: Path, kind: str) -> None:
    dest = tmp_path / "old.zarr"
    data = image((130, 70))
    if kind == "v3":
        convert(data, dest, chunks=32)
    elif kind == "v3-sharded":
        convert(data, dest, chunks=32, shards=64)
    elif kind == "bare-v2-array":
        zarr.create_array(dest, data=data, chunks=(32, 32), zarr_format=2)
    else:
        group = zarr.open_group(dest, mode="w", zarr_format=2 if "v2" in kind else 3)
        keys = (
            {"chunk_key_encoding": {"name": "default", "separator": "."}}
            if kind == "v3-dot-keys"
            else {
                "chunk_key_encoding": {"name": "v2", "separator": "/" if "slash" in kind else "."}
            }
        )
        group.create_group("labels").create_array("cells", data=data, chunks=(32, 32), **keys)
        group.attrs["note"] = "old"
    convert(image(seed=3), dest, overwrite=True, chunks=64)
    np.testing.assert_array_equal(zarr.open_array(dest / "0")[:], image(seed=3))
    assert leftovers(tmp_path, "old.zarr") == []


# ---------------------------------------------------------------------------------------------
# 2. The destination may not be (inside) a source opened by a relative path
# ---------------------------------------------------------------------------------------------


def _store_with_labels(path: Path) -> dict[str, bytes]:
    group = zarr.open_group(path, mode="w")
    group.create_array("raw", data=image((64, 64)), chunks=(32, 32))
    group.create_group("labels").create_array("cells", data=image((64, 64), 5), chunks=(32, 32))
    return tree_bytes(path)


def test_relative_zarr_source_is_protected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before = _store_with_labels(tmp_path / "src.zarr")
    with pytest.raises(DestinationError, match="the destination is inside the source"):
        convert(zarr.open_array("src.zarr/raw"), "src.zarr", overwrite=True)
    with pytest.raises(DestinationError, match="inside the source"):
        convert(zarr.open_array("src.zarr/raw"), tmp_path / "src.zarr" / "out.zarr")
    assert tree_bytes(tmp_path / "src.zarr") == before


def test_napari_opened_relative_store_is_not_saved_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`napari scan.zarr` from a shell, then File > Save back onto it (reader and writer as npe2
    calls them)."""
    from napari_zarr_tiler._napari.reader import get_reader
    from napari_zarr_tiler._napari.writer import write_image

    monkeypatch.chdir(tmp_path)
    convert(image((256, 256)), tmp_path / "scan.zarr", chunks=64)
    group = zarr.open_group(tmp_path / "scan.zarr", mode="r+")
    group.create_group("labels").create_array("cells", data=image((64, 64), 5), chunks=(32, 32))
    before = tree_bytes(tmp_path / "scan.zarr")
    reader = get_reader("scan.zarr")
    assert reader is not None
    data, meta, _ = reader("scan.zarr")[0]
    with pytest.raises(DestinationError, match="the destination is inside the source"):
        write_image("scan.zarr", data, meta)
    assert tree_bytes(tmp_path / "scan.zarr") == before


# ---------------------------------------------------------------------------------------------
# 3. and 5. Write failures (a file-size limit, as a full disk): true messages, nothing stuck
# ---------------------------------------------------------------------------------------------

LIMITED = """
import resource, signal, sys
import numpy as np
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from napari_zarr_tiler import convert
from napari_zarr_tiler.errors import DestinationError
image = np.random.default_rng(0).integers(0, 65535, size={shape}, dtype=np.uint16)
hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]

def fill_disk(limit):
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))

if {after_regions} == 0:
    fill_disk({limit})
try:
    convert(image, {dest!r}, chunks={chunks}, compressor="none", resume={resume}, workers=2,
            progress=lambda event: fill_disk({limit}))
except DestinationError as error:
    print("DestinationError:", error)
    sys.exit(3)
"""


def _limited_run(
    dest: Path,
    *,
    pipeline: str,
    resume: bool,
    shape=(1024, 1024),
    chunks=512,
    limit=64 * 1024,
    after_regions=0,
) -> subprocess.CompletedProcess[str]:
    """Convert in a child whose files cannot grow past ``limit`` bytes (from the start, or once
    a region is written): writes fail as on a full disk."""
    script = LIMITED.format(
        shape=shape,
        dest=str(dest),
        chunks=chunks,
        resume=resume,
        limit=limit,
        after_regions=after_regions,
    )
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "NAPARI_ZARR_TILER_PIPELINE": pipeline},
    )


@pytest.mark.parametrize("attempt", range(6))
@pytest.mark.parametrize("pipeline", ["auto", "default"])
def test_failed_write_leaves_nothing_and_nothing_stuck(
    tmp_path: Path, pipeline: str, attempt: int
) -> None:
    dest = tmp_path / "full.zarr"
    result = _limited_run(dest, pipeline=pipeline, resume=False)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "writing failed" in result.stdout
    assert "nothing was left behind" in result.stdout
    assert sorted(tmp_path.iterdir()) == []  # what it says is true
    convert(image(), dest)  # and the name is free


@pytest.mark.slow
@pytest.mark.parametrize("limit", [0, 1000], ids=["empty-chunks", "torn-chunks"])
@pytest.mark.parametrize("pipeline", ["auto", "default"])
def test_resume_after_a_full_disk_rewrites_torn_and_empty_chunks(
    tmp_path: Path, pipeline: str, limit: int
) -> None:
    """The disk fills after the first region: later chunks, edge ones among them (3000 =
    11 x 256 + 184), are left empty or torn; --resume writes them again."""
    dest = tmp_path / "full.zarr"
    shape = (3000, 5000)
    result = _limited_run(
        dest, pipeline=pipeline, resume=True, shape=shape, chunks=256, limit=limit, after_regions=1
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "kept at" in result.stdout
    staging = staging_path(dest)
    sizes = [p.stat().st_size for p in (staging / "0" / "c").rglob("*") if p.is_file()]
    if pipeline == "auto":  # zarrs writes chunks in place (zarr-python to a file renamed after)
        assert any(s == limit for s in sizes), sorted(set(sizes))  # empty or torn chunks
    expected = np.random.default_rng(0).integers(0, 65535, size=shape, dtype=np.uint16)
    os.environ["NAPARI_ZARR_TILER_PIPELINE"] = pipeline
    try:
        convert(expected, dest, chunks=256, compressor="none", resume=True)
        reference = tmp_path / "reference.zarr"
        convert(expected, reference, chunks=256, compressor="none", name="full")
    finally:
        del os.environ["NAPARI_ZARR_TILER_PIPELINE"]
    np.testing.assert_array_equal(zarr.open_array(dest / "0")[:], expected)
    assert tree_bytes(dest) == tree_bytes(reference)


# ---------------------------------------------------------------------------------------------
# 4. Commit: a kill at any point of it, or a failed rename, leaves a recoverable state
# ---------------------------------------------------------------------------------------------

KILLED = """
import os, re, signal, sys
import numpy as np
from napari_zarr_tiler import convert
dest, event, position, match, nth = {dest!r}, {event!r}, {position!r}, {match!r}, {nth!r}
seen = []

def kill_before(name, args):
    if name == event and re.search(match, str(args[position])):
        seen.append(name)
        if len(seen) == nth:
            os.kill(os.getpid(), signal.SIGKILL)

sys.addaudithook(kill_before)
convert(np.random.default_rng(7).integers(0, 4000, (300, 500), dtype=np.uint16), dest,
        chunks=128, overwrite={overwrite!r})
"""

# (audit event, which argument, a pattern of that path, at which such call): the kill comes
# just before that operation, as a SIGKILL at that moment would.
KILL_POINTS = {
    "before-rename-into-place": ("os.rename", 1, r"/out\.zarr$", 1),
    "old-moved-aside": ("os.rename", 1, r"/out\.zarr$", 1),  # with an old store: already aside
    "before-marker-removed": ("os.remove", 0, r"/out\.zarr/" + re.escape(STAGING_MARKER), 1),
    "before-old-deleted": ("os.remove", 0, r"\.replaced-", 1),
    "old-half-deleted": ("os.remove", 0, r"\.replaced-", 8),
}


#: Kill points while the staging folder is made: a uniquely named folder, then renamed.
MAKING_POINTS = {
    "made-not-marked": ("open", 0, r"\.partial-[0-9a-f]+/" + re.escape(STAGING_MARKER) + "$", 1),
    "marked-not-renamed": ("os.rename", 0, r"\.partial-[0-9a-f]+$", 1),
}


def _killed(dest: Path, point: str, *, overwrite: bool) -> None:
    event, position, match, nth = {**KILL_POINTS, **MAKING_POINTS}[point]
    script = KILLED.format(
        dest=str(dest), event=event, position=position, match=match, nth=nth, overwrite=overwrite
    )
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == -9, result.stderr  # killed where chosen, not finished


@pytest.mark.parametrize("point", list(MAKING_POINTS))
def test_a_kill_while_staging_is_made_leaves_nothing_behind_a_rerun(
    tmp_path: Path, point: str
) -> None:
    dest = tmp_path / "out.zarr"
    _killed(dest, point, overwrite=False)
    assert [p.name for p in tmp_path.iterdir() if ".partial-" in p.name]  # the kill left one
    convert(_new_image(), dest, chunks=128)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]
    np.testing.assert_array_equal(zarr.open_array(dest / "0")[:], _new_image())


def _new_image() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 4000, (300, 500), dtype=np.uint16)


@pytest.mark.parametrize("point", list(KILL_POINTS))
@pytest.mark.parametrize("then", ["resume", "rerun", "overwrite", "read"])
def test_a_kill_during_commit_is_recoverable(tmp_path: Path, point: str, then: str) -> None:
    dest = tmp_path / "out.zarr"
    has_old = point != "before-rename-into-place"
    if has_old:
        convert(image(seed=9), dest, chunks=128)
        old = tree_bytes(dest)
    _killed(dest, point, overwrite=has_old)
    new_finished = point in ("before-marker-removed", "before-old-deleted", "old-half-deleted")
    if then == "read":
        # A reader sees either the old store or the finished new one, never "incomplete".
        if new_finished:
            level0 = read_zarr(dest).layers[0].data[0]
            np.testing.assert_array_equal(np.asarray(level0), _new_image())
        elif has_old:
            # The old store is put back by whatever runs next (here: a run refused as a plain
            # rerun would be).
            with pytest.raises(DestinationError, match="already exists"):
                convert(_new_image(), dest, chunks=128)
            assert tree_bytes(dest) == old
        return
    if then == "resume":
        convert(_new_image(), dest, chunks=128, resume=True, overwrite=has_old)
    elif then == "rerun" and not (has_old or new_finished):
        convert(_new_image(), dest, chunks=128)
    else:
        if then == "rerun":
            with pytest.raises(DestinationError, match="already exists"):
                convert(_new_image(), dest, chunks=128)
            assert not any(".replaced-" in p.name for p in tmp_path.iterdir())
            assert new_finished or tree_bytes(dest) == old
        convert(_new_image(), dest, chunks=128, overwrite=True)
    np.testing.assert_array_equal(zarr.open_array(dest / "0")[:], _new_image())
    assert leftovers(tmp_path, "out.zarr") == []
    assert not (dest / STAGING_MARKER).exists()


@pytest.fixture
def mount_point(tmp_path: Path):
    """``dest`` is a mount point (a bind mount of a zarr store): it cannot be renamed (EBUSY)."""
    dest = tmp_path / "mounted.zarr"
    backing = tmp_path / "backing"
    convert(image(seed=4), backing, chunks=128)
    dest.mkdir()
    if subprocess.run(["mount", "--bind", str(backing), str(dest)], check=False).returncode:
        pytest.skip("bind mounts need privileges")
    yield dest
    if os.path.ismount(dest):
        subprocess.run(["umount", str(dest)], check=True)


def test_a_failed_rename_keeps_the_old_store_and_says_where_the_new_one_is(
    tmp_path: Path, mount_point: Path
) -> None:
    dest = mount_point
    old = tree_bytes(dest)
    with pytest.raises(DestinationError) as caught:
        convert(_new_image(), dest, chunks=128, overwrite=True)
    message = str(caught.value)
    assert str(staging_path(dest)) in message and "--resume" in message
    assert "nothing was left behind" not in message
    assert tree_bytes(dest) == old  # the old store is where it was
    assert not any(".replaced-" in p.name for p in tmp_path.iterdir())
    # The new store is complete and kept, marked: a reader does not take it for a store.
    with pytest.raises(Exception, match="incomplete conversion"):
        read_zarr(staging_path(dest))
    # Once the mount is gone, --resume finishes the kept store.
    subprocess.run(["umount", str(dest)], check=True)
    dest.rmdir()
    convert(_new_image(), dest, chunks=128, resume=True)
    np.testing.assert_array_equal(zarr.open_array(dest / "0")[:], _new_image())
    assert leftovers(tmp_path, "mounted.zarr") == ["backing"]


@pytest.fixture
def immutable_files(tmp_path: Path):
    """Files made immutable (``chattr +i``: even root cannot delete them) are freed after."""
    yield
    subprocess.run(["chattr", "-R", "-i", str(tmp_path)], check=False, capture_output=True)


def test_an_old_store_that_cannot_be_deleted_is_reported(
    tmp_path: Path, immutable_files: None
) -> None:
    dest = tmp_path / "out.zarr"
    convert(image(seed=9), dest, chunks=128)
    stuck = dest / "0" / "zarr.json"
    if subprocess.run(["chattr", "+i", str(stuck)], check=False).returncode:
        pytest.skip("chattr is not available")
    with pytest.warns(UserWarning, match="could not be deleted") as caught:
        convert(_new_image(), dest, chunks=128, overwrite=True)
    np.testing.assert_array_equal(zarr.open_array(dest / "0")[:], _new_image())
    (hidden,) = [p for p in tmp_path.iterdir() if ".replaced-" in p.name]
    assert str(hidden) in str(caught[0].message)
    # Once it can be deleted, the next run to that name finishes the job.
    subprocess.run(["chattr", "-i", str(hidden / "0" / "zarr.json")], check=True)
    convert(_new_image(), dest, chunks=128, overwrite=True)
    assert leftovers(tmp_path, "out.zarr") == []


def test_the_command_line_reports_an_undeletable_old_store_in_one_line(
    tmp_path: Path, immutable_files: None
) -> None:
    src = tmp_path / "new.npy"
    np.save(src, _new_image())
    dest = tmp_path / "out.zarr"
    convert(image(seed=9), dest, chunks=128)
    if subprocess.run(["chattr", "+i", str(dest / "0" / "zarr.json")], check=False).returncode:
        pytest.skip("chattr is not available")
    result = run("convert", str(src), str(dest), "--chunks", "128", "--overwrite", "--quiet")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # no "  warnings.warn(msg, ...)" source line
    (hidden,) = [p for p in tmp_path.iterdir() if ".replaced-" in p.name]
    assert lines[0].startswith("napari-zarr-tiler: warning: ")
    assert "could not be deleted" in lines[0] and str(hidden) in lines[0]


@pytest.mark.parametrize("url", ["https://example.org/out.zarr", "gs://bucket/out.zarr"])
def test_a_url_destination_is_refused_not_made_a_local_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DestinationError, match="URLs are not supported yet as the destination"):
        convert(image(), url)
    assert list(tmp_path.iterdir()) == []  # no folder named "s3:" or "https:"
