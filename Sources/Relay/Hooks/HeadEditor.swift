import NIOCore

/// The heads hooks changed: written anew from the original first line, the new target and the
/// header list the hooks left, then parsed again, so that everything downstream (routing, the
/// forwarding rewrite, body framing) works on an ordinary `MessageHead`. Only requests and
/// responses some hook changed pay for this.
enum HeadEditor {
    /// Generous: a hook may lengthen the path and add headers beyond what a client may send.
    static let limits = HeadParser.Limits(
        maxTargetBytes: 64 * 1024, maxHeaderBytes: 256 * 1024, maxFieldCount: 1000)

    /// `head` with `target` as its request target and `headers` as its header lines; nil when a
    /// name or value cannot be written as a header line.
    static func request(
        _ head: MessageHead, target: String, headers: [HookHeader], allocator: ByteBufferAllocator
    ) -> MessageHead? {
        guard isSafe(target), headers.allSatisfy(\.isSendable) else { return nil }
        let source = head.bytes
        var bytes = allocator.buffer(capacity: source.readableBytes + target.utf8.count + 256)
        bytes.writeImmutableBuffer(source.getSlice(at: source.readerIndex, length: head.target.lowerBound)!)
        bytes.writeString(target)
        bytes.writeImmutableBuffer(
            source.getSlice(
                at: source.readerIndex + head.target.upperBound,
                length: head.fieldsStart - head.target.upperBound)!)
        return parse(bytes, headers: headers, kind: .request)
    }

    /// The response `head` with `headers` as its header lines (the status line as received).
    static func response(
        _ head: MessageHead, headers: [HookHeader], allocator: ByteBufferAllocator
    ) -> MessageHead? {
        guard headers.allSatisfy(\.isSendable) else { return nil }
        let source = head.bytes
        var bytes = allocator.buffer(capacity: source.readableBytes + 256)
        bytes.writeImmutableBuffer(source.getSlice(at: source.readerIndex, length: head.fieldsStart)!)
        return parse(bytes, headers: headers, kind: .response)
    }

    /// The header list of a parsed head, for hooks.
    static func headers(of head: MessageHead) -> [HookHeader] {
        head.fields.map { HookHeader(name: head.string($0.name), value: head.string($0.value)) }
    }

    private static func parse(_ start: ByteBuffer, headers: [HookHeader], kind: HeadParser.Kind)
        -> MessageHead?
    {
        var bytes = start
        for header in headers {
            bytes.writeString(header.name)
            bytes.writeStaticString(": ")
            bytes.writeString(header.value)
            bytes.writeStaticString("\r\n")
        }
        bytes.writeStaticString("\r\n")
        var scanned = 0
        guard
            case .complete(let parsed) = HeadParser.next(
                from: &bytes, kind: kind, limits: limits, scanned: &scanned)
        else { return nil }
        return parsed
    }

    /// No line breaks, NUL or spaces that would end the target early.
    private static func isSafe(_ target: String) -> Bool {
        !target.utf8.isEmpty && target.utf8.allSatisfy { $0 > 0x20 && $0 != 0x7F }
    }

}
