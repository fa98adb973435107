"""pyproject.toml ships what the package needs (the full check, building and installing the wheel, is
scripts/check_wheel.sh; this is the cheap part that runs with the suite)."""

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE = ROOT / "src" / "foundry"


def test_distribution_name_is_not_the_taken_one():
    # "foundry" on PyPI is an unrelated 2015 project that also imports as `foundry`.
    project = PYPROJECT["project"]
    assert project["name"] == "foundry-systems"
    assert project["scripts"] == {"foundry": "foundry.cli:app"}


def test_extras_refer_to_this_distribution():
    name = PYPROJECT["project"]["name"]
    for extra, reqs in PYPROJECT["project"]["optional-dependencies"].items():
        for req in reqs:
            if req.split("[")[0] in ("foundry", "foundry-systems", "foundry_systems"):
                assert req.startswith(name + "["), f"extra {extra!r}: {req!r} should name {name}"


def _matches(rel: str, pattern: str) -> bool:
    # setuptools globs recursively: "**/*.pt" also matches a file at the package's top level
    return fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(rel, pattern.removeprefix("**/"))


def test_every_data_file_in_the_package_is_declared():
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["foundry"]
    data = [
        p.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    ]
    assert "pde/checkpoints/pdeformer_xs.pt" in data
    undeclared = [f for f in data if not any(_matches(f, pat) for pat in patterns)]
    assert not undeclared, f"add to [tool.setuptools.package-data] in pyproject.toml: {undeclared}"
