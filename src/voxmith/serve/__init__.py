"""`voxmith serve`: an HTTP API over the studio that speaks OpenAI's speech protocol.

A thin shell like the CLI and the web UI: requests become `SpeakRequest`s for the same `Studio`,
and every result lands in the workspace with its sidecar. `/v1/...` follows OpenAI's audio API
(`POST /v1/audio/speech`, `GET /v1/models`, `GET /v1/audio/voices`) so existing clients work;
`/voxmith/...` exposes the studio's own options. Modules: `app` (assembly), `openai_api`,
`studio_api` and `book_api` (routes), `speech` (streaming a synthesis job), `pool` (bounded worker
threads), `book_jobs` (books read in the background, with their progress events), `book_records`
(those jobs' records in the workspace, so a restarted server lists and resumes them),
`guards` (token and body-size middleware), `errors` (OpenAI's error shape), `server` (uvicorn).
"""

from voxmith.serve.app import ServeConfig, build_app

__all__ = ["ServeConfig", "build_app"]
