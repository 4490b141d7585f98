import ast
from pathlib import Path

import pytest

import lightning_aca


def test_every_public_name_resolves_and_is_declared_for_type_checkers():
    tree = ast.parse(Path(lightning_aca.__file__).read_text())
    checked = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
        for stmt in node.body
        for alias in stmt.names
    }
    public = set(lightning_aca.__all__) - {"__version__"}
    assert public == checked == set(lightning_aca._EXPORTS)
    for name in public:
        assert getattr(lightning_aca, name).__name__ == name


def test_version_comes_from_the_installed_metadata():
    from importlib.metadata import version

    assert lightning_aca.__version__ == version("lightning-aca")


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        lightning_aca.Nope  # noqa: B018
