import Crypto
import Relay

/// The JA4H fingerprint of a request (SPEC §5.5), handed to modules as `ja4h`: computed only when a
/// module reads the request.
enum RequestFingerprint {
    static func ja4h(_ request: HookRequest) -> String {
        var cookies: [Substring] = []
        var hasCookie = false
        var hasReferer = false
        var otherNames: [String] = []
        var language: String?
        for header in request.headers {
            switch header.name.lowercased() {
            case "cookie":
                hasCookie = true
                for item in header.value.split(separator: ";") {
                    let trimmed = item.drop { $0 == " " || $0 == "\t" }
                    if !trimmed.isEmpty { cookies.append(trimmed) }
                }
            case "referer":
                hasReferer = true
            default:
                if header.name.lowercased() == "accept-language" && language == nil {
                    language = header.value
                }
                otherNames.append(header.name)
            }
        }
        var a = String(request.method.lowercased().prefix(2))
        a +=
            request.version == "1.0" ? "10" : request.version == "2" || request.version == "2.0" ? "20" : "11"
        a += hasCookie ? "c" : "n"
        a += hasReferer ? "r" : "n"
        let count = min(otherNames.count, 99)
        a += count < 10 ? "0\(count)" : "\(count)"
        a += languageCode(language)
        let names = otherNames.joined(separator: ",")
        let cookieNames = cookies.map { $0.split(separator: "=", maxSplits: 1).first.map(String.init) ?? "" }
            .sorted()
        let cookiePairs = cookies.map(String.init).sorted()
        return [
            a, hash(names), hash(cookieNames.joined(separator: ",")),
            hash(cookiePairs.joined(separator: ",")),
        ]
        .joined(separator: "_")
    }

    /// The first Accept-Language tag: letters only, lower-case, four of them padded with `0`.
    static func languageCode(_ value: String?) -> String {
        guard let value else { return "0000" }
        let tag = value.split(separator: ",").first.map { $0.split(separator: ";").first ?? "" } ?? ""
        let letters = tag.lowercased().filter { $0.isASCII && $0.isLetter }.prefix(4)
        return letters + String(repeating: "0", count: 4 - letters.count)
    }

    /// The first 12 hex digits of SHA-256; `000000000000` for nothing.
    static func hash(_ text: String) -> String {
        guard !text.isEmpty else { return "000000000000" }
        let digest = SHA256.hash(data: Array(text.utf8))
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in digest.prefix(6) {
            out.append(hex[Int(byte >> 4)])
            out.append(hex[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
