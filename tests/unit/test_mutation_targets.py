"""The mutation runner (benchmarks/mutation.py) names modules and test files by path: when the layout
moves one, this fails loudly instead of the runner mutating nothing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutation_runner", ROOT / "benchmarks" / "mutation.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_target_module_exists_and_is_in_the_package() -> None:
    targets = _runner().TARGETS
    assert len(targets) >= 10
    for target in targets:
        path = ROOT / target.module
        assert path.is_file(), f"mutation target {target.module} does not exist (moved? update TARGETS)"
        assert target.module.startswith("deploy/") and target.module.endswith(".py")


def test_every_target_lists_unit_tests_that_exist() -> None:
    for target in _runner().TARGETS:
        assert target.tests, f"{target.module} has no tests listed"
        for test in target.tests:
            assert (ROOT / test).is_file(), f"{target.module}: test file {test} does not exist"
            assert test.startswith("tests/unit/"), f"{test}: only unit tests (fast) belong in a target"


def test_target_names_are_unique_so_a_module_can_be_picked_by_name() -> None:
    names = [t.name for t in _runner().TARGETS]
    assert len(names) == len(set(names))


def test_a_mutant_exit_code_maps_to_the_status_the_score_counts() -> None:
    status_of = _runner().status_of
    assert status_of(1) == "killed"
    assert status_of(0) == "survived"
    assert status_of(36) == "timeout"
    assert status_of(33) == "no_tests"
    assert status_of(None) == "not_checked"
    assert status_of(-6) == "suspicious"


def test_function_restrictions_name_functions_of_their_own_module() -> None:
    for target in _runner().TARGETS:
        dotted = target.module[: -len(".py")].replace("/", ".")
        source = (ROOT / target.module).read_text()
        for glob in target.functions:
            assert glob.startswith(f"{dotted}.x"), f"{glob} is not a mutant name of {target.module}"
            name = glob[len(dotted) + 3 :].split("__mutmut_")[0]
            assert f"def {name}(" in source, f"{target.module} has no function {name} (renamed?)"
