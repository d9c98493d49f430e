"""Times failed authentications of known and unknown key ids against one replica (see
scripts/bench-auth-timing). Each pair of requests — a known id with a wrong secret, an unknown id —
goes out in random order on one keep-alive connection; prints the two medians and their gap."""
import json
import random
import secrets
import socket
import statistics
import sys
import time

port, known_file, rounds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
known = [key.split("_")[1] for key in open(known_file).read().split()]


def connect():
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def timed(sock, key_id):
    """Sends one request with key id `key_id` and a random secret; the time to the whole answer."""
    request = (f"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk_{key_id}_{secrets.token_hex(32)}\r\n\r\n").encode()
    started = time.perf_counter_ns()
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    elapsed = time.perf_counter_ns() - started
    status = int(head.split(b" ")[1])
    assert status in (401, 429), head
    return elapsed / 1000


def unknown_id():
    return "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))


def run(label, known_ids, unknown_ids):
    sock = connect()
    samples = {"known": [], "unknown": []}
    for k, u in zip(known_ids, unknown_ids):
        pair = [("known", k), ("unknown", u)]
        random.shuffle(pair)
        for kind, key_id in pair:
            samples[kind].append(timed(sock, key_id))
    sock.close()
    a, b = statistics.median(samples["known"]), statistics.median(samples["unknown"])
    print(f"{label}: median known id {a:.1f} µs, unknown id {b:.1f} µs, gap {b - a:+.1f} µs "
          f"({len(samples['known'])} pairs)")


# Repeated ids: the attacker asks about the same id again and again (the probe's case).
one_known, one_unknown = known[0], unknown_id()
run("repeated ids", [one_known] * rounds, [one_unknown] * rounds)
# Fresh ids: each id seen for the first time (no cache on either side).
fresh = min(rounds, len(known) - 1)
run("fresh ids   ", known[1:1 + fresh], [unknown_id() for _ in range(fresh)])
