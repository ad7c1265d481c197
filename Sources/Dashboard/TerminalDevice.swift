import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The controlling terminal on stdin/stdout in raw mode with the alternate screen, and its way back.
/// The only impure part of the dashboard: termios, TIOCGWINSZ, SIGWINCH, reading keys, writing frames.
///
/// Restoring (termios as found, attributes reset, cursor shown, normal screen) happens once, from
/// whichever exit path comes first: `restore()` in the dashboard's shutdown, `atexit`, or a fatal
/// signal (SIGSEGV, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGQUIT, SIGHUP), after which the signal
/// takes its previous course.
public final class TerminalDevice: Sendable {
    static let input: Int32 = 0
    static let output: Int32 = 1

    /// Whether both stdin and stdout are terminals (else `--tui` falls back to plain output).
    public static var isInteractive: Bool { isatty(input) == 1 && isatty(output) == 1 }

    /// Puts the terminal in raw mode (keys arrive one by one, no echo; Ctrl-C still sends SIGINT)
    /// and switches to the alternate screen. Nil when stdin is not a terminal.
    public static func open() -> TerminalDevice? {
        var attributes = termios()
        guard isInteractive, tcgetattr(input, &attributes) == 0 else { return nil }
        TerminalRestore.arm(saved: attributes)
        var raw = attributes
        raw.c_iflag &= ~tcflag_t(IXON | ICRNL | BRKINT | INPCK | ISTRIP)
        raw.c_lflag &= ~tcflag_t(ECHO | ICANON | IEXTEN)
        withUnsafeMutableBytes(of: &raw.c_cc) { bytes in
            bytes[Int(VMIN)] = 1
            bytes[Int(VTIME)] = 0
        }
        tcsetattr(input, TCSAFLUSH, &raw)
        let device = TerminalDevice()
        device.write(FrameEncoder.enter)
        return device
    }

    /// Dispatch sources are not `Sendable`; these are only touched under `lock`.
    nonisolated(unsafe) private var sources: [any DispatchSourceProtocol] = []
    private let lock = Mutex(())
    private let queue = DispatchQueue(label: "mothership.dashboard.terminal")

    private init() {}

    /// The window size (80×24 when the terminal does not say).
    public func size() -> TerminalSize {
        var window = winsize()
        guard ioctl(Self.output, UInt(TIOCGWINSZ), &window) == 0, window.ws_col > 0, window.ws_row > 0 else {
            return TerminalSize(columns: 80, rows: 24)
        }
        return TerminalSize(columns: Int(window.ws_col), rows: Int(window.ws_row))
    }

    /// Calls `bytes` with whatever arrives on stdin, and `resized` on SIGWINCH, until `restore()`.
    public func listen(
        bytes: @escaping @Sendable ([UInt8]) -> Void, resized: @escaping @Sendable () -> Void
    ) {
        let reader = DispatchSource.makeReadSource(fileDescriptor: Self.input, queue: queue)
        reader.setEventHandler {
            var buffer = [UInt8](repeating: 0, count: 256)
            let count = buffer.withUnsafeMutableBytes { Glibc.read(Self.input, $0.baseAddress, $0.count) }
            if count > 0 {
                bytes(Array(buffer.prefix(count)))
            } else if count == 0 {
                reader.cancel()  // end of input: keep running without keys
            }
        }
        signal(SIGWINCH, SIG_IGN)
        let winch = DispatchSource.makeSignalSource(signal: SIGWINCH, queue: queue)
        winch.setEventHandler { resized() }
        lock.withLock { _ in sources = [reader, winch] }
        reader.resume()
        winch.resume()
    }

    /// Writes all of `text` to stdout.
    public func write(_ text: String) {
        var bytes = Array(text.utf8)
        guard !bytes.isEmpty else { return }
        TerminalRestore.writeAll(&bytes)
    }

    /// Stops listening and gives the terminal back as it was found. Idempotent.
    public func restore() {
        lock.withLock { _ in
            for source in sources { source.cancel() }
            sources = []
        }
        TerminalRestore.restore()
    }
}

/// The restore path shared by normal shutdown, `atexit` and the fatal-signal handler: only
/// async-signal-safe calls (write, tcsetattr, sigaction) on memory prepared beforehand.
enum TerminalRestore {
    nonisolated(unsafe) static var saved = termios()
    nonisolated(unsafe) static var previous: [sigaction] = Array(repeating: .init(), count: 65)
    nonisolated(unsafe) static var leaveBytes = Array(FrameEncoder.leave.utf8)
    static let armed = Atomic<Bool>(false)
    static let installed = Atomic<Bool>(false)
    static let fatalSignals: [Int32] = [SIGSEGV, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGQUIT, SIGHUP]

    static func arm(saved attributes: termios) {
        saved = attributes
        _ = leaveBytes.count
        if !installed.exchange(true, ordering: .sequentiallyConsistent) {
            atexit { TerminalRestore.restore() }
            for signal in fatalSignals {
                var action: sigaction = .init()
                action.__sigaction_handler.sa_handler = { signal in
                    TerminalRestore.restore()
                    // Back to what was there (the default, or the runtime's backtracer), and the
                    // signal again: blocked in this handler, it arrives as soon as the handler
                    // returns (a fault re-raised this way still reports the faulting context).
                    _ = withUnsafePointer(to: &TerminalRestore.previous[Int(signal)]) {
                        sigaction(signal, $0, nil)
                    }
                    raise(signal)
                }
                sigemptyset(&action.sa_mask)
                sigaction(signal, &action, &previous[Int(signal)])
                // An ignored signal (SIGHUP under nohup) stays ignored.
                if unsafeBitCast(previous[Int(signal)].__sigaction_handler.sa_handler, to: Int.self) == 1 {
                    sigaction(signal, &previous[Int(signal)], nil)
                }
            }
        }
        armed.store(true, ordering: .sequentiallyConsistent)
    }

    static func restore() {
        guard armed.exchange(false, ordering: .sequentiallyConsistent) else { return }
        writeAll(&leaveBytes)
        tcsetattr(TerminalDevice.input, TCSAFLUSH, &saved)
    }

    static func writeAll(_ bytes: inout [UInt8]) {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(
                    TerminalDevice.output, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }
}
