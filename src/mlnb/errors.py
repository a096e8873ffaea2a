"""Errors whose messages a user can act on."""


class MlnbError(Exception):
    """Base class: the message names the file or key and the problem."""


class DataError(MlnbError):
    """A data file is missing, malformed, or fails its checksum."""


class ConfigError(MlnbError):
    """A configuration value is missing or invalid."""
