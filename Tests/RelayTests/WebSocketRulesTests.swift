import NIOCore
import NIOWebSocket
import Testing

@testable import Relay

/// RFC 6455's rules for client frames, without sockets (the end-to-end conformance tests send the
/// same cases through the binary).
@Suite("WebSocket rules")
struct WebSocketRulesTests {
    typealias Verdict = WebSocketRules.Verdict

    static func check(
        _ rules: inout WebSocketRules, _ opcode: WebSocketOpcode, fin: Bool = true, rsv1: Bool = false,
        rsv2: Bool = false, rsv3: Bool = false, masked: Bool = true, length: Int = 3
    ) -> Verdict {
        rules.frame(
            fin: fin, rsv1: rsv1, rsv2: rsv2, rsv3: rsv3, opcode: opcode, masked: masked, length: length)
    }

    static func code(_ verdict: Verdict) -> UInt16? {
        if case .violation(let violation) = verdict { return violation.code }
        return nil
    }

    @Test func framesOfEveryKindPassAndFragmentsFormOneMessage() {
        var rules = WebSocketRules(maxMessageBytes: 100)
        #expect(Self.check(&rules, .text) == .data(opcode: .text, first: true, last: true))
        #expect(Self.check(&rules, .binary) == .data(opcode: .binary, first: true, last: true))
        #expect(Self.check(&rules, .ping) == .ping)
        #expect(Self.check(&rules, .pong) == .pong)
        #expect(Self.check(&rules, .binary, fin: false) == .data(opcode: .binary, first: true, last: false))
        // Control frames may come between fragments.
        #expect(Self.check(&rules, .ping) == .ping)
        #expect(
            Self.check(&rules, .continuation, fin: false) == .data(opcode: .binary, first: false, last: false)
        )
        #expect(Self.check(&rules, .continuation) == .data(opcode: .binary, first: false, last: true))
        #expect(rules.continuing == nil)
        #expect(Self.check(&rules, .connectionClose, length: 0) == .close)
    }

    @Test func unmaskedFramesReservedBitsAndReservedOpcodesAreProtocolErrors() {
        var rules = WebSocketRules(maxMessageBytes: 100)
        #expect(Self.code(Self.check(&rules, .text, masked: false)) == 1002)
        #expect(Self.code(Self.check(&rules, .ping, masked: false)) == 1002)
        for (rsv1, rsv2, rsv3) in [(true, false, false), (false, true, false), (false, false, true)] {
            #expect(Self.code(Self.check(&rules, .text, rsv1: rsv1, rsv2: rsv2, rsv3: rsv3)) == 1002)
            #expect(Self.code(Self.check(&rules, .ping, rsv1: rsv1, rsv2: rsv2, rsv3: rsv3)) == 1002)
        }
        for raw: UInt8 in [3, 4, 5, 6, 7, 11, 12, 13, 14, 15] {
            let opcode = WebSocketOpcode(encodedWebSocketOpcode: raw)!
            let verdict = Self.check(&rules, opcode)
            #expect(verdict == .violation(.protocolError("reserved opcode \(raw)")))
        }
        // With permessage-deflate, RSV1 marks the first frame of a data message, nothing else.
        var deflating = WebSocketRules(maxMessageBytes: 100, compressionNegotiated: true)
        #expect(
            Self.check(&deflating, .text, fin: false, rsv1: true)
                == .data(opcode: .text, first: true, last: false))
        #expect(Self.code(Self.check(&deflating, .continuation, rsv1: true)) == 1002)
        #expect(Self.code(Self.check(&deflating, .ping, rsv1: true)) == 1002)
        #expect(Self.code(Self.check(&deflating, .text, rsv2: true)) == 1002)
    }

    @Test func fragmentationOutOfOrderAndFragmentedOrLongControlFramesAreProtocolErrors() {
        var rules = WebSocketRules(maxMessageBytes: 100)
        #expect(Self.code(Self.check(&rules, .continuation)) == 1002)
        #expect(Self.code(Self.check(&rules, .continuation, fin: false)) == 1002)
        _ = Self.check(&rules, .text, fin: false)
        #expect(Self.code(Self.check(&rules, .text)) == 1002)
        var fresh = WebSocketRules(maxMessageBytes: 100)
        _ = Self.check(&fresh, .binary, fin: false)
        #expect(Self.code(Self.check(&fresh, .binary, fin: false)) == 1002)
        var control = WebSocketRules(maxMessageBytes: 100)
        #expect(Self.code(Self.check(&control, .ping, fin: false)) == 1002)
        #expect(Self.code(Self.check(&control, .connectionClose, fin: false)) == 1002)
        #expect(Self.code(Self.check(&control, .ping, length: 126)) == 1002)
        #expect(Self.check(&control, .ping, length: 125) == .ping)
    }

    @Test func aMessageOverTheLimitIsTooBigWholeOrInFragments() {
        var rules = WebSocketRules(maxMessageBytes: 10)
        #expect(Self.check(&rules, .text, length: 10) == .data(opcode: .text, first: true, last: true))
        #expect(Self.code(Self.check(&rules, .binary, length: 11)) == 1009)
        var fragmented = WebSocketRules(maxMessageBytes: 10)
        _ = Self.check(&fragmented, .text, fin: false, length: 6)
        #expect(Self.code(Self.check(&fragmented, .continuation, length: 5)) == 1009)
    }

    @Test func textIsCheckedAsItComesAndFailsAtTheFirstImpossibleByte() {
        var rules = WebSocketRules(maxMessageBytes: 100)
        _ = Self.check(&rules, .text, fin: false)
        let euro: [UInt8] = [0xE2, 0x82, 0xAC]
        // A character cut between fragments is fine until the message ends.
        #expect(Self.feed(&rules, Array("price: ".utf8) + euro.prefix(1), last: false) == nil)
        #expect(Self.feed(&rules, Array(euro.dropFirst()), last: false) == nil)
        // The first fragment that cannot be UTF-8 fails the connection, before the message ends.
        #expect(Self.feed(&rules, [0x61, 0xC0, 0x80], last: false)?.code == 1007)

        var cut = WebSocketRules(maxMessageBytes: 100)
        _ = Self.check(&cut, .text)
        #expect(Self.feed(&cut, Array("ends mid-character ".utf8) + euro.prefix(2), last: true)?.code == 1007)
    }

    static func feed(_ rules: inout WebSocketRules, _ bytes: [UInt8], last: Bool) -> WebSocketRules.Violation?
    {
        bytes.withUnsafeBytes { rules.checkText($0, last: last) }
    }

    /// The streaming validator agrees with the standard library on every split of many inputs:
    /// RFC 3629's edge cases (overlong forms, surrogates, the end of Unicode) and random bytes.
    @Test func utf8StreamAgreesWithTheStandardLibraryOnEverySplit() {
        var inputs: [[UInt8]] = [
            [], Array("plain ascii, more than eight bytes long".utf8), Array("κόσμε ✓ 𝄞".utf8),
            [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xE0, 0x9F, 0xBF], [0xE0, 0xA0, 0x80],
            [0xED, 0x9F, 0xBF], [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF], [0xEE, 0x80, 0x80],
            [0xF0, 0x8F, 0xBF, 0xBF], [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF],
            [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xFE], [0xFF], [0x80], [0xBF],
            [0xC2], [0xE2, 0x82], [0xF0, 0x9D, 0x84], Array("12345678".utf8) + [0xCE, 0xBA, 0xE1],
        ]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<400 {
            let count = Int.random(in: 1...24, using: &generator)
            inputs.append(
                (0..<count).map { _ in
                    // Mostly bytes that make multi-byte sequences, so that some random inputs are valid.
                    [0x41, 0x80, 0x9F, 0xA0, 0xBF, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xC0]
                        .randomElement(using: &generator)!
                })
        }
        for input in inputs {
            let expected = String(validating: input, as: UTF8.self) != nil
            for split in 0...input.count {
                var stream = UTF8Stream()
                let first = input[..<split].withUnsafeBytes { stream.feed($0) }
                let second = first && input[split...].withUnsafeBytes { stream.feed($0) }
                #expect((second && stream.isComplete) == expected, "\(input) split at \(split)")
            }
        }
    }

    @Test func closeFramesCarryNothingOrASendableCodeAndAUTF8Reason() {
        func close(_ bytes: [UInt8]) -> WebSocketRules.Close {
            WebSocketRules.close(payload: ByteBuffer(bytes: bytes))
        }
        #expect(close([]) == .valid(code: nil, reason: ""))
        #expect(close([0x03, 0xE8]) == .valid(code: 1000, reason: ""))
        #expect(close([0x0F, 0xA0] + Array("done ✓".utf8)) == .valid(code: 4000, reason: "done ✓"))
        #expect(close([0x03]) == .violation(.protocolError("a close frame with a 1-byte payload")))
        for code: UInt16 in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999,
        ] {
            #expect(
                close([UInt8(code >> 8), UInt8(code & 0xFF)]) == .valid(code: code, reason: ""), "\(code)")
        }
        // Autobahn 7.9.x's invalid codes, and the other reserved ones.
        for code: UInt16 in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            #expect(
                close([UInt8(code >> 8), UInt8(code & 0xFF)])
                    == .violation(.protocolError("close code \(code) is not valid")), "\(code)")
        }
        #expect(close([0x03, 0xE8, 0xCE, 0xBA, 0xE1, 0xBD]) == .violation(.invalidUTF8InCloseReason))
    }
}
