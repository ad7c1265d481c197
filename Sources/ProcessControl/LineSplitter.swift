#if canImport(Glibc)
    import Glibc
#endif

/// Turns a byte stream into lines: "\n" ends a line and a "\r" before it is dropped; a line longer
/// than `maximumLength` bytes is delivered in pieces of at most that size (cut before a UTF-8
/// continuation byte when possible); what is left at end of stream is the last line. Invalid UTF-8 is
/// repaired (U+FFFD). One per stream, confined to the thread that reads it.
package struct LineSplitter {
    package static let defaultMaximumLength = 64 * 1024

    package let maximumLength: Int
    /// Bytes of the line in progress (never more than `maximumLength` between calls).
    private var pending: [UInt8] = []

    package init(maximumLength: Int = LineSplitter.defaultMaximumLength) {
        precondition(maximumLength >= 4)
        self.maximumLength = maximumLength
    }

    /// Feeds `chunk`; `emit` receives every line it completes, in order.
    package mutating func append(_ chunk: UnsafeRawBufferPointer, _ emit: (String) -> Void) {
        let bytes = chunk.assumingMemoryBound(to: UInt8.self)
        var start = 0
        while start < bytes.count {
            guard let newline = Self.index(of: 0x0A, in: bytes, from: start) else {
                pending.append(contentsOf: bytes[start...])
                while pending.count > maximumLength {
                    let cut = Self.cut(pending, at: maximumLength)
                    emit(String(decoding: pending[..<cut], as: UTF8.self))
                    pending.removeFirst(cut)
                }
                return
            }
            if pending.isEmpty {
                emitLine(UnsafeBufferPointer(rebasing: bytes[start..<newline]), emit)
            } else {
                pending.append(contentsOf: bytes[start..<newline])
                pending.withUnsafeBufferPointer { emitLine($0, emit) }
                pending.removeAll(keepingCapacity: pending.capacity <= 4096)
            }
            start = newline + 1
        }
    }

    /// End of stream: delivers the unterminated last line, if any.
    package mutating func finish(_ emit: (String) -> Void) {
        guard !pending.isEmpty else { return }
        pending.withUnsafeBufferPointer { emitLine($0, emit) }
        pending = []
    }

    /// A complete line (without its "\n"): drops one trailing "\r", then splits if too long.
    private func emitLine(_ line: UnsafeBufferPointer<UInt8>, _ emit: (String) -> Void) {
        var rest = line
        if let last = rest.last, last == 0x0D { rest = UnsafeBufferPointer(rebasing: rest.dropLast()) }
        while rest.count > maximumLength {
            let cut = Self.cut(rest, at: maximumLength)
            emit(String(decoding: UnsafeBufferPointer(rebasing: rest[..<cut]), as: UTF8.self))
            rest = UnsafeBufferPointer(rebasing: rest[cut...])
        }
        emit(String(decoding: rest, as: UTF8.self))
    }

    /// Where to split `bytes` (longer than `limit`): at `limit`, or up to 3 bytes earlier so that a
    /// UTF-8 sequence is not cut in two.
    private static func cut<Bytes: RandomAccessCollection<UInt8>>(_ bytes: Bytes, at limit: Int) -> Int
    where Bytes.Index == Int {
        var cut = limit
        while cut > limit - 3, bytes[bytes.startIndex + cut] & 0xC0 == 0x80 { cut -= 1 }
        return bytes[bytes.startIndex + cut] & 0xC0 == 0x80 ? limit : cut
    }

    private static func index(of byte: UInt8, in bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        guard let base = bytes.baseAddress else { return nil }
        guard let found = memchr(base + start, Int32(byte), bytes.count - start) else { return nil }
        return base.distance(to: found.assumingMemoryBound(to: UInt8.self))
    }
}
