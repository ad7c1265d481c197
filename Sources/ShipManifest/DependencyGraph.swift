/// `depends_on` edges between named nodes (vessels, or prelaunch jobs): cycles and start order.
public struct DependencyGraph: Sendable {
    /// Node names in declaration order.
    public let nodes: [String]
    /// For each node, the nodes it depends on (only known names).
    public let dependencies: [String: [String]]

    /// Duplicate names (reported elsewhere as errors) count once, at their first place.
    public init(nodes: [String], dependencies: [String: [String]]) {
        var seen = Set<String>()
        self.nodes = nodes.filter { seen.insert($0).inserted }
        let known = seen
        self.dependencies = dependencies.mapValues { $0.filter(known.contains) }
    }

    /// Every elementary cycle found by depth-first search, each as a closed path
    /// (`["app", "cache", "app"]`), starting at its earliest declared node; each cycle reported once.
    public func cycles() -> [[String]] {
        enum Mark { case visiting, done }
        var marks: [String: Mark] = [:]
        var stack: [String] = []
        var found: [[String]] = []
        var seen = Set<[String]>()
        let rank = Dictionary(uniqueKeysWithValues: nodes.enumerated().map { ($1, $0) })

        func visit(_ node: String) {
            marks[node] = .visiting
            stack.append(node)
            for next in dependencies[node] ?? [] {
                switch marks[next] {
                case .visiting:
                    var cycle = Array(stack[stack.lastIndex(of: next)!...])
                    // Rotate to start at the earliest declared node, so the report is stable.
                    let start = cycle.indices.min { rank[cycle[$0]]! < rank[cycle[$1]]! }!
                    cycle = Array(cycle[start...] + cycle[..<start])
                    if seen.insert(cycle).inserted { found.append(cycle + [cycle[0]]) }
                case .done:
                    continue
                case nil:
                    visit(next)
                }
            }
            stack.removeLast()
            marks[node] = .done
        }
        for node in nodes where marks[node] == nil { visit(node) }
        return found
    }

    /// Start order in layers: every node's dependencies stand in an earlier layer; nodes of one layer
    /// may start together. Nodes on a cycle are left out (the manifest is refused before this matters).
    public func layers() -> [[String]] {
        var remaining = nodes
        var placed = Set<String>()
        var result: [[String]] = []
        while !remaining.isEmpty {
            let ready = remaining.filter { (dependencies[$0] ?? []).allSatisfy(placed.contains) }
            if ready.isEmpty { break }
            result.append(ready)
            placed.formUnion(ready)
            remaining.removeAll { placed.contains($0) }
        }
        return result
    }

    /// The nodes that depend on `node`, directly.
    public func dependents(of node: String) -> [String] {
        nodes.filter { dependencies[$0]?.contains(node) == true }
    }
}
