// Shared by every fuzz target: the libFuzzer entry point calls `fuzz(_:)`, which each harness defines.

#if canImport(Glibc)
    import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    fuzz(bytes)
    return 0
}

/// A property that does not hold: says which, and aborts (libFuzzer saves the input as a crash).
func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() {
        var text = "property violated: \(message())\n"
        text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
        abort()
    }
}

/// Bytes for humans: printable ASCII as is, the rest escaped.
func show(_ bytes: some Sequence<UInt8>) -> String {
    var text = ""
    for byte in bytes {
        switch byte {
        case 13: text += "\\r"
        case 10: text += "\\n"
        case 32..<127: text.unicodeScalars.append(Unicode.Scalar(byte))
        default: text += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
        }
    }
    return text
}

/// Takes control values off the front of an input (split points, options); zero once it is used up.
struct Controls {
    private var bytes: ArraySlice<UInt8>
    init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }
    mutating func next() -> UInt8 { bytes.popFirst() ?? 0 }
}
