"""Dataset preparation: slice long recordings at pauses, transcribe with Whisper, write LJSpeech.

    datasets/NAME/audio/NAME_00001.wav ...   segments, one sample rate, loudness-normalised
    datasets/NAME/train.txt, validation.txt  LJSpeech lines: audio/NAME_00001.wav|transcript
    datasets/NAME/segments.json              per segment: source, span, transcript, confidence, flags
"""

from voxmith.datasets.prepare import PrepareSettings, prepare_dataset
from voxmith.datasets.library import DatasetLibrary
from voxmith.datasets.store import Dataset

__all__ = ["PrepareSettings", "prepare_dataset", "Dataset", "DatasetLibrary"]
