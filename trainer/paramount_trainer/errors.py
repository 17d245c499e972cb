"""Errors that carry a message meant for the user: the trainer prints it, logs ``end`` with ``failed``
and exits non-zero, without a traceback."""


class TrainerError(Exception):
    """Bad input or an unrecoverable condition, described for the user."""


class ConfigError(TrainerError):
    """An unknown preset, an invalid option value."""


class DataError(TrainerError):
    """A missing or empty data folder, an unreadable image."""

    def __init__(self, message, *args):  # one-string constructor: DataLoader workers re-raise it that way
        super().__init__(message, *args)


class CheckpointError(TrainerError):
    """A corrupt, unreadable or incompatible checkpoint."""
