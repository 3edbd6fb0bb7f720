"""Move-disruption probe: one request every 10 ms to a service through its ambassador alias.

Run inside a consumer container's network namespace (nsenter --net), so that the
alias is resolved by that container's Docker DNS (127.0.0.11) exactly as the
container's own processes would, and connections go through its ambassador.
Keeps one connection open like a client pool; on any error it closes it, and the
next request resolves the alias and connects again (--fresh: a new connection
for every request, as the replicas section uses it: each one is balanced anew).
Stops by itself after --seconds, or at SIGTERM. Prints JSON: [[t, ok], ...] with t in seconds
since the start (--clock: the machine's monotonic clock, to compare with the
moments the caller noted).

python probe.py NAME PORT --seconds 20
"""

import argparse
import json
import random
import signal
import socket
import struct
import time

DNS = ("127.0.0.11", 53)


def resolve(name, timeout):
    """An A record of `name` from Docker's embedded DNS (a fresh query every time)."""
    qid = random.randint(0, 65535)
    query = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    query += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(timeout)
    try:
        sock.sendto(query, DNS)
        data = sock.recv(2048)
    finally:
        sock.close()
    answers = struct.unpack(">H", data[6:8])[0]
    pos = 12
    while data[pos] != 0:  # the question's name
        pos += data[pos] + 1
    pos += 5
    for _answer in range(answers):
        if data[pos] & 0xC0 == 0xC0:
            pos += 2
        else:
            while data[pos] != 0:
                pos += data[pos] + 1
            pos += 1
        rtype, _cls, _ttl, length = struct.unpack(">HHIH", data[pos:pos + 10])
        pos += 10
        if rtype == 1 and length == 4:
            return socket.inet_ntoa(data[pos:pos + 4])
        pos += length
    raise OSError("no A record for %s" % name)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("port", type=int)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--timeout", type=float, default=0.2)
    parser.add_argument("--fresh", action="store_true", help="a new connection for every request")
    parser.add_argument("--clock", action="store_true", help="t on the monotonic clock, not since the start")
    parser.add_argument("--why", action="store_true", help="a failed request's sample also says why: [t, false, why]")
    args = parser.parse_args()

    samples = []
    start = time.monotonic()
    # SIGTERM: the caller's way to stop it early (SIGINT may be ignored in a background job).
    signal.signal(signal.SIGTERM, _stop)
    try:
        _ask(args, samples, start)
    except Stopped:
        pass
    print(json.dumps(samples))


class Stopped(Exception):
    """SIGTERM came."""


def _stop(_signum, _frame):
    raise Stopped()


def _ask(args, samples, start):
    """Send requests until --seconds have passed, appending a sample for each to ``samples``."""
    conn = None
    tick = start
    n = 0
    while True:
        now = time.monotonic()
        if now - start > args.seconds:
            break
        n += 1
        ok, why = False, None
        try:
            if conn is None:
                conn = socket.create_connection((resolve(args.name, args.timeout), args.port), timeout=args.timeout)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            payload = b"req-%d\n" % n
            conn.sendall(payload)
            got = b""
            while len(got) < len(payload):
                chunk = conn.recv(64)
                if not chunk:
                    raise OSError("closed")
                got += chunk
            ok = got == payload
            why = None if ok else "wrong answer"
        except (OSError, ValueError, IndexError, struct.error) as exc:
            ok, why = False, "%s: %s" % (type(exc).__name__, exc)
        if (args.fresh or not ok) and conn is not None:
            conn.close()
            conn = None
        samples.append([round(now - (0 if args.clock else start), 4), ok] + ([why] if args.why and not ok else []))
        tick += args.interval
        delay = tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            tick = time.monotonic()
    if conn is not None:
        conn.close()


if __name__ == "__main__":
    main()
