import CMothershipSystem

#if canImport(Glibc)
    import Glibc
#endif

/// Where a manifest's control socket is, and who holds it.
public enum ControlSocket {
    /// `sockaddr_un`'s path room, less its terminating zero.
    public static let maxPathBytes = 107

    /// The socket for a manifest in `directory`: `setting` (relative to the directory) or
    /// `.mothership.sock` beside the manifest.
    public static func path(setting: String?, manifestDirectory directory: String) -> String {
        let name = setting ?? ".mothership.sock"
        if name.hasPrefix("/") { return name }
        return directory == "." ? name : directory + "/" + name
    }

    /// A description of the live process that answers on `path` ("pid 1234"), nil when nothing
    /// does (no file, or one left by a killed run); a file there that is not a socket counts as
    /// held, so it is never replaced.
    public static func liveHolder(at path: String) -> String? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        guard info.st_mode & S_IFMT == S_IFSOCK else { return "a file that is not a socket" }
        let descriptor = connect(to: path)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        let pid = ms_peer_pid(descriptor)
        return pid > 0 ? "mothership pid \(pid)" : "a live process"
    }

    /// A connected stream socket to `path`, or -1 with `errno` set.
    static func connect(to path: String) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count <= maxPathBytes else {
            errno = ENAMETOOLONG
            return -1
        }
        withUnsafeMutableBytes(of: &address.sun_path) { room in
            room.copyBytes(from: bytes)
            room[bytes.count] = 0
        }
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return -1 }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            let saved = errno
            close(descriptor)
            errno = saved
            return -1
        }
        return descriptor
    }
}

/// The commands' side of the control socket: one HTTP/1.1 request per connection, blocking (a
/// command does nothing else meanwhile).
public struct ControlClient: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    public struct Response: Sendable {
        public var status: Int
        public var body: String

        public init(status: Int, body: String) {
            self.status = status
            self.body = body
        }
    }

    public enum Failure: Error, Sendable, CustomStringConvertible {
        /// Nothing listens there: no mothership runs for this manifest.
        case noMothership(path: String)
        case broken(String)

        public var description: String {
            switch self {
            case .noMothership(let path): "no control socket at \(path)"
            case .broken(let reason): "the control socket answered badly: \(reason)"
            }
        }
    }

    /// Sends a request and reads the whole answer.
    public func request(_ method: String, _ target: String) throws(Failure) -> Response {
        var status = 0
        var body: [UInt8] = []
        try exchange(method, target) { code in
            status = code
        } body: {
            body += $0
        }
        return Response(status: status, body: String(decoding: body, as: UTF8.self))
    }

    /// Sends a request and hands the answer's body to `body` piece by piece as it arrives (for
    /// `logs -f`), until the server closes.
    public func exchange(
        _ method: String, _ target: String, status: (Int) -> Void, body: ([UInt8]) -> Void
    ) throws(Failure) {
        let descriptor = ControlSocket.connect(to: path)
        guard descriptor >= 0 else { throw .noMothership(path: path) }
        defer { close(descriptor) }
        let request = Array(
            "\(method) \(target) HTTP/1.1\r\nHost: mothership\r\nContent-Length: 0\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            let count = request[sent...].withUnsafeBytes {
                send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard count > 0 else { throw .broken("send failed: \(String(cString: strerror(errno)))") }
            sent += count
        }
        var decoder = ResponseDecoder()
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            do {
                try decoder.feed(chunk[..<count], status: status, body: body)
            } catch {
                throw .broken(error.reason)
            }
            if decoder.isComplete { break }
        }
        guard decoder.sawHead else { throw .broken("the connection closed before an answer") }
    }
}

/// An HTTP/1.1 response as it arrives: the status line and headers, then a body framed by
/// `Content-Length`, chunked, or by the end of the connection.
struct ResponseDecoder {
    struct Malformed: Error {
        let reason: String
    }

    private var buffer: [UInt8] = []
    private(set) var sawHead = false
    private var remaining: Int?
    private var chunked = false
    private(set) var isComplete = false

    mutating func feed(_ bytes: ArraySlice<UInt8>, status: (Int) -> Void, body: ([UInt8]) -> Void)
        throws(Malformed)
    {
        buffer += bytes
        if !sawHead {
            guard let end = find([13, 10, 13, 10]) else { return }
            let head = String(decoding: buffer[..<end], as: UTF8.self)
            buffer.removeFirst(end + 4)
            var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
            let statusLine = lines.removeFirst().split(separator: " ")
            guard statusLine.count >= 2, let code = Int(statusLine[1]) else {
                throw Malformed(reason: "no status line")
            }
            for line in lines {
                let parts = line.split(separator: ":", maxSplits: 1)
                guard parts.count == 2 else { continue }
                let value = parts[1].trimmingCharacters(in: " ")
                switch parts[0].lowercased() {
                case "content-length": remaining = Int(value)
                case "transfer-encoding": chunked = value.lowercased() == "chunked"
                default: break
                }
            }
            sawHead = true
            status(code)
        }
        if chunked {
            while !isComplete {
                guard let lineEnd = find([13, 10]) else { return }
                let sizeText =
                    String(decoding: buffer[..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
                guard let size = Int(sizeText.trimmingCharacters(in: " "), radix: 16) else {
                    throw Malformed(reason: "bad chunk size")
                }
                guard buffer.count >= lineEnd + 2 + size + 2 else { return }
                if size == 0 {
                    isComplete = true
                } else {
                    body(Array(buffer[(lineEnd + 2)..<(lineEnd + 2 + size)]))
                }
                buffer.removeFirst(lineEnd + 2 + size + 2)
            }
        } else if let left = remaining {
            let take = min(left, buffer.count)
            if take > 0 { body(Array(buffer[..<take])) }
            buffer.removeFirst(take)
            remaining = left - take
            if remaining == 0 { isComplete = true }
        } else if !buffer.isEmpty {
            body(buffer)
            buffer.removeAll()
        }
    }

    private func find(_ marker: [UInt8]) -> Int? {
        guard buffer.count >= marker.count else { return nil }
        for index in 0...(buffer.count - marker.count)
        where buffer[index..<(index + marker.count)].elementsEqual(marker) {
            return index
        }
        return nil
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var text = self
        while let first = text.first, set.contains(first) { text.removeFirst() }
        while let last = text.last, set.contains(last) { text.removeLast() }
        return String(text)
    }
}
