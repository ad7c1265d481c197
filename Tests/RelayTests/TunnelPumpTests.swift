import Foundation
import NIOCore
import Testing

@testable import Relay

#if canImport(Glibc)
    import Glibc
#endif

/// The tunnel thread against real sockets (Unix socket pairs): each tunnel's "client" and "ship"
/// ends are handed to the pump, the test holds the other end of each pair.
@Suite("Tunnel thread", .timeLimit(.minutes(1)))
struct TunnelPumpTests {
    @Test func carriesBytesBothWaysWholeAndInOrder() async throws {
        let pump = try #require(TunnelPump())
        let tunnel = try Tunnel(pump)
        defer { tunnel.close() }
        for index in 0..<100 {
            let ping = Array("ping \(index)\n".utf8)
            #expect(await Self.write(tunnel.client, ping) == ping.count)
            #expect(await Self.read(tunnel.ship, count: ping.count) == ping)
            let pong = Array("pong \(index)\n".utf8)
            #expect(await Self.write(tunnel.ship, pong) == pong.count)
            #expect(await Self.read(tunnel.client, count: pong.count) == pong)
        }
        // 4 MB each way at once: far more than the sockets and the pump hold.
        let up = Self.pattern(4 << 20, seed: 1)
        let down = Self.pattern(4 << 20, seed: 2)
        let (atShip, atClient) = await Self.transfer(up, into: tunnel.client, down, into: tunnel.ship)
        Self.expectIntact(atShip, up)
        Self.expectIntact(atClient, down)
        await pump.drain(until: .now())
    }

    @Test func holdsReadsWhileTheOtherEndDoesNotTakeBytes() async throws {
        let pump = try #require(TunnelPump())
        let tunnel = try Tunnel(pump)
        defer { tunnel.close() }
        // The ship's end does not read: the client's writes must stop being taken long before
        // 8 MB (two socket buffers and one read of the pump's, not the whole stream).
        let bytes = Self.pattern(8 << 20, seed: 3)
        let accepted = await Self.write(tunnel.client, bytes, for: .milliseconds(500))
        #expect(accepted > 0)
        #expect(accepted < 4 << 20)
        // Then everything flows once the ship reads, in order.
        let (atShip, _) = await Self.transfer(
            Array(bytes[accepted...]), into: tunnel.client, [], into: tunnel.ship,
            alreadyOnTheWay: accepted)
        Self.expectIntact(atShip, bytes)
        await pump.drain(until: .now())
    }

    @Test func deliversWhatWaitsThenClosesBothAtEndOfStream() async throws {
        let pump = try #require(TunnelPump())
        let tunnel = try Tunnel(pump)
        // 1 MB, then the client closes: the ship gets all of it, then end of stream.
        let bytes = Self.pattern(1 << 20, seed: 4)
        let (atShip, _) = await Self.transfer(
            bytes, into: tunnel.client, [], into: tunnel.ship, closingSender: true)
        Self.expectIntact(atShip, bytes)
        #expect(await Self.readsEndOfStream(tunnel.ship))
        Glibc.close(tunnel.ship)
        #expect(await Self.eventually { pump.openTunnels == 0 })

        // The other way round: the ship closes, the client sees the end.
        let second = try Tunnel(pump)
        #expect(await Self.write(second.ship, Array("bye\n".utf8)) == 4)
        Glibc.close(second.ship)
        #expect(await Self.read(second.client, count: 4) == Array("bye\n".utf8))
        #expect(await Self.readsEndOfStream(second.client))
        Glibc.close(second.client)
        #expect(await Self.eventually { pump.openTunnels == 0 })
        await pump.drain(until: .now())
    }

    @Test func drainWaitsThenClosesWhatIsLeftAndRefusesNewTunnels() async throws {
        let pump = try #require(TunnelPump())
        let tunnel = try Tunnel(pump)
        defer { tunnel.close() }
        #expect(pump.openTunnels == 1)
        let started = NIODeadline.now()
        await pump.drain(until: .now() + .milliseconds(200))
        #expect(NIODeadline.now() - started >= .milliseconds(200))
        #expect(pump.openTunnels == 0)
        #expect(await Self.readsEndOfStream(tunnel.client))
        #expect(await Self.readsEndOfStream(tunnel.ship))
        // A stopped pump takes nothing (the caller keeps its descriptors).
        let (a, b) = try Self.socketPair()
        defer {
            Glibc.close(a)
            Glibc.close(b)
        }
        #expect(!pump.adopt(client: a, ship: b))
        #expect(fcntl(a, F_GETFD) >= 0)
    }

    @Test func drainEndsAtOnceWhenNoTunnelIsOpen() async throws {
        let pump = try #require(TunnelPump())
        let tunnel = try Tunnel(pump)
        tunnel.close()
        #expect(await Self.eventually { pump.openTunnels == 0 })
        let started = NIODeadline.now()
        await pump.drain(until: .now() + .seconds(20))
        #expect(NIODeadline.now() - started < .seconds(10))
    }

    // MARK: Helpers

    /// Two socket pairs; one end of each goes to the pump, the test keeps the other.
    struct Tunnel {
        let client: CInt
        let ship: CInt

        init(_ pump: TunnelPump) throws {
            let (client, pumpClient) = try TunnelPumpTests.socketPair()
            let (ship, pumpShip) = try TunnelPumpTests.socketPair()
            self.client = client
            self.ship = ship
            #expect(pump.adopt(client: pumpClient, ship: pumpShip))
        }

        func close() {
            Glibc.close(client)
            Glibc.close(ship)
        }
    }

    struct Failure: Error {}

    static func socketPair() throws -> (CInt, CInt) {
        var fds: [CInt] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else { throw Failure() }
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        return (fds[0], fds[1])
    }

    /// Records an issue unless `received` is `sent`, saying where they part (not the megabytes).
    static func expectIntact(
        _ received: [UInt8], _ sent: [UInt8], sourceLocation: SourceLocation = #_sourceLocation
    ) {
        if received == sent { return }
        let first =
            zip(received, sent).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            ?? min(received.count, sent.count)
        Issue.record(
            "received \(received.count) of \(sent.count) bytes, first difference at \(first)",
            sourceLocation: sourceLocation)
    }

    /// `count` bytes of a pattern whose period (65,521, a prime) never lines up with reads or
    /// socket buffers, so a lost, repeated or reordered piece shows. Cheap to make in a debug
    /// build (one period computed, the rest copied): these tests share the machine with others.
    static func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
        let period = (0..<65_521).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) &+ seed }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count + period.count)
        while bytes.count < count { bytes += period }
        bytes.removeLast(bytes.count - count)
        return bytes
    }

    /// Waits until `fd` is ready for `events`, at most `milliseconds`.
    static func wait(_ fd: CInt, _ events: Int16, milliseconds: Int32 = 5_000) -> Bool {
        var entry = pollfd(fd: fd, events: events, revents: 0)
        return poll(&entry, 1, milliseconds) > 0
    }

    /// Writes `bytes`, waiting while the socket is full, for at most `limit`; how many were taken.
    static func writeBlocking(_ fd: CInt, _ bytes: [UInt8], for limit: TimeAmount) -> Int {
        let deadline = NIODeadline.now() + limit
        var offset = 0
        while offset < bytes.count {
            let result = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
            if result > 0 {
                offset += result
                continue
            }
            let left = deadline - NIODeadline.now()
            guard result < 0, errno == EAGAIN, left > .zero,
                wait(fd, Int16(POLLOUT), milliseconds: Int32(max(1, left.nanoseconds / 1_000_000)))
            else { break }
        }
        return offset
    }

    /// Reads exactly `count` bytes (fewer only at end of stream or after five seconds).
    static func readBlocking(_ fd: CInt, count: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while bytes.count < count {
            let result = recv(fd, &buffer, min(buffer.count, count - bytes.count), 0)
            if result > 0 {
                bytes += buffer[..<result]
            } else if result < 0 && errno == EAGAIN {
                if !wait(fd, Int16(POLLIN)) { break }
            } else {
                break
            }
        }
        return bytes
    }

    /// Whether `fd` reaches end of stream (or a reset) within five seconds, nothing else arriving.
    static func readsEndOfStreamBlocking(_ fd: CInt) -> Bool {
        var byte: UInt8 = 0
        while wait(fd, Int16(POLLIN)) {
            let result = recv(fd, &byte, 1, 0)
            if result == 0 || (result < 0 && errno != EAGAIN) { return true }
            if result > 0 { return false }
        }
        return false
    }

    /// Sends `up` into `upEnd` and `down` into `downEnd` while reading from the other end of each,
    /// in one loop (no thread blocks on a full socket); returns what arrived at each far end.
    /// `alreadyOnTheWay` bytes were written into `upEnd` before. `closingSender` closes `upEnd`
    /// once all of `up` is written.
    static func transferBlocking(
        _ up: [UInt8], into upEnd: CInt, _ down: [UInt8], into downEnd: CInt,
        alreadyOnTheWay: Int, closingSender: Bool
    ) -> (atDownEnd: [UInt8], atUpEnd: [UInt8]) {
        let expectedAtDown = alreadyOnTheWay + up.count
        var readAtDown: [UInt8] = []
        var readAtUp: [UInt8] = []
        var sentUp = 0
        var sentDown = 0
        var upOpen = true
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let deadline = NIODeadline.now() + .seconds(30)
        while NIODeadline.now() < deadline
            && (readAtDown.count < expectedAtDown || readAtUp.count < down.count)
        {
            if upOpen && sentUp < up.count {
                let result = up[sentUp...].withUnsafeBytes { Glibc.send(upEnd, $0.baseAddress, $0.count, 0) }
                if result > 0 { sentUp += result }
            }
            if upOpen && closingSender && sentUp == up.count {
                Glibc.close(upEnd)
                upOpen = false
            }
            if sentDown < down.count {
                let result = down[sentDown...].withUnsafeBytes {
                    Glibc.send(downEnd, $0.baseAddress, $0.count, 0)
                }
                if result > 0 { sentDown += result }
            }
            let atDown = recv(downEnd, &buffer, buffer.count, 0)
            if atDown > 0 { readAtDown += buffer[..<atDown] }
            if upOpen {
                let atUp = recv(upEnd, &buffer, buffer.count, 0)
                if atUp > 0 { readAtUp += buffer[..<atUp] }
            }
            if atDown <= 0 {
                var entries = [pollfd(fd: downEnd, events: Int16(POLLIN), revents: 0)]
                if upOpen { entries.append(pollfd(fd: upEnd, events: Int16(POLLIN | POLLOUT), revents: 0)) }
                _ = poll(&entries, nfds_t(entries.count), 10)
            }
        }
        return (readAtDown, readAtUp)
    }

    // The socket work blocks (poll): it runs on threads of its own, never on the cooperative pool
    // that every other suite's tests share.

    static func write(_ fd: CInt, _ bytes: [UInt8], for limit: TimeAmount = .seconds(5)) async -> Int {
        await onThread { writeBlocking(fd, bytes, for: limit) }
    }

    static func read(_ fd: CInt, count: Int) async -> [UInt8] {
        await onThread { readBlocking(fd, count: count) }
    }

    static func readsEndOfStream(_ fd: CInt) async -> Bool {
        await onThread { readsEndOfStreamBlocking(fd) }
    }

    static func transfer(
        _ up: [UInt8], into upEnd: CInt, _ down: [UInt8], into downEnd: CInt,
        alreadyOnTheWay: Int = 0, closingSender: Bool = false
    ) async -> (atDownEnd: [UInt8], atUpEnd: [UInt8]) {
        await onThread {
            transferBlocking(
                up, into: upEnd, down, into: downEnd, alreadyOnTheWay: alreadyOnTheWay,
                closingSender: closingSender)
        }
    }

    static func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: body()) }.start()
        }
    }

    static func eventually(_ condition: () -> Bool) async -> Bool {
        for _ in 0..<250 {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }
}
