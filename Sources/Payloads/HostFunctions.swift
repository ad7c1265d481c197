import WasmKit

/// A host function's i32 arguments, read from the engine's parameter buffer (valid during the call;
/// the signature was checked at instantiation, so every value is an i32).
struct Arguments {
    let values: UnsafeBufferPointer<Value>

    subscript(index: Int) -> UInt32 {
        if case .i32(let value) = values[index] { return value }
        return 0
    }
}

/// The `env` imports of SPEC §7: the original's host functions plus ours for path, header and
/// config access. All integers are i32; pointers index the module's exported `memory`.
enum HostFunctions {
    /// Each function's signature, for checking a module's imports at load.
    static let signatures: [String: FunctionType] = [
        "get_request": FunctionType(parameters: [], results: [.i32]),
        "read_request": FunctionType(parameters: [.i32, .i32], results: [.i32]),
        "set_action": FunctionType(parameters: [.i32], results: []),
        "set_block": FunctionType(parameters: [.i32, .i32, .i32], results: []),
        "set_block_with_headers": FunctionType(parameters: [.i32, .i32, .i32, .i32, .i32], results: []),
        "log": FunctionType(parameters: [.i32, .i32, .i32], results: []),
        "set_path": FunctionType(parameters: [.i32, .i32], results: []),
        "set_header": FunctionType(parameters: [.i32, .i32, .i32, .i32], results: []),
        "remove_header": FunctionType(parameters: [.i32, .i32], results: []),
        "get_config": FunctionType(parameters: [], results: [.i32]),
        "read_config": FunctionType(parameters: [.i32, .i32], results: [.i32]),
    ]

    /// The functions that take a pointer: a module importing one must export its memory.
    static let touchMemory: Set<String> = [
        "read_request", "set_block", "set_block_with_headers", "log", "set_path", "set_header",
        "remove_header",
        "read_config",
    ]

    /// Longest `log` message kept.
    static let logLimit = 4096

    /// The `env` namespace for one store; every function works on `context`.
    static func imports(store: Store, context: CallContext) -> Imports {
        func define(_ name: String, _ body: @escaping (Arguments) throws -> UInt32?) -> (String, Function) {
            let type = signatures[name]!
            return (
                name,
                Function(
                    store: store, parameters: type.parameters, results: type.results,
                    raw: { _, parameters, results in
                        // No allocation per call: the engine's buffers are read in place.
                        if let result = try body(Arguments(values: parameters)), results.count == 1 {
                            results[0] = .i32(result)
                        }
                    })
            )
        }
        var imports = Imports()
        let functions: [(String, Function)] = [
            define("get_request") { _ in UInt32(context.currentDocument().count) },
            define("read_request") { args in
                try context.write(context.currentDocument(), to: args[0], args[1])
            },
            define("set_action") { args in
                try context.setAction(args[0])
                return nil
            },
            define("set_block") { args in
                try context.setBlock(status: args[0], body: context.read(args[1], args[2]), headers: [])
                return nil
            },
            define("set_block_with_headers") { args in
                let body = try context.read(args[1], args[2])
                let text = try context.read(args[3], args[4])
                let headers: [(String, String)]
                do {
                    headers = args[4] == 0 ? [] : try PayloadJSON.flatObject(text)
                } catch {
                    throw ModuleFault(
                        "set_block_with_headers: headers are not a JSON object of strings (\(error))")
                }
                try context.setBlock(status: args[0], body: body, headers: headers)
                return nil
            },
            define("log") { args in
                context.log(
                    level: args[0], message: try context.readString(args[1], args[2], limit: logLimit))
                return nil
            },
            define("set_path") { args in
                try context.setPath(context.readString(args[0], args[1]))
                return nil
            },
            define("set_header") { args in
                try context.setHeader(
                    name: context.readString(args[0], args[1]), value: context.readString(args[2], args[3]))
                return nil
            },
            define("remove_header") { args in
                try context.removeHeader(name: context.readString(args[0], args[1]))
                return nil
            },
            define("get_config") { _ in UInt32(context.config.count) },
            define("read_config") { args in try context.write(context.config, to: args[0], args[1]) },
        ]
        for (name, function) in functions { imports.define(module: "env", name: name, function) }
        return imports
    }
}
