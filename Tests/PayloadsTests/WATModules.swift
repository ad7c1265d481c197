import Relay
import ShipManifest
import WAT

@testable import Payloads

/// WebAssembly modules for the tests, written as WAT text around the ABI's imports.
enum WATModules {
    /// Every host function, imported under its ABI name.
    static let imports = """
        (import "env" "get_request" (func $get_request (result i32)))
        (import "env" "read_request" (func $read_request (param i32 i32) (result i32)))
        (import "env" "set_action" (func $set_action (param i32)))
        (import "env" "set_block" (func $set_block (param i32 i32 i32)))
        (import "env" "set_block_with_headers" (func $set_block_with_headers (param i32 i32 i32 i32 i32)))
        (import "env" "log" (func $log (param i32 i32 i32)))
        (import "env" "set_path" (func $set_path (param i32 i32)))
        (import "env" "set_header" (func $set_header (param i32 i32 i32 i32)))
        (import "env" "remove_header" (func $remove_header (param i32 i32)))
        (import "env" "get_config" (func $get_config (result i32)))
        (import "env" "read_config" (func $read_config (param i32 i32) (result i32)))
        """

    /// Strings laid out from offset 0 (each 256 bytes apart): their data segments and addresses.
    struct Strings {
        var segments = ""
        var places: [(offset: Int, length: Int)] = []

        init(_ texts: [String]) {
            for (index, text) in texts.enumerated() {
                let offset = index * 256
                segments += "(data (i32.const \(offset)) \"\(Self.escaped(text))\")\n"
                places.append((offset, text.utf8.count))
            }
        }

        /// `(i32.const offset) (i32.const length)` of string `index`.
        func arguments(_ index: Int) -> String {
            "(i32.const \(places[index].offset)) (i32.const \(places[index].length))"
        }

        static func escaped(_ text: String) -> String {
            var out = ""
            for byte in text.utf8 {
                switch byte {
                case UInt8(ascii: "\""): out += "\\\""
                case UInt8(ascii: "\\"): out += "\\\\"
                case 0x20..<0x7F: out += String(UnicodeScalar(byte))
                default: out += "\\" + String(byte, radix: 16).leftPadded(to: 2)
                }
            }
            return out
        }
    }

    /// A module whose entry point (`on_request` or `on_response`) runs `body`, with `strings` in
    /// its memory (`pages` of 64 KiB).
    static func module(
        _ body: String, strings: Strings = Strings([]), phase: Module.Phase = .request, pages: Int = 1,
        extra: String = ""
    ) -> String {
        let entry = phase == .request ? "on_request" : "on_response"
        return """
            (module
              \(imports)
              (memory (export "memory") \(pages))
              \(strings.segments)
              \(extra)
              (func (export "\(entry)") \(body)))
            """
    }

    /// A module that answers with its input document (`get_request`/`read_request`, or the config
    /// with `get_config`/`read_config`) as a 200 body, read into memory at 4096.
    static func echo(config: Bool = false) -> String {
        let (get, read) = config ? ("$get_config", "$read_config") : ("$get_request", "$read_request")
        return module(
            """
            (local $length i32)
            (local $written i32)
            (local.set $length (call \(get)))
            (local.set $written (call \(read) (i32.const 4096) (local.get $length)))
            (call $set_block (i32.const 200) (i32.const 4096) (local.get $written))
            """, pages: 2)
    }

    static func payload(
        _ wat: String, name: String = "test", phase: Module.Phase = .request, routes: [String] = ["/.*"],
        config: [String: String] = [:]
    ) throws -> PayloadModule {
        PayloadModule(
            name: name, phase: phase, routes: try routes.map { try RoutePattern($0) }, config: config,
            wasm: try wat2wasm(wat))
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}

extension HookRequest {
    static func sample(
        method: String = "GET", path: String = "/api/items", query: String = "page=2",
        headers: [(String, String)] = [
            ("Host", "shop.test"), ("User-Agent", "curl/8.5.0"), ("Accept", "*/*"),
        ]
    ) -> HookRequest {
        HookRequest(
            method: method, path: path, query: query, version: "1.1",
            headers: headers.map { HookHeader(name: $0.0, value: $0.1) }, remoteAddress: "203.0.113.9",
            bind: "http",
            userAgentKind: "bot")
    }
}
