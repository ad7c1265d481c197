import CMothershipSystem
import Supervision
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The one output thread: epoll over the non-blocking read ends of every child's stdout and stderr,
/// split into lines and handed to each request's `output` callback on this thread, in order per
/// stream. It also keeps the timers that release `exitStatus()` when a grandchild holds a pipe open.
final class OutputPump: Sendable {
    /// A pipe to read until end of stream.
    struct Source: Sendable {
        var fd: Int32
        var stream: OutputLine.Stream
        var process: SpawnedProcess
        var output: @Sendable (OutputLine) -> Void
    }

    private struct Inbox: Sendable {
        var sources: [Source] = []
        var graces: [(process: SpawnedProcess, deadline: ContinuousClock.Instant)] = []
    }

    private static let wakeupToken = UInt64.max
    private static let scratchSize = 64 * 1024

    private let inbox = Mutex(Inbox())
    private let epoll: Int32
    private let wakeup: Int32

    init() {
        epoll = ms_epoll_create()
        wakeup = ms_eventfd()
        precondition(epoll >= 0 && wakeup >= 0, "cannot create the output poller: \(SystemError.text(errno))")
        let added = ms_epoll_add(epoll, wakeup, Self.wakeupToken)
        precondition(added == 0, "cannot watch the output wake-up: \(SystemError.text(added))")
    }

    /// Starts reading `sources` (called by the spawn thread right after a fork).
    func watch(_ sources: [Source]) {
        inbox.withLock { $0.sources.append(contentsOf: sources) }
        ms_eventfd_signal(wakeup)
    }

    /// Releases `process`'s `exitStatus()` at `deadline` if its pipes are still open then.
    func armGrace(for process: SpawnedProcess, deadline: ContinuousClock.Instant) {
        inbox.withLock { $0.graces.append((process, deadline)) }
        ms_eventfd_signal(wakeup)
    }

    /// The output thread's body; never returns.
    func run() {
        var readers: [Int32: PipeReader] = [:]
        var graces: [(process: SpawnedProcess, deadline: ContinuousClock.Instant)] = []
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.scratchSize, alignment: 16)
        var tokens = [UInt64](repeating: 0, count: 64)
        var events = [UInt32](repeating: 0, count: 64)
        while true {
            let timeout = graces.lazy.map(\.deadline).min().map(Self.milliseconds(until:)) ?? -1
            let count = ms_epoll_wait(epoll, &tokens, &events, Int32(tokens.count), timeout)
            var woken = false
            for index in 0..<Int(max(count, 0)) {
                if tokens[index] == Self.wakeupToken {
                    woken = true
                    continue
                }
                let fd = Int32(truncatingIfNeeded: tokens[index])
                guard let reader = readers[fd], reader.pump(scratch) else { continue }
                // End of stream: forget the pipe before closing it (another process may still hold a
                // duplicate of the same pipe end, which would keep epoll reporting it).
                _ = ms_epoll_remove(epoll, fd)
                close(fd)
                readers[fd] = nil
                reader.source.process.streamClosed()
            }
            if woken {
                ms_eventfd_drain(wakeup)
                let arrived = inbox.withLock { inbox in
                    defer { inbox = Inbox() }
                    return inbox
                }
                for source in arrived.sources {
                    let error = ms_epoll_add(epoll, source.fd, UInt64(UInt32(bitPattern: source.fd)))
                    if error == 0 {
                        readers[source.fd] = PipeReader(source)
                    } else {
                        close(source.fd)
                        source.process.streamClosed()
                    }
                }
                graces.append(contentsOf: arrived.graces)
            }
            if !graces.isEmpty {
                let now = ContinuousClock.now
                for grace in graces where grace.deadline <= now { grace.process.outputGraceExpired() }
                graces.removeAll { $0.deadline <= now }
            }
        }
    }

    /// epoll_wait's timeout for `deadline`, rounded up so we never wake just before it.
    private static func milliseconds(until deadline: ContinuousClock.Instant) -> Int32 {
        let remaining = deadline - ContinuousClock.now
        guard remaining > .zero else { return 0 }
        let (seconds, attoseconds) = remaining.components
        let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: milliseconds)
    }
}

/// One pipe being read on the output thread (confined to it).
private final class PipeReader {
    let source: OutputPump.Source
    private var splitter = LineSplitter()

    init(_ source: OutputPump.Source) {
        self.source = source
    }

    /// Reads what is available and delivers the completed lines. True at end of stream (the last,
    /// unterminated line has been delivered too).
    func pump(_ scratch: UnsafeMutableRawBufferPointer) -> Bool {
        let source = self.source
        let deliver = { (text: String) in
            source.output(OutputLine(source: source.process.name, stream: source.stream, text: text))
        }
        // A few reads per wake-up at most, so one chatty child cannot starve the others.
        for _ in 0..<8 {
            let count = read(source.fd, scratch.baseAddress, scratch.count)
            if count > 0 {
                splitter.append(UnsafeRawBufferPointer(rebasing: scratch[..<count]), deliver)
                if count < scratch.count { return false }
                continue
            }
            if count < 0 && errno == EINTR { continue }
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return false }
            splitter.finish(deliver)  // 0: end of stream; any other error ends it too
            return true
        }
        return false
    }
}
