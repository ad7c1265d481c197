import ShipManifest

/// The environment a child gets: inherited from mothership, then `[mothership] env_file` and
/// `[mothership.env]` (merged in that order in `settings.environment`), then the vessel's `env_file`s
/// and the template's and the vessel's own `env` (merged in `Vessel.environment`), then what
/// mothership adds: `MS_PID`, `MS_SHIP`, `PORT` for a TCP-bound ship unless the manifest sets it, and
/// for bays `MS_SOCKET_DIR`, `MS_SOCKET_PATH`, `MS_BAY_TYPE`.
public enum VesselEnvironment {
    public static func build(
        inherited: [String: String], settings: MothershipSettings, vessel: Vessel, mothershipPID: Int32,
        socketDirectory: String?
    ) -> [String: String] {
        var environment = inherited
        environment.merge(settings.environment) { _, new in new }
        environment.merge(vessel.environment) { _, new in new }
        environment["MS_PID"] = String(mothershipPID)
        environment["MS_SHIP"] = vessel.name
        if let port = vessel.bind?.port, vessel.environment["PORT"] == nil,
            settings.environment["PORT"] == nil
        {
            environment["PORT"] = String(port)
        }
        if vessel.kind == .bay, let socketDirectory {
            environment["MS_SOCKET_DIR"] = socketDirectory
            environment["MS_SOCKET_PATH"] = socketPath(of: vessel.name, in: socketDirectory)
            environment["MS_BAY_TYPE"] = vessel.group
        }
        return environment
    }

    /// Where bay `name` binds its docking socket: `$MS_SOCKET_DIR/<name>.sock`, or for the other
    /// generation (a phased replacement that starts while the bay serves) `<name>.1.sock`.
    public static func socketPath(of name: String, in socketDirectory: String, generation: Int = 0)
        -> String
    {
        socketDirectory + "/" + name + (generation == 0 ? ".sock" : ".1.sock")
    }

    /// Prelaunch jobs: inherited, `[mothership.env]`, the job's `env`, `MS_PID` and `MS_SHIP` (job name).
    public static func build(
        inherited: [String: String], settings: MothershipSettings, job: PrelaunchJob, mothershipPID: Int32
    )
        -> [String: String]
    {
        var environment = inherited
        environment.merge(settings.environment) { _, new in new }
        environment.merge(job.environment) { _, new in new }
        environment["MS_PID"] = String(mothershipPID)
        environment["MS_SHIP"] = job.name
        return environment
    }
}
