#!/usr/bin/python3
# Two users chatting through the gateway with a WebSocket client we did not
# write (Debian's python3-websockets), one on each of two URLs: prints one
# line per step for t/022-deliver.t to check.
#
#   ws_chat.py URL_A TOKEN_A URL_B TOKEN_B UID_B
import asyncio
import json
import sys

import websockets


async def frame(ws, kind):
    while True:
        f = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if f.get("type") == kind:
            return f


async def main(url_a, token_a, url_b, token_b, uid_b):
    async with websockets.connect(url_a + "?access_token=" + token_a) as a, \
            websockets.connect(url_b, extra_headers={
                "Authorization": "Bearer " + token_b}) as b:
        for i in range(3):
            await a.send(json.dumps({"type": "send", "to": int(uid_b),
                                     "client_id": "py%d" % i,
                                     "body": "hello %d" % i}))
            ack = await frame(a, "ack")
            print("ack", ack["client_id"], ack["seq"])
        for i in range(3):
            m = await frame(b, "message")
            print("message", m["body"])
            await b.send(json.dumps({"type": "receipt", "id": m["id"],
                                     "status": "read"}))
        for i in range(3):
            r = await frame(a, "receipt")
            print("receipt", r["status"])


asyncio.run(main(*sys.argv[1:6]))
