/// Code the relay runs on some requests and responses: SPEC §7's payloads, implemented by the
/// `Payloads` target. The relay declares what it needs and knows nothing of WebAssembly.
///
/// One value serves every relay thread; what a hook keeps between calls (module instances) lives in
/// the `LoopHooks` made for each loop and is only ever used on that loop. When a manifest has no
/// modules the relay has no hooks, and a request pays one nil check.
public protocol RelayHooks: AnyObject, Sendable {
    /// Whether any request-phase hook wants requests to `path` (as the client sent it, without the
    /// query). Called for every request while hooks exist: keep it cheap.
    func runsOnRequest(path: Substring) -> Bool
    /// Whether any response-phase hook wants responses to requests for `path`.
    func runsOnResponse(path: Substring) -> Bool
    /// The state of the hooks for one relay thread; called on that thread, at start (and once more
    /// per loop after a reload that loaded the modules again).
    func makeLoopHooks() throws -> any LoopHooks
}

/// The hooks of one relay thread (a worker or an event loop). Confined to it (never `Sendable`).
public protocol LoopHooks: AnyObject {
    /// Runs the request-phase hooks that apply to `request.path`, in order. They may change
    /// `request.path` and `request.headers` in place (the relay forwards what they leave).
    func request(_ request: inout HookRequest) -> HookRequestOutcome
    /// Runs the response-phase hooks that apply to `response.path`; they may change
    /// `response.headers`. Returns whether anything changed. A failing hook leaves the response as
    /// it was.
    func response(_ response: inout HookResponse) -> Bool
}

/// One header line as a hook sees it: the name as received (or as a hook wrote it).
public struct HookHeader: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    /// Whether `name` can be a header name: an RFC 9110 §5.6.2 token.
    public static func isValidName(_ name: String) -> Bool {
        !name.utf8.isEmpty && name.utf8.allSatisfy(isTokenByte)
    }

    /// A token for a name, and a value without control bytes other than tab: it can be written into
    /// a head without splitting it.
    public var isSendable: Bool {
        Self.isValidName(name) && value.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }
    }

    /// RFC 9110 §5.6.2 `tchar`.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default: "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}

/// A request as the request-phase hooks see it.
public struct HookRequest: Sendable {
    public var method: String
    /// The path, without the query.
    public var path: String
    /// The query string without its `?` (empty when there is none).
    public var query: String
    /// `1.1` or `1.0`.
    public var version: String
    /// The headers in the order received.
    public var headers: [HookHeader]
    /// The client's address (from the PROXY protocol when present); empty for a Unix socket peer.
    public var remoteAddress: String
    /// The listener (bind name) the request came in on.
    public var bind: String
    /// The User-Agent class of SPEC §5.4 (`llm`, `bot`, `firefox`, `chromium`, `safari`, `other`).
    public var userAgentKind: String

    public init(
        method: String, path: String, query: String, version: String, headers: [HookHeader],
        remoteAddress: String, bind: String, userAgentKind: String
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.version = version
        self.headers = headers
        self.remoteAddress = remoteAddress
        self.bind = bind
        self.userAgentKind = userAgentKind
    }
}

/// What the request-phase hooks decided.
public enum HookRequestOutcome: Sendable, Equatable {
    /// Go on to the route table; `changed` when a hook changed the path or the headers.
    case proceed(changed: Bool)
    /// Answer the client with this instead of proxying.
    case block(HookBlock)
    /// A hook failed (trap, exhausted fuel, broken contract): the request fails closed with 500.
    case fail(module: String)
}

/// A hook's own answer to a request.
public struct HookBlock: Sendable, Equatable {
    public var status: Int
    public var headers: [HookHeader]
    public var body: [UInt8]

    public init(status: Int, headers: [HookHeader] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// A ship's response head as the response-phase hooks see it.
public struct HookResponse: Sendable {
    public var status: Int
    public var headers: [HookHeader]
    /// The path of the request it answers (as the client sent it).
    public var path: String

    public init(status: Int, headers: [HookHeader], path: String) {
        self.status = status
        self.headers = headers
        self.path = path
    }
}
