import Logging
import NIOCore
import ShipManifest
import Testing

@testable import Relay

/// The relay's model of a connection (`ClientConnection`, `Exchange`, `ShipLink`) without a socket,
/// an event loop or a timer: events in (bytes read, a read's end, a deadline passing, a ship
/// connection opening, failing or closing), and what the model asks of its drivers out, recorded by
/// transports that only note it. Every retry and timeout rule of SPEC §4 is a sequence here.
@Suite("Connection core")
struct ConnectionCoreTests {
    // MARK: Proxying

    @Test func aGetIsRewrittenForTheShipAndItsAnswerPassesToTheClient() throws {
        let core = try Core()
        core.send("GET /page?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n")
        #expect(core.client.connects == ["127.0.0.1:\(Core.appPort)"])
        let ship = core.openShip()
        #expect(ship.written.hasPrefix("GET /page?x=1 HTTP/1.1\r\n"))
        #expect(ship.written.contains("X-Forwarded-For: 192.0.2.7\r\n"))
        #expect(ship.written.contains("X-Forwarded-Proto: http\r\n"))
        core.shipSends(ship, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
        #expect(core.client.written == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
        #expect(!core.client.closed)

        // The next request on the connection meets the same ship connection, from the pool.
        core.client.written = ""
        ship.written = ""
        core.send("GET /again HTTP/1.1\r\nHost: example.com\r\n\r\n")
        #expect(core.client.connects.count == 1)
        #expect(ship.written.hasPrefix("GET /again HTTP/1.1\r\n"))
        core.shipSends(ship, "HTTP/1.1 204 No Content\r\n\r\n")
        #expect(core.client.written == "HTTP/1.1 204 No Content\r\n\r\n")
    }

    /// SPEC §12.3: a reload's settings reach an open connection with its next request; the request
    /// in flight finishes under the ones it began with; a removed bind's connection closes after
    /// its current response.
    @Test func aReloadAppliesFromTheNextRequestAndARemovedBindClosesAfterItsResponse() throws {
        let core = try Core()
        core.send("GET /page HTTP/1.1\r\nHost: a\r\n\r\n")
        let ship = core.openShip()
        core.connection.source.replace(
            ListenerSettings(
                name: "http", routes: RouteTable(entries: []), scheme: "http", limits: RelayLimits(),
                logger: core.settings.logger))
        core.shipSends(ship, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
        #expect(core.client.written == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")

        core.client.written = ""
        core.send("GET /page HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(core.client.written.hasPrefix("HTTP/1.1 404 Not Found\r\n"), "the new routes have none")
        #expect(core.client.connects.count == 1)
        #expect(!core.client.closed && !core.client.closedAfterWrites)

        core.connection.source.retire()
        core.client.written = ""
        core.send("GET /page HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(core.client.written.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        #expect(core.client.written.lowercased().contains("connection: close\r\n"))
        #expect(core.client.closed || core.client.closedAfterWrites)
    }

    @Test func aRequestNoRouteMatchesIs404AndOneToAShipNotReadyIs503() throws {
        let core = try Core()
        core.send("GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(core.client.written.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        #expect(core.client.connects.isEmpty)
        core.client.written = ""
        core.send("GET /down/x HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(core.client.written.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"))
        #expect(core.client.written.contains("ship 'down' is not ready"))
        #expect(!core.client.closed)
    }

    @Test func aRefusedConnectionIsRetriedTwiceThen502() throws {
        let core = try Core()
        core.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        core.failConnect(.failed("connection refused"))
        core.failConnect(.failed("connection refused"))
        #expect(core.client.written.isEmpty)
        core.failConnect(.failed("connection refused"))
        #expect(core.client.connects.count == 3)
        #expect(core.client.written.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"))
        #expect(core.client.written.contains("ship 'app': connection refused"))
        #expect(!core.client.closed)

        // A third refusal after two is answered too; one that succeeds on its retry is served.
        core.client.written = ""
        core.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        core.failConnect(.failed("connection refused"))
        let ship = core.openShip()
        core.shipSends(ship, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        #expect(core.client.written == "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    }

    @Test func aConnectTimeoutIs504AndTheRelaysOwnExhaustionIs503() throws {
        let core = try Core()
        core.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        core.failConnect(.timedOut)
        #expect(core.client.connects.count == 1)
        #expect(core.client.written.hasPrefix("HTTP/1.1 504 Gateway Timeout\r\n"))
        #expect(core.client.written.contains("no connection within"))
        core.client.written = ""
        core.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        core.failConnect(.exhausted(24))  // EMFILE
        #expect(core.client.written.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"))
        #expect(core.client.written.contains("the relay cannot open a connection"))
    }

    @Test func noFirstByteBeforeTheDeadlineIs504AndTheShipConnectionIsDropped() throws {
        let core = try Core()
        core.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let ship = core.openShip()
        let deadline = try #require(core.client.deadline)
        // A timer that fires before the deadline changes nothing; it is asked for again.
        core.connection.deadlinePassed(now: deadline - .seconds(1))
        #expect(core.client.written.isEmpty)
        #expect(core.client.deadline == deadline)
        core.connection.deadlinePassed(now: deadline)
        #expect(ship.closed)
        #expect(core.client.written.hasPrefix("HTTP/1.1 504 Gateway Timeout\r\n"))
        #expect(core.client.written.contains("no response within"))
        #expect(!core.client.closed)
    }

    @Test func aPooledConnectionTheShipClosedIsRetriedForAGetButNotForAPost() throws {
        let core = try Core()
        core.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let first = core.openShip()
        core.shipSends(first, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        // The ship closes the idle connection as the next head goes out: a GET goes again on a
        // fresh connection.
        core.client.written = ""
        core.send("GET /two HTTP/1.1\r\nHost: a\r\n\r\n")
        first.link.closed()
        #expect(core.client.connects.count == 2)
        let second = core.openShip()
        #expect(second.written.hasPrefix("GET /two HTTP/1.1\r\n"))
        core.shipSends(second, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        #expect(core.client.written == "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

        // A POST the ship may have read is never sent twice.
        core.client.written = ""
        core.send("POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\na=1")
        second.link.closed()
        #expect(core.client.connects.count == 2)
        #expect(core.client.written.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"))
    }

    @Test func theShipGoingAwayMidBodyClosesTheClientAfterWhatWasRead() throws {
        let core = try Core()
        core.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let ship = core.openShip()
        core.shipSends(ship, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
        #expect(core.client.written.hasSuffix("half"))
        ship.link.closed(error: "connection reset by peer")
        #expect(core.client.closed)
    }

    @Test func anInvalidResponseIs502() throws {
        let core = try Core()
        core.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let ship = core.openShip()
        core.shipSends(ship, "SSH-2.0-OpenSSH\r\n\r\n")
        #expect(ship.closed)
        #expect(core.client.written.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"))
        #expect(core.client.written.contains("invalid response"))
    }

    @Test func theClientGoingAwayDropsTheShipConnection() throws {
        let core = try Core()
        core.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let ship = core.openShip()
        core.connection.closed()
        #expect(ship.closed)
        // A late answer finds no one and writes nothing.
        core.shipSends(ship, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        #expect(core.client.written.isEmpty)
    }

    // MARK: A ship's instances

    /// A ship is a set of instances that changes under traffic (a worker's phased restart adds the
    /// new one and retires the old): requests take turns over the ready ones; a retired instance
    /// takes no new request, finishes the one it serves, and its connection closes after it; with
    /// none ready the ship is answered as not ready. No request fails on the way.
    @Test func requestsTakeTurnsOverAShipsInstancesAndARetiredOneFinishesWhatItServes() throws {
        let core = try Core()
        let one = ShipInstance(id: 1, address: .tcp(host: "127.0.0.1", port: 18_101))
        let two = ShipInstance(id: 2, address: .tcp(host: "127.0.0.1", port: 18_102))
        core.directory.set(ship: "app", instances: [one, two])
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

        core.send("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
        let first = core.openShip()
        core.shipSends(first, ok)
        core.send("GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
        let second = core.openShip()
        core.shipSends(second, ok)
        #expect(Set(core.client.connects) == ["127.0.0.1:18101", "127.0.0.1:18102"])
        let firstInstance = core.client.connects[0] == "127.0.0.1:18101" ? one : two
        let secondInstance = firstInstance == one ? two : one

        // The third request is the first instance's turn again, on its pooled connection; the
        // instance retires while it is in flight.
        first.written = ""
        core.send("GET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(first.written.hasPrefix("GET /3 "))
        core.directory.set(ship: "app", instances: [secondInstance])
        core.client.written = ""
        core.shipSends(first, ok)
        #expect(core.client.written == ok)
        #expect(first.closed, "a retired instance's connection closes once its request is done")

        // From now on every request goes to the instance that stayed.
        for index in 4...7 {
            second.written = ""
            core.client.written = ""
            core.send("GET /\(index) HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(second.written.hasPrefix("GET /\(index) "))
            core.shipSends(second, ok)
            #expect(core.client.written == ok)
        }
        #expect(core.client.connects.count == 2)

        // An instance that is not ready takes nothing: with none ready, 503 as a ship not ready.
        core.directory.set(
            ship: "app",
            instances: [ShipInstance(id: secondInstance.id, address: secondInstance.address, ready: false)])
        core.client.written = ""
        core.send("GET /8 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(core.client.written.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"))
        #expect(!second.closed, "an instance that is only not ready keeps its idle connection")
        // Ready again: its pooled connection serves at once.
        core.directory.set(ship: "app", instances: [secondInstance])
        second.written = ""
        core.send("GET /9 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(second.written.hasPrefix("GET /9 "))
        #expect(core.client.connects.count == 2)
    }

    /// SPEC §12.2: a request goes to the ready instance with the fewest requests in flight. While
    /// one instance holds a request, every new one goes to the other (taking turns alone would send
    /// half of them to the busy one, on a new connection).
    @Test func aNewRequestGoesToTheInstanceWithTheFewestInFlight() throws {
        let core = try Core()
        core.directory.set(
            ship: "app",
            instances: [
                ShipInstance(id: 1, address: .tcp(host: "127.0.0.1", port: 18_101)),
                ShipInstance(id: 2, address: .tcp(host: "127.0.0.1", port: 18_102)),
            ])
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        core.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        _ = core.openShip()  // never answers while the others run
        let busy = try #require(core.client.connects.first)
        var free: RecordingShip?
        for index in 0..<6 {
            let client = RecordingClient()
            let connection = ClientConnection(settings: core.settings, loop: core.loop)
            connection.start(transport: client, clientAddress: "192.0.2.8")
            connection.received(ByteBuffer(string: "GET /\(index) HTTP/1.1\r\nHost: a\r\n\r\n"))
            connection.readComplete()
            #expect(!client.connects.contains(busy), "request \(index) went to the busy instance")
            if free == nil {
                let ship = RecordingShip()
                ship.link.start(transport: ship, active: true)
                try #require(client.pendingConnects.count == 1)
                client.pendingConnects.removeFirst()(.success(ship.link))
                free = ship
            }
            let ship = try #require(free)
            #expect(ship.written.hasPrefix("GET /\(index) "), "request \(index) is on the free instance")
            ship.written = ""
            ship.link.received(ByteBuffer(string: ok))
            ship.link.readComplete()
            #expect(client.written == ok)
        }
    }

    // MARK: Compression

    /// The coding a connection's `Accept-Encoding` gave is reused only while the header's bytes
    /// stay the same: a kept-alive client that changes it (or drops it) gets what the new one says.
    @Test func aKeptAliveConnectionThatChangesItsAcceptEncodingGetsTheNewCoding() throws {
        let core = try Core(compression: true)
        let body = String(repeating: "compressible text ", count: 8)
        let answer =
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        var ship: RecordingShip?
        for (accepted, coding) in [
            ("gzip", "gzip"), ("gzip", "gzip"), ("identity", nil), ("br", "br"), (nil, nil), ("gzip", "gzip"),
        ] as [(String?, String?)] {
            core.client.written = ""
            let header = accepted.map { "Accept-Encoding: \($0)\r\n" } ?? ""
            core.send("GET /t HTTP/1.1\r\nHost: a\r\n\(header)\r\n")
            let link = ship ?? core.openShip()
            ship = link
            core.shipSends(link, answer)
            if let coding {
                #expect(
                    core.client.written.contains("Content-Encoding: \(coding)\r\n"),
                    "\(accepted ?? "none"): \(core.client.written)")
            } else {
                #expect(
                    !core.client.written.contains("Content-Encoding:"),
                    "\(accepted ?? "none"): \(core.client.written)")
                #expect(core.client.written.hasSuffix(body))
            }
        }
    }

    // MARK: Framing

    @Test func aChunkedResponseIsDechunkedForAnHTTP10ClientThatThenCloses() throws {
        let core = try Core()
        core.send("GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
        let ship = core.openShip()
        core.shipSends(ship, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        #expect(core.client.written.hasPrefix("HTTP/1.0 200 OK\r\n"))
        #expect(!core.client.written.lowercased().contains("transfer-encoding"))
        #expect(core.client.written.hasSuffix("\r\n\r\nhello"))
        #expect(core.client.closedAfterWrites)
    }

    @Test func aBodyEndedByTheShipsCloseIsChunkedForAnHTTP11Client() throws {
        let core = try Core()
        core.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let ship = core.openShip()
        core.shipSends(ship, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc")
        core.shipSends(ship, "de")
        ship.link.closed()
        #expect(core.client.written.contains("Transfer-Encoding: chunked\r\n"))
        #expect(core.client.written.hasSuffix("\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"))
        #expect(!core.client.closed)
    }

    @Test func aRequestBodyStreamsToTheShipAndExpectContinueIsAnsweredHere() throws {
        let core = try Core()
        core.send("PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nExpect: 100-continue\r\n\r\n")
        #expect(core.client.written == "HTTP/1.1 100 Continue\r\n\r\n")
        // Body bytes that come before the ship's connection is open wait for it; reading stops.
        core.send("abc")
        #expect(core.client.reading == false)
        let ship = core.openShip()
        #expect(!ship.written.lowercased().contains("expect:"))
        #expect(ship.written.hasSuffix("\r\n\r\nabc"))
        #expect(core.client.reading == true)
        core.send("def")
        #expect(ship.written.hasSuffix("abcdef"))
        core.shipSends(ship, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        #expect(core.client.written.hasSuffix("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"))
    }

    // MARK: Bad input

    @Test func aMalformedRequestIs400AndClosesOnTheFirstAndOnAKeptAliveRequest() throws {
        for first in [true, false] {
            let core = try Core()
            if !first {
                core.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                core.shipSends(core.openShip(), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                core.client.written = ""
            }
            core.send("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
            #expect(core.client.written.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
            #expect(core.client.closedAfterWrites)
            #expect(core.client.connects.count == (first ? 0 : 1))
        }
    }

    @Test func anInvalidChunkedUploadDropsTheShipConnectionAndIs400() throws {
        let core = try Core()
        core.send("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        let ship = core.openShip()
        core.send("zz\r\nnot a chunk\r\n")
        #expect(ship.closed)
        #expect(core.client.written.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        #expect(core.client.closedAfterWrites)
    }

    // MARK: Connection life

    @Test func anIdleConnectionClosesAtItsDeadlineAndAHeadThatNeverEndsToo() throws {
        let core = try Core()
        let headDeadline = try #require(core.client.deadline)
        core.send("GET / HTT")
        core.connection.deadlinePassed(now: headDeadline)
        #expect(core.client.closed)

        let kept = try Core()
        kept.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        kept.shipSends(kept.openShip(), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        let idleDeadline = try #require(kept.client.deadline)
        #expect(idleDeadline > headDeadline)
        #expect(!kept.client.closed)
        kept.connection.deadlinePassed(now: idleDeadline)
        #expect(kept.client.closed)
    }

    @Test func pipelinedRequestsAreAnsweredInOrderOneAtATime() throws {
        let core = try Core()
        core.send("GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\n")
        let ship = core.openShip()
        #expect(ship.written.hasPrefix("GET /one "))
        #expect(!ship.written.contains("/two"))
        #expect(core.client.reading == false)
        core.shipSends(ship, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
        // Not from inside the write that ended the first response: the driver is asked to come back.
        #expect(core.client.processLaterCalls == 1)
        ship.written = ""
        core.connection.processInbound()
        #expect(ship.written.hasPrefix("GET /two "))
        core.shipSends(ship, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2")
        #expect(core.client.written.hasSuffix("\r\n\r\n1HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2"))
        #expect(core.client.reading == true)
    }

    @Test func drainingClosesAnIdleConnectionAndEndsABusyOneAfterItsResponse() throws {
        let idle = try Core()
        idle.connection.drain()
        #expect(idle.client.closed)

        let busy = try Core()
        busy.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let ship = busy.openShip()
        busy.connection.drain()
        #expect(!busy.client.closed)
        busy.shipSends(ship, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        #expect(busy.client.written.contains("Connection: close\r\n"))
        #expect(busy.client.closedAfterWrites)
    }

    // MARK: Backpressure

    @Test func aFullShipSocketStopsReadingTheClientUntilItDrains() throws {
        let core = try Core()
        core.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n")
        let ship = core.openShip()
        ship.full = true
        ship.link.writabilityChanged(false)
        core.send(String(repeating: "x", count: 1000))
        #expect(core.client.reading == false)
        ship.full = false
        ship.link.writabilityChanged(true)
        #expect(core.client.reading == true)
    }

    @Test func aClientThatTakesNothingForTheSendTimeoutIsReset() throws {
        let core = try Core()
        core.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let ship = core.openShip()
        core.client.held = 50_000
        core.client.full = true
        core.connection.writabilityChanged(false)
        core.shipSends(
            ship, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + String(repeating: "x", count: 8000))
        #expect(ship.reading == false)
        let first = try #require(core.client.deadline)
        // Some bytes were taken: another period.
        core.client.held = 40_000
        core.connection.deadlinePassed(now: first)
        #expect(!core.client.wasReset)
        let second = try #require(core.client.deadline)
        core.connection.deadlinePassed(now: second)
        #expect(core.client.wasReset)
        #expect(ship.closed)
    }

    // MARK: Upgrades

    @Test func anAcceptedUpgradeBecomesATunnelBothWays() throws {
        let core = try Core()
        core.send("GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        let ship = core.openShip()
        core.shipSends(
            ship,
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nfrom-ship")
        #expect(core.client.written.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        #expect(core.client.written.hasSuffix("\r\n\r\nfrom-ship"))
        // The driver may splice the two sockets from here: once the 101 is written (what the ship
        // sent after it in the same read follows at once, before the driver reads again).
        #expect(core.client.joined === ship.link)
        #expect(core.client.writtenWhenJoined?.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n") == true)
        ship.written = ""
        core.send("from-client")
        #expect(ship.written == "from-client")
        core.shipSends(ship, "more")
        #expect(core.client.written.hasSuffix("from-shipmore"))
        // The ship's end of the stream: what it sent still goes out, then the client closes.
        ship.link.closed()
        #expect(core.client.closedAfterWrites)
        #expect(!core.client.closed)
    }

    @Test func aTunnelsShipGetsWhatTheClientSentBeforeItWent() throws {
        let core = try Core()
        core.send("GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        let ship = core.openShip()
        core.shipSends(
            ship, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        ship.written = ""
        core.send("last words")
        core.connection.closed()
        #expect(ship.written == "last words")
        // Not dropped with the client: closed once sent, or after the send timeout.
        #expect(!ship.closed)
        #expect(ship.closeAfterWritesLimit == RelayLimits().sendTimeout)
    }

    @Test func aRefusedUpgradeIsAnsweredAndTheConnectionCloses() throws {
        let core = try Core()
        core.send("GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        let ship = core.openShip()
        core.shipSends(ship, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        #expect(core.client.written.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        #expect(core.client.closedAfterWrites)
        #expect(core.client.joined == nil)
    }
}

// MARK: - The harness

/// A relay listener's core with recording transports: `app` is ready at `/` (except `/n…`: no
/// route), `down` is not (`/down…`).
private final class Core {
    static let appPort = 18_080
    let settings: ListenerSettings
    let directory: UpstreamDirectory
    let loop = LoopContext()
    let client = RecordingClient()
    let connection: ClientConnection

    init(limits: RelayLimits = RelayLimits(), compression: Bool = false) throws {
        let loaded = ManifestLoader.load(
            text: """
                [mothership.bind]
                http = "127.0.0.1:18000"

                [[fleet.web]]
                name = "down"
                command = "sleep"
                bind = "tcp://127.0.0.1:18081"
                routes = [{ bind = "http", pattern = "/down.*" }]

                [[fleet.web]]
                name = "app"
                command = "sleep"
                bind = "tcp://127.0.0.1:\(Self.appPort)"
                routes = [{ bind = "http", pattern = "/([^n].*)?" }]
                """)
        let manifest = try #require(loaded.manifest, "\(loaded.diagnostics)")
        let directory = UpstreamDirectory(ships: manifest.ships.map(\.name))
        directory.set(ship: "app", ready: true)
        self.directory = directory
        settings = ListenerSettings(
            name: "http",
            routes: RouteTable.build(bind: "http", manifest: manifest, directory: directory),
            scheme: "http", limits: limits,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
            edge: EdgeFeatures(compression: compression))
        connection = ClientConnection(settings: settings, loop: loop)
        connection.start(transport: client, clientAddress: "192.0.2.7")
    }

    /// Bytes from the client, as one read.
    func send(_ text: String) {
        connection.received(ByteBuffer(string: text))
        connection.readComplete()
    }

    /// Completes the oldest connect the core asked for with a fresh ship connection.
    func openShip() -> RecordingShip {
        let ship = RecordingShip()
        ship.link.start(transport: ship, active: true)
        let completion = client.pendingConnects.removeFirst()
        completion(.success(ship.link))
        return ship
    }

    func failConnect(_ failure: ConnectFailure) {
        let completion = client.pendingConnects.removeFirst()
        completion(.failure(failure))
    }

    /// Bytes from the ship, as one read.
    func shipSends(_ ship: RecordingShip, _ text: String) {
        ship.link.received(ByteBuffer(string: text))
        ship.link.readComplete()
    }
}

private final class RecordingClient: ClientTransport {
    var written = ""
    private var queued = ""
    var connects: [String] = []
    var pendingConnects: [(Result<ShipLink, ConnectFailure>) -> Void] = []
    var deadline: NIODeadline?
    var reading = true
    var closed = false
    var closedAfterWrites = false
    var wasReset = false
    var processLaterCalls = 0
    /// The socket takes nothing more (flush leaves bytes held).
    var full = false
    var held = 0

    let allocator = ByteBufferAllocator()
    var peerPort: Int? { 51_000 }
    var isWritable: Bool { !full }
    var heldBytes: Int { held }

    func write(_ bytes: ByteBuffer) { queued += String(buffer: bytes) }
    func flush() -> Bool {
        written += queued
        queued = ""
        return full
    }
    func setReading(_ on: Bool) { reading = on }
    func close() { closed = true }
    func closeAfterWrites() {
        _ = flush()
        closedAfterWrites = true
    }
    func reset() {
        wasReset = true
        closed = true
    }
    func watch(until deadline: NIODeadline) { self.deadline = deadline }
    func clearWatch() { deadline = nil }
    func processLater() { processLaterCalls += 1 }
    func connect(
        to address: SocketAddressOrPath, timeout: TimeAmount,
        completion: @escaping (Result<ShipLink, ConnectFailure>) -> Void
    ) {
        switch address {
        case .tcp(let host, let port): connects.append("\(host):\(port)")
        case .unix(let path): connects.append(path)
        }
        pendingConnects.append(completion)
    }
    func sendFile(
        descriptor: CInt, range: ClosedRange<Int>, path: String, coding: ContentCoding?, chunked: Bool
    ) {}
    func handOver(to berth: BayBerth, boarding: BayBoarding, rest: ByteBuffer) {}
    /// The ship connection the core joined this one to (`joinTunnel`).
    var joined: ShipLink?
    /// What had been sent to the client when the core joined the tunnel.
    var writtenWhenJoined: String?
    func joinTunnel(to ship: ShipLink) {
        joined = ship
        writtenWhenJoined = written + queued
    }
}

private final class RecordingShip: ShipTransport {
    let link = ShipLink()
    var written = ""
    var closed = false
    var reading = true
    var full = false
    var isWritable: Bool { !full }

    func write(_ bytes: ByteBuffer) { written += String(buffer: bytes) }
    func flush() -> Bool { full }
    func setReading(_ on: Bool) { reading = on }
    func close() {
        guard !closed else { return }
        closed = true
        link.closed()
    }
    /// `closeAfterWrites`' limit, once asked.
    var closeAfterWritesLimit: TimeAmount?
    func closeAfterWrites(within limit: TimeAmount) { closeAfterWritesLimit = limit }
}
