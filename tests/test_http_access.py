"""The Host/Origin policy shared by the HTTP shells, as a table of requests and verdicts."""

import pytest

from voxmith.http_access import check_host, check_origin, check_request, split_host


@pytest.mark.parametrize("value,expected", [
    ("localhost:7860", ("localhost", 7860)), ("[::1]:80", ("::1", 80)), ("[::1]", ("::1", None)),
    ("Example.COM.", ("example.com", None)), ("127.0.0.1", ("127.0.0.1", None)),
])
def test_split_host(value, expected):
    assert split_host(value) == expected


@pytest.mark.parametrize("host,bind,allowed,ok", [
    ("localhost:7860", "127.0.0.1", (), True),
    ("127.0.0.1:7860", "127.0.0.1", (), True),
    ("[::1]:7860", "::1", (), True),
    ("LOCALHOST", "127.0.0.1", (), True),
    ("evil.example:7860", "127.0.0.1", (), False),  # DNS rebinding
    ("127.0.0.1.evil.example", "127.0.0.1", (), False),
    ("localhost.evil.example", "localhost", (), False),
    ("studio.lan:7860", "127.0.0.1", ("studio.lan",), True),
    ("192.168.1.5:7860", "127.0.0.1", (), False),  # loopback server: loopback names only
    ("192.168.1.5:7860", "0.0.0.0", (), True),  # an IP literal cannot be rebound
    ("[fe80::1]:7860", "::", (), True),
    ("evil.example", "0.0.0.0", (), False),
    ("studio.lan", "0.0.0.0", ("studio.lan",), True),
    ("box.lan:7860", "box.lan", (), True),  # bound by name: that name
    (None, "127.0.0.1", (), False),
    ("local:host:x", "127.0.0.1", (), False),
])
def test_host_rules(host, bind, allowed, ok):
    decision = check_host(host, bind, allowed)
    assert decision.allowed is ok
    assert ok or decision.reason


@pytest.mark.parametrize("origin,host,allowed,ok", [
    (None, "127.0.0.1:7860", (), True),  # a program, not a page
    ("http://127.0.0.1:7860", "127.0.0.1:7860", (), True),
    ("http://localhost:7860", "localhost:7860", (), True),
    ("http://evil.example", "127.0.0.1:7860", (), False),
    ("http://localhost:3000", "localhost:7860", (), False),  # another local site
    ("null", "127.0.0.1:7860", (), False),
    ("https://studio.lan", "127.0.0.1:7860", ("studio.lan",), True),  # reverse proxy
    ("http://example.com", "example.com", (), True),  # same origin, default port
    ("not a url", "127.0.0.1:7860", (), False),
])
def test_origin_rules(origin, host, allowed, ok):
    assert check_origin(origin, host, allowed).allowed is ok


def test_origin_is_checked_only_when_state_changes():
    evil = "http://evil.example"
    assert check_request("GET", "127.0.0.1:7860", evil, "127.0.0.1")  # CORS keeps the answer from the page
    assert not check_request("POST", "127.0.0.1:7860", evil, "127.0.0.1")
    assert not check_request("WEBSOCKET", "127.0.0.1:7860", evil, "127.0.0.1")
    assert "DNS rebinding" in check_request("GET", "evil.example", None, "127.0.0.1").reason
