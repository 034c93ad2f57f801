"""gpt_sovits: voxmith's own implementation of GPT-SoVITS (v2 and v2ProPlus) that loads the official weights.

Kept light on purpose (nothing here imports torch). Parts: the SoVITS decoder and semantic quantiser
(`sovits`), its spectrogram (`spectrogram`), HuBERT features (`hubert`), the v2Pro speaker-verification
embedding (`speaker_verification`), checkpoint loading and version detection (`sovits_checkpoint`,
`versions`), SoVITS fine-tuning pieces (`sovits_training`, `sovits_losses`); the GPT (t2s) model (`t2s`, `t2s_generate`, `sampling`); the text front end (`frontend`, with
`english`, `english_normalize`, `g2p_neural`, `pos_tags`, `text_split`, `symbols`).
"""
