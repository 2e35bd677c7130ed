"""engine.io polling requests served by cyberhub/realtime/polling.py (a bare
HTTPMessageDelegate, not a RequestHandler): the whole polling protocol on
one keep-alive connection and on one connection per request (the Node
client's way), a long poll whose client goes away, what is counted and
logged, and the library behaviour the module relies on."""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import urlsplit

import socketio
import tornado.routing
import tornado.web
from engineio.async_drivers import tornado as eio_tornado
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from cyberhub.realtime.polling import PollingMatcher, PollingRequest, PollingRequests
from cyberhub.realtime.polling import _tasks as polling_tasks

HANDSHAKE = "/socket.io/?EIO=4&transport=polling"


async def raw_exchange(base_url: str, requests: list[bytes]) -> list[tuple[int, dict[str, str], bytes]]:
    """Sends each request on one connection, reading each answer before the
    next (Content-Length bodies); returns status, headers, body of each."""
    url = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    answers = []
    try:
        for request in requests:
            writer.write(request)
            status = int((await reader.readline()).split()[1])
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers["content-length"]))
            answers.append((status, headers, body))
    finally:
        writer.close()
    return answers


def get(path: str, close: bool = False) -> bytes:
    connection = "Connection: close\r\n" if close else ""
    return f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{connection}\r\n".encode()


def post(path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain;charset=UTF-8\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def sid_of(open_packet: bytes) -> str:
    assert open_packet.startswith(b"0"), open_packet
    return json.loads(open_packet[1:])["sid"]


async def test_a_session_runs_on_one_keep_alive_connection(live):
    """Handshake, CONNECT, the CONNECT's answer: three requests, one connection
    (what a browser does)."""
    url = urlsplit(live.base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        async def exchange(request: bytes) -> tuple[int, bytes]:
            writer.write(request)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            return status, await reader.readexactly(length)

        status, opened = await exchange(get(HANDSHAKE))
        assert status == 200
        sid = sid_of(opened)
        path = f"{HANDSHAKE}&sid={sid}"
        assert await exchange(post(path, b"40")) == (200, b"OK")
        status, connected = await exchange(get(path))
        assert status == 200 and connected.startswith(b"40{"), connected
    finally:
        writer.close()


async def test_connection_close_requests_are_answered_and_closed(live):
    """The Node client sends every polling request on a new connection with
    `Connection: close`: each is answered, then the server closes."""
    url = urlsplit(live.base_url)

    async def one_shot(request: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        writer.write(request)
        everything = await reader.read()  # returns once the server has closed
        writer.close()
        return everything

    opened = await one_shot(get(HANDSHAKE, close=True))
    head, _, body = opened.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" in head
    path = f"{HANDSHAKE}&sid={sid_of(body)}"
    assert (await one_shot(post(path, b"40").replace(b"Host: localhost\r\n",
                                                     b"Host: localhost\r\nConnection: close\r\n"))
            ).endswith(b"\r\n\r\nOK")
    assert b"\r\n\r\n40{" in await one_shot(get(path, close=True))


async def test_a_long_poll_whose_client_went_away_ends_quietly(live, caplog):
    """The answer to a poll whose connection is gone goes nowhere: no error,
    no task left behind, the session's limits bookkeeping released."""
    caplog.set_level(logging.INFO, logger="cyberhub")
    opened = await live.api.get(HANDSHAKE)
    sid = sid_of(opened.body.encode())
    path = f"{HANDSHAKE}&sid={sid}"
    assert (await live.api.post(path, raw=b"40")).status == 200
    assert (await live.api.get(path)).body.startswith("40{")  # the CONNECT: the queue is empty now
    # Told when engine.io starts serving the poll (it then waits on the session's queue).
    session = live.services.sio.eio.sockets[sid]
    serving = asyncio.Event()
    serve = session.handle_get_request

    async def handle_get_request(environ: dict) -> list:
        serving.set()
        return await serve(environ)

    session.handle_get_request = handle_get_request
    url = urlsplit(live.base_url)
    _, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(get(path))
    await writer.drain()
    await serving.wait()
    [poll] = polling_tasks
    writer.close()
    await writer.wait_closed()
    await live.services.sio.eio.disconnect(sid)  # puts a CLOSE on the queue: the poll answers
    await poll
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert live.services.sio.manager.admission._reserved_total == 0


async def test_successful_polls_are_counted_not_logged_refusals_are_both(live, caplog):
    caplog.set_level(logging.INFO, logger="tornado.access")
    caplog.set_level(logging.INFO, logger="cyberhub")
    before = (await live.api.get("/metrics")).body
    assert (await live.api.get(HANDSHAKE)).status == 200
    assert (await live.api.get(f"{HANDSHAKE}&sid=no-such-session")).status == 400
    after = (await live.api.get("/metrics")).body

    def count(text: str, status: int) -> float:
        key = f'cyberhub_http_requests_total{{method="GET",route="/socket.io/",status="{status}"}}'
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(key))

    assert count(after, 200) - count(before, 200) == 1
    assert count(after, 400) - count(before, 400) == 1
    socket_lines = [r.getMessage() for r in caplog.records if "/socket.io/" in r.getMessage()]
    assert len(socket_lines) == 1 and socket_lines[0].startswith("GET /socket.io/ 400"), socket_lines


async def test_a_websocket_upgrade_on_the_same_path_reaches_the_handler(live):
    """Only non-upgrade requests are polling ones: websocket-first clients
    still get the Tornado websocket handler (and its direct sessions)."""
    async with live.api.session.ws_connect(
            f"{live.base_url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket") as ws:
        opened = await ws.receive_str()
    assert sid_of(opened.encode())


async def test_other_methods_get_engineio_answers_without_errors(live, caplog):
    """HEAD gets the headers of its answer and no body (Tornado refuses to
    write one); other methods get engine.io's own answers."""
    caplog.set_level(logging.INFO, logger="cyberhub")
    url = urlsplit(live.base_url)
    answers = {}
    for method in ("HEAD", "PUT", "OPTIONS"):
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        writer.write(f"{method} {HANDSHAKE} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        answers[method] = await reader.read()
        writer.close()
    head, _, body = answers["HEAD"].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405") and b"Content-Length: 16" in head and body == b""
    assert answers["PUT"].startswith(b"HTTP/1.1 405") and answers["PUT"].endswith(b"Method Not Found")
    assert answers["OPTIONS"].startswith(b"HTTP/1.1 200")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


# -- the library behaviour polling.py relies on -------------------------------------------

def test_an_application_rule_may_route_to_a_router_returning_a_message_delegate():
    """tornado.routing: a Rule(Matcher, Router) among an Application's rules;
    the Matcher sees the request's headers, the Router's find_handler gives
    the request's delegate."""
    sio = socketio.AsyncServer(async_mode="tornado")
    app = tornado.web.Application([tornado.routing.Rule(PollingMatcher(), PollingRequests(sio)),
                                   (r"/socket.io/", tornado.web.RequestHandler)])

    class Connection:
        context = None

    def request(headers: dict[str, str]) -> HTTPServerRequest:
        return HTTPServerRequest(start_line=RequestStartLine("GET", HANDSHAKE, "HTTP/1.1"),
                                 headers=HTTPHeaders({"Host": "h", **headers}), connection=Connection())

    polling = app.find_handler(request({}))
    assert isinstance(polling, PollingRequest)
    assert not isinstance(app.find_handler(request({"Upgrade": "websocket"})), PollingRequest)


def test_engineio_answers_through_its_driver_table(live):
    """engine.io 4.15: `_async` holds the driver's translate_request and
    make_response, which handle_request calls; the Tornado driver's own
    make_response still answers the websocket handler's requests."""
    table = live.services.sio.eio._async
    assert {"translate_request", "make_response"} <= set(table)
    assert table["make_response"] is not eio_tornado.make_response  # ours, dispatching
    assert eio_tornado._async["make_response"] is eio_tornado.make_response  # the shared table untouched


async def test_a_post_claiming_a_websocket_upgrade_is_still_a_polling_post(live):
    """Only a GET can be a websocket upgrade: a POST with `Upgrade: websocket`
    goes through the polling checks (here: the malformed-body rule)."""
    opened = await live.api.get(HANDSHAKE)
    sid = sid_of(opened.body.encode())
    request = post(f"{HANDSHAKE}&sid={sid}", b"\xff\xfe").replace(
        b"Host: localhost\r\n", b"Host: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
    [(status, _, body)] = await raw_exchange(live.base_url, [request])
    assert status == 400 and json.loads(body)["code"] == "bad_packet"
