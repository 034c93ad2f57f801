"""The SV2TTS synthesizer: Tacotron conditioned on a speaker embedding (official
`synthesizer/models/tacotron.py`), module names as in the official state dict.

Characters are embedded, passed through a pre-net and a CBHG; the speaker embedding is appended to
every encoder step. A decoder with location-sensitive attention and two residual LSTM cells emits
`r` mel frames per step; a CBHG post-net refines the whole mel spectrogram.

Randomness: the pre-nets keep dropout on at inference (as the model was trained and is officially
run), and training adds zoneout. Both draw from the `torch.Generator` passed in, never from
torch's global RNG, so concurrent requests stay reproducible; the draws are made in the official
order with the official calls, so seeding the generator as the official code seeds the global RNG
gives the very same masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .hparams import TacotronConfig

MAX_R = 20  # the mel projection always has room for 20 frames per step; r of them are used


def dropout(x: torch.Tensor, p: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    """Inverted dropout drawing its mask from `generator` (torch's CPU dropout draws the same
    Bernoulli mask from the global RNG)."""
    mask = torch.empty_like(x).bernoulli_(1 - p, generator=generator)
    return x * mask.div_(1 - p)


class HighwayNetwork(nn.Module):
    def __init__(self, size: int):
        super().__init__()
        self.W1 = nn.Linear(size, size)
        self.W2 = nn.Linear(size, size)

    def forward(self, x):
        gate = torch.sigmoid(self.W2(x))
        return gate * F.relu(self.W1(x)) + (1.0 - gate) * x


class BatchNormConv(nn.Module):
    """Conv1d (no bias), ReLU unless told not to, then batch norm (in that order, as trained)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, relu: bool = True):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, stride=1, padding=kernel // 2, bias=False)
        self.bnorm = nn.BatchNorm1d(out_channels)
        self.relu = relu

    def forward(self, x):
        x = self.conv(x)
        return self.bnorm(F.relu(x) if self.relu else x)


class CBHG(nn.Module):
    """Conv bank (kernels 1..K), max-pool, two projections, residual, highways, bidirectional GRU."""

    def __init__(self, K: int, in_channels: int, channels: int, proj_channels: Tuple[int, int], num_highways: int):
        super().__init__()
        self.conv1d_bank = nn.ModuleList([BatchNormConv(in_channels, channels, k) for k in range(1, K + 1)])
        self.maxpool = nn.MaxPool1d(kernel_size=2, stride=1, padding=1)
        self.conv_project1 = BatchNormConv(K * channels, proj_channels[0], 3)
        self.conv_project2 = BatchNormConv(proj_channels[0], proj_channels[1], 3, relu=False)
        # The post-net's projection (to the mel bands) differs from its width: a linear fixes it.
        self.pre_highway = (nn.Linear(proj_channels[-1], channels, bias=False)
                            if proj_channels[-1] != channels else None)
        self.highways = nn.ModuleList([HighwayNetwork(channels) for _ in range(num_highways)])
        self.rnn = nn.GRU(channels, channels // 2, batch_first=True, bidirectional=True)

    def forward(self, x):
        """(batch, channels, time) -> (batch, time, channels)."""
        residual, length = x, x.size(-1)
        bank = torch.cat([conv(x)[:, :, :length] for conv in self.conv1d_bank], dim=1)
        x = self.maxpool(bank)[:, :, :length]  # even kernels and the pool pad one extra step
        x = self.conv_project2(self.conv_project1(x)) + residual
        x = x.transpose(1, 2)
        if self.pre_highway is not None:
            x = self.pre_highway(x)
        for highway in self.highways:
            x = highway(x)
        return self.rnn(x)[0]


class PreNet(nn.Module):
    def __init__(self, in_dims: int, fc1_dims: int, fc2_dims: int, dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(in_dims, fc1_dims)
        self.fc2 = nn.Linear(fc1_dims, fc2_dims)
        self.p = dropout

    def forward(self, x, generator: Optional[torch.Generator]):
        x = dropout(F.relu(self.fc1(x)), self.p, generator)  # on at inference too, as trained
        return dropout(F.relu(self.fc2(x)), self.p, generator)


class Encoder(nn.Module):
    def __init__(self, c: TacotronConfig):
        super().__init__()
        self.embedding = nn.Embedding(c.num_chars, c.embed_dims)
        self.pre_net = PreNet(c.embed_dims, c.encoder_dims, c.encoder_dims, c.dropout)
        self.cbhg = CBHG(c.encoder_K, c.encoder_dims, c.encoder_dims, (c.encoder_dims, c.encoder_dims),
                         c.num_highways)

    def forward(self, chars, speaker_embedding, generator):
        x = self.pre_net(self.embedding(chars), generator)
        x = self.cbhg(x.transpose(1, 2))
        # SV2TTS: the speaker embedding joins every character's encoding.
        tiled = speaker_embedding.unsqueeze(1).expand(-1, x.size(1), -1)
        return torch.cat([x, tiled], dim=2)


class LSA(nn.Module):
    """Location-sensitive attention over the encoder steps, fed the cumulative attention so far."""

    def __init__(self, attn_dim: int, kernel_size: int = 31, filters: int = 32):
        super().__init__()
        self.conv = nn.Conv1d(1, filters, padding=(kernel_size - 1) // 2, kernel_size=kernel_size, bias=True)
        self.L = nn.Linear(filters, attn_dim, bias=False)
        self.W = nn.Linear(attn_dim, attn_dim, bias=True)
        self.v = nn.Linear(attn_dim, 1, bias=False)

    def forward(self, encoder_seq_proj, query, cumulative, chars):
        """Attention weights (batch, 1, chars) and the updated cumulative attention."""
        processed_query = self.W(query).unsqueeze(1)
        processed_loc = self.L(self.conv(cumulative.unsqueeze(1)).transpose(1, 2))
        u = self.v(torch.tanh(processed_query + encoder_seq_proj + processed_loc)).squeeze(-1)
        u = u * (chars != 0).float()  # padding characters score 0 (as trained), not -inf
        scores = F.softmax(u, dim=1)
        return scores.unsqueeze(1), cumulative + scores


@dataclass
class DecoderState:
    attn_hidden: torch.Tensor
    rnn1_hidden: torch.Tensor
    rnn2_hidden: torch.Tensor
    rnn1_cell: torch.Tensor
    rnn2_cell: torch.Tensor
    context: torch.Tensor
    cumulative: torch.Tensor  # attention summed over the steps so far


class Decoder(nn.Module):
    def __init__(self, c: TacotronConfig):
        super().__init__()
        self.register_buffer("r", torch.tensor(1, dtype=torch.int))
        self.n_mels = c.n_mels
        prenet_dims = 2 * c.decoder_dims
        context_dims = c.encoder_dims + c.speaker_embedding_size
        self.prenet = PreNet(c.n_mels, prenet_dims, prenet_dims, c.dropout)
        self.attn_net = LSA(c.decoder_dims)
        self.attn_rnn = nn.GRUCell(context_dims + prenet_dims, c.decoder_dims)
        self.rnn_input = nn.Linear(context_dims + c.decoder_dims, c.lstm_dims)
        self.res_rnn1 = nn.LSTMCell(c.lstm_dims, c.lstm_dims)
        self.res_rnn2 = nn.LSTMCell(c.lstm_dims, c.lstm_dims)
        self.mel_proj = nn.Linear(c.lstm_dims, c.n_mels * MAX_R, bias=False)
        self.stop_proj = nn.Linear(context_dims + c.lstm_dims, 1)

    def _zoneout(self, prev, current, generator, p: float = 0.1):
        """Training only: each unit keeps its previous value with probability p."""
        mask = torch.zeros(prev.size(), device=prev.device).bernoulli_(p, generator=generator)
        return prev * mask + current * (1 - mask)

    def forward(self, encoder_seq, encoder_seq_proj, prenet_in, state: DecoderState, chars, generator):
        """One step: (r mel frames (batch, n_mels, r), attention, next state, stop probability)."""
        prenet_out = self.prenet(prenet_in, generator)
        attn_hidden = self.attn_rnn(torch.cat([state.context, prenet_out], dim=-1), state.attn_hidden)
        scores, cumulative = self.attn_net(encoder_seq_proj, attn_hidden, state.cumulative, chars)
        context = (scores @ encoder_seq).squeeze(1)
        x = self.rnn_input(torch.cat([context, attn_hidden], dim=1))
        rnn1_next, rnn1_cell = self.res_rnn1(x, (state.rnn1_hidden, state.rnn1_cell))
        rnn1_hidden = self._zoneout(state.rnn1_hidden, rnn1_next, generator) if self.training else rnn1_next
        x = x + rnn1_hidden
        rnn2_next, rnn2_cell = self.res_rnn2(x, (state.rnn2_hidden, state.rnn2_cell))
        rnn2_hidden = self._zoneout(state.rnn2_hidden, rnn2_next, generator) if self.training else rnn2_next
        x = x + rnn2_hidden
        r = int(self.r)
        mels = self.mel_proj(x).view(x.size(0), self.n_mels, MAX_R)[:, :, :r]
        stop = torch.sigmoid(self.stop_proj(torch.cat((x, context), dim=1)))
        state = DecoderState(attn_hidden, rnn1_hidden, rnn2_hidden, rnn1_cell, rnn2_cell, context, cumulative)
        return mels, scores, state, stop


@dataclass
class TacotronOutput:
    mels: torch.Tensor  # (batch, n_mels, frames): the decoder's frames
    postnet_mels: torch.Tensor  # (batch, n_mels, frames): refined by the post-net (what is vocoded)
    attention: torch.Tensor  # (batch, decoder steps, chars)
    stop: torch.Tensor  # (batch, frames): stop probabilities


class Tacotron(nn.Module):
    def __init__(self, config: TacotronConfig = TacotronConfig()):
        super().__init__()
        c = self.config = config
        self.encoder = Encoder(c)
        self.encoder_proj = nn.Linear(c.encoder_dims + c.speaker_embedding_size, c.decoder_dims, bias=False)
        self.decoder = Decoder(c)
        # The official post-net maps to "fft_bins", which the synthesizer sets to the mel bands.
        self.postnet = CBHG(c.postnet_K, c.n_mels, c.postnet_dims, (c.postnet_dims, c.n_mels), c.num_highways)
        self.post_proj = nn.Linear(c.postnet_dims, c.n_mels, bias=False)
        self.register_buffer("step", torch.zeros(1, dtype=torch.long))
        self.register_buffer("stop_threshold", torch.tensor(c.stop_threshold, dtype=torch.float32))
        self.decoder.r = torch.tensor(c.reduction_factor, dtype=torch.int)

    @property
    def r(self) -> int:
        return int(self.decoder.r)

    def _start(self, chars, speaker_embedding, generator):
        c, batch, device = self.config, chars.size(0), chars.device
        encoder_seq = self.encoder(chars, speaker_embedding, generator)
        zeros = lambda n: torch.zeros(batch, n, device=device)  # noqa: E731
        state = DecoderState(zeros(c.decoder_dims), zeros(c.lstm_dims), zeros(c.lstm_dims), zeros(c.lstm_dims),
                             zeros(c.lstm_dims), zeros(c.encoder_dims + c.speaker_embedding_size),
                             zeros(chars.size(1)))
        return encoder_seq, self.encoder_proj(encoder_seq), state

    def _finish(self, mel_steps: List[torch.Tensor], attention, stops) -> TacotronOutput:
        mels = torch.cat(mel_steps, dim=2)
        postnet_mels = self.post_proj(self.postnet(mels)).transpose(1, 2)
        return TacotronOutput(mels, postnet_mels, torch.cat(attention, 1), torch.cat(stops, 1))

    def forward(self, chars: torch.Tensor, mels: torch.Tensor, speaker_embedding: torch.Tensor,
                generator: Optional[torch.Generator] = None) -> TacotronOutput:
        """Teacher-forced pass: each step sees the last true frame of the step before."""
        encoder_seq, encoder_seq_proj, state = self._start(chars, speaker_embedding, generator)
        go_frame = torch.zeros(chars.size(0), self.config.n_mels, device=chars.device)
        steps, attention, stops = [], [], []
        for t in range(0, mels.size(2), self.r):
            prenet_in = mels[:, :, t - 1] if t > 0 else go_frame
            frames, scores, state, stop = self.decoder(encoder_seq, encoder_seq_proj, prenet_in, state, chars,
                                                       generator)
            steps.append(frames)
            attention.append(scores)
            stops.extend([stop] * self.r)
        return self._finish(steps, attention, stops)

    @torch.no_grad()
    def generate(self, chars: torch.Tensor, speaker_embedding: torch.Tensor,
                 generator: Optional[torch.Generator] = None, max_frames: Optional[int] = None) -> TacotronOutput:
        """Free-running inference: each step is fed its own last frame; stops once every item's stop
        probability is above 0.5 (after the first few steps) or at `max_frames`."""
        max_frames = max_frames or self.config.max_decoder_steps
        encoder_seq, encoder_seq_proj, state = self._start(chars, speaker_embedding, generator)
        prenet_in = torch.zeros(chars.size(0), self.config.n_mels, device=chars.device)
        steps, attention, stops = [], [], []
        for t in range(0, max_frames, self.r):
            frames, scores, state, stop = self.decoder(encoder_seq, encoder_seq_proj, prenet_in, state, chars,
                                                       generator)
            steps.append(frames)
            attention.append(scores)
            stops.extend([stop] * self.r)
            prenet_in = frames[:, :, -1]
            if (stop > 0.5).all() and t > 10:
                break
        return self._finish(steps, attention, stops)


def trim_trailing_silence(mel: torch.Tensor, threshold: float) -> torch.Tensor:
    """(n_mels, frames) without the trailing frames whose loudest band is below `threshold`."""
    end = mel.size(1)
    while end > 0 and float(mel[:, end - 1].max()) < threshold:
        end -= 1
    return mel[:, :end]
