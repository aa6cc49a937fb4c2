#!/usr/bin/python3
# A WebSocket client we did not write (Debian's python3-websockets) talking
# to the gateway: prints one line per step for t/020-websocket.t to check.
import asyncio
import sys

import websockets


async def main(url, token):
    headers = {"Authorization": "Bearer " + token}
    async with websockets.connect(url, extra_headers=headers) as ws:
        await ws.send('{"type":"ping"}')
        print("reply", await ws.recv())
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 5)
        print("ping-frame ok")
        await ws.send('{"type":"ping"}')
        print("reply", await ws.recv())
        await ws.send("x" * 4096)
        try:
            await asyncio.wait_for(ws.recv(), 5)
            print("no close")
        except websockets.ConnectionClosed as e:
            print("closed", e.code)


asyncio.run(main(sys.argv[1], sys.argv[2]))
