import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ShipManifest
import Supervision

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#endif

/// The control socket (SPEC §12.1): HTTP/1.1 and JSON on a Unix socket of mode 0600, one request
/// per connection (`curl --unix-socket .mothership.sock http://ms/v1/fleet` works).
public final class ControlServer: Sendable {
    public let path: String
    private let control: any FleetControl
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel

    private init(
        path: String, control: any FleetControl, group: MultiThreadedEventLoopGroup, channel: any Channel
    ) {
        self.path = path
        self.control = control
        self.group = group
        self.channel = channel
    }

    /// Listens on `path`: bound under a temporary name, given mode 0600, then renamed into place,
    /// so nobody can connect while it is still open to everyone. A live mothership on `path`
    /// makes it throw; a file a killed run left behind is replaced.
    public static func start(path: String, control: any FleetControl, logger: Logger) async throws
        -> ControlServer
    {
        if let holder = ControlSocket.liveHolder(at: path) {
            throw ControlSocketError.inUse(path: path, holder: holder)
        }
        let temporary = "\(path).\(getpid()).tmp"
        unlink(temporary)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let channel = try await ServerBootstrap(group: group)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                            withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(
                            ControlHandler(control: control, logger: logger))
                    }
                }
                .bind(unixDomainSocketPath: temporary).get()
            guard chmod(temporary, 0o600) == 0, rename(temporary, path) == 0 else {
                let reason = String(cString: strerror(errno))
                try? await channel.close()
                unlink(temporary)
                throw ControlSocketError.cannotListen(path: path, reason: reason)
            }
            return ControlServer(path: path, control: control, group: group, channel: channel)
        } catch let error as ControlSocketError {
            try? await group.shutdownGracefully()
            throw error
        } catch {
            unlink(temporary)
            try? await group.shutdownGracefully()
            throw ControlSocketError.cannotListen(path: path, reason: "\(error)")
        }
    }

    /// Stops listening and removes the socket file (when it is still this server's).
    public func stop() async {
        try? await channel.close()
        unlink(path)
        try? await group.shutdownGracefully()
    }
}

public enum ControlSocketError: Error, Sendable, CustomStringConvertible {
    case inUse(path: String, holder: String)
    case cannotListen(path: String, reason: String)

    public var description: String {
        switch self {
        case .inUse(let path, let holder):
            "another mothership is running this manifest (\(holder) answers on its control socket \(path)); land it first or set [mothership] control_socket"
        case .cannotListen(let path, let reason): "cannot listen on the control socket \(path): \(reason)"
        }
    }
}

/// One request: routed, answered, closed; `logs` with `follow=1` streams until the client leaves.
final class ControlHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let control: any FleetControl
    private let logger: Logger
    private var head: HTTPRequestHead?

    init(control: any FleetControl, logger: Logger) {
        self.control = control
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break  // no endpoint takes a body
        case .end:
            guard let head else { return }
            self.head = nil
            let route = ControlRoute(method: head.method, uri: head.uri)
            let channel = context.channel
            let control = self.control
            let logger = self.logger
            Task { await route.answer(control: control, on: channel, logger: logger) }
        }
    }
}

/// An endpoint of SPEC §12.1, parsed from the request line.
enum ControlRoute: Equatable {
    case fleet
    case action(vessel: String, ControlAction)
    case logs(vessels: [String]?, lines: Int, follow: Bool)
    case land
    case reload
    case reopenLogs
    case notFound(String)
    case methodNotAllowed(String)

    enum ControlAction: String, Sendable, CaseIterable {
        case restart, stop, start
    }

    init(method: HTTPMethod, uri: String) {
        let (path, query) = Self.split(uri)
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map {
            Self.decode(String($0))
        }
        let lines = query["lines"].flatMap { Int($0) }.map { max(0, $0) } ?? 100
        let follow = query["follow"] == "1" || query["follow"] == "true"
        let endpoint: ControlRoute
        let expected: HTTPMethod
        switch parts {
        case ["v1", "fleet"]: (endpoint, expected) = (.fleet, .GET)
        case ["v1", "land"]: (endpoint, expected) = (.land, .POST)
        case ["v1", "reload"]: (endpoint, expected) = (.reload, .POST)
        case ["v1", "logs", "reopen"]: (endpoint, expected) = (.reopenLogs, .POST)
        case ["v1", "logs"]:
            let vessels = query["vessels"].map { $0.split(separator: ",").map(String.init) }
            (endpoint, expected) = (.logs(vessels: vessels, lines: lines, follow: follow), .GET)
        case let parts
        where parts.count == 4 && parts[0] == "v1" && parts[1] == "vessels" && parts[3] == "logs":
            (endpoint, expected) = (.logs(vessels: [parts[2]], lines: lines, follow: follow), .GET)
        case let parts where parts.count == 4 && parts[0] == "v1" && parts[1] == "vessels":
            guard let action = ControlAction(rawValue: parts[3]) else {
                self = .notFound("\(method) \(path)")
                return
            }
            (endpoint, expected) = (.action(vessel: parts[2], action), .POST)
        default:
            self = .notFound("\(method) \(path)")
            return
        }
        self = method == expected ? endpoint : .methodNotAllowed("\(method) \(path) (use \(expected))")
    }

    static func split(_ uri: String) -> (path: String, query: [String: String]) {
        guard let mark = uri.firstIndex(of: "?") else { return (uri, [:]) }
        var query: [String: String] = [:]
        for pair in uri[uri.index(after: mark)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            query[decode(String(parts[0]))] = parts.count > 1 ? decode(String(parts[1])) : ""
        }
        return (String(uri[..<mark]), query)
    }

    /// Percent-decoding (`+` stays itself: a vessel name has no spaces).
    static func decode(_ text: String) -> String {
        guard text.contains("%") else { return text }
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "%"), utf8.count >= 2,
                let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    // MARK: Answers

    func answer(control: any FleetControl, on channel: any Channel, logger: Logger) async {
        switch self {
        case .fleet:
            let document = FleetDocument(name: control.fleetName, status: await control.status())
            respond(channel, .ok, document.json())
        case .action(let vessel, let action):
            let command: FleetCommand =
                switch action {
                case .restart: .restart(vessel)
                case .stop: .stop(vessel)
                case .start: .start(vessel)
                }
            let answer = await command.perform(on: control)
            respond(channel, HTTPResponseStatus(statusCode: answer.status), answer.body)
        case .logs(let vessels, let lines, let follow):
            await streamLogs(control: control, vessels: vessels, lines: lines, follow: follow, on: channel)
        case .land:
            respond(channel, .accepted, #"{"landing":true}"#)
            logger.notice("landing requested on the control socket")
            await control.land()
        case .reopenLogs:
            if control.reopenLogs() {
                respond(channel, .ok, #"{"reopened":true}"#)
            } else {
                respond(channel, .conflict, Self.error("this run writes no log files ([mothership.logs])"))
            }
        case .reload:
            let answer = await FleetCommand.reload.perform(on: control)
            respond(channel, HTTPResponseStatus(statusCode: answer.status), answer.body)
        case .notFound(let what):
            respond(channel, .notFound, Self.error("no such endpoint: \(what)"))
        case .methodNotAllowed(let what):
            respond(channel, .methodNotAllowed, Self.error("method not allowed: \(what)"))
        }
    }

    private func streamLogs(
        control: any FleetControl, vessels: [String]?, lines: Int, follow: Bool, on channel: any Channel
    ) async {
        let names = await control.status().vessels.map(\.name)
        for vessel in vessels ?? [] where !names.contains(vessel) {
            let refusal = ControlRefusal.unknownVessel(
                vessel, suggestion: Suggestion.nearest(to: vessel, in: names))
            respond(channel, .notFound, Self.error(refusal.description))
            return
        }
        let sources = vessels ?? names
        // Subscribed before the retained lines are read: a line appended in between is sent twice
        // at worst, never lost.
        let stream = follow ? control.output.follow(Set(sources)) : nil
        var head = HTTPResponseHead(version: .http1_1, status: .ok)
        head.headers.add(name: "Content-Type", value: "application/x-ndjson")
        if !follow { head.headers.add(name: "Connection", value: "close") }
        channel.write(HTTPServerResponsePart.head(head), promise: nil)
        var text = ""
        for source in sources {
            for line in control.output.lines(of: source).suffix(lines) { text += Self.json(line) + "\n" }
        }
        guard let stream else {
            channel.write(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: text))), promise: nil)
            channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in
                channel.close(promise: nil)
            }
            return
        }
        if !text.isEmpty {
            channel.writeAndFlush(
                HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: text))), promise: nil)
        }
        // Until the client goes away (the channel's close ends the stream's consumer).
        let reader = Task {
            for await line in stream {
                guard channel.isActive else { break }
                channel.writeAndFlush(
                    HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: Self.json(line) + "\n"))),
                    promise: nil)
            }
        }
        try? await channel.closeFuture.get()
        reader.cancel()
    }

    private func respond(_ channel: any Channel, _ status: HTTPResponseStatus, _ body: String) {
        var head = HTTPResponseHead(version: .http1_1, status: status)
        head.headers.add(name: "Content-Type", value: "application/json")
        head.headers.add(name: "Content-Length", value: String(body.utf8.count + 1))
        head.headers.add(name: "Connection", value: "close")
        channel.write(HTTPServerResponsePart.head(head), promise: nil)
        channel.write(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: body + "\n"))), promise: nil)
        channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in channel.close(promise: nil)
        }
    }

    static func error(_ message: String) -> String { #"{"error":"# + JSONText.quote(message) + "}" }

    static func json(_ line: OutputLine) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try! encoder.encode(LogLineDocument(line)), as: UTF8.self)
    }
}
