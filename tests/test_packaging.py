"""Hub readiness and set-up: what a new user gets from the clone, the wheel and quickstart."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


@pytest.fixture(scope="module")
def distributions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and the wheel, built from this checkout as a release would build them."""
    pytest.importorskip("build")
    pytest.importorskip("hatchling")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return {"wheel": next(out.glob("*.whl")), "sdist": next(out.glob("*.tar.gz"))}


def test_wheel_carries_license_and_manifest(distributions: dict[str, Path]) -> None:
    names = zipfile.ZipFile(distributions["wheel"]).namelist()
    licenses = [name for name in names if ".dist-info/licenses/" in name]
    assert [Path(name).name for name in licenses] == ["LICENSE"]
    assert "napari_zarr_tiler/napari.yaml" in names
    with zipfile.ZipFile(distributions["wheel"]) as wheel:
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        text = wheel.read(metadata).decode()
    assert "License-Expression: BSD-3-Clause" in text


def test_sdist_carries_license_changelog_and_docs(distributions: dict[str, Path]) -> None:
    with tarfile.open(distributions["sdist"]) as sdist:
        names = {Path(*Path(name).parts[1:]).as_posix() for name in sdist.getnames()}
    assert {"LICENSE", "CHANGELOG.md", "README.md", "napari.yaml"} <= names


def test_readme_renders_as_the_long_description(distributions: dict[str, Path]) -> None:
    twine = shutil.which("twine", path=str(Path(sys.executable).parent))
    if twine is None:
        pytest.skip("twine is not installed")
    result = subprocess.run(
        [twine, "check", "--strict", *map(str, distributions.values())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_links_work_off_the_repository() -> None:
    """PyPI and the napari hub show the README without the repository's files: every image and
    link must be an absolute URL or an anchor within the page."""
    targets = re.findall(r"\]\(([^)\s]+)", README)
    assert targets, "the README has no links or images at all"
    relative = [t for t in targets if not re.match(r"(https?://|#)", t)]
    assert relative == []
    anchors = {t[1:] for t in targets if t.startswith("#")}
    headings = {
        re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", README, flags=re.MULTILINE)
    }
    assert anchors <= headings


def test_readme_says_where_to_clone_from() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    source = project["urls"]["Source Code"]
    assert f"git clone {source}.git" in README
    assert (ROOT / "LICENSE").read_text().startswith("BSD 3-Clause License")
    assert project["license"] == "BSD-3-Clause"


def _hold_locks(paths: list[str], seconds: float) -> subprocess.Popen[str]:
    """Another process holding apt's locks, as a booting cloud machine's updater does."""
    code = (
        "import fcntl, os, sys, time\n"
        "fds = [os.open(p, os.O_RDWR | os.O_CREAT) for p in sys.argv[2:]]\n"
        "[fcntl.lockf(fd, fcntl.LOCK_EX) for fd in fds]\n"
        "print('held', flush=True)\n"
        "time.sleep(float(sys.argv[1]))\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(seconds), *paths], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    return holder


def _apt_while_locked(
    locks: list[str], apt_arguments: str
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str], float]:
    """Run ``apt-get ARGS`` plainly, then through the set-up's ``apt_get``, while another
    process holds ``locks`` (for 4 s): (plain result, set-up result, seconds the set-up took)."""
    script = ROOT / "scripts" / "system-packages.sh"
    holder = _hold_locks(locks, 4)
    try:
        plain = subprocess.run(
            f"apt-get {apt_arguments}", shell=True, capture_output=True, text=True, timeout=60
        )
        started = time.monotonic()
        waited = subprocess.run(
            [
                "bash",
                "-c",
                f"SYSTEM_PACKAGES_SOURCE_ONLY=1 source {script} && apt_get {apt_arguments}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    return plain, waited, elapsed


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("apt-get") is None or os.geteuid() != 0, reason="needs apt-get as root"
)
def test_system_packages_wait_for_the_apt_lock() -> None:
    """apt-get fails at once while another process holds the dpkg lock; the set-up waits."""
    locks = ["/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock"]
    # The plain call is told not to wait (apt's own option), to show the lock is really held.
    plain, waited, elapsed = _apt_while_locked(locks, "-qq -o DPkg::Lock::Timeout=0 check")
    assert plain.returncode != 0 and "lock" in plain.stderr
    assert waited.returncode == 0, waited.stderr
    assert elapsed > 2  # it waited for the holder instead of failing


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")
def test_package_list_update_waits_for_the_lists_lock(tmp_path: Path) -> None:
    """``apt-get update`` does not wait for its lists lock by itself; the set-up retries.

    Runs on a private lists folder and an empty sources list, so the machine's own package
    lists are neither read nor changed.
    """
    (tmp_path / "lists" / "partial").mkdir(parents=True)
    (tmp_path / "parts").mkdir()
    (tmp_path / "sources.list").touch()
    options = (
        f"-o Dir::State::Lists={tmp_path}/lists -o Dir::Etc::sourcelist={tmp_path}/sources.list "
        f"-o Dir::Etc::sourceparts={tmp_path}/parts"
    )
    lock = str(tmp_path / "lists" / "lock")
    plain, waited, elapsed = _apt_while_locked([lock], f"-qq {options} update")
    assert plain.returncode != 0 and "lock" in plain.stderr  # really held
    assert waited.returncode == 0, waited.stderr
    assert "waiting" in waited.stderr
    assert elapsed > 2


def test_apt_lock_holder_really_blocks_fcntl_locks(tmp_path: Path) -> None:
    """The lock holder above takes POSIX record locks, the kind apt and dpkg take."""
    lock = tmp_path / "lock"
    holder = _hold_locks([str(lock)], 5)
    try:
        fd = os.open(lock, os.O_RDWR)
        with pytest.raises(OSError):
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)
    finally:
        holder.kill()
        holder.wait()
