import Logging
import Relay
import ShipManifest
import WasmKit

/// A host function refused what the module asked (a pointer outside its memory, a header the relay
/// owns, a block in the response phase): the call fails like a trap.
struct ModuleFault: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// What the host functions of one relay thread (a worker, or an event loop serving TLS) work on
/// during a call: the request or response the module sees and what it decided. One per thread,
/// filled before each call.
final class CallContext {
    enum Subject {
        /// Instantiation (a start function): nothing to read.
        case none
        case request(HookRequest)
        case response(HookResponse)
    }

    let logger: Logger
    var subject = Subject.none
    /// The module being called, its memory and its config document.
    var module = ""
    var memory: Memory?
    var config: [UInt8] = []
    /// The document `get_request`/`read_request` return, made on first use after each change.
    private var document: [UInt8]?
    /// The fingerprint of the request as the client sent it (computed once, when first read).
    private var fingerprint: String?
    /// `set_action` and the block the module described.
    var blocks = false
    var block: HookBlock?
    /// Whether a module changed the path or the headers.
    var changed = false

    init(logger: Logger) { self.logger = logger }

    /// A new request or response: nothing read, decided or changed yet.
    func begin(_ subject: Subject) {
        self.subject = subject
        document = nil
        fingerprint = nil
        changed = false
    }

    /// Before each module's call.
    func enter(module: String, memory: Memory?, config: [UInt8]) {
        self.module = module
        self.memory = memory
        self.config = config
        blocks = false
        block = nil
    }

    func end() {
        subject = .none
        memory = nil
        document = nil
    }

    var request: HookRequest? {
        if case .request(let request) = subject { return request }
        return nil
    }

    var response: HookResponse? {
        if case .response(let response) = subject { return response }
        return nil
    }

    var isResponsePhase: Bool {
        if case .response = subject { return true }
        return false
    }

    /// The request or response JSON of SPEC §7.
    func currentDocument() -> [UInt8] {
        if let document { return document }
        let made: [UInt8]
        switch subject {
        case .none: made = []
        case .request(let request):
            let ja4h = fingerprint ?? Self.fingerprint(of: request)
            fingerprint = ja4h
            made = PayloadJSON.request(request, ja4h: ja4h)
        case .response(let response): made = PayloadJSON.response(response)
        }
        document = made
        return made
    }

    /// The relay's JA4H (SPEC §5.5) of the request as the client sent it.
    static func fingerprint(of request: HookRequest) -> String {
        let version = request.version == "1.0" ? "10" : request.version == "2" ? "20" : "11"
        return JA4H(
            method: request.method, version: version, headers: request.headers.map { ($0.name, $0.value) }
        )
        .description
    }

    // MARK: Changes

    /// Headers the relay frames and routes by: a module may neither set nor remove them.
    static let reservedHeaders: Set<String> = [
        "content-length", "transfer-encoding", "connection", "upgrade", "keep-alive", "proxy-connection",
        "te",
        "trailer",
    ]

    func setPath(_ value: String) throws(ModuleFault) {
        guard case .request(var request) = subject else {
            throw ModuleFault("set_path is for the request phase")
        }
        guard value.utf8.first == UInt8(ascii: "/"),
            value.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "#") })
        else {
            throw ModuleFault(
                "set_path: '\(value.prefix(80))' is not a path (it must start with / and hold no spaces or control bytes)"
            )
        }
        if let question = value.utf8.firstIndex(of: UInt8(ascii: "?")) {
            request.path = String(value[..<question])
            request.query = String(value[value.utf8.index(after: question)...])
        } else {
            request.path = value
        }
        subject = .request(request)
        document = nil
        changed = true
    }

    func setHeader(name: String, value: String) throws(ModuleFault) {
        let lower = try checkedName(name, operation: "set_header")
        guard value.utf8.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else {
            throw ModuleFault("set_header: the value of '\(name)' holds control bytes")
        }
        try editHeaders { headers in
            headers.removeAll { $0.name.lowercased() == lower }
            headers.append(HookHeader(name: name, value: value))
        }
    }

    func removeHeader(name: String) throws(ModuleFault) {
        let lower = try checkedName(name, operation: "remove_header")
        try editHeaders { headers in headers.removeAll { $0.name.lowercased() == lower } }
    }

    private func checkedName(_ name: String, operation: String) throws(ModuleFault) -> String {
        guard HookHeader.isValidName(name) else {
            throw ModuleFault("\(operation): '\(name.prefix(80))' is not a header name")
        }
        let lower = name.lowercased()
        guard !Self.reservedHeaders.contains(lower) else {
            throw ModuleFault("\(operation): '\(name)' is managed by the relay")
        }
        return lower
    }

    private func editHeaders(_ edit: (inout [HookHeader]) -> Void) throws(ModuleFault) {
        switch subject {
        case .none: throw ModuleFault("headers can only be changed during on_request or on_response")
        case .request(var request):
            edit(&request.headers)
            subject = .request(request)
        case .response(var response):
            edit(&response.headers)
            subject = .response(response)
        }
        document = nil
        changed = true
    }

    func setBlock(status: UInt32, body: [UInt8], headers: [(String, String)]) throws(ModuleFault) {
        guard case .request = subject else { throw ModuleFault("blocking is for the request phase") }
        guard (200...599).contains(status) else {
            throw ModuleFault("set_block: status \(status) is not 200 to 599")
        }
        var list: [HookHeader] = []
        for (name, value) in headers {
            let header = HookHeader(name: name, value: value)
            guard header.isSendable else {
                throw ModuleFault("set_block_with_headers: header '\(name.prefix(80))' cannot be sent")
            }
            list.append(header)
        }
        block = HookBlock(status: Int(status), headers: list, body: body)
        blocks = true
    }

    func setAction(_ action: UInt32) throws(ModuleFault) {
        switch action {
        case 0: blocks = false
        case 1:
            guard case .request = subject else { throw ModuleFault("blocking is for the request phase") }
            blocks = true
        default: throw ModuleFault("set_action: unknown action \(action) (0 continue, 1 block)")
        }
    }

    func log(level: UInt32, message: String) {
        let metadata: Logger.Metadata = ["module": "\(module)"]
        switch level {
        case 0: logger.debug("\(message)", metadata: metadata)
        case 1: logger.warning("\(message)", metadata: metadata)
        case 3: logger.error("\(message)", metadata: metadata)
        default: logger.info("\(message)", metadata: metadata)
        }
    }

    // MARK: Memory

    /// `len` bytes at `pointer` in the module's memory.
    func read(_ pointer: UInt32, _ length: UInt32, limit: Int = .max) throws(ModuleFault) -> [UInt8] {
        let memory = try checked(pointer, length)
        let count = min(Int(length), limit)
        return memory.withUnsafeBufferPointer(offset: UInt(pointer), count: count) { Array($0) }
    }

    func readString(_ pointer: UInt32, _ length: UInt32, limit: Int = .max) throws(ModuleFault) -> String {
        String(decoding: try read(pointer, length, limit: limit), as: UTF8.self)
    }

    /// Copies as much of `bytes` as fits in `length` bytes at `pointer`; returns how much.
    func write(_ bytes: [UInt8], to pointer: UInt32, _ length: UInt32) throws(ModuleFault) -> UInt32 {
        let memory = try checked(pointer, length)
        let count = min(bytes.count, Int(length))
        if count > 0 {
            memory.withUnsafeMutableBufferPointer(offset: UInt(pointer), count: count) { target in
                bytes.withUnsafeBytes {
                    target.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<count]))
                }
            }
        }
        return UInt32(count)
    }

    private func checked(_ pointer: UInt32, _ length: UInt32) throws(ModuleFault) -> Memory {
        guard let memory else { throw ModuleFault("the module exports no memory named 'memory'") }
        guard UInt64(pointer) + UInt64(length) <= UInt64(memory.byteCount) else {
            throw ModuleFault(
                "\(length) bytes at \(pointer) lie outside its memory (\(memory.byteCount) bytes)")
        }
        return memory
    }
}
