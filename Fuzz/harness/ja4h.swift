// Fuzz target ja4h: the JA4H fingerprint (Sources/Relay/Edge/JA4H.swift) of what a client sends.
// The input is a request head: fingerprinted as the relay does (HeadParser, then JA4H(head)) when it
// parses, and always also line by line (`name: value`, any bytes) through JA4H's public initialiser.
//
// Properties, beyond "no crash, no memory error":
// 1. Shape: the prefix is 12 characters (method 2, version 2, cookie and referer flags, a two-digit
//    count, language 4) and each of the three hashes 12 lower-case hex digits, joined by `_`.
// 2. The count is the number of headers other than Cookie and Referer, at most 99.
// 3. Cookies: the order of the cookies, and whether they come in one Cookie header or several, do not
//    change the fingerprint.

import NIOCore

func fuzz(_ input: [UInt8]) {
    var buffer = ByteBuffer(bytes: input)
    var scanned = 0
    if case .complete(let head) = HeadParser.next(
        from: &buffer, kind: .request, limits: HeadParser.Limits(RelayLimits()), scanned: &scanned)
    {
        let fingerprint = JA4H(head)
        check(fingerprint, headers: head.fields.map { (head.string($0.name), head.string($0.value)) })
    }

    let lines = input.split(separator: 10).map { line in
        String(decoding: line.last == 13 ? line.dropLast() : line, as: UTF8.self)
    }
    guard let first = lines.first else { return }
    let method = String(first.prefix { $0 != " " })
    var headers: [(name: String, value: String)] = []
    for line in lines.dropFirst() {
        guard let colon = line.firstIndex(of: ":") else { continue }
        headers.append((String(line[..<colon]), String(line[line.index(after: colon)...])))
    }
    let fingerprint = JA4H(method: method, version: input.count & 1 == 0 ? "11" : "10", headers: headers)
    check(fingerprint, headers: headers)

    // 3. The cookies reversed, and each in a Cookie header of its own.
    var cookies: [String] = []
    var others: [(name: String, value: String)] = []
    for (name, value) in headers {
        if name.lowercased() == "cookie" {
            cookies += JA4H.cookieSegments(value).map(String.init)
        } else {
            others.append((name, value))
        }
    }
    guard !cookies.isEmpty else { return }
    let reversed = others + [("Cookie", cookies.reversed().joined(separator: "; "))]
    let separate = others + cookies.map { ("cookie", $0) }
    for variant in [reversed, separate] {
        let again = JA4H(method: method, version: input.count & 1 == 0 ? "11" : "10", headers: variant)
        require(
            again.description == fingerprint.description,
            "cookies rearranged change the fingerprint: \(again.raw) vs \(fingerprint.raw)")
    }
}

func check(_ fingerprint: JA4H, headers: [(String, String)]) {
    let prefix = Array(fingerprint.prefix)
    require(prefix.count == 12, "prefix \(fingerprint.prefix) is not 12 characters")
    let counted = headers.filter { !["cookie", "referer"].contains($0.0.lowercased()) }.count
    let count = String(prefix[6...7])
    require(
        count == (counted < 10 ? "0\(counted)" : "\(min(counted, 99))"),
        "count \(count) for \(counted) headers")
    let description = fingerprint.description
    require(description.hasPrefix(fingerprint.prefix + "_"), "description \(description)")
    let hashes = description.dropFirst(fingerprint.prefix.count + 1).split(
        separator: "_", omittingEmptySubsequences: false)
    require(
        hashes.count == 3
            && hashes.allSatisfy {
                $0.utf8.count == 12
                    && $0.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
            },
        "hashes of \(description)")
}
