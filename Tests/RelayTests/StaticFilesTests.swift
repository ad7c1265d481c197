import Foundation
import MothershipTestSupport
import Testing

@testable import Relay

/// Static directory lookups on a real directory tree: longest prefix, fallthrough, index.html,
/// content types, and every way out of the directory refused.
@Suite("Static files")
struct StaticFilesTests {
    /// `root/public` with files, a nested dir with an index, links in and out, and a secret beside it.
    static func tree() throws -> (TemporaryDirectory, StaticFiles) {
        let directory = try TemporaryDirectory(prefix: "mothership-static")
        let manager = FileManager.default
        for dir in ["public/css", "public/docs", "public/deep/er", "images"] {
            try manager.createDirectory(atPath: directory.file(dir), withIntermediateDirectories: true)
        }
        try directory.write("secret.txt", "top secret")
        try directory.write("public/app.js", "console.log(1)")
        try directory.write("public/css/site.css", "body{}")
        try directory.write("public/docs/index.html", "<h1>docs</h1>")
        try directory.write("public/a b.txt", "spaced")
        try directory.write("images/logo.png", "png")
        try manager.createSymbolicLink(
            atPath: directory.file("public/out"), withDestinationPath: "../secret.txt")
        try manager.createSymbolicLink(atPath: directory.file("public/outdir"), withDestinationPath: "..")
        try manager.createSymbolicLink(atPath: directory.file("public/in.js"), withDestinationPath: "app.js")
        let files = StaticFiles([
            (prefix: "/", path: directory.file("public")),
            (prefix: "/assets/img", path: directory.file("images")),
            (prefix: "/missing", path: directory.file("nope")),
        ])
        return (directory, files)
    }

    static func served(_ lookup: StaticFiles.Lookup) -> String? {
        guard case .file(let file) = lookup else { return nil }
        return try? String(contentsOfFile: file.path, encoding: .utf8)
    }

    @Test func longestPrefixWinsAndMissingFilesFallThrough() throws {
        let (directory, files) = try Self.tree()
        defer { directory.remove() }
        #expect(files.mounts.map(\.prefix) == ["/assets/img", ""])  // the missing dir is left out
        #expect(Self.served(files.lookup(path: "/assets/img/logo.png")) == "png")
        #expect(Self.served(files.lookup(path: "/app.js")) == "console.log(1)")
        #expect(Self.served(files.lookup(path: "/css//site.css")) == "body{}")
        #expect(Self.served(files.lookup(path: "/./css/./site.css")) == "body{}")
        #expect(Self.served(files.lookup(path: "/a%20b.txt")) == "spaced")
        #expect(files.lookup(path: "/assets/img/nope.png") == .missing)
        #expect(files.lookup(path: "/api/users") == .missing)
        // A directory serves its index.html (asked for without the slash: a redirect to it, as
        // nginx answers); one without is no file.
        #expect(files.lookup(path: "/docs") == .directory)
        #expect(Self.served(files.lookup(path: "/docs/")) == "<h1>docs</h1>")
        #expect(files.lookup(path: "/css/") == .missing)
        #expect(files.lookup(path: "/") == .missing)
        // A link that stays inside is followed.
        #expect(Self.served(files.lookup(path: "/in.js")) == "console.log(1)")
    }

    @Test func prefixesMatchOnlyAtSegmentBoundaries() {
        #expect(StaticFiles.matches("/assets/x", prefix: "/assets"))
        #expect(StaticFiles.matches("/assets", prefix: "/assets"))
        #expect(!StaticFiles.matches("/assetsx", prefix: "/assets"))
        #expect(StaticFiles.matches("/anything", prefix: ""))
    }

    @Test func traversalAttemptsAreRefused() throws {
        let (directory, files) = try Self.tree()
        defer { directory.remove() }
        for attempt in [
            "/../secret.txt", "/css/../../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt",
            "/.%2e/secret.txt", "/css/%2e%2e/%2e%2e/secret.txt", "/..%2fsecret.txt", "/%2e%2e%2fsecret.txt",
            "/..%5csecret.txt", "/app.js%00.png", "/%zz", "/%2", "/out", "/outdir/secret.txt",
            "/assets/img/../../secret.txt",
        ] {
            #expect(files.lookup(path: Substring(attempt)) == .refused, "\(attempt)")
        }
        // `..` inside a name is only a name.
        #expect(files.lookup(path: "/a..b") == .missing)
    }

    @Test func contentTypesComeFromTheExtension() {
        #expect(MediaType.forFile("index.html") == "text/html; charset=utf-8")
        #expect(MediaType.forFile("app.JS") == "text/javascript; charset=utf-8")
        #expect(MediaType.forFile("logo.svg") == "image/svg+xml")
        #expect(MediaType.forFile("module.wasm") == "application/wasm")
        #expect(MediaType.forFile("font.woff2") == "font/woff2")
        #expect(MediaType.forFile("README") == "application/octet-stream")
        #expect(MediaType.forFile("archive.unknownext") == "application/octet-stream")
    }
}

/// Conditional and range answers, decided from the file's identity and the request's headers.
@Suite("Static plan")
struct StaticPlanTests {
    static let etag = StaticPlan.etag(modified: 1_700_000_000, nanoseconds: 0, size: 1000)

    static func decide(
        ifNoneMatch: String? = nil, ifModifiedSince: String? = nil, range: String? = nil,
        ifRange: String? = nil
    ) -> StaticPlan {
        StaticPlan.decide(
            etag: etag, modified: 1_700_000_000, size: 1000,
            conditions: .init(
                ifNoneMatch: ifNoneMatch, ifModifiedSince: ifModifiedSince, range: range, ifRange: ifRange))
    }

    @Test func etagsAndDatesGive304() {
        #expect(Self.etag == "\"6553f100-3e8\"")
        #expect(Self.decide() == .full)
        #expect(Self.decide(ifNoneMatch: Self.etag) == .notModified)
        #expect(Self.decide(ifNoneMatch: "W/\(Self.etag)") == .notModified)
        #expect(Self.decide(ifNoneMatch: "\"other\", \(Self.etag)") == .notModified)
        #expect(Self.decide(ifNoneMatch: "*") == .notModified)
        #expect(Self.decide(ifNoneMatch: "\"other\"") == .full)
        let modified = HTTPDate.format(1_700_000_000)
        #expect(modified == "Tue, 14 Nov 2023 22:13:20 GMT")
        #expect(HTTPDate.parse(modified) == 1_700_000_000)
        #expect(Self.decide(ifModifiedSince: modified) == .notModified)
        #expect(Self.decide(ifModifiedSince: HTTPDate.format(1_800_000_000)) == .notModified)
        #expect(Self.decide(ifModifiedSince: HTTPDate.format(1_600_000_000)) == .full)
        #expect(Self.decide(ifModifiedSince: "yesterday") == .full)
        // If-None-Match wins over If-Modified-Since.
        #expect(Self.decide(ifNoneMatch: "\"other\"", ifModifiedSince: modified) == .full)
    }

    @Test func singleRangesGive206Or416AndMalformedOnesAreIgnored() {
        #expect(Self.decide(range: "bytes=0-99") == .partial(0...99))
        #expect(Self.decide(range: "bytes=900-") == .partial(900...999))
        #expect(Self.decide(range: "bytes=-100") == .partial(900...999))
        #expect(Self.decide(range: "bytes=990-5000") == .partial(990...999))
        #expect(Self.decide(range: "bytes=-5000") == .full)
        #expect(Self.decide(range: "bytes=0-") == .full)
        #expect(Self.decide(range: "BYTES = 1-2") == .full)  // `bytes =` is not `bytes=`
        #expect(Self.decide(range: "bytes=1000-") == .unsatisfiable)
        #expect(Self.decide(range: "bytes=5000-6000") == .unsatisfiable)
        #expect(Self.decide(range: "bytes=-0") == .unsatisfiable)
        for malformed in [
            "bytes=5-1", "bytes=a-b", "bytes=-", "bytes=1-2,4-5", "items=0-1", "bytes=0x1-2", "bytes",
            "bytes=--1", "bytes=1--2", "bytes=99999999999999999999-",
        ] {
            #expect(Self.decide(range: malformed) == .full, "\(malformed)")
        }
        // If-Range: the range applies only while the validator still matches.
        #expect(Self.decide(range: "bytes=0-9", ifRange: Self.etag) == .partial(0...9))
        #expect(Self.decide(range: "bytes=0-9", ifRange: "\"stale\"") == .full)
        #expect(Self.decide(range: "bytes=0-9", ifRange: HTTPDate.format(1_700_000_000)) == .partial(0...9))
        #expect(Self.decide(range: "bytes=0-9", ifRange: HTTPDate.format(1_600_000_000)) == .full)
        // A conditional that matches beats the range.
        #expect(Self.decide(ifNoneMatch: Self.etag, range: "bytes=0-9") == .notModified)
    }

    @Test func httpDatesRoundTrip() {
        #expect(HTTPDate.format(0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDate.format(784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 GMT") == 784_111_777)
        #expect(HTTPDate.parse("Sunday, 06-Nov-94 08:49:37 GMT") == nil)
        #expect(HTTPDate.parse("Sun Nov  6 08:49:37 1994") == nil)
        for seconds in stride(from: Int64(0), to: 4_000_000_000, by: 123_456_789) {
            #expect(HTTPDate.parse(HTTPDate.format(seconds)) == seconds)
        }
    }

    // MARK: The open-file cache

    static func read(_ found: StaticFileCache.Found) -> String? {
        guard case .file(let entry) = found else { return nil }
        var bytes = [UInt8](repeating: 0, count: entry.file.size)
        let count = bytes.withUnsafeMutableBytes { pread(entry.descriptor, $0.baseAddress, $0.count, 0) }
        return count == entry.file.size ? String(decoding: bytes, as: UTF8.self) : nil
    }

    /// Whatever happens to a cached file, the next lookup sees it: the descriptor is checked on
    /// every request, and a file with no link left is looked up again by its path.
    @Test func theCacheSeesEveryChangeOnTheNextRequest() throws {
        let (directory, files) = try StaticFilesTests.tree()
        defer { directory.remove() }
        let cache = StaticFileCache()
        defer { cache.closeAll() }
        guard let mount = files.mount(for: "/app.js") else {
            Issue.record("no mount")
            return
        }
        func find(_ path: Substring = "/app.js") -> StaticFileCache.Found {
            cache.find(path: path, in: mount, of: files, now: EdgeFeatures.now())
        }
        #expect(Self.read(find()) == "console.log(1)")
        guard case .file(let first) = find() else { Issue.record("not served"); return }
        #expect(cache.count == 1)

        // Changed in place (same inode, longer): new size and validators. (Not `directory.write`,
        // which writes a new file and renames it over: a new inode, whose descriptor only happens to
        // get the old number when no other test opened a file meanwhile.)
        let handle = try #require(FileHandle(forWritingAtPath: directory.file("public/app.js")))
        try handle.truncate(atOffset: 0)
        try handle.write(contentsOf: Data("console.log(22)".utf8))
        try handle.close()
        guard case .file(let changed) = find() else { Issue.record("not served"); return }
        #expect(changed.descriptor == first.descriptor, "the same open file")
        #expect(changed.file.size == 15 && Self.read(.file(changed)) == "console.log(22)")
        #expect(changed.etag != first.etag)

        // Truncated.
        #expect(truncate(directory.file("public/app.js"), 3) == 0)
        guard case .file(let truncated) = find() else { Issue.record("not served"); return }
        #expect(truncated.file.size == 3 && Self.read(.file(truncated)) == "con")

        // Renamed over: the old file has no link left; the new one is served.
        try directory.write("public/app.next", "renamed")
        #expect(rename(directory.file("public/app.next"), directory.file("public/app.js")) == 0)
        #expect(Self.read(find()) == "renamed")

        // Deleted: missing at once (the routes decide), and nothing is kept for it.
        #expect(unlink(directory.file("public/app.js")) == 0)
        guard case .missing = find() else { Issue.record("a deleted file was served"); return }
        #expect(cache.count == 0)
    }

    /// At most `capacity` files stay open per thread, and missing paths keep nothing.
    @Test func theCacheStaysBoundedUnderAFloodOfPaths() throws {
        let (directory, files) = try StaticFilesTests.tree()
        defer { directory.remove() }
        let cache = StaticFileCache()
        defer { cache.closeAll() }
        for index in 0..<(StaticFileCache.capacity + 200) {
            try directory.write("public/f\(index).txt", "\(index)")
        }
        guard let mount = files.mount(for: "/f0.txt") else {
            Issue.record("no mount")
            return
        }
        let before = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
        for index in 0..<(StaticFileCache.capacity + 200) {
            #expect(
                Self.read(
                    cache.find(path: "/f\(index).txt"[...], in: mount, of: files, now: EdgeFeatures.now()))
                    == "\(index)")
        }
        for index in 0..<5000 {
            guard
                case .missing = cache.find(
                    path: "/nope\(index)"[...], in: mount, of: files, now: EdgeFeatures.now())
            else { Issue.record("a missing path was found"); return }
        }
        #expect(cache.count == StaticFileCache.capacity)
        let after = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
        // Other tests run in this process meanwhile: a little slack for their descriptors (a cache
        // without a bound would hold 200 more).
        #expect(after - before <= StaticFileCache.capacity + 64, "descriptors: \(before) -> \(after)")
        cache.closeAll()
        #expect(cache.count == 0)
        let closed = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
        #expect(closed - before <= 64, "closeAll closes them: \(before) -> \(closed)")
    }

    /// The redirect's `Location` never starts with `//` (another site), whatever the path's slashes.
    @Test func aDirectorysRedirectStaysOnThisSite() {
        #expect(ClientConnection.slashed("/docs", query: "?page=2") == "/docs/?page=2")
        #expect(ClientConnection.slashed("//evil.example/docs", query: "") == "/evil.example/docs/")
        #expect(ClientConnection.slashed("///evil.example", query: "?a") == "/evil.example/?a")
    }
}
