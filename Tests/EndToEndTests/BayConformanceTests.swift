import Foundation
import MothershipTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// RFC 6455 where mothership terminates WebSocket for a bay, through the built binary: raw frames
/// that break a rule get the close code the RFC names, then the TCP connection closes, and nothing
/// of them reaches the bay (it gets Disembark with the same code). Each rule is tried on the first
/// frame of a connection and after a message that went through. Then typed Cargo both ways, for a
/// bay that asks for it and one that does not.
@Suite("Bays: RFC 6455 conformance and typed Cargo")
struct BayConformanceTests {
    /// A client's frames that break a rule, and the close code they must get.
    struct Violation: Sendable {
        let name: String
        let code: UInt16
        let frames: [[UInt8]]

        static func frame(
            _ opcode: UInt8, _ payload: [UInt8], fin: Bool = true, rsv: UInt8 = 0, masked: Bool = true
        ) -> [UInt8] {
            WebSocketClient.frame(opcode: opcode, payload, fin: fin, rsv: rsv, masked: masked)
        }

        static let all: [Violation] = [
            Violation(
                name: "an unmasked frame", code: 1002,
                frames: [frame(0x1, Array("unmasked".utf8), masked: false)]),
            Violation(
                name: "RSV1 without an extension", code: 1002,
                frames: [frame(0x1, Array("rsv1".utf8), rsv: 4)]),
            Violation(name: "RSV2", code: 1002, frames: [frame(0x2, [1, 2], rsv: 2)]),
            Violation(name: "RSV3 on a ping", code: 1002, frames: [frame(0x9, [], rsv: 1)]),
            Violation(name: "reserved data opcode 3", code: 1002, frames: [frame(0x3, Array("op3".utf8))]),
            Violation(name: "reserved control opcode 11", code: 1002, frames: [frame(0xB, [])]),
            Violation(
                name: "invalid UTF-8 in a text message", code: 1007,
                frames: [frame(0x1, Array("κόσμε".utf8) + [0xED, 0xA0, 0x80] + Array("edited".utf8))]),
            Violation(
                name: "a text message that ends mid-character", code: 1007,
                frames: [frame(0x1, Array("euro ".utf8) + [0xE2, 0x82])]),
            Violation(
                name: "invalid UTF-8 across fragments", code: 1007,
                frames: [
                    frame(0x1, Array("first ".utf8) + [0xCE], fin: false), frame(0x0, [0xFF], fin: true),
                ]),
            Violation(
                name: "a continuation with no message", code: 1002, frames: [frame(0x0, Array("orphan".utf8))]
            ),
            Violation(
                name: "a new message inside a fragmented one", code: 1002,
                frames: [frame(0x1, Array("one".utf8), fin: false), frame(0x1, Array("two".utf8))]),
            Violation(
                name: "a fragmented ping", code: 1002, frames: [frame(0x9, Array("p".utf8), fin: false)]),
            Violation(
                name: "a ping over 125 bytes", code: 1002,
                frames: [frame(0x9, [UInt8](repeating: 0x70, count: 126))]),
            Violation(name: "a close with a 1-byte payload", code: 1002, frames: [frame(0x8, [0x03])]),
            Violation(name: "close code 1005", code: 1002, frames: [frame(0x8, [0x03, 0xED])]),
            Violation(name: "close code 999", code: 1002, frames: [frame(0x8, [0x03, 0xE7])]),
            Violation(name: "close code 2000", code: 1002, frames: [frame(0x8, [0x07, 0xD0])]),
            Violation(
                name: "a close reason that is not UTF-8", code: 1007,
                frames: [frame(0x8, [0x03, 0xE8, 0xCE, 0xBA, 0xE1, 0xBD])]),
        ]
    }

    /// Every rule on one fleet (one launch: the suite stays light on a loaded machine), each on a
    /// fresh client: first as the connection's first frame, then after a message that went through.
    @Test(.timeLimit(.minutes(3)))
    func aBrokenRuleGetsItsCloseCodeThenTheConnectionClosesAndTheBaySeesNothingOfIt() async throws {
        let fleet = try await Fleet.start()
        defer { fleet.stop() }
        var connID = 0
        for afterAMessage in [false, true] {
            for violation in Violation.all {
                connID += 1
                let name = "\(violation.name)\(afterAMessage ? " after a message" : "")"
                let client = try await WebSocketClient.connect(port: fleet.relay, path: "/ws")
                if afterAMessage {
                    #expect(try await client.ask("fine") == .text("fine"), "\(name)")
                }
                for frame in violation.frames { try await client.connection.send(frame) }
                guard case .close(let code, _) = try await client.next() else {
                    Issue.record("no close frame for \(name)")
                    continue
                }
                #expect(code == violation.code, "\(name)")
                #expect(await client.connection.closes(within: 10), "\(name): the TCP connection stays open")
                try await fleet.mothership.waitFor("disembark \(connID) \(violation.code) ")
                // Only the good message (hex of "fine") ever reached the bay.
                let cargo = fleet.mothership.output.split(separator: "\n").compactMap { line in
                    line.range(of: "cargo \(connID) ").map { String(line[$0.lowerBound...]) }
                }
                #expect(cargo == (afterAMessage ? ["cargo \(connID)  66696e65"] : []), "\(name): \(cargo)")
            }
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func aValidCloseIsEchoedWithItsCodeAndTheServerClosesTheConnection() async throws {
        let fleet = try await Fleet.start()
        defer { fleet.stop() }
        let client = try await WebSocketClient.connect(port: fleet.relay, path: "/ws")
        try await client.close(code: 1000, reason: "all done ✓")
        #expect(try await client.next() == .close(1000, ""))
        #expect(await client.connection.closes(within: 10))
        try await fleet.mothership.waitFor("disembark 1 1000 all done ✓")

        // A close with no payload is answered with none (1005 to the bay).
        let quiet = try await WebSocketClient.connect(port: fleet.relay, path: "/ws")
        try await quiet.sendFrame(opcode: 0x8, [])
        #expect(try await quiet.next() == .close(1005, ""))
        #expect(await quiet.connection.closes(within: 10))
        try await fleet.mothership.waitFor("disembark 2 1005 ")
    }

    @Test(.timeLimit(.minutes(2)))
    func typedCargoKeepsTheFrameTypeBothWaysAndAnOldBayKeepsTodaysBehaviour() async throws {
        let fleet = try await Fleet.start()
        defer { fleet.stop() }
        // Moored names back the features mothership has, only to the bay that asked.
        try await fleet.mothership.waitFor(
            #"moored-message {"config":{},"features":["typed_cargo"],"version":1}"#)
        // The old bay prints its Moored when it reads it, which may be after both docked.
        try await fleet.mothership.waitFor(#"moored-message {"config":{},"version":1}"#)

        let typed = try await WebSocketClient.connect(port: fleet.relay, path: "/typed")
        #expect(try await typed.ask("text") == .text("text"))
        try await typed.send(binary: Array("valid UTF-8, sent as binary".utf8))
        #expect(try await typed.next() == .binary(Array("valid UTF-8, sent as binary".utf8)))
        try await typed.send(binary: [])
        #expect(try await typed.next() == .binary([]))
        try await typed.send(text: "")
        #expect(try await typed.next() == .text(""))
        try await typed.send(binary: [0xFF, 0x00])
        #expect(try await typed.next() == .binary([0xFF, 0x00]))
        // The type byte reached the bay: 01 for text, 02 for binary.
        try await fleet.mothership.waitFor("cargo 1 02 ff00")
        #expect(fleet.mothership.output.contains("cargo 1 01 74657874"))

        // An old bay: bytes that are UTF-8 come back as text, whatever the client sent.
        let old = try await WebSocketClient.connect(port: fleet.relay, path: "/ws")
        try await old.send(binary: Array("looks like text".utf8))
        #expect(try await old.next() == .text("looks like text"))
        try await old.send(binary: [0xFF, 0x00])
        #expect(try await old.next() == .binary([0xFF, 0x00]))

        // A 16 MiB message: whole through typed Cargo; over the original's frame for an old bay (1009).
        let big = [UInt8](repeating: 0x2A, count: 16 * 1024 * 1024)
        try await typed.send(binary: big)
        #expect(try await typed.next(timeout: 60) == .binary(big))
        try await fleet.mothership.waitFor("cargo 1 02 16777216 bytes")
        // The frame's header is enough for the refusal (the rest is never sent: the server closes).
        try await old.connection.send(Array(WebSocketClient.frame(opcode: 0x2, big).prefix(1_000)))
        guard case .close(let code, _) = try await old.next(timeout: 60) else {
            Issue.record("no close for a message over the old bay's limit")
            return
        }
        #expect(code == 1009)
        #expect(await old.connection.closes(within: 10))
    }

    // MARK: - A fleet of two bays

    struct Fleet {
        let relay: Int
        let directory: TemporaryDirectory
        let mothership: RunningMothership

        static func start() async throws -> Fleet {
            let relay = LoopbackPorts.free()
            let directory = try TemporaryDirectory(prefix: "mothership-conformance")
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
                name = "typed"
                command = "python3"
                args = ["bay.py", "typed"]
                routes = [{ bind = "http", pattern = "/typed" }]
                start_timeout = "60s"
                """,
                waitingFor: ["bay 'chat' docked", "bay 'typed' docked", "lifecycle: Running"])
            return Fleet(relay: relay, directory: directory, mothership: mothership)
        }

        func stop() {
            mothership.stop()
            directory.remove()
        }
    }
}

/// The bundled example bay (`Examples/bay/chat_bay.py`) as a user runs it: it asks for typed
/// Cargo, so its echoes keep each message's type.
@Suite("Bays: the bundled example")
struct ExampleBayTests {
    @Test(.timeLimit(.minutes(1)))
    func theExampleBayEchoesTextAsTextAndBinaryAsBinary() async throws {
        let relay = LoopbackPorts.free()
        let directory = try TemporaryDirectory(prefix: "mothership-example-bay")
        defer { directory.remove() }
        try directory.write("chat_bay.py", try Repository.read("Examples/bay/chat_bay.py"))
        let mothership = try await RelayEndToEndTests.launch(
            in: directory,
            """
            [mothership.bind]
            http = "127.0.0.1:\(relay)"

            [[bays.websocket]]
            name = "chat"
            command = "python3"
            args = ["chat_bay.py"]
            routes = [{ bind = "http", pattern = "/ws" }]
            config = { mode = "echo" }
            """,
            waitingFor: ["bay 'chat' docked", "lifecycle: Running", "typed cargo on"])
        defer { mothership.stop() }
        let client = try await WebSocketClient.connect(port: relay, path: "/ws")
        #expect(try await client.ask("hello") == .text("hello"))
        try await client.send(binary: Array("bytes".utf8))
        #expect(try await client.next() == .binary(Array("bytes".utf8)))
        try await client.send(binary: [])
        #expect(try await client.next() == .binary([]))
    }
}
