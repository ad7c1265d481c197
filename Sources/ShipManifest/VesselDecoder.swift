/// The fields of a ship, bay or template as written, before templates are merged in.
struct VesselFields {
    var name: String?
    var command: String?
    var arguments: [String]?
    var environment: [String: String]?
    var envFiles: [String]?
    /// The variables read from `envFiles`.
    var fileEnvironment: [String: String]?
    var dependsOn: [String]?
    var critical: Bool?
    var tags: [String]?
    var routes: [Route]?
    var startTimeout: Duration?
    var stopTimeout: Duration?
    var stopSignal: StopSignal?
    var workingDirectory: String?
    var bind: BindAddress?
    var healthcheck: String?
    var oneshot: Bool?
    var config: [String: String]?
    var permessageDeflate: Bool?
    var workers: Int?
    var requestTimeout: Duration?
    var recycleStuck: Bool?

    /// The vessel's own values win; `tags` concatenate (template first); `env` tables merge (vessel keys win).
    func merged(over template: VesselFields) -> VesselFields {
        var result = self
        result.command = command ?? template.command
        result.arguments = arguments ?? template.arguments
        result.dependsOn = dependsOn ?? template.dependsOn
        result.critical = critical ?? template.critical
        result.routes = routes ?? template.routes
        result.startTimeout = startTimeout ?? template.startTimeout
        result.stopTimeout = stopTimeout ?? template.stopTimeout
        result.stopSignal = stopSignal ?? template.stopSignal
        result.workingDirectory = workingDirectory ?? template.workingDirectory
        result.bind = bind ?? template.bind
        result.healthcheck = healthcheck ?? template.healthcheck
        result.oneshot = oneshot ?? template.oneshot
        result.permessageDeflate = permessageDeflate ?? template.permessageDeflate
        result.workers = workers ?? template.workers
        result.requestTimeout = requestTimeout ?? template.requestTimeout
        result.recycleStuck = recycleStuck ?? template.recycleStuck
        var tags = template.tags ?? []
        for tag in self.tags ?? [] where !tags.contains(tag) { tags.append(tag) }
        result.tags = tags
        result.environment = (template.environment ?? [:]).merging(environment ?? [:]) { _, own in own }
        result.envFiles = (template.envFiles ?? []) + (envFiles ?? [])
        result.fileEnvironment = (template.fileEnvironment ?? [:]).merging(fileEnvironment ?? [:]) {
            _, own in own
        }
        result.config = (template.config ?? [:]).merging(config ?? [:]) { _, own in own }
        return result
    }
}

/// Reads ships, bays and their templates; routes are checked against the declared listeners.
struct VesselDecoder {
    let context: DecodeContext
    let listenerNames: [String]
    let envFileReader: EnvFileReader
    /// What `${VAR}` in a vessel's env file falls back to: mothership's environment and `[mothership.env]`.
    let environment: [String: String]

    static let shipKeys = [
        "name", "command", "args", "bind", "healthcheck", "routes", "depends_on", "env", "env_file",
        "critical",
        "oneshot", "tags",
        "start_timeout", "stop_timeout", "stop_signal", "cwd", "workers", "request_timeout", "recycle_stuck",
    ]
    static let bayKeys = [
        "name", "command", "args", "routes", "depends_on", "env", "env_file", "config", "critical", "tags",
        "start_timeout",
        "stop_timeout", "stop_signal", "cwd", "permessage_deflate",
    ]

    /// A ship's instances at most (each takes two addresses).
    static let maximumWorkers = 64

    static func allowedKeys(for kind: Vessel.Kind, template: Bool) -> [String] {
        let keys = kind == .ship ? shipKeys : bayKeys
        return template ? keys.filter { $0 != "name" } + ["comment"] : keys
    }

    func fields(_ table: TableReader, kind: Vessel.Kind, template: Bool) -> VesselFields {
        let section = template ? "[base.\(kind.rawValue)]" : "a \(kind.rawValue)"
        table.rejectUnknownKeys(allowed: Self.allowedKeys(for: kind, template: template), section: section)
        var fields = VesselFields()
        if template {
            _ = table.string("comment")
        } else if let name = table.requiredString("name", "a unique identifier") {
            if VesselName.isValid(name) {
                fields.name = name
            } else {
                context.error(table.path.appending("name"), VesselName.problem(name))
            }
        }
        fields.command = table.string("command")
        if let command = fields.command, command.allSatisfy(\.isWhitespace) {
            context.error(table.path.appending("command"), "must not be empty")
            fields.command = nil
        }
        fields.arguments = table.strings("args")
        fields.environment = table.stringMap("env")
        let files = table.envFileValues(reader: envFileReader, environment: environment)
        fields.envFiles = files.paths
        fields.fileEnvironment = files.paths == nil ? nil : files.values
        fields.dependsOn = table.strings("depends_on")
        fields.critical = table.bool("critical")
        fields.tags = table.strings("tags")
        fields.routes = routes(table)
        fields.startTimeout = table.duration("start_timeout")
        fields.stopTimeout = table.duration("stop_timeout")
        if let signal = table.string("stop_signal") {
            fields.stopSignal = StopSignal(parsing: signal)
            if fields.stopSignal == nil {
                let names = StopSignal.allCases.map(\.rawValue).joined(separator: ", ")
                context.error(
                    table.path.appending("stop_signal"),
                    "unknown signal '\(signal)'; expected one of \(names)")
            }
        }
        fields.workingDirectory = table.string("cwd")
        if kind == .ship {
            if let bind = table.string("bind") {
                do {
                    fields.bind = try BindAddress(parsing: bind)
                } catch {
                    context.error(
                        table.path.appending("bind"), "invalid address '\(bind)': \(error.description)")
                }
            }
            if let healthcheck = table.string("healthcheck") {
                if healthcheck.hasPrefix("/") {
                    fields.healthcheck = healthcheck
                } else {
                    context.error(
                        table.path.appending("healthcheck"),
                        "'\(healthcheck)' must be an HTTP path starting with '/'")
                }
            }
            fields.oneshot = table.bool("oneshot")
            if let workers = table.integer("workers") {
                if (1...Self.maximumWorkers).contains(workers) {
                    fields.workers = workers
                } else {
                    context.error(
                        table.path.appending("workers"),
                        "must be between 1 and \(Self.maximumWorkers), not \(workers)")
                }
            }
            fields.requestTimeout = table.duration("request_timeout")
            fields.recycleStuck = table.bool("recycle_stuck")
        } else {
            fields.config = table.stringMap("config")
            fields.permessageDeflate = table.bool("permessage_deflate")
        }
        return fields
    }

    /// Builds the final vessel from merged fields, reporting what is still missing.
    func vessel(_ fields: VesselFields, kind: Vessel.Kind, group: String, at path: FieldPath) -> Vessel? {
        guard let command = fields.command else {
            let subject = fields.name.map { " for \(kind.rawValue) '\($0)'" } ?? ""
            context.error(
                path.appending("command"), "missing required field 'command' (the program to run)\(subject)")
            return nil
        }
        guard let name = fields.name else { return nil }
        var vessel = Vessel(
            name: name, kind: kind, group: group, command: command, arguments: fields.arguments ?? [],
            environment: (fields.fileEnvironment ?? [:]).merging(fields.environment ?? [:]) { _, own in own },
            dependsOn: fields.dependsOn ?? [],
            critical: fields.critical ?? true,
            tags: fields.tags ?? [], routes: fields.routes ?? [],
            startTimeout: fields.startTimeout ?? .seconds(60),
            stopTimeout: fields.stopTimeout ?? .seconds(10), stopSignal: fields.stopSignal ?? .term,
            workingDirectory: fields.workingDirectory, bind: fields.bind, healthcheck: fields.healthcheck,
            oneshot: fields.oneshot ?? false, config: fields.config ?? [:],
            permessageDeflate: fields.permessageDeflate ?? true)
        vessel.manifestPath = path
        vessel.envFiles = fields.envFiles ?? []
        vessel.workers = fields.workers
        vessel.requestTimeout = fields.requestTimeout
        vessel.recycleStuck = fields.recycleStuck ?? false
        checkWorkers(vessel, at: path)
        if vessel.healthcheck != nil && vessel.bind == nil {
            context.error(
                path.appending("healthcheck"), "ship '\(name)' has a healthcheck but no bind to check it on")
        }
        if kind == .ship && !vessel.routes.isEmpty && vessel.bind == nil {
            context.warning(
                path.appending("routes"),
                "ship '\(name)' has routes but no bind: requests routed to it will be answered 502 until it has one"
            )
        }
        return vessel
    }

    // MARK: Workers

    /// `workers`, `request_timeout` and `recycle_stuck` make sense together and on a long-running ship.
    private func checkWorkers(_ vessel: Vessel, at path: FieldPath) {
        let name = vessel.name
        if vessel.workers != nil && vessel.oneshot {
            context.error(path.appending("workers"), "oneshot '\(name)' runs once; it cannot have workers")
        }
        if vessel.recycleStuck && vessel.requestTimeout == nil {
            context.error(
                path.appending("recycle_stuck"),
                "ship '\(name)' recycles stuck instances only with a request_timeout (such as \"30s\")")
        }
        if vessel.recycleStuck && vessel.workers == nil {
            context.error(
                path.appending("recycle_stuck"),
                "ship '\(name)' replaces a stuck instance by a phased restart, which needs `workers` (1 or more)"
            )
        }
        if vessel.workers != nil {
            for key in ["PORT", "MS_WORKER", "MS_SOCKET_PATH"] where vessel.environment[key] != nil {
                context.error(
                    path.appending("env").appending(key),
                    "ship '\(name)' has workers: mothership gives each instance its own \(key)")
            }
        }
        if let bind = vessel.bind, let workers = vessel.workers, case .tcp(_, let port) = bind,
            port + 2 * workers - 1 > 65535
        {
            context.error(
                path.appending("workers"),
                "ship '\(name)' needs ports \(port) to \(port + 2 * workers - 1) for \(workers) workers; that passes 65535"
            )
        }
        if vessel.kind == .ship && vessel.workers == nil && !vessel.routes.isEmpty && !vessel.oneshot
            && vessel.bind != nil
        {
            context.warning(
                path.appending("workers"),
                "ship '\(name)' restarts stop-then-start (its routes answer 503 meanwhile); if its command reads its address from PORT, set `workers = 1` (or more) for restarts without downtime"
            )
        }
    }

    // MARK: Routes

    func routes(_ table: TableReader) -> [Route]? {
        guard let node = table.entries["routes"] else { return nil }
        guard case .array(let elements) = node else {
            table.typeError("routes", expected: "an array of routes", found: node)
            return nil
        }
        var routes: [Route] = []
        for (index, element) in elements.enumerated() {
            let path = table.path.appending("routes").appending(index: index)
            switch element {
            case .string(let shorthand):
                guard let colon = shorthand.firstIndex(of: ":") else {
                    context.error(
                        path, "route '\(shorthand)' must be \"bind:pattern\", such as \"http:/api/.*\"")
                    continue
                }
                let bind = String(shorthand[..<colon])
                let pattern = String(shorthand[shorthand.index(after: colon)...])
                if let route = route(
                    bind: bind, pattern: pattern, strip: nil, ua: nil, at: path, shorthand: true)
                {
                    routes.append(route)
                }
            case .table(let entries):
                let reader = TableReader(path: path, entries: entries, context: context)
                reader.rejectUnknownKeys(
                    allowed: ["bind", "pattern", "strip_prefix", "ua_filter"], section: "a route")
                let bind = reader.requiredString("bind", "the listener name")
                let pattern = reader.requiredString("pattern", "a path regex such as \"/api/.*\"")
                let strip = reader.string("strip_prefix")
                let ua = reader.string("ua_filter")
                guard let bind, let pattern else { continue }
                if let route = route(
                    bind: bind, pattern: pattern, strip: strip, ua: ua, at: path, shorthand: false)
                {
                    routes.append(route)
                }
            default:
                context.error(
                    path,
                    "expected a route table or a \"bind:pattern\" string, found \(element.kindDescription)")
            }
        }
        return routes
    }

    private func route(
        bind: String, pattern: String, strip: String?, ua: String?, at path: FieldPath, shorthand: Bool
    ) -> Route? {
        var valid = true
        if !listenerNames.contains(bind) {
            var message = "route names bind '\(bind)', which is not declared in [mothership.bind]"
            if let suggestion = Suggestion.nearest(to: bind, in: listenerNames) {
                message += "; did you mean '\(suggestion)'?"
            } else if !listenerNames.isEmpty {
                message += " (declared: \(listenerNames.joined(separator: ", ")))"
            }
            context.error(shorthand ? path : path.appending("bind"), message)
            valid = false
        }
        var compiled: RoutePattern?
        do {
            compiled = try RoutePattern(pattern)
        } catch {
            context.error(shorthand ? path : path.appending("pattern"), error.description)
        }
        if let strip, !strip.hasPrefix("/") {
            context.error(path.appending("strip_prefix"), "'\(strip)' must start with '/'")
            valid = false
        }
        var filter: UserAgentFilter?
        if let ua {
            do {
                filter = try UserAgentFilter(parsing: ua)
            } catch {
                context.error(path.appending("ua_filter"), error.description)
                valid = false
            }
        }
        guard valid, let compiled else { return nil }
        return Route(bind: bind, pattern: compiled, stripPrefix: strip, userAgentFilter: filter)
    }
}
