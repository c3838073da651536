"""The download cache: one per repository, read-write for install steps only (issue 14).

Every environment used to start from an empty $HOME, so each one downloaded everything again
(torch: 100-314 s per repository). Environments of one repository now share a cache that no
other repository and no other step can see. The packages come from a local HTTP index that
counts the wheel downloads and, as PyPI's file host does, marks wheels immutable.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import MINIMAL_MANIFEST, RUNNABLE_FILES, RepoFactory, require_bwrap
from test_installer import needs_uv, run_check

from pytest_corrsource.checks.api import Options
from pytest_corrsource.sandbox.environments import download_cache

PROJECT = "corrsource-probe"
WHEEL = "corrsource_probe-1.0-py3-none-any.whl"


def probe_wheel() -> bytes:
    """A tiny pure-Python wheel (module ``corrsource_probe``)."""
    files = {
        "corrsource_probe.py": b"VALUE = 42\n",
        "corrsource_probe-1.0.dist-info/METADATA": (
            b"Metadata-Version: 2.1\nName: corrsource-probe\nVersion: 1.0\n"
        ),
        "corrsource_probe-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    buffer = io.BytesIO()
    rows = []
    with zipfile.ZipFile(buffer, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            rows.append((name, f"sha256={digest.decode()}", str(len(data))))
        record = io.StringIO()
        rows.append(("corrsource_probe-1.0.dist-info/RECORD", "", ""))
        csv.writer(record, lineterminator="\n").writerows(rows)
        wheel.writestr("corrsource_probe-1.0.dist-info/RECORD", record.getvalue())
    return buffer.getvalue()


class CountingIndex:
    """A PEP 503 index over HTTP on 127.0.0.1 that records every request for a wheel (uv may
    first read its metadata with a range request: ``ranged``) and every full download."""

    def __init__(self, root: Path) -> None:
        project = root / "simple" / PROJECT
        project.mkdir(parents=True)
        (project / WHEEL).write_bytes(probe_wheel())
        (project / "index.html").write_text(f'<html><body><a href="{WHEEL}">{WHEEL}</a></body>')
        self.downloads: list[str] = []
        self.ranged: list[str] = []
        index = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self) -> None:
                if self.path.split("?")[0].endswith(".whl"):
                    ranged = self.headers.get("Range") is not None
                    (index.ranged if ranged else index.downloads).append(self.path)
                super().do_GET()

            def end_headers(self) -> None:
                if self.path.split("?")[0].endswith(".whl"):
                    # What files.pythonhosted.org sends: a release file never changes.
                    self.send_header("Cache-Control", "max-age=365000000, immutable, public")
                super().end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingIndex]:
    served = CountingIndex(tmp_path / "http-index")
    # Install steps get the index settings of the checker's environment (PIP_* pass through).
    monkeypatch.setenv("PIP_INDEX_URL", served.url)
    monkeypatch.setenv("PIP_TRUSTED_HOST", "127.0.0.1")  # plain HTTP on the loopback
    yield served
    served.close()


MANIFEST = (
    MINIMAL_MANIFEST
    + """\
install:
  requirements: [requirements.txt]
  commands: [python -m pip install -r requirements.txt]
run:
  command: python -c "import corrsource_probe; print(corrsource_probe.VALUE)"
"""
)


def build(root: Path, installer: str, cache: Path) -> str:
    result, _ = run_check(root, "CS202", Options(installer=installer, cache_dir=cache))
    assert result.outcome == "passed", result.message
    assert not result.data["reused"]
    return str(result.data["environment"])


@pytest.mark.slow
@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_environments_of_one_repository_share_its_downloads_and_no_other_does(
    installer: str, index: CountingIndex, make_repo: RepoFactory, tmp_path: Path
) -> None:
    if installer == "uv":
        needs_uv()
    cache = tmp_path / "cache"
    first = make_repo(MANIFEST, {**RUNNABLE_FILES, "requirements.txt": f"{PROJECT}\n"}, name="a")
    build(first, installer, cache)
    # (uv without range requests on the server reads the wheel once for its metadata.)
    downloads, ranged = len(index.downloads), len(index.ranged)
    assert downloads >= 1
    # A second environment of the same repository (its requirements changed): no download.
    (first / "requirements.txt").write_text(f"{PROJECT}\n# pinned later\n")
    build(first, installer, cache)
    assert len(index.downloads) == downloads, index.downloads
    assert len(index.ranged) == ranged, index.ranged
    # Another repository does not see the first one's cache: it downloads for itself.
    other = make_repo(MANIFEST, {**RUNNABLE_FILES, "requirements.txt": f"{PROJECT}  # b\n"}, "b")
    build(other, installer, cache)
    assert len(index.downloads) > downloads, index.downloads
    caches = {download_cache(cache, first), download_cache(cache, other)}
    assert len(caches) == 2
    for folder in caches:
        assert any(p.is_file() for p in (folder / installer).rglob("*")), folder


CHECK_PATH = 'python -c "import os, sys; sys.exit(0 if os.path.isdir(sys.argv[1]) else 3)" {}'


@pytest.mark.slow
def test_only_install_steps_see_the_download_cache(make_repo: RepoFactory, tmp_path: Path) -> None:
    require_bwrap()
    cache = tmp_path / "cache"
    root = make_repo(MANIFEST, {**RUNNABLE_FILES, "requirements.txt": "# nothing\n"})
    downloads = download_cache(cache, root)
    manifest = root / "corresponding-source.yaml"
    text = manifest.read_text().replace(
        "commands: [python -m pip install -r requirements.txt]",
        f"commands: ['{CHECK_PATH.format(downloads)}']",
    )
    manifest.write_text(text.replace(
        'command: python -c "import corrsource_probe; print(corrsource_probe.VALUE)"',
        f"command: '{CHECK_PATH.format(downloads)}'",
    ))  # fmt: skip
    state_options = Options(installer="pip", cache_dir=cache)
    result, _ = run_check(root, "CS202", state_options)
    assert result.outcome == "passed", result.message  # the install step saw it
    run, _ = run_check(root, "CS402", state_options)
    assert run.outcome == "failed"
    assert "exit code 3" in run.message  # the run did not


@pytest.mark.slow
def test_a_hostile_install_step_cannot_poison_another_repositorys_cache(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    require_bwrap()
    cache = tmp_path / "cache"
    files = {**RUNNABLE_FILES, "requirements.txt": "# nothing\n"}
    victim = make_repo(MANIFEST, files, name="victim")
    attacker = make_repo(MANIFEST, files, name="attacker")
    victim_cache = download_cache(cache, victim) / "pip"
    victim_cache.mkdir()
    poison = (
        "import os, sys\n"
        "for folder in sys.argv[1:]:\n"
        "    try:\n"
        "        os.makedirs(folder, exist_ok=True)\n"
        "        open(os.path.join(folder, 'poison'), 'w').write('pwned')\n"
        "    except OSError:\n"
        "        pass\n"
    )
    (attacker / "poison.py").write_text(poison)
    manifest = attacker / "corresponding-source.yaml"
    manifest.write_text(
        manifest.read_text().replace(
            "commands: [python -m pip install -r requirements.txt]",
            f"commands: ['python poison.py {victim_cache} {cache}/downloads']",
        )
    )
    result, _ = run_check(attacker, "CS202", Options(installer="pip", cache_dir=cache))
    assert result.outcome == "passed", result.message
    assert not (victim_cache / "poison").exists()
    assert not (cache / "downloads" / "poison").exists()
    assert sorted(p.name for p in (cache / "downloads").iterdir()) == sorted(
        {download_cache(cache, victim).name, download_cache(cache, attacker).name}
    )


@pytest.mark.slow
def test_a_symlink_left_in_the_cache_by_an_install_step_is_not_followed(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    root = make_repo(MANIFEST, {**RUNNABLE_FILES, "requirements.txt": "# nothing\n"})
    downloads = download_cache(cache, root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (downloads / "pip").symlink_to(outside)  # as a hostile install step could leave it
    (downloads / "uv").symlink_to(tmp_path / "dangling")
    (downloads / "conda-pkgs").write_text("a file where a folder goes")
    result, _ = run_check(root, "CS202", Options(installer="pip", cache_dir=cache))
    assert result.outcome == "passed", result.message
    for name in ("pip", "uv", "conda-pkgs"):
        assert (downloads / name).is_dir()
        assert not (downloads / name).is_symlink()
    assert list(outside.iterdir()) == []  # nothing was written through the link
