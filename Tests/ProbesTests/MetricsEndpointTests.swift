import Relay
import ShipManifest
import Testing

@Suite("Metrics endpoint")
struct MetricsEndpointTests {
    @Test(.timeLimit(.minutes(1)))
    func servesMetricsBodyWithPrometheusContentType() async throws {
        let text = "# TYPE mothership_fleet_ships_total gauge\nmothership_fleet_ships_total 3\n"
        try await withEndpoint(metrics: { text }) { _, address in
            let response = try await RawConnection.with(address) { connection in
                try await connection.send("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
                return try await connection.readResponse()
            }
            #expect(response?.status == 200)
            #expect(response?.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8")
            #expect(response?.body == text)
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: [200, 503])
    func healthAnswersWithTheClosuresStatusAndBody(status: Int) async throws {
        let body = #"{"status":"\#(status == 200 ? "running" : "launching")"}"#
        try await withEndpoint(health: HealthAnswer(status: status, body: body)) { _, address in
            let response = try await RawConnection.with(address) { connection in
                try await connection.send("GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
                return try await connection.readResponse()
            }
            #expect(response?.status == status)
            #expect(response?.header("Content-Type") == "application/json")
            #expect(response?.body == body)
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func unknownPathIsNotFoundAndQueryIsIgnored() async throws {
        try await withEndpoint { _, address in
            try await RawConnection.with(address) { connection in
                try await connection.send("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(try await connection.readResponse()?.status == 404)
                try await connection.send("GET /metrics?debug=1 HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(try await connection.readResponse()?.status == 200)
            }
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func otherMethodIsNotAllowed() async throws {
        try await withEndpoint { _, address in
            let response = try await RawConnection.with(address) { connection in
                try await connection.send(
                    "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
                return try await connection.readResponse()
            }
            #expect(response?.status == 405)
            #expect(response?.header("Allow") == "GET, HEAD")
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func headGetsTheHeadersOfGetWithoutBody() async throws {
        let text = "mothership_fleet_ships_total 2\n"
        try await withEndpoint(metrics: { text }) { _, address in
            try await RawConnection.with(address) { connection in
                try await connection.send("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                let head = try await connection.readResponse(toHead: true)
                #expect(head?.status == 200)
                #expect(head?.header("Content-Length") == String(text.utf8.count))
                #expect(head?.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8")
                // Had a body been sent, it would be read here in place of the next status line.
                try await connection.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(try await connection.readResponse()?.status == 200)
            }
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func keepAliveServesTwoRequestsOnOneConnection() async throws {
        let health = HealthAnswer(status: 503, body: #"{"status":"launching"}"#)
        try await withEndpoint(health: health) { _, address in
            try await RawConnection.with(address) { connection in
                try await connection.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                let first = try await connection.readResponse()
                #expect(first?.status == 503)
                #expect(first?.header("Connection") == nil)
                health.set(status: 200, body: #"{"status":"running"}"#)
                try await connection.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                let second = try await connection.readResponse()
                #expect(second?.status == 200)
                #expect(second?.body == #"{"status":"running"}"#)
            }
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func connectionCloseIsHonoured() async throws {
        try await withEndpoint { _, address in
            try await RawConnection.with(address) { connection in
                try await connection.send("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                let response = try await connection.readResponse()
                #expect(response?.status == 200)
                #expect(response?.header("Connection") == "close")
                #expect(try await connection.readsEndOfStream())
            }
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func malformedRequestGetsBadRequestAndCloseWhileAnotherConnectionWorks() async throws {
        try await withEndpoint { _, address in
            try await RawConnection.with(address) { healthy in
                try await RawConnection.with(address) { broken in
                    try await broken.send("THIS IS NOT HTTP\r\n\u{01}\u{02}\r\n\r\n")
                    let response = try await broken.readResponse()
                    #expect(response?.status == 400)
                    #expect(try await broken.readsEndOfStream())
                }
                try await healthy.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(try await healthy.readResponse()?.status == 200)
            }
            let fresh = try await RawConnection.with(address) { connection in
                try await connection.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                return try await connection.readResponse()
            }
            #expect(fresh?.status == 200)
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func servesOverUnixSocket() async throws {
        let path = temporarySocketPath()
        try await withEndpoint(on: .unix(path: path)) { endpoint, address in
            let port = try await endpoint.start()
            #expect(port == 0)
            let response = try await RawConnection.with(address) { connection in
                try await connection.send("GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
                return try await connection.readResponse()
            }
            #expect(response?.status == 200)
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func startIsIdempotentAndAPortInUseIsAnOperatorError() async throws {
        try await withEndpoint { endpoint, address in
            let again = try await endpoint.start()
            #expect(again == address.port)
            let rival = MetricsEndpoint(address: address, metrics: { "" }, health: { (200, "{}") })
            await #expect {
                try await rival.start()
            } throws: { error in
                "\(error)".contains("cannot open the metrics endpoint on \(address)")
            }
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func runServesUntilCancelledThenClosesListenerAndConnections() async throws {
        let endpoint = MetricsEndpoint(
            address: .tcp(host: "127.0.0.1", port: 0), metrics: { "" }, health: { (200, "{}") })
        let port = try await endpoint.start()
        let address = BindAddress.tcp(host: "127.0.0.1", port: port)
        let serving = Task { try await endpoint.run() }
        try await RawConnection.with(address) { connection in
            try await connection.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await connection.readResponse()?.status == 200)
            serving.cancel()
            try await serving.value
            // The idle keep-alive connection is closed by the stop, not left behind.
            #expect(try await connection.readsEndOfStream())
        }
        await #expect(throws: (any Error).self) {
            try await RawConnection.with(address) { _ in }
        }
        await #expect(throws: MetricsEndpointError.stopped) { try await endpoint.start() }
    }
}
