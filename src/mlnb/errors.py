"""Errors whose messages a user can act on."""


class MlnbError(Exception):
    """Base class: the message names the file or key and the problem."""


class DataError(MlnbError):
    """A data file is missing, malformed, or fails its checksum."""


class ConfigError(MlnbError):
    """A configuration value is missing or invalid."""


class DivergenceError(MlnbError):
    """Training diverged: a metric (a loss) became NaN or infinite."""


def describe(error: BaseException) -> str:
    """``Type: message`` on one line, for quoting a library's error inside an MlnbError."""
    return f"{type(error).__name__}: {' '.join(str(error).split())}"
