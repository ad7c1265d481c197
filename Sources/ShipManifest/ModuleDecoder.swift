/// Reads `[[modules]]` (WASM payloads) with the `[base.module]` template merged in.
struct ModuleDecoder {
    let context: DecodeContext

    static let keys = ["name", "wasm", "routes", "phase", "config", "tags"]

    func decode(_ tables: [TableReader], template: TableReader?) -> [Module] {
        var base = Fields()
        if let template {
            template.rejectUnknownKeys(
                allowed: Self.keys.filter { $0 != "name" } + ["comment"], section: "[base.module]")
            _ = template.string("comment")
            base = fields(template)
        }
        var modules: [Module] = []
        var firstByName: [String: FieldPath] = [:]
        for table in tables {
            table.rejectUnknownKeys(allowed: Self.keys, section: "a module")
            let name = table.requiredString("name", "a unique identifier")
            let own = fields(table)
            guard let name else { continue }
            guard VesselName.isValid(name) else {
                context.error(table.path.appending("name"), VesselName.problem(name))
                continue
            }
            if let earlier = firstByName[name] {
                context.error(
                    table.path.appending("name"), "duplicate module name '\(name)' (also at \(earlier))")
                continue
            }
            firstByName[name] = table.path
            guard let wasm = own.wasm ?? base.wasm else {
                table.missing("wasm", "path to the .wasm file")
                continue
            }
            var tags = base.tags ?? []
            for tag in own.tags ?? [] where !tags.contains(tag) { tags.append(tag) }
            var module = Module(
                name: name, wasmPath: wasm, routes: own.routes ?? base.routes ?? [],
                phase: own.phase ?? base.phase ?? .request,
                config: (base.config ?? [:]).merging(own.config ?? [:]) { _, mine in mine }, tags: tags)
            module.manifestPath = table.path
            modules.append(module)
        }
        return modules
    }

    struct Fields {
        var wasm: String?
        var routes: [RoutePattern]?
        var phase: Module.Phase?
        var config: [String: String]?
        var tags: [String]?
    }

    private func fields(_ table: TableReader) -> Fields {
        var fields = Fields()
        fields.wasm = table.string("wasm")
        if let patterns = table.strings("routes") {
            fields.routes = patterns.enumerated().compactMap { index, pattern in
                do {
                    return try RoutePattern(pattern)
                } catch {
                    context.error(table.path.appending("routes").appending(index: index), "\(error)")
                    return nil
                }
            }
        }
        if let phase = table.string("phase") {
            fields.phase = Module.Phase(rawValue: phase)
            if fields.phase == nil {
                context.error(
                    table.path.appending("phase"),
                    "unknown phase '\(phase)'; expected \"request\" or \"response\"")
            }
        }
        fields.config = table.stringMap("config")
        fields.tags = table.strings("tags")
        return fields
    }
}
