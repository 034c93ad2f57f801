"""`voxmith serve` given what a careless or hostile client sends: odd result ids, unknown voices,
uploads without names. Every answer is a 4xx in the API's error shape, never a 500. The instant
tone engine (tests/tone_engine.py) stands in for synthesis: nothing here is about the audio."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from tests.serve_engines import running_api
from voxmith.paths import sanitize_filename
from voxmith.serve import ServeConfig
from voxmith.serve.uploads import upload_name
from voxmith.studio import Studio
from voxmith.studio.speech import SpeakRequest


@pytest.fixture
def served(tmp_path, tone_engine, demo_files):
    """(base URL, studio, id of one spoken result) of a server over a workspace with voice 'demo'."""
    studio = Studio(tmp_path / "ws", device="cpu")
    studio.voices.add("demo", demo_files)
    made = studio.speak(SpeakRequest("Hello there.", voice="demo", engine="tone", seed=1, rank=False))
    rid = made.path.relative_to(studio.workspace.results_dir).as_posix()
    with running_api(studio, ServeConfig(workers=1)) as url:
        yield url, studio, rid


@pytest.mark.parametrize("rid", ["", ".", "demo/a\x00b.wav", "demo/" + "x" * 300 + ".wav"])
def test_result_ids_that_name_no_file_are_404_not_500(served, rid):
    url, _studio, made = served
    reproduce = httpx.post(f"{url}/voxmith/reproduce", json={"result": rid}, timeout=30)
    assert reproduce.status_code == 404, reproduce.text
    assert "No result" in reproduce.json()["error"]["message"]
    if rid.strip("."):  # ('' and '.' in a URL are the results list itself)
        fetched = httpx.get(f"{url}/voxmith/results/{rid.replace(chr(0), '%00')}", timeout=30)
        assert fetched.status_code == 404, fetched.text
    # a real id still works, its sidecar named by the audio's id
    assert httpx.post(f"{url}/voxmith/reproduce", json={"result": made}, timeout=30).status_code == 200


def test_an_unknown_voice_is_404_naming_the_voices(served):
    url, _studio, _rid = served
    response = httpx.get(f"{url}/voxmith/voices/dmeo")
    assert response.status_code == 404
    message = response.json()["error"]["message"]
    assert "'dmeo'" in message and "'demo'" in message and "voxmith voices add" not in message
    assert httpx.get(f"{url}/voxmith/voices/a%00b").status_code == 400  # malformed, not unknown


def test_a_voice_name_in_either_unicode_form_is_one_voice(served, demo_files):
    """A client on a Mac sends 'Zoë' as 'e' + a combining diaeresis (NFD), another as one character
    (NFC): one voice, listed under one spelling; an invisible character is refused by name."""
    url, _studio, _rid = served
    nfc, nfd = "Zo\u00eb", "Zoe\u0308"
    with open(demo_files[0], "rb") as clip:
        made = httpx.post(f"{url}/voxmith/voices/{quote(nfd)}", files={"files": ("take.flac", clip)})
    assert made.status_code == 200 and made.json()["name"] == nfc, made.text
    shown = httpx.get(f"{url}/voxmith/voices/{quote(nfc)}")
    assert shown.status_code == 200 and shown.json()["clips"] == made.json()["clips"]
    with open(demo_files[1], "rb") as clip:
        again = httpx.post(f"{url}/voxmith/voices/{quote(nfc)}", files={"files": ("take.flac", clip)})
    assert again.status_code == 400 and "already exists" in again.json()["error"]["message"]
    assert sorted(httpx.get(f"{url}/v1/audio/voices").json()["voices"]) == sorted(["demo", nfc])
    hidden = httpx.get(f"{url}/voxmith/voices/{quote('de' + chr(0x200B) + 'mo')}")
    assert hidden.status_code == 400 and "U+200B (ZERO WIDTH SPACE)" in hidden.json()["error"]["message"]


def test_adding_a_voice_that_exists_names_this_endpoints_options(served, demo_files):
    url, _studio, _rid = served
    with open(demo_files[0], "rb") as clip:
        response = httpx.post(f"{url}/voxmith/voices/demo", files={"files": ("take.flac", clip)})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "append=true" in message and "replace=true" in message and "--force" not in message


def test_a_text_longer_than_one_speak_request_takes_is_sent_to_books(served):
    """The limit the web UI's Generate tab has too; the message says how long the text is and where
    a longer one goes (before: pydantic's 'String should have at most 100000 characters')."""
    from voxmith.studio.speech import MAX_SPEAK_TEXT_CHARS

    url, _studio, _rid = served
    text = "word " * (MAX_SPEAK_TEXT_CHARS // 5 + 1)
    response = httpx.post(f"{url}/voxmith/speak", json={"text": text, "voice": "demo", "engine": "tone"}, timeout=30)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "text" and error["message"] == (
        f"text is {len(text)} characters long; the limit is {MAX_SPEAK_TEXT_CHARS}. Read a longer text as a "
        "book: POST /voxmith/books (chapter by chapter, resumable).")
    # at the limit the text is taken (and goes on to the voice's refusal)
    at_limit = httpx.post(f"{url}/voxmith/speak", json={"text": text[:MAX_SPEAK_TEXT_CHARS], "voice": "nobody",
                                                        "engine": "tone"}, timeout=30)
    assert at_limit.status_code in (400, 404) and "nobody" in at_limit.json()["error"]["message"]


def test_an_upload_without_a_file_name_is_stored_as_the_format_it_is(served, demo_files):
    url, studio, _rid = served
    # A file part with an empty file name (curl -F 'files=@take.flac;filename='), written by hand:
    # httpx sends a part without a name as a plain field.
    body = (b'--b\r\nContent-Disposition: form-data; name="files"; filename=""\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n" + demo_files[0].read_bytes() + b"\r\n--b--\r\n")
    response = httpx.post(f"{url}/voxmith/voices/nameless", content=body,
                          headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert response.status_code == 200, response.text
    assert response.json()["clips"] == ["clip1.flac"]
    assert [p.name for p in studio.voices.get("nameless").clip_paths] == ["clip1.flac"]


def _multipart(fields: dict, file_field: str, file_name: bytes, data: bytes) -> tuple[bytes, dict]:
    """A multipart body written by hand, so the file name can hold what clients may send (httpx
    would refuse a NUL byte in it)."""
    parts = [b'--b\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (k.encode(), v.encode())
             for k, v in fields.items()]
    parts.append(b'--b\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\n'
                 b"Content-Type: application/octet-stream\r\n\r\n" % (file_field.encode(), file_name) + data + b"\r\n")
    return b"".join(parts) + b"--b--\r\n", {"Content-Type": "multipart/form-data; boundary=b"}


@pytest.mark.parametrize("file_name,stored", [(b"a\x00b.flac", "ab.flac"), (b"x" * 300 + b".flac", "x" * 194 + ".flac")])
def test_upload_names_no_file_system_takes_are_stored_shortened_not_500(served, demo_files, file_name, stored):
    """A NUL byte or a 300-character name in an upload's file name answered 500 ('embedded null
    byte', 'File name too long' with the server's paths) for voices and recordings alike."""
    url, studio, _rid = served
    data = demo_files[0].read_bytes()
    body, headers = _multipart({}, "files", file_name, data)
    added = httpx.post(f"{url}/voxmith/voices/odd", content=body, headers=headers, timeout=60)
    assert added.status_code == 200, added.text
    assert added.json()["clips"] == [sanitize_filename(stored)]
    body, headers = _multipart({"voice": "demo", "engine": "tone"}, "recording", file_name, data)
    converted = httpx.post(f"{url}/voxmith/convert", content=body, headers=headers, timeout=60)
    assert converted.status_code == 400 and "cannot convert" in converted.json()["error"]["message"]


def test_upload_name_keeps_what_it_can():
    assert upload_name("../../etc/passwd.flac", "clip") == "passwd.flac"
    assert upload_name("C:\\Users\\me\\Gespräch 1.mp3", "clip") == "Gespräch 1.mp3"
    assert upload_name(".hidden.wav", "clip") == "hidden.wav"
    assert upload_name("...", "clip1") == upload_name(None, "clip1") == "clip1"
    long = upload_name("é" * 300 + ".wav", "clip")
    assert long.endswith(".wav") and len(long.encode()) <= 200 and long.startswith("é")


def test_an_address_that_is_not_this_machines_is_not_called_a_busy_port():
    """`serve --listen 8.8.8.8:8000` (a typo, another machine's address) said another program may
    hold the port; a taken port still says so."""
    import socket

    from voxmith.errors import VoxmithError
    from voxmith.serve.server import check_port_free, parse_listen

    with pytest.raises(VoxmithError) as info:
        check_port_free(parse_listen("8.8.8.8:8000"))
    assert "one of this machine's" in str(info.value) and "hold the port" not in str(info.value)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(VoxmithError, match="may hold the port"):
            check_port_free(parse_listen(f"127.0.0.1:{taken.getsockname()[1]}"))


def test_a_damaged_sidecar_is_left_out_of_the_results_list(served):
    """One sidecar damaged by hand (not JSON, or not UTF-8) made GET /voxmith/results answer 500
    for every result (and the web UI's history)."""
    url, studio, rid = served
    folder = studio.workspace.results_dir / "demo"
    (folder / "zz-broken.json").write_text("{garbage")
    (folder / "zz-binary.json").write_bytes(b"\xff\xfe\x00\x81")
    for name in ("zz-broken.wav", "zz-binary.wav"):
        (folder / name).write_bytes((folder / rid.split("/")[1]).read_bytes())
    listed = httpx.get(f"{url}/voxmith/results", timeout=30)
    assert listed.status_code == 200, listed.text
    assert [r["id"] for r in listed.json()["results"]] == [rid]
