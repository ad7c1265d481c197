// What Sources/Relay/Bays needs from the rest of the Relay module, for the websocket fuzz target.

/// A copy of Relay's `Substring.trimmingWhitespace()` (Sources/Relay/Core/ClientConnection+Bays.swift,
/// whose other contents need the whole connection core); PerMessageDeflate trims offers with it.
extension Substring {
    func trimmingWhitespace() -> Substring {
        var text = self
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return text
    }
}
