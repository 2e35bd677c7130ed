"""The /socket.io/ handler refuses polling bodies over SOCKET_MAX_BUFFER_BYTES
at once, declared or streamed, without waiting for a GET poll and without
keeping the body; the session itself keeps working for well-behaved packets."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

import pytest

from cyberhub.platform.validation import declared_length

LIMIT = 4096


@pytest.fixture
def settings_overrides() -> dict:
    return {"socket_max_buffer_bytes": LIMIT}


async def open_polling_session(live) -> str:
    reply = await live.api.get("/socket.io/?EIO=4&transport=polling")
    assert reply.status == 200, reply
    text = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
    return json.loads(text[1:])["sid"]  # "0{...}": the engine.io OPEN packet


async def raw_request(base_url: str, head: str, body_parts: list[bytes]) -> tuple[int, bytes]:
    """Writes a request by hand (the declared length can lie, the body can be
    chunked) and returns the status and body of the answer. A server that does
    not answer fails the test through pytest-timeout."""
    url = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(head.encode("latin-1"))
        for part in body_parts:
            writer.write(part)
            try:
                await writer.drain()
            except ConnectionError:  # the server answered and closed: read what it said
                break
        status_line = await reader.readline()
        raw = await reader.read()  # the server closes after refusing a body it did not read
    finally:
        writer.close()
    _, _, body = raw.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), body


def post_head(sid: str, extra: str) -> str:
    return (f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: localhost\r\n"
            f"Content-Type: text/plain;charset=UTF-8\r\n{extra}\r\n")


async def test_declared_oversized_body_is_refused_at_once(live):
    sid = await open_polling_session(live)
    big = b"4" + b"x" * (LIMIT * 4)
    status, body = await raw_request(live.base_url, post_head(sid, f"Content-Length: {len(big)}\r\n"), [big])
    assert status == 413
    assert json.loads(body)["code"] == "payload_too_large"


async def test_streamed_oversized_body_is_refused_at_once(live):
    """Chunked: no declared length; refused once the streamed bytes pass the limit."""
    sid = await open_polling_session(live)
    chunk = b"x" * 1024
    parts = [b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(LIMIT // 1024 + 4)] + [b"0\r\n\r\n"]
    status, body = await raw_request(live.base_url, post_head(sid, "Transfer-Encoding: chunked\r\n"), parts)
    assert status == 413
    assert json.loads(body)["code"] == "payload_too_large"


async def test_content_length_that_is_not_ascii_digits_is_a_400(live):
    sid = await open_polling_session(live)
    status, body = await raw_request(live.base_url, post_head(sid, "Content-Length: \u00b2\r\n"), [b"4"])
    assert status == 400
    assert json.loads(body)["code"] == "invalid_content_length"


async def test_body_within_the_limit_still_reaches_engineio(live):
    """A Socket.IO CONNECT sent by POST is answered on the next GET poll."""
    sid = await open_polling_session(live)
    reply = await live.api.post(f"/socket.io/?EIO=4&transport=polling&sid={sid}", raw=b"40",
                                headers={"Content-Type": "text/plain;charset=UTF-8"})
    assert reply.status == 200 and reply.body == "OK", reply
    poll = await live.api.get(f"/socket.io/?EIO=4&transport=polling&sid={sid}")
    assert poll.status == 200 and str(poll.body).startswith("40{"), poll


@pytest.mark.parametrize("value", ["\u00b2", "-1", "1e3", "0x10", " ", "\u0661"])
def test_declared_length_accepts_only_ascii_digits(value):
    with pytest.raises(ValueError):
        declared_length(value)


def test_declared_length_parses_plain_numbers():
    assert declared_length(None) is None
    assert declared_length("0") == 0
    assert declared_length(" 70000 ") == 70000
