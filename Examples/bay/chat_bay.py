#!/usr/bin/env python3
"""A bay for mothership: an echo (or chat) WebSocket service that speaks the docking protocol.

Mothership terminates the WebSockets; this process only sees the docking protocol on a Unix socket
it serves at $MS_SOCKET_PATH. Python 3 standard library only.

  frame = type (1 byte) + payload length (u32 big-endian) + payload
  0x01 Dock      bay -> mothership   {"version":1,"ship":"<name>","features":["typed_cargo"]}
  0x02 Moored    mothership -> bay   {"version":1,"config":{...},"features":["typed_cargo"]}
  0x10 Boarding  mothership -> bay   {"conn_id":7,"path":"/ws?x=1","remote_addr":"...","headers":{...}}
  0x11 Disembark both ways           {"conn_id":7,"code":1000,"reason":""}
  0x12 Cargo     both ways           conn_id (u32 big-endian) + type (1 text, 2 binary) + message bytes

The bay asks for typed Cargo (the type byte), so binary messages stay binary and text stays text;
when Moored does not name the feature back (a mothership without it), Cargo is conn_id + message.

With config mode = "chat" every message goes to every client; otherwise it is echoed to its sender.
"""
import asyncio
import json
import os
import struct
import sys

DOCK, MOORED, BOARDING, DISEMBARK, CARGO = 0x01, 0x02, 0x10, 0x11, 0x12


def frame(kind, payload):
    return struct.pack(">BI", kind, len(payload)) + payload


def log(text):
    print(text, flush=True)


async def serve_mothership(reader, writer):
    name = os.environ.get("MS_SHIP", "bay")
    dock = {"version": 1, "ship": name, "features": ["typed_cargo"]}
    writer.write(frame(DOCK, json.dumps(dock).encode()))
    await writer.drain()
    config = {}
    clients = {}
    try:
        while True:
            kind, length = struct.unpack(">BI", await reader.readexactly(5))
            payload = await reader.readexactly(length)
            if kind == MOORED:
                moored = json.loads(payload)
                config = moored["config"]
                typed = "typed_cargo" in moored.get("features", [])
                log(f"moored with config {json.dumps(config, sort_keys=True)}, typed cargo {'on' if typed else 'off'}")
            elif kind == BOARDING:
                boarding = json.loads(payload)
                clients[boarding["conn_id"]] = boarding
                log(f"boarding {boarding['conn_id']} {boarding['path']} from {boarding['remote_addr']}")
            elif kind == DISEMBARK:
                disembark = json.loads(payload)
                clients.pop(disembark["conn_id"], None)
                log(f"disembark {disembark['conn_id']} code {disembark['code']}")
            elif kind == CARGO:
                conn_id = struct.unpack(">I", payload[:4])[0]
                kind_and_message = payload[4:]  # the type byte (typed Cargo) and the message
                targets = clients if config.get("mode") == "chat" else [conn_id]
                for target in targets:
                    writer.write(frame(CARGO, struct.pack(">I", target) + kind_and_message))
                await writer.drain()
    except asyncio.IncompleteReadError:
        log("mothership closed the docking socket")
    finally:
        writer.close()


async def main():
    path = os.environ["MS_SOCKET_PATH"]
    if os.path.exists(path):
        os.unlink(path)
    server = await asyncio.start_unix_server(serve_mothership, path=path)
    log(f"{os.environ.get('MS_BAY_TYPE')} bay {os.environ.get('MS_SHIP')} listening on {path}")
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
