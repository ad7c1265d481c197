/// A route's path pattern: a regular expression matched against the whole request path (anchored;
/// `/api/.*` matches `/api/x` but not `/v2/api/x`). Compiled once; common shapes skip the regex engine.
public struct RoutePattern: Sendable, CustomStringConvertible {
    enum Matcher: @unchecked Sendable {
        /// `.*` and `/.*`: every path.
        case any
        /// A pattern without metacharacters: the path must equal it.
        case literal(String)
        /// `literal.*`: the path must start with the literal.
        case prefix(String)
        case regex(Regex<AnyRegexOutput>)
    }

    public let source: String
    let matcher: Matcher

    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        public var pattern: String
        public var reason: String
        public var description: String { "invalid regular expression '\(pattern)': \(reason)" }
    }

    public init(_ source: String) throws(ParseError) {
        self.source = source
        do {
            // Compile even when a fast path applies, so that every pattern is checked the same way.
            let regex = try Regex<AnyRegexOutput>(source)
            self.matcher = Self.fastMatcher(for: source) ?? .regex(regex)
        } catch {
            throw ParseError(pattern: source, reason: "\(error)")
        }
    }

    static let metacharacters = Set("\\^$.|?*+()[]{}")

    static func fastMatcher(for source: String) -> Matcher? {
        if source == ".*" || source == "/.*" { return .any }
        if !source.contains(where: metacharacters.contains) { return .literal(source) }
        if source.hasSuffix(".*") {
            let head = source.dropLast(2)
            if !head.contains(where: metacharacters.contains) { return .prefix(String(head)) }
        }
        return nil
    }

    /// `.*` or `/.*`: every path matches (the usual catch-all route, decided without a look at it).
    public var matchesEveryPath: Bool {
        if case .any = matcher { return true }
        return false
    }

    /// Whether the whole path (no query string) matches.
    public func matches(_ path: Substring) -> Bool {
        switch matcher {
        case .any: true
        case .literal(let literal): path == literal
        case .prefix(let prefix): path.hasPrefix(prefix)
        case .regex(let regex): (try? regex.wholeMatch(in: path)) != nil
        }
    }

    public func matches(_ path: String) -> Bool { matches(Substring(path)) }

    public var description: String { source }
}

/// One entry of a ship's or bay's `routes`: which listener, which paths, which clients.
public struct Route: Sendable, CustomStringConvertible {
    /// The listener (bind name) this route belongs to.
    public var bind: String
    public var pattern: RoutePattern
    /// A literal prefix removed from the path before forwarding, at a segment boundary.
    public var stripPrefix: String?
    public var userAgentFilter: UserAgentFilter?

    public init(
        bind: String, pattern: RoutePattern, stripPrefix: String? = nil,
        userAgentFilter: UserAgentFilter? = nil
    ) {
        self.bind = bind
        self.pattern = pattern
        self.stripPrefix = stripPrefix
        self.userAgentFilter = userAgentFilter
    }

    /// The path to forward: `strip_prefix` removed when it stands at a segment boundary
    /// (`/api/users` → `/users`, `/api` → `/`, `/apiary` unchanged); always starts with `/`.
    public func forwardedPath(for path: Substring) -> Substring {
        guard let prefix = stripPrefix, !prefix.isEmpty, path.hasPrefix(prefix) else { return path }
        let rest = path.dropFirst(prefix.count)
        if rest.isEmpty { return "/" }
        if rest.first == "/" { return rest }
        if prefix.hasSuffix("/") { return Substring("/" + rest) }
        return path
    }

    public var description: String {
        var text = "\(bind):\(pattern)"
        if let stripPrefix { text += " strip_prefix=\(stripPrefix)" }
        if let userAgentFilter { text += " ua_filter=\(userAgentFilter)" }
        return text
    }
}
