/// The class of a client, from its User-Agent header (SPEC §5.4), checked in this order:
/// LLM agents, then bots (and an empty or absent User-Agent), then the three browser kinds.
public enum UserAgentKind: String, Sendable, Hashable, CaseIterable {
    case llm
    case bot
    case firefox
    case chromium
    case safari
    case other

    /// Lower-case markers of AI agents and their crawlers.
    static let llmMarkers: [String] = [
        "claude", "anthropic", "gptbot", "chatgpt-user", "oai-searchbot", "perplexitybot", "perplexity-user",
        "cohere-ai", "cohere-training", "meta-externalagent", "meta-externalfetcher", "mistralai-user",
        "bytespider", "youbot", "duckassistbot", "ai2bot", "amazonbot", "applebot-extended",
        "google-extended", "gemini-deep-research", "timpibot", "diffbot",
    ]

    /// Lower-case markers of crawlers, monitors, command-line and library clients, headless browsers.
    static let botMarkers: [String] = [
        "bot", "crawl", "spider", "slurp", "curl/", "wget/", "httpie/", "python-requests", "python-urllib",
        "python-httpx", "aiohttp", "go-http-client", "headless", "phantomjs", "libwww-perl", "okhttp",
        "java/", "axios/", "node-fetch", "undici", "scrapy", "lighthouse", "pingdom", "uptimerobot",
        "monitor", "check_http", "facebookexternalhit",
    ]

    public init(userAgent: String?) {
        guard let userAgent, !userAgent.allSatisfy(\.isWhitespace) else {
            self = .bot
            return
        }
        let lowered = userAgent.lowercased()
        if Self.llmMarkers.contains(where: lowered.contains) {
            self = .llm
        } else if Self.botMarkers.contains(where: lowered.contains) {
            self = .bot
        } else if userAgent.contains("Firefox") {
            self = .firefox
        } else if userAgent.contains("Chrom") {
            self = .chromium
        } else if userAgent.contains("Safari") {
            if userAgent.contains("FxiOS") {
                self = .firefox
            } else if userAgent.contains("CriOS") || userAgent.contains("Opera") {
                self = .chromium
            } else {
                self = .safari
            }
        } else {
            self = .other
        }
    }

    public var isBrowser: Bool { self == .firefox || self == .chromium || self == .safari }
}

/// A route's `ua_filter`: a class of clients, or `~REGEX` searched in the User-Agent.
public enum UserAgentFilter: Sendable, CustomStringConvertible {
    case browser
    case chromium
    case firefox
    case safari
    case llm
    case bot
    case custom(source: String, regex: CustomRegex)

    /// A compiled custom expression (`Regex` is not declared Sendable; it is immutable once built).
    public struct CustomRegex: @unchecked Sendable {
        let regex: Regex<AnyRegexOutput>
    }

    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        public var text: String
        public var reason: String?
        public var description: String {
            if let reason { return "invalid User-Agent regex '\(text)': \(reason)" }
            return
                "unknown ua_filter '\(text)'; expected browser, chromium, firefox, safari, llm, bot or ~REGEX"
        }
    }

    public init(parsing text: String) throws(ParseError) {
        if text.hasPrefix("~") {
            let source = String(text.dropFirst())
            do {
                self = .custom(source: source, regex: CustomRegex(regex: try Regex<AnyRegexOutput>(source)))
            } catch {
                throw ParseError(text: source, reason: "\(error)")
            }
            return
        }
        switch text.lowercased() {
        case "browser": self = .browser
        case "chromium", "chrome": self = .chromium
        case "firefox": self = .firefox
        case "safari": self = .safari
        case "llm": self = .llm
        case "bot": self = .bot
        default: throw ParseError(text: text)
        }
    }

    /// Whether a request with this User-Agent (already classified as `kind`) passes the filter.
    public func accepts(userAgent: String?, kind: UserAgentKind) -> Bool {
        switch self {
        case .browser: kind.isBrowser
        case .chromium: kind == .chromium
        case .firefox: kind == .firefox
        case .safari: kind == .safari
        case .llm: kind == .llm
        case .bot: kind == .bot
        case .custom(_, let compiled): (try? compiled.regex.firstMatch(in: userAgent ?? "")) != nil
        }
    }

    public func accepts(userAgent: String?) -> Bool {
        accepts(userAgent: userAgent, kind: UserAgentKind(userAgent: userAgent))
    }

    public var description: String {
        switch self {
        case .browser: "browser"
        case .chromium: "chromium"
        case .firefox: "firefox"
        case .safari: "safari"
        case .llm: "llm"
        case .bot: "bot"
        case .custom(let source, _): "~\(source)"
        }
    }
}
