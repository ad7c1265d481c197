import ShipManifest
import Testing

@Suite("env_file: read through the caller, merged with the SPEC §12.4 precedence")
struct EnvFileTests {
    static func load(
        _ toml: String, files: [String: String], environment: [String: String] = [:]
    ) -> ManifestLoader.Result {
        ManifestLoader.load(
            text: toml, environment: environment,
            options: .init(envFiles: { path in files[path].map { .text($0) } ?? .failed("no such file") }))
    }

    static let files = [
        ".env": "LEVEL=mothership-file\nFROM_M_FILE=1\nM_ENV_WINS=file\n",
        "ship.env": "LEVEL=ship-file\nFROM_S_FILE=1\nS_ENV_WINS=file\nM_ENV_WINS=ship-file\n",
        "base.env": "FROM_BASE_FILE=1\nLEVEL=base-file\n",
    ]

    @Test func precedenceLowestFirstFileThenEnvAtEachLevel() throws {
        let result = Self.load(
            """
            [mothership]
            env_file = ".env"
            [mothership.env]
            M_ENV_WINS = "mothership-env"
            ONLY_M_ENV = "m"

            [[fleet.web]]
            name = "web"
            command = "/bin/true"
            env_file = ["ship.env"]
            env = { S_ENV_WINS = "ship-env" }

            [[fleet.web]]
            name = "plain"
            command = "/bin/true"
            """, files: Self.files)
        let manifest = try #require(result.manifest, "\(result.diagnostics)")
        #expect(manifest.settings.envFiles == [".env"])
        #expect(
            manifest.settings.environment == [
                "LEVEL": "mothership-file", "FROM_M_FILE": "1", "M_ENV_WINS": "mothership-env",
                "ONLY_M_ENV": "m",
            ])
        let web = manifest.vessels[0]
        #expect(web.envFiles == ["ship.env"])
        #expect(
            web.environment == [
                "LEVEL": "ship-file", "FROM_S_FILE": "1", "S_ENV_WINS": "ship-env", "M_ENV_WINS": "ship-file",
            ])
        #expect(manifest.vessels[1].environment == [:])
        #expect(manifest.vessels[1].envFiles == [])
    }

    @Test func templatesFilesComeFirstAndTheVesselsOwnWin() throws {
        let result = Self.load(
            """
            [base.ship]
            env_file = "base.env"
            [[fleet.web]]
            name = "web"
            command = "/bin/true"
            env_file = "ship.env"
            [[fleet.web]]
            name = "other"
            command = "/bin/true"
            """, files: Self.files)
        let manifest = try #require(result.manifest, "\(result.diagnostics)")
        #expect(manifest.vessels[0].envFiles == ["base.env", "ship.env"])
        #expect(manifest.vessels[0].environment["LEVEL"] == "ship-file")
        #expect(manifest.vessels[0].environment["FROM_BASE_FILE"] == "1")
        #expect(manifest.vessels[1].environment == ["FROM_BASE_FILE": "1", "LEVEL": "base-file"])
    }

    @Test func expansionSeesMothershipsEnvironmentAndMothershipEnv() throws {
        let result = Self.load(
            """
            [mothership]
            env_file = ".env"
            env = { DB_HOST = "db" }
            [[bays.websocket]]
            name = "cable"
            command = "/bin/true"
            env_file = "bay.env"
            """,
            files: [".env": "URL=\"${HOME}/x\"", "bay.env": "DSN=\"pg://${DB_HOST}/${HOME}\""],
            environment: ["HOME": "/home/u"])
        let manifest = try #require(result.manifest, "\(result.diagnostics)")
        #expect(manifest.settings.environment["URL"] == "/home/u/x")
        #expect(manifest.vessels[0].environment["DSN"] == "pg://db//home/u")
    }

    @Test func aMissingFileIsAnErrorAtTheEnvFileKey() throws {
        let result = Self.load(
            """
            [mothership]
            name = "x"
            env_file = ["missing.env"]
            """, files: [:])
        #expect(result.manifest == nil)
        let error = try #require(result.diagnostics.errors.first)
        #expect(error.path.description == "mothership.env_file[0]")
        #expect(error.message == "env file 'missing.env' cannot be read: no such file")
        #expect(error.position?.line == 3)
    }

    @Test func aMalformedLineIsAnErrorNamingTheFileAndLine() throws {
        let result = Self.load(
            """
            [[fleet.web]]
            name = "web"
            command = "/bin/true"
            env_file = "ship.env"
            """, files: ["ship.env": "A=1\n\nB=\"unterminated\n"])
        #expect(result.manifest == nil)
        let error = try #require(result.diagnostics.errors.first)
        #expect(error.path.description == "fleet.web[0].env_file")
        #expect(error.message == "ship.env:3: unterminated double quote")
        #expect(error.position?.line == 4)
    }

    @Test func wrongTypesAndEmptyPathsAreRejected() {
        let number = Self.load("[mothership]\nenv_file = 3\n", files: [:])
        #expect(
            number.diagnostics.errors.map(\.message) == [
                "expected a path or an array of paths, found an integer"
            ])
        let empty = Self.load("[mothership]\nenv_file = \"\"\n", files: [:])
        #expect(empty.diagnostics.errors.map(\.message) == ["must not be empty"])
    }

    @Test func withoutAReaderEnvFilesAreErrors() {
        let result = ManifestLoader.load(text: "[mothership]\nenv_file = \".env\"\n")
        #expect(result.manifest == nil)
    }
}
