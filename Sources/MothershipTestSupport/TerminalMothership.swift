import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A `mothership` process whose stdin, stdout and stderr are a pseudo-terminal the test opened
/// (posix_openpt; no tmux needed): the test types keys into it and reads the screen back through a
/// `VirtualTerminal`. Every wait has a deadline; `stop()` leaves nothing behind.
public final class TerminalMothership: @unchecked Sendable {
    public let process = Process()
    private let master: Int32
    /// Kept open by the test so the terminal's modes can be read after mothership exits.
    private let slave: Int32
    private struct Captured {
        var bytes: [UInt8] = []
        var terminal: VirtualTerminal
    }
    private let captured: Mutex<Captured>
    private let reading = Atomic<Bool>(true)
    private let readerDone = DispatchSemaphore(value: 0)

    /// TIOCSPTLCK = _IOW('T', 0x31, int) and TIOCGPTN = _IOR('T', 0x30, unsigned int) (function-like
    /// macros, which Swift does not import; the same on x86_64 and arm64).
    static let setLock: UInt = 0x4004_5431
    static let getNumber: UInt = 0x8004_5430

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public init(_ arguments: [String], in directory: String, columns: Int = 80, rows: Int = 24) throws {
        // posix_openpt/grantpt/unlockpt/ptsname hide behind feature macros Glibc's module does not
        // set; their Linux implementation is these two ioctls on /dev/ptmx.
        master = open("/dev/ptmx", O_RDWR | O_NOCTTY)
        var unlock: Int32 = 0
        var number: UInt32 = 0
        guard master >= 0, ioctl(master, Self.setLock, &unlock) == 0,
            ioctl(master, Self.getNumber, &number) == 0
        else {
            throw Failure(description: "cannot open a pseudo-terminal: errno \(errno)")
        }
        slave = open("/dev/pts/\(number)", O_RDWR | O_NOCTTY)
        guard slave >= 0 else { throw Failure(description: "cannot open /dev/pts/\(number): errno \(errno)") }
        var size = winsize(ws_row: UInt16(rows), ws_col: UInt16(columns), ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(slave, UInt(TIOCSWINSZ), &size)
        // Neither end leaks into mothership (it gets the slave as 0, 1 and 2 only).
        _ = fcntl(master, F_SETFD, FD_CLOEXEC)
        _ = fcntl(slave, F_SETFD, FD_CLOEXEC)
        captured = Mutex(Captured(terminal: VirtualTerminal(columns: columns, rows: rows)))

        process.executableURL = URL(fileURLWithPath: BinaryRunner.binary)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.environment = ProcessInfo.processInfo.environment.merging(["TERM": "xterm-256color"]) {
            _, new in new
        }
        let handle = FileHandle(fileDescriptor: slave, closeOnDealloc: false)
        process.standardInput = handle
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let thread = Thread { [self] in readLoop() }
        thread.start()
    }

    private func readLoop() {
        defer { readerDone.signal() }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while reading.load(ordering: .relaxed) {
            var descriptor = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 20) > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { read(master, $0.baseAddress, $0.count) }
            if count <= 0 {
                if count < 0 && errno == EINTR { continue }
                usleep(10_000)  // EIO until a process opens the slave again: nothing to read
                continue
            }
            let chunk = buffer.prefix(count)
            captured.withLock {
                $0.bytes.append(contentsOf: chunk)
                $0.terminal.feed(chunk)
            }
        }
    }

    public var pid: Int32 { process.processIdentifier }

    /// The screen as a terminal would show it now.
    public var screen: VirtualTerminal { captured.withLock { $0.terminal } }

    /// Every byte mothership wrote to the terminal.
    public var output: [UInt8] { captured.withLock { $0.bytes } }

    /// Types `text` (escape sequences included) as a user would.
    public func send(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(master, $0.baseAddress, $0.count) }
    }

    /// Changes the window size (the test sends SIGWINCH: mothership is not the terminal's
    /// foreground process group, so the kernel does not).
    public func resize(columns: Int, rows: Int) {
        var size = winsize(ws_row: UInt16(rows), ws_col: UInt16(columns), ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(slave, UInt(TIOCSWINSZ), &size)
    }

    /// The terminal's current modes (what mothership left behind once it exited).
    public func attributes() -> termios {
        var attributes = termios()
        tcgetattr(slave, &attributes)
        return attributes
    }

    /// Waits until the screen satisfies `condition`, polling every 20 ms.
    public func waitForScreen(
        _ what: String, timeout: Duration = .seconds(20), _ condition: (VirtualTerminal) -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition(screen) {
            if ContinuousClock.now > deadline {
                throw Failure(description: "timed out waiting for \(what); screen:\n\(screen.text)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Waits for mothership to exit; returns its exit status (128+signal when killed).
    public func waitForExit(timeout: Duration = .seconds(30)) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline {
                throw Failure(description: "mothership did not exit; screen:\n\(screen.text)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        try await Task.sleep(for: .milliseconds(100))  // the last bytes
        return process.terminationReason == .uncaughtSignal
            ? 128 + process.terminationStatus : process.terminationStatus
    }

    /// Kills mothership if still running, then closes the terminal.
    public func stop() {
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
        if reading.exchange(false, ordering: .relaxed) {
            readerDone.wait()
            close(master)
            close(slave)
        }
    }
}
