"""gpt-sovits pretrained files: finding them (workspace, GPT-SoVITS installs, Hugging Face cache) and
`voxmith models download gpt-sovits [--version ...]` against a local HTTP server."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from tests.download_server import hf_cache_file
from voxmith.engines.gpt_sovits import weights
from voxmith.engines.gpt_sovits.engine import GptSovitsEngine
from voxmith.engines.gpt_sovits.pos_tags import NltkTagger, load_tagger

V2 = weights.version_files("v2")
PRO_PLUS = weights.version_files("v2ProPlus")


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    home = tmp_path / "userhome"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("VOXMITH_GPT_SOVITS_MODELS", "VOXMITH_GPT_SOVITS_BASE_URL", "GPT_SOVITS_HOME", "HF_HOME",
                "HF_HUB_CACHE", "XDG_CACHE_HOME", "HF_ENDPOINT", "HF_TOKEN", "VOXMITH_HOME", "NLTK_DATA"):
        monkeypatch.delenv(var, raising=False)
    return home


def _put(folder, paths, data=b"w"):
    for path in paths:
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)


def test_versions_need_the_official_files(monkeypatch):
    monkeypatch.setattr(weights, "chinese_available", lambda: False)
    assert V2 == ("chinese-hubert-base/config.json", "chinese-hubert-base/pytorch_model.bin",
                  "gsv-v2final-pretrained/s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt",
                  "gsv-v2final-pretrained/s2G2333k.pth")
    assert set(PRO_PLUS) - set(V2) == {"s1v3.ckpt", "v2Pro/s2Gv2ProPlus.pth", "sv/pretrained_eres2netv2w24s4ep4.ckpt"}
    files = GptSovitsEngine.model_files(None)
    assert [f.name for f in files if f.required] == list(V2) + [weights.NLTK_TAGGER]
    monkeypatch.setattr(weights, "chinese_available", lambda: True)  # with voxmith[zh]: Chinese files too
    chinese = [f.name for f in GptSovitsEngine.model_files(None) if f.required and f.name not in V2]
    assert chinese == [f"{weights.CHINESE_BERT}/{name}" for name in ("config.json", "tokenizer.json",
                                                                      "pytorch_model.bin")] + \
        [weights.G2PW_ZIP, weights.NLTK_TAGGER]
    assert weights.file_url(V2[2]) == ("https://huggingface.co/lj1995/GPT-SoVITS/resolve/main/"
                                       "gsv-v2final-pretrained/s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt")


def test_existing_installs_and_caches_are_found(clean_env, tmp_path, monkeypatch):
    install = clean_env / "GPT-SoVITS-v2pro-20250604"
    _put(install / "GPT_SoVITS" / "pretrained_models", V2)
    hub = clean_env / ".cache" / "huggingface" / "hub" / weights.HF_CACHE_FOLDER
    hub_file = hf_cache_file(hub, "abc", "s1v3.ckpt")
    workspace = tmp_path / "ws" / "models"
    _put(workspace / "gpt-sovits", V2[:1])

    found = weights.find_files(V2 + ("s1v3.ckpt",), None, workspace)
    assert found[V2[0]].source == "workspace"
    assert found[V2[3]].source == "GPT-SoVITS install"
    assert found[V2[3]].path == install / "GPT_SoVITS" / "pretrained_models" / V2[3]
    assert found["s1v3.ckpt"] == weights.Location(hub_file, "Hugging Face cache")
    assert weights.require_version("v2", None, workspace)[V2[3]] == found[V2[3]].path
    # A checkout's root given as --models-dir works too.
    assert weights.find_file(V2[1], install, workspace).source == "--models-dir"
    monkeypatch.setenv("GPT_SOVITS_HOME", str(tmp_path / "elsewhere"))
    _put(tmp_path / "elsewhere" / "GPT_SoVITS" / "pretrained_models", ["v2Pro/s2Gv2ProPlus.pth"])
    assert weights.find_file("v2Pro/s2Gv2ProPlus.pth").source == "GPT-SoVITS install"


@pytest.fixture
def voxmith(clean_env, tmp_path, server, monkeypatch):
    from click.testing import CliRunner

    from voxmith.cli.main import cli

    monkeypatch.setenv("VOXMITH_GPT_SOVITS_BASE_URL", f"{server.url}/files")
    workspace = tmp_path / "workspace"

    def invoke(*args):
        return CliRunner().invoke(cli, ["--home", str(workspace), "-q", *args])

    invoke.models = workspace / "models" / "gpt-sovits"
    return invoke


def _tagger_zip() -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for part, value in (("weights", {"bias": {"NN": 1.0}}), ("tagdict", {"refuse": "VBP"}),
                            ("classes", ["NN", "VBP"])):
            zipped.writestr(f"averaged_perceptron_tagger_eng/averaged_perceptron_tagger_eng.{part}.json",
                            json.dumps(value))
    return archive.getvalue()


def _serve(server, paths):
    server.files["averaged_perceptron_tagger_eng.zip"] = _tagger_zip()
    payloads = {}
    for index, path in enumerate(paths):
        payloads[path] = f"{path}:{index}".encode() * 100
        server.files[path.rsplit("/", 1)[-1]] = payloads[path]  # the test server serves by file name
    return payloads


def test_cli_downloads_a_version_then_another_reusing_the_shared_files(voxmith, server, monkeypatch):
    monkeypatch.setattr(weights, "chinese_available", lambda: False)  # no Chinese files (test_gpt_sovits_chinese)
    payloads = _serve(server, set(V2) | set(PRO_PLUS))
    result = voxmith("models", "download", "gpt-sovits")
    assert result.exit_code == 0, result.output
    for path in V2:
        assert (voxmith.models / path).read_bytes() == payloads[path]
    requests = len(server.requests)
    assert requests == len(V2) + 1  # and NLTK's tagger
    assert (voxmith.models / weights.TAGGER_FOLDER / "averaged_perceptron_tagger_eng.weights.json").is_file()

    result = voxmith("models", "download", "gpt-sovits", "--version", "v2ProPlus")
    assert result.exit_code == 0, result.output
    assert "already present" in result.output  # the HuBERT files
    assert len(server.requests) - requests == 3
    assert (voxmith.models / "v2Pro" / "s2Gv2ProPlus.pth").read_bytes() == payloads["v2Pro/s2Gv2ProPlus.pth"]

    listing = voxmith("models", "list", "gpt-sovits")
    assert listing.exit_code == 0 and "All needed files are present." in listing.output

    bad = voxmith("models", "download", "gpt-sovits", "--version", "v7")
    assert bad.exit_code != 0 and "v2ProPlus" in bad.output
    both = voxmith("models", "download", "gpt-sovits", "--version", "v2", "--all")
    assert both.exit_code != 0 and "only one of" in both.output


def test_cli_fetches_and_unpacks_the_nltk_tagger(voxmith, server):
    server.files["averaged_perceptron_tagger_eng.zip"] = _tagger_zip()
    result = voxmith("models", "download", "gpt-sovits", "--only", weights.NLTK_TAGGER)
    assert result.exit_code == 0, result.output
    folder = voxmith.models / weights.TAGGER_FOLDER
    assert (folder / "averaged_perceptron_tagger_eng.tagdict.json").is_file()
    assert not (voxmith.models / weights.NLTK_TAGGER).exists()  # the zip is removed once unpacked
    tagger = load_tagger(weights.tagger_dirs(None, voxmith.models.parent))
    assert isinstance(tagger, NltkTagger) and tagger.tag(["refuse"]) == [("refuse", "VBP")]
    again = voxmith("models", "download", "gpt-sovits", "--only", weights.NLTK_TAGGER)
    assert again.exit_code == 0 and "already present" in again.output


def test_offline_download_is_one_clear_error(voxmith, closed_port, monkeypatch):
    monkeypatch.setenv("VOXMITH_GPT_SOVITS_BASE_URL", f"http://127.0.0.1:{closed_port}")
    result = voxmith("models", "download", "gpt-sovits")
    assert result.exit_code == 1
    assert "you seem to be offline" in result.output and "GPT_SOVITS_HOME" in result.output
    assert "Traceback" not in result.output
