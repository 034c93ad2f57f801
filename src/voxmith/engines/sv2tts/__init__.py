"""The `sv2tts` engine: SV2TTS (Jia et al. 2018) as in Real-Time-Voice-Cloning, on its official weights.

One file per model: `speaker_encoder.py` (GE2E LSTM, partial-window embedding) with its audio in
`encoder_audio.py`; `text.py` (English character front end); `tacotron.py` (synthesizer);
`wavernn.py` (vocoder); `griffin_lim.py` (fast fallback vocoder); sizes in `hparams.py`. Training:
`training_settings.py` (stage, official hparams), `training_data.py` (preprocessing, cached),
`synthesizer_training.py`, `vocoder_training.py`, tied together in `training.py`.
"""
