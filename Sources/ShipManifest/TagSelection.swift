/// `--only` / `--except`: which vessels are started. A vessel is selected by `--only` when it has any
/// listed tag, and left out by `--except` when it has any listed tag.
public enum TagSelection: Sendable, Hashable, CustomStringConvertible {
    case all
    case only(Set<String>)
    case except(Set<String>)

    /// Parses the comma-separated flag values; at most one of them may be given.
    public init(only: String?, except: String?) {
        func tags(_ text: String) -> Set<String> {
            Set(text.split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty })
        }
        if let only {
            self = .only(tags(only))
        } else if let except {
            self = .except(tags(except))
        } else {
            self = .all
        }
    }

    public func selects(tags: [String]) -> Bool {
        switch self {
        case .all: true
        case .only(let wanted): tags.contains(where: wanted.contains)
        case .except(let unwanted): !tags.contains(where: unwanted.contains)
        }
    }

    /// `--only web,api` / `--except workers`, for messages.
    public var description: String {
        switch self {
        case .all: "(all)"
        case .only(let tags): "--only \(tags.sorted().joined(separator: ","))"
        case .except(let tags): "--except \(tags.sorted().joined(separator: ","))"
        }
    }
}
