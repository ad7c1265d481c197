import ShipManifest
import Supervision
import Testing

@Suite("Restart backoff")
struct RestartBackoffTests {
    @Test func restartsAtOnceThenGrowsFromHalfASecondAndCapsAtThirtySeconds() {
        var backoff = RestartBackoff()
        let delays = (0..<10).map { _ in backoff.nextDelay(afterRunningFor: .seconds(1)) }
        #expect(
            delays == [
                .zero, .milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16),
                .seconds(30), .seconds(30),
                .seconds(30),
            ])
    }

    @Test func startsOverAfterAMinuteOfUptime() {
        var backoff = RestartBackoff()
        _ = backoff.nextDelay(afterRunningFor: .seconds(1))
        _ = backoff.nextDelay(afterRunningFor: .seconds(1))
        _ = backoff.nextDelay(afterRunningFor: .seconds(1))
        #expect(backoff.nextDelay(afterRunningFor: .seconds(59)) == .seconds(2))
        #expect(backoff.nextDelay(afterRunningFor: .seconds(60)) == .zero)
        #expect(backoff.nextDelay(afterRunningFor: .zero) == .milliseconds(500))
    }
}

@Suite("Health circuit breaker")
struct HealthBreakerTests {
    @Test func opensAfterFiveFailuresWithinAMinute() {
        var breaker = HealthBreaker()
        let verdicts = (0..<5).map { breaker.record(success: false, at: .seconds($0 * 5)) }
        #expect(
            verdicts == [
                .degraded(failures: 1), .degraded(failures: 2), .degraded(failures: 3),
                .degraded(failures: 4), .open,
            ])
        #expect(breaker.record(success: true, at: .seconds(30)) == .healthy, "a new process starts closed")
    }

    @Test func failuresOlderThanTheWindowDoNotCount() {
        var breaker = HealthBreaker()
        for second in [0, 15, 30, 45] { _ = breaker.record(success: false, at: .seconds(second)) }
        #expect(breaker.record(success: false, at: .seconds(61)) == .degraded(failures: 4))
        #expect(breaker.record(success: true, at: .seconds(62)) == .degraded(failures: 4))
        #expect(breaker.record(success: true, at: .seconds(200)) == .healthy)
    }

    @Test func successesAloneAreHealthy() {
        var breaker = HealthBreaker()
        for second in 0..<10 { #expect(breaker.record(success: true, at: .seconds(second)) == .healthy) }
    }
}

@Suite("Small values")
struct SmallValueTests {
    @Test func outputRingKeepsTheLastLines() {
        var ring = OutputRing(capacity: 3)
        for number in 1...5 { ring.append(OutputLine(source: "a", stream: .stdout, text: "\(number)")) }
        #expect(ring.lines.map(\.text) == ["3", "4", "5"])
        #expect(ring.totalAppended == 5)
        let log = OutputLog(capacity: 1000)
        for number in 1...1500 { log.append(OutputLine(source: "web", stream: .stderr, text: "\(number)")) }
        #expect(log.lines(of: "web").count == 1000)
        #expect(log.lines(of: "web").first?.text == "501")
    }

    @Test func statusLinesAreJSON() {
        #expect(FleetOutcome.landed.statusLine == #"{"message":"Mothership landed","status":"landed"}"#)
        #expect(
            FleetOutcome.crashed(vessel: "web", reason: "exited with status 1").statusLine
                == #"{"message":"Mothership crashed","status":"crashed","vessel":"web"}"#)
        #expect(
            FleetOutcome.failed("uplink 'db' said \"no\"\n").statusLine
                == #"{"message":"Mothership failed","status":"failed","error":"uplink 'db' said \"no\"\n"}"#)
        #expect(FleetOutcome.landed.exitCode == 0)
        #expect(FleetOutcome.failed("x").exitCode == 1)
    }

    @Test func environmentPrecedence() throws {
        let settings = MothershipSettings(name: "t", environment: ["A": "settings", "B": "settings"])
        let ship = Vessel(
            name: "web", command: "x", environment: ["B": "vessel", "C": "vessel"],
            bind: .tcp(host: "127.0.0.1", port: 3000))
        let environment = VesselEnvironment.build(
            inherited: ["A": "inherited", "Z": "inherited", "MS_SHIP": "spoofed", "PORT": "1"],
            settings: settings, vessel: ship,
            mothershipPID: 42, socketDirectory: nil)
        #expect(environment["A"] == "settings")
        #expect(environment["B"] == "vessel")
        #expect(environment["C"] == "vessel")
        #expect(environment["Z"] == "inherited")
        #expect(environment["MS_PID"] == "42")
        #expect(environment["MS_SHIP"] == "web")
        #expect(environment["PORT"] == "3000")
        #expect(environment["MS_SOCKET_PATH"] == nil)

        var own = ship
        own.environment["PORT"] = "9999"
        #expect(
            VesselEnvironment.build(
                inherited: [:], settings: settings, vessel: own, mothershipPID: 1, socketDirectory: nil)[
                    "PORT"] == "9999")

        let bay = Vessel(name: "cable", kind: .bay, group: "websocket", command: "x")
        let bayEnvironment = VesselEnvironment.build(
            inherited: [:], settings: settings, vessel: bay, mothershipPID: 1, socketDirectory: "/run/ms")
        #expect(bayEnvironment["MS_SOCKET_DIR"] == "/run/ms")
        #expect(bayEnvironment["MS_SOCKET_PATH"] == "/run/ms/cable.sock")
        #expect(bayEnvironment["MS_BAY_TYPE"] == "websocket")
        #expect(bayEnvironment["PORT"] == nil)
    }
}
