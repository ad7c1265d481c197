import Foundation
import MothershipTestSupport
import Testing

/// permessage-deflate (RFC 7692) where mothership terminates WebSocket for a bay, through the
/// built binary: the 101 answers the offer, compressed client messages reach the bay inflated, the
/// bay's messages come back compressed, a compressed bomb gets 1009, and a bay with
/// `permessage_deflate = false` answers without the extension.
@Suite("Bays: permessage-deflate")
struct BayDeflateTests {
    /// A frame from the server with its RSV bits.
    struct Frame: Equatable {
        let rsv: UInt8
        let opcode: UInt8
        let payload: [UInt8]
    }

    static func connect(
        port: Int, path: String, extensions: [String]
    ) async throws -> (RawResponse, WebSocketClient) {
        let (response, connection) = try await WebSocketClient.upgrading(
            port: port, path: path, headers: extensions.map { "Sec-WebSocket-Extensions: \($0)" })
        try #require(response.status == 101, "\(response.status): \(response.text)")
        return (response, WebSocketClient(connection: connection))
    }

    static func next(_ client: WebSocketClient, timeout: Double = 10) async throws -> Frame {
        let head = try await client.connection.read(count: 2, timeout: timeout)
        var length = Int(head[1] & 0x7F)
        if length == 126 {
            let extended = try await client.connection.read(count: 2, timeout: timeout)
            length = Int(extended[0]) << 8 | Int(extended[1])
        } else if length == 127 {
            let extended = try await client.connection.read(count: 8, timeout: timeout)
            length = extended.reduce(0) { $0 << 8 | Int($1) }
        }
        let payload = length == 0 ? [] : try await client.connection.read(count: length, timeout: timeout)
        #expect(head[0] & 0x80 != 0, "server messages are not fragmented")
        return Frame(rsv: (head[0] >> 4) & 0x7, opcode: head[0] & 0x0F, payload: payload)
    }

    @Test(.timeLimit(.minutes(3)))
    func compressedMessagesGoBothWaysAndABayCanTurnItOff() async throws {
        let fleet = try await Self.start()
        defer { fleet.stop() }

        // Two offers: the first is declined (an unknown parameter), the second taken.
        let (response, client) = try await Self.connect(
            port: fleet.relay, path: "/ws",
            extensions: ["permessage-deflate; mystery", "permessage-deflate; client_max_window_bits"])
        #expect(response.header("sec-websocket-extensions") == "permessage-deflate")
        let deflater = RawDeflater()
        let inflater = RawInflater()
        let text = String(repeating: "squeeze me, κόσμε! ", count: 20)
        for round in 0..<3 {
            // Context takeover both ways: later rounds refer back to the first.
            try await client.connection.send(
                WebSocketClient.frame(opcode: 0x1, deflater.compress(Array(text.utf8)), rsv: 4))
            let echo = try await Self.next(client)
            #expect(echo.opcode == 0x1, "round \(round)")
            #expect(echo.rsv == 4, "round \(round): the echo is compressed")
            #expect(try inflater.decompress(echo.payload) == Array(text.utf8), "round \(round)")
            #expect(echo.payload.count < text.utf8.count / 4)
        }
        // A compressed message in three frames (RSV1 on the first only), inflated for the bay,
        // then a short echo: below the threshold it comes back uncompressed.
        let short = deflater.compress(Array("tiny".utf8))
        try await client.connection.send(
            WebSocketClient.frame(opcode: 0x1, Array(short.prefix(2)), fin: false, rsv: 4)
                + WebSocketClient.frame(opcode: 0x0, Array(short.dropFirst(2).prefix(2)), fin: false)
                + WebSocketClient.frame(opcode: 0x0, Array(short.dropFirst(4))))
        #expect(try await Self.next(client) == Frame(rsv: 0, opcode: 0x1, payload: Array("tiny".utf8)))
        try await fleet.mothership.waitFor("cargo 1  74696e79")
        // An uncompressed message still passes.
        #expect(try await client.ask("plain") == .text("plain"))

        // server_no_context_takeover and client_no_context_takeover are answered; each echo
        // inflates on its own.
        let (reset, fresh) = try await Self.connect(
            port: fleet.relay, path: "/ws",
            extensions: [
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"
            ])
        #expect(
            reset.header("sec-websocket-extensions")
                == "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"
        )
        let resetting = RawDeflater(windowBits: 15, noContextTakeover: true)
        for _ in 0..<2 {
            try await fresh.connection.send(
                WebSocketClient.frame(opcode: 0x2, resetting.compress(Array(text.utf8)), rsv: 4))
            let echo = try await Self.next(fresh)
            #expect(echo.rsv == 4)
            #expect(try RawInflater().decompress(echo.payload) == Array(text.utf8))
        }

        // No offer: no extension, and RSV1 is a protocol error as before.
        let (bare, none) = try await Self.connect(port: fleet.relay, path: "/ws", extensions: [])
        #expect(bare.header("sec-websocket-extensions") == nil)
        try await none.connection.send(WebSocketClient.frame(opcode: 0x1, Array("x".utf8), rsv: 4))
        #expect(try await none.next() == .close(1002, "reserved bits set without a negotiated extension"))

        // The bay with permessage_deflate = false ignores the offer.
        let (off, plain) = try await Self.connect(
            port: fleet.relay, path: "/plain", extensions: ["permessage-deflate"])
        #expect(off.header("sec-websocket-extensions") == nil)
        #expect(try await plain.ask(text) == .text(text))
        try await plain.connection.send(WebSocketClient.frame(opcode: 0x1, deflater.compress([0x61]), rsv: 4))
        guard case .close(1002, _) = try await plain.next() else {
            Issue.record("RSV1 to a bay without permessage-deflate was not a protocol error")
            return
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func aCompressedMessageInflatingPastTheLimitGets1009AndBadDataGets1007() async throws {
        let fleet = try await Self.start()
        defer { fleet.stop() }
        let (_, client) = try await Self.connect(
            port: fleet.relay, path: "/ws", extensions: ["permessage-deflate"])
        // 17 MiB of zeros is about 17 KB compressed; the bay's limit is 16 MiB.
        let bomb = RawDeflater().compress([UInt8](repeating: 0, count: 17 << 20))
        #expect(bomb.count < 100_000)
        try await client.connection.send(WebSocketClient.frame(opcode: 0x2, bomb, rsv: 4))
        guard case .close(let code, _) = try await client.next() else {
            Issue.record("no close frame for a compression bomb")
            return
        }
        #expect(code == 1009)
        #expect(await client.connection.closes(within: 10))
        try await fleet.mothership.waitFor("disembark 1 1009 ")

        let (_, broken) = try await Self.connect(
            port: fleet.relay, path: "/ws", extensions: ["permessage-deflate"])
        try await broken.connection.send(WebSocketClient.frame(opcode: 0x1, [0xFF, 0xFF, 0xFF], rsv: 4))
        #expect(try await broken.next() == .close(1007, "invalid compressed data"))
        #expect(await broken.connection.closes(within: 10))

        // Text that inflates to invalid UTF-8 is 1007 too.
        let (_, liar) = try await Self.connect(
            port: fleet.relay, path: "/ws", extensions: ["permessage-deflate"])
        try await liar.connection.send(
            WebSocketClient.frame(opcode: 0x1, RawDeflater().compress([0x61, 0xFF, 0x62]), rsv: 4))
        #expect(try await liar.next() == .close(1007, "invalid UTF-8 in a text message"))
    }

    // MARK: - A fleet of two bays, one without compression

    struct Fleet {
        let relay: Int
        let directory: TemporaryDirectory
        let mothership: RunningMothership

        func stop() {
            mothership.stop()
            directory.remove()
        }
    }

    static func start() async throws -> Fleet {
        let relay = LoopbackPorts.free()
        let directory = try TemporaryDirectory(prefix: "mothership-deflate")
        try directory.write("bay.py", BayEndToEndTests.bayScript)
        let mothership = try await RelayEndToEndTests.launch(
            in: directory,
            """
            [mothership.bind]
            http = "127.0.0.1:\(relay)"

            [[bays.websocket]]
            name = "chat"
            command = "python3"
            args = ["bay.py"]
            routes = [{ bind = "http", pattern = "/ws" }]
            start_timeout = "60s"

            [[bays.websocket]]
            name = "plain"
            command = "python3"
            args = ["bay.py"]
            routes = [{ bind = "http", pattern = "/plain" }]
            start_timeout = "60s"
            permessage_deflate = false
            """,
            waitingFor: ["bay 'chat' docked", "bay 'plain' docked", "lifecycle: Running"])
        return Fleet(relay: relay, directory: directory, mothership: mothership)
    }
}
