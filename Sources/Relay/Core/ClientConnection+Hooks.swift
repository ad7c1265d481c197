import NIOCore
import NIOHTTP1
import ShipManifest

/// Where SPEC §4 runs the modules: request modules before the route table (they may answer, or
/// change the path and headers the route table and the ship see), response modules on the ship's
/// response head before it goes to the client (its body streams untouched).
extension ClientConnection {
    func runRequestHooks(
        _ hooks: any RelayHooks, head: MessageHead, target: RequestTarget, close: Bool, isUpgrade: Bool
    ) {
        // Modules match, and see, the normalised path (SPEC §4): no spelling of a path walks around
        // a module written for it.
        let path = target.path
        responseHookPath = hooks.runsOnResponse(path: path) ? String(path) : nil
        guard hooks.runsOnRequest(path: path) else {
            routeRequest(head: head, target: target, close: close, isUpgrade: isUpgrade)
            return
        }
        let loopHooks: any LoopHooks
        do {
            loopHooks = try loop.hooks(for: hooks)
        } catch {
            // Never routed past the modules written for it: the request fails instead.
            settings.logger.error("request modules cannot be instantiated on this thread: \(error)")
            answer(.moduleFailed(module: nil), head: head, close: close)
            return
        }
        var request = HookRequest(
            method: head.method.rawValue, path: String(path),
            query: String(target.query.dropFirst()),
            version: head.minorVersion == 0 ? "1.0" : "1.1", headers: HeadEditor.headers(of: head),
            remoteAddress: clientAddress ?? "", bind: settings.name,
            userAgentKind: UserAgentKind(userAgent: head.value(of: .userAgent)).rawValue)
        switch loopHooks.request(&request) {
        case .proceed(changed: false):
            routeRequest(head: head, target: target, close: close, isUpgrade: isUpgrade)
        case .proceed(changed: true):
            let newTarget = request.query.isEmpty ? request.path : request.path + "?" + request.query
            guard
                let edited = HeadEditor.request(
                    head, target: newTarget, headers: request.headers, allocator: allocator),
                let routed = try? RequestTarget.parse(newTarget, method: edited.method)
            else {
                settings.logger.error("request modules left a head that cannot be sent (\(newTarget))")
                answer(.moduleFailed(module: nil), head: head, close: close)
                return
            }
            routeRequest(
                head: edited, target: routed, close: close, isUpgrade: isUpgrade)
        case .block(let block):
            state = .answered(close: close)
            var bytes = allocator.buffer(capacity: block.body.count + 256)
            Self.writeBlock(
                block, version: head.version, close: close, isHead: head.method == .HEAD, into: &bytes)
            sendNow(bytes)
        case .fail(let module):
            answer(.moduleFailed(module: module), head: head, close: close)
        }
    }

    /// The ship's response `head` as the response modules leave it; nil when they changed nothing.
    func runResponseHooks(_ head: MessageHead, path: String) -> MessageHead? {
        guard let hooks = settings.hooks, let loopHooks = try? loop.hooks(for: hooks) else { return nil }
        var response = HookResponse(status: head.status, headers: HeadEditor.headers(of: head), path: path)
        guard loopHooks.response(&response) else { return nil }
        guard let edited = HeadEditor.response(head, headers: response.headers, allocator: allocator) else {
            settings.logger.error("response modules left headers that cannot be sent; response unchanged")
            return nil
        }
        return edited
    }

    /// A module's own answer: its status, headers and body, with the relay's framing.
    static func writeBlock(
        _ block: HookBlock, version: HTTPVersion, close: Bool, isHead: Bool, into buffer: inout ByteBuffer
    ) {
        let status = HTTPResponseStatus(statusCode: block.status)
        let bodyless = block.status == 204 || block.status == 304
        buffer.writeString(version.minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        buffer.writeString("\(block.status) \(status.reasonPhrase)\r\n")
        var hasType = false
        var hasServer = false
        for header in block.headers {
            switch header.name.lowercased() {
            case "content-length", "transfer-encoding", "connection", "keep-alive": continue
            case "content-type": hasType = true
            case "server": hasServer = true
            default: break
            }
            buffer.writeString("\(header.name): \(header.value)\r\n")
        }
        if !hasType && !block.body.isEmpty && !bodyless {
            buffer.writeStaticString("Content-Type: text/plain; charset=utf-8\r\n")
        }
        if !bodyless { buffer.writeString("Content-Length: \(block.body.count)\r\n") }
        if !hasServer { buffer.writeStaticString("Server: mothership\r\n") }
        if close { buffer.writeStaticString("Connection: close\r\n") }
        buffer.writeStaticString("\r\n")
        if !isHead && !bodyless { buffer.writeBytes(block.body) }
    }
}

extension LocalResponse {
    /// A request module failed (trap, exhausted fuel): the request fails closed.
    static func moduleFailed(module: String?) -> LocalResponse {
        LocalResponse(
            status: .internalServerError,
            message: module.map { "request module '\($0)' failed" } ?? "request modules failed")
    }
}
