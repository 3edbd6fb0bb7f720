# -*- coding: utf-8 -*-
# Copyright (c) crosshost.ambassador contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Private to crosshost.ambassador: not for use by other collections.
"""How an ambassador container forwards its ports: one function per data plane.

Plain functions over plain data: no Ansible, no Docker. Given the data plane,
the protocol, the ports (listen port -> target port), the target (a
container name or an address), the peers allowed in and the TLS role,
:func:`ambassador_process` returns what the ambassador container runs: its
entrypoint, command, whether it needs an init process, the capabilities it
adds and the sysctls of its network namespace.

* ``socat`` (the default): one socat per port, forking a process per
  connection, in user space. Needs no privilege. The listen backlog is raised
  (socat's default of 5 drops SYNs when many clients connect at once, which
  stalls them for a second or more in SYN retransmission), Nagle is turned
  off on both sockets (the ambassador must not delay small writes that the
  client already sent without delay) and socat reads up to 64 KiB at once.
  It alone can speak mutual TLS on the network side.
* ``kernel``: no process on the data path. The ambassador's own network
  namespace forwards in the kernel: iptables DNAT of the listened ports to the
  target, MASQUERADE of what goes there. Needs ``NET_ADMIN`` (in that
  namespace only) and ``net.ipv4.ip_forward=1`` there, and an image with
  ``/bin/sh``, ``iptables-restore`` and ``getent``. A small shell loop
  resolves the target (a container name on the provider side) and swaps the
  rules atomically when its address changes. Allowed peers are ``-s`` matches
  of the DNAT rules: anyone else reaches no listener and is refused. They are
  delivered as a file (:data:`ALLOW_FILE`) that the same loop reads again, so
  that a consumer host added or taken out changes no container's spec.

  It alone balances a service on several hosts (:func:`balanced_process`): the
  consumer-side ambassador DNATs each new connection to one healthy replica
  (``statistic`` matches spread them in turn; ``failover`` takes the first), and
  its own loop health-checks every replica with a TCP connect (busybox ``nc`` and
  ``timeout``) and rewrites the rules when a replica falls or rises. Open connections keep
  their replica (conntrack): a change of the healthy set cuts none of them.
"""

from __future__ import annotations

import re
import shlex

DATAPLANES = ("socat", "kernel")
DEFAULT_DATAPLANE = "socat"
# The data planes that can balance a service across several hosts, the first the default for one.
BALANCING_DATAPLANES = ("kernel",)

# socat: listen queue for simultaneous connects (the kernel caps it at net.core.somaxconn).
SOCAT_BACKLOG = 4096
# socat: bytes read at once (default 8192).
SOCAT_BUFFER = 65536

# kernel: the chains the ambassador owns in its namespace's nat table.
KERNEL_CHAIN_PRE = "XHA_PRE"
KERNEL_CHAIN_POST = "XHA_POST"
KERNEL_CAPABILITIES = ["NET_ADMIN"]
KERNEL_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    # Forwarded packets leave by the interface they came in on: meant to stop ICMP redirects to
    # clients. eth0 exists before these apply and keeps its own send_redirects=1, so a few
    # rate-limited redirects still go out (harmless: bench/README.md, "Kernel plane profile").
    "net.ipv4.conf.all.send_redirects": "0",
    "net.ipv4.conf.default.send_redirects": "0",
}
# A balancing ambassador's namespace forgets a connection attempt that got no answer after this many
# seconds (the kernel's default is 120). Until then a new connection from the same client address and port
# is taken for that attempt and sent where it went, even to a replica since taken out: clients reuse the
# port of an attempt that failed, and did so within 42 s on the bench (README, "What misses": late failed
# requests). 3 s keeps an attempt on its replica through the client's first two SYN retransmissions (after
# 1 s, then 2 s more); the next, 4 s later, is balanced afresh, to a healthy replica. (An attempt that was
# refused needs nothing: the kernel takes a new SYN on its port for a new connection.)
BALANCED_SYN_SENT_TIMEOUT = 3
BALANCED_SYSCTLS = dict(KERNEL_SYSCTLS, **{
    "net.netfilter.nf_conntrack_tcp_timeout_syn_sent": str(BALANCED_SYN_SENT_TIMEOUT)})
# Seconds between re-resolutions of the target once forwarding (and while it is unresolved).
KERNEL_RESOLVE_EVERY = 2
KERNEL_RETRY_EVERY = 0.2


# Mutual TLS (socat only): each host's CA certificate, certificate and key, mounted here.
TLS_MOUNT = "/tls"
# socat's options for those files: present our certificate, demand one from the same CA.
TLS_OPTIONS = "cert=%s/cert.pem,key=%s/key.pem,cafile=%s/ca.pem,verify=1" % (TLS_MOUNT, TLS_MOUNT, TLS_MOUNT)


def _bracket(host):
    return "[%s]" % host if ":" in host else host  # an IPv6 literal


# What a provider-side ambassador logs when the allow-list refuses a connection: socat's own warning
# for range= ("W refusing connection from AF=2 10.0.0.9:41234 due to range option"), and the same
# words from the shell check of several peers.
REFUSAL_ECHO = 'echo "W refusing connection from $SOCAT_PEERADDR:$SOCAT_PEERPORT due to the allow-list" >&2'
_REFUSAL = re.compile(r"refusing connection from (?:AF=[0-9]+ )?\[?([0-9A-Fa-f.:]+?)\]?:[0-9]+ due to")


def refused_sources(log_text):
    """The source addresses a provider-side ambassador's log says it refused, in order, each once."""
    found = []
    for address in _REFUSAL.findall(log_text):
        if address not in found:
            found.append(address)
    return found


def _socat_escape(text):
    """Escape what socat's address parser would take for itself (':' ',' ';' brackets...)."""
    for char in "\\:,;!()[]{}'\"":
        text = text.replace(char, "\\" + char)
    return text


def socat_forward(protocol, listen_port, target_host, target_port, allow=(), tls_role=None):
    """The two socat addresses that forward one port, accepting only peers in ``allow``.

    ``tls_role`` makes the network side mutual TLS: ``"server"`` on a provider-side
    ambassador (it listens with its certificate and demands a client certificate
    from the same CA), or the provider's inventory hostname on a consumer-side
    one (it connects with its certificate and checks the provider's name).

    One allowed peer is checked by socat itself (``range=``); several by a shell
    test of the peer address socat hands to the forked child, which then
    becomes the socat that connects on (a refused peer sees its connection
    closed at once). An empty
    ``allow`` accepts every peer (consumer-side ambassadors, reached only on
    their host's network).
    """
    target = _bracket(target_host)
    if protocol == "udp":
        listen = "UDP-RECVFROM:%d,fork,reuseaddr" % listen_port
        connect = "UDP-SENDTO:%s:%d" % (target, target_port)
    else:
        if tls_role == "server":
            listen = "OPENSSL-LISTEN:%d,fork,reuseaddr,backlog=%d,nodelay,%s" % (listen_port, SOCAT_BACKLOG,
                                                                                 TLS_OPTIONS)
        else:
            listen = "TCP-LISTEN:%d,fork,reuseaddr,backlog=%d,nodelay" % (listen_port, SOCAT_BACKLOG)
        if tls_role and tls_role != "server":
            connect = "OPENSSL:%s:%d,nodelay,%s,commonname=%s" % (target, target_port, TLS_OPTIONS, tls_role)
        else:
            connect = "TCP:%s:%d,nodelay" % (target, target_port)
    allow = sorted(set(allow))
    if len(allow) == 1:
        listen += ",range=%s/%d" % (_bracket(allow[0]), 128 if ":" in allow[0] else 32)
    elif allow:
        test = " -o ".join("$SOCAT_PEERADDR = %s" % peer for peer in allow)
        # A refused peer is logged as socat logs a range refusal (see refused_sources).
        connect = "SYSTEM:" + _socat_escape("test %s && exec socat -b %d - %s; %s"
                                            % (test, SOCAT_BUFFER, connect, REFUSAL_ECHO))
        if protocol == "tcp" and tls_role != "server":
            # The checked socat takes over the accepted connection itself (nofork): one process
            # and one copy per connection, as with one peer. TLS and UDP need the listener's socat
            # in between.
            connect += ",nofork"
    return [listen, connect]


def _socat(protocol, ports, target, allow, tls_role):
    """One forward runs socat as the container's process (as ``alpine/socat`` is meant to be
    used); several run under ``/bin/sh`` with an init process, so that a stop signal reaches
    every socat. With an allow-list, socat logs warnings (``-d``): a refused peer is then in the
    ambassador's log, where ``probe`` finds it."""
    forwards = [socat_forward(protocol, listen, target, port, allow, tls_role) for listen, port in ports]
    warn = ["-d"] if allow else []
    if len(forwards) == 1:
        return {"entrypoint": ["socat"], "command": warn + ["-b", str(SOCAT_BUFFER)] + forwards[0], "init": False,
                "cap_add": [], "sysctls": {}}
    script = " & ".join("socat %s-b %d %s %s" % ("-d " if allow else "", SOCAT_BUFFER, shlex.quote(listen),
                                                 shlex.quote(connect))
                        for listen, connect in forwards) + " & wait"
    return {"entrypoint": ["/bin/sh", "-c"], "command": [script], "init": True, "cap_add": [], "sysctls": {}}


def kernel_rules(protocol, ports):
    """The ``iptables-restore --noflush`` input that (re)writes the ambassador's chains, with
    ``$ip`` standing for the target's address (filled in by the shell)."""
    lines = ["*nat", ":%s - [0:0]" % KERNEL_CHAIN_PRE, ":%s - [0:0]" % KERNEL_CHAIN_POST]
    for listen, port in ports:
        lines.append("-A %s -p %s --dport %d -j DNAT --to-destination $ip:%d" % (KERNEL_CHAIN_PRE, protocol, listen, port))
    for _listen, port in ports:
        lines.append("-A %s -p %s -d $ip --dport %d -j MASQUERADE" % (KERNEL_CHAIN_POST, protocol, port))
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def allowed_rules(protocol, ports):
    """The shell function ``rules`` of a kernel ambassador with an allow-list: given the target's address,
    then the allowed peers, it prints the ``iptables-restore --noflush`` input that forwards only those
    peers (none: nothing is forwarded)."""
    lines = ["rules() {",
             "  ip=$1; shift",
             "  printf '*nat\\n:%s - [0:0]\\n:%s - [0:0]\\n'" % (KERNEL_CHAIN_PRE, KERNEL_CHAIN_POST),
             "  for a in \"$@\"; do"]
    lines += ["    echo \"-A %s -s $a/32 -p %s --dport %d -j DNAT --to-destination $ip:%d\""
              % (KERNEL_CHAIN_PRE, protocol, listen, port) for listen, port in ports]
    lines += ["  done"]
    lines += ["  echo \"-A %s -p %s -d $ip --dport %d -j MASQUERADE\"" % (KERNEL_CHAIN_POST, protocol, port)
              for _listen, port in ports]
    lines += ["  echo COMMIT", "}"]
    return lines


def _kernel_hooks():
    """The shell line that creates the ambassador's chains and hooks them in, or ends the container."""
    hooks = " && ".join(
        "{ iptables -t nat -C %s -j %s 2>/dev/null || iptables -t nat -A %s -j %s; }" % (hook, chain, hook, chain)
        for hook, chain in (("PREROUTING", KERNEL_CHAIN_PRE), ("POSTROUTING", KERNEL_CHAIN_POST)))
    return ("printf '*nat\\n:%s - [0:0]\\n:%s - [0:0]\\nCOMMIT\\n' | iptables-restore --noflush && %s "
            "|| { echo 'crosshost.ambassador: cannot set up iptables (NET_ADMIN missing?)' >&2; exit 1; }"
            % (KERNEL_CHAIN_PRE, KERNEL_CHAIN_POST, hooks))


_RESOLVE = ("resolve() { case $1 in *[!0-9.]*) getent ahostsv4 \"$1\" | awk 'NR==1{print $1}' ;; *) echo \"$1\" ;; "
            "esac; }")


def _forwarding_echo(protocol, ports):
    return "echo \"crosshost.ambassador: forwarding %s %s to $target ($ip)\"" % (
        protocol, " ".join("%d->%d" % lp for lp in ports))


# The kernel ambassadors' loops: how long they wait between two rounds, once forwarding and before.
_KERNEL_SLEEP = "  if [ -n \"$cur\" ]; then sleep %s; else sleep %s; fi" % (KERNEL_RESOLVE_EVERY, KERNEL_RETRY_EVERY)


def kernel_script(protocol, ports, target):
    """The shell program of a kernel ambassador that lets everyone in: hook its chains in, then keep them
    pointing at the target's current address (with an allow-list: :func:`allowed_script`)."""
    return "\n".join([
        "set -u",
        "target='%s'" % target,
        "rules() { ip=$1; cat <<EOF",
        kernel_rules(protocol, ports).rstrip("\n"),
        "EOF",
        "}",
        _RESOLVE,
        _kernel_hooks(),
        "cur=",
        "while :; do",
        "  ip=$(resolve \"$target\" 2>/dev/null)",
        "  if [ -n \"$ip\" ] && [ \"$ip\" != \"$cur\" ] && rules \"$ip\" | iptables-restore --noflush; then",
        "    %s; cur=$ip" % _forwarding_echo(protocol, ports),
        "  fi",
        _KERNEL_SLEEP,
        "done",
    ]) + "\n"


def allowed_script(protocol, ports, target):
    """The shell program of a provider-side kernel ambassador with an allow-list: :func:`kernel_script`'s
    loop, which also reads :data:`ALLOW_FILE` (waiting for it at start) and rewrites the rules, atomically,
    when the list or the target's address changed; each list it takes is logged (:data:`ALLOW_LOG`). A
    peer taken out gets no new connection; those it has open stay (conntrack), until its own ambassador goes.
    """
    head = ["set -u", "target='%s'" % target] + _load_function(ALLOW_FILE) + allowed_rules(protocol, ports)
    return "\n".join(head + [
        _RESOLVE,
        _kernel_hooks(),
        "until load; do sleep %s; done" % KERNEL_RETRY_EVERY,
        # "-": no list taken yet (no peer address is a single dash).
        "cur=; allow=-",
        "while :; do",
        "  ip=$(resolve \"$target\" 2>/dev/null); [ -n \"$ip\" ] || ip=$cur",
        "  if load; then next=$want; else next=$allow; fi",
        # No address yet: no rules exist, nothing is forwarded; the list is taken as it is.
        "  if [ -z \"$ip\" ]; then",
        "    [ \"$next\" = \"$allow\" ] || { allow=$next; echo \"%s${allow:-none}\"; }" % ALLOW_LOG,
        "  elif { [ \"$ip\" != \"$cur\" ] || [ \"$next\" != \"$allow\" ]; } && rules \"$ip\" $next | iptables-restore --noflush; then",
        "    [ \"$ip\" = \"$cur\" ] || %s" % _forwarding_echo(protocol, ports),
        "    [ \"$next\" = \"$allow\" ] || echo \"%s${next:-none}\"" % ALLOW_LOG,
        "    cur=$ip; allow=$next",
        "  fi",
        _KERNEL_SLEEP,
        "done",
    ]) + "\n"


def _kernel(script, sysctls=None):
    """A kernel ambassador's process: ``script`` run by ``/bin/sh`` with an init, allowed to program iptables,
    in a namespace with ``sysctls`` (default :data:`KERNEL_SYSCTLS`)."""
    return {
        "entrypoint": ["/bin/sh", "-c"],
        "command": [script],
        "init": True,
        "cap_add": list(KERNEL_CAPABILITIES),
        "sysctls": dict(sysctls or KERNEL_SYSCTLS),
    }


# What a balancing ambassador logs each time the set of replicas it forwards to changes (and at start):
# HEALTHY_LOG + the replicas' addresses, separated by spaces, or "none". healthy_replicas() reads it back.
HEALTHY_LOG = "crosshost.ambassador: healthy replicas: "


def _last_logged(log_text, prefix):
    """The words after ``prefix`` on the last line of ``log_text`` (oldest first) that has it; None if none has."""
    found = None
    for line in log_text.splitlines():
        at = line.find(prefix)
        if at >= 0:
            found = line[at + len(prefix):].split()
    return found


def healthy_replicas(log_text):
    """The replicas a balancing ambassador forwards to, as its log (oldest first) last said; None if it never did."""
    found = _last_logged(log_text, HEALTHY_LOG)
    return [] if found == ["none"] else found


def _seconds(value):
    return "%g" % value


def balanced_rules(ports):
    """The shell function ``rules`` of a balancing ambassador: given the replicas to use as its
    arguments, it prints the ``iptables-restore --noflush`` input that spreads new connections
    across them in turn (the first rule takes every n-th, the next every (n-1)-th of the rest...,
    the last the rest)."""
    lines = ["rules() {",
             "  printf '*nat\\n:%s - [0:0]\\n:%s - [0:0]\\n'" % (KERNEL_CHAIN_PRE, KERNEL_CHAIN_POST)]
    for listen, port in ports:
        lines += ["  k=$#",
                  "  for a in \"$@\"; do",
                  "    if [ \"$k\" -gt 1 ]; then m=\"-m statistic --mode nth --every $k --packet 0 \"; else m=; fi",
                  "    echo \"-A %s -p tcp --dport %d ${m}-j DNAT --to-destination $a:%d\"; k=$((k - 1))"
                  % (KERNEL_CHAIN_PRE, listen, port),
                  "  done"]
    lines += ["  for a in \"$@\"; do"]
    lines += ["    echo \"-A %s -p tcp -d $a --dport %d -j MASQUERADE\"" % (KERNEL_CHAIN_POST, port)
              for port in sorted(set(port for _listen, port in ports))]
    lines += ["  done", "  echo COMMIT", "}"]
    return lines


# Where a consumer-side ambassador of a service on several hosts reads its replicas' addresses. They are
# delivered to the container (put in its file system, ``_engine.Engine.put_files``) before it starts and
# whenever they change, and are not part of its spec: a change of the replica set neither recreates it nor
# cuts the connections open through it. The file lives in the container's own writable layer, so it
# survives a restart of the container or of its engine.
REPLICAS_FILE = "/etc/crosshost-ambassador-replicas"
# What a balancing ambassador logs when it adopts a replica list (at start, and on each delivery).
REPLICAS_LOG = "crosshost.ambassador: replicas: "
# Where a provider-side kernel ambassador reads the peers it lets in, delivered the same way: a consumer
# host added or taken out changes the file, not the container (:func:`allowed_script`).
ALLOW_FILE = "/etc/crosshost-ambassador-allow"
# What it logs when it takes an allow-list (at start, and on each delivery): the peers, or "none".
ALLOW_LOG = "crosshost.ambassador: allowed peers: "
# The delivered files, each with the line its ambassador logs once it took the file's list.
DELIVERED_LOGS = {REPLICAS_FILE: REPLICAS_LOG, ALLOW_FILE: ALLOW_LOG}
# Each delivered file is one line: the addresses, then this word (a file read while it is being written
# lacks it, and is read again later).
ADDRESSES_END = "end"


def addresses_text(addresses):
    """The content of a delivered file (:data:`DELIVERED_LOGS`) listing ``addresses``, in order."""
    return " ".join(list(addresses) + [ADDRESSES_END]) + "\n"


def addresses_of(text):
    """The addresses a delivered file's ``text`` lists; None when it is incomplete or absent."""
    words = (text or "").split()
    return words[:-1] if words and words[-1] == ADDRESSES_END else None


def adopted(log_text, path):
    """The list from the delivered file ``path`` that its ambassador last took, as its log (oldest first)
    says; None if it says none."""
    found = _last_logged(log_text, DELIVERED_LOGS[path])
    return [] if found == ["none"] else found


def allow_files(dataplane, allow):
    """The delivered files of a provider-side ambassador letting in only ``allow``: the kernel plane reads
    them from :data:`ALLOW_FILE`; socat has them in its command (and none: everyone is let in)."""
    if dataplane != "kernel" or not allow:
        return {}
    return {ALLOW_FILE: addresses_text(sorted(set(allow)))}


def allow_change(before_text, after_text):
    """``(peers let in, peers taken out)`` by a delivered allow-list (texts of :data:`ALLOW_FILE`), sorted."""
    before, after = set(addresses_of(before_text) or ()), set(addresses_of(after_text) or ())
    return sorted(after - before), sorted(before - after)


def _load_function(path):
    """The shell function ``load``: the list in the delivered file ``path`` in $want; fails while the file is
    absent or half written."""
    return [
        "load() {",
        "  got=$(cat %s 2>/dev/null) || return 1" % path,
        "  set -- $got",
        "  [ $# -gt 0 ] || return 1",
        "  eval \"last=\\${$#}\"",
        "  [ \"$last\" = %s ] || return 1" % ADDRESSES_END,
        "  want=",
        "  while [ $# -gt 1 ]; do want=\"$want $1\"; shift; done",
        "  want=${want# }",
        "}",
    ]


def balanced_script(ports, balance, health):
    """The shell program of a consumer-side ambassador of a service on several hosts.

    It reads its replicas from :data:`REPLICAS_FILE` (waiting for it at start), and again before each
    round of checks: a new list is adopted at once, each replica that stays keeps its state, a new one
    starts healthy, and the rules are rewritten; connections already open keep their replica.
    Every ``health["interval"]`` seconds it connects to each replica's first port at once (busybox's
    ``nc ... -e true``: connect, then close; cut off by ``timeout`` after ``health["timeout"]`` seconds);
    a replica that failed ``fall`` checks in a row is taken out, one that passed ``rise`` in a row comes
    back; every replica starts healthy. Each
    change rewrites the rules atomically (``iptables-restore --noflush``) and is logged (see
    :data:`HEALTHY_LOG`). With no healthy replica, nothing is forwarded: connections are refused.
    """
    check_port = ports[0][1]
    return "\n".join([
        "set -u",
        "replicas=",
    ] + _load_function(REPLICAS_FILE) + [
        # adopt: $want becomes the replica list; a replica that stays keeps its state, a new one starts up.
        "adopt() {",
        "  i=0",
        "  for r in $want; do",
        "    u=1; j=0",
        "    for o in $replicas; do [ \"$o\" = \"$r\" ] && eval \"u=\\$up_$j\"; j=$((j + 1)); done",
        "    eval \"new_$i=$u\"; i=$((i + 1))",
        "  done",
        "  i=0",
        "  for r in $want; do eval \"up_$i=\\$new_$i ok_$i=0 bad_$i=0\"; i=$((i + 1)); done",
        "  replicas=$want",
        "  echo \"%s$replicas\"" % REPLICAS_LOG,
        "}",
    ] + balanced_rules(ports) + [
        "use() {",
        "  %s" % ('[ $# -gt 1 ] && set -- "$1"' if balance == "failover" else ":"),
        "  rules \"$@\" | iptables-restore --noflush",
        "}",
        _kernel_hooks(),
        "until load; do sleep 0.2; done",
        "adopt",
        "healthy=$replicas",
        "use $healthy || { echo 'crosshost.ambassador: cannot set the forwarding rules' >&2; exit 1; }",
        "echo \"%s$healthy\"" % HEALTHY_LOG,
        "while :; do",
        "  if load && [ \"$want\" != \"$replicas\" ]; then adopt; fi",
        "  pids=",
        "  for r in $replicas; do",
        # In a subshell that exits by itself: a check killed by its timeout is not reported as "Terminated".
        "    (timeout %s nc \"$r\" %d -e true </dev/null >/dev/null 2>&1; s=$?; exit $s) & pids=\"$pids $!\""
        % (_seconds(health["timeout"]), check_port),
        "  done",
        "  sleep %s" % _seconds(health["interval"]),
        "  now=; i=0",
        "  for p in $pids; do",
        "    set -- $replicas; shift $i; r=$1",
        "    if wait \"$p\"; then eval \"ok_$i=\\$((ok_$i + 1)) bad_$i=0\"; else eval \"bad_$i=\\$((bad_$i + 1)) ok_$i=0\"; fi",
        "    eval \"up=\\$up_$i ok=\\$ok_$i bad=\\$bad_$i\"",
        "    if [ \"$up\" = 1 ] && [ \"$bad\" -ge %d ]; then up=0; echo \"crosshost.ambassador: replica $r is down: "
        "$bad checks failed\"; fi" % health["fall"],
        "    if [ \"$up\" = 0 ] && [ \"$ok\" -ge %d ]; then up=1; echo \"crosshost.ambassador: replica $r is up: "
        "$ok checks passed\"; fi" % health["rise"],
        "    eval \"up_$i=$up\"; [ \"$up\" = 1 ] && now=\"$now $r\"; i=$((i + 1))",
        "  done",
        "  now=${now# }",
        "  if [ \"$now\" != \"$healthy\" ] && use $now; then healthy=$now; echo \"%s${healthy:-none}\"; fi"
        % HEALTHY_LOG,
        "done",
    ]) + "\n"


def balanced_process(dataplane, ports, balance, health):
    """What a consumer-side ambassador of a tcp service on several hosts runs: see :func:`balanced_script`.
    Its replicas are not in it: they are delivered as :data:`REPLICAS_FILE` (:func:`addresses_text`).

    :param ports: ``[(listen_port, published_port), ...]``, the same on every replica.
    :param balance: ``round_robin`` or ``failover``.
    :param health: ``{interval, timeout, fall, rise}``.
    """
    if dataplane not in BALANCING_DATAPLANES:
        raise ValueError("the %s data plane cannot balance" % dataplane)
    return _kernel(balanced_script(ports, balance, health), BALANCED_SYSCTLS)


# A replaced ambassador's watch: seconds between two lookups of its name.
REPLACED_WATCH_EVERY = 0.5


def replaced_watch(name, every=REPLACED_WATCH_EVERY):
    """The shell program that makes an ambassador being replaced side by side stop by itself.

    ``apply`` renames the old ambassador, sets its restart policy to ``no`` and starts this
    program in it, then creates the new ambassador under ``name`` (the same network alias), then
    removes the old one. Both answer to the alias between the last two steps. If the run dies
    there, this program ends the overlap without the controller: once ``name`` resolves (Docker's
    DNS) to an address that is not the old ambassador's own, it sends SIGTERM to the container's
    first process, which stops the container. When ``name`` resolves to the old ambassador itself
    again (the replacement was undone), it ends. Needs ``/bin/sh``, ``awk`` and ``getent`` or
    busybox's ``nslookup`` in the image.
    """
    return "\n".join([
        "name='%s'" % name,
        "me=$(awk -v h=\"$(cat /etc/hostname)\" '$2 == h {print $1}' /etc/hosts)",
        "ipv4='/^[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+$/'",
        "resolve() {",
        "  if command -v getent >/dev/null 2>&1; then getent hosts \"$1\" | awk '{print $1}'",
        "  else nslookup \"$1\" 2>/dev/null | awk '/^Name:/ {f = 1; next} f {for (i = 2; i <= NF; i++) print $i}'",
        "  fi | awk \"$ipv4\"",
        "}",
        "while sleep %s; do" % every,
        "  ips=$(resolve \"$name\")",
        "  [ -n \"$ips\" ] || continue",
        "  for ip in $ips; do case \" $(echo $me) \" in *\" $ip \"*) exit 0 ;; esac; done",
        "  kill -TERM 1; exit 0",
        "done",
    ]) + "\n"


def ambassador_process(dataplane, protocol, ports, target, allow=(), tls_role=None):
    """What an ambassador container runs to forward ``ports`` to ``target``.

    :param dataplane: one of :data:`DATAPLANES`.
    :param protocol: ``tcp`` or ``udp``.
    :param ports: ``[(listen_port, target_port), ...]``.
    :param target: the container name or address (IPv4, IPv6 or DNS name) forwarded to.
    :param allow: the only peer addresses let in (provider side); empty lets everyone in. The kernel
        plane reads them from :data:`ALLOW_FILE` (:func:`allow_files`), not from its command.
    :param tls_role: ``"server"``, the provider's hostname (consumer side), or None: see
        :func:`socat_forward`. The kernel plane cannot (the planner refuses it).
    :returns: ``{"entrypoint", "command", "init", "cap_add", "sysctls"}``.
    """
    if dataplane == "kernel":
        if tls_role:
            raise ValueError("the kernel data plane cannot speak TLS")
        script = allowed_script(protocol, ports, target) if allow else kernel_script(protocol, ports, target)
        return _kernel(script)
    if dataplane != "socat":
        raise ValueError("unknown data plane %r" % (dataplane,))
    return _socat(protocol, ports, target, allow, tls_role)
