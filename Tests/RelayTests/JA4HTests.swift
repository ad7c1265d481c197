import NIOCore
import Testing

@testable import Relay

/// JA4H (SPEC §5.5) against published vectors and against requests real clients sent.
@Suite("JA4H fingerprints")
struct JA4HTests {
    /// FoxIO's Wireshark capture of Firefox 133 on macOS over plain HTTP/1.1 (the vector SPEC §5.5
    /// names), as published with the capture's header order.
    @Test func firefox133Capture() {
        let fingerprint = JA4H(
            method: "GET", version: "11",
            headers: [
                ("Host", "h1.fp.ramaproxy.org"),
                (
                    "User-Agent",
                    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0"
                ),
                ("Accept", "text/css,*/*;q=0.1"),
                ("Accept-Language", "en-US,en;q=0.5"),
                ("Accept-Encoding", "gzip, deflate"),
                ("Connection", "keep-alive"),
                ("Referer", "http://h1.fp.ramaproxy.org/consent"),
                ("Cookie", "rama-fp=ready"),
                ("DNT", "1"),
                ("Sec-GPC", "1"),
                ("Priority", "u=2"),
            ])
        #expect(fingerprint.description == "ge11cr09enus_df50b14dec48_d733b88e2d70_774e52af4cfe")
        #expect(
            fingerprint.raw
                == "ge11cr09enus_Host,User-Agent,Accept,Accept-Language,Accept-Encoding,Connection,DNT,Sec-GPC,Priority_rama-fp_rama-fp=ready"
        )
    }

    /// The JA4 project's HTTP test vector: Chrome 114 with eight cookies, values holding `=` and `,`.
    @Test func chromeWithManyCookies() {
        let fingerprint = JA4H(
            method: "GET", version: "11",
            headers: [
                ("Host", "www.cnn.com"),
                (
                    "Cookie",
                    "FastAB=0=6859,1=8174,2=4183,3=3319,4=3917,5=2557,6=4259,7=6070,8=0804,9=6453,10=1942,11=4435,12=4143,13=9445,14=6957,15=8682,16=1885,17=1825,18=3760,19=0929; sato=1; countryCode=US; stateCode=VA; geoData=purcellville|VA|20132|US|NA|-400|broadband|39.160|-77.700|511; usprivacy=1---; umto=1; _dd_s=logs=1&id=b5c2d770-eaba-4847-8202-390c4552ff9a&created=1686159462724&expire=1686160422726"
                ),
                ("Sec-Ch-Ua", ""),
                ("Sec-Ch-Ua-Mobile", "?0"),
                (
                    "User-Agent",
                    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/114.0.5735.110 Safari/537.36"
                ),
                ("Sec-Ch-Ua-Platform", "\"\""),
                ("Accept", "*/*"),
                ("Sec-Fetch-Site", "same-origin"),
                ("Sec-Fetch-Mode", "cors"),
                ("Sec-Fetch-Dest", "empty"),
                ("Referer", "https://www.cnn.com/"),
                ("Accept-Encoding", "gzip, deflate"),
                ("Accept-Language", "en-US,en;q=0.9"),
            ])
        #expect(fingerprint.description == "ge11cr11enus_974ebe531c03_0f2659b474bf_161698816dab")
        #expect(fingerprint.cookieNames.first == "FastAB")
        #expect(fingerprint.cookieNames.last == "usprivacy")
    }

    /// Cookies sorted whatever their order, `;` without a space, lower-case names, HTTP/2.
    @Test func curlHTTP2CookiesInAnotherOrder() {
        let fingerprint = JA4H(
            method: "GET", version: "20",
            headers: [
                ("authorization", "Basic d29yZDp3b3Jk"), ("user-agent", "curl/7.81.0"), ("accept", "*/*"),
                ("cookie", "sierra=echo;alpha=bravo;zulu=tango"),
            ])
        #expect(fingerprint.description == "ge20cn030000_a8ea46949477_7efd8825dc5a_f0c5f5a36bc1")
        #expect(
            fingerprint.raw
                == "ge20cn030000_authorization,user-agent,accept_alpha,sierra,zulu_alpha=bravo,sierra=echo,zulu=tango"
        )
    }

    @Test func emptyCookieSegmentsAreDroppedAndValuelessCookiesKept() {
        let fingerprint = JA4H(
            method: "GET", version: "11",
            headers: [("Host", "example.com"), ("Cookie", "; alpha; bravo=charlie")])
        #expect(fingerprint.raw == "ge11cn010000_Host_alpha,bravo_alpha,bravo=charlie")
    }

    /// Requests captured from real clients on loopback (the bytes curl 7.88.1 and Python 3.11's
    /// urllib sent to a listening socket); the expected fingerprints were computed from the same
    /// bytes by an independent implementation (the `ja4plus` 1.4.0 package from PyPI).
    @Test(arguments: [
        (
            "GET /products?id=7 HTTP/1.1\r\nHost: 127.0.0.1:24999\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n"
                + "Referer: http://shop.example/start\r\nCookie: session=a1b2c3; theme=dark; _ga=GA1.2.345\r\n"
                + "Accept-Language: de-CH,de;q=0.9,en;q=0.8\r\n\r\n",
            "ge11cr04dech_8ddaef5d77af_a0604f4d751d_d4f08a937864"
        ),
        (
            "GET /api/items HTTP/1.1\r\nAccept-Encoding: identity\r\nHost: 127.0.0.1:24999\r\n"
                + "User-Agent: Python-urllib/3.11\r\nConnection: close\r\n\r\n",
            "ge11nn040000_5b1e8b5f4d2d_000000000000_000000000000"
        ),
    ])
    func capturedRequests(request: String, expected: String) throws {
        var buffer = ByteBuffer(string: request)
        var scanned = 0
        let limits = HeadParser.Limits(maxTargetBytes: 8192, maxHeaderBytes: 65536, maxFieldCount: 100)
        guard
            case .complete(let head) = HeadParser.next(
                from: &buffer, kind: .request, limits: limits, scanned: &scanned)
        else {
            Issue.record("the captured request did not parse")
            return
        }
        #expect(JA4H(head).description == expected)
    }

    @Test func methodCodes() {
        #expect(
            ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE", "PROPFIND", "M"]
                .map(
                    JA4H.methodCode) == ["ge", "po", "pu", "de", "he", "op", "pa", "co", "tr", "pr", "m0"])
    }

    @Test func languageCodes() {
        #expect(JA4H.languageCode(nil) == "0000")
        #expect(JA4H.languageCode("") == "0000")
        #expect(JA4H.languageCode("fr") == "fr00")
        #expect(JA4H.languageCode("en-US,en;q=0.5") == "enus")
        #expect(JA4H.languageCode("zh-Hans-CN") == "zhha")
        #expect(JA4H.languageCode("de;q=0.9") == "de00")
        #expect(JA4H.languageCode("es-419") == "es41")
    }

    @Test func headerCountStopsAt99() {
        let headers = (0..<120).map { (name: "X-H\($0)", value: "v") }
        let fingerprint = JA4H(method: "GET", version: "11", headers: headers)
        #expect(fingerprint.prefix == "ge11nn990000")
        #expect(fingerprint.headerNames.count == 120)
    }
}
