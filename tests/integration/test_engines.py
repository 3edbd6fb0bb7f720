"""The lab's engines are the versions its inventory says (lab_engines), and the suite runs on a mixed lab."""

import subprocess

# lab_engine -> (the engine's version prefix, its API version)
EXPECTED = {
    "docker-20.10": ("20.10.", "1.41"),
    "docker-26.1": ("26.1.", "1.45"),
    # Podman 4.3's Docker-compatible API (the pod instance, playbooks/vars/lab_pod.yml).
    "podman": ("4.3.", "1.41"),
}


def test_every_engine_is_the_version_the_inventory_says(lab):
    seen = {}
    for host, hostvars in sorted(lab.hosts.items()):
        engine = hostvars["lab_engine"]
        version = lab.client(host).version()
        prefix, api = EXPECTED[engine]
        assert version["Version"].startswith(prefix) and version["ApiVersion"] == api, (host, engine, version)
        seen[host] = engine
    # The default lab (and the mix instance) runs both: the integration tests exercise Docker 20.10 and 26.1.
    assert {"docker-20.10", "docker-26.1"} <= set(seen.values()), seen


def test_docker_26_comes_unpacked_and_the_machine_keeps_its_own_docker_io(lab):
    status = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "docker.io"], stdout=subprocess.PIPE,
                            universal_newlines=True, check=True).stdout
    assert status.startswith("20.10."), status
    for host, hostvars in lab.hosts.items():
        if hostvars["lab_engine"] == "docker-26.1":
            # The engine's executable is the unpacked one, not the machine's /usr/sbin/dockerd.
            with open(lab.run_dir(host) + "/docker.pid") as handle:
                pid = int(handle.read())
            exe = subprocess.run(["readlink", "/proc/%d/exe" % pid], stdout=subprocess.PIPE, universal_newlines=True,
                                 check=True).stdout.strip()
            assert exe.endswith("/engines/docker-26.1/usr/sbin/dockerd"), (host, exe)
