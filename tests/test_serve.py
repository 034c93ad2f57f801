"""`voxmith serve`: a real server on a random loopback port, spoken to with the `openai` client and
raw HTTP. Protocol-level tests use the paced tone engine (tests/serve_engines.py: instant audio,
with a settable delay per sentence); the end-to-end ones use piper-vc with the demo voice, enrolled
once for the module."""

from __future__ import annotations

import base64
import io
import json
import re
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from tests.serve_engines import PacedToneEngine, running_api, serve_process
from voxmith.cli.main import cli
from voxmith.engines import register_engine
from voxmith.engines.registry import unregister_engine
from voxmith.errors import VoxmithError
from voxmith.serve import ServeConfig
from voxmith.serve.errors import ApiError
from voxmith.serve.openai_api import engine_for_model
from voxmith.serve.server import check_token, parse_listen
from voxmith.studio import Studio

openai = pytest.importorskip("openai")

TONE = PacedToneEngine.name
THREE_SENTENCES = "The first sentence is here. Then a second one comes along. And the third one ends it."


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """A workspace with the demo voice, enrolled for piper-vc, and the paced tone engine registered."""
    register_engine(TONE, PacedToneEngine)
    studio = Studio(tmp_path_factory.mktemp("serve") / "ws", device="cpu")
    studio.import_demo_voice()
    studio.conditioning("demo", studio.engine("piper-vc"))
    yield studio
    unregister_engine(TONE)



def running(studio, webui=None, **config):
    """The API on a free loopback port (two synthesis workers unless `config` says otherwise)."""
    return running_api(studio, ServeConfig(**{"workers": 2, **config}), webui=webui)


@pytest.fixture(scope="module")
def base_url(studio):
    with running(studio) as url:
        yield url


def client(base_url, key="unused"):
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)


def decode(data: bytes, fmt: str, rate_hz: int):
    """(samples as float32, rate) of an encoded response."""
    if fmt == "pcm":
        return np.frombuffer(data, "<i2").astype(np.float32) / 32767, rate_hz
    with av.open(io.BytesIO(data)) as container:
        frames = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
        rate = container.streams.audio[0].codec_context.sample_rate
    return np.concatenate(frames).astype(np.float32), rate


def sidecar_of(studio, response_headers) -> dict:
    path = studio.workspace.results_dir / response_headers["x-voxmith-result"]
    return json.loads(path.with_suffix(".json").read_text())


# --- the OpenAI protocol ----------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_every_format_decodes_to_the_results_duration(studio, base_url, fmt):
    response = client(base_url).audio.speech.create(model=TONE, voice="demo", input=THREE_SENTENCES,
                                                    response_format=fmt)
    expected_type = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac",
                     "wav": "audio/wav", "pcm": "audio/pcm"}[fmt]
    assert response.response.headers["content-type"] == expected_type
    sidecar = sidecar_of(studio, response.response.headers)
    samples, rate = decode(response.content, fmt, int(response.response.headers["x-sample-rate"]))
    # Lossy codecs add priming and padding, at most two codec frames (AAC at 16 kHz: 2 x 64 ms).
    assert samples.size / rate == pytest.approx(sidecar["output"]["duration_s"], abs=0.15)
    assert sidecar["origin"] == {"api": "openai", "model": TONE, "response_format": fmt, "speed": 1.0}


def test_piper_vc_through_the_openai_client(studio, base_url, tmp_path):
    """The default engine end to end: the file the client gets is the result in the workspace."""
    response = client(base_url).audio.speech.create(model="tts-1", voice="demo", response_format="wav",
                                                    input="Good evening, and welcome to the show.",
                                                    extra_body={"seed": 3})
    sidecar = sidecar_of(studio, response.response.headers)
    assert sidecar["engine"]["name"] == "piper-vc" and sidecar["seed"] == 3
    received, rate = sf.read(io.BytesIO(response.content), dtype="int16")
    saved, _ = sf.read(studio.workspace.results_dir / response.response.headers["x-voxmith-result"], dtype="int16")
    assert rate == 22050 and received.shape == saved.shape
    # libsndfile scales float to 16 bit its own way (it differs between versions): two steps apart at most.
    assert np.max(np.abs(received.astype(int) - saved)) <= 2


def test_streaming_sends_the_first_sentence_before_the_rest_is_made(base_url):
    """piper-vc, three sentences: the first bytes arrive well before the whole synthesis ends."""
    started = time.perf_counter()
    first_at, chunks = None, []
    with client(base_url).audio.speech.with_streaming_response.create(
            model="piper-vc", voice="demo", input=THREE_SENTENCES, response_format="pcm") as response:
        for chunk in response.iter_bytes():
            first_at = first_at or time.perf_counter() - started
            chunks.append(chunk)
    total = time.perf_counter() - started
    assert len(chunks) >= 2 and first_at < 0.8 * total  # later sentences were still being made


def test_streaming_is_sentence_by_sentence(base_url):
    """Paced engine, 0.4 s per sentence: the first audio comes after about one sentence's time."""
    PacedToneEngine.delay_s = 0.4
    text = "One two three. Four five six. Seven eight nine. Ten eleven twelve."
    started = time.perf_counter()
    arrivals = []
    with httpx.stream("POST", f"{base_url}/v1/audio/speech", timeout=30,
                      json={"model": TONE, "voice": "demo", "input": text, "response_format": "wav"}) as response:
        assert response.status_code == 200
        for _ in response.iter_bytes():
            arrivals.append(time.perf_counter() - started)
    assert arrivals[0] < 1.2 and arrivals[-1] > 1.5  # 4 x 0.4 s of synthesis in all


def test_sse_events_carry_the_audio(studio, base_url):
    body = {"model": TONE, "voice": "demo", "input": THREE_SENTENCES, "response_format": "wav",
            "stream_format": "sse"}
    response = httpx.post(f"{base_url}/v1/audio/speech", json=body, timeout=30)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[len("data: "):]) for line in response.text.splitlines() if line.startswith("data: ")]
    assert [e["type"] for e in events] == ["speech.audio.delta"] * (len(events) - 1) + ["speech.audio.done"]
    audio = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    samples, rate = decode(audio, "wav", 0)
    assert samples.size / rate == pytest.approx(sidecar_of(studio, response.headers)["output"]["duration_s"],
                                                abs=1e-3)
    assert events[-1]["usage"]["output_tokens"] == len(audio)


def test_models_and_voices(base_url):
    models = [m.id for m in client(base_url).models.list()]
    assert {"piper-vc", "tts-1", TONE} <= set(models)
    voices = httpx.get(f"{base_url}/v1/audio/voices").json()
    assert "demo" in voices["voices"] and {"id": "demo", "name": "demo", "object": "voice"} in voices["data"]


def test_speed_and_instructions(studio, base_url):
    response = client(base_url).audio.speech.create(model="piper-vc", voice="demo", input="Slowly now.",
                                                    speed=0.8, instructions="calm", response_format="flac")
    sidecar = sidecar_of(studio, response.response.headers)
    assert sidecar["settings"]["length_scale"] == 1.25
    assert sidecar["origin"]["instructions"] == "calm" and sidecar["origin"]["speed"] == 0.8


@pytest.mark.parametrize("body,status,words", [
    ({"voice": "nobody"}, 400, ["Unknown voice 'nobody'", "demo"]),
    ({"voice": "Demo"}, 400, ["Unknown voice 'Demo'", "Did you mean 'demo'?"]),
    ({"input": "x" * 4097}, 400, ["4097 characters", "4096"]),
    ({"input": "   "}, 400, ["input has no words"]),
    ({"input": "\u0000 \u200b ..."}, 400, ["input has no words"]),  # was the CLI's "--text-file" advice
    ({"response_format": "wma"}, 400, ["response_format"]),
    ({"speed": 5}, 400, ["speed"]),
    ({"speed": 4.0, "model": "piper-vc"}, 400, ["speed 4.0", "piper-vc"]),
    ({"speed": 2.0, "model": TONE}, 400, ["cannot change its speaking speed"]),
    ({"voice": "../etc"}, 400, ["voice name"]),
    ({"model": "piper-cv"}, 400, ["Unknown model 'piper-cv'", "piper-vc", "tts-1"]),
])
def test_errors_in_openais_shape(base_url, body, status, words):
    request = {"model": TONE, "voice": "demo", "input": "Hello there.", **body}
    response = httpx.post(f"{base_url}/v1/audio/speech", json=request, timeout=30)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    for word in words:
        assert word in error["message"]
    with pytest.raises(openai.BadRequestError, match=words[0].split("'")[0]):
        client(base_url).audio.speech.create(**request)


def test_openai_model_names_map_to_the_default_engine_and_typos_are_refused():
    for name in ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "tts-1-1106", "tts-1-hd-1106",
                 "gpt-4o-mini-tts-2025-03-20", "TTS-1", "", " "):  # some clients send an empty model
        assert engine_for_model(name) == "piper-vc", repr(name)
    assert engine_for_model("tortoise") == "tortoise"
    # Engine names in any case, as OpenAI's (before: "TTS-1" was taken, "Piper-VC" refused).
    assert engine_for_model("Piper-VC") == "piper-vc" and engine_for_model("TORTOISE ") == "tortoise"
    for typo in ("tts-2", "piper_vc", "tts-1-hdd", "Piper-CV", "gpt-4o"):
        with pytest.raises(ApiError) as refused:
            engine_for_model(typo)
        assert refused.value.status == 400 and refused.value.param == "model"
        assert "piper-vc" in refused.value.message and "tts-1" in refused.value.message


def test_malformed_json_and_unknown_route(base_url):
    response = httpx.post(f"{base_url}/v1/audio/speech", content=b"{not json", timeout=10,
                          headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]
    assert response.json()["error"]["param"] is None  # was "0", and the message "0: JSON decode error"
    for content, kind in ((b"[1, 2]", "application/json"), (b"model=tts-1&voice=demo&input=hi",
                                                             "application/x-www-form-urlencoded")):
        wrong = httpx.post(f"{base_url}/v1/audio/speech", content=content, timeout=10, headers={"content-type": kind})
        assert wrong.status_code == 400 and "must be a JSON object" in wrong.json()["error"]["message"]
    missing = httpx.get(f"{base_url}/v1/nothing-here")
    assert missing.status_code == 404 and "/docs" in missing.json()["error"]["message"]


# --- load: concurrency, queueing, cancellation, draining ---------------------------------------

def test_concurrent_requests_equal_their_solo_outputs(base_url):
    texts = ["The cat sat on the mat.", "Rain fell all night long.", "We met at noon by the old bridge."]

    def fetch(text):
        return client(base_url).audio.speech.create(model="piper-vc", voice="demo", input=text,
                                                    response_format="pcm", extra_body={"seed": 7}).content

    solo = [fetch(t) for t in texts]
    with ThreadPoolExecutor(len(texts)) as pool:
        together = list(pool.map(fetch, texts))
    assert together == solo


def test_concurrent_ranked_requests_of_two_engines_equal_their_solo_results(studio, base_url):
    """No per-engine lock: ranked requests (Whisper, the speaker encoder and DistillMOS shared by
    the threads) and requests of two engines run at once, each exactly as it runs alone."""
    bodies = [{"text": "Ranked takes at the same time.", "voice": "demo", "engine": TONE, "seed": 5,
               "candidates": 2, "rank": True},
              {"text": "Another engine alongside.", "voice": "demo", "engine": "piper-vc", "seed": 6, "rank": True},
              {"text": "And one more of the first.", "voice": "demo", "engine": TONE, "seed": 7, "candidates": 2,
               "rank": True, "settings": {"pitch_scale": 1.2}}]

    def speak(body):
        made = httpx.post(f"{base_url}/voxmith/speak", json=body, timeout=600).json()
        audio = httpx.get(f"{base_url}{made['audio_url']}").content[44:]
        return audio, [[t["scores"] for t in s["takes"]] for s in made["sidecar"]["sentences"]]

    solo = [speak(body) for body in bodies]
    with ThreadPoolExecutor(len(bodies)) as pool:
        together = list(pool.map(speak, bodies))
    assert together == solo


def test_full_queue_answers_503_with_retry_after(studio):
    PacedToneEngine.delay_s = 0.5
    with running(studio, workers=1, max_waiting=0) as url:
        body = {"model": TONE, "voice": "demo", "input": "One. Two. Three. Four.", "response_format": "pcm"}
        with httpx.stream("POST", f"{url}/v1/audio/speech", json=body, timeout=30) as busy:
            assert busy.status_code == 200
            refused = httpx.post(f"{url}/v1/audio/speech", json=body, timeout=30)
            assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
            assert refused.json()["error"]["code"] == "server_busy"
            busy.read()
        assert httpx.post(f"{url}/v1/audio/speech", json=body, timeout=30).status_code == 200


def test_client_that_goes_away_stops_its_synthesis(studio, base_url):
    PacedToneEngine.delay_s = 0.3
    PacedToneEngine.calls.clear()
    text = " ".join(f"Sentence number {n} is here." for n in range(1, 16))
    with httpx.stream("POST", f"{base_url}/v1/audio/speech", timeout=30,
                      json={"model": TONE, "voice": "demo", "input": text, "response_format": "pcm"}) as response:
        result = response.headers["x-voxmith-result"]
        next(response.iter_bytes())
    time.sleep(2.0)  # long enough for all 15 sentences, had it gone on
    assert len(PacedToneEngine.calls) < 8
    folder = studio.workspace.results_dir / Path(result).parent
    assert not (folder / result).with_suffix(".json").exists() and not (folder / Path(result).name).exists()


def test_client_that_leaves_the_queue_is_never_synthesised(studio):
    PacedToneEngine.delay_s = 0.3
    PacedToneEngine.calls.clear()
    with running(studio, workers=1) as url:
        body = {"model": TONE, "voice": "demo", "input": "One. Two. Three. Four.", "response_format": "pcm"}
        with httpx.stream("POST", f"{url}/v1/audio/speech", json=body, timeout=30) as busy:
            with pytest.raises(httpx.ReadTimeout):  # waits behind `busy`, gives up, hangs up
                httpx.post(f"{url}/v1/audio/speech", json={**body, "input": "Never spoken at all."},
                           timeout=httpx.Timeout(10, read=0.3))
            busy.read()
        time.sleep(0.5)
    assert len(PacedToneEngine.calls) == 4 and not any("never" in c.lower() for c in PacedToneEngine.calls)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_lets_the_request_in_progress_finish(tmp_path, stop):
    # Ctrl-C: before, the process then tore down every model a request had loaded (Python's own
    # exit: about a second of CPU after a synthesis, ~10 s on a busy machine); now it leaves at once.
    home = tmp_path / "ws"
    Studio(home, device="cpu").import_demo_voice()
    port = _free_port()
    # started as a shell starts a background job: SIGINT ignored (the server must still stop on it)
    server = serve_process(home, port, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        url = f"http://127.0.0.1:{port}"
        body = {"model": TONE, "voice": "demo", "input": "One. Two. Three. Four. Five.", "response_format": "wav"}
        # generous: a fresh server embeds the voice's clips first (slow on a busy machine)
        with httpx.stream("POST", f"{url}/v1/audio/speech", json=body, timeout=180) as response:
            chunks = response.iter_bytes()
            data = next(chunks)
            server.send_signal(stop)
            data += b"".join(chunks)
        samples, rate = sf.read(io.BytesIO(data))
        assert samples.size / rate > 5 * 0.2  # all five one-word sentences (0.2 s each), not a cut-off stream
        # uvicorn re-raises the signal it caught once it has shut down cleanly; before, SIGTERM then
        # met Python's default handler: killed outright (-15), no exit handlers (the web UI's upload
        # folder stayed behind)
        assert server.wait(30) == (143 if stop == signal.SIGTERM else 130)
        assert (home / "results" / response.headers["x-voxmith-result"]).with_suffix(".json").exists()
        said = server.stdout.read().decode()
        assert "exit handlers ran" in said and "module teardown" not in said, said
    finally:
        if server.poll() is None:
            server.kill()


# --- safety ------------------------------------------------------------------------------------

def test_error_messages_name_the_servers_folders_without_spelling_them_out(tmp_path, monkeypatch):
    """A clip or sidecar problem's message names a file by its path; over HTTP the workspace and
    the temporary folder are named, not spelt out (a client learns nothing of the machine's layout)."""
    from types import SimpleNamespace

    from voxmith.serve import errors

    home = tmp_path / "home" / "u" / "voxmith"
    monkeypatch.setattr(errors.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(studio=SimpleNamespace(
        workspace=SimpleNamespace(home=home)))))
    said = errors.without_paths(request, f"Voice 'a': '{home}/voices/a/x.wav' is damaged; "
                                         f"'{tmp_path}/tmp/up-1/clip.wav' too")
    assert said == "Voice 'a': '<workspace>/voices/a/x.wav' is damaged; '<temp>/up-1/clip.wav' too"
    bare = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace()))  # no studio: the temp folder only
    assert errors.without_paths(bare, "nothing to hide") == "nothing to hide"


def test_token_is_required_when_set(studio):
    with running(studio, token="s3cret-token") as url:
        body = {"model": TONE, "voice": "demo", "input": "Hello.", "response_format": "wav"}
        assert httpx.post(f"{url}/v1/audio/speech", json=body).status_code == 401
        wrong = httpx.post(f"{url}/v1/audio/speech", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            client(url, key="wrong").models.list()
        assert client(url, key="s3cret-token").audio.speech.create(**body).content[:4] == b"RIFF"
        assert httpx.get(f"{url}/openapi.json").status_code == 200  # the docs stay readable


def test_webui_mounts_behind_the_token(studio):
    import gradio as gr

    with gr.Blocks() as blocks:
        gr.Markdown("a page")
    with running(studio, webui=blocks, token="s3cret-token") as url:
        assert httpx.get(f"{url}/ui/config").status_code == 401  # Gradio asks for the token as password
        login = httpx.post(f"{url}/ui/login", data={"username": "me", "password": "s3cret-token"})
        assert login.status_code == 200
        assert httpx.get(f"{url}/ui/config", cookies=login.cookies).status_code == 200
        assert httpx.get(f"{url}/v1/models").status_code == 401  # the API still wants the bearer token


def test_listening_beyond_loopback_needs_a_long_enough_token(monkeypatch):
    monkeypatch.delenv("VOXMITH_SERVE_TOKEN", raising=False)
    with pytest.raises(VoxmithError, match="--token"):
        check_token(parse_listen("0.0.0.0:8000"), None)
    with pytest.raises(VoxmithError, match="too short"):
        check_token(parse_listen("0.0.0.0"), "short")
    assert check_token(parse_listen(None), None) is None
    assert (parse_listen("[::1]").port, parse_listen(":9000").host) == (8000, "127.0.0.1")
    result = CliRunner().invoke(cli, ["serve", "--listen", "192.168.1.2:8000"])
    assert result.exit_code == 1 and "--token" in result.output


def test_foreign_host_and_cross_site_requests_are_refused(base_url):
    foreign = httpx.get(f"{base_url}/v1/models", headers={"Host": "evil.example"})
    assert foreign.status_code == 403  # in the API's error shape, like its other errors
    error = foreign.json()["error"]
    assert error["type"] == "permission_error" and "evil.example" in error["message"]
    assert httpx.get(f"{base_url}/v1/models", headers={"Host": "localhost:1234"}).status_code == 200
    body = {"model": TONE, "voice": "demo", "input": "Hello."}
    cross = httpx.post(f"{base_url}/v1/audio/speech", json=body, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403 and cross.json()["error"]["code"] == "forbidden_host_or_origin"


def test_body_size_limits(studio):
    with running(studio, max_body_bytes=10_000, max_upload_bytes=50_000) as url:
        big = {"model": TONE, "voice": "demo", "input": "x" * 20_000}
        declared = httpx.post(f"{url}/v1/audio/speech", json=big)
        assert declared.status_code == 413 and "limit" in declared.json()["error"]["message"]

        def chunked():  # no Content-Length: the limit is enforced while reading
            yield b'{"model": "tone", "voice": "demo", "input": "'
            for _ in range(30):
                yield b"x" * 1000
            yield b'"}'
        streamed = httpx.post(f"{url}/v1/audio/speech", content=chunked(),
                              headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        upload = httpx.post(f"{url}/voxmith/voices/huge", files={"files": ("a.wav", b"\0" * 60_000)})
        assert upload.status_code == 413


# --- voxmith's own endpoints -----------------------------------------------------------------

def test_voices_upload_list_and_show(studio, base_url, demo_files, tmp_path):
    files = [("files", (p.name, p.read_bytes())) for p in demo_files]
    created = httpx.post(f"{base_url}/voxmith/voices/uploaded", files=files, timeout=60)
    assert created.status_code == 200 and created.json()["clips"] == [p.name for p in demo_files]
    again = httpx.post(f"{base_url}/voxmith/voices/uploaded", files=files, timeout=60)
    assert again.status_code == 400 and "already exists" in again.json()["error"]["message"]
    broken = httpx.post(f"{base_url}/voxmith/voices/broken", files={"files": ("notes.wav", b"not audio" * 100)})
    message = broken.json()["error"]["message"]
    assert broken.status_code == 400 and "notes.wav" in message and "/tmp" not in message
    assert not studio.voices.exists("broken")
    bad_name = httpx.post(f"{base_url}/voxmith/voices/.hidden", files=files)
    assert bad_name.status_code == 400 and "must not start with '.'" in bad_name.json()["error"]["message"]
    names = [v["name"] for v in httpx.get(f"{base_url}/voxmith/voices").json()["voices"]]
    assert {"demo", "uploaded"} <= set(names)
    shown = httpx.get(f"{base_url}/voxmith/voices/uploaded", params={"analyse": "true"}, timeout=120).json()
    assert len(shown["report"]["clips"]) == len(demo_files)
    assert httpx.get(f"{base_url}/voxmith/voices/nobody").status_code == 404


def test_speak_results_and_reproduce(studio, base_url):
    body = {"text": "Every option goes through. Twice over.", "voice": "demo", "engine": TONE, "seed": 12,
            "candidates": 2, "settings": {"pitch_scale": 1.5}, "rank": False, "finetune": "stock"}
    made = httpx.post(f"{base_url}/voxmith/speak", json=body, timeout=60).json()
    sidecar = made["sidecar"]
    assert (sidecar["seed"], sidecar["candidates"], sidecar["settings"]["pitch_scale"]) == (12, 2, 1.5)
    assert sidecar["origin"] == {"api": "voxmith"}
    audio = httpx.get(f"{base_url}{made['audio_url']}")
    assert audio.content == (studio.workspace.results_dir / made["id"]).read_bytes()
    assert httpx.get(f"{base_url}{made['sidecar_url']}").json()["seed"] == 12
    take = sidecar["sentences"][0]["takes"][1]["file"]
    assert httpx.get(f"{base_url}/voxmith/results/{Path(made['id']).parent}/{take}").status_code == 200
    listed = httpx.get(f"{base_url}/voxmith/results", params={"voice": "demo"}).json()["results"]
    assert made["id"] in [r["id"] for r in listed]

    again = httpx.post(f"{base_url}/voxmith/reproduce", json={"result": made["id"]}, timeout=60).json()
    assert again["id"] != made["id"]
    assert httpx.get(f"{base_url}{again['audio_url']}").content[44:] == audio.content[44:]

    bad = httpx.post(f"{base_url}/voxmith/speak", json={**body, "settings": {"nonsense": 1}}).json()
    assert "Unknown setting(s) nonsense" in bad["error"]["message"]


@pytest.mark.parametrize("rid", ["%2e%2e/voices/demo/voice.json", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd",
                                 "demo/missing.wav"])
def test_results_never_leave_the_results_folder(base_url, rid):
    response = httpx.get(f"{base_url}/voxmith/results/{rid}")
    assert response.status_code == 404 and "No result" in response.json()["error"]["message"]
    reproduce = httpx.post(f"{base_url}/voxmith/reproduce", json={"result": "../voices/demo/voice.json"})
    assert reproduce.status_code == 404


def short_copy(clip: Path, folder: Path, seconds: float = 4.0) -> Path:
    """The first `seconds` of `clip` under its own name in `folder`: the upload tests are about
    the HTTP side, and converting 4 s costs less than converting the clip's 10."""
    samples, rate = sf.read(clip, dtype="float32")
    out = folder / clip.name
    sf.write(out, samples[: int(seconds * rate)], rate)
    return out


def test_convert_an_uploaded_recording(studio, base_url, demo_files, tmp_path):
    recording = short_copy(demo_files[0], tmp_path)
    form = {"voice": "demo", "settings": json.dumps({"f0_scale": 1.1})}
    made = httpx.post(f"{base_url}/voxmith/convert", data=form,
                      files={"recording": (recording.name, recording.read_bytes())}, timeout=300)
    assert made.status_code == 200, made.text
    result = made.json()
    sidecar = result["sidecar"]
    assert sidecar["settings"]["f0_scale"] == 1.1 and sidecar["origin"]["upload"] == recording.name
    kept = Path(sidecar["input"]["file"])  # uploads/<content hash>/<the client's file name>
    assert kept.parent.parent == studio.workspace.uploads_dir and kept.name == recording.name
    assert kept.read_bytes() == recording.read_bytes()
    assert re.fullmatch(r"\d{8}-\d{6}-lj-1-converted\.wav", Path(result["id"]).name)  # the client's name, no hash
    audio, rate = decode(httpx.get(f"{base_url}{result['audio_url']}").content, "wav", 0)
    assert abs(len(audio) / rate - result["duration_s"]) < 0.05 and np.abs(audio).max() > 0.01
    assert result["id"] in [r["id"] for r in httpx.get(f"{base_url}/voxmith/results").json()["results"]]
    again = httpx.post(f"{base_url}/voxmith/reproduce", json={"result": result["id"]}, timeout=300).json()
    assert httpx.get(f"{base_url}{again['audio_url']}").content[44:] == \
        httpx.get(f"{base_url}{result['audio_url']}").content[44:]

    def post(name, content, **fields):
        return httpx.post(f"{base_url}/voxmith/convert", data={"voice": "demo", **fields},
                          files={"recording": (name, content)}, timeout=60)
    uploads_before = sorted(studio.workspace.uploads_dir.iterdir())
    broken = post("notes.wav", b"not audio" * 100)
    message = broken.json()["error"]["message"]
    assert broken.status_code == 400 and "notes.wav" in message and str(studio.workspace.home) not in message
    assert post("a.wav", b"").status_code == 400
    assert post("a.wav", recording.read_bytes(), settings="[1]").status_code == 400
    assert "nobody" in post("a.wav", recording.read_bytes(), voice="nobody").json()["error"]["message"]
    assert sorted(studio.workspace.uploads_dir.iterdir()) == uploads_before  # failures keep nothing new


def test_identical_uploads_where_one_fails_leave_the_other_its_recording(studio, demo_files, tmp_path, monkeypatch):
    """Two requests upload the same recording (one kept file, named by its content) while the only
    worker is busy; the one that stored it fails (no such voice) before the other converts it: the
    other still converts it, and the upload stays with its result."""
    samples, rate = sf.read(demo_files[1], dtype="float32")
    sf.write(tmp_path / "talk.wav", 0.9 * samples[:4 * rate], rate)  # content no other test uploads (4 s)
    content = (tmp_path / "talk.wav").read_bytes()
    gate, speak = threading.Event(), PacedToneEngine.synthesize
    monkeypatch.setattr(PacedToneEngine, "synthesize", lambda *a, **k: gate.wait(120) and speak(*a, **k))

    def until(condition):
        deadline = time.monotonic() + 120
        while not condition():
            assert time.monotonic() < deadline
            time.sleep(0.05)

    with running(studio, workers=1) as url, ThreadPoolExecutor(3) as requests:
        def active():
            return httpx.get(f"{url}/health").json()["active"]

        def convert(voice):
            return httpx.post(f"{url}/voxmith/convert", data={"voice": voice}, files={"recording": ("talk.wav", content)},
                              timeout=300)
        busy = requests.submit(httpx.post, f"{url}/voxmith/speak", timeout=300,
                               json={"text": "Hold the worker.", "voice": "demo", "engine": TONE, "rank": False})
        until(lambda: active() == 1)
        failing = requests.submit(convert, "nobody")
        until(lambda: active() == 2)  # its upload is stored: the other finds it there
        converting = requests.submit(convert, "demo")
        until(lambda: active() == 3)
        gate.set()
        assert busy.result().status_code == 200
        assert failing.result().status_code == 400 and "nobody" in failing.result().json()["error"]["message"]
        made = converting.result()
    assert made.status_code == 200, made.text
    kept = Path(made.json()["sidecar"]["input"]["file"])
    assert kept.read_bytes() == content and kept.name == "talk.wav"
    assert re.fullmatch(r"\d{8}-\d{6}-talk-converted\.wav", Path(made.json()["id"]).name)
