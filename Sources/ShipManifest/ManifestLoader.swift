/// Turns manifest text into a validated `Manifest`, reporting every problem at once.
///
/// Pure: the caller passes the text and the environment; nothing here touches files, sockets or the clock.
public enum ManifestLoader {
    public struct Options: Sendable {
        /// `--only` / `--except`.
        public var selection: TagSelection
        /// When true (run, preflight), an undefined variable in an expanded field is an error; when false
        /// (clearance), a warning: the manifest may be checked on a machine other than the one it runs on.
        public var strictEnvironment: Bool
        /// `[mothership] name` when absent: the manifest's directory name.
        public var defaultName: String
        /// Reads `env_file`s (by default every one is an error: nothing here reads files).
        public var envFiles: EnvFileReader

        public init(
            selection: TagSelection = .all, strictEnvironment: Bool = false,
            defaultName: String = "mothership",
            envFiles: @escaping EnvFileReader = { _ in .failed("no env files are available here") }
        ) {
            self.selection = selection
            self.strictEnvironment = strictEnvironment
            self.defaultName = defaultName
            self.envFiles = envFiles
        }
    }

    public struct Result: Sendable {
        /// Nil when any error was found.
        public var manifest: Manifest?
        /// Errors and warnings in document order.
        public var diagnostics: [Diagnostic]
        /// Positions of the parsed text, for callers that add diagnostics of their own (nil on a syntax error).
        public var sourceMap: SourceMap?
    }

    static let rootKeys = ["mothership", "base", "fleet", "bays", "modules"]

    public static func load(text: String, environment: [String: String] = [:], options: Options = Options())
        -> Result
    {
        let document: TOMLDocument
        do {
            document = try TOMLDocument(parsing: text)
        } catch {
            return Result(
                manifest: nil,
                diagnostics: [Diagnostic(.error, .root, "invalid TOML: \(error.message)", at: error.position)]
            )
        }
        let context = DecodeContext(sourceMap: document.sourceMap)
        let root = TableReader(path: .root, entries: document.root, context: context)
        root.rejectUnknownKeys(allowed: rootKeys, section: "the manifest")

        let mothership = root.table("mothership")
        let settings = SettingsDecoder(
            context: context, environment: environment, strictEnvironment: options.strictEnvironment,
            envFileReader: options.envFiles
        )
        .decode(mothership, defaultName: options.defaultName)
        let listenerNames = settings.listeners.map(\.name)
        for (index, directory) in settings.staticDirectories.enumerated() {
            if let bind = directory.bind, !listenerNames.contains(bind) {
                context.error(
                    FieldPath("mothership.static_dirs").appending(index: index).appending("bind"),
                    "names bind '\(bind)', which is not declared in [mothership.bind]")
            }
        }
        let decoder = VesselDecoder(
            context: context, listenerNames: listenerNames, envFileReader: options.envFiles,
            environment: environment.merging(settings.environment) { _, new in new })

        // Templates.
        var shipTemplate = VesselFields()
        var bayTemplate = VesselFields()
        var moduleTemplate: TableReader?
        if let base = root.table("base") {
            base.rejectUnknownKeys(allowed: ["ship", "bay", "module"], section: "[base]")
            if let table = base.table("ship") {
                shipTemplate = decoder.fields(table, kind: .ship, template: true)
            }
            if let table = base.table("bay") {
                bayTemplate = decoder.fields(table, kind: .bay, template: true)
            }
            moduleTemplate = base.table("module")
        }

        // Ships and bays, gathered from every group and put back in declaration order.
        var declared: [(vessel: Vessel, path: FieldPath)] = []
        for (section, kind, template) in [
            ("fleet", Vessel.Kind.ship, shipTemplate), ("bays", .bay, bayTemplate),
        ] {
            guard let groups = root.table(section) else { continue }
            for group in groups.keys {
                if !VesselName.isValid(group) {
                    context.error(
                        groups.path.appending(group), VesselName.problem(group, what: "\(section) group name")
                    )
                }
                for table in groups.tables(group) {
                    let fields = decoder.fields(table, kind: kind, template: false).merged(over: template)
                    if let vessel = decoder.vessel(fields, kind: kind, group: group, at: table.path) {
                        declared.append((vessel, table.path))
                    }
                }
            }
        }
        declared.sort { document.sourceMap.sequence(of: $0.path) < document.sourceMap.sequence(of: $1.path) }

        let prelaunch = prelaunchJobs(mothership?.tables("prelaunch") ?? [], context: context)
        let modules = ModuleDecoder(context: context).decode(root.tables("modules"), template: moduleTemplate)

        checkVessels(declared, listeners: settings.listeners, context: context)
        let selected = select(declared, by: options.selection, context: context)

        let diagnostics = context.diagnostics.enumerated()
            .sorted { lhs, rhs in
                switch (lhs.element.position, rhs.element.position) {
                case let (left?, right?) where left != right: left < right
                case (_?, nil): true
                case (nil, _?): false
                default: lhs.offset < rhs.offset
                }
            }
            .map(\.element)
        guard !diagnostics.hasErrors else {
            return Result(manifest: nil, diagnostics: diagnostics, sourceMap: document.sourceMap)
        }
        let manifest = Manifest(
            settings: settings, vessels: selected.map(\.vessel), prelaunch: prelaunch, modules: modules,
            filteredOut: declared.map(\.vessel.name).filter { name in
                !selected.contains { $0.vessel.name == name }
            })
        return Result(manifest: manifest, diagnostics: diagnostics, sourceMap: document.sourceMap)
    }

    // MARK: Cross-field rules

    /// Unique names, known and acyclic `depends_on`, no two ships on one address.
    static func checkVessels(
        _ declared: [(vessel: Vessel, path: FieldPath)], listeners: [Listener], context: DecodeContext
    ) {
        var firstByName: [String: FieldPath] = [:]
        for (vessel, path) in declared {
            if let earlier = firstByName[vessel.name] {
                context.error(
                    path.appending("name"),
                    "duplicate name '\(vessel.name)' (also at \(earlier)); names are unique across ships and bays"
                )
            } else {
                firstByName[vessel.name] = path
            }
        }
        let names = declared.map(\.vessel.name)
        for (vessel, path) in declared {
            for (index, dependency) in vessel.dependsOn.enumerated()
            where firstByName[dependency] == nil || dependency == vessel.name {
                let at = path.appending("depends_on").appending(index: index)
                if dependency == vessel.name {
                    context.error(at, "'\(vessel.name)' depends on itself")
                    continue
                }
                var message =
                    "'\(vessel.name)' depends on '\(dependency)', which is not a ship or bay in this manifest"
                if let suggestion = Suggestion.nearest(to: dependency, in: names) {
                    message += "; did you mean '\(suggestion)'?"
                }
                context.error(at, message)
            }
        }
        let graph = DependencyGraph(
            nodes: names,
            dependencies: Dictionary(
                declared.map { ($0.vessel.name, $0.vessel.dependsOn) },
                uniquingKeysWith: { first, _ in first }))
        for cycle in graph.cycles() where cycle.count > 2 {
            context.error(
                firstByName[cycle[0]]!.appending("depends_on"),
                "dependency cycle: \(cycle.joined(separator: " -> "))")
        }
        // Ship binds must not collide with each other or with a listener.
        var taken: [(address: BindAddress, owner: String)] = listeners.map {
            ($0.address, "bind '\($0.name)'")
        }
        // A ship with workers takes every address its instances may use (both generations).
        for (vessel, path) in declared {
            var reported = false
            for address in vessel.instanceAddresses {
                if !reported,
                    let clash = taken.first(where: { SettingsDecoder.overlaps($0.address, address) })
                {
                    let mine =
                        address == vessel.bind ? "\(address)" : "\(address) (an address of its workers)"
                    context.error(path.appending("bind"), "\(mine) is already used by \(clash.owner)")
                    reported = true
                }
            }
            for address in vessel.instanceAddresses { taken.append((address, "ship '\(vessel.name)'")) }
        }
    }

    /// Applies `--only` / `--except`; a selected vessel may not depend on one left out.
    static func select(
        _ declared: [(vessel: Vessel, path: FieldPath)], by selection: TagSelection, context: DecodeContext
    ) -> [(vessel: Vessel, path: FieldPath)] {
        guard selection != .all else { return declared }
        let selected = declared.filter { selection.selects(tags: $0.vessel.tags) }
        let selectedNames = Set(selected.map(\.vessel.name))
        let declaredNames = Set(declared.map(\.vessel.name))
        for (vessel, path) in selected {
            for (index, dependency) in vessel.dependsOn.enumerated()
            where declaredNames.contains(dependency) && !selectedNames.contains(dependency) {
                context.error(
                    path.appending("depends_on").appending(index: index),
                    "'\(vessel.name)' depends on '\(dependency)', which \(selection) leaves out; select it too or drop the filter"
                )
            }
        }
        return selected
    }

    // MARK: Prelaunch

    static func prelaunchJobs(_ tables: [TableReader], context: DecodeContext) -> [PrelaunchJob] {
        var jobs: [(job: PrelaunchJob, path: FieldPath)] = []
        var firstByName: [String: FieldPath] = [:]
        for table in tables {
            table.rejectUnknownKeys(
                allowed: ["name", "command", "args", "env", "depends_on"], section: "a prelaunch job")
            let name = table.requiredString("name", "a unique identifier")
            let command = table.requiredString("command", "the program to run")
            let arguments = table.strings("args") ?? []
            let environment = table.stringMap("env") ?? [:]
            let dependsOn = table.strings("depends_on") ?? []
            guard let name else { continue }
            if !VesselName.isValid(name) {
                context.error(table.path.appending("name"), VesselName.problem(name))
                continue
            }
            if let earlier = firstByName[name] {
                context.error(
                    table.path.appending("name"),
                    "duplicate prelaunch job name '\(name)' (also at \(earlier))")
                continue
            }
            firstByName[name] = table.path
            guard let command else { continue }
            jobs.append(
                (
                    PrelaunchJob(
                        name: name, command: command, arguments: arguments, environment: environment,
                        dependsOn: dependsOn), table.path
                ))
        }
        let names = jobs.map(\.job.name)
        for (job, path) in jobs {
            for (index, dependency) in job.dependsOn.enumerated()
            where !names.contains(dependency) || dependency == job.name {
                let at = path.appending("depends_on").appending(index: index)
                if dependency == job.name {
                    context.error(at, "prelaunch job '\(job.name)' depends on itself")
                } else {
                    var message =
                        "prelaunch job '\(job.name)' depends on '\(dependency)', which is not a prelaunch job"
                    if let suggestion = Suggestion.nearest(to: dependency, in: names) {
                        message += "; did you mean '\(suggestion)'?"
                    }
                    context.error(at, message)
                }
            }
        }
        let graph = DependencyGraph(
            nodes: names,
            dependencies: Dictionary(uniqueKeysWithValues: jobs.map { ($0.job.name, $0.job.dependsOn) }))
        for cycle in graph.cycles() where cycle.count > 2 {
            context.error(
                firstByName[cycle[0]]!.appending("depends_on"),
                "dependency cycle: \(cycle.joined(separator: " -> "))")
        }
        return jobs.map(\.job)
    }
}
