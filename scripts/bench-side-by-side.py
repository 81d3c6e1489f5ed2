#!/usr/bin/env python3
"""Two facerec binaries side by side in one run (machines of one kind differ in speed, so only a
ratio measured together means anything): each serves its own SQLite database on loopback, and the
same requests go to both in turn, interleaved, for ROUNDS rounds. Prints the median of each and the
ratio NEW / OLD.

    scripts/bench-side-by-side.py OLD_BINARY NEW_BINARY [ROUNDS]    (default 20 rounds)

Requests: register a photo (a new person each round), recognize it (one face), recognize a group
photo (22 faces). Standard library only; run from the checkout (the binaries find vendor/ there).
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = os.path.join(ROOT, "vendor/fixtures/registry/vectron")
KEY = "side-by-side-bench-key-0123456789"


def start(binary, folder):
    env = dict(os.environ, FACEREC_LOG="error")
    env.pop("FACEREC_API_KEYS", None)
    process = subprocess.Popen(
        [binary, "serve", "--bind", "127.0.0.1:0", "--database-url", f"sqlite://{folder}/f.db",
         "--api-keys", KEY, "--rate-limit-per-minute", "0", "--workers", "2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    if not line.startswith("facerec listening on "):
        raise SystemExit(f"{binary} did not start: {line!r}")
    return process, line.split()[-1]


def post(url, fields, photo):
    boundary = uuid.uuid4().hex
    body = b""
    for name, value in fields.items():
        body += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode()
    with open(os.path.join(PHOTOS, photo), "rb") as f:
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{photo}\"\r\n"
                 "Content-Type: image/jpeg\r\n\r\n").encode() + f.read() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}", "X-API-Key": KEY})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as answer:
        answer.read()
        assert answer.status in (200, 201), answer.status
    return (time.perf_counter() - started) * 1000


def main():
    old, new = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        servers = {"old": start(old, a), "new": start(new, b)}
        cases = {
            "register yaoming.jpg (new person)": lambda url, i: post(
                f"{url}/v1/register", {"name": f"Person {i}", "consent": "true"}, "yaoming.jpg"),
            "recognize yaoming.jpg (1 face)": lambda url, i: post(f"{url}/v1/recognize", {}, "yaoming.jpg"),
            "recognize players.jpg (22 faces)": lambda url, i: post(f"{url}/v1/recognize", {}, "players.jpg"),
        }
        times = {(case, which): [] for case in cases for which in servers}
        for i in range(rounds + 2):
            for case, send in cases.items():
                for which, (_, url) in servers.items():
                    took = send(url, i)
                    if i >= 2:  # the first two rounds warm both up
                        times[(case, which)].append(took)
        for process, _ in servers.values():
            process.kill()
            process.wait()
    print(f"{'request':<36} {'old ms':>8} {'new ms':>8} {'new/old':>8}   ({rounds} rounds, medians)")
    for case in cases:
        o, n = statistics.median(times[(case, "old")]), statistics.median(times[(case, "new")])
        print(f"{case:<36} {o:>8.1f} {n:>8.1f} {n / o:>8.3f}")


if __name__ == "__main__":
    main()
