#!/usr/bin/env python3
"""The security review's attacks, redone against a facerec binary on loopback, each bounded in count
and time; prints one line per attack with what the server did and what it cost.

    scripts/bench-attacks.py [BINARY]     (default: the release binary cargo builds)

Standard library only. Every server runs on 127.0.0.1 with its own SQLite folder, and is stopped at
the end of its attack. docs/BENCHMARKS.md has the table, beside the review's numbers on 40fdbb9.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "attack-bench-key-0123456789"
PHOTO = os.path.join(ROOT, "vendor/fixtures/registry/vectron/yaoming.jpg")


def binary_path():
    if len(sys.argv) > 1:
        return sys.argv[1]
    target = subprocess.check_output([os.path.join(ROOT, "scripts/target-dir.sh")], text=True).strip()
    return os.path.join(target, "release/facerec")


class Server:
    def __init__(self, *args, ulimit=None):
        self.dir = tempfile.TemporaryDirectory()
        command = [binary_path(), "serve", "--bind", "127.0.0.1:0",
                   "--database-url", f"sqlite://{self.dir.name}/f.db", *args]
        if ulimit:
            command = ["sh", "-c", f"ulimit -S -n {ulimit} && exec \"$@\"", "sh", *command]
        env = dict(os.environ, FACEREC_LOG="error")
        env.pop("FACEREC_API_KEYS", None)
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline()
        if not line.startswith("facerec listening on "):
            raise SystemExit(f"the server did not start: {line!r}")
        self.url = line.split()[-1]
        self.port = int(self.url.rsplit(":", 1)[1])
        # Through `sh -c … exec`, the pid is the server's too.
        self.pid = self.process.pid

    def memory_mib(self, field):
        """`VmRSS` (now) or `VmHWM` (the peak so far) of the server, in MiB."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def request(self, method, path, body=b"", headers=None):
        headers = {"Host": "127.0.0.1", "Content-Length": str(len(body)), **(headers or {})}
        request = urllib.request.Request(self.url + path, data=body or None, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def stop(self):
        self.process.kill()
        self.process.wait()
        self.dir.cleanup()


def status_of(sock):
    """The status of the first answer on a socket (None: closed or silent for 5 s)."""
    sock.settimeout(5)
    try:
        head = sock.recv(64)
    except OSError:
        return None
    parts = head.split()
    return int(parts[1]) if len(parts) > 1 and parts[0].startswith(b"HTTP/") else None


def report(attack, result):
    print(f"{attack:<58} {result}", flush=True)


def stalled_bodies(content_type, label):
    """100 uploads declaring 11 MiB bodies, 10 MiB of each sent, to DeepStack without a key."""
    server = Server("--api-keys", KEY, "--queue", "2", "--workers", "1")
    before = server.memory_mib("VmRSS")
    chunk = b"x" * (1 << 20)
    socks, statuses = [], {}

    def one():
        sock = server.connect()
        socks.append(sock)
        type_line = f"Content-Type: {content_type}\r\n" if content_type else ""
        sock.sendall((f"POST /v1/vision/face/recognize HTTP/1.1\r\nHost: 127.0.0.1\r\n{type_line}"
                      f"Content-Length: {11 << 20}\r\n\r\n").encode())
        try:
            for _ in range(10):
                sock.sendall(chunk)
        except OSError:
            pass

    threads = [threading.Thread(target=one) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(1)
    held = server.memory_mib("VmRSS") - before
    for sock in socks:
        s = status_of(sock)
        statuses[s] = statuses.get(s, 0) + 1
        sock.close()
    server.stop()
    report(f"100 stalled 11 MiB bodies, {label}, no key",
           f"+{held:.0f} MiB held; answers {dict(sorted(statuses.items(), key=str))}")


def json_amplification():
    server = Server("--api-keys", KEY)
    body = b"{\"x\":[" + b"0," * ((6 << 20) - 16) + b"0]}"
    before = server.memory_mib("VmHWM")
    status, _ = server.request("POST", "/v1/vision/face/recognize", body,
                               {"Content-Type": "application/json"})
    grew = server.memory_mib("VmHWM") - before
    server.stop()
    report(f"one {len(body) >> 20} MiB JSON array body, no key (DeepStack)",
           f"{status}; peak memory +{grew:.0f} MiB ({grew / (len(body) / (1 << 20)):.1f}x the body)")


def slowloris():
    server = Server()
    socks = []
    for _ in range(50):
        sock = server.connect()
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        socks.append(sock)
    time.sleep(12)
    open_now = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            open_now += sock.recv(1) != b""
        except BlockingIOError:
            open_now += 1
        except OSError:
            pass
        sock.close()
    server.stop()
    report("50 half-sent headers, after 12 s", f"{open_now} still open")
    server = Server(ulimit=256)
    idle = [server.connect() for _ in range(300)]
    started = time.monotonic()
    try:
        status, _ = server.request("GET", "/health")
        result = f"/health {status} in {(time.monotonic() - started) * 1000:.0f} ms"
    except OSError as error:
        result = f"/health failed: {error}"
    for sock in idle:
        sock.close()
    server.stop()
    report("300 idle sockets under ulimit -S -n 256", result)


def metric_labels():
    server = Server()
    size = lambda: len(server.request("GET", "/metrics")[1])
    before = size()
    sock = server.connect()
    started = time.monotonic()
    for i in range(60_000):
        sock.sendall(f"M{i} /v1/persons HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        length = int(data.split(b"content-length: ")[1].split(b"\r\n")[0]) if b"content-length: " in data else 0
        rest = data.split(b"\r\n\r\n", 1)[1]
        while len(rest) < length:
            rest += sock.recv(65536)
    took = time.monotonic() - started
    after = size()
    server.stop()
    report("60,000 requests with made-up methods", f"/metrics {before / 1e3:.1f} -> {after / 1e3:.1f} kB ({took:.0f} s)")


def patch_metadata():
    server = Server()
    boundary = "B0undary"
    photo = open(PHOTO, "rb").read()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"y.jpg\"\r\n\r\n").encode() + photo + (
        f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nAnn\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"consent\"\r\n\r\ntrue\r\n--{boundary}--\r\n").encode()
    _, created = server.request("POST", "/v1/register", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    person = json.loads(created)["person"]["id"]
    metadata = json.dumps({"metadata": {"notes": "x" * (11_500_000)}}).encode()
    status, answer = server.request("PATCH", f"/v1/persons/{person}", metadata, {"Content-Type": "application/json"})
    server.stop()
    code = json.loads(answer).get("error", {}).get("code", "accepted") if answer else ""
    report("PATCH with 11.5 MB of metadata", f"{status} {code}")


def embedding_oracle():
    server = Server("--api-keys", KEY)
    probe = [0.0] * 512
    probe[0] = 1.0
    status, answer = server.request(
        "POST", "/api/v1/recognition/embeddings/faces/00000000-0000-0000-0000-000000000000/verify",
        json.dumps({"embeddings": [probe]}).encode(), {"Content-Type": "application/json", "x-api-key": KEY})
    server.stop()
    report("one-hot probes against a stored face (CompreFace)", f"{status} {json.loads(answer).get('facerec_code')}")


def short_key():
    result = subprocess.run([binary_path(), "serve", "--api-keys", "a", "--bind", "127.0.0.1:0"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    report("--api-keys a", f"exit {result.returncode}: {result.stderr.strip()[:70]}…")


def key_guessing():
    server = Server("--api-keys", KEY)
    sock = server.connect()
    started = time.monotonic()
    statuses = {}
    for i in range(1000):
        sock.sendall(f"GET /v1/persons HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: guess-{i:016}\r\n\r\n".encode())
        data = b""
        while b"}}" not in data:
            data += sock.recv(65536)
        status = int(data.split()[1])
        statuses[status] = statuses.get(status, 0) + 1
    took = time.monotonic() - started
    server.stop()
    report("1,000 wrong keys on one connection", f"answers {statuses} in {took:.1f} s")


if __name__ == "__main__":
    for attack in (lambda: stalled_bodies("text/plain", "text/plain"),
                   lambda: stalled_bodies("MULTIPART/FORM-DATA; boundary=b", "upper-case multipart"),
                   lambda: stalled_bodies(None, "no type"),
                   json_amplification, slowloris, metric_labels, patch_metadata, embedding_oracle,
                   short_key, key_guessing):
        attack()
