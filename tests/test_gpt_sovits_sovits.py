"""SoVITS (GPT-SoVITS v2 / v2ProPlus): golden outputs vs the official SynthesizerTrn at tiny size, the
checkpoint loader (version tags, HParams configs, weight-norm folding) and its errors."""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch

from tests.fixtures.gpt_sovits.sovits_golden import FIXTURES_DIR, KEYS_DIR, max_abs_diff, randomized_state
from voxmith.engines.gpt_sovits import sovits_checkpoint as ckpt
from voxmith.engines.gpt_sovits.sovits import SoVITS, SoVITSConfig
from voxmith.engines.gpt_sovits.versions import SoVITSVersion

TOL = 1e-4
VERSIONS = ("v2", "v2ProPlus")


@pytest.fixture(scope="module")
def fx():
    return torch.load(FIXTURES_DIR / "sovits.pt", weights_only=False)


def tiny_config(case: dict, version: str, with_posterior: bool = True) -> SoVITSConfig:
    cfg = SoVITSConfig.from_checkpoint({"model": case["config"], "data": {"filter_length": 2048}}, version)
    return SoVITSConfig(**{**cfg.__dict__, "with_posterior": with_posterior})


def meta_model(config: SoVITSConfig) -> SoVITS:
    with torch.device("meta"):     # skips the slow random init; every weight is assigned afterwards
        return SoVITS(config)


def official_weights(case: dict, version: str) -> dict:
    """The official checkpoint layout (weight-norm pairs, enc_q included) with the fixture's weights."""
    layout = ckpt.to_weight_norm_form(meta_model(tiny_config(case, version)).state_dict())
    return randomized_state(layout, case["seed"])


@pytest.fixture(scope="module")
def models(fx):
    out = {}
    for version in VERSIONS:
        case = fx[version]
        model = meta_model(tiny_config(case, version))
        model.load_state_dict(ckpt.fold_weight_norm(official_weights(case, version)), strict=True, assign=True)
        out[version] = model.eval()
    return out


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("version", VERSIONS)
def test_extract_codes_matches_official(fx, models, version):
    case = fx[version]
    codes = models[version].extract_codes(case["hubert"])
    assert codes.shape == (1, case["hubert"].shape[2] // 2)
    assert torch.equal(codes, case["latent"][:, 0])
    assert len(set(codes[0].tolist())) > 3            # random features spread over many codes


@pytest.mark.parametrize("version", VERSIONS)
def test_style_matches_official(fx, models, version):
    case = fx[version]
    ref = case["refs"][0]
    style = models[version].ref_enc(ref[:, :704], torch.ones(1, 1, ref.shape[2]))
    assert max_abs_diff(style, case["style"]) <= TOL


@pytest.mark.parametrize("version", VERSIONS)
def test_decode_without_noise_matches_official(fx, models, version):
    case, model = fx[version], models[version]
    sv = case["sv"][0] if case["sv"] else None
    wave = model.decode(case["codes"][0], case["phones"], case["refs"][0], noise_scale=0.0, sv_embedding=sv)
    expected = case["wave_noiseless"][:, 0]
    assert wave.shape == expected.shape == (1, 2 * case["codes"].shape[2] * model.upsample_factor)
    assert max_abs_diff(wave, expected) <= TOL
    assert float(wave.abs().max()) > 1e-3


@pytest.mark.parametrize("version", VERSIONS)
def test_decode_noise_from_generator_matches_official_global_rng(fx, models, version):
    case, model = fx[version], models[version]
    sv = case["sv"][0] if case["sv"] else None
    state = torch.random.get_rng_state()
    wave = model.decode(case["codes"][0], case["phones"], case["refs"][0], noise_scale=0.5, sv_embedding=sv,
                        generator=_gen(case["noise_seed"]))
    assert torch.equal(torch.random.get_rng_state(), state)          # the global RNG is untouched
    assert max_abs_diff(wave, case["wave_noise"][:, 0]) <= TOL
    assert max_abs_diff(wave, case["wave_noiseless"][:, 0]) > 1e-5    # the noise did something
    again = model.decode(case["codes"][0], case["phones"], case["refs"][0], noise_scale=0.5, sv_embedding=sv,
                         generator=_gen(case["noise_seed"]))
    assert torch.equal(wave, again)


@pytest.mark.parametrize("version", VERSIONS)
def test_decode_speed_and_averaged_references_match_official(fx, models, version):
    case, model = fx[version], models[version]
    sv = case["sv"]
    fast = model.decode(case["codes"][0], case["phones"], case["refs"][0], speed=1.3, noise_scale=0.0,
                        sv_embedding=sv[0] if sv else None)
    assert fast.shape == case["wave_speed"][:, 0].shape
    assert max_abs_diff(fast, case["wave_speed"][:, 0]) <= TOL
    both = model.decode(case["codes"][0, 0], case["phones"][0], case["refs"], noise_scale=0.7, sv_embedding=sv,
                        generator=_gen(5))
    assert max_abs_diff(both, case["wave_two_refs"][:, 0]) <= TOL


def test_decode_refuses_missing_inputs(fx, models):
    case = fx["v2ProPlus"]
    with pytest.raises(ValueError, match="speaker-verification"):
        models["v2ProPlus"].decode(case["codes"][0], case["phones"], case["refs"][0], noise_scale=0.0)
    with pytest.raises(ValueError, match="Generator"):
        models["v2"].decode(case["codes"][0], case["phones"], case["refs"][0], noise_scale=0.5)
    with pytest.raises(ValueError, match="2 reference spectrograms but 1"):
        models["v2ProPlus"].decode(case["codes"][0], case["phones"], case["refs"], noise_scale=0.0,
                                   sv_embedding=case["sv"][:1])


def _official_file(tmp_path, fx, version: str, tag: bool, hparams: bool):
    """Write a checkpoint as the official trainer does: half weights without enc_q, config, info."""
    case = fx[version]
    weights = {k: v.half() for k, v in official_weights(case, version).items() if not k.startswith("enc_q.")}
    config = {"data": {"filter_length": 2048, "sampling_rate": 32000}, "model": dict(case["config"])}
    if hparams:   # the official `utils.HParams` object, as pickled by s2_train.py
        utils = types.ModuleType("utils")

        class HParams:
            def __init__(self, **kw):
                for k, v in kw.items():
                    setattr(self, k, HParams(**v) if isinstance(v, dict) else v)

        HParams.__module__, HParams.__qualname__ = "utils", "HParams"
        utils.HParams = HParams
        sys.modules["utils"] = utils
        try:
            config = HParams(**config)
            path = tmp_path / "s2G_test.pth"
            ckpt.write_sovits_file(path, {"weight": weights, "config": config, "info": "8epoch_96iteration"},
                                   version if tag else "v2")
        finally:
            del sys.modules["utils"]
        return path
    path = tmp_path / "s2G_test.pth"
    ckpt.write_sovits_file(path, {"weight": weights, "config": config, "info": "2epoch"}, version if tag else "v2")
    return path


@pytest.mark.parametrize("hparams", [False, True])
def test_load_official_layout_file(tmp_path, fx, models, hparams):
    path = _official_file(tmp_path, fx, "v2ProPlus", tag=True, hparams=hparams)
    assert path.read_bytes()[:2] == b"06"
    loaded = ckpt.load_sovits(path)
    assert loaded.version == SoVITSVersion("v2ProPlus", "v2")
    assert loaded.config.gin_channels == 64 and loaded.config.upsample_rates == (2, 4)
    assert loaded.info.endswith("epoch") or loaded.info.endswith("iteration")
    case = fx["v2ProPlus"]
    wave = loaded.model.decode(case["codes"][0], case["phones"], case["refs"][0], noise_scale=0.0,
                               sv_embedding=case["sv"][0])
    # half-precision storage costs a little accuracy against the float32 official run
    assert max_abs_diff(wave, case["wave_noiseless"][:, 0]) <= 2e-2


def test_untagged_v2_file_loads(tmp_path, fx):
    path = _official_file(tmp_path, fx, "v2", tag=False, hparams=False)
    assert path.read_bytes()[:2] == b"PK"
    assert ckpt.load_sovits(path).version.model_version == "v2"


@pytest.mark.parametrize("head,what", [(b"03", "v3 LoRA"), (b"04", "v4 LoRA"), (b"02", "v3")])
def test_v3_v4_files_are_refused_with_words(tmp_path, head, what):
    path = tmp_path / "s2Gv4.pth"
    path.write_bytes(head + b"\x00" * 100)
    with pytest.raises(ckpt.SoVITSCheckpointError, match=f"GPT-SoVITS {what} SoVITS file.*v2ProPlus"):
        ckpt.load_sovits(path)


def test_v1_weights_and_v3_layout_are_refused(tmp_path):
    for name, weights in (("v1", {"enc_p.text_embedding.weight": torch.zeros(322, 4)}),
                          ("v3", {"cfm.x": torch.zeros(1)})):
        path = tmp_path / f"{name}.pth"
        ckpt.write_sovits_file(path, {"weight": weights, "config": {}}, "v2")
        with pytest.raises(ckpt.SoVITSCheckpointError, match=f"{name} SoVITS file"):
            ckpt.load_sovits(path)


def test_damaged_and_foreign_files_are_refused(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"hello world")
    with pytest.raises(ckpt.SoVITSCheckpointError, match="not a GPT-SoVITS SoVITS checkpoint"):
        ckpt.load_sovits(junk)
    cut = tmp_path / "cut.pth"
    ckpt.write_sovits_file(cut, {"weight": {"a": torch.zeros(1000)}, "config": {}}, "v2")
    cut.write_bytes(cut.read_bytes()[:300])
    with pytest.raises(ckpt.SoVITSCheckpointError, match="not a readable"):
        ckpt.load_sovits(cut)
    with pytest.raises(ckpt.SoVITSCheckpointError, match="Cannot read"):
        ckpt.load_sovits(tmp_path / "absent.pth")


def test_wrong_layout_names_missing_weights(tmp_path):
    path = tmp_path / "other.pth"
    ckpt.write_sovits_file(path, {"weight": {"enc_p.text_embedding.weight": torch.zeros(732, 192)},
                                  "config": {}}, "v2")
    with pytest.raises(ckpt.SoVITSCheckpointError, match="missing weight"):
        ckpt.load_sovits(path)


def test_weight_norm_round_trip():
    model = meta_model(SoVITSConfig(n_layers=2, filter_channels=16, upsample_initial_channel=16,
                                    upsample_rates=(4, 4), upsample_kernel_sizes=(8, 8),
                                    resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3, 5),)))
    plain = randomized_state(model.state_dict(), 3)
    folded = ckpt.fold_weight_norm(ckpt.to_weight_norm_form(plain))
    assert folded.keys() == plain.keys()
    assert max(max_abs_diff(folded[k], plain[k]) for k in plain) <= 1e-6
    with pytest.raises(ckpt.SoVITSCheckpointError, match="without its weight_v"):
        ckpt.fold_weight_norm({"x.weight_g": torch.ones(1)})


def _meta_shapes(state: dict) -> dict:
    return {k: list(v.shape) for k, v in state.items()}


@pytest.mark.parametrize("version", ["v2", "v2Pro", "v2ProPlus"])
def test_full_size_key_layout_matches_official(version):
    official = json.loads((KEYS_DIR / f"keys_sovits_{version}.json").read_text())
    full = SoVITSConfig(**{**SoVITSConfig.for_version(version).__dict__, "with_posterior": True})
    assert _meta_shapes(ckpt.to_weight_norm_form(meta_model(full).state_dict())) == official
    # inference model: the official layout without the posterior encoder (as official saved files)
    inference = ckpt.to_weight_norm_form(meta_model(SoVITSConfig.for_version(version)).state_dict())
    assert _meta_shapes(inference) == {k: v for k, v in official.items() if not k.startswith("enc_q.")}
    fake = {k: torch.empty(shape, device="meta") for k, shape in official.items()}
    assert _meta_shapes(ckpt.fold_weight_norm(fake)) == _meta_shapes(meta_model(full).state_dict())


def test_eres2netv2_full_size_key_layout_matches_official():
    from voxmith.engines.gpt_sovits.speaker_verification import ERes2NetV2

    official = json.loads((KEYS_DIR / "keys_eres2netv2.json").read_text())
    with torch.device("meta"):
        model = ERes2NetV2()
    assert _meta_shapes(model.state_dict()) == official


def test_unbuildable_configs_and_shapes_are_refused(tmp_path, fx):
    case = fx["v2"]
    weights = {k: v for k, v in official_weights(case, "v2").items() if not k.startswith("enc_q.")}
    path = tmp_path / "odd.pth"
    ckpt.write_sovits_file(path, {"weight": weights, "config": {"model": {**case["config"], "resblock": "2"}}}, "v2")
    with pytest.raises(ckpt.SoVITSCheckpointError, match="configuration voxmith cannot build: resblock"):
        ckpt.load_sovits(path)
    config = {"model": {**case["config"], "filter_channels": 80}}     # weights are 64 wide
    ckpt.write_sovits_file(path, {"weight": weights, "config": config}, "v2")
    with pytest.raises(ckpt.SoVITSCheckpointError, match="does not match its own configuration"):
        ckpt.load_sovits(path)


def test_concurrent_decodes_are_reproducible(fx, models):
    """Two requests on one model in two threads, each with its own generator: same audio as alone."""
    from concurrent.futures import ThreadPoolExecutor

    case, model = fx["v2"], models["v2"]

    def run(seed):
        return model.decode(case["codes"][0], case["phones"], case["refs"], noise_scale=0.6, generator=_gen(seed))

    alone = {seed: run(seed) for seed in (1, 2)}
    with ThreadPoolExecutor(2) as pool:
        together = dict(zip((1, 2, 1, 2), pool.map(run, (1, 2, 1, 2))))
    assert all(torch.equal(together[s], alone[s]) for s in (1, 2))
    assert not torch.equal(alone[1], alone[2])
