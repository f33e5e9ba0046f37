"""Exception types of the host runtime."""


class AcceleratorError(Exception):
    """Base class of every error the runtime raises on purpose."""


class InvalidInputError(AcceleratorError, ValueError):
    """Invalid caller input: a missing project file, an unreadable image, an array of the wrong shape."""


class DeviceUnavailableError(AcceleratorError):
    """The requested device cannot be opened here: a missing driver package, bitstream or device node."""
