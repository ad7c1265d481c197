/// A key the dashboard understands.
public enum DashboardKey: Sendable, Hashable {
    case tab
    case backTab
    case up
    case down
    case left
    case right
    case pageUp
    case pageDown
    case home
    case end
    case enter
    case escape
    /// Ctrl-C arriving as a byte (only when the terminal does not turn it into SIGINT).
    case interrupt
    case character(Character)
}

/// Turns the bytes read from a raw-mode terminal into keys. Pure and incremental: an escape sequence
/// or a UTF-8 character split across reads is kept until the rest arrives. A lone ESC stays pending
/// until `flush()` (the caller flushes when no byte followed it for a moment).
public struct KeyDecoder: Sendable {
    private var pending: [UInt8] = []

    public init() {}

    /// Whether an incomplete sequence is waiting for more bytes.
    public var hasPending: Bool { !pending.isEmpty }

    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [DashboardKey] {
        pending.append(contentsOf: bytes)
        var keys: [DashboardKey] = []
        var index = 0
        while index < pending.count {
            guard let (key, length) = Self.decode(pending[index...]) else { break }
            if let key { keys.append(key) }
            index += length
        }
        pending.removeFirst(index)
        return keys
    }

    /// Gives up waiting: a pending ESC is the Escape key; other partial bytes are dropped.
    public mutating func flush() -> [DashboardKey] {
        defer { pending = [] }
        return pending.first == 0x1B ? [.escape] : []
    }

    /// The key at the start of `bytes` and how many bytes it took (key nil: bytes ignored), or nil
    /// when more bytes are needed.
    static func decode(_ bytes: ArraySlice<UInt8>) -> (DashboardKey?, Int)? {
        let first = bytes[bytes.startIndex]
        switch first {
        case 0x1B: return escape(bytes)
        case 0x09: return (.tab, 1)
        case 0x0D, 0x0A: return (.enter, 1)
        case 0x03: return (.interrupt, 1)
        case 0x00..<0x20, 0x7F: return (nil, 1)
        case 0x80..<0xC0: return (nil, 1)  // a stray continuation byte
        default: return utf8(bytes)
        }
    }

    /// The final byte of a cursor-key sequence, the same after SS3 (`ESC O`) and CSI (`ESC [`).
    static func cursorKey(_ final: UInt8) -> DashboardKey? {
        switch final {
        case UInt8(ascii: "A"): .up
        case UInt8(ascii: "B"): .down
        case UInt8(ascii: "C"): .right
        case UInt8(ascii: "D"): .left
        case UInt8(ascii: "H"): .home
        case UInt8(ascii: "F"): .end
        default: nil
        }
    }

    static func escape(_ bytes: ArraySlice<UInt8>) -> (DashboardKey?, Int)? {
        let start = bytes.startIndex
        guard bytes.count >= 2 else { return nil }
        let introducer = bytes[start + 1]
        if introducer == UInt8(ascii: "O") {
            // SS3: application-mode cursor keys.
            guard bytes.count >= 3 else { return nil }
            return (cursorKey(bytes[start + 2]), 3)
        }
        guard introducer == UInt8(ascii: "[") else {
            // ESC then something else: Escape, and the next byte decodes on its own.
            return (.escape, 1)
        }
        // CSI: parameters 0x30-0x3F, intermediates 0x20-0x2F, one final byte 0x40-0x7E.
        var index = start + 2
        while index < bytes.endIndex, (0x20...0x3F).contains(bytes[index]) { index += 1 }
        guard index < bytes.endIndex else { return nil }
        let final = bytes[index]
        let length = index - start + 1
        guard (0x40...0x7E).contains(final) else { return (nil, length) }
        let parameters = String(decoding: bytes[(start + 2)..<index], as: UTF8.self)
        let first = parameters.split(separator: ";").first.map(String.init) ?? ""
        let key: DashboardKey? =
            switch final {
            case UInt8(ascii: "A"), UInt8(ascii: "B"), UInt8(ascii: "C"), UInt8(ascii: "D"),
                UInt8(ascii: "H"), UInt8(ascii: "F"):
                cursorKey(final)
            case UInt8(ascii: "Z"): .backTab
            case UInt8(ascii: "~"):
                switch first {
                case "1", "7": .home
                case "4", "8": .end
                case "5": .pageUp
                case "6": .pageDown
                default: nil
                }
            default: nil
            }
        return (key, length)
    }

    static func utf8(_ bytes: ArraySlice<UInt8>) -> (DashboardKey?, Int)? {
        let first = bytes[bytes.startIndex]
        let length =
            switch first {
            case 0..<0x80: 1
            case 0xC0..<0xE0: 2
            case 0xE0..<0xF0: 3
            default: 4
            }
        guard bytes.count >= length else { return nil }
        let text = String(decoding: bytes.prefix(length), as: UTF8.self)
        return (text.first.map { .character($0) }, length)
    }
}
