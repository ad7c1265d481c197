import Foundation
import NIOCore
import Testing

@testable import Relay

#if canImport(Glibc)
    import Glibc
#endif

/// A tunnel on a worker thread (an accepted upgrade on a plain bind): bytes both ways, whole and in
/// order, through sockets that fill (8 MiB each way at once: the worker's writes are partial, bytes
/// wait for the socket, and the other side is held back meanwhile), and the end of the stream.
@Suite("Worker tunnels", .timeLimit(.minutes(1)))
struct WorkerTunnelTests {
    @Test func eightMebibytesEachWayArriveWholeAndInOrder() async throws {
        let harness = try await RelayTimeoutTests.Harness.start()
        let port = harness.relayPort
        let fd = try Self.connect(port: port)
        defer { close(fd) }
        try Self.writeAll(
            fd, Array("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n".utf8)
        )
        let head = try Self.readHead(fd)
        #expect(head.hasPrefix("HTTP/1.1 101 "), "\(head)")

        let size = 8 << 20
        let pattern = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 12) }
        // Written and read at once: the echo sends back while more is still coming.
        async let written: Void = ShipInstancesTests.onThread { try Self.writeAll(fd, pattern) }
        let received = try await ShipInstancesTests.onThread { try Self.read(fd, count: size) }
        try await written
        #expect(received.count == size)
        #expect(received == pattern, "the echoed bytes differ from what was sent")

        // The client's end of the stream closes the tunnel: the ship's side, then the client's.
        shutdown(fd, Int32(SHUT_WR))
        let rest = try await ShipInstancesTests.onThread { try Self.read(fd, count: 1) }
        #expect(rest.isEmpty, "the tunnel closed after the client's end of stream")
        await harness.stop()
    }

    /// Bytes the client sends right behind its upgrade request, before any 101: the relay holds
    /// what it read of them until the tunnel opens and sends them first; the ship echoes what came
    /// with the request in the same write as its 101; the rest goes through the tunnel's splice of
    /// the two sockets behind them. Every byte comes back once and in order (numbered lines).
    @Test func bytesSentBehindTheUpgradeRequestComeBackOnceAndInOrder() async throws {
        let harness = try await RelayTimeoutTests.Harness.start()
        let fd = try Self.connect(port: harness.relayPort)
        defer { close(fd) }
        let request = Array(
            "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n".utf8)
        let lines = 200_000
        var numbered = [UInt8](repeating: UInt8(ascii: "\n"), count: lines * 9)
        for line in 0..<lines {
            var digits = line
            for index in stride(from: line * 9 + 7, through: line * 9, by: -1) {
                numbered[index] = UInt8(ascii: "0") + UInt8(digits % 10)
                digits /= 10
            }
        }
        let pattern = numbered
        async let written: Void = ShipInstancesTests.onThread { try Self.writeAll(fd, request + pattern) }
        let received = try await ShipInstancesTests.onThread { () throws -> (String, [UInt8]) in
            let head = try Self.readHead(fd)
            return (head, try Self.read(fd, count: pattern.count))
        }
        try await written
        #expect(received.0.hasPrefix("HTTP/1.1 101 "), "\(received.0)")
        #expect(received.1.count == pattern.count)
        if received.1 != pattern {
            let at =
                zip(received.1, pattern).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                ?? min(received.1.count, pattern.count)
            Issue.record("the echoed bytes differ from what was sent from byte \(at) (line \(at / 9))")
        }
        shutdown(fd, Int32(SHUT_WR))
        let rest = try await ShipInstancesTests.onThread { try Self.read(fd, count: 1) }
        #expect(rest.isEmpty, "the tunnel closed after the client's end of stream")
        await harness.stop()
    }

    static func connect(port: Int) throws -> CInt {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            close(fd)
            throw Failure.system("connect", errno)
        }
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    static func writeAll(_ fd: CInt, _ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard written > 0 else { throw Failure.system("send", errno) }
            offset += written
        }
    }

    /// Reads until `count` bytes came or the stream ended.
    static func read(_ fd: CInt, count: Int) throws -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(count)
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while bytes.count < count {
            let wanted = min(chunk.count, count - bytes.count)
            let read = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, wanted, 0) }
            if read == 0 { break }
            guard read > 0 else { throw Failure.system("recv", errno) }
            bytes.append(contentsOf: chunk[0..<read])
        }
        return bytes
    }

    /// Reads one byte at a time up to the end of a response head.
    static func readHead(_ fd: CInt) throws -> String {
        var head = [UInt8]()
        while !head.suffix(4).elementsEqual(Array("\r\n\r\n".utf8)) {
            let byte = try read(fd, count: 1)
            guard let first = byte.first else { break }
            head.append(first)
        }
        return String(decoding: head, as: UTF8.self)
    }

    enum Failure: Error { case system(String, CInt) }
}
