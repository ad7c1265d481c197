// Fuzz target payload-json: the hand-written JSON of the payload ABI (Sources/Payloads/PayloadJSON.swift):
// `flatObject`, which reads what a payload module returns (`set_block_with_headers`), and `string`,
// which writes the documents a module reads. The first input byte picks the part (even: parse the
// rest as a module's JSON; odd: write the rest, split at NUL bytes into keys and values, and read it
// back).
//
// Properties, beyond "no crash, no memory error":
// 1. Against Foundation's JSONSerialization: a flat object (unique keys, scalar values) both read has
//    the same members and values; one JSONSerialization writes, flatObject reads the same; an object
//    flatObject reads, JSONSerialization
//    reads too, but for two leniencies: a number token outside JSON's number grammar (flatObject takes
//    any spelling Swift's Double(_:) takes: `nan`, `+1`, `01`; and JSONSerialization refuses numbers
//    past Double's range, which flatObject passes on as spelled), and bytes that are not UTF-8 (read
//    as U+FFFD, as String(decoding:) does).
// 2. Round trip: any strings written by PayloadJSON (as a module's `config`) read back the same.

import Foundation

func fuzz(_ input: [UInt8]) {
    guard let control = input.first else { return }
    let rest = Array(input.dropFirst())
    if control & 1 == 0 {
        differential(rest)
    } else {
        roundTrip(rest)
    }
}

func differential(_ bytes: [UInt8]) {
    let ours = try? PayloadJSON.flatObject(bytes)
    let theirs = (try? JSONSerialization.jsonObject(with: Data(bytes), options: [])) as? [String: Any]
    // Compared when nothing can hide a repeated key: JSONSerialization keeps one of them, flatObject
    // all (and leaves out null members).
    let repeats = ours.map { Set($0.map(\.0)).count != $0.count } ?? false
    if let ours, let theirs, theirs.values.allSatisfy(isScalar),
        !theirs.values.contains(where: { $0 is NSNull }),
        !repeats
    {
        same(ours, theirs, bytes)
    }
    if let ours, theirs == nil {
        // Only the leniencies: a number token JSON would not take (or out of range), or bytes not UTF-8.
        let numbers = ours.map(\.1).filter { token in
            token != "true" && token != "false" && Double(token) != nil
        }
        require(
            numbers.contains { !isJSONNumber($0) || Double($0)!.isInfinite }
                || String(validating: bytes, as: UTF8.self) == nil,
            "flatObject reads what JSONSerialization refuses: \(ours) from \(show(bytes))")
    }
    // JSONSerialization reads more than JSON (a trailing comma, for one); what it writes is JSON.
    if let theirs, theirs.values.allSatisfy(isScalar), !theirs.values.contains(where: { $0 is NSNull }),
        let data = try? JSONSerialization.data(withJSONObject: theirs, options: [])
    {
        let written = [UInt8](data)
        guard let read = try? PayloadJSON.flatObject(written) else {
            require(false, "flatObject refuses JSONSerialization's \(show(written))")
            return
        }
        same(read, theirs, written)
    }
}

func same(_ ours: [(String, String)], _ theirs: [String: Any], _ bytes: [UInt8]) {
    require(ours.count == theirs.count, "members \(ours.map(\.0)) vs \(theirs.keys.sorted()): \(show(bytes))")
    for (key, value) in ours {
        guard let other = theirs[key] else {
            require(false, "member \(key) only in flatObject's reading: \(show(bytes))")
            return
        }
        if let string = other as? String, !(other is NSNumber) {
            require(value == string, "member \(key): \(value) vs \(string): \(show(bytes))")
        } else if let number = other as? NSNumber {
            if value == "true" || value == "false" {
                require(number.boolValue == (value == "true"), "member \(key): \(value) vs \(number)")
            } else {
                // Foundation keeps big numbers as Decimal, whose doubleValue may differ in the last bits.
                let mine = Double(value) ?? .nan
                let other = number.doubleValue
                require(
                    mine == other || mine.isNaN || abs(mine - other) <= 1e-9 * max(abs(mine), abs(other)),
                    "member \(key): \(value) vs \(number): \(show(bytes))")
            }
        }
    }
}

func isScalar(_ value: Any) -> Bool {
    value is String || value is NSNumber || value is NSNull
}

/// RFC 8259 §6: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
func isJSONNumber(_ token: String) -> Bool {
    var bytes = Array(token.utf8)[...]
    if bytes.first == UInt8(ascii: "-") { bytes = bytes.dropFirst() }
    func digits() -> Int {
        let count = bytes.prefix { $0 >= 48 && $0 <= 57 }.count
        bytes = bytes.dropFirst(count)
        return count
    }
    if bytes.first == UInt8(ascii: "0") {
        bytes = bytes.dropFirst()
    } else if digits() == 0 {
        return false
    }
    if bytes.first == UInt8(ascii: ".") {
        bytes = bytes.dropFirst()
        if digits() == 0 { return false }
    }
    if bytes.first == UInt8(ascii: "e") || bytes.first == UInt8(ascii: "E") {
        bytes = bytes.dropFirst()
        if bytes.first == UInt8(ascii: "+") || bytes.first == UInt8(ascii: "-") { bytes = bytes.dropFirst() }
        if digits() == 0 { return false }
    }
    return bytes.isEmpty
}

func roundTrip(_ bytes: [UInt8]) {
    let parts = bytes.split(separator: 0, omittingEmptySubsequences: false).map {
        String(decoding: $0, as: UTF8.self)
    }
    var config: [String: String] = [:]
    // (Not `parts[index]`: with Relay imported, TOMLKit's subscript on arrays wins that overload.)
    var pairs = parts.makeIterator()
    while let key = pairs.next(), let value = pairs.next() { config[key] = value }
    let written = PayloadJSON.config(config)
    guard let read = try? PayloadJSON.flatObject(written) else {
        require(false, "PayloadJSON.config writes what flatObject refuses: \(show(written))")
        return
    }
    let expected = config.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
    require(
        read.map(\.0) == config.keys.sorted() && read.allSatisfy { config[$0.0] == $0.1 },
        "config \(expected) reads back as \(read)")
}
