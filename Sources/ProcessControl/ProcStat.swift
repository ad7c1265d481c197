#if canImport(Glibc)
    import Glibc
#endif

/// The few fields of `/proc/<pid>/stat` we use.
struct ProcStat: Sendable, Hashable {
    var pid: Int32
    /// Field 3: R, S, D, Z, T, ...
    var state: UInt8
    /// Field 4.
    var parent: Int32
    /// Field 5.
    var group: Int32
    /// Field 23, bytes.
    var virtualBytes: UInt64
    /// Field 24, pages.
    var residentPages: UInt64

    var isZombie: Bool { state == UInt8(ascii: "Z") || state == UInt8(ascii: "X") }

    static let pageSize = UInt64(max(sysconf(Int32(_SC_PAGESIZE)), 1))

    /// Reads one process; nil when it does not exist (any more).
    static func read(_ pid: Int32) -> ProcStat? {
        let fd = "/proc/\(pid)/stat".withCString { open($0, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1024) { buffer in
            var count = 0
            while count < buffer.count {
                let got = Glibc.read(fd, buffer.baseAddress! + count, buffer.count - count)
                if got < 0 && errno == EINTR { continue }
                if got <= 0 { break }
                count += got
            }
            return parse(pid: pid, UnsafeBufferPointer(rebasing: buffer[..<count]))
        }
    }

    /// Parses a stat line: the fields after the *last* ')', because the command name may contain
    /// spaces and parentheses.
    static func parse(pid: Int32, _ line: UnsafeBufferPointer<UInt8>) -> ProcStat? {
        guard let close = line.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        var stat = ProcStat(pid: pid, state: 0, parent: 0, group: 0, virtualBytes: 0, residentPages: 0)
        var field = 2  // the command name was field 2
        var value: UInt64 = 0
        var inField = false
        var index = close + 1
        while index <= line.count {
            let byte = index < line.count ? line[index] : UInt8(ascii: " ")
            index += 1
            if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\n") {
                guard inField else { continue }
                switch field {
                case 4: stat.parent = Int32(truncatingIfNeeded: value)
                case 5: stat.group = Int32(truncatingIfNeeded: value)
                case 23: stat.virtualBytes = value
                case 24:
                    stat.residentPages = value
                    return stat
                default: break
                }
                inField = false
                value = 0
                continue
            }
            if !inField {
                inField = true
                field += 1
                if field == 3 { stat.state = byte }
            }
            if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                value = value &* 10 &+ UInt64(byte - UInt8(ascii: "0"))
            }
        }
        return field >= 5 ? stat : nil
    }

    /// Every process visible in /proc.
    static func all() -> [ProcStat] {
        guard let directory = opendir("/proc") else { return [] }
        defer { closedir(directory) }
        var result: [ProcStat] = []
        result.reserveCapacity(512)
        while let entry = readdir(directory) {
            let pid = withUnsafeBytes(of: entry.pointee.d_name) { name -> Int32? in
                var value: Int32 = 0
                for byte in name {
                    if byte == 0 { break }
                    guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"), value < Int32.max / 10
                    else {
                        return nil
                    }
                    value = value * 10 + Int32(byte - UInt8(ascii: "0"))
                }
                return value > 0 ? value : nil
            }
            if let pid, let stat = read(pid) { result.append(stat) }
        }
        return result
    }
}
