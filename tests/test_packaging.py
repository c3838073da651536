"""The distributions: built offline from this checkout, they carry what users and tests need."""

from __future__ import annotations

import email.parser
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
REPOSITORY = "https://github.com/pytest-corrsource/pytest-corrsource"
SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".hypothesis", ".mypy_cache", ".ruff_cache"}

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: the build uses the test venv's setuptools (a test extra), so nothing is
    # downloaded; the checkout is copied by build into its own temporary folder.
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [sdist] = out.glob("*.tar.gz")
    [wheel] = out.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel}


def checkout_files(folder: str) -> set[str]:
    base = ROOT / folder
    return {
        path.relative_to(ROOT).as_posix()
        for path in base.rglob("*")
        if path.is_file() and not SKIPPED_PARTS.intersection(path.relative_to(ROOT).parts)
    }


def test_sdist_holds_what_the_tests_need(dists: dict[str, Path]) -> None:
    with tarfile.open(dists["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for folder in ("examples", "tests", "docs"):
        wanted = checkout_files(folder)
        assert wanted, folder
        assert wanted - names == set(), f"{folder}/ files missing from the sdist"
    assert "examples/expected.json" in names
    assert "pytest_corrsource/schema/corresponding-source.schema.json" in names


def test_wheel_metadata(dists: dict[str, Path]) -> None:
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        [metadata_name] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.parser.Parser().parsestr(wheel.read(metadata_name).decode())
        names = wheel.namelist()
    assert metadata["License-Expression"] == "MIT"
    classifiers = metadata.get_all("Classifier", [])
    assert "Operating System :: POSIX :: Linux" in classifiers
    assert "Development Status :: 3 - Alpha" in classifiers
    assert "Programming Language :: Python :: 3.10" in classifiers
    urls: dict[str, str] = {}
    for line in metadata.get_all("Project-URL", []):
        label, url = line.split(", ", 1)  # "Source, https://...": a line without ", " raises
        urls[label] = url
    assert urls["Source"] == REPOSITORY
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert "pytest_corrsource/schema/corresponding-source.schema.json" in names
    assert "pytest_corrsource/py.typed" in names
    # The wheel is the plugin only: no tests or examples land in site-packages.
    assert not any(n.startswith(("tests/", "examples/")) for n in names)


def test_the_tests_run_from_the_unpacked_sdist(
    dists: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The sdist's own tests that read the checkout (README, examples, docs, CI script, the
    workflow and its schema) pass from the unpacked sdist: it ships what they read."""
    where = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(dists["sdist"]) as sdist:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
            sdist.extractall(where, filter="data")
        else:  # pragma: no cover - our own sdist, just built
            sdist.extractall(where)
    [root] = where.iterdir()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-m", "not slow",
         "tests/test_readme.py", "tests/test_examples.py", "tests/test_workflow.py"],
        capture_output=True, text=True, timeout=600, cwd=root,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout
    assert "error" not in proc.stdout.lower()
