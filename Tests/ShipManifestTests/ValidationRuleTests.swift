import ShipManifest
import Testing

/// One validation rule: a manifest snippet and the exact error it must produce.
struct RuleCase: Sendable, CustomTestStringConvertible {
    var rule: String
    var toml: String
    var path: String
    var message: String
    var line: Int? = nil
    var selection: TagSelection = .all

    var testDescription: String { rule }
}

let httpBind = """
    [mothership.bind]
    http = "127.0.0.1:8080"

    """

let ruleCases: [RuleCase] = [
    // Unknown keys, with the nearest known key suggested.
    RuleCase(
        rule: "typo in a ship key suggests the known key",
        toml: "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\ndepend_on = [\"x\"]\n",
        path: "fleet.web[0].depend_on",
        message: "unknown key 'depend_on' in a ship; did you mean 'depends_on'?", line: 4),
    RuleCase(
        rule: "typo in a root section",
        toml: "[mothershp]\nmetrics_port = 9090\n",
        path: "mothershp", message: "unknown key 'mothershp' in the manifest; did you mean 'mothership'?",
        line: 1),
    RuleCase(
        rule: "truncated key suggests the full key",
        toml: httpBind
            + "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nbind = \"3000\"\nroutes = [{ bind = \"http\", pattern = \"/.*\", strip = \"/a\" }]\n",
        path: "fleet.web[0].routes[0].strip",
        message: "unknown key 'strip' in a route; did you mean 'strip_prefix'?", line: 7),
    RuleCase(
        rule: "unknown key far from every known key lists them",
        toml: "[mothership.rate_limiting]\nburst = 5\n",
        path: "mothership.rate_limiting.burst",
        message: "unknown key 'burst' in rate_limiting; known keys: global_rps, per_ip_rpm",
        line: 2),
    RuleCase(
        rule: "typo in a template",
        toml: "[base.ship]\ncritcal = false\n",
        path: "base.ship.critcal", message: "unknown key 'critcal' in [base.ship]; did you mean 'critical'?",
        line: 2),
    RuleCase(
        rule: "bay-only key on a ship",
        toml: "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nconfig = { a = 1 }\n",
        path: "fleet.web[0].config",
        message:
            "unknown key 'config' in a ship; known keys: name, command, args, bind, healthcheck, routes, depends_on, env, env_file, critical, oneshot, tags, start_timeout, stop_timeout, stop_signal, cwd, workers, request_timeout, recycle_stuck",
        line: 4),

    // Missing required fields.
    RuleCase(
        rule: "ship without a name", toml: "[[fleet.web]]\ncommand = \"ruby\"\n",
        path: "fleet.web[0].name", message: "missing required field 'name' (a unique identifier)", line: 1),
    RuleCase(
        rule: "ship without a command", toml: "\n[[fleet.web]]\nname = \"app\"\n",
        path: "fleet.web[0].command",
        message: "missing required field 'command' (the program to run) for ship 'app'", line: 2),
    RuleCase(
        rule: "bay without a command", toml: "[[bays.websocket]]\nname = \"cable\"\n",
        path: "bays.websocket[0].command",
        message: "missing required field 'command' (the program to run) for bay 'cable'",
        line: 1),
    RuleCase(
        rule: "route without a pattern",
        toml: httpBind
            + "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nbind = \"3000\"\nroutes = [{ bind = \"http\" }]\n",
        path: "fleet.web[0].routes[0].pattern",
        message: "missing required field 'pattern' (a path regex such as \"/api/.*\")"),
    RuleCase(
        rule: "module without a wasm file", toml: "[[modules]]\nname = \"auth\"\nroutes = [\"/.*\"]\n",
        path: "modules[0].wasm", message: "missing required field 'wasm' (path to the .wasm file)", line: 1),
    RuleCase(
        rule: "uplink without a url", toml: "[[mothership.uplinks]]\nname = \"db\"\n",
        path: "mothership.uplinks[0].url",
        message: "missing required field 'url' (such as postgres://db.internal:5432/app)"),
    RuleCase(
        rule: "prelaunch job without a command", toml: "[[mothership.prelaunch]]\nname = \"migrate\"\n",
        path: "mothership.prelaunch[0].command",
        message: "missing required field 'command' (the program to run)"),
    RuleCase(
        rule: "tls without a key",
        toml: "[mothership.bind]\nhttps = { addr = \"0.0.0.0:443\", tls = { cert = \"c.pem\" } }\n",
        path: "mothership.bind.https.tls.key", message: "missing required field 'key' (PEM private key file)",
        line: 2),

    // Names.
    RuleCase(
        rule: "name with a space", toml: "[[fleet.web]]\nname = \"my app\"\ncommand = \"ruby\"\n",
        path: "fleet.web[0].name",
        message: "invalid name 'my app': use only ASCII letters, digits, '-', '_' and '.' (no spaces)",
        line: 2),
    RuleCase(
        rule: "name with non-ASCII letters", toml: "[[bays.ws]]\nname = \"café\"\ncommand = \"x\"\n",
        path: "bays.ws[0].name",
        message: "invalid name 'café': use only ASCII letters, digits, '-', '_' and '.' (no spaces)"),
    RuleCase(
        rule: "duplicate name across a ship and a bay",
        toml:
            "[[fleet.web]]\nname = \"app\"\ncommand = \"a\"\n\n[[bays.ws]]\nname = \"app\"\ncommand = \"b\"\n",
        path: "bays.ws[0].name",
        message: "duplicate name 'app' (also at fleet.web[0]); names are unique across ships and bays",
        line: 6),
    RuleCase(
        rule: "duplicate prelaunch job",
        toml:
            "[[mothership.prelaunch]]\nname = \"migrate\"\ncommand = \"a\"\n[[mothership.prelaunch]]\nname = \"migrate\"\ncommand = \"b\"\n",
        path: "mothership.prelaunch[1].name",
        message: "duplicate prelaunch job name 'migrate' (also at mothership.prelaunch[0])",
        line: 5),
    RuleCase(
        rule: "duplicate module",
        toml: "[[modules]]\nname = \"m\"\nwasm = \"a.wasm\"\n[[modules]]\nname = \"m\"\nwasm = \"b.wasm\"\n",
        path: "modules[1].name", message: "duplicate module name 'm' (also at modules[0])"),
    RuleCase(
        rule: "duplicate uplink",
        toml:
            "[[mothership.uplinks]]\nname = \"db\"\nurl = \"postgres://a\"\n[[mothership.uplinks]]\nname = \"db\"\nurl = \"postgres://b\"\n",
        path: "mothership.uplinks[1].name",
        message: "duplicate uplink name 'db' (also at mothership.uplinks[0])"),
    RuleCase(
        rule: "bind name with a space", toml: "[mothership.bind]\n\"public web\" = \"8080\"\n",
        path: "mothership.bind.\"public web\"",
        message:
            "invalid bind name 'public web': use only ASCII letters, digits, '-', '_' and '.' (no spaces)",
        line: 2),

    // Dependencies.
    RuleCase(
        rule: "depends_on names an unknown vessel",
        toml:
            "[[fleet.web]]\nname = \"cache\"\ncommand = \"redis-server\"\n[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\ndepends_on = [\"cahce\"]\n",
        path: "fleet.web[1].depends_on[0]",
        message:
            "'app' depends on 'cahce', which is not a ship or bay in this manifest; did you mean 'cache'?",
        line: 7),
    RuleCase(
        rule: "a vessel depends on itself",
        toml: "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\ndepends_on = [\"app\"]\n",
        path: "fleet.web[0].depends_on[0]", message: "'app' depends on itself"),
    RuleCase(
        rule: "a dependency cycle is printed as a path",
        toml: """
            [[fleet.web]]
            name = "a"
            command = "x"
            depends_on = ["b"]
            [[fleet.workers]]
            name = "b"
            command = "x"
            depends_on = ["c"]
            [[bays.ws]]
            name = "c"
            command = "x"
            depends_on = ["a"]
            """,
        path: "fleet.web[0].depends_on", message: "dependency cycle: a -> b -> c -> a", line: 4),
    RuleCase(
        rule: "a prelaunch cycle",
        toml:
            "[[mothership.prelaunch]]\nname = \"one\"\ncommand = \"x\"\ndepends_on = [\"two\"]\n[[mothership.prelaunch]]\nname = \"two\"\ncommand = \"x\"\ndepends_on = [\"one\"]\n",
        path: "mothership.prelaunch[0].depends_on", message: "dependency cycle: one -> two -> one", line: 4),
    RuleCase(
        rule: "prelaunch depends on an unknown job",
        toml:
            "[[mothership.prelaunch]]\nname = \"migrate\"\ncommand = \"x\"\n[[mothership.prelaunch]]\nname = \"seed\"\ncommand = \"x\"\ndepends_on = [\"migrat\"]\n",
        path: "mothership.prelaunch[1].depends_on[0]",
        message:
            "prelaunch job 'seed' depends on 'migrat', which is not a prelaunch job; did you mean 'migrate'?"),
    RuleCase(
        rule: "--only leaves out a dependency",
        toml:
            "[[fleet.data]]\nname = \"db\"\ncommand = \"postgres\"\ntags = [\"data\"]\n[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\ntags = [\"web\"]\ndepends_on = [\"db\"]\n",
        path: "fleet.web[0].depends_on[0]",
        message: "'app' depends on 'db', which --only web leaves out; select it too or drop the filter",
        line: 9,
        selection: .only(["web"])),
    RuleCase(
        rule: "--except leaves out a dependency",
        toml:
            "[[fleet.data]]\nname = \"db\"\ncommand = \"postgres\"\ntags = [\"data\"]\n[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\ndepends_on = [\"db\"]\n",
        path: "fleet.web[0].depends_on[0]",
        message: "'app' depends on 'db', which --except data leaves out; select it too or drop the filter",
        selection: .except(["data"])),

    // Routes.
    RuleCase(
        rule: "route names an undeclared bind",
        toml: httpBind
            + "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nbind = \"3000\"\nroutes = [{ bind = \"htp\", pattern = \"/.*\" }]\n",
        path: "fleet.web[0].routes[0].bind",
        message: "route names bind 'htp', which is not declared in [mothership.bind]; did you mean 'http'?",
        line: 7),
    RuleCase(
        rule: "shorthand route names an undeclared bind",
        toml: httpBind
            + "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nbind = \"3000\"\nroutes = [\"http:/.*\", \"admin:/x\"]\n",
        path: "fleet.web[0].routes[1]",
        message: "route names bind 'admin', which is not declared in [mothership.bind] (declared: http)",
        line: 7),
    RuleCase(
        rule: "shorthand route without a colon",
        toml: httpBind
            + "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nbind = \"3000\"\nroutes = [\"/api\"]\n",
        path: "fleet.web[0].routes[0]",
        message: "route '/api' must be \"bind:pattern\", such as \"http:/api/.*\""),
    RuleCase(
        rule: "invalid route regex",
        toml: httpBind
            + "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nbind = \"3000\"\nroutes = [{ bind = \"http\", pattern = \"/api/(\" }]\n",
        path: "fleet.web[0].routes[0].pattern", message: "invalid regular expression '/api/(': expected ')'",
        line: 7),
    RuleCase(
        rule: "invalid module route regex",
        toml: "[[modules]]\nname = \"m\"\nwasm = \"m.wasm\"\nroutes = [\"/ok\", \"[a-\"]\n",
        path: "modules[0].routes[1]", message: "invalid regular expression '[a-': expected ']'", line: 4),
    RuleCase(
        rule: "unknown ua_filter",
        toml: httpBind
            + "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nbind = \"3000\"\nroutes = [{ bind = \"http\", pattern = \"/\", ua_filter = \"robots\" }]\n",
        path: "fleet.web[0].routes[0].ua_filter",
        message: "unknown ua_filter 'robots'; expected browser, chromium, firefox, safari, llm, bot or ~REGEX"
    ),
    RuleCase(
        rule: "invalid custom User-Agent regex",
        toml: httpBind
            + "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nbind = \"3000\"\nroutes = [{ bind = \"http\", pattern = \"/\", ua_filter = \"~Agent(\" }]\n",
        path: "fleet.web[0].routes[0].ua_filter", message: "invalid User-Agent regex 'Agent(': expected ')'"),
    RuleCase(
        rule: "strip_prefix must be a path",
        toml: httpBind
            + "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nbind = \"3000\"\nroutes = [{ bind = \"http\", pattern = \"/api/.*\", strip_prefix = \"api\" }]\n",
        path: "fleet.web[0].routes[0].strip_prefix", message: "'api' must start with '/'"),

    // Addresses.
    RuleCase(
        rule: "listener address without a port", toml: "[mothership.bind]\nhttp = \"localhost\"\n",
        path: "mothership.bind.http",
        message: "invalid address 'localhost': 'localhost' has no port; expected host:port", line: 2),
    RuleCase(
        rule: "port out of range",
        toml: "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nbind = \"127.0.0.1:70000\"\n",
        path: "fleet.web[0].bind",
        message: "invalid address '127.0.0.1:70000': port '70000' is not a number from 1 to 65535",
        line: 4),
    RuleCase(
        rule: "relative unix socket path",
        toml: "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nbind = \"unix://tmp/app.sock\"\n",
        path: "fleet.web[0].bind",
        message:
            "invalid address 'unix://tmp/app.sock': unix socket path 'tmp/app.sock' must be absolute (unix:///path/to/app.sock)"
    ),
    RuleCase(
        rule: "unknown address scheme", toml: "[mothership.bind]\nhttp = \"udp://0.0.0.0:53\"\n",
        path: "mothership.bind.http",
        message: "invalid address 'udp://0.0.0.0:53': unknown scheme 'udp://'; expected tcp:// or unix://"),
    RuleCase(
        rule: "IPv6 without brackets", toml: "[mothership.bind]\nhttp = { addr = \"::1:8080\" }\n",
        path: "mothership.bind.http.addr",
        message:
            "invalid address '::1:8080': IPv6 addresses need brackets: write '::1:8080' as [host]:port, such as [::1]:8080"
    ),
    RuleCase(
        rule: "two listeners on one address",
        toml: "[mothership.bind]\nhttp = \"0.0.0.0:8080\"\nadmin = \"127.0.0.1:8080\"\n",
        path: "mothership.bind.admin", message: "binds 'http' and 'admin' both listen on 127.0.0.1:8080",
        line: 3),
    RuleCase(
        rule: "a ship bind taken by a listener",
        toml: httpBind + "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nbind = \"127.0.0.1:8080\"\n",
        path: "fleet.web[0].bind", message: "127.0.0.1:8080 is already used by bind 'http'", line: 6),
    RuleCase(
        rule: "a ship whose workers' ports reach another ship's bind",
        toml:
            "[[fleet.web]]\nname = \"web\"\ncommand = \"ruby\"\nbind = \"127.0.0.1:3000\"\nworkers = 2\n"
            + "[[fleet.web]]\nname = \"api\"\ncommand = \"ruby\"\nbind = \"127.0.0.1:3003\"\n",
        path: "fleet.web[1].bind", message: "127.0.0.1:3003 is already used by ship 'web'", line: 9),
    RuleCase(
        rule: "a listener inside a ship's worker ports",
        toml: httpBind
            + "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nbind = \"127.0.0.1:8079\"\nworkers = 1\n",
        path: "fleet.web[0].bind",
        message: "127.0.0.1:8080 (an address of its workers) is already used by bind 'http'", line: 6),
    RuleCase(
        rule: "workers out of range",
        toml: "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nworkers = 0\n",
        path: "fleet.web[0].workers", message: "must be between 1 and 64, not 0", line: 4),
    RuleCase(
        rule: "workers on a oneshot",
        toml: "[[fleet.jobs]]\nname = \"once\"\ncommand = \"ruby\"\noneshot = true\nworkers = 2\n",
        path: "fleet.jobs[0].workers", message: "oneshot 'once' runs once; it cannot have workers", line: 5),
    RuleCase(
        rule: "recycle_stuck without request_timeout",
        toml: "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nworkers = 2\nrecycle_stuck = true\n",
        path: "fleet.web[0].recycle_stuck",
        message: "ship 'app' recycles stuck instances only with a request_timeout (such as \"30s\")", line: 5),
    RuleCase(
        rule: "PORT set on a ship with workers",
        toml: "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nworkers = 2\nenv = { PORT = \"1\" }\n",
        path: "fleet.web[0].env.PORT",
        message: "ship 'app' has workers: mothership gives each instance its own PORT",
        line: 5),
    RuleCase(
        rule: "workers whose ports pass 65535",
        toml: "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nbind = \"127.0.0.1:65534\"\nworkers = 2\n",
        path: "fleet.web[0].workers",
        message: "ship 'app' needs ports 65534 to 65537 for 2 workers; that passes 65535", line: 5),
    RuleCase(
        rule: "bad trusted proxy range",
        toml:
            "[mothership.bind]\nlb = { addr = \"8080\", proxy_protocol = true, trusted_proxies = [\"10.0.0.0/33\"] }\n",
        path: "mothership.bind.lb.trusted_proxies[0]",
        message: "'10.0.0.0/33' is not an IP address or CIDR range such as 10.0.0.0/8"),
    RuleCase(
        rule: "metrics port out of range", toml: "[mothership]\nmetrics_port = 0\n",
        path: "mothership.metrics_port", message: "0 is not a port number from 1 to 65535", line: 2),
    RuleCase(
        rule: "no relay workers", toml: "[mothership]\nrelay_workers = 0\n",
        path: "mothership.relay_workers", message: "0 is not a number of relay threads from 1 to 256", line: 2
    ),
    RuleCase(
        rule: "log files without a directory", toml: "[mothership.logs]\nkeep = 2\n",
        path: "mothership.logs.dir", message: "missing required field 'dir' (the directory for log files)",
        line: 1),
    RuleCase(
        rule: "unknown log format", toml: "[mothership.logs]\ndir = \"log\"\nformat = \"xml\"\n",
        path: "mothership.logs.format", message: "unknown log format 'xml'; expected text or json", line: 3),
    RuleCase(
        rule: "log size without a unit it knows",
        toml: "[mothership.logs]\ndir = \"log\"\nmax_size = \"1 parsec\"\n",
        path: "mothership.logs.max_size",
        message:
            "'1 parsec' is not a size of at least 4KB; expected a number with a unit: \"100MB\", \"512KB\"",
        line: 3),
    RuleCase(
        rule: "no old log files kept", toml: "[mothership.logs]\ndir = \"log\"\nkeep = 0\n",
        path: "mothership.logs.keep", message: "0 is not a number of old files from 1 to 1000", line: 3),
    RuleCase(
        rule: "control socket not a path", toml: "[mothership]\ncontrol_socket = 5\n",
        path: "mothership.control_socket", message: "expected a path (a string) or false, found an integer",
        line: 2),
    RuleCase(
        rule: "control socket turned on without a path", toml: "[mothership]\ncontrol_socket = true\n",
        path: "mothership.control_socket", message: "expected a path (a string) or false, found a boolean",
        line: 2),
    RuleCase(
        rule: "control socket path too long",
        toml: "[mothership]\ncontrol_socket = \"/\(String(repeating: "s", count: 120))\"\n",
        path: "mothership.control_socket",
        message: "a Unix socket path is at most 107 bytes; this one has 121",
        line: 2),
    RuleCase(
        rule: "dashboard actions not a boolean", toml: "[mothership.dashboard]\nactions = \"yes\"\n",
        path: "mothership.dashboard.actions", message: "expected a boolean (true or false), found a string",
        line: 2),
    RuleCase(
        rule: "dashboard token too short", toml: "[mothership.dashboard]\nactions = true\ntoken = \"abc\"\n",
        path: "mothership.dashboard.token",
        message:
            "the token must be 16 to 256 visible ASCII characters (no spaces); this one has 3 character(s); use a long random value, e.g. `openssl rand -hex 24`",
        line: 3),

    // Durations and other typed values.
    RuleCase(
        rule: "bad duration",
        toml: "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nstart_timeout = \"5 parsecs\"\n",
        path: "fleet.web[0].start_timeout",
        message:
            "'5 parsecs' is not a duration; expected a number with a unit: \"500ms\", \"5s\", \"2m\", \"1h\"",
        line: 4),
    RuleCase(
        rule: "zero duration",
        toml: "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nstop_timeout = \"0s\"\n",
        path: "fleet.web[0].stop_timeout", message: "must be longer than zero"),
    RuleCase(
        rule: "duration of the wrong type",
        toml: "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nstop_timeout = true\n",
        path: "fleet.web[0].stop_timeout", message: "expected a duration such as \"5s\", found a boolean"),
    RuleCase(
        rule: "bad flagship timeout", toml: "[mothership.flagship]\nprelaunch_timeout = \"soon\"\n",
        path: "mothership.flagship.prelaunch_timeout",
        message: "'soon' is not a duration; expected a number with a unit: \"500ms\", \"5s\", \"2m\", \"1h\""),
    RuleCase(
        rule: "string expected", toml: "[[fleet.web]]\nname = 5\ncommand = \"ruby\"\n",
        path: "fleet.web[0].name", message: "expected a string, found an integer", line: 2),
    RuleCase(
        rule: "array of strings expected",
        toml: "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nargs = \"-p 3000\"\n",
        path: "fleet.web[0].args", message: "expected an array of strings, found a string"),
    RuleCase(
        rule: "non-string element in an array",
        toml: "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\ntags = [\"web\", 3]\n",
        path: "fleet.web[0].tags[1]", message: "expected a string, found an integer", line: 4),
    RuleCase(
        rule: "boolean expected",
        toml: "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\ncritical = \"no\"\n",
        path: "fleet.web[0].critical", message: "expected a boolean (true or false), found a string"),
    RuleCase(
        rule: "fleet group declared as a single table",
        toml: "[fleet.web]\nname = \"app\"\ncommand = \"ruby\"\n",
        path: "fleet.web", message: "expected an array of tables ([[fleet.web]]), found a table", line: 1),
    RuleCase(
        rule: "unknown stop signal",
        toml: "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nstop_signal = \"TERMINATE\"\n",
        path: "fleet.web[0].stop_signal",
        message: "unknown signal 'TERMINATE'; expected one of TERM, INT, QUIT, HUP, KILL, USR1, USR2, WINCH"),
    RuleCase(
        rule: "unknown module phase",
        toml: "[[modules]]\nname = \"m\"\nwasm = \"m.wasm\"\nphase = \"before\"\n",
        path: "modules[0].phase", message: "unknown phase 'before'; expected \"request\" or \"response\""),
    RuleCase(
        rule: "permessage_deflate must be a boolean",
        toml: "[[bays.websocket]]\nname = \"cable\"\ncommand = \"x\"\npermessage_deflate = \"off\"\n",
        path: "bays.websocket[0].permessage_deflate",
        message: "expected a boolean (true or false), found a string", line: 4),
    RuleCase(
        rule: "nested table in a bay config",
        toml: "[[bays.ws]]\nname = \"cable\"\ncommand = \"x\"\nconfig = { nested = { a = 1 } }\n",
        path: "bays.ws[0].config.nested", message: "expected a string, number or boolean, found a table"),
    RuleCase(
        rule: "array in env", toml: "[mothership.env]\nPATHS = [\"/bin\"]\n",
        path: "mothership.env.PATHS", message: "expected a string, number or boolean, found an array", line: 2
    ),
    RuleCase(
        rule: "negative rate limit", toml: "[mothership.rate_limiting]\nglobal_rps = -5\n",
        path: "mothership.rate_limiting.global_rps",
        message: "must be a positive number (leave it out for no limit)"),
    RuleCase(
        rule: "healthcheck without a bind",
        toml: "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nhealthcheck = \"/up\"\n",
        path: "fleet.web[0].healthcheck", message: "ship 'app' has a healthcheck but no bind to check it on",
        line: 4),
    RuleCase(
        rule: "healthcheck that is not a path",
        toml: "[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\nbind = \"3000\"\nhealthcheck = \"up\"\n",
        path: "fleet.web[0].healthcheck", message: "'up' must be an HTTP path starting with '/'"),

    // Static dirs.
    RuleCase(
        rule: "static prefix that is not a path",
        toml: "[[mothership.static_dirs]]\npath = \"public\"\nprefix = \"assets\"\n",
        path: "mothership.static_dirs[0].prefix", message: "'assets' must start with '/'", line: 3),
    RuleCase(
        rule: "static dir on an undeclared bind",
        toml: httpBind + "[[mothership.static_dirs]]\npath = \"public\"\nprefix = \"/\"\nbind = \"admin\"\n",
        path: "mothership.static_dirs[0].bind",
        message: "names bind 'admin', which is not declared in [mothership.bind]"),

    // Flagship and uplinks.
    RuleCase(
        rule: "static election without static_flagship",
        toml: "[mothership.flagship]\nenabled = true\nelection = \"static\"\n",
        path: "mothership.flagship.static_flagship",
        message:
            "missing required field 'static_flagship' (\"$MS_FLAGSHIP\" or { command = \"hostname\", equals = \"server-a\" })"
    ),
    RuleCase(
        rule: "postgres election without a url",
        toml: "[mothership.flagship]\nenabled = true\nelection = \"postgres\"\n",
        path: "mothership.flagship.election_url",
        message:
            "missing required field 'election_url' (a PostgreSQL URL, or election_uplink naming an uplink)"),
    RuleCase(
        rule: "election_uplink names an unknown uplink",
        toml:
            "[mothership.flagship]\nenabled = true\nelection = \"postgres\"\nelection_uplink = \"dbb\"\n[[mothership.uplinks]]\nname = \"db\"\nurl = \"postgres://localhost/app\"\n",
        path: "mothership.flagship.election_uplink", message: "names no uplink 'dbb'; did you mean 'db'?",
        line: 4),
    RuleCase(
        rule: "both election_url and election_uplink",
        toml:
            "[mothership.flagship]\nenabled = true\nelection = \"postgres\"\nelection_url = \"postgres://a/b\"\nelection_uplink = \"db\"\n[[mothership.uplinks]]\nname = \"db\"\nurl = \"postgres://localhost/app\"\n",
        path: "mothership.flagship.election_uplink", message: "set election_url or election_uplink, not both"),
    RuleCase(
        rule: "unknown election", toml: "[mothership.flagship]\nenabled = true\nelection = \"raft\"\n",
        path: "mothership.flagship.election",
        message: "unknown election 'raft'; expected \"static\" or \"postgres\""),
    RuleCase(
        rule: "election_url that is not PostgreSQL",
        toml:
            "[mothership.flagship]\nenabled = true\nelection = \"postgres\"\nelection_url = \"redis://cache:6379\"\n",
        path: "mothership.flagship.election_url", message: "'redis://cache:6379' is not a postgres:// URL"),
    RuleCase(
        rule: "uplink with an unsupported scheme",
        toml: "[[mothership.uplinks]]\nname = \"files\"\nurl = \"ftp://files.internal\"\n",
        path: "mothership.uplinks[0].url",
        message:
            "unsupported scheme 'ftp://'; expected postgres, postgresql, mysql, redis, memgraph, neo4j, http, https or tcp",
        line: 3),
    RuleCase(
        rule: "tcp uplink without a port",
        toml: "[[mothership.uplinks]]\nname = \"q\"\nurl = \"tcp://queue.internal\"\n",
        path: "mothership.uplinks[0].url", message: "'tcp://queue.internal' needs a port (tcp://host:port)"),
    RuleCase(
        rule: "uplink password is redacted in errors",
        toml:
            "[[mothership.uplinks]]\nname = \"db\"\nurl = \"postgres://app:hunter2@db.internal:99999/app\"\n",
        path: "mothership.uplinks[0].url",
        message: "port '99999' in 'postgres://app:***@db.internal:99999/app' is not a number from 1 to 65535"),
]

@Suite("Validation rules: each snippet gives its exact error")
struct ValidationRuleTests {
    @Test(arguments: ruleCases)
    func reportsTheError(_ rule: RuleCase) {
        let result = ManifestLoader.load(text: rule.toml, options: .init(selection: rule.selection))
        #expect(result.manifest == nil, "a manifest with errors must be refused")
        let match = result.diagnostics.first {
            $0.path.description == rule.path && $0.message == rule.message
        }
        #expect(
            match != nil,
            "expected \(rule.path): \(rule.message)\ngot:\n\(result.diagnostics.map(\.description).joined(separator: "\n"))"
        )
        #expect(match?.severity == .error)
        #expect(match?.position != nil, "every error carries a position")
        if let line = rule.line {
            #expect(match?.position?.line == line)
        }
    }

    @Test func reportsEveryProblemAtOnce() {
        let toml = """
            [mothership]
            metrics_port = 99999
            [[fleet.web]]
            name = "app"
            depend_on = ["x"]
            [[fleet.web]]
            name = "bad name"
            command = "x"
            """
        let result = ManifestLoader.load(text: toml)
        let paths = result.diagnostics.errors.map(\.path.description)
        #expect(
            paths == [
                "mothership.metrics_port", "fleet.web[0].command", "fleet.web[0].depend_on",
                "fleet.web[1].name",
            ])
    }

    @Test func syntaxErrorsCarryTheParsersPosition() {
        let result = ManifestLoader.load(text: "[mothership]\nmetrics_port = 9090\nname = \"unterminated\n")
        #expect(result.manifest == nil)
        let error = result.diagnostics.first
        #expect(error?.path.isRoot == true)
        #expect(error?.message.hasPrefix("invalid TOML: ") == true)
        #expect(error?.position?.line == 3)
    }

    @Test func duplicateKeysAreSyntaxErrors() {
        let result = ManifestLoader.load(text: "[[fleet.web]]\nname = \"a\"\nname = \"b\"\ncommand = \"x\"\n")
        #expect(result.diagnostics.first?.position?.line == 3)
    }
}
