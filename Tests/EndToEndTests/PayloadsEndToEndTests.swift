import Foundation
import MothershipTestSupport
import Testing
import WAT

/// Payloads through the built binary: the C example modules (built by `Examples/payloads/build.sh`
/// with the toolchain's clang) and WAT modules for the sandbox bounds, in front of the python ships
/// of the relay tests.
@Suite("Payloads end to end")
struct PayloadsEndToEndTests {
    @Test(.timeLimit(.minutes(2)))
    func theAPIKeyGateBlocksWith401AndAJSONBodyOnlyOnItsRoutes() async throws {
        let relay = LoopbackPorts.free()
        let ship = LoopbackPorts.free()
        let directory = try await Self.directoryWithExamples()
        defer { directory.remove() }
        let mothership = try await RelayEndToEndTests.launch(
            in: directory,
            """
            [mothership.bind]
            http = "127.0.0.1:\(relay)"

            [base.module]
            config = { api_key = "s3cret" }

            [[modules]]
            name = "gate"
            wasm = "examples/api_key_gate.wasm"
            routes = ["/api/.*"]
            phase = "request"
            config = { header = "x-api-key" }
            \(RelayEndToEndTests.ship("web", port: ship, routes: #"["http:/.*"]"#))
            """)
        defer { mothership.stop() }
        let connection = try RawConnection(port: relay)

        let refused = try await connection.exchange(RawConnection.request("GET", "/api/orders"))
        #expect(refused.status == 401)
        #expect(refused.header("content-type") == "application/json")
        #expect(refused.header("www-authenticate") == "ApiKey")
        #expect(refused.text == #"{"error":"missing or invalid API key"}"#)
        let wrong = try await connection.exchange(
            RawConnection.request("GET", "/api/orders", ["X-Api-Key: guess"]))
        #expect(wrong.status == 401)

        let allowed = try ShipEcho(
            try await connection.exchange(RawConnection.request("GET", "/api/orders", ["X-Api-Key: s3cret"])))
        #expect(allowed.path == "/api/orders")
        #expect(allowed.header("x-api-key") == "s3cret")
        // Outside the module's routes nothing is asked.
        let open = try ShipEcho(try await connection.exchange(RawConnection.request("GET", "/public")))
        #expect(open.path == "/public")
    }

    /// SPEC §12.3: a reload loads the modules again when they changed (here the gate's key), and
    /// an open connection's next request meets the new instances; a reload without modules takes
    /// the gate away.
    @Test(.timeLimit(.minutes(2)))
    func aReloadSwapsTheModulesUnderAnOpenConnection() async throws {
        let relay = LoopbackPorts.free()
        let ship = LoopbackPorts.free()
        let directory = try await Self.directoryWithExamples()
        defer { directory.remove() }
        func manifest(key: String?) -> String {
            var text = """
                [mothership.bind]
                http = "127.0.0.1:\(relay)"

                """
            if let key {
                text += """
                    [[modules]]
                    name = "gate"
                    wasm = "examples/api_key_gate.wasm"
                    routes = ["/api/.*"]
                    config = { header = "x-api-key", api_key = "\(key)" }

                    """
            }
            return text + RelayEndToEndTests.ship("web", port: ship, routes: #"["http:/.*"]"#)
        }
        let mothership = try await RelayEndToEndTests.launch(
            in: directory, manifest(key: "s3cret"), waitingFor: ["lifecycle: Running", "control socket on "])
        defer { mothership.stop() }
        let connection = try RawConnection(port: relay)
        func status(key: String) async throws -> Int {
            try await connection.exchange(RawConnection.request("GET", "/api/orders", ["X-Api-Key: \(key)"]))
                .status
        }
        #expect(try await status(key: "s3cret") == 200)
        #expect(try await status(key: "n3w") == 401)

        try directory.write("ship-manifest.toml", RelayEndToEndTests.underTest(manifest(key: "n3w")))
        let reload = try await BinaryRunner.run(["reload"], in: directory.path, timeout: .seconds(60))
        #expect(reload.status == 0, "\(reload.output)")
        #expect(try await status(key: "s3cret") == 401)
        #expect(try await status(key: "n3w") == 200)

        try directory.write("ship-manifest.toml", RelayEndToEndTests.underTest(manifest(key: nil)))
        let unloaded = try await BinaryRunner.run(["reload"], in: directory.path, timeout: .seconds(60))
        #expect(unloaded.status == 0, "\(unloaded.output)")
        #expect(try await status(key: "anything") == 200)
    }

    @Test(.timeLimit(.minutes(2)))
    func aRewrittenPathReachesTheShipThroughItsRouteAndResponsesGetStamped() async throws {
        let relay = LoopbackPorts.free()
        let ship = LoopbackPorts.free()
        let directory = try await Self.directoryWithExamples()
        defer { directory.remove() }
        let mothership = try await RelayEndToEndTests.launch(
            in: directory,
            """
            [mothership]
            metrics_port = \(LoopbackPorts.free())

            [mothership.bind]
            http = "127.0.0.1:\(relay)"

            [[modules]]
            name = "rewriter"
            wasm = "examples/path_rewriter.wasm"
            routes = ["/old/.*"]
            config = { from = "/old/", to = "/new/" }

            [[modules]]
            name = "stamper"
            wasm = "examples/header_stamper.wasm"
            routes = ["/new/.*", "/old/.*"]
            phase = "response"
            config = { header = "X-Served-By", value = "payloads" }
            \(RelayEndToEndTests.ship("web", port: ship, routes: #"["http:/new/.*"]"#))
            """)
        defer { mothership.stop() }
        let connection = try RawConnection(port: relay)

        // Only /new/.* is routed: /old/items reaches the ship because the module rewrote it first.
        let response = try await connection.exchange(RawConnection.request("GET", "/old/items?x=1"))
        let seen = try ShipEcho(response)
        #expect(seen.path == "/new/items?x=1")
        #expect(response.header("x-served-by") == "payloads")
        #expect(response.header("content-type") == "application/json")
        // The body streamed untouched and framing held: the next request on the connection works.
        let direct = try await connection.exchange(RawConnection.request("GET", "/new/direct"))
        #expect(try ShipEcho(direct).path == "/new/direct")
        #expect(direct.header("x-served-by") == "payloads")
        // Outside both modules' routes: 404, unstamped (local answers are not responses of ships).
        let missing = try await connection.exchange(RawConnection.request("GET", "/elsewhere"))
        #expect(missing.status == 404)
        #expect(missing.header("x-served-by") == nil)
    }

    @Test(.timeLimit(.minutes(2)))
    func anEndlessLoopIsCutOffWith500WhileOtherRequestsKeepFlowing() async throws {
        let relay = LoopbackPorts.free()
        let ship = LoopbackPorts.free()
        let metrics = LoopbackPorts.free()
        let directory = try TemporaryDirectory(prefix: "mothership-payloads")
        defer { directory.remove() }
        try directory.write("ship.py", RelayEndToEndTests.shipScript)
        try Self.writeWasm(
            #"(module (memory (export "memory") 1) (func (export "on_request") (loop $l (br $l))))"#,
            to: directory.file("spin.wasm"))
        try Self.writeWasm(
            #"(module (memory (export "memory") 1) (func (export "on_request") (if (i32.eq (memory.grow (i32.const 300)) (i32.const -1)) (then unreachable))))"#,
            to: directory.file("hog.wasm"))
        let mothership = try await RelayEndToEndTests.launch(
            in: directory,
            """
            [mothership]
            metrics_port = \(metrics)

            [mothership.bind]
            http = "127.0.0.1:\(relay)"

            [[modules]]
            name = "spinner"
            wasm = "spin.wasm"
            routes = ["/spin"]

            [[modules]]
            name = "hog"
            wasm = "hog.wasm"
            routes = ["/hog"]
            \(RelayEndToEndTests.ship("web", port: ship, routes: #"["http:/.*"]"#))
            """)
        defer { mothership.stop() }

        // Other connections keep being served while, and after, the spinner burns its fuel. One
        // that the kernel gave to the spinner's worker waits for the fuel to run out (a module runs
        // on its connection's thread): as long as the spinner's own answer may take, on a loaded
        // machine and a debug build.
        let spinning = Task {
            let connection = try RawConnection(port: relay)
            let answer = try await connection.exchange(RawConnection.request("GET", "/spin"), timeout: 30)
            let after = try await connection.exchange(RawConnection.request("GET", "/after"))
            return (answer.status, answer.text, try ShipEcho(after).path)
        }
        let others = try RawConnection(port: relay)
        for index in 0..<20 {
            #expect(
                try ShipEcho(
                    try await others.exchange(RawConnection.request("GET", "/other/\(index)"), timeout: 30)
                ).path == "/other/\(index)")
        }
        let (status, text, after) = try await spinning.value
        #expect(status == 500)
        #expect(text.contains("request module 'spinner' failed"))
        #expect(after == "/after")
        try await mothership.waitFor("module 'spinner' failed in on_request")
        #expect(mothership.output.contains("out of fuel"))

        // Memory past the 16 MiB cap: memory.grow fails, the module traps, the request fails closed.
        let hog = try await others.exchange(RawConnection.request("GET", "/hog"))
        #expect(hog.status == 500)
        #expect(
            try ShipEcho(try await others.exchange(RawConnection.request("GET", "/still"))).path == "/still")

        let text2 = try RelayEndToEndTests.fetch("http://127.0.0.1:\(metrics)/metrics")
        #expect(
            text2.contains(#"mothership_module_errors_total{module="spinner",phase="request"} 1"#), "\(text2)"
        )
        #expect(text2.contains(#"mothership_module_errors_total{module="hog",phase="request"} 1"#))
        #expect(text2.contains(#"mothership_module_invocations_total{module="spinner",phase="request"} 1"#))
        #expect(text2.contains(#"mothership_module_fuel_used_total{module="spinner",phase="request"}"#))
    }

    @Test(.timeLimit(.minutes(1)))
    func anInvalidModuleStopsTheStartAndIsNamed() async throws {
        let directory = try TemporaryDirectory(prefix: "mothership-payloads")
        defer { directory.remove() }
        try directory.write("broken.wasm", "this is not WebAssembly")
        try directory.write(
            "ship-manifest.toml",
            """
            [mothership.bind]
            http = "127.0.0.1:\(LoopbackPorts.free())"

            [[modules]]
            name = "broken"
            wasm = "broken.wasm"
            routes = ["/.*"]

            [[fleet.web]]
            name = "web"
            command = "sleep"
            args = ["30"]
            """)
        let outcome = try await BinaryRunner.run([], in: directory.path)
        let output = outcome.standardOutput + outcome.standardError
        #expect(outcome.status == 1, "\(output)")
        #expect(
            output.contains("modules[0] 'broken' (broken.wasm): not a valid WebAssembly module"), "\(output)")
    }

    // MARK: Helpers

    /// A relay test directory with the example modules built into `examples/`.
    static func directoryWithExamples() async throws -> TemporaryDirectory {
        let directory = try RelayEndToEndTests.directory()
        let built = try await RelayEndToEndTests.run(
            "bash", [Repository.path("Examples/payloads/build.sh"), directory.file("examples")],
            in: directory.path)
        try #require(built.status == 0, "building the example payloads failed:\n\(built.output)")
        return directory
    }

    static func writeWasm(_ wat: String, to path: String) throws {
        let bytes = try wat2wasm(wat)
        try #require(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
    }
}
