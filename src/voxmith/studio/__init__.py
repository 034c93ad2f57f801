"""The studio: voices, datasets, training runs and results in one workspace folder."""

from voxmith.studio.studio import Studio, demo_voice_files
from voxmith.studio.voices import Voice, VoiceLibrary
from voxmith.studio.workspace import Workspace

__all__ = ["Studio", "Voice", "VoiceLibrary", "Workspace", "demo_voice_files"]
