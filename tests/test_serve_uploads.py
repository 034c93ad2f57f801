"""The HTTP API's kept uploads (voxmith.serve.uploads): names that differ only in case, which a
case-insensitive file system (macOS, Windows) stores as one file, share one file and one count of
users everywhere, so one client's cleanup never deletes what another request is using."""

from __future__ import annotations

import asyncio
import io

from starlette.datastructures import UploadFile

from voxmith.serve.uploads import ConvertUploads

CONTENT = b"RIFF-not-really-audio-but-bytes"


def _upload(name: str, data: bytes = CONTENT) -> UploadFile:
    return UploadFile(io.BytesIO(data), filename=name)


def test_names_differing_only_in_case_share_one_file_and_one_count(tmp_path):
    uploads = ConvertUploads(tmp_path / "uploads")

    async def scenario():
        first = await uploads.keep(_upload("Take.WAV"))
        second = await uploads.keep(_upload("take.wav"))  # another client, the same recording
        assert second == first and first.name == "Take.WAV"  # one file, whatever the file system
        assert [p.name for p in first.parent.iterdir()] == ["Take.WAV"]
        uploads.release(first, made_result=False)  # the first request failed...
        assert first.is_file()  # ...but the second still converts it
        uploads.release(second, made_result=False)  # both failed: nothing kept
        assert not first.exists() and not first.parent.exists()

        # One made a result from it: kept, whichever spelling its request used.
        third = await uploads.keep(_upload("TAKE.wav"))
        fourth = await uploads.keep(_upload("take.WAV"))
        uploads.release(fourth, made_result=True)
        uploads.release(third, made_result=False)
        assert third.is_file() and third == fourth

        # Other content under a name differing in case is another file, in its own folder.
        other = await uploads.keep(_upload("take.wav", b"other bytes"))
        assert other.parent != third.parent and other.is_file()
        uploads.release(other, made_result=False)
        assert not other.exists() and third.is_file()

    asyncio.run(scenario())
