"""Exception hierarchy of the perception core; every error names what was expected and what was found."""


class RobotVisionError(Exception):
    """Base class of every error raised deliberately by robot_vision."""


class InputError(RobotVisionError, ValueError):
    """An input array, message or file does not have the expected shape, dtype, encoding or content."""


class ConfigError(RobotVisionError, ValueError):
    """A setting or parameter value is invalid or unknown."""


class ModelError(RobotVisionError, RuntimeError):
    """A model file is missing, corrupt, or has an unsupported input/output layout."""


class TransformError(RobotVisionError, LookupError):
    """A coordinate transform is unavailable: unknown frame, disconnected trees, or stamp outside the buffer.

    ``reason`` classifies the failure for diagnostics: ``'missing_frame'``, ``'disconnected'``,
    ``'extrapolation'``, ``'invalid'`` or ``'other'``.
    """

    def __init__(self, message: str, reason: str = 'other'):
        super().__init__(message)
        self.reason = reason


def expect(condition: bool, message: str, error: type = InputError) -> None:
    """Raise ``error(message)`` when ``condition`` is false."""
    if not condition:
        raise error(message)
