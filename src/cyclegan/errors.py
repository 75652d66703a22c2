"""Exceptions with messages meant for users: what went wrong, where, and what to do.

Library code raises these; only the CLI turns them into exit codes and one-line errors.
"""


class CycleGANError(Exception):
    """Base class for every error the `cyclegan` command reports without a traceback."""


class DatasetError(CycleGANError):
    """A dataset folder cannot be used (missing, empty, no usable images, bad layout)."""


class UnreadableImageError(CycleGANError):
    """One image file cannot be decoded; the message names the file and the reason."""


class UnreadableVideoError(UnreadableImageError):
    """One video cannot be read (damaged, truncated, a codec without a decoder, or PyAV missing);
    reported like an unreadable image, naming the file and the reason."""


class OutputError(CycleGANError):
    """One output file cannot be written (a full disk, a muxer refusing the data); the message names
    the file, the reason and what to do."""


class CheckpointError(CycleGANError):
    """A checkpoint is missing, damaged, or does not fit the requested model."""


class ConfigError(CycleGANError):
    """Options that contradict each other or cannot work together."""


class DownloadError(CycleGANError):
    """A download failed (network, size, checksum) or an archive was refused as unsafe."""


class InsufficientMemoryError(CycleGANError):
    """A translation ran out of memory; the message says for what size and what to do. `width`,
    `height` and `count` describe the images of the generator call that failed."""

    def __init__(self, message: str, width: int = 0, height: int = 0, count: int = 1):
        super().__init__(message)
        self.width, self.height, self.count = width, height, count
