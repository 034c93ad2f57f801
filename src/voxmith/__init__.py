"""voxmith: a local voice-cloning studio.

The Python API is the product; `voxmith` (CLI) and the web UI are shells over it.
"""

from voxmith.errors import VoxmithError
from voxmith.studio import Studio
from voxmith.version import __version__

__all__ = ["Studio", "VoxmithError", "__version__"]
