"""Checks of user-named output files, which commands run before the work that writes the files.

The module imports nothing heavy, so the CLI can use it before loading models.
"""

from __future__ import annotations

import os
from pathlib import Path

from codesign.errors import InputError


def check_output_file(path: Path, force: bool, option: str, inputs: tuple[Path, ...] = ()) -> None:
    """Raise InputError unless ``path`` can be written as a new file, or replaced with force.

    ``option`` names the command-line option in the message. The path must
    not be a folder or one of ``inputs``, and its parent folder must exist and
    be writable. Creates nothing.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{option} {path} is a folder; expected a file name")
    for source in inputs:
        if path.resolve() == Path(source).resolve():
            raise InputError(f"{option} {path} is also an input file; choose another {option}")
    if path.exists() and not force:
        raise InputError(f"{option} {path} exists; pass --force to overwrite it")
    parent = path.resolve().parent
    if not parent.is_dir():
        raise InputError(f"{option} {path}: folder {parent} not found")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: folder {parent} is not writable")
