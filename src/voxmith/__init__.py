"""voxmith: a local voice-cloning studio.

The Python API is the product; `voxmith` (CLI) and the web UI are shells over it.
"""

__version__ = "0.1.0"

from voxmith.errors import VoxmithError  # noqa: E402
from voxmith.studio import Studio  # noqa: E402

__all__ = ["Studio", "VoxmithError", "__version__"]
