import CMothershipSystem
import Foundation
import Testing

/// `ms_release_startup_code` (called by `run` once the fleet is up): the executable's code mappings
/// leave the resident set, and code still in use comes straight back.
@Suite("Startup code release")
struct StartupCodeTests {
    static func residentFileKilobytes() throws -> Int {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("RssFile:") })
        return try #require(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
    }

    @Test func dropsTheExecutablesCodePagesAndKeepsRunning() throws {
        let before = try Self.residentFileKilobytes()
        let advised = ms_release_startup_code()
        #expect(advised > 0, "the test binary's own code mapping was not found")
        let after = try Self.residentFileKilobytes()
        #expect(after < before, "resident file pages: \(before) kB before, \(after) kB after")
        // Code runs on (it faults back in): the same work as before gives the same answer.
        #expect((1...1000).reduce(0, +) == 500_500)
        #expect(try Self.residentFileKilobytes() > 0)
    }
}
