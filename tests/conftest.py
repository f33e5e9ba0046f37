"""Shared fixtures: one converted project of the bundled detector per test session.

Converting and compiling cost about 30 s, so tests that only read the project
share it; tests that modify it work on a copy.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

warnings.filterwarnings("ignore", message="fast_hadamard_transform package not found")

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"


@pytest.fixture(scope="session")
def bundled_project(tmp_path_factory) -> Path:
    """Project folder of the bundled detector, converted for pynq-z2 and built once per ap types."""
    from codesign.csim import build
    from codesign.flow import convert

    root = tmp_path_factory.mktemp("bundled") / "project"
    project = convert(None, root, "pynq-z2", tb_images=8)
    build(project)
    build(project, ap_types="fast")
    return root


@pytest.fixture
def project_copy(bundled_project, tmp_path) -> Path:
    """A private copy of the bundled project that a test may modify."""
    target = tmp_path / "project"
    shutil.copytree(bundled_project, target, symlinks=True)
    return target
