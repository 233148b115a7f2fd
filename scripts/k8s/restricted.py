"""Pod Security Standards, "restricted" profile (which includes "baseline"), checked on
rendered objects: every rule of the standard as of Kubernetes 1.30, plus the project's own
rule that every container's root filesystem is read-only.

Each check returns a list of problems, each naming the object, the container and the field.
"""

from render import containers_of, POD_TEMPLATE_KINDS

# Volume types the restricted profile allows.
ALLOWED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}
# Sysctls the baseline profile allows.
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SELINUX_TYPES = {None, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def pod_spec(obj):
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    if kind in POD_TEMPLATE_KINDS:
        return spec.get("template", {}).get("spec")
    return None


def check(obj):
    """The problems of one object (none for objects that hold no pod)."""
    spec = pod_spec(obj)
    if spec is None:
        return []
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    problems = []

    def problem(text):
        problems.append(f"{where}: {text}")

    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            problem(f"spec.{field} must not be true")
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            problem(f"volume {volume['name']}: type {sorted(kinds - ALLOWED_VOLUMES)} is not allowed")
    pod_sc = spec.get("securityContext") or {}
    for sysctl in pod_sc.get("sysctls", []):
        if sysctl.get("name") not in SAFE_SYSCTLS:
            problem(f"sysctl {sysctl.get('name')} is not in the safe set")
    problems.extend(f"{where}: {p}" for p in security_context_problems(pod_sc, "pod"))
    if pod_sc.get("runAsUser") == 0:
        problem("pod securityContext.runAsUser must not be 0")
    for container in containers_of(obj) + spec.get("ephemeralContainers", []):
        name = f"container {container.get('name')}"
        sc = container.get("securityContext") or {}
        problems.extend(f"{where}: {name}: {p}" for p in security_context_problems(sc, name))
        if sc.get("privileged"):
            problem(f"{name}: privileged must not be true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problem(f"{name}: securityContext.allowPrivilegeEscalation must be false")
        run_as_non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if run_as_non_root is not True:
            problem(f"{name}: runAsNonRoot must be true (on the pod or the container)")
        if sc.get("runAsUser") == 0:
            problem(f"{name}: securityContext.runAsUser must not be 0")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problem(f"{name}: seccompProfile.type must be RuntimeDefault or Localhost (on the pod or the container)")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problem(f"{name}: capabilities.drop must include ALL")
        added = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
        if added:
            problem(f"{name}: capabilities.add may hold only NET_BIND_SERVICE, not {sorted(added)}")
        for port in container.get("ports", []):
            if port.get("hostPort"):
                problem(f"{name}: hostPort {port['hostPort']} is not allowed")
        if sc.get("procMount", "Default") != "Default":
            problem(f"{name}: procMount must be Default")
        if sc.get("readOnlyRootFilesystem") is not True:
            problem(f"{name}: securityContext.readOnlyRootFilesystem must be true (project rule)")
    return problems


def security_context_problems(sc, what):
    out = []
    seccomp = (sc.get("seccompProfile") or {}).get("type")
    if seccomp == "Unconfined":
        out.append(f"{what}: seccompProfile.type must not be Unconfined")
    apparmor = (sc.get("appArmorProfile") or {}).get("type")
    if apparmor == "Unconfined":
        out.append(f"{what}: appArmorProfile.type must not be Unconfined")
    se = sc.get("seLinuxOptions") or {}
    if se.get("type") not in SELINUX_TYPES:
        out.append(f"{what}: seLinuxOptions.type {se.get('type')} is not allowed")
    if se.get("user") or se.get("role"):
        out.append(f"{what}: seLinuxOptions.user and .role must not be set")
    if (sc.get("windowsOptions") or {}).get("hostProcess"):
        out.append(f"{what}: windowsOptions.hostProcess must not be true")
    return out
