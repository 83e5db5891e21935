#!/usr/bin/env python3
"""hookfleet chaos suite (`make chaos`, `make chaos-short`): faults under a steady
load of published events, and the proof that nothing was lost.

The suite starts its own PostgreSQL (port 5440) and its own RabbitMQ node or
three-node cluster (AMQP 5701-5703, distribution 25701-25703, CLI 31701-31730),
with every file under target/chaos/, and never talks to the shared services on
5432/5672. It runs `hookfleet migrate`, registers endpoints that point at local
receivers (one Python process each, recording every webhook-id they answer 200 to
and checking its signature), starts `hookfleet router` x1 and `hookfleet worker` x2
as child processes, and publishes events with publisher confirms at a steady
rate. Then, one fault after another, under that load:

  worker-kill       SIGKILL a worker; the harness restarts it (as a supervisor would)
  router-kill       SIGKILL the router; restarted
  broker-restart    rabbitmqctl stop_app, wait, start_app
  broker-kill       SIGKILL the RabbitMQ node, wait, start it again
  postgres-stop     pg_ctl stop -m fast, wait (30 s; 10 s in --short), start
  endpoint-hang     one receiver never answers (the worker times out after 2 s)
  endpoint-reset    one receiver resets each connection without an answer
  endpoint-garbage  one receiver answers non-HTTP bytes
  node-kill         (--cluster) SIGKILL node 2 (worker A's), 30 s, start it again
  node-stop         (--cluster) stop_app on node 3 (worker B's), 30 s, start_app
  router-node-stop  (--cluster) stop_app on node 1 (the router's), 30 s, start_app
                    (15 s each with --short)

After each fault it measures how long it took until every event confirmed before
the fault ended had reached every endpoint, then pauses the load and checks: every
confirmed event was delivered to every endpoint (by webhook-id), every queue is
empty (endpoint and retry queues included; hookfleet.dead, .events.invalid and
.unroutable must never hold anything), every delivery row is `succeeded`, and
every hookfleet process is alive, ready and consuming, with no restart but the
harness's own. A process that holds deliveries it never acknowledges is reported,
its thread stacks are taken with gdb, and it is restarted so that the next fault
starts clean. It prints a table and exits non-zero if anything was lost or a
check failed. Logs of the last run stay in target/chaos-last/; the data dirs go.

Usage: scripts/chaos.py [--short] [--cluster] [--bin PATH] [--rate N]
                        [--faults a,b,...] [--keep] [--log-level LEVEL]
"""
from __future__ import annotations

import argparse
import base64
import collections
import datetime
import fcntl
import glob
import hashlib
import hmac
import http.server
import json
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "target"
BASE = TARGET / "chaos"  # every data dir, socket, cookie and log of a run
LAST = TARGET / "chaos-last"  # the logs and results of the last run, kept

PG_PORT = 5440
AMQP_PORT0 = 5700  # node i listens on 5700 + i
DIST_PORT0 = 25700  # node i's Erlang distribution port: 25700 + i
CTL_DIST_MIN, CTL_DIST_MAX = 31701, 31730  # our rabbitmqctl, away from the shared CLI range 35672-35682
RX_PORT0 = 18700  # receiver i listens on 18701 + i
METRICS_PORT0 = 19700  # router 19701, worker-a 19702, worker-b 19703

RMQ_SBIN = "/usr/lib/rabbitmq/bin"

START = time.monotonic()


HARNESS_LOG = None  # the run's own log, kept in target/chaos-last/harness.log


def say(text: str) -> None:
    """Prints, and never raises (a closed pipe must not stop the teardown)."""
    try:
        print(text, flush=True)
    except (OSError, ValueError):
        pass
    if HARNESS_LOG is not None:
        try:
            HARNESS_LOG.write(text + "\n")
            HARNESS_LOG.flush()
        except (OSError, ValueError):
            pass


def log(msg: str) -> None:
    say(f"[{time.monotonic() - START:7.1f}s] {msg}")


def run(args, check=True, timeout=120, env=None, cwd=None, quiet=False):
    try:
        cp = subprocess.run(
            [str(a) for a in args], env=env, cwd=cwd, timeout=timeout,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
    except subprocess.TimeoutExpired as e:
        if check:
            raise RuntimeError(f"timed out after {timeout}s: {' '.join(map(str, args))}") from e
        return subprocess.CompletedProcess(args, 124, "", "timeout")
    if check and cp.returncode != 0:
        raise RuntimeError(
            f"command failed ({cp.returncode}): {' '.join(map(str, args))}\n{cp.stdout}\n{cp.stderr}"
        )
    if not quiet and cp.returncode != 0:
        log(f"  (exit {cp.returncode}) {' '.join(map(str, args[:4]))}: {cp.stderr.strip()[:300]}")
    return cp


def port_free(port: int) -> bool:
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_port(port: int, timeout: float, up=True) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                if up:
                    return True
        except OSError:
            if not up:
                return True
        time.sleep(0.2)
    return False


def http_get(url: str, timeout=2.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except Exception as e:  # noqa: BLE001
        return None, str(e)


def wait_until(cond, timeout: float, step=0.2):
    """Polls cond() until it is true; returns the time it became true, or None."""
    end = time.monotonic() + timeout
    while True:
        if cond():
            return time.monotonic()
        if time.monotonic() > end:
            return None
        time.sleep(step)


def clean_env() -> dict:
    """Our environment minus anything that would point a child at the shared services."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("HOOKFLEET", "RABBITMQ_", "ERL_", "PG"))
        and k not in ("RUST_LOG", "DATABASE_URL", "AMQP_URL")
    }
    return env


# --------------------------------------------------------------------------- PostgreSQL


class Postgres:
    """A private PostgreSQL cluster under target/chaos/pg, run as the postgres OS user."""

    def __init__(self, root: Path, port: int):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
        if not bins:
            raise SystemExit("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin")
        self.bin = Path(bins[-1])
        self.root = root
        self.data = root / "data"
        self.sock = root / "sock"
        self.logfile = root / "postgres.log"
        self.port = port
        self.url = f"postgres://postgres@127.0.0.1:{port}/hookfleet"

    def _as_pg(self, args, **kw):
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return run(prefix + [str(a) for a in args], cwd="/", **kw)

    def init(self):
        self.sock.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sock, "postgres", "postgres")
        self._as_pg([self.bin / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust",
                     "-E", "UTF8", "--no-sync"])
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(
                "\n# hookfleet chaos suite\n"
                f"port = {self.port}\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.sock}'\n"
                "max_connections = 200\n"
                "shared_buffers = 64MB\n"
            )

    def start(self):
        self._as_pg([self.bin / "pg_ctl", "-D", self.data, "-l", self.logfile, "-w", "-t", "60", "start"])

    def stop(self, mode="fast"):
        return self._as_pg([self.bin / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"],
                           check=False, quiet=True)

    def psql(self, sql: str, db="hookfleet") -> str:
        cp = run([self.bin / "psql", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", "-d", db,
                  "-At", "-F", "\t", "-c", sql], timeout=30)
        return cp.stdout.strip()


# --------------------------------------------------------------------------- RabbitMQ


class RabbitNode:
    """One private RabbitMQ node: hfchaos<i>@localhost, run as root with its own
    Erlang cookie (so our CLI calls cannot even authenticate to the shared node)."""

    def __init__(self, root: Path, i: int, cluster: bool):
        self.i = i
        self.root = root
        self.name = f"hfchaos{i}@localhost"
        self.port = AMQP_PORT0 + i
        self.dist_port = DIST_PORT0 + i
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2f"
        self.conf = root / f"hfchaos{i}.conf"
        self.pid = None
        self.cluster = cluster

    def env(self) -> dict:
        env = clean_env()
        env.update({
            "HOME": str(self.root / "home"),  # the private .erlang.cookie
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_PID_FILE": str(self.root / f"hfchaos{self.i}.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.conf),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.root / "advanced.config"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_CTL_DIST_PORT_MIN": str(CTL_DIST_MIN),
            "RABBITMQ_CTL_DIST_PORT_MAX": str(CTL_DIST_MAX),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        })
        return env

    @staticmethod
    def prepare(root: Path):
        (root / "home").mkdir(parents=True, exist_ok=True)
        (root / "log").mkdir(exist_ok=True)
        cookie = root / "home" / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(20).upper())
            cookie.chmod(0o400)
        (root / "enabled_plugins").write_text("[].\n")
        (root / "rabbitmq-env.conf").write_text("ERL_EPMD_ADDRESS=127.0.0.1\n")

    def write_conf(self):
        lines = [
            f"listeners.tcp.local = 127.0.0.1:{self.port}",
            "log.console = false",
            "log.file.level = info",
            "disk_free_limit.absolute = 50MB",
        ]
        if self.cluster:
            # Spread quorum queue leaders, so that losing a node moves some of them.
            lines.append("queue_leader_locator = balanced")
        self.conf.write_text("\n".join(lines) + "\n")

    def ctl(self, *args, timeout=120, check=True, quiet=False):
        return run([f"{RMQ_SBIN}/rabbitmqctl", "-n", self.name, *args], env=self.env(),
                   timeout=timeout, check=check, quiet=quiet, cwd=self.root)

    def launch(self):
        if not port_free(self.port) or not port_free(self.dist_port):
            raise RuntimeError(f"ports {self.port}/{self.dist_port} are taken; is an old {self.name} still running?")
        self.write_conf()
        run([f"{RMQ_SBIN}/rabbitmq-server", "-detached"], env=self.env(), cwd=self.root, timeout=60)

    def start(self):
        self.launch()
        self.await_startup()

    def await_startup(self, timeout=120):
        end = time.monotonic() + timeout
        while True:
            cp = self.ctl("await_startup", "--timeout", "60", check=False, quiet=True, timeout=90)
            if cp.returncode == 0:
                break
            if time.monotonic() > end:
                raise RuntimeError(f"{self.name} did not start: {cp.stderr[-500:]}")
            time.sleep(1)
        cp = self.ctl("eval", "os:getpid().", quiet=True)
        self.pid = int(cp.stdout.strip().strip('"'))
        (self.root / f"hfchaos{self.i}.ospid").write_text(str(self.pid))

    def stop_app(self):
        self.ctl("stop_app")

    def start_app(self):
        self.ctl("start_app")
        self.await_startup()

    def kill9(self):
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_port(self.port, 30, up=False)
            wait_port(self.dist_port, 30, up=False)
            self.pid = None

    def stop(self):
        cp = self.ctl("stop", timeout=90, check=False, quiet=True)
        if cp.returncode != 0 and self.pid:
            self.kill9()
        self.pid = None

    def ctl_json(self, *args, timeout=60):
        cp = self.ctl(*args, "--formatter", "json", "-q", timeout=timeout, check=False, quiet=True)
        if cp.returncode != 0:
            return None
        try:
            return json.loads(cp.stdout)
        except json.JSONDecodeError:
            return None

    def queues(self) -> list[dict]:
        return self.ctl_json("list_queues", "-p", "/", "name", "messages", "messages_unacknowledged",
                             "consumers")


# --------------------------------------------------------------------------- receivers


def receiver_main(argv):
    """A webhook receiver (run as its own process): answers 200 and records each
    webhook-id, checking the Standard Webhooks signature. GET /__chaos/mode?m=...
    switches it to ok, hang (never answers), reset (RST without an answer) or
    garbage (non-HTTP bytes)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--delay-ms", default="10-40", help="answer delay range, so deliveries are in flight")
    a = ap.parse_args(argv)
    lo, hi = (int(x) for x in a.delay_ms.split("-"))
    rnd = __import__("random").Random()
    key = base64.b64decode(a.secret.split("_", 1)[1])
    state = {"mode": "ok"}
    counters = collections.Counter()
    lock = threading.Lock()
    out = open(a.log, "a", buffering=1)

    def verify(wid, ts, body, header):
        mac = hmac.new(key, f"{wid}.{ts}.".encode() + body, hashlib.sha256).digest()
        expected = "v1," + base64.b64encode(mac).decode()
        return any(hmac.compare_digest(expected, s) for s in header.split())

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def finish(self):
            try:
                super().finish()
            except OSError:
                pass

        def _reply(self, code, body=b""):
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

        def do_GET(self):
            u = urllib.parse.urlparse(self.path)
            if u.path == "/__chaos/mode":
                m = urllib.parse.parse_qs(u.query).get("m", ["ok"])[0]
                state["mode"] = m
                self._reply(200, m.encode())
            elif u.path == "/__chaos/stats":
                with lock:
                    self._reply(200, json.dumps(counters).encode())
            else:
                self._reply(404)

        def _drop(self, rst=False):
            self.close_connection = True
            try:
                if rst:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    self.connection.shutdown(socket.SHUT_RDWR)
                self.connection.close()
            except OSError:
                pass

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n)
            mode = state["mode"]
            if mode == "hang":
                with lock:
                    counters["hang"] += 1
                while state["mode"] == "hang":
                    time.sleep(0.1)
                self._drop()
                return
            if mode == "reset":
                with lock:
                    counters["reset"] += 1
                self._drop(rst=True)
                return
            if mode == "garbage":
                with lock:
                    counters["garbage"] += 1
                try:
                    self.wfile.write(b"\x00\x17\xffGARBAGE not http at all \xde\xad\xbe\xef\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    pass
                self._drop()
                return
            if hi:
                time.sleep(rnd.uniform(lo, hi) / 1000)
            wid = self.headers.get("webhook-id", "")
            ok = verify(wid, self.headers.get("webhook-timestamp", ""), body,
                        self.headers.get("webhook-signature", ""))
            self._reply(200)
            with lock:
                counters["ok" if ok else "badsig"] += 1
                out.write(f"{wid}\n" if ok else f"!badsig {wid}\n")

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024
        allow_reuse_address = True

        def handle_error(self, request, client_address):
            pass

    srv = Server(("127.0.0.1", a.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    srv.serve_forever()


class Receiver:
    def __init__(self, i: int, root: Path):
        self.i = i
        self.port = RX_PORT0 + 1 + i
        self.url = f"http://127.0.0.1:{self.port}/hook/{i}"
        self.log = root / f"receiver-{i}.log"
        self.stderr = root / f"receiver-{i}.stderr"
        self.secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        self.proc = None
        self.endpoint_id = None

    def start(self):
        if not port_free(self.port):
            raise RuntimeError(f"receiver port {self.port} is taken")
        self.log.touch()
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "_receiver", "--port", str(self.port), "--log", str(self.log),
             "--secret", self.secret],
            stdout=subprocess.DEVNULL, stderr=open(self.stderr, "w"), start_new_session=True,
        )
        if not wait_port(self.port, 10):
            raise RuntimeError(f"receiver {self.i} did not start")

    def mode(self, m: str):
        st, body = http_get(f"http://127.0.0.1:{self.port}/__chaos/mode?m={m}")
        if st != 200:
            raise RuntimeError(f"receiver {self.i}: could not set mode {m}: {body}")

    def stats(self) -> dict:
        st, body = http_get(f"http://127.0.0.1:{self.port}/__chaos/stats")
        return json.loads(body) if st == 200 else {}

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# --------------------------------------------------------------------------- tracking


class Tracker:
    """Which confirmed event reached which endpoint. Reads the receivers' logs."""

    def __init__(self, receivers: list[Receiver]):
        self.rx = receivers
        self.n = len(receivers)
        self.lock = threading.Lock()
        self.got = [dict() for _ in receivers]  # per endpoint: webhook-id -> receipts
        self.confirmed = {}  # event id -> monotonic time of its confirm
        self.outstanding = {}  # confirmed id -> [confirm time, set of endpoints still missing]
        self.lost = set()
        self.late = set()
        self.receipts = 0
        self.duplicates = 0
        self.badsig = 0
        self.unexpected = 0
        self.known_prefix = None
        self.offsets = [0] * self.n
        self.partial = [b""] * self.n
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self):
        self.thread.start()

    def on_confirm(self, eid: str, t: float):
        with self.lock:
            if eid in self.confirmed:
                return
            self.confirmed[eid] = t
            missing = {i for i in range(self.n) if eid not in self.got[i]}
            if missing:
                self.outstanding[eid] = [t, missing]

    def _receipt(self, i: int, line: str):
        if line.startswith("!badsig "):
            self.badsig += 1
            line = line[8:]
        eid = line
        c = self.got[i].get(eid, 0)
        self.got[i][eid] = c + 1
        self.receipts += 1
        if self.known_prefix and not eid.startswith(self.known_prefix):
            self.unexpected += 1
        if c:
            self.duplicates += 1
            return
        o = self.outstanding.get(eid)
        if o:
            o[1].discard(i)
            if not o[1]:
                del self.outstanding[eid]
        if eid in self.lost and all(eid in g for g in self.got):
            self.lost.discard(eid)
            self.late.add(eid)

    def poll(self):
        for i, r in enumerate(self.rx):
            try:
                with open(r.log, "rb") as f:
                    f.seek(self.offsets[i])
                    chunk = f.read()
            except FileNotFoundError:
                continue
            if not chunk:
                continue
            self.offsets[i] += len(chunk)
            data = self.partial[i] + chunk
            lines = data.split(b"\n")
            self.partial[i] = lines.pop()
            with self.lock:
                for ln in lines:
                    if ln:
                        self._receipt(i, ln.decode())

    def _loop(self):
        while not self.stop.is_set():
            self.poll()
            time.sleep(0.1)

    def pending_before(self, t: float) -> int:
        with self.lock:
            return sum(1 for ct, _ in self.outstanding.values() if ct <= t)

    def outstanding_count(self) -> int:
        with self.lock:
            return len(self.outstanding)

    def declare_lost(self) -> list[str]:
        with self.lock:
            ids = list(self.outstanding)
            for eid in ids:
                self.lost.add(eid)
                del self.outstanding[eid]
            return ids

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "confirmed": len(self.confirmed),
                "receipts": self.receipts,
                "duplicates": self.duplicates,
                "badsig": self.badsig,
                "unexpected": self.unexpected,
                "lost": len(self.lost),
            }

    def delivered_to_all(self, ids) -> int:
        with self.lock:
            return sum(1 for e in ids if all(e in g for g in self.got))

    def ids_confirmed_between(self, a: float, b: float) -> list[str]:
        with self.lock:
            return [e for e, t in self.confirmed.items() if a < t <= b]


# --------------------------------------------------------------------------- publisher


class Publisher:
    """Publishes events at `rate` per second with publisher confirms, from several
    threads (pika's BlockingConnection waits for each confirm). An event whose
    publish was not confirmed is published again, with the same id, until it is:
    what a real producer (or hookfleet-emit's spill) does."""

    TYPES = ("user.created", "match.found")

    def __init__(self, urls: list[str], rate: float, threads: int, tracker: Tracker):
        self.urls = urls
        self.rate = rate
        self.nthreads = threads
        self.tracker = tracker
        self.run_id = secrets.token_hex(3)
        self.prefix = f"evt_chaos{self.run_id}_"
        tracker.known_prefix = self.prefix
        self.q: queue.Queue = queue.Queue()
        self.paused = threading.Event()
        self.stopping = threading.Event()
        self.made = 0
        self.confirmed = 0
        self.retries = 0
        self.inflight = 0
        self.lock = threading.Lock()
        self.errors = collections.Counter()
        self.threads = []

    def make(self, n: int):
        eid = f"{self.prefix}{n:08d}"
        t = self.TYPES[n % len(self.TYPES)]
        if t == "user.created":
            data = {"user_id": n, "username": f"u{n}"}
        else:
            data = {"match_id": n, "query_video_id": "q", "matched_video_id": "m", "confidence": 0.5}
        env = {"id": eid, "type": t, "tenant_id": None,
               "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(), "data": data}
        return (eid, t, json.dumps(env).encode())

    def _generate(self):
        active = 0.0
        last = time.monotonic()
        while not self.stopping.is_set():
            time.sleep(0.01)
            now = time.monotonic()
            if not self.paused.is_set():
                active += now - last
                target = int(active * self.rate)
                while self.made < target:
                    self.q.put(self.make(self.made))
                    self.made += 1
            last = now

    def _publish(self, idx: int):
        import pika
        import pika.exceptions as pe

        conn = None
        ch = None
        props = None
        backoff = 0.2
        url_i = 0
        while not self.stopping.is_set():
            if conn is None:
                url = self.urls[url_i % len(self.urls)]
                try:
                    params = pika.URLParameters(
                        url + "?heartbeat=10&connection_attempts=1&socket_timeout=5"
                        "&blocked_connection_timeout=30&stack_timeout=10")
                    conn = pika.BlockingConnection(params)
                    ch = conn.channel()
                    ch.confirm_delivery()
                    backoff = 0.2
                except Exception as e:  # noqa: BLE001
                    with self.lock:
                        self.errors[f"connect: {type(e).__name__}"] += 1
                    conn = None
                    url_i += 1
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
            try:
                ev = self.q.get(timeout=0.2)
            except queue.Empty:
                try:
                    conn.process_data_events(0)
                except Exception:  # noqa: BLE001
                    self._close(conn)
                    conn = None
                continue
            eid, etype, body = ev
            with self.lock:
                self.inflight += 1
            try:
                props = pika.BasicProperties(content_type="application/json", delivery_mode=2, message_id=eid)
                ch.basic_publish("hookfleet.events", etype, body, props, mandatory=True)
                self.tracker.on_confirm(eid, time.monotonic())
                with self.lock:
                    self.confirmed += 1
            except (pe.UnroutableError, pe.NackError) as e:
                with self.lock:
                    self.errors[type(e).__name__] += 1
                    self.retries += 1
                self.q.put(ev)
                time.sleep(0.2)
            except Exception as e:  # noqa: BLE001
                with self.lock:
                    self.errors[type(e).__name__] += 1
                    self.retries += 1
                self.q.put(ev)
                self._close(conn)
                conn = None
                url_i += 1
                time.sleep(0.2)
            finally:
                with self.lock:
                    self.inflight -= 1
        if conn is not None:
            self._close(conn)

    @staticmethod
    def _close(conn):
        try:
            conn.close()
        except Exception:  # noqa: BLE001
            pass

    def start(self):
        t = threading.Thread(target=self._generate, daemon=True)
        t.start()
        self.threads.append(t)
        for i in range(self.nthreads):
            t = threading.Thread(target=self._publish, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)

    def pause(self):
        self.paused.set()

    def resume(self):
        self.paused.clear()

    def drained(self) -> bool:
        with self.lock:
            return self.q.empty() and self.inflight == 0 and self.confirmed >= self.made

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(10)


# --------------------------------------------------------------------------- hookfleet processes


class HfProc:
    def __init__(self, suite, name: str, role: str, metrics_port: int, amqp_url: str):
        self.suite = suite
        self.name = name
        self.role = role
        self.metrics_port = metrics_port
        self.amqp_url = amqp_url
        self.logfile = suite.hfdir / f"{name}.log"
        self.proc = None
        self.starts = 0
        self.harness_kills = 0
        self.unexpected_exits = []

    def start(self):
        env = self.suite.hf_env(self.amqp_url, self.metrics_port)
        out = open(self.logfile, "a")
        out.write(f"\n===== chaos: start #{self.starts + 1} at {time.monotonic() - START:.1f}s =====\n")
        out.flush()
        self.proc = subprocess.Popen([str(self.suite.bin), self.role], env=env, cwd=self.suite.rundir,
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.suite.remember_pid(self.proc.pid)
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ready(self) -> bool:
        st, _ = http_get(f"http://127.0.0.1:{self.metrics_port}/readyz", timeout=1)
        return st == 200

    def kill9(self):
        self.harness_kills += 1
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self, timeout=20):
        if not self.alive():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def metric(self, name: str, label: str = "") -> float | None:
        st, text = http_get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2)
        if st != 200:
            return None
        total = None
        for line in text.splitlines():
            if line.startswith("#") or " " not in line:
                continue
            series, value = line.rsplit(" ", 1)
            metric = series.split("{", 1)[0]
            if metric == name and label in series:
                total = (total or 0.0) + float(value)
        return total


# --------------------------------------------------------------------------- the suite


PROFILES = {
    "short": dict(rate=100, threads=2, endpoints=3, warmup=8, steady=5, pg_down=10, broker_down=5,
                  endpoint_fault=10, node_down=20, recovery_deadline=120, drain_deadline=120,
                  faults=["worker-kill", "router-kill", "broker-restart", "postgres-stop", "endpoint-hang"]),
    "full": dict(rate=200, threads=4, endpoints=4, warmup=15, steady=10, pg_down=30, broker_down=10,
                 endpoint_fault=10, node_down=30, recovery_deadline=300, drain_deadline=300,
                 faults=["worker-kill", "router-kill", "broker-restart", "broker-kill", "postgres-stop",
                         "endpoint-hang", "endpoint-reset", "endpoint-garbage"]),
}
CLUSTER_FAULTS = ["node-kill", "node-stop", "router-node-stop"]
STRICT_QUEUES = ("hookfleet.dead", "hookfleet.events.invalid", "hookfleet.unroutable")


class Suite:
    def __init__(self, args):
        self.args = args
        prof = dict(PROFILES["short" if args.short else "full"])
        if args.cluster:
            prof["faults"] = CLUSTER_FAULTS
            prof["node_down"] = 15 if args.short else prof["node_down"]
        for k in ("rate", "threads", "endpoints"):
            if getattr(args, k, None):
                prof[k] = getattr(args, k)
        if args.faults:
            prof["faults"] = args.faults.split(",")
        self.p = prof
        self.bin = BASE / "bin" / "hookfleet"
        self.hfdir = BASE / "hookfleet"
        self.rundir = BASE / "run"
        self.rxdir = BASE / "receivers"
        self.pg = Postgres(BASE / "pg", PG_PORT)
        n_nodes = 3 if args.cluster else 1
        self.nodes = [RabbitNode(BASE / "rabbitmq", i + 1, args.cluster) for i in range(n_nodes)]
        self.receivers: list[Receiver] = []
        self.procs: dict[str, HfProc] = {}
        self.tracker = None
        self.publisher = None
        self.rows = []
        self.failures: list[str] = []
        self.warnings: list[str] = []
        self.monitor_stop = threading.Event()
        self.expected_dead = set()  # process names the harness is killing right now
        self.proc_lock = threading.Lock()

    # ---------------------------------------------------------------- setup

    def remember_pid(self, pid: int):
        with open(BASE / "pids", "a") as f:
            f.write(f"{pid}\n")

    def hf_env(self, amqp_url: str, metrics_port: int) -> dict:
        env = clean_env()
        env.update({
            "HOOKFLEET__DATABASE__URL": self.pg.url,
            "HOOKFLEET__AMQP__URL": amqp_url,
            "HOOKFLEET__AMQP__QUEUE_TYPE": "quorum" if self.args.cluster else "classic",
            "HOOKFLEET__METRICS__LISTEN": f"127.0.0.1:{metrics_port}",
            "HOOKFLEET__DELIVERY__ALLOW_NETWORKS": "127.0.0.0/8",
            "HOOKFLEET__DELIVERY__TIMEOUT": "2s",
            # 12 retries over about 2.5 min: a 10 s endpoint fault never exhausts them.
            "HOOKFLEET__RETRY__SCHEDULE": "1s,2s,4s,8s,15s,15s,15s,15s,15s,15s,15s,15s",
            # Circuits would park the faulty endpoint's queue for 30 s+; not what this suite measures.
            "HOOKFLEET__CIRCUIT__FAILURE_THRESHOLD": "1000000",
            "HOOKFLEET__REGISTRY__RESYNC_INTERVAL": "5s",
            "HOOKFLEET__SHUTDOWN__GRACE": "5s",
            "HOOKFLEET__LOG__LEVEL": self.args.log_level,
            "RUST_BACKTRACE": "1",
            "NO_COLOR": "1",
        })
        return env

    def hf_cli(self, *args, amqp_url=None) -> str:
        env = self.hf_env(amqp_url or self.nodes[0].url, METRICS_PORT0 + 99)
        cp = run([self.bin, *args], env=env, cwd=self.rundir, timeout=120)
        return cp.stdout

    def check_ports(self):
        ports = [PG_PORT] + [n.port for n in self.nodes] + [n.dist_port for n in self.nodes]
        ports += [RX_PORT0 + 1 + i for i in range(self.p["endpoints"])] + [METRICS_PORT0 + i for i in (1, 2, 3)]
        taken = [p for p in ports if not port_free(p)]
        if taken:
            raise SystemExit(f"ports in use: {taken}; the chaos suite needs them free")

    def setup(self):
        src = Path(self.args.bin) if self.args.bin else None
        if src is None:
            cands = [ROOT / "target/release/hookfleet", ROOT / "target/debug/hookfleet"]
            src = next((c for c in cands if c.exists()), None)
        if src is None or not src.exists():
            raise SystemExit("no hookfleet binary: build one (cargo build -p hookfleet) or pass --bin")
        self.check_ports()
        for d in (BASE / "bin", self.hfdir, self.rundir, self.rxdir):
            d.mkdir(parents=True, exist_ok=True)
        # A copy, so a rebuild during the run cannot change the binary under us.
        shutil.copy2(src, self.bin)
        log(f"binary: {src} (copied to {self.bin.relative_to(ROOT)})")
        mode = "three-node cluster, quorum queues" if self.args.cluster else "single node, classic queues"
        log(f"profile: {'short' if self.args.short else 'full'}, {mode}; rate {self.p['rate']}/s, "
            f"{self.p['endpoints']} endpoints, faults: {', '.join(self.p['faults'])}")

        log(f"PostgreSQL: initdb {self.pg.data.relative_to(ROOT)}, port {PG_PORT}")
        self.pg.init()
        self.pg.start()

        RabbitNode.prepare(BASE / "rabbitmq")
        for n in self.nodes:
            log(f"RabbitMQ: starting {n.name} (AMQP {n.port}, dist {n.dist_port})")
            n.launch()
        for n in self.nodes:
            n.await_startup()
        for n in self.nodes[1:]:
            log(f"RabbitMQ: {n.name} joins {self.nodes[0].name}")
            n.ctl("stop_app")
            n.ctl("join_cluster", self.nodes[0].name)
            n.start_app()
        if self.args.cluster:
            st = self.nodes[0].ctl("cluster_status", "--formatter", "json", quiet=True)
            running = json.loads(st.stdout).get("running_nodes", [])
            log(f"RabbitMQ cluster running nodes: {running}")
            if len(running) != 3:
                raise RuntimeError("the cluster did not form")

        log("hookfleet migrate")
        self.hf_cli("migrate")

        self.receivers = [Receiver(i, self.rxdir) for i in range(self.p["endpoints"])]
        for r in self.receivers:
            r.start()
            self.remember_pid(r.proc.pid)
            out = self.hf_cli("endpoint", "add", "--url", r.url, "--events", "*", "--secret", r.secret,
                              "--description", f"chaos receiver {r.i}")
            r.endpoint_id = json.loads(out)["id"]
            log(f"endpoint {r.endpoint_id} -> {r.url}")

        # One URL per process (amqp.url takes one): in cluster mode, router -> node 1,
        # worker A -> node 2, worker B -> node 3.
        urls = [n.url for n in self.nodes]
        self.procs = {
            "router": HfProc(self, "router", "router", METRICS_PORT0 + 1, urls[0]),
            "worker-a": HfProc(self, "worker-a", "worker", METRICS_PORT0 + 2, urls[1 % len(urls)]),
            "worker-b": HfProc(self, "worker-b", "worker", METRICS_PORT0 + 3, urls[2 % len(urls)]),
        }
        for p in self.procs.values():
            p.start()
        for p in self.procs.values():
            if wait_until(p.ready, 60, 0.3) is None:
                raise RuntimeError(f"{p.name} did not become ready; see {p.logfile}")
            log(f"{p.name} ready (pid {p.proc.pid}, metrics 127.0.0.1:{p.metrics_port}, {p.amqp_url})")

        qs = self.nodes[0].ctl_json("list_queues", "-p", "/", "name", "type", "leader") or []
        types = collections.Counter(q.get("type") for q in qs)
        leaders = collections.Counter(q.get("leader") for q in qs if q.get("leader"))
        log(f"queues: {dict(types)}" + (f"; quorum leaders: {dict(leaders)}" if leaders else ""))

        self.tracker = Tracker(self.receivers)
        self.tracker.start()
        self.publisher = Publisher(urls, self.p["rate"], self.p["threads"], self.tracker)
        self.publisher.start()
        threading.Thread(target=self._monitor, daemon=True).start()

    # ---------------------------------------------------------------- monitoring

    def _monitor(self):
        """A supervisor: a hookfleet process that exits without the harness killing it
        is a failure; it is restarted so that the suite can go on."""
        while not self.monitor_stop.is_set():
            with self.proc_lock:
                for p in self.procs.values():
                    if p.name in self.expected_dead or p.proc is None:
                        continue
                    rc = p.proc.poll()
                    if rc is not None:
                        msg = f"{p.name} exited by itself (exit {rc}) at {time.monotonic() - START:.1f}s"
                        log(f"FAILURE: {msg}; restarting it")
                        p.unexpected_exits.append(msg)
                        self.failures.append(msg)
                        p.start()
            time.sleep(0.5)

    def kill_and_restart(self, name: str, down: float = 1.0):
        p = self.procs[name]
        with self.proc_lock:
            self.expected_dead.add(name)
        pid = p.proc.pid
        p.kill9()
        log(f"  SIGKILL {name} (pid {pid})")
        time.sleep(down)
        with self.proc_lock:
            p.start()
            self.expected_dead.discard(name)
        log(f"  restarted {name} (pid {p.proc.pid})")

    def deliveries_flowing(self, timeout=60) -> bool:
        r0 = self.tracker.snapshot()["receipts"]
        return wait_until(lambda: self.tracker.snapshot()["receipts"] > r0 + 10, timeout) is not None

    # ---------------------------------------------------------------- faults

    def fault(self, name: str) -> str:
        """Injects one fault; returns a note. Returns when the fault is over (service back)."""
        p = self.p
        node = self.nodes[0]
        if name == "worker-kill":
            self.kill_and_restart("worker-a")
            return "worker-a SIGKILLed mid-delivery, restarted after 1 s"
        if name == "router-kill":
            self.kill_and_restart("router")
            return "router SIGKILLed mid-batch, restarted after 1 s"
        if name == "broker-restart":
            log(f"  rabbitmqctl -n {node.name} stop_app")
            node.stop_app()
            time.sleep(p["broker_down"])
            log(f"  rabbitmqctl -n {node.name} start_app")
            node.start_app()
            return f"stop_app, {p['broker_down']} s down, start_app"
        if name == "broker-kill":
            log(f"  SIGKILL {node.name} (beam pid {node.pid})")
            node.kill9()
            time.sleep(p["broker_down"])
            log(f"  starting {node.name} again")
            node.start()
            return f"beam SIGKILLed, {p['broker_down']} s down, node started again"
        if name == "postgres-stop":
            log("  pg_ctl stop -m fast")
            self.pg.stop("fast")
            time.sleep(p["pg_down"])
            log("  pg_ctl start")
            self.pg.start()
            return f"pg_ctl stop -m fast, {p['pg_down']} s down, start"
        if name.startswith("endpoint-"):
            mode = name.split("-", 1)[1]
            r = self.receivers[0]
            before = r.stats().get(mode, 0)
            r.mode(mode)
            log(f"  receiver 0 ({r.endpoint_id}) mode {mode} for {p['endpoint_fault']} s")
            time.sleep(p["endpoint_fault"])
            r.mode("ok")
            hits = r.stats().get(mode, 0) - before
            others = "the other endpoints kept receiving" if self._others_received() else \
                "THE OTHER ENDPOINTS STALLED"
            return f"receiver 0: {hits} requests got '{mode}' over {p['endpoint_fault']} s; {others}"
        if name in ("node-kill", "node-stop", "router-node-stop"):
            return self.node_fault(name)
        raise SystemExit(f"unknown fault {name}")

    def _others_received(self) -> bool:
        # Endpoints other than receiver 0 received something since the phase began.
        mark = getattr(self, "_phase_snap", None)
        with self.tracker.lock:
            return all(len(g) > mark[i] for i, g in enumerate(self.tracker.got) if i > 0) if mark else True

    def node_fault(self, name: str) -> str:
        p = self.p
        victim = {"node-kill": 1, "node-stop": 2, "router-node-stop": 0}[name]
        node = self.nodes[victim]
        on_it = [x.name for x in self.procs.values() if x.amqp_url == node.url]
        t_fault = time.monotonic()
        if name == "node-kill":
            log(f"  SIGKILL {node.name} (beam pid {node.pid}); on it: {', '.join(on_it)}")
            node.kill9()
        else:
            log(f"  rabbitmqctl -n {node.name} stop_app; on it: {', '.join(on_it)}")
            node.stop_app()
        # While the node is down: is delivery going on through the survivors?
        time.sleep(p["node_down"] / 2)
        mid = time.monotonic()
        time.sleep(p["node_down"] / 2)
        during = self.tracker.ids_confirmed_between(t_fault + 2, mid)
        reached = self.tracker.delivered_to_all(during)
        log(f"  while {node.name} was down: {len(during)} events confirmed in the first half, "
            f"{reached} of them already delivered to every endpoint")
        if name == "node-kill":
            log(f"  starting {node.name} again")
            node.start()
        else:
            log(f"  rabbitmqctl -n {node.name} start_app")
            node.start_app()
        note = (f"{node.name} {'SIGKILLed' if name == 'node-kill' else 'stop_app'} for {p['node_down']} s "
                f"({', '.join(on_it)} on it); {reached}/{len(during)} events published during the outage "
                f"were delivered before it came back")
        if victim != 0 and during and reached == 0:
            self.failures.append(f"{name}: no delivery through the surviving nodes while {node.name} was down")
        if victim == 0:
            note += " (the router's only node: routing waits for it, by design of amqp.url)"
        return note

    # ---------------------------------------------------------------- AMQP view per process

    def up_node(self) -> RabbitNode:
        for n in self.nodes:
            if n.pid:
                return n
        return self.nodes[0]

    def amqp_by_process(self) -> dict | None:
        """For each hookfleet process: its AMQP connections, consumers and
        unacknowledged deliveries, as the broker sees them (connections are matched
        to OS processes through their client port)."""
        node = self.up_node()
        conns = node.ctl_json("list_connections", "pid", "peer_port")
        chans = node.ctl_json("list_channels", "connection", "consumer_count", "messages_unacknowledged")
        if conns is None or chans is None:
            return None
        cp = run(["ss", "-tnpH", "state", "established"], check=False, quiet=True)
        port2pid = {}
        amqp_ports = {str(n.port) for n in self.nodes}
        for line in cp.stdout.splitlines():
            m = re.search(r"\S+:(\d+)\s+\S+:(\d+)\s+users:\(\(\"[^\"]*\",pid=(\d+)", line)
            if m and m.group(2) in amqp_ports:
                port2pid[int(m.group(1))] = int(m.group(3))
        pid2name = {p.proc.pid: p.name for p in self.procs.values() if p.proc}
        view = {p: {"connections": 0, "consumers": 0, "unacked": 0} for p in self.procs}
        conn2name = {}
        for c in conns:
            name = pid2name.get(port2pid.get(int(c.get("peer_port") or 0)))
            if name:
                conn2name[c["pid"]] = name
                view[name]["connections"] += 1
        for ch in chans:
            name = conn2name.get(ch.get("connection"))
            if name:
                view[name]["consumers"] += int(ch.get("consumer_count") or 0)
                view[name]["unacked"] += int(ch.get("messages_unacknowledged") or 0)
        return view

    def expected_consumers(self, name: str) -> int:
        # amqp.router_consumers (2) for the router; one per endpoint for a worker.
        return 2 if name == "router" else len(self.receivers)

    def wait_consumers(self, names, timeout: float, since: float) -> dict:
        """Seconds after `since` at which each process had all its consumers back."""
        back = {}
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(back) < len(names):
            view = self.amqp_by_process()
            now = time.monotonic()
            if view:
                for n in names:
                    if n not in back and view[n]["consumers"] >= self.expected_consumers(n):
                        back[n] = round(now - since, 1)
            time.sleep(0.5)
        return back

    def progress(self, p: HfProc):
        name = "hookfleet_events_routed_total" if p.role == "router" else "hookfleet_attempts_total"
        return p.metric(name)

    def wait_progress(self, names, timeout: float, since: float) -> dict:
        """Seconds after `since` at which each process was working again: its
        counter of routed events (router) or attempts (worker) moved. The load
        keeps running, so a process that works moves its counter within ms."""
        base = {n: self.progress(self.procs[n]) for n in names}
        back = {}
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(back) < len(names):
            for n in names:
                if n in back:
                    continue
                p = self.procs[n]
                v = self.progress(p)
                if v is None:
                    continue
                b = base.get(n)
                # A restarted process starts from 0: any count is progress.
                if b is None or v < b:
                    base[n] = b = 0.0 if v > 0 else v
                if v > b:
                    back[n] = round(time.monotonic() - since, 1)
            time.sleep(0.2)
        return back

    def dump_stacks(self, p: HfProc, why: str):
        """Thread stacks of a stuck process, with gdb, into its log directory."""
        if not shutil.which("gdb") or not p.alive():
            return None
        out = self.hfdir / f"{p.name}-stacks-{int(time.monotonic() - START)}s.txt"
        ready, _ = http_get(f"http://127.0.0.1:{p.metrics_port}/readyz", timeout=2)
        st, text = http_get(f"http://127.0.0.1:{p.metrics_port}/metrics", timeout=2)
        keep = ("hookfleet_attempts_total", "hookfleet_batch_write_duration_seconds_count",
                "hookfleet_deliveries_in_flight", "hookfleet_amqp_connected", "hookfleet_worker_consumed_queues",
                "hookfleet_reconnects_total", "hookfleet_events_routed_total")
        metrics = "\n".join(line for line in (text or "").splitlines() if line.startswith(keep))
        cp = run(["gdb", "-p", p.proc.pid, "-batch", "-ex", "set pagination off",
                  "-ex", "thread apply all bt"], check=False, quiet=True, timeout=120)
        out.write_text(f"# {why}\n# /readyz: {ready}\n# metrics:\n{metrics}\n\n" + cp.stdout + cp.stderr)
        return out

    def repair(self, name: str, why: str) -> str:
        """Restarts a stuck process: SIGTERM (30 s), then SIGKILL. What a liveness
        probe would do, if one could see it."""
        p = self.procs[name]
        stacks = self.dump_stacks(p, why)
        with self.proc_lock:
            self.expected_dead.add(name)
        pid = p.proc.pid
        p.proc.send_signal(signal.SIGTERM)
        t = time.monotonic()
        try:
            rc = p.proc.wait(90)
            how = f"exited {rc} {time.monotonic() - t:.0f} s after SIGTERM"
        except subprocess.TimeoutExpired:
            p.kill9()
            how = "had not exited 90 s after SIGTERM, SIGKILLed"
        with self.proc_lock:
            p.start()
            p.harness_repairs = getattr(p, "harness_repairs", 0) + 1
            self.expected_dead.discard(name)
        msg = f"{name} (pid {pid}) {how}; restarted as pid {p.proc.pid}"
        if stacks:
            msg += f"; thread stacks in {stacks.name}"
        log(f"  REPAIR: {msg}")
        return msg

    # ---------------------------------------------------------------- checks

    def check_queues(self, deadline: float) -> tuple[bool, str]:
        node = self.nodes[0]
        last = None

        def empty():
            nonlocal last
            qs = node.queues()
            if qs is None:
                return False
            last = qs
            for q in qs:
                if q["name"] in STRICT_QUEUES and int(q.get("messages") or 0) > 0:
                    return True  # cannot drain: nothing consumes them
            return all(int(q.get("messages") or 0) == 0 and int(q.get("messages_unacknowledged") or 0) == 0
                       for q in qs)

        ok = wait_until(empty, deadline, 2.0) is not None
        if last is None:
            return False, "list_queues failed"
        bad = [f"{q['name']}={q.get('messages')}/{q.get('messages_unacknowledged')}unacked" for q in last
               if int(q.get("messages") or 0) or int(q.get("messages_unacknowledged") or 0)]
        if bad:
            return False, "queues not empty: " + ", ".join(bad)
        if not ok:
            return False, "queues did not drain"
        return True, f"{len(last)} queues empty"

    def check_db(self) -> tuple[bool, str]:
        try:
            rows = self.pg.psql("SELECT status, count(*) FROM deliveries GROUP BY status ORDER BY 1")
            events = int(self.pg.psql("SELECT count(*) FROM events"))
        except Exception as e:  # noqa: BLE001
            return False, f"psql: {e}"
        counts = dict(line.split("\t") for line in rows.splitlines() if line)
        total = sum(int(v) for v in counts.values())
        ok = set(counts) <= {"succeeded"} and total == events * len(self.receivers)
        return ok, f"deliveries {counts or '{}'}, events {events}"

    def check_processes(self) -> tuple[bool, str]:
        bad = []
        for p in self.procs.values():
            if not p.alive():
                bad.append(f"{p.name} not running")
            elif wait_until(p.ready, 30, 0.5) is None:
                bad.append(f"{p.name} not ready")
        back = self.wait_consumers(list(self.procs), 30, time.monotonic())
        for n in self.procs:
            if n not in back:
                bad.append(f"{n} is not consuming (expected {self.expected_consumers(n)} consumers)")
        return not bad, ", ".join(bad) or "all running, ready and consuming"

    # ---------------------------------------------------------------- phases

    def phase(self, fault: str, last: bool = False):
        p = self.p
        tr = self.tracker
        log(f"=== {fault} ===")
        time.sleep(p["steady"])
        if not self.deliveries_flowing(60):
            self.failures.append(f"{fault}: deliveries were not flowing before the fault")
        snap0 = tr.snapshot()
        self._phase_snap = [len(g) for g in tr.got]
        t_prev = getattr(self, "_last_resume", 0.0)
        t0 = time.monotonic()
        note = self.fault(fault)
        t1 = time.monotonic()
        log(f"  fault over after {t1 - t0:.1f} s; waiting for every event confirmed before it to arrive")
        consumers_back = {}
        watcher = None
        if not fault.startswith("endpoint-"):
            # How long after the fault each process had all its consumers again.
            watcher = threading.Thread(
                target=lambda: consumers_back.update(self.wait_progress(list(self.procs), 120, t1)),
                daemon=True)
            watcher.start()
        t_rec = wait_until(lambda: tr.pending_before(t1) == 0, p["recovery_deadline"], 0.1)
        recovery = None if t_rec is None else t_rec - t1
        log(f"  recovered: {'NO' if recovery is None else f'{recovery:.1f} s'} "
            f"({tr.pending_before(t1)} still missing)")
        if watcher is not None:
            watcher.join(125)
            missing = [n for n in self.procs if n not in consumers_back]
            note += "; working again after " + ", ".join(
                f"{n} {consumers_back[n]:.1f} s" for n in self.procs if n in consumers_back)
            if missing:
                note += f"; NOT back within 120 s: {', '.join(missing)}"
            # Reconnect backoff tops out at 5 s: more than 10 s is a stall worth a look.
            for n, secs in consumers_back.items():
                if secs > 10:
                    self.warnings.append(f"{fault}: {n} was working again only {secs:.1f} s after the fault "
                                         f"ended (reconnect backoff is at most 5 s); see its log")
            log(f"  working again (s after the fault ended): {consumers_back}" +
                (f"; not back: {missing}" if missing else ""))
        # Check phase: pause the load, let everything drain.
        self.publisher.pause()
        problems = []
        if wait_until(self.publisher.drained, 120, 0.2) is None:
            problems.append("the publisher could not get its events confirmed")
        t_pause = time.monotonic()
        if wait_until(lambda: tr.outstanding_count() == 0, p["drain_deadline"], 0.2) is None:
            lost = tr.declare_lost()
            problems.append(f"{len(lost)} events not delivered to every endpoint (e.g. {lost[:3]})")
        ok_q, qmsg = self.check_queues(90)
        if not ok_q:
            view = self.amqp_by_process() or {}
            holders = {n: v["unacked"] for n, v in view.items() if v["unacked"] > 0}
            if holders:
                qmsg += "; held unacknowledged by " + ", ".join(f"{n} ({u})" for n, u in holders.items())
            problems.append(qmsg)
            log(f"  queues did not drain: {qmsg}")
            for n in holders:
                problems.append("repaired: " + self.repair(n, qmsg))
            if holders:
                ok_q, qmsg2 = self.check_queues(90)
                qmsg += f"; after the repair: {qmsg2}"
                if not ok_q:
                    problems.append(f"after the repair: {qmsg2}")
        ok_db, dbmsg = self.check_db()
        if not ok_db:
            problems.append(dbmsg)
        ok_p, pmsg = self.check_processes()
        if not ok_p:
            problems.append(pmsg)
        snap1 = tr.snapshot()
        ids = tr.ids_confirmed_between(t_prev, t_pause)
        delivered = tr.delivered_to_all(ids)
        if snap1["badsig"] > snap0["badsig"]:
            problems.append(f"{snap1['badsig'] - snap0['badsig']} deliveries with a bad signature")
        if snap1["unexpected"] > snap0["unexpected"]:
            problems.append(f"{snap1['unexpected'] - snap0['unexpected']} unexpected webhook-ids")
        row = {
            "fault": fault,
            "published": len(ids),
            "delivered": delivered,
            "duplicates": snap1["duplicates"] - snap0["duplicates"],
            "lost": len(ids) - delivered,
            "recovery_s": None if recovery is None else round(recovery, 1),
            "fault_s": round(t1 - t0, 1),
            "note": note,
            "checks": f"{qmsg}; {dbmsg}; {pmsg}",
            "problems": problems,
        }
        self.rows.append(row)
        for pr in problems:
            self.failures.append(f"{fault}: {pr}")
        verdict = "OK" if not problems and row["lost"] == 0 and recovery is not None else "FAILED"
        log(f"  {verdict}: published {row['published']}, delivered {delivered}, duplicates {row['duplicates']}, "
            f"lost {row['lost']}; {row['checks']}")
        for pr in problems:
            log(f"  problem: {pr}")
        if recovery is None:
            self.failures.append(f"{fault}: did not recover within {p['recovery_deadline']} s")
        if not last:
            self.publisher.resume()
        self._last_resume = t_pause

    def run(self):
        self.setup()
        log(f"load: {self.p['rate']} events/s over {self.p['threads']} confirming publisher threads; "
            f"warming up {self.p['warmup']} s")
        time.sleep(self.p["warmup"])
        if not self.deliveries_flowing(60):
            raise RuntimeError("no deliveries during warm-up")
        self._last_resume = 0.0
        for i, f in enumerate(self.p["faults"]):
            self.phase(f, last=i == len(self.p["faults"]) - 1)
        self.publisher.stop()

    # ---------------------------------------------------------------- report

    def table(self) -> str:
        hdr = ["fault", "events published", "delivered", "duplicates", "lost", "recovery (s)", "fault (s)",
               "checks"]
        lines = ["| " + " | ".join(hdr) + " |", "|" + "|".join("---" for _ in hdr) + "|"]
        tot = collections.Counter()
        for r in self.rows:
            rec = "-" if r["recovery_s"] is None else f"{r['recovery_s']:.1f}"
            lines.append(f"| {r['fault']} | {r['published']} | {r['delivered']} | {r['duplicates']} | "
                         f"{r['lost']} | {rec} | {r['fault_s']:.1f} | {'FAIL' if r['problems'] else 'pass'} |")
            for k in ("published", "delivered", "duplicates", "lost"):
                tot[k] += r[k]
        lines.append(f"| **total** | {tot['published']} | {tot['delivered']} | {tot['duplicates']} | "
                     f"{tot['lost']} | | | |")
        return "\n".join(lines)

    def report(self, elapsed: float) -> bool:
        ok = not self.failures and all(r["lost"] == 0 for r in self.rows) and self.rows and \
            len(self.rows) == len(self.p["faults"])
        mode = "--cluster (3 nodes, quorum queues)" if self.args.cluster else "single node (classic queues)"
        out = [f"hookfleet chaos suite, {'short' if self.args.short else 'full'}, {mode}: "
               f"{self.p['endpoints']} endpoints, {self.p['rate']} events/s, "
               f"1 router + 2 workers, {elapsed:.0f} s", "", self.table(), ""]
        for r in self.rows:
            out.append(f"- {r['fault']}: {r['note']}. Checks: {r['checks']}")
        if self.tracker:
            s = self.tracker.snapshot()
            out.append("")
            out.append(f"Receipts {s['receipts']}, duplicates {s['duplicates']}, bad signatures {s['badsig']}, "
                       f"unexpected ids {s['unexpected']}, lost {s['lost']}, arrived after being declared "
                       f"lost {len(self.tracker.late)}.")
        if self.publisher:
            out.append(f"Publisher: {self.publisher.confirmed} confirmed, {self.publisher.retries} publishes "
                       f"retried (same id) after an error: {dict(self.publisher.errors) or 'none'}.")
        restarts = ", ".join(f"{p.name} {p.starts - 1} (harness kills {p.harness_kills})"
                             for p in self.procs.values())
        if restarts:
            out.append(f"Process restarts: {restarts}.")
        reconn = []
        for p in self.procs.values():
            v = p.metric("hookfleet_reconnects_total")
            if v is not None:
                reconn.append(f"{p.name} {int(v)}")
        if reconn:
            out.append(f"AMQP reconnects (current process lifetimes): {', '.join(reconn)}.")
        if self.warnings:
            out.append("")
            out.append("Warnings (not failures):")
            out.extend(f"  - {w}" for w in self.warnings)
        out.append("")
        if ok:
            out.append("RESULT: PASS (nothing lost, every check passed)")
        else:
            out.append("RESULT: FAIL")
            for f in self.failures:
                out.append(f"  - {f}")
            if not self.rows or len(self.rows) != len(self.p["faults"]):
                out.append(f"  - {len(self.rows)} of {len(self.p['faults'])} faults ran")
        text = "\n".join(out)
        say("\n" + text)
        self.summary = text
        return bool(ok)

    # ---------------------------------------------------------------- teardown

    def teardown(self):
        log("teardown: stopping hookfleet processes, receivers, RabbitMQ, PostgreSQL")
        self.monitor_stop.set()
        with self.proc_lock:
            self.expected_dead.update(self.procs)  # the monitor must not restart them
        if self.publisher:
            self.publisher.stop()
        if self.tracker:
            self.tracker.stop.set()
        for p in self.procs.values():
            try:
                p.terminate(15)
            except Exception as e:  # noqa: BLE001
                log(f"  {p.name}: {e}")
        for r in self.receivers:
            r.stop()
        for n in reversed(self.nodes):
            try:
                n.stop()
            except Exception as e:  # noqa: BLE001
                log(f"  {n.name}: {e}")
        try:
            if self.pg.data.exists():
                self.pg.stop("fast")
        except Exception as e:  # noqa: BLE001
            log(f"  postgres: {e}")


def kill_stale():
    """Stops what a previous, interrupted run may have left: our nodes (with our
    cookie), our PostgreSQL (our data dir), and processes whose command line names
    target/chaos. Never anything else."""
    rmq = BASE / "rabbitmq"
    if (rmq / "home" / ".erlang.cookie").exists():
        for i in (1, 2, 3):
            n = RabbitNode(rmq, i, False)
            pidf = rmq / f"hfchaos{i}.ospid"
            if not port_free(n.dist_port) or pidf.exists():
                log(f"stale {n.name}: stopping it")
                cp = n.ctl("stop", timeout=60, check=False, quiet=True)
                if cp.returncode != 0 and pidf.exists():
                    pid = int(pidf.read_text())
                    if _cmdline(pid) and str(BASE) in _cmdline(pid):
                        os.kill(pid, signal.SIGKILL)
    pg = Postgres(BASE / "pg", PG_PORT)
    if (pg.data / "postmaster.pid").exists():
        log("stale PostgreSQL: stopping it")
        pg.stop("immediate")
    pids = BASE / "pids"
    if pids.exists():
        for line in pids.read_text().split():
            pid = int(line)
            cl = _cmdline(pid)
            if cl and str(BASE) in cl or (cl and "chaos.py\x00_receiver" in cl):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


def save_logs(suite: Suite | None):
    """Keeps the logs and results of the run in target/chaos-last/ (data dirs go)."""
    shutil.rmtree(LAST, ignore_errors=True)
    LAST.mkdir(parents=True, exist_ok=True)
    for src, dst in ((BASE / "hookfleet", "hookfleet"), (BASE / "rabbitmq" / "log", "rabbitmq")):
        if src.exists():
            shutil.copytree(src, LAST / dst, dirs_exist_ok=True)
    for f in (BASE / "pg" / "postgres.log", BASE / "harness.log"):
        if f.exists():
            shutil.copy(f, LAST / f.name)
    for f in (BASE / "receivers").glob("*.stderr") if (BASE / "receivers").exists() else []:
        shutil.copy(f, LAST / f.name)
    if suite is not None and getattr(suite, "summary", None):
        (LAST / "summary.txt").write_text(suite.summary + "\n")
        (LAST / "results.json").write_text(json.dumps(suite.rows, indent=2) + "\n")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_receiver":
        receiver_main(argv[1:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--short", action="store_true", help="the CI form: lower rate, a subset of faults (~3 min)")
    ap.add_argument("--cluster", action="store_true", help="three RabbitMQ nodes, quorum queues, node faults")
    ap.add_argument("--bin", help="hookfleet binary (default: target/release/hookfleet, else target/debug)")
    ap.add_argument("--rate", type=float, help="events per second")
    ap.add_argument("--threads", type=int, help="publisher threads")
    ap.add_argument("--endpoints", type=int, help="endpoints (receivers)")
    ap.add_argument("--faults", help="comma-separated faults to run, in order")
    ap.add_argument("--log-level", default="info", help="hookfleet log.level (default info)")
    ap.add_argument("--keep", action="store_true", help="keep target/chaos (data dirs) after the run")
    args = ap.parse_args(argv)

    try:
        import pika  # noqa: F401
    except ImportError:
        raise SystemExit("the chaos suite publishes with pika: python3 -m pip install pika") from None
    for tool in ("runuser", "ss", f"{RMQ_SBIN}/rabbitmq-server", f"{RMQ_SBIN}/rabbitmqctl"):
        if not shutil.which(tool):
            raise SystemExit(f"the chaos suite needs {tool}")
    if os.geteuid() != 0:
        raise SystemExit("run as root: PostgreSQL is started as the postgres user with runuser")
    TARGET.mkdir(exist_ok=True)
    lock = open(TARGET / "chaos.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit("another chaos run holds target/chaos.lock") from None

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)

    if BASE.exists():
        kill_stale()
        shutil.rmtree(BASE, ignore_errors=True)
    BASE.mkdir(parents=True)
    global HARNESS_LOG
    HARNESS_LOG = open(BASE / "harness.log", "w")
    suite = None
    ok = False
    t0 = time.monotonic()
    try:
        suite = Suite(args)
        suite.run()
        ok = suite.report(time.monotonic() - t0)
    except KeyboardInterrupt:
        log("interrupted")
    except Exception as e:  # noqa: BLE001
        import traceback
        say(traceback.format_exc())
        log(f"ERROR: {e}")
        if suite is not None and suite.rows:
            suite.failures.append(f"aborted: {e}")
            suite.report(time.monotonic() - t0)
    finally:
        # Ctrl-C during teardown must not leave services behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if suite is not None:
            suite.teardown()
        save_logs(suite)
        if not args.keep:
            shutil.rmtree(BASE, ignore_errors=True)
        log(f"cleaned up; logs in {LAST.relative_to(ROOT)}/" + ("" if not args.keep else f"; kept {BASE}"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
