"""User-facing errors.

Every problem a user can fix (a bad file, a wrong name, a missing tool) is raised as a
`VoxmithError` whose message says what went wrong and what to do. The shells print the message
and exit; they never show a traceback for these.
"""


class VoxmithError(Exception):
    """A problem the user can act on; `str(err)` is the whole message."""


class AudioError(VoxmithError):
    """A clip that cannot be read or is unusable (missing, empty, corrupt, silent, too short)."""


class VoiceError(VoxmithError):
    """A voice that is missing, already exists or has an invalid name."""


class DeviceError(VoxmithError):
    """A requested compute device that is not available."""


class EngineError(VoxmithError):
    """An unknown engine or one whose requirements are not installed."""


class NameClashError(VoxmithError):
    """Two folders whose names differ only in Unicode form (NFC and NFD 'ë'): one name, so neither
    is picked (`voxmith.paths.named_folder`)."""
