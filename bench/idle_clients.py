#!/usr/bin/env python3
"""Opens N WebSocket connections to 127.0.0.1:PORT PATH, completes each handshake, prints
`held N` and keeps them open (idle) until it is signalled. Used for the memory-per-client figure."""
import resource
import socket
import sys
import time

port, path, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 100)), hard))
request = (
    f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
).encode()
held = []
for index in range(count):
    client = socket.create_connection(("127.0.0.1", port))
    client.sendall(request)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = client.recv(4096)
        if not chunk:
            sys.exit(f"connection {index} closed during the handshake")
        answer += chunk
    if not answer.startswith(b"HTTP/1.1 101"):
        sys.exit(f"connection {index}: {answer[:80]!r}")
    held.append(client)
print(f"held {len(held)}", flush=True)
while True:
    time.sleep(3600)
