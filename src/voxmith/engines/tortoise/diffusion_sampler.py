"""Gaussian diffusion sampler for TorToiSe's spectrogram decoder.

Reproduces the sampler that official `load_discrete_vocoder_diffuser` configures: a linear beta schedule
over 4000 trained steps, respaced to N steps; an epsilon-predicting model with learned-range variance;
x0 clamped to [-1, 1]; optional conditioning-free guidance whose strength ramps up towards the last step.

Two samplers:
* `p_sample_loop` - the official ancestral sampler, bit-for-bit: same float64 tables cast to float32 when
  indexed, same op order, and one `randn_like` per step *including the last one* (whose noise is then
  multiplied by 0), so a seeded run consumes the torch RNG exactly as official does.
* `ddim_sample_loop` - deterministic DDIM (eta = 0) over the same respaced steps, an option official 3.0.0
  api.py never uses. It draws no random numbers at all (official's unused `ddim_sample` still calls
  `randn_like` and multiplies by sigma = 0), so it gives the same values as official DDIM but leaves the
  RNG untouched.

The model is any callable `model(x, timesteps, **kwargs)` returning (B, 2C, T): eps then the variance
interpolation value v in [-1, 1]. With guidance it is called a second time with `conditioning_free=True`.
Timesteps given to the model are the *original* (unrespaced) step numbers, as an int64 tensor.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch

Model = Callable[..., torch.Tensor]


def linear_betas(trained_steps: int = 4000) -> np.ndarray:
    """Ho et al.'s linear schedule rescaled to `trained_steps` (2.5e-5 ... 5e-3 for 4000), float64."""
    scale = 1000 / trained_steps
    return np.linspace(scale * 0.0001, scale * 0.02, trained_steps, dtype=np.float64)


def space_timesteps(trained_steps: int, steps: int) -> list[int]:
    """`steps` evenly spaced original timesteps, rounded with Python's round (half to even), sorted.

    The stride accumulates as a float exactly as official, so the rounding ties land identically.
    """
    if steps > trained_steps:
        raise ValueError(f"cannot take {steps} steps out of {trained_steps}")
    stride = 1 if steps <= 1 else (trained_steps - 1) / (steps - 1)
    taken, position = [], 0.0
    for _ in range(steps):
        taken.append(round(position))
        position += stride
    return sorted(set(taken))


class SpacedDiffusionSampler:
    """Respaced diffusion process plus the official p-sampler and a deterministic DDIM option."""

    def __init__(self, steps: int = 200, trained_steps: int = 4000, cond_free: bool = True,
                 cond_free_k: float = 1.0, ramp_cond_free: bool = True):
        self.cond_free, self.cond_free_k, self.ramp_cond_free = cond_free, cond_free_k, ramp_cond_free
        self.timestep_map = space_timesteps(trained_steps, steps)
        base_cumprod = np.cumprod(1.0 - linear_betas(trained_steps), axis=0)
        # Respaced betas make the kept steps' cumulative alphas equal the original ones.
        betas, previous = [], 1.0
        for t in self.timestep_map:
            betas.append(1 - base_cumprod[t] / previous)
            previous = base_cumprod[t]
        self._build_tables(np.array(betas, dtype=np.float64))

    @property
    def num_steps(self) -> int:
        return len(self.timestep_map)

    def _build_tables(self, betas: np.ndarray) -> None:
        # All tables in float64; they are cast to float32 only when indexed (see `_at`), as official.
        alphas = 1.0 - betas
        acp = np.cumprod(alphas, axis=0)
        acp_prev = np.append(1.0, acp[:-1])
        post_var = betas * (1.0 - acp_prev) / (1.0 - acp)
        self.tables = {
            "alphas_cumprod": acp,
            "alphas_cumprod_prev": acp_prev,
            "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / acp),
            "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / acp - 1),
            # Posterior variance is 0 at the first step; its log reuses step 1's value there.
            "posterior_log_variance_clipped": np.log(np.append(post_var[1], post_var[1:])),
            "log_betas": np.log(betas),
            "posterior_mean_coef1": betas * np.sqrt(acp_prev) / (1.0 - acp),
            "posterior_mean_coef2": (1.0 - acp_prev) * np.sqrt(alphas) / (1.0 - acp),
        }
        self.betas = betas

    def _at(self, name: str, t: torch.Tensor, ndim: int) -> torch.Tensor:
        values = torch.from_numpy(self.tables[name].astype(np.float32)).to(t.device)[t]
        return values.reshape(-1, *([1] * (ndim - 1)))

    def cond_free_strength(self, i: int) -> float:
        """Guidance k at respaced index i: ramps from k/N at the noisiest step to k at i = 0."""
        if not self.ramp_cond_free:
            return self.cond_free_k
        return self.cond_free_k * (1 - i / self.num_steps)

    def model_prediction(self, model: Model, x: torch.Tensor, i: int,
                         model_kwargs: dict | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the model at respaced index i: returns (mean, log_variance, pred_x0) of p(x_{i-1} | x_i)."""
        kwargs = model_kwargs or {}
        batch, channels = x.shape[:2]
        t = torch.full((batch,), i, dtype=torch.long, device=x.device)
        original_t = torch.tensor(self.timestep_map, dtype=t.dtype, device=x.device)[t]
        output = model(x, original_t, **kwargs)
        if output.shape[1] != 2 * channels:
            raise ValueError(f"model returned {output.shape[1]} channels, expected {2 * channels}")
        eps, var_values = output[:, :channels], output[:, channels:]
        if self.cond_free:
            if self.ramp_cond_free and batch != 1:
                raise ValueError("ramped conditioning-free guidance supports batch size 1 only (as official)")
            eps_uncond = model(x, original_t, conditioning_free=True, **kwargs)[:, :channels]

        min_log = self._at("posterior_log_variance_clipped", t, x.dim())
        max_log = self._at("log_betas", t, x.dim())
        frac = (var_values + 1) / 2      # v in [-1, 1] spans [posterior variance, beta]
        log_variance = frac * max_log + (1 - frac) * min_log

        if self.cond_free:
            k = self.cond_free_strength(i)
            eps = (1 + k) * eps - k * eps_uncond   # variance stays from the conditional branch

        pred_x0 = (self._at("sqrt_recip_alphas_cumprod", t, x.dim()) * x
                   - self._at("sqrt_recipm1_alphas_cumprod", t, x.dim()) * eps).clamp(-1, 1)
        mean = (self._at("posterior_mean_coef1", t, x.dim()) * pred_x0
                + self._at("posterior_mean_coef2", t, x.dim()) * x)
        return mean, log_variance, pred_x0

    def _indices(self, progress: Callable[[Iterable[int]], Iterable[int]] | None) -> Iterable[int]:
        indices = range(self.num_steps - 1, -1, -1)
        return progress(indices) if progress is not None else indices

    @torch.no_grad()
    def p_sample_loop(self, model: Model, noise: torch.Tensor, model_kwargs: dict | None = None,
                      generator: torch.Generator | None = None,
                      progress: Callable[[Iterable[int]], Iterable[int]] | None = None) -> torch.Tensor:
        """Official ancestral sampling from `noise` (the caller draws it, as official api.py does).

        Per-step noise comes from `generator`, or from the global torch RNG (via randn_like, as official)
        when it is None. `progress` may wrap the step iterator (e.g. tqdm).
        """
        x = noise
        for i in self._indices(progress):
            mean, log_variance, _ = self.model_prediction(model, x, i, model_kwargs)
            if generator is None:
                step_noise = torch.randn_like(x)
            else:
                step_noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            # Noise is drawn at i = 0 too and multiplied by 0, keeping official RNG consumption.
            nonzero = torch.full((x.shape[0], *([1] * (x.dim() - 1))), float(i != 0), device=x.device)
            x = mean + nonzero * torch.exp(0.5 * log_variance) * step_noise
        return x

    @torch.no_grad()
    def ddim_sample_loop(self, model: Model, noise: torch.Tensor, model_kwargs: dict | None = None,
                         progress: Callable[[Iterable[int]], Iterable[int]] | None = None) -> torch.Tensor:
        """Deterministic DDIM (eta = 0) over the respaced steps; consumes no random numbers.

        Same model calls and guidance as `p_sample_loop`; each step re-derives eps from the clamped x0
        and jumps to x_{i-1} = sqrt(acp_prev) * x0 + sqrt(1 - acp_prev) * eps.
        """
        x = noise
        for i in self._indices(progress):
            _, _, pred_x0 = self.model_prediction(model, x, i, model_kwargs)
            t = torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
            eps = ((self._at("sqrt_recip_alphas_cumprod", t, x.dim()) * x - pred_x0)
                   / self._at("sqrt_recipm1_alphas_cumprod", t, x.dim()))
            acp_prev = self._at("alphas_cumprod_prev", t, x.dim())
            x = pred_x0 * torch.sqrt(acp_prev) + torch.sqrt(1 - acp_prev) * eps
        return x


def load_discrete_vocoder_diffuser(desired_diffusion_steps: int = 200, cond_free: bool = True,
                                   cond_free_k: float = 1.0, trained_diffusion_steps: int = 4000
                                   ) -> SpacedDiffusionSampler:
    """The sampler as official api.py builds it for `tts(diffusion_iterations=..., cond_free=..., ...)`."""
    return SpacedDiffusionSampler(steps=desired_diffusion_steps, trained_steps=trained_diffusion_steps,
                                  cond_free=cond_free, cond_free_k=cond_free_k)
