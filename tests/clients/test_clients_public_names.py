"""Each clients module (and the wire-shape modules) exports exactly its public names."""

from __future__ import annotations

import ast
import importlib
import inspect
from types import ModuleType

import pytest

MODULES = [
    "connector.clients.afas",
    "connector.clients.afas_errors",
    "connector.clients.afas_filter",
    "connector.clients.afas_paging",
    "connector.clients.http",
    "connector.clients.oauth",
    "connector.clients.spotler",
    "connector.clients.spotler_feed",
    "connector.schemas.afas",
    "connector.schemas.spotler",
]


def defined_public_names(module: ModuleType) -> set[str]:
    """Public names bound at the module's top level (imports excluded)."""
    tree = ast.parse(inspect.getsource(module))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_")}


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_exactly_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    assert sorted(module.__all__) == sorted(defined_public_names(module))


def test_the_package_reexports_exactly_its_all() -> None:
    package = importlib.import_module("connector.clients")
    exported = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and name != "annotations" and not isinstance(value, ModuleType)
    }
    assert sorted(package.__all__) == sorted(exported)
    for name in package.__all__:
        assert getattr(package, name) is not None
