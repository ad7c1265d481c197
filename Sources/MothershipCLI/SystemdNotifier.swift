import Supervision
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// systemd's notify protocol (sd_notify(3)) without libsystemd: datagrams of `KEY=value` lines to
/// `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace). `READY=1` once Running,
/// `STOPPING=1` when landing begins, `STATUS=` the lifecycle state at every change, and
/// `WATCHDOG=1` every half `$WATCHDOG_USEC` while the run lasts.
final class SystemdNotifier: Sendable {
    private let descriptor: Int32
    private let address: sockaddr_un
    private let addressLength: socklen_t
    private let ready = Atomic<Bool>(false)
    /// The watchdog's period, when systemd asked for one for this process.
    let watchdogInterval: Duration?

    /// Nil when not started by systemd with `Type=notify` (no `NOTIFY_SOCKET`).
    init?(environment: [String: String]) {
        guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty, path.utf8.count <= 107,
            path.hasPrefix("/") || path.hasPrefix("@")
        else { return nil }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        // An abstract socket: a leading zero byte instead of `@`, and no terminating zero counted.
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { room in room.copyBytes(from: bytes) }
        self.address = address
        addressLength = socklen_t(
            MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        if let text = environment["WATCHDOG_USEC"], let microseconds = Int64(text), microseconds > 0,
            environment["WATCHDOG_PID"].map({ $0 == String(getpid()) }) ?? true
        {
            watchdogInterval = .microseconds(microseconds / 2)
        } else {
            watchdogInterval = nil
        }
    }

    deinit { close(descriptor) }

    /// Sends one notification (best effort: systemd not listening is not an error of the run).
    func send(_ text: String) {
        var address = self.address
        let bytes = Array(text.utf8)
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bytes.withUnsafeBytes {
                    sendto(
                        descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), socketAddress,
                        addressLength)
                }
            }
        }
    }

    /// The lifecycle moved to `state`.
    func lifecycle(_ state: LifecycleState) {
        var lines = ["STATUS=\(state.rawValue)"]
        switch state {
        case .running where !ready.exchange(true, ordering: .relaxed): lines.insert("READY=1", at: 0)
        case .draining, .landed, .failed, .crashed: lines.insert("STOPPING=1", at: 0)
        default: break
        }
        send(lines.joined(separator: "\n"))
    }

    /// Pets the watchdog until cancelled.
    func watchdog() async {
        guard let interval = watchdogInterval else { return }
        while !Task.isCancelled {
            send("WATCHDOG=1")
            try? await Task.sleep(for: interval)
        }
    }
}
