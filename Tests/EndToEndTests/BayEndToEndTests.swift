import Foundation
import MothershipTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Bays through the built binary: a real python bay docks over its Unix socket and real WebSocket
/// clients (our own minimal client over a raw socket) talk to it through mothership.
@Suite("Bays end to end")
struct BayEndToEndTests {
    // MARK: 1. Docking, echo, Boarding, Disembark both ways

    @Test(.timeLimit(.minutes(1)))
    func aBayDocksWithItsConfigAndEachClientGetsItsOwnEchoes() async throws {
        let relay = LoopbackPorts.free()
        let metrics = LoopbackPorts.free()
        let directory = try Self.directory()
        defer { directory.remove() }
        let mothership = try await RelayEndToEndTests.launch(
            in: directory, Self.manifest(relay: relay, metrics: metrics),
            waitingFor: ["bay 'chat' docked", "lifecycle: Running", "moored "])
        defer { mothership.stop() }

        // The bay got the environment of SPEC §6 and its config as strings.
        let output = mothership.output
        let environment = try Self.json(after: "env ", in: output)
        #expect(environment["MS_SHIP"] == "chat")
        #expect(environment["MS_BAY_TYPE"] == "websocket")
        #expect(environment["MS_PID"] == String(mothership.pid))
        let socketDirectory = try #require(environment["MS_SOCKET_DIR"])
        #expect(environment["MS_SOCKET_PATH"] == socketDirectory + "/chat.sock")
        #expect(output.contains("socket-dir-mode 0o700"), "\(output)")
        #expect(
            try Self.json(after: "moored ", in: output)
                == ["greeting": "hello", "port": "6379", "verbose": "true"])

        // Two clients at once, each with its own conn_id (from 1) and its own echoes.
        let first = try await WebSocketClient.connect(
            port: relay, path: "/ws?token=abc", headers: ["X-Custom: Yes"])
        let second = try await WebSocketClient.connect(port: relay, path: "/ws")
        for round in 0..<20 {
            try await first.send(text: "first \(round)")
            try await second.send(text: "second \(round)")
        }
        for round in 0..<20 {
            #expect(try await first.next() == .text("first \(round)"))
            #expect(try await second.next() == .text("second \(round)"))
        }
        let boarding = try Self.object(try await first.ask("whoami"))
        #expect(boarding["conn_id"] as? Int == 1)
        #expect(boarding["path"] as? String == "/ws?token=abc")
        let address = try #require(boarding["remote_addr"] as? String)
        #expect(address.hasPrefix("127.0.0.1:") && Int(address.dropFirst(10)) != nil, "\(address)")
        let headers = try #require(boarding["headers"] as? [String: String])
        #expect(headers["x-custom"] == "Yes")
        #expect(headers["upgrade"] == "websocket")
        #expect(headers.keys.allSatisfy { $0 == $0.lowercased() })
        #expect(try Self.object(try await second.ask("whoami"))["conn_id"] as? Int == 2)

        // Bytes that are not UTF-8 come back as a binary frame; a fragmented message arrives whole;
        // pings are answered by mothership.
        try await first.send(binary: [0xFF, 0x00, 0xFE])
        #expect(try await first.next() == .binary([0xFF, 0x00, 0xFE]))
        try await first.sendFrame(opcode: 0x1, Array("frag".utf8), fin: false)
        try await first.sendFrame(opcode: 0x9, Array("ping!".utf8))
        try await first.sendFrame(opcode: 0x0, Array("mented".utf8), fin: true)
        #expect(try await first.next() == .pong(Array("ping!".utf8)))
        #expect(try await first.next() == .text("fragmented"))
        let large = String(repeating: "0123456789abcdef", count: 20_000)
        try await second.send(text: large)
        #expect(try await second.next() == .text(large))

        // Metrics: connections per bay, messages both ways.
        let scraped = try RelayEndToEndTests.fetch("http://127.0.0.1:\(metrics)/metrics")
        #expect(scraped.contains(#"mothership_bay_connections{bay="chat"} 2"#), "\(scraped)")
        #expect(scraped.contains(#"mothership_bay_messages_total{bay="chat",direction="in"}"#))
        #expect(scraped.contains(#"mothership_bay_messages_total{bay="chat",direction="out"}"#))

        // A client's close reaches the bay as Disembark with its code; the bay's Disembark closes
        // the client with the bay's code and reason.
        try await first.close(code: 4000, reason: "done")
        #expect(try await first.next() == .close(4000, ""))
        try await mothership.waitFor("disembark 1 4000 done")
        try await second.send(text: "bye")
        #expect(try await second.next() == .close(4001, "bye from bay"))
        #expect(await second.connection.closes(within: 5))

        // Not an upgrade: 426; a bad upgrade: 400.
        let plain = try RawConnection(port: relay)
        #expect(try await plain.exchange(RawConnection.request("GET", "/ws")).status == 426)
        let bad = try RawConnection(port: relay)
        #expect(
            try await bad.exchange(
                RawConnection.request(
                    "GET", "/ws", ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 8"])
            ).status == 400)

        mothership.signal(SIGTERM)
        #expect(try await mothership.waitForExit() == 0)
    }

    // MARK: 2. The bay dies or breaks its link

    @Test(.timeLimit(.minutes(1)))
    func losingTheBayClosesItsClientsWith1011AndClientsOfTheRedockedBayStartFresh() async throws {
        let relay = LoopbackPorts.free()
        let directory = try Self.directory()
        defer { directory.remove() }
        let mothership = try await RelayEndToEndTests.launch(
            in: directory, Self.manifest(relay: relay, critical: false),
            waitingFor: ["bay 'chat' docked", "lifecycle: Running"])
        defer { mothership.stop() }

        for (round, breakIt) in [("kill", "kill"), ("eof", "close-link"), ("violation", "garbage")]
            .enumerated()
        {
            let clients = [
                try await WebSocketClient.connect(port: relay),
                try await WebSocketClient.connect(port: relay),
            ]
            #expect(try await clients[0].ask("ping") == .text("ping"))
            if breakIt.0 == "kill" {
                let pid = try #require(Self.lastPID(in: mothership.output))
                kill(pid, SIGKILL)
            } else {
                try await clients[0].send(text: breakIt.1)
            }
            for client in clients {
                #expect(try await client.next() == .close(1011, "bay went away"), "\(breakIt.0)")
            }
            // Until the bay docks again, upgrades get 503. The new bay process takes about a second
            // to bind; a loaded machine can take longer than that to send this upgrade, and then
            // it is the new bay's first client (never the old bay's).
            let docked = { mothership.output.components(separatedBy: "bay 'chat' docked").count }
            let meanwhile = try await WebSocketClient.upgrade(port: relay, path: "/ws")
            if meanwhile.status == 503 {
                #expect(meanwhile.header("retry-after") == "1")
            } else {
                #expect(meanwhile.status == 101, "\(breakIt.0)")
            }
            try await mothership.waitUntil("re-dock #\(round + 1)") { docked() == round + 3 }
            // A new client of the new bay process starts from conn_id 1 (2 when the upgrade above
            // was its first).
            let fresh = try await WebSocketClient.connect(port: relay)
            #expect(
                try Self.object(try await fresh.ask("whoami"))["conn_id"] as? Int
                    == (meanwhile.status == 101 ? 2 : 1))
            try await fresh.close(code: 1000, reason: "")
        }
        #expect(mothership.output.contains("broke the docking protocol: unknown message type 0x7F"))
        #expect(mothership.output.contains("lost its docking link (the bay closed its docking socket)"))

        mothership.signal(SIGTERM)
        #expect(try await mothership.waitForExit() == 0)
    }

    // MARK: 3. Flow control

    @Test(.timeLimit(.minutes(1)))
    func aClientThatNeverReadsIsClosedWith1008AndDoesNotStallTheOthers() async throws {
        let relay = LoopbackPorts.free()
        let directory = try Self.directory()
        defer { directory.remove() }
        let mothership = try await RelayEndToEndTests.launch(
            in: directory, Self.manifest(relay: relay),
            waitingFor: ["bay 'chat' docked", "lifecycle: Running"])
        defer { mothership.stop() }

        let slow = try await WebSocketClient.connect(port: relay)
        let brisk = try await WebSocketClient.connect(port: relay)
        #expect(try await slow.ask("ping") == .text("ping"))
        // 400 × 64 KiB for a client that reads none of it.
        try await slow.send(text: "flood 400")
        try await mothership.waitFor("disembark 1 1008", timeout: .seconds(20))
        #expect(mothership.output.contains("closing a slow client of bay 'chat' (conn_id 1)"))
        for round in 0..<10 {
            #expect(try await brisk.ask("still here \(round)", timeout: 5) == .text("still here \(round)"))
        }
        mothership.signal(SIGTERM)
        #expect(try await mothership.waitForExit() == 0)
    }

    @Test(.timeLimit(.minutes(1)))
    func whileTheBaysSocketIsFullItsClientsAreNotRead() async throws {
        let relay = LoopbackPorts.free()
        let directory = try Self.directory()
        defer { directory.remove() }
        let mothership = try await RelayEndToEndTests.launch(
            in: directory, Self.manifest(relay: relay),
            waitingFor: ["bay 'chat' docked", "lifecycle: Running"])
        defer { mothership.stop() }

        let client = try await WebSocketClient.connect(port: relay)
        #expect(try await client.ask("ping") == .text("ping"))
        let residentBefore = try #require(RelayEndToEndTests.residentKilobytes(of: mothership.pid))
        // The bay stops reading its socket for 3 s while the client sends 50 MiB.
        try await client.send(text: "stall 3")
        let sent = Locked(0)
        let chunk = WebSocketClient.frame(opcode: 0x2, [UInt8](repeating: 0x61, count: 65_536))
        let sender = Task {
            for _ in 0..<800 {
                try await client.connection.send(chunk)
                sent.mutate { $0 += 1 }
            }
        }
        try await Task.sleep(for: .milliseconds(1500))
        // Held back: the client cannot hand it all over, and mothership did not take it into memory.
        #expect(sent.value < 800)
        let residentStalled = try #require(RelayEndToEndTests.residentKilobytes(of: mothership.pid))
        #expect(residentStalled - residentBefore < 25_000, "\(residentBefore) kB → \(residentStalled) kB")
        // Once the bay reads again, everything arrives.
        try await sender.value
        #expect(try await client.ask("count", timeout: 15) == .text("800"))
        mothership.signal(SIGTERM)
        #expect(try await mothership.waitForExit() == 0)
    }

    // MARK: 4. A phased replacement (SPEC §12.2)

    /// `mothership restart chat` on a docked bay: the replacement docks on the other socket path
    /// while the old process keeps its clients; new clients board the new one; the old process is
    /// stopped once its clients have left, or after `stop_timeout` with the rest closed with 1001.
    /// A replacement that never docks aborts the restart and the serving bay is untouched.
    /// `stop_timeout` is long enough that the steps between the hand-over and the old process's
    /// drain end hold on a loaded machine.
    @Test(.timeLimit(.minutes(3)))
    func restartingABayKeepsItsClientsUntilTheyLeaveAndSendsNewOnesToItsReplacement() async throws {
        let relay = LoopbackPorts.free()
        let directory = try Self.directory()
        defer { directory.remove() }
        let mothership = try await RelayEndToEndTests.launch(
            in: directory, Self.manifest(relay: relay, extra: #"stop_timeout = "15s""#),
            waitingFor: ["bay 'chat' docked", "lifecycle: Running", "control socket on "])
        defer { mothership.stop() }
        func command(_ arguments: String...) async throws -> BinaryRunner.Outcome {
            try await BinaryRunner.run(arguments, in: directory.path, timeout: .seconds(60))
        }
        func pid(_ client: WebSocketClient) async throws -> Int32 {
            let answer = try await client.ask("pid")
            guard case .text(let text) = answer, let pid = Int32(text) else {
                throw RawConnection.Failure(
                    description: "no pid but \(answer); output:\n\(mothership.output)")
            }
            return pid
        }

        let staying = try await WebSocketClient.connect(port: relay)
        let first = try await pid(staying)
        let restart = Task { try await command("restart", "chat") }
        try await mothership.waitFor("bay 'chat' replaced by pid")
        // The replacement took the other socket path; new clients board it, conn_ids from 1.
        #expect(mothership.output.contains("/chat.1.sock"), "\(mothership.output)")
        let newcomer = try await WebSocketClient.connect(port: relay)
        let second = try await pid(newcomer)
        #expect(second != first)
        #expect(try Self.object(try await newcomer.ask("whoami"))["conn_id"] as? Int == 1)
        // The old process still serves the client it had.
        #expect(try await pid(staying) == first)
        #expect(kill(first, 0) == 0)
        try await staying.close(code: 1000, reason: "leaving")
        #expect(try await staying.next() == .close(1000, ""))
        let outcome = try await restart.value
        #expect(outcome.status == 0, "\(outcome.output)")
        try await mothership.waitFor("phased restart of bay 'chat' complete")
        try await mothership.waitUntil("the old bay process to be gone") { kill(first, 0) != 0 }
        #expect(try await pid(newcomer) == second)

        // A client that does not leave within stop_timeout is closed with 1001 and may reconnect.
        let again = try await command("restart", "chat")
        #expect(again.status == 0, "\(again.output)")
        #expect(try await newcomer.next() == .close(1001, "bay restarted"))
        let reconnected = try await WebSocketClient.connect(port: relay)
        let third = try await pid(reconnected)
        #expect(third != second && third != first)
        #expect(kill(second, 0) != 0)

        // A replacement that exits before docking: the restart fails, the bay serves on.
        try directory.write("fail-next", "")
        let failed = try await command("restart", "chat")
        #expect(failed.status == 1)
        #expect(
            failed.output.contains(
                "phased restart of bay 'chat' aborted: its replacement exited with status 3 before it docked"),
            "\(failed.output)")
        #expect(try await pid(reconnected) == third)
        let late = try await WebSocketClient.connect(port: relay)
        #expect(try await pid(late) == third)

        // SIGUSR1 replaces docked bays too (every routed vessel, one after another); the clients
        // leave at once, so the old process is stopped without waiting out stop_timeout.
        for client in [late, reconnected] {
            try await client.close(code: 1000, reason: "")
            #expect(try await client.next() == .close(1000, ""))
        }
        mothership.signal(SIGUSR1)
        try await mothership.waitUntil("the SIGUSR1 replacement", timeout: .seconds(60)) {
            mothership.output.components(separatedBy: "phased restart of bay 'chat' complete").count == 4
        }
        let fourth = try await pid(try await WebSocketClient.connect(port: relay))
        #expect(fourth != third)

        mothership.signal(SIGTERM)
        #expect(try await mothership.waitForExit() == 0)
    }

    // MARK: - Helpers

    static func directory() throws -> TemporaryDirectory {
        let directory = try TemporaryDirectory(prefix: "mothership-bay")
        try directory.write("bay.py", bayScript)
        return directory
    }

    static func manifest(relay: Int, metrics: Int? = nil, critical: Bool = true, extra: String = "") -> String
    {
        """
        [mothership]
        \(metrics.map { "metrics_port = \($0)" } ?? "")

        [mothership.bind]
        http = "127.0.0.1:\(relay)"

        [[bays.websocket]]
        name = "chat"
        command = "python3"
        args = ["bay.py"]
        routes = [{ bind = "http", pattern = "/ws" }]
        critical = \(critical)
        start_timeout = "60s"
        config = { greeting = "hello", port = 6379, verbose = true }
        \(extra)
        """
    }

    /// The pid in the last `bay 'chat' started (pid N)` line.
    static func lastPID(in output: String) -> Int32? {
        guard let range = output.range(of: "bay 'chat' started (pid ", options: .backwards) else {
            return nil
        }
        return Int32(output[range.upperBound...].prefix { $0.isNumber })
    }

    static func json(after marker: String, in output: String) throws -> [String: String] {
        let line = try #require(output.split(separator: "\n").first { $0.contains(marker) })
        let text = line[line.range(of: marker)!.upperBound...]
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: String])
    }

    static func object(_ message: WebSocketClient.Message) throws -> [String: Any] {
        guard case .text(let text) = message else { throw RawConnection.Failure(description: "\(message)") }
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    /// A bay written the way bays for the original are: a blocking socket server at
    /// `$MS_SOCKET_PATH`. It echoes, and obeys a few commands for the tests.
    static let bayScript = #"""
        import json, os, socket, struct, sys, time
        DOCK, MOORED, BOARDING, DISEMBARK, CARGO = 0x01, 0x02, 0x10, 0x11, 0x12
        names = ["MS_PID", "MS_SHIP", "MS_SOCKET_DIR", "MS_SOCKET_PATH", "MS_BAY_TYPE"]
        print("env " + json.dumps({k: os.environ.get(k) for k in names}), flush=True)
        print("socket-dir-mode " + oct(os.stat(os.environ["MS_SOCKET_DIR"]).st_mode & 0o777), flush=True)
        if os.path.exists("started-once"):
            if os.path.exists("fail-next"):
                os.unlink("fail-next")
                sys.exit(3)
            time.sleep(1.5)   # a restarted bay takes a while to bind: upgrades meanwhile get 503
        open("started-once", "w").close()
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(os.environ["MS_SOCKET_PATH"])
        server.listen(1)
        link, _ = server.accept()

        def send(kind, payload):
            link.sendall(struct.pack(">BI", kind, len(payload)) + payload)

        def exactly(count):
            data = bytearray(count)
            view = memoryview(data)
            got = 0
            while got < count:
                read = link.recv_into(view[got:], count - got)
                if not read:
                    print("link closed", flush=True)
                    sys.exit(0)
                got += read
            return bytes(data)

        typed = "typed" in sys.argv   # typed Cargo: a type byte (1 text, 2 binary) after conn_id
        dock = {"version": 1, "ship": os.environ["MS_SHIP"]}
        if typed:
            dock["features"] = ["typed_cargo", "not_a_feature"]
        send(DOCK, json.dumps(dock).encode())
        boardings = {}
        received = 0
        while True:
            kind, length = struct.unpack(">BI", exactly(5))
            payload = exactly(length)
            if kind == MOORED:
                print("moored " + json.dumps(json.loads(payload)["config"]), flush=True)
                print("moored-message " + payload.decode(), flush=True)
            elif kind == BOARDING:
                boarding = json.loads(payload)
                boardings[boarding["conn_id"]] = boarding
            elif kind == DISEMBARK:
                d = json.loads(payload)
                print("disembark %d %d %s" % (d["conn_id"], d["code"], d["reason"]), flush=True)
            elif kind == CARGO:
                conn_id = struct.unpack(">I", payload[:4])[0]
                conn = payload[:5] if typed else payload[:4]
                message = payload[len(conn):]
                if len(message) < 64:
                    print("cargo %d %s %s" % (conn_id, conn[4:].hex(), message.hex()), flush=True)
                elif len(message) > 65536:
                    print("cargo %d %s %d bytes" % (conn_id, conn[4:].hex(), len(message)), flush=True)
                if message == b"whoami":
                    send(CARGO, conn + json.dumps(boardings[conn_id]).encode())
                elif message == b"bye":
                    send(DISEMBARK, json.dumps({"conn_id": conn_id, "code": 4001, "reason": "bye from bay"}).encode())
                elif message.startswith(b"flood "):
                    for _ in range(int(message[6:])):
                        send(CARGO, conn + b"x" * 65536)
                elif message.startswith(b"stall "):
                    time.sleep(float(message[6:]))
                elif message == b"pid":
                    send(CARGO, conn + str(os.getpid()).encode())
                elif message == b"count":
                    send(CARGO, conn + str(received).encode())
                elif len(message) == 65536:
                    received += 1
                elif message == b"close-link":
                    link.close()
                    time.sleep(300)
                elif message == b"garbage":
                    link.sendall(b"\x7f\x00\x00\x00\x00")
                    time.sleep(300)
                else:
                    send(CARGO, conn + message)
        """#
}

// MARK: - A minimal WebSocket client

/// RFC 6455 from the client side over `RawConnection`: masked frames out, frames in as they come.
final class WebSocketClient: Sendable {
    enum Message: Equatable, Sendable {
        case text(String)
        case binary([UInt8])
        case pong([UInt8])
        case close(UInt16, String)
    }

    let connection: RawConnection

    init(connection: RawConnection) { self.connection = connection }

    /// Sends an upgrade request and returns the answer's head (the connection stays open).
    static func upgrade(
        port: Int, path: String, headers: [String] = []
    ) async throws -> RawResponse {
        try await upgrading(port: port, path: path, headers: headers).0
    }

    static func connect(port: Int, path: String = "/ws", headers: [String] = []) async throws
        -> WebSocketClient
    {
        let (response, connection) = try await upgrading(port: port, path: path, headers: headers)
        try #require(response.status == 101, "\(response.status): \(response.text)")
        // The accept value for the fixed key of RFC 6455 §1.3.
        try #require(response.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        return WebSocketClient(connection: connection)
    }

    static func upgrading(
        port: Int, path: String, headers: [String]
    ) async throws -> (RawResponse, RawConnection) {
        let connection = try RawConnection(port: port)
        let response = try await connection.exchange(
            RawConnection.request(
                "GET", path,
                [
                    "Upgrade: websocket", "Connection: Upgrade",
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                    "Sec-WebSocket-Version: 13",
                ] + headers))
        return (response, connection)
    }

    func send(text: String) async throws { try await sendFrame(opcode: 0x1, Array(text.utf8)) }

    func send(binary: [UInt8]) async throws { try await sendFrame(opcode: 0x2, binary) }

    func close(code: UInt16, reason: String) async throws {
        try await sendFrame(opcode: 0x8, [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8))
    }

    /// Sends a text message and returns the next message.
    func ask(_ text: String, timeout: Double = 10) async throws -> Message {
        try await send(text: text)
        return try await next(timeout: timeout)
    }

    func sendFrame(opcode: UInt8, _ payload: [UInt8], fin: Bool = true) async throws {
        try await connection.send(Self.frame(opcode: opcode, payload, fin: fin))
    }

    /// A frame as a client sends it: masked unless told otherwise, `rsv` in the first byte's bits 4–6.
    static func frame(
        opcode: UInt8, _ payload: [UInt8], fin: Bool = true, rsv: UInt8 = 0, masked: Bool = true
    ) -> [UInt8] {
        var frame: [UInt8] = [(fin ? 0x80 : 0) | rsv << 4 | opcode]
        let maskBit: UInt8 = masked ? 0x80 : 0
        if payload.count < 126 {
            frame.append(maskBit | UInt8(payload.count))
        } else if payload.count < 65_536 {
            frame += [maskBit | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        } else {
            frame.append(maskBit | 127)
            frame += (0..<8).reversed().map { UInt8((payload.count >> ($0 * 8)) & 0xFF) }
        }
        guard masked else { return frame + payload }
        let mask: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        frame += mask
        let start = frame.count
        frame += payload
        for index in 0..<payload.count { frame[start + index] ^= mask[index & 3] }
        return frame
    }

    /// The next frame from the server (its frames are never masked nor, here, fragmented).
    func next(timeout: Double = 10) async throws -> Message {
        let head = try await connection.read(count: 2, timeout: timeout)
        var length = Int(head[1] & 0x7F)
        if length == 126 {
            let extended = try await connection.read(count: 2, timeout: timeout)
            length = Int(extended[0]) << 8 | Int(extended[1])
        } else if length == 127 {
            let extended = try await connection.read(count: 8, timeout: timeout)
            length = extended.reduce(0) { $0 << 8 | Int($1) }
        }
        let payload = length == 0 ? [] : try await connection.read(count: length, timeout: timeout)
        switch head[0] & 0x0F {
        case 0x1: return .text(String(decoding: payload, as: UTF8.self))
        case 0x2: return .binary(payload)
        case 0xA: return .pong(payload)
        case 0x8:
            let code = payload.count >= 2 ? UInt16(payload[0]) << 8 | UInt16(payload[1]) : 1005
            return .close(code, String(decoding: payload.dropFirst(2), as: UTF8.self))
        default: throw RawConnection.Failure(description: "unexpected opcode \(head[0])")
        }
    }
}
