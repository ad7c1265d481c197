import CMothershipSystem

#if canImport(Glibc)
    import Glibc
#endif

/// Spawns on the *calling* thread, outside the launcher: no spawn thread, no registration with the
/// reaper, output discarded. Only for checking the parent-death signal, which fires when the thread
/// that forked exits; the caller reaps the child itself.
package enum DirectSpawn {
    /// The child's pid, or nil when it could not be started.
    /// With `cgroup` (a cgroup directory), the child is in that cgroup before its exec.
    package static func spawn(
        path: String, arguments: [String], environment: [String] = [], cgroup: String? = nil
    ) -> Int32? {
        let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
        guard null >= 0 else { return nil }
        defer { close(null) }
        let argv = CStringArray([path] + arguments)
        let envp = CStringArray(environment)
        var pid: pid_t = 0
        var step: Int32 = 0
        let error = withOptionalCString(cgroup) { cCell in
            ms_spawn(path, argv.pointers, envp.pointers, "/", null, null, cCell, &pid, &step)
        }
        return error == 0 ? pid : nil
    }
}
