import Foundation
import Logging
import Relay
import Synchronization
import Testing

@testable import Payloads

/// The engine with real WebAssembly modules (WAT text assembled by WasmKit): each host function,
/// the decisions, the sandbox bounds and the route filters, called the way one event loop calls.
@Suite("Payload engine", .serialized)
struct PayloadEngineTests {
    static func hooks(
        _ modules: [PayloadModule], limits: PayloadLimits = PayloadLimits(), logger: Logger = .quietPayloads
    )
        throws -> (PayloadSet, any LoopHooks)
    {
        let set = try PayloadSet(modules: modules, limits: limits, logger: logger)
        return (set, try set.makeLoopHooks())
    }

    static func blocked(_ outcome: HookRequestOutcome) throws -> HookBlock {
        guard case .block(let block) = outcome else {
            Issue.record("expected a block, got \(outcome)")
            throw CancellationError()
        }
        return block
    }

    static func json(_ bytes: [UInt8]) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    // MARK: Reading

    @Test func getRequestAndReadRequestHandTheModuleTheRequestJSON() throws {
        let (_, hooks) = try Self.hooks([try WATModules.payload(WATModules.echo())])
        var request = HookRequest.sample(headers: [
            ("Host", "shop.test"), ("User-Agent", "curl/8.5.0"), ("X-Twice", "a"), ("x-twice", "b"),
            ("Cookie", "a=1"), ("Cookie", "b=2"),
        ])
        let block = try Self.blocked(hooks.request(&request))
        #expect(block.status == 200)
        let document = try Self.json(block.body)
        #expect(document["method"] as? String == "GET")
        #expect(document["path"] as? String == "/api/items")
        #expect(document["query"] as? String == "page=2")
        #expect(document["remote_addr"] as? String == "203.0.113.9")
        #expect(document["bind"] as? String == "http")
        #expect(document["ua_kind"] as? String == "bot")
        let headers = try #require(document["headers"] as? [String: String])
        #expect(
            headers == [
                "host": "shop.test", "user-agent": "curl/8.5.0", "x-twice": "a, b", "cookie": "a=1; b=2",
            ])
        let ja4h = try #require(document["ja4h"] as? String)
        #expect(ja4h == CallContext.fingerprint(of: request))
        #expect(ja4h.hasPrefix("ge11cn040000_"), "\(ja4h)")  // four headers besides Cookie
    }

    @Test func getConfigAndReadConfigHandTheModuleItsConfigAsStrings() throws {
        let (_, hooks) = try Self.hooks([
            try WATModules.payload(WATModules.echo(config: true), config: ["ttl": "3600", "key": "s3cr\"t"])
        ])
        var request = HookRequest.sample()
        let block = try Self.blocked(hooks.request(&request))
        #expect(String(decoding: block.body, as: UTF8.self) == #"{"key":"s3cr\"t","ttl":"3600"}"#)
    }

    @Test func readRequestCopiesNoMoreThanAskedAndSaysHowMuch() throws {
        // Reads 5 bytes of the document, then blocks with status 200 + the count written.
        let wat = WATModules.module(
            """
            (call $set_block (i32.add (i32.const 200) (call $read_request (i32.const 100) (i32.const 5)))
              (i32.const 100) (i32.const 5))
            """)
        let (_, hooks) = try Self.hooks([try WATModules.payload(wat)])
        var request = HookRequest.sample()
        let block = try Self.blocked(hooks.request(&request))
        #expect(block.status == 205)
        #expect(String(decoding: block.body, as: UTF8.self) == #"{"met"#)
    }

    // MARK: Deciding

    @Test func setActionBlockWithoutABodyAnswers403() throws {
        let (set, hooks) = try Self.hooks([
            try WATModules.payload(WATModules.module("(call $set_action (i32.const 1))"), name: "gate")
        ])
        var request = HookRequest.sample()
        let block = try Self.blocked(hooks.request(&request))
        #expect(block.status == 403)
        #expect(String(decoding: block.body, as: UTF8.self).contains("gate"))
        #expect(
            set.activity[0].blocks == 1 && set.activity[0].invocations == 1 && set.activity[0].errors == 0)
    }

    @Test func setBlockWithHeadersGivesStatusBodyAndHeaders() throws {
        let strings = WATModules.Strings([
            #"{"error":"missing api key"}"#,
            #"{"Content-Type":"application/json","WWW-Authenticate":"ApiKey realm=\"api\"","X-Retry":3}"#,
        ])
        let wat = WATModules.module(
            "(call $set_block_with_headers (i32.const 401) \(strings.arguments(0)) \(strings.arguments(1)))",
            strings: strings)
        let (_, hooks) = try Self.hooks([try WATModules.payload(wat)])
        var request = HookRequest.sample()
        let block = try Self.blocked(hooks.request(&request))
        #expect(block.status == 401)
        #expect(String(decoding: block.body, as: UTF8.self) == #"{"error":"missing api key"}"#)
        #expect(
            block.headers == [
                HookHeader(name: "Content-Type", value: "application/json"),
                HookHeader(name: "WWW-Authenticate", value: #"ApiKey realm="api""#),
                HookHeader(name: "X-Retry", value: "3"),
            ])
    }

    @Test func setActionContinueAfterABlockLetsTheRequestThrough() throws {
        let strings = WATModules.Strings(["no"])
        let wat = WATModules.module(
            "(call $set_block (i32.const 418) \(strings.arguments(0))) (call $set_action (i32.const 0))",
            strings: strings)
        let (_, hooks) = try Self.hooks([try WATModules.payload(wat)])
        var request = HookRequest.sample()
        #expect(hooks.request(&request) == .proceed(changed: false))
    }

    @Test func setPathRewritesThePathAndKeepsOrReplacesTheQuery() throws {
        let strings = WATModules.Strings(["/v2/items", "/v3/items?from=module"])
        let first = WATModules.module("(call $set_path \(strings.arguments(0)))", strings: strings)
        let second = WATModules.module("(call $set_path \(strings.arguments(1)))", strings: strings)
        let (_, hooks) = try Self.hooks([
            try WATModules.payload(first, name: "one", routes: ["/api/.*"]),
            try WATModules.payload(second, name: "two", routes: ["/v4/.*"]),
        ])
        var request = HookRequest.sample()
        #expect(hooks.request(&request) == .proceed(changed: true))
        #expect(request.path == "/v2/items" && request.query == "page=2")
        var other = HookRequest.sample(path: "/v4/x")
        #expect(hooks.request(&other) == .proceed(changed: true))
        #expect(other.path == "/v3/items" && other.query == "from=module")
    }

    @Test func setHeaderReplacesEveryCopyAndRemoveHeaderDropsThem() throws {
        let strings = WATModules.Strings(["X-User", "alice", "cookie"])
        let wat = WATModules.module(
            "(call $set_header \(strings.arguments(0)) \(strings.arguments(1))) (call $remove_header \(strings.arguments(2)))",
            strings: strings)
        let (_, hooks) = try Self.hooks([try WATModules.payload(wat)])
        var request = HookRequest.sample(headers: [
            ("Host", "shop.test"), ("x-user", "mallory"), ("Cookie", "a=1"), ("X-USER", "eve"),
            ("Accept", "*/*"),
        ])
        #expect(hooks.request(&request) == .proceed(changed: true))
        #expect(
            request.headers == [
                HookHeader(name: "Host", value: "shop.test"), HookHeader(name: "Accept", value: "*/*"),
                HookHeader(name: "X-User", value: "alice"),
            ])
    }

    @Test func laterModulesSeeWhatEarlierOnesChanged() throws {
        let strings = WATModules.Strings(["/rewritten", "X-Step", "one"])
        let rewrite = WATModules.module(
            "(call $set_path \(strings.arguments(0))) (call $set_header \(strings.arguments(1)) \(strings.arguments(2)))",
            strings: strings)
        let (_, hooks) = try Self.hooks([
            try WATModules.payload(rewrite, name: "rewrite"),
            try WATModules.payload(WATModules.echo(), name: "echo"),
        ])
        var request = HookRequest.sample()
        let document = try Self.json(try Self.blocked(hooks.request(&request)).body)
        #expect(document["path"] as? String == "/rewritten")
        #expect((document["headers"] as? [String: String])?["x-step"] == "one")
    }

    @Test func logPassesTheMessageAtItsLevel() throws {
        let strings = WATModules.Strings(["debug line", "warn line", "info line", "error line"])
        let wat = WATModules.module(
            (0..<4).map { "(call $log (i32.const \($0)) \(strings.arguments($0)))" }.joined(separator: " "),
            strings: strings)
        let lines = LogCapture()
        var logger = Logger(label: "test") { _ in lines }
        logger.logLevel = .debug
        let (_, hooks) = try Self.hooks([try WATModules.payload(wat, name: "talker")], logger: logger)
        var request = HookRequest.sample()
        #expect(hooks.request(&request) == .proceed(changed: false))
        #expect(
            lines.entries == [
                .init(level: .debug, message: "debug line", module: "talker"),
                .init(level: .warning, message: "warn line", module: "talker"),
                .init(level: .info, message: "info line", module: "talker"),
                .init(level: .error, message: "error line", module: "talker"),
            ])
    }

    // MARK: Response phase

    @Test func responseModulesSetAndRemoveResponseHeadersAndReadTheResponseJSON() throws {
        let strings = WATModules.Strings(["X-Stamp", "payloads", "server"])
        let stamp = WATModules.module(
            "(call $set_header \(strings.arguments(0)) \(strings.arguments(1))) (call $remove_header \(strings.arguments(2)))",
            strings: strings, phase: .response)
        // Copies the response JSON into a header value, to see what it was handed.
        let strings2 = WATModules.Strings(["X-Seen"])
        let seen = WATModules.module(
            """
            (local $length i32)
            (local.set $length (call $get_request))
            (drop (call $read_request (i32.const 4096) (local.get $length)))
            (call $set_header \(strings2.arguments(0)) (i32.const 4096) (local.get $length))
            """, strings: strings2, phase: .response)
        let (set, hooks) = try Self.hooks([
            try WATModules.payload(stamp, name: "stamp", phase: .response),
            try WATModules.payload(seen, name: "seen", phase: .response),
        ])
        #expect(set.runsOnResponse(path: "/x") && !set.runsOnRequest(path: "/x"))
        var response = HookResponse(
            status: 201,
            headers: [
                HookHeader(name: "Server", value: "python"), HookHeader(name: "Content-Length", value: "2"),
            ],
            path: "/orders")
        #expect(hooks.response(&response))
        #expect(response.headers.map(\.name) == ["Content-Length", "X-Stamp", "X-Seen"])
        let document = try Self.json(Array(response.headers[2].value.utf8))
        #expect(document["status"] as? Int == 201)
        #expect(document["path"] as? String == "/orders")
        #expect(document["headers"] as? [String: String] == ["content-length": "2", "x-stamp": "payloads"])
    }

    @Test func aFailingResponseModuleLeavesTheResponseAsItWas() throws {
        let strings = WATModules.Strings(["X-Half", "done", "body"])
        let wat = WATModules.module(
            "(call $set_header \(strings.arguments(0)) \(strings.arguments(1))) (call $set_block (i32.const 403) \(strings.arguments(2)))",
            strings: strings, phase: .response)
        let (set, hooks) = try Self.hooks([try WATModules.payload(wat, phase: .response)])
        var response = HookResponse(status: 200, headers: [HookHeader(name: "A", value: "1")], path: "/")
        #expect(!hooks.response(&response))
        #expect(response.headers == [HookHeader(name: "A", value: "1")])
        #expect(set.activity[0].errors == 1)
    }

    // MARK: Faults fail closed

    @Test func headersTheRelayFramesByCannotBeTouched() throws {
        let strings = WATModules.Strings(["Content-Length", "0"])
        let wat = WATModules.module(
            "(call $set_header \(strings.arguments(0)) \(strings.arguments(1)))", strings: strings)
        let (set, hooks) = try Self.hooks([try WATModules.payload(wat, name: "framer")])
        var request = HookRequest.sample()
        #expect(hooks.request(&request) == .fail(module: "framer"))
        #expect(set.activity[0].errors == 1)
    }

    @Test func aPointerOutsideMemoryIsAFault() throws {
        let wat = WATModules.module("(call $set_path (i32.const 65530) (i32.const 100))")
        let (_, hooks) = try Self.hooks([try WATModules.payload(wat, name: "wild")])
        var request = HookRequest.sample()
        #expect(hooks.request(&request) == .fail(module: "wild"))
    }

    @Test(.timeLimit(.minutes(1)))
    func anEndlessLoopRunsOutOfFuelAndTheNextCallGetsAFreshInstance() throws {
        let wat = WATModules.module("(loop $forever (br $forever))")
        let limits = PayloadLimits(fuelPerCall: 300_000)
        let (set, hooks) = try Self.hooks([try WATModules.payload(wat, name: "spinner")], limits: limits)
        for _ in 0..<3 {
            var request = HookRequest.sample()
            #expect(hooks.request(&request) == .fail(module: "spinner"))
        }
        let activity = set.activity[0]
        #expect(activity.invocations == 3 && activity.errors == 3)
        #expect(activity.fuelUsed >= 870_000 && activity.fuelUsed <= 900_000, "\(activity.fuelUsed)")
    }

    @Test func growingMemoryPastTheCapFailsAndTheModuleCanTellOrTrap() throws {
        // Grows by 300 pages (18.75 MiB, past the 16 MiB cap): memory.grow answers -1. The module
        // reports that as status 507, then a second module traps on it.
        let reports = WATModules.module(
            """
            (if (i32.eq (memory.grow (i32.const 300)) (i32.const -1))
              (then (call $set_block (i32.const 507) (i32.const 0) (i32.const 0))))
            """)
        let traps = WATModules.module(
            "(if (i32.eq (memory.grow (i32.const 300)) (i32.const -1)) (then unreachable))")
        let withinCap = WATModules.module("(drop (memory.grow (i32.const 100)))")
        let (_, hooks) = try Self.hooks([
            try WATModules.payload(reports, name: "reports", routes: ["/reports"]),
            try WATModules.payload(traps, name: "traps", routes: ["/traps"]),
            try WATModules.payload(withinCap, name: "fits", routes: ["/fits"]),
        ])
        var reported = HookRequest.sample(path: "/reports")
        #expect(try Self.blocked(hooks.request(&reported)).status == 507)
        var trapped = HookRequest.sample(path: "/traps")
        #expect(hooks.request(&trapped) == .fail(module: "traps"))
        var fits = HookRequest.sample(path: "/fits")
        #expect(hooks.request(&fits) == .proceed(changed: false))
    }

    // MARK: Routes

    @Test func routesDecideWhichRequestsAModuleSees() throws {
        let (set, hooks) = try Self.hooks([
            try WATModules.payload(
                WATModules.module("(call $set_action (i32.const 1))"), name: "admin", routes: ["/admin/.*"]),
            try WATModules.payload(WATModules.module(""), name: "nothing", routes: []),
        ])
        #expect(set.runsOnRequest(path: "/admin/users"))
        #expect(!set.runsOnRequest(path: "/v2/admin/users"))
        #expect(!set.runsOnRequest(path: "/admin"))
        var outside = HookRequest.sample(path: "/public")
        #expect(hooks.request(&outside) == .proceed(changed: false))
        var inside = HookRequest.sample(path: "/admin/users")
        #expect(try Self.blocked(hooks.request(&inside)).status == 403)
        #expect(set.activity.map(\.invocations) == [1, 0])
    }

    // MARK: Loading

    @Test func loadingRefusesWhatCannotRunAndNamesTheModule() throws {
        func refusal(_ module: PayloadModule, limits: PayloadLimits = PayloadLimits()) -> String {
            do {
                _ = try PayloadSet(modules: [module], limits: limits, logger: .quietPayloads)
                return "loaded"
            } catch {
                return error.description
            }
        }
        let garbage = PayloadModule(
            name: "junk", phase: .request, routes: [], wasm: Array("not wasm".utf8),
            label: "modules[0] 'junk' (junk.wasm)")
        #expect(refusal(garbage).hasPrefix("modules[0] 'junk' (junk.wasm): not a valid WebAssembly module"))
        let wasi = try WATModules.payload(
            #"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32))) (func (export "on_request")))"#
        )
        #expect(
            refusal(wasi).contains("imports wasi_snapshot_preview1.fd_write, which the host does not provide")
        )
        let wrongType = try WATModules.payload(
            #"(module (import "env" "set_action" (func (param i64))) (func (export "on_request")))"#)
        #expect(
            refusal(wrongType).contains(
                "imports env.set_action as (i64) -> (); the host provides (i32) -> ()"))
        let noEntry = try WATModules.payload(#"(module (func (export "on_response")))"#)
        #expect(refusal(noEntry).contains("exports no function 'on_request'"))
        let noMemory = try WATModules.payload(
            #"(module (import "env" "set_path" (func (param i32 i32))) (func (export "on_request")))"#)
        #expect(refusal(noMemory).contains("exports no memory named 'memory'"))
        let huge = try WATModules.payload(WATModules.module("", pages: 300))
        #expect(refusal(huge) != "loaded")
        let endlessStart = try WATModules.payload(
            #"(module (func $start (loop $l (br $l))) (start $start) (func (export "on_request")))"#)
        #expect(refusal(endlessStart, limits: PayloadLimits(fuelPerCall: 100_000)).contains("fuel"))
    }

    // MARK: JA4H

    @Test func theFingerprintIsTheRelaysJA4HOfTheRequestAsSent() {
        let request = HookRequest.sample(
            method: "POST",
            headers: [
                ("Host", "a"), ("Cookie", "z=1; a=2"), ("Referer", "https://x/"),
                ("Accept-Language", "de-CH,de;q=0.9"),
                ("Accept", "*/*"),
            ])
        let ja4h = CallContext.fingerprint(of: request)
        #expect(ja4h.hasPrefix("po11cr03dech_"), "\(ja4h)")
        #expect(
            ja4h
                == JA4H(
                    method: "POST", version: "11", headers: request.headers.map { ($0.name, $0.value) }
                ).description)
    }
}

extension Logger {
    static let quietPayloads = Logger(label: "payloads.test") { _ in SwiftLogNoOpLogHandler() }
}

/// Collects log lines (level, message, module metadata).
final class LogCapture: LogHandler, @unchecked Sendable {
    struct Entry: Equatable {
        var level: Logger.Level
        var message: String
        var module: String?
    }

    private let lock = Mutex<[Entry]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    var entries: [Entry] { lock.withLock { $0 } }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        lock.withLock {
            $0.append(
                Entry(
                    level: event.level, message: "\(event.message)",
                    module: event.metadata?["module"].map { "\($0)" }))
        }
    }
}
