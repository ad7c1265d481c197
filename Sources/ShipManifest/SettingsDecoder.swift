/// Reads the `[mothership]` table: listeners, static dirs, CORS cache, rate limits, flagship, uplinks.
/// (`prelaunch` is read by `ManifestLoader`, with the other job-like sections.)
struct SettingsDecoder {
    let context: DecodeContext
    let environment: [String: String]
    let strictEnvironment: Bool
    let envFileReader: EnvFileReader

    static let keys = [
        "name", "metrics_port", "compression", "cors_cache", "env", "bind", "static_dirs", "rate_limiting",
        "flagship", "uplinks", "prelaunch", "relay_workers", "control_socket", "logs", "env_file",
        "dashboard",
    ]

    static let maximumRelayWorkers = 256

    func decode(_ table: TableReader?, defaultName: String) -> MothershipSettings {
        var settings = MothershipSettings(name: defaultName)
        guard let table else { return settings }
        table.rejectUnknownKeys(allowed: Self.keys, section: "[mothership]")
        if let name = table.string("name") {
            if name.allSatisfy(\.isWhitespace) {
                context.error(table.path.appending("name"), "must not be empty")
            } else {
                settings.name = name
            }
        }
        if let port = table.integer("metrics_port") {
            if (1...65535).contains(port) {
                settings.metricsPort = port
            } else {
                context.error(
                    table.path.appending("metrics_port"), "\(port) is not a port number from 1 to 65535")
            }
        }
        settings.compression = table.bool("compression") ?? false
        if let workers = table.integer("relay_workers") {
            if (1...Self.maximumRelayWorkers).contains(workers) {
                settings.relayWorkers = workers
            } else {
                context.error(
                    table.path.appending("relay_workers"),
                    "\(workers) is not a number of relay threads from 1 to \(Self.maximumRelayWorkers)")
            }
        }
        settings.controlSocket = controlSocket(table)
        if let logs = table.table("logs") { settings.logs = self.logs(logs) }
        if let dashboard = table.table("dashboard") { settings.dashboard = self.dashboard(dashboard) }
        settings.corsCache = corsCache(table)
        let files = table.envFileValues(reader: envFileReader, environment: environment)
        settings.envFiles = files.paths ?? []
        settings.environment = files.values.merging(table.stringMap("env") ?? [:]) { _, own in own }
        if let binds = table.table("bind") { settings.listeners = listeners(binds) }
        settings.staticDirectories = table.tables("static_dirs").compactMap(staticDirectory)
        if let limits = table.table("rate_limiting") { settings.rateLimiting = rateLimiting(limits) }
        settings.uplinks = uplinks(table.tables("uplinks"))
        if let flagship = table.table("flagship") {
            settings.flagship = self.flagship(flagship, uplinks: settings.uplinks)
        }
        checkAddressConflicts(settings.listeners, in: table)
        return settings
    }

    /// `[mothership.logs]` (ours, SPEC §12.5).
    func logs(_ table: TableReader) -> LogSettings? {
        table.rejectUnknownKeys(allowed: ["dir", "format", "max_size", "keep"], section: "[mothership.logs]")
        guard let directory = table.requiredString("dir", "the directory for log files") else { return nil }
        var settings = LogSettings(directory: directory)
        if let format = table.string("format") {
            if let known = LogSettings.Format(rawValue: format) {
                settings.format = known
            } else {
                context.error(
                    table.path.appending("format"), "unknown log format '\(format)'; expected text or json")
            }
        }
        if let size = table.string("max_size") {
            if let bytes = ByteSize.parse(size), bytes >= 4096 {
                settings.maxSize = bytes
            } else {
                context.error(
                    table.path.appending("max_size"),
                    "'\(size)' is not a size of at least 4KB; expected a number with a unit: \"100MB\", \"512KB\""
                )
            }
        }
        if let keep = table.integer("keep") {
            if (1...1000).contains(keep) {
                settings.keep = keep
            } else {
                context.error(
                    table.path.appending("keep"), "\(keep) is not a number of old files from 1 to 1000")
            }
        }
        return settings
    }

    /// `[mothership.dashboard]` (ours, SPEC §12.6).
    func dashboard(_ table: TableReader) -> DashboardSettings {
        table.rejectUnknownKeys(allowed: ["actions", "token"], section: "[mothership.dashboard]")
        var settings = DashboardSettings(actions: table.bool("actions") ?? false)
        if let token = table.string("token"), let expanded = expand(token, at: table.path.appending("token"))
        {
            if expanded.utf8.count < 16 || expanded.utf8.count > 256
                || !expanded.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
            {
                context.error(
                    table.path.appending("token"),
                    "the token must be 16 to 256 visible ASCII characters (no spaces); this one has \(expanded.utf8.count) character(s); use a long random value, e.g. `openssl rand -hex 24`"
                )
            } else {
                settings.token = expanded
            }
        }
        return settings
    }

    /// `control_socket` (ours): a path, or `false` for none; absent: `.mothership.sock` beside the
    /// manifest.
    func controlSocket(_ table: TableReader) -> ControlSocketSetting {
        guard let node = table.entries["control_socket"] else { return .besideManifest }
        switch node {
        case .boolean(false): return .off
        case .string(let path) where !path.allSatisfy(\.isWhitespace):
            // sockaddr_un holds 107 bytes and a terminating zero.
            if path.utf8.count > 107 {
                context.error(
                    table.path.appending("control_socket"),
                    "a Unix socket path is at most 107 bytes; this one has \(path.utf8.count)")
                return .besideManifest
            }
            return .path(path)
        default:
            table.typeError("control_socket", expected: "a path (a string) or false", found: node)
            return .besideManifest
        }
    }

    // MARK: Listeners

    func listeners(_ table: TableReader) -> [Listener] {
        var result: [Listener] = []
        for name in table.keys {
            let path = table.path.appending(name)
            if !VesselName.isValid(name) {
                context.error(path, VesselName.problem(name, what: "bind name"))
            }
            switch table.entries[name]! {
            case .string(let text):
                if let address = bindAddress(text, at: path) {
                    result.append(Listener(name: name, address: address))
                }
            case .table:
                if let listener = listener(named: name, table.table(name)!) { result.append(listener) }
            case let node:
                context.error(
                    path,
                    "expected an address string or a table { addr = ... }, found \(node.kindDescription)")
            }
        }
        return result
    }

    private func listener(named name: String, _ table: TableReader) -> Listener? {
        table.rejectUnknownKeys(
            allowed: ["addr", "proxy_protocol", "trusted_proxies", "tls"], section: "a bind")
        let proxyProtocol = table.bool("proxy_protocol") ?? false
        var trusted: [CIDRRange] = []
        for (index, text) in (table.strings("trusted_proxies") ?? []).enumerated() {
            if let range = CIDRRange(parsing: text) {
                trusted.append(range)
            } else {
                context.error(
                    table.path.appending("trusted_proxies").appending(index: index),
                    "'\(text)' is not an IP address or CIDR range such as 10.0.0.0/8")
            }
        }
        if proxyProtocol && !table.contains("trusted_proxies") {
            context.warning(
                table.path.appending("proxy_protocol"),
                "PROXY protocol is auto-detected without trusted_proxies: any client that reaches this port can claim any address; list your load balancers in trusted_proxies"
            )
        }
        if !proxyProtocol && table.contains("trusted_proxies") {
            context.warning(
                table.path.appending("trusted_proxies"), "has no effect without proxy_protocol = true")
        }
        var tls: TLSFiles?
        if let tlsTable = table.table("tls") {
            tlsTable.rejectUnknownKeys(allowed: ["cert", "key"], section: "tls")
            let certificate = tlsTable.requiredString("cert", "PEM certificate chain file")
            let key = tlsTable.requiredString("key", "PEM private key file")
            if let certificate, let key { tls = TLSFiles(certificate: certificate, key: key) }
        }
        guard let text = table.requiredString("addr", "the address to listen on"),
            let address = bindAddress(text, at: table.path.appending("addr"))
        else { return nil }
        return Listener(
            name: name, address: address, proxyProtocol: proxyProtocol, trustedProxies: trusted, tls: tls)
    }

    func bindAddress(_ text: String, at path: FieldPath) -> BindAddress? {
        do {
            return try BindAddress(parsing: text)
        } catch {
            context.error(path, "invalid address '\(text)': \(error.description)")
            return nil
        }
    }

    private func checkAddressConflicts(_ listeners: [Listener], in table: TableReader) {
        for (index, listener) in listeners.enumerated() {
            if let earlier = listeners[..<index].first(where: { Self.overlaps($0.address, listener.address) })
            {
                context.error(
                    table.path.appending("bind").appending(listener.name),
                    "binds '\(earlier.name)' and '\(listener.name)' both listen on \(listener.address)")
            }
        }
    }

    /// Two addresses that cannot both be bound: the same socket path, or the same port where the hosts
    /// are equal or one is a wildcard.
    static func overlaps(_ lhs: BindAddress, _ rhs: BindAddress) -> Bool {
        switch (lhs, rhs) {
        case (.unix(let left), .unix(let right)):
            return left == right
        case (.tcp(let leftHost, let leftPort), .tcp(let rightHost, let rightPort)):
            guard leftPort == rightPort else { return false }
            let wildcards: Set = ["0.0.0.0", "::", "*"]
            return leftHost == rightHost || wildcards.contains(leftHost) || wildcards.contains(rightHost)
        default:
            return false
        }
    }

    // MARK: Edge features

    private func staticDirectory(_ table: TableReader) -> StaticDirectory? {
        table.rejectUnknownKeys(allowed: ["path", "prefix", "bind"], section: "a static dir")
        let path = table.requiredString("path", "the directory to serve")
        let prefix = table.requiredString("prefix", "the URL prefix, such as \"/assets\"")
        let bind = table.string("bind")
        if let prefix, !prefix.hasPrefix("/") {
            context.error(table.path.appending("prefix"), "'\(prefix)' must start with '/'")
            return nil
        }
        guard let path, let prefix else { return nil }
        return StaticDirectory(path: path, prefix: prefix, bind: bind)
    }

    private func corsCache(_ table: TableReader) -> CorsCacheSettings? {
        switch table.entries["cors_cache"] {
        case nil:
            return nil
        case .boolean(let enabled):
            return enabled ? CorsCacheSettings() : nil
        case .table:
            let cors = table.table("cors_cache")!
            cors.rejectUnknownKeys(allowed: ["enabled", "default_ttl", "max_entries"], section: "cors_cache")
            var settings = CorsCacheSettings()
            if let ttl = cors.duration("default_ttl") { settings.defaultTTL = ttl }
            if let entries = cors.integer("max_entries") {
                if entries > 0 {
                    settings.maxEntries = entries
                } else {
                    context.error(cors.path.appending("max_entries"), "must be at least 1")
                }
            }
            // A table means the operator wants the cache; `enabled = false` turns it off.
            return cors.bool("enabled") ?? true ? settings : nil
        case let node?:
            table.typeError("cors_cache", expected: "a boolean or a table", found: node)
            return nil
        }
    }

    private func rateLimiting(_ table: TableReader) -> RateLimiting {
        table.rejectUnknownKeys(allowed: ["global_rps", "per_ip_rpm"], section: "rate_limiting")
        var limits = RateLimiting()
        for (key, keyPath) in [
            ("global_rps", \RateLimiting.globalRequestsPerSecond), ("per_ip_rpm", \.perIPRequestsPerMinute),
        ] {
            guard let value = table.number(key) else { continue }
            if value > 0, value.isFinite {
                limits[keyPath: keyPath] = value
            } else {
                context.error(
                    table.path.appending(key), "must be a positive number (leave it out for no limit)")
            }
        }
        return limits
    }

    // MARK: Uplinks and flagship

    private func uplinks(_ tables: [TableReader]) -> [Uplink] {
        var result: [Uplink] = []
        var names: [String: FieldPath] = [:]
        for (index, table) in tables.enumerated() {
            table.rejectUnknownKeys(allowed: ["url", "name", "timeout"], section: "an uplink")
            guard let url = table.requiredString("url", "such as postgres://db.internal:5432/app") else {
                continue
            }
            let expanded = expand(url, at: table.path.appending("url"))
            var uplink = Uplink(name: table.string("name") ?? "uplink-\(index + 1)", url: url)
            if let expanded {
                do {
                    let target = try UplinkTarget(parsing: expanded)
                    if !table.contains("name") { uplink.name = target.description }
                } catch {
                    context.error(table.path.appending("url"), error.description)
                }
            }
            if let earlier = names[uplink.name] {
                context.error(
                    table.path.appending("name"),
                    "duplicate uplink name '\(uplink.name)' (also at \(earlier))")
            }
            names[uplink.name] = table.path
            if let timeout = table.duration("timeout") { uplink.timeout = timeout }
            result.append(uplink)
        }
        return result
    }

    private func flagship(_ table: TableReader, uplinks: [Uplink]) -> FlagshipSettings? {
        table.rejectUnknownKeys(
            allowed: [
                "enabled", "election", "election_url", "election_uplink", "static_flagship",
                "prelaunch_timeout",
                "election_timeout",
            ], section: "[mothership.flagship]")
        let enabled = table.bool("enabled") ?? false
        let election = table.string("election") ?? "static"
        let prelaunchTimeout = table.duration("prelaunch_timeout") ?? .seconds(300)
        let electionTimeout = table.duration("election_timeout") ?? .seconds(30)
        let staticFlagship = staticFlagship(table)
        let electionURL = table.string("election_url")
        let electionUplink = table.string("election_uplink")
        if let electionUplink, !uplinks.contains(where: { $0.name == electionUplink }) {
            let known = uplinks.map(\.name)
            var message = "names no uplink '\(electionUplink)'"
            if let suggestion = Suggestion.nearest(to: electionUplink, in: known) {
                message += "; did you mean '\(suggestion)'?"
            } else if !known.isEmpty {
                message += "; declared uplinks: \(known.joined(separator: ", "))"
            }
            context.error(table.path.appending("election_uplink"), message)
        }
        switch election {
        case "static":
            guard enabled else { return nil }
            guard let staticFlagship else {
                table.missing(
                    "static_flagship", "\"$MS_FLAGSHIP\" or { command = \"hostname\", equals = \"server-a\" }"
                )
                return nil
            }
            return FlagshipSettings(
                election: .fixed(staticFlagship), prelaunchTimeout: prelaunchTimeout,
                electionTimeout: electionTimeout)
        case "postgres":
            if electionURL != nil && electionUplink != nil {
                context.error(
                    table.path.appending("election_uplink"), "set election_url or election_uplink, not both")
                return nil
            }
            var url: String?
            if let electionURL {
                if let expanded = expand(electionURL, at: table.path.appending("election_url")) {
                    validatePostgresURL(expanded, at: table.path.appending("election_url"))
                }
                url = electionURL
            } else if let electionUplink {
                url = uplinks.first { $0.name == electionUplink }?.url
            }
            guard enabled else { return nil }
            guard let url else {
                if electionUplink == nil {
                    table.missing("election_url", "a PostgreSQL URL, or election_uplink naming an uplink")
                }
                return nil
            }
            return FlagshipSettings(
                election: .postgres(url: url, viaUplink: electionUplink), prelaunchTimeout: prelaunchTimeout,
                electionTimeout: electionTimeout)
        default:
            context.error(
                table.path.appending("election"),
                "unknown election '\(election)'; expected \"static\" or \"postgres\"")
            return nil
        }
    }

    private func staticFlagship(_ table: TableReader) -> StaticFlagship? {
        switch table.entries["static_flagship"] {
        case nil:
            return nil
        case .string(let text):
            return .value(text)
        case .table:
            let command = table.table("static_flagship")!
            command.rejectUnknownKeys(allowed: ["command", "equals"], section: "static_flagship")
            guard let line = command.requiredString("command", "run through /bin/sh -c"),
                let equals = command.entries["equals"] == nil ? nil : command.string("equals")
            else {
                if command.entries["equals"] == nil {
                    command.missing("equals", "the output that marks the flagship")
                }
                return nil
            }
            return .command(line, equals: equals)
        case let node?:
            table.typeError(
                "static_flagship", expected: "a string or a table { command, equals }", found: node)
            return nil
        }
    }

    private func validatePostgresURL(_ url: String, at path: FieldPath) {
        do {
            let target = try UplinkTarget(parsing: url)
            if target.scheme != "postgres" && target.scheme != "postgresql" {
                context.error(path, "'\(UplinkTarget.redact(url))' is not a postgres:// URL")
            }
        } catch {
            context.error(path, error.description)
        }
    }

    /// Expands `$VAR` references; an undefined variable is a warning (clearance) or an error (run).
    /// Returns nil when something was undefined.
    func expand(_ text: String, at path: FieldPath) -> String? {
        let expansion = EnvironmentExpansion(expanding: text, environment: environment)
        guard expansion.undefined.isEmpty else {
            let names = expansion.undefined.map { "$\($0)" }.joined(separator: ", ")
            let message = "environment variable \(names) is not set"
            if strictEnvironment { context.error(path, message) } else { context.warning(path, message) }
            return nil
        }
        return expansion.value
    }
}

/// The naming rule shared by vessels, prelaunch jobs, modules and binds: ASCII letters, digits, `-`, `_`, `.`.
enum VesselName {
    static func isValid(_ name: String) -> Bool {
        !name.isEmpty
            && name.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A)
                    || (byte >= 0x61 && byte <= 0x7A)
                    || byte == 0x2D || byte == 0x5F || byte == 0x2E
            }
    }

    static func problem(_ name: String, what: String = "name") -> String {
        "invalid \(what) '\(name)': use only ASCII letters, digits, '-', '_' and '.' (no spaces)"
    }
}
