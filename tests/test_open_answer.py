"""An opening's HTTP answer does not wait for its own broadcast (issue 20,
item 7): the `drop:new` to every viewer takes its place in the delivery order
after the write, and the answer goes out without waiting for the fan-out to be
written; every viewer still gets it, and the owner's own events keep their
order (balance, inventory, then the drop).

Observable deterministically: a broadcast to more than SLICE sockets is
written a slice per event-loop step by the manager's worker, so at the moment
the server finishes the answer (its access-log line is written by `finish()`,
synchronously) the broadcast must still be waiting in the delivery queue —
before the change the handler awaited it, so the queue was always empty.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from cyberhub.realtime.fanout import SLICE
from tests.support.client import WAIT, connect_socket
from tests.test_economy import create_case, funded_user


async def viewer(http: aiohttp.ClientSession, live) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(f"{live.base_url.replace('http://', 'ws://')}/socket.io/?EIO=4&transport=websocket")
    assert (await asyncio.wait_for(ws.receive_str(), WAIT)).startswith("0")
    await ws.send_str("40")
    assert (await asyncio.wait_for(ws.receive_str(), WAIT)).startswith("40")
    return ws


async def next_drop(ws: aiohttp.ClientWebSocketResponse) -> str:
    while True:
        msg = await asyncio.wait_for(ws.receive_str(), WAIT)
        if msg == "2":  # engine.io PING
            await ws.send_str("3")
        elif msg.startswith('42["drop:new"'):
            return msg


class AnswerWatch(logging.Handler):
    """On the server's access line for the opening: what is still waiting in
    the Socket.IO delivery queue at that moment."""

    def __init__(self, manager) -> None:
        super().__init__(logging.INFO)
        self.manager = manager
        self.pending_at_answer: list[tuple[int, int]] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if "POST /api/cases/open 200" in record.getMessage():
            self.pending_at_answer = [(len(job.recipients), job.next) for job in self.manager._jobs]


# Viewers that only read when the test reads them: no pings during the test.
@pytest.mark.parametrize("settings_overrides", [{"socket_ping_interval": 60.0, "socket_ping_timeout": 60.0}])
async def test_the_answer_goes_out_before_its_broadcast_is_written(live, sample_case):
    case = await create_case(live, sample_case)
    token, user_id = await funded_user(live, "viewer_owner", 5000)
    owner, events = await connect_socket(live.base_url, token=token)
    watch = AnswerWatch(live.services.sio.manager)
    access = logging.getLogger("cyberhub.access")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:  # (default: 100)
        viewers = await asyncio.gather(*(viewer(http, live) for _ in range(SLICE + 10)))
        access.addHandler(watch)
        try:
            reply = await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)
        finally:
            access.removeHandler(watch)
        assert reply.status == 200, reply
        # The answer was finished with the whole broadcast still to write.
        recipients = SLICE + 10 + 1  # the viewers and the owner
        assert watch.pending_at_answer == [(recipients, 0)], watch.pending_at_answer
        # ... and it reached everyone afterwards, the drop of this opening.
        drops = await asyncio.gather(*(next_drop(ws) for ws in viewers))
        assert len(set(drops)) == 1 and reply.body["item"]["name"] in drops[0]
        for ws in viewers:
            await ws.close()
    await events.wait_for("drop:new")
    own = [name for name in events.names() if name != "cases:updated"]
    assert own == [f"balance:updated:{user_id}", f"inventory:updated:{user_id}", "drop:new"], own
    await owner.disconnect()
