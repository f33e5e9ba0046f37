"""Exception types shared by the flow stages.

The CLI maps ``InputError`` to one line on stderr and exit code 2; any other
exception is a defect in codesign and keeps its traceback.
"""


class CodesignError(Exception):
    """Base class of every error codesign raises on purpose."""


class InputError(CodesignError):
    """Invalid user input: a missing file, a malformed board, an unsupported model."""


class UnsupportedModelError(InputError):
    """A model node that the lowering cannot map exactly onto the HLS templates."""


class SimulationError(CodesignError):
    """The generated C++ crashed, failed to build, or a sanitizer reported an error."""
