"""One timed measurement for benchmarks/sv2tts_speed.py, on one side (voxmith's or the official code).

    python sv2tts_speed_worker.py --side ours|official --task encoder|tacotron|wavernn --state-dir D [--threads 2]

Runs in voxmith's venv (ours) or in the official reference venv with the Real-Time-Voice-Cloning
checkout on PYTHONPATH (official). Loads the shared full-size random weights from D (written by the
driver, official key names), runs the task once to warm up and once timed, and prints one JSON line:
seconds, and a checksum of the output so the driver can check both sides did the same work.

- encoder: embed_utterance of the demo clip's first 6 s at 16 kHz (already preprocessed: both sides
  get the same samples, golden.clip_16k, and the official preprocess_wav is not timed).
- tacotron: generate() of one sentence for exactly FRAMES frames (the shared weights have the stop
  bias lowered so neither side stops early), pre-net dropout from seed 1 (official: the global RNG).
- wavernn: batched generate() of VOC_FRAMES random mel frames in folds of VOC_TARGET + 2 x VOC_OVERLAP,
  seed 2 (official: the global RNG, after the two GRUCell copies its generate() builds; voxmith's
  generator skips the same draws). Shapes are cut down so a run fits a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "sv2tts"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from golden import clip_16k  # noqa: E402

SENTENCE = "The quick brown fox jumps over the lazy dog, and then it runs far away into the woods."
FRAMES = 100  # 1.25 s of speech at 12.5 ms per frame (50 decoder steps); the cost is per step
# WaveRNN: 110 frames (22,000 samples) in folds of 2000 + 2 x 200 samples: a batch of 10 folds, as a
# 5 s sentence has with the official 8000 + 2 x 800, for 2400 steps instead of 9600 (the cost is per step).
VOC_FRAMES = 110
VOC_TARGET, VOC_OVERLAP = 2000, 200


def load(state_dir: Path, name: str) -> dict:
    return torch.load(state_dir / name, map_location="cpu", weights_only=True)["model_state"]


def run_ours(task: str, state_dir: Path):
    from voxmith.engines.sv2tts.hparams import EncoderConfig, TacotronConfig, WaveRNNConfig
    from voxmith.engines.sv2tts.speaker_encoder import SpeakerEncoder, embed_utterance
    from voxmith.engines.sv2tts.tacotron import Tacotron
    from voxmith.engines.sv2tts.text import text_to_ids
    from voxmith.engines.sv2tts.wavernn import WaveRNN

    if task == "encoder":
        model = SpeakerEncoder(EncoderConfig())
        model.load_state_dict(load(state_dir, "encoder.pt"))
        wav = clip_16k()
        return lambda: embed_utterance(model.eval(), wav)
    if task == "tacotron":
        model = Tacotron(TacotronConfig())
        model.load_state_dict(load(state_dir, "synthesizer.pt"))
        chars = torch.tensor([text_to_ids(SENTENCE)])
        embed = torch.from_numpy(np.load(state_dir / "embedding.npy"))[None]
        return lambda: model.eval().generate(chars, embed, generator=torch.Generator().manual_seed(1),
                                             max_frames=FRAMES).postnet_mels.numpy()
    model = WaveRNN(WaveRNNConfig())
    model.load_state_dict(load(state_dir, "vocoder.pt"))
    mels = torch.from_numpy(np.load(state_dir / "mels.npy"))

    def generate():
        generator = torch.Generator().manual_seed(2)
        for gru in (model.rnn1, model.rnn2):  # the draws of the official GRUCell copies
            for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
                torch.empty(getattr(gru, name).shape).uniform_(generator=generator)
        return model.eval().generate(mels, generator=generator, target=VOC_TARGET, overlap=VOC_OVERLAP)
    return generate


def run_official(task: str, state_dir: Path):
    if task == "encoder":
        from encoder import inference
        from encoder.model import SpeakerEncoder

        model = SpeakerEncoder(torch.device("cpu"), torch.device("cpu"))
        model.load_state_dict(load(state_dir, "encoder.pt"))
        inference._model, inference._device = model.eval(), torch.device("cpu")
        wav = clip_16k()
        return lambda: inference.embed_utterance(wav)
    if task == "tacotron":
        from synthesizer.hparams import hparams as hp
        from synthesizer.models.tacotron import Tacotron
        from synthesizer.utils.symbols import symbols
        from synthesizer.utils.text import text_to_sequence

        model = Tacotron(embed_dims=hp.tts_embed_dims, num_chars=len(symbols), encoder_dims=hp.tts_encoder_dims,
                         decoder_dims=hp.tts_decoder_dims, n_mels=hp.num_mels, fft_bins=hp.num_mels,
                         postnet_dims=hp.tts_postnet_dims, encoder_K=hp.tts_encoder_K, lstm_dims=hp.tts_lstm_dims,
                         postnet_K=hp.tts_postnet_K, num_highways=hp.tts_num_highways, dropout=hp.tts_dropout,
                         stop_threshold=hp.tts_stop_threshold, speaker_embedding_size=hp.speaker_embedding_size)
        model.load_state_dict(load(state_dir, "synthesizer.pt"))
        chars = torch.tensor([text_to_sequence(SENTENCE, ["english_cleaners"])]).long()
        embed = torch.from_numpy(np.load(state_dir / "embedding.npy"))[None]

        def generate():
            torch.manual_seed(1)
            with torch.no_grad():
                return model.generate(chars, embed, steps=FRAMES)[1].numpy()
        return generate
    from vocoder import hparams as hp
    from vocoder.models.fatchord_version import WaveRNN

    model = WaveRNN(rnn_dims=hp.voc_rnn_dims, fc_dims=hp.voc_fc_dims, bits=hp.bits, pad=hp.voc_pad,
                    upsample_factors=hp.voc_upsample_factors, feat_dims=hp.num_mels, compute_dims=hp.voc_compute_dims,
                    res_out_dims=hp.voc_res_out_dims, res_blocks=hp.voc_res_blocks, hop_length=hp.hop_length,
                    sample_rate=hp.sample_rate, mode=hp.voc_mode)
    model.load_state_dict(load(state_dir, "vocoder.pt"))
    mels = torch.from_numpy(np.load(state_dir / "mels.npy"))

    def generate():
        torch.manual_seed(2)
        return model.generate(mels, True, VOC_TARGET, VOC_OVERLAP, True, lambda *a: None)
    return generate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", choices=("ours", "official"), required=True)
    parser.add_argument("--task", choices=("encoder", "tacotron", "wavernn"), required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = (run_ours if args.side == "ours" else run_official)(args.task, args.state_dir)
    if args.task != "wavernn":  # WaveRNN's one run is long enough; its first steps warm up
        run()
    started = time.perf_counter()
    out = np.asarray(run(), dtype=np.float64)
    seconds = time.perf_counter() - started
    steps = {"tacotron": FRAMES // 2, "wavernn": VOC_TARGET + 2 * VOC_OVERLAP}.get(args.task)
    print(json.dumps({"seconds": seconds, "ms_per_step": 1000 * seconds / steps if steps else None, "shape": list(out.shape), "checksum": float(np.abs(out).sum()),
                      "head": out.reshape(-1)[:8].tolist()}))


if __name__ == "__main__":
    main()
