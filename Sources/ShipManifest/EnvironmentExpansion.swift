/// Expands `$VAR`, `${VAR}` and `${VAR:-default}` (ours) in the fields the spec names: uplink `url`,
/// flagship `election_url` and `static_flagship`.
public struct EnvironmentExpansion: Sendable, Equatable {
    /// The text with every defined variable substituted (undefined ones become empty).
    public var value: String
    /// Variables that were referenced, had no default and are not defined, in order of appearance.
    public var undefined: [String]
    /// Whether the text referenced any variable at all.
    public var hadVariables: Bool

    public init(expanding text: String, environment: [String: String]) {
        var output = ""
        var undefined: [String] = []
        var hadVariables = false
        var index = text.startIndex
        func isNameCharacter(_ character: Character, first: Bool) -> Bool {
            character == "_" || (character.isASCII && character.isLetter)
                || (!first && character.isASCII && character.isNumber)
        }
        while index < text.endIndex {
            let character = text[index]
            guard character == "$" else {
                output.append(character)
                index = text.index(after: index)
                continue
            }
            let next = text.index(after: index)
            if next < text.endIndex, text[next] == "{",
                let close = text[next...].firstIndex(of: "}")
            {
                let body = text[text.index(after: next)..<close]
                let name: Substring
                var fallback: Substring?
                if let marker = body.firstRange(of: ":-") {
                    name = body[..<marker.lowerBound]
                    fallback = body[marker.upperBound...]
                } else {
                    name = body
                }
                if !name.isEmpty, name.enumerated().allSatisfy({ isNameCharacter($1, first: $0 == 0) }) {
                    hadVariables = true
                    if let defined = environment[String(name)], !(fallback != nil && defined.isEmpty) {
                        output += defined
                    } else if let fallback {
                        output += fallback
                    } else {
                        undefined.append(String(name))
                    }
                    index = text.index(after: close)
                    continue
                }
            } else if next < text.endIndex, isNameCharacter(text[next], first: true) {
                var end = next
                while end < text.endIndex, isNameCharacter(text[end], first: false) {
                    end = text.index(after: end)
                }
                let name = String(text[next..<end])
                hadVariables = true
                if let defined = environment[name] {
                    output += defined
                } else {
                    undefined.append(name)
                }
                index = end
                continue
            }
            output.append("$")
            index = next
        }
        self.value = output
        self.undefined = undefined
        self.hadVariables = hadVariables
    }
}
