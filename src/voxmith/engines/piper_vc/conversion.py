"""The piper-vc conversion model: pure numpy maths, no I/O.

Pipeline per frame (mel-cepstrum c, F0):
1. all-pass frequency warp of c by `warp` (vocal-tract-length-like shift of formants);
2. per-dimension mean/variance mapping of c[1:] from the (warped) joe statistics to the target
   statistics, separately for voiced and unvoiced frames; c[0] (energy) keeps joe's contour;
   blended (weight `cov_mix`) with a full-covariance affine map, the optimal-transport map
   between the two Gaussians: of all maps that give joe's frames the target's covariance it
   moves them least, so it keeps phonetic content better than the symmetric whitening map
   (docs/piper_vc_tuning.md; the engine leaves it off by default, see PiperVCSettings.cov_mix);
3. optional ridge-regression correction of c[1:] learnt on DTW-aligned parallel frames (joe
   saying the target's own transcribed words), mixed in with weight `ridge_mix`, followed by
   a variance restore because regression shrinks towards the mean and muffles the voice;
4. log-F0 mean/variance mapping to the target, times `f0_scale`.
`ConversionParams.to_arrays/from_arrays` turn the model into a dict of numpy arrays (npz cache).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from voxmith.engines.piper_vc.world import WorldFeatures, warp_mcep

# The cov_mix enrollment fits the ridge correction on top of (the engine's default too). The OT
# matrices are stored whatever it is, so cov_mix can still be raised per synthesis.
DEFAULT_COV_MIX = 0.0


@dataclass
class Stats:
    mean: np.ndarray
    std: np.ndarray

    @staticmethod
    def of(x: np.ndarray) -> "Stats":
        return Stats(x.mean(axis=0), np.maximum(x.std(axis=0), 1e-4))


@dataclass
class ConversionParams:
    warp: float  # all-pass alpha shift applied to joe's mel-cepstrum
    src_voiced: Stats  # statistics of joe's warped c[1:] (voiced frames)
    src_unvoiced: Stats
    tgt_voiced: Stats  # statistics of the target's c[1:]
    tgt_unvoiced: Stats
    src_lf0: Stats  # log-F0 of joe (voiced frames)
    tgt_lf0: Stats  # log-F0 of the target
    ridge: np.ndarray  # (D, D) residual regression on [c[1:] standardised, 1]; zeros = off
    ridge_mix: float  # 0 = statistics only, 1 = full ridge correction
    ot_voiced: np.ndarray  # (D, D) optimal-transport matrix for voiced c[1:] (see ot_map)
    ot_unvoiced: np.ndarray
    cov_mix: float  # 0 = per-dimension statistics only, 1 = full OT map
    cov_nucleus: float = -1.0  # OT weight on vowel nuclei (phones.nucleus_weights); < 0: cov_mix

    def to_arrays(self, prefix: str = "") -> Dict[str, np.ndarray]:
        out: Dict[str, np.ndarray] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Stats):
                out[f"{prefix}{f.name}.mean"] = value.mean.astype(np.float64)
                out[f"{prefix}{f.name}.std"] = value.std.astype(np.float64)
            else:
                out[f"{prefix}{f.name}"] = np.asarray(value, dtype=np.float64)
        return out

    @classmethod
    def from_arrays(cls, arrays: Dict[str, np.ndarray], prefix: str = "") -> "ConversionParams":
        values = {}
        for f in dataclasses.fields(cls):
            if f.type in ("Stats", Stats):
                values[f.name] = Stats(np.asarray(arrays[f"{prefix}{f.name}.mean"]),
                                       np.asarray(arrays[f"{prefix}{f.name}.std"]))
            elif f.type in ("float", float):
                if f"{prefix}{f.name}" in arrays:
                    values[f.name] = float(arrays[f"{prefix}{f.name}"])
            else:
                values[f.name] = np.asarray(arrays[f"{prefix}{f.name}"])
        return cls(**values)


def speech_mask(mcep: np.ndarray, floor_db: float = 40.0) -> np.ndarray:
    """Frames within `floor_db` of the loudest one (c0 is log-amplitude in nepers)."""
    level = mcep[:, 0] * (20.0 / np.log(10.0))
    return level > level.max() - floor_db


def frame_groups(feats: Sequence[WorldFeatures]) -> Tuple[np.ndarray, np.ndarray]:
    """Stack c and a voicing flag over the speech frames of several utterances."""
    mceps, voiced = [], []
    for f in feats:
        keep = speech_mask(f.mcep)
        mceps.append(f.mcep[keep])
        voiced.append(f.voiced[keep])
    return np.concatenate(mceps), np.concatenate(voiced)


def _paired_stats(src: np.ndarray, tgt: np.ndarray) -> Tuple[Stats, Stats]:
    """Statistics of one frame group (voiced or unvoiced) on both sides. A side with under two
    frames (a target that is one held tone has no unvoiced frames) gives no statistics: that
    group maps onto itself (both sides the other's, or zero mean and unit spread)."""
    if src.shape[0] >= 2 and tgt.shape[0] >= 2:
        return Stats.of(src), Stats.of(tgt)
    known = src if src.shape[0] >= 2 else tgt
    same = Stats.of(known) if known.shape[0] >= 2 else Stats(np.zeros(src.shape[1]), np.ones(src.shape[1]))
    return same, same


def log_f0_stats(feats: Sequence[WorldFeatures]) -> Stats:
    lf0 = np.concatenate([np.log(f.f0[f.voiced]) for f in feats])
    return Stats(np.asarray(lf0.mean()), np.asarray(max(lf0.std(), 1e-3)))


def _sqrtm(c: np.ndarray, power: float = 0.5) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    return (v * np.maximum(w, 1e-8) ** power) @ v.T


def ot_map(src: np.ndarray, tgt: np.ndarray, shrink: float = 0.1) -> np.ndarray:
    """Matrix A with (x - mean_src) @ A.T + mean_tgt carrying N(src) onto N(tgt) with the least
    mean squared displacement: A = S^-1/2 (S^1/2 T S^1/2)^1/2 S^-1/2. Covariances are shrunk
    toward their diagonals because a clip or two gives only a few thousand frames for 34 dims.
    With fewer than two frames on a side (a clip of one held tone has no unvoiced frames to speak
    of) no covariance can be estimated: the identity, so the full map is the mean shift alone."""
    if min(src.shape[0], tgt.shape[0]) < 2:
        return np.eye(src.shape[1])

    def cov(x: np.ndarray) -> np.ndarray:
        c = np.cov(x.T)
        return (1 - shrink) * c + shrink * np.diag(np.diag(c))
    s, t = cov(src), cov(tgt)
    root, inv_root = _sqrtm(s), _sqrtm(s, -0.5)
    return inv_root @ _sqrtm(root @ t @ root) @ inv_root


def ot_weights(p: ConversionParams, nucleus: Optional[np.ndarray], n: int) -> np.ndarray:
    """Per-frame OT weight: cov_mix, raised towards cov_nucleus on vowel nuclei."""
    w = np.full(n, p.cov_mix)
    if nucleus is not None and p.cov_nucleus >= 0:
        nuc = np.zeros(n)
        nuc[:min(n, nucleus.size)] = nucleus[:n]
        w += (p.cov_nucleus - p.cov_mix) * nuc
    return w


def _map_stats(c: np.ndarray, voiced: np.ndarray, p: ConversionParams,
               nucleus: Optional[np.ndarray] = None) -> np.ndarray:
    out = c.copy()
    weight = ot_weights(p, nucleus, c.shape[0])
    for mask, src, tgt, a in ((voiced, p.src_voiced, p.tgt_voiced, p.ot_voiced),
                              (~voiced, p.src_unvoiced, p.tgt_unvoiced, p.ot_unvoiced)):
        x = c[mask, 1:]
        out[mask, 1:] = (x - src.mean) / src.std * tgt.std + tgt.mean
        if weight[mask].any():
            full = (x - src.mean) @ a.T + tgt.mean
            out[mask, 1:] += weight[mask, None] * (full - out[mask, 1:])
    return out


def _design(c1: np.ndarray, p: ConversionParams) -> np.ndarray:
    """Ridge inputs: the stats-mapped c[1:] standardised by the target voiced stats, plus 1."""
    z = (c1 - p.tgt_voiced.mean) / p.tgt_voiced.std
    return np.hstack([z, np.ones((z.shape[0], 1))])


def fit(src_feats: Sequence[WorldFeatures], tgt_feats: Sequence[WorldFeatures], *, warp: float,
        pairs: Optional[Sequence[Tuple[WorldFeatures, WorldFeatures, np.ndarray]]] = None,
        ridge_lambda: float = 30.0, ridge_mix: float = 0.0, cov_mix: float = 0.0,
        ) -> ConversionParams:
    """Fit a model for one warp. `src_feats` are joe's utterances, `tgt_feats` the target's.
    `pairs` are (joe, target, path) with path[i] = target frame aligned to joe frame i; when
    given and `ridge_mix` > 0, the ridge correction is fitted on them, on top of the mapping at
    `cov_mix` (the OT matrices are always stored; synthesis may change cov_mix)."""
    warped = [WorldFeatures(f.f0, warp_mcep(f.mcep, warp), f.ap) for f in src_feats]
    sc, sv = frame_groups(warped)
    tc, tv = frame_groups(tgt_feats)
    d = sc.shape[1] - 1
    src_voiced, tgt_voiced = _paired_stats(sc[sv, 1:], tc[tv, 1:])
    src_unvoiced, tgt_unvoiced = _paired_stats(sc[~sv, 1:], tc[~tv, 1:])
    src_lf0 = log_f0_stats(src_feats)
    # A target with no voiced frame at all (a whisper, noise) keeps the base voice's pitch.
    tgt_lf0 = log_f0_stats(tgt_feats) if any(f.voiced.any() for f in tgt_feats) else src_lf0
    params = ConversionParams(
        warp=float(warp),
        src_voiced=src_voiced, src_unvoiced=src_unvoiced, tgt_voiced=tgt_voiced, tgt_unvoiced=tgt_unvoiced,
        src_lf0=src_lf0, tgt_lf0=tgt_lf0,
        ridge=np.zeros((d + 1, d)), ridge_mix=0.0,
        ot_voiced=ot_map(sc[sv, 1:], tc[tv, 1:]), ot_unvoiced=ot_map(sc[~sv, 1:], tc[~tv, 1:]),
        cov_mix=float(cov_mix),
    )
    if pairs and ridge_mix > 0:
        xs, ys = [], []
        for joe, tgt, path in pairs:
            keep = speech_mask(joe.mcep) & speech_mask(tgt.mcep)[path] & joe.voiced & tgt.voiced[path]
            c = _map_stats(warp_mcep(joe.mcep, warp), joe.voiced, params)[keep, 1:]
            xs.append(c)
            ys.append(tgt.mcep[path][keep, 1:])
        x, y = np.concatenate(xs), np.concatenate(ys)
        a = _design(x, params)
        # Residual target in standardised units, so one lambda suits every dimension.
        r = (y - x) / params.tgt_voiced.std
        reg = ridge_lambda * np.eye(d + 1)
        reg[-1, -1] = 1e-6  # do not shrink the bias
        params.ridge = np.linalg.solve(a.T @ a + reg, a.T @ r)
        params.ridge_mix = float(ridge_mix)
    return params


def convert(feats: WorldFeatures, p: ConversionParams, *, warp_jitter: float = 0.0,
            f0_scale: float = 1.0, nucleus: Optional[np.ndarray] = None, f0_range: float = 1.0) -> WorldFeatures:
    """Convert joe's features toward the target. `warp_jitter` (added to the fitted warp) and
    `f0_scale` are the free parameters candidates may vary; `nucleus` (per-frame weight from
    phones.nucleus_weights) lets the OT map reach cov_nucleus on vowels; `f0_range` raises the
    log-F0 spread ratio (target / joe) to that power (1: the target's spread, 0: joe's)."""
    voiced = feats.voiced
    c = _map_stats(warp_mcep(feats.mcep, p.warp + warp_jitter), voiced, p, nucleus)
    c[:, 0] = feats.mcep[:, 0]  # keep joe's energy contour: loudness is normalised later
    if p.ridge_mix > 0 and voiced.any():
        v = c[voiced, 1:]
        corrected = v + p.ridge_mix * (_design(v, p) @ p.ridge) * p.tgt_voiced.std
        # Variance restore: regression pulls towards the mean; rescale to the target spread.
        mu, sd = corrected.mean(axis=0), corrected.std(axis=0) + 1e-6
        spread = v.std(axis=0) + 1e-6
        c[voiced, 1:] = (corrected - mu) * (spread / sd) + mu
    f0 = np.zeros_like(feats.f0)
    lf0 = np.log(feats.f0[voiced])
    spread = (float(p.tgt_lf0.std) / float(p.src_lf0.std)) ** float(f0_range)
    f0[voiced] = np.exp((lf0 - p.src_lf0.mean) * spread + p.tgt_lf0.mean)
    f0[voiced] *= f0_scale
    return WorldFeatures(f0=f0, mcep=c, ap=feats.ap)
