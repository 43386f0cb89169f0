"""A real local Neo4j server for socialrec: Neo4j Community 5.26 LTS + APOC core + open GDS + Browser.

No Docker and no tarball: the jars come from Maven Central (``graph/neo4j/pom.xml``), resolved
once with ``mvn dependency:build-classpath`` into a cache, and ``graph/neo4j/Launcher.java`` runs
Neo4j's own Community server (``CommunityBootstrapper``) in a background JVM, with Bolt and an
HTTP connector on 127.0.0.1 that serves Neo4j Browser at ``http://127.0.0.1:<http>/browser/``::

    python -m graph.neo4j_server start     # prints the Bolt URI once it answers
    python -m graph.neo4j_server status --json
    python -m graph.neo4j_server shell -- --format plain "MATCH (n) RETURN count(n)"   # cypher-shell
    python -m graph.neo4j_server dump --to DIR      # neo4j-admin database dump (server stopped)
    python -m graph.neo4j_server load --from DIR    # neo4j-admin database load --overwrite-destination
    python -m graph.neo4j_server stop

The HTTP port defaults to the Bolt port minus 213 (7687 -> 7474, Neo4j's own defaults; 7690 ->
7477), or a free port when that one is taken. ``cypher-shell`` is Neo4j's published client
(``org.neo4j:cypher-shell``, ``graph/neo4j/cypher-shell.pom.xml``), resolved the same way into its
own cache entry; the password reaches it in ``NEO4J_PASSWORD``, never on the command line.

Layout under ``<home>/neo4j/`` (``home`` = ``SOCIALREC_HOME``)::

    conf/neo4j.conf     written on every start from the arguments below
    data/               the databases (kept between starts)
    logs/launcher.log   the JVM's stdout/stderr (Neo4j's user log); logs/debug.log Neo4j's own
    plugins/            links to the APOC and GDS jars (procedures are loaded from here)
    neo4j.pid           JSON: pid, Bolt URI, versions; removed by ``stop``

Cache (``SOCIALREC_NEO4J_CACHE`` or ``~/.cache/socialrec``):
``neo4j-<version>-<hash>/{pom.xml, cp.txt, classes/}``; the jars stay in Maven's own repository
(``~/.m2``). A fresh machine pays the download once (a few minutes); later starts only start the JVM.

Authentication is always on: the password of user ``neo4j`` is set to the given one on every start
(passed to the JVM in its environment, never on the command line).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent / "neo4j"
POM = HERE / "pom.xml"
LAUNCHER = HERE / "Launcher.java"
READY_MARK = b"SOCIALREC-NEO4J READY"
JVM_OPENS = (
    # Neo4j 5 on Java 17 needs these; without them the page cache falls back to slow paths and
    # vector-index population is reported to stall.
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
)
SUPPORTED_JAVA = (17, 21)
# the jars that declare @Procedure/@UserFunction classes: apoc-core, GDS proc-* and alpha-proc
PLUGIN_JAR = re.compile(r"[/\\]org[/\\]neo4j[/\\](procedure[/\\]apoc-core|gds[/\\](proc-[a-z-]+|alpha-proc))[/\\][^/\\]+[/\\][^/\\]+\.jar$")
MIN_PASSWORD = 8
HTTP_OFFSET = 213  # Bolt 7687 -> HTTP 7474, Neo4j's own default pair
CYPHER_SHELL_POM = HERE / "cypher-shell.pom.xml"
CYPHER_SHELL_MAIN = "org.neo4j.shell.Main"
ADMIN_MAIN = "org.neo4j.cli.AdminTool"
log = logging.getLogger(__name__)


class Neo4jServerError(RuntimeError):
    """The server could not be prepared, started or stopped; the message says why."""


# ============================================================================ versions and cache
def versions() -> dict[str, str]:
    """The pinned versions of ``graph/neo4j/pom.xml``: ``{"neo4j", "apoc", "gds", "browser"}``."""
    text = POM.read_text()
    out = {}
    for key in ("neo4j", "apoc", "gds", "browser"):
        m = re.search(rf"<{key}\.version>([^<]+)</{key}\.version>", text)
        if not m:
            raise Neo4jServerError(f"{POM}: no <{key}.version>")
        out[key] = m.group(1).strip()
    return out


def cache_dir(root: Path | None = None) -> Path:
    """The classpath cache of the pinned versions, e.g. ``~/.cache/socialrec/neo4j-5.26.30-ab12cd34``.

    The hash covers the pom and the launcher source, so editing either gives a fresh entry.
    """
    if root is None:
        env = os.environ.get("SOCIALREC_NEO4J_CACHE")
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(env) if env else Path(base) / "socialrec"
    digest = hashlib.sha256(POM.read_bytes() + LAUNCHER.read_bytes()).hexdigest()[:8]
    return Path(root) / f"neo4j-{versions()['neo4j']}-{digest}"


def _run(cmd: list[str], what: str, timeout_s: float, cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except FileNotFoundError as exc:
        raise Neo4jServerError(f"{what}: {cmd[0]} not found ({exc})") from exc
    except subprocess.TimeoutExpired as exc:
        raise Neo4jServerError(f"{what}: timed out after {timeout_s:.0f} s") from exc
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise Neo4jServerError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def find_java() -> Path:
    """A ``java`` of a version Neo4j 5.26 supports (17 or 21).

    Looks at ``$JAVA_HOME``, the ``java`` on ``PATH`` and ``/usr/lib/jvm/*``, in that order.
    Raises:
        Neo4jServerError: none found.
    """
    candidates: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]) / "bin" / "java")
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path).resolve())
    for major in SUPPORTED_JAVA:
        candidates.extend(sorted(Path("/usr/lib/jvm").glob(f"*{major}*/bin/java")))
    seen = set()
    for java in candidates:
        if java in seen or not java.exists():
            continue
        seen.add(java)
        if _java_major(java) in SUPPORTED_JAVA:
            return java
    raise Neo4jServerError(f"no Java {' or '.join(map(str, SUPPORTED_JAVA))} found (set JAVA_HOME); tried {candidates}")


def _java_major(java: Path) -> int | None:
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2)) if major == 1 and m.group(2) else major


def ensure_classpath(java: Path, cache: Path | None = None, mvn: str = "mvn", timeout_s: float = 900) -> tuple[str, Path | None]:
    """Resolve the server's jars (downloading them once) and compile the launcher.

    Args:
        java: the ``java`` binary to run with (its ``javac`` compiles the launcher).
        cache: cache entry (default :func:`cache_dir`).
        mvn: the Maven command.
        timeout_s: limit for the Maven run.
    Returns:
        ``(classpath, classes_dir)``; ``classes_dir`` is None when no ``javac`` is beside ``java``
        (the launcher then runs in single-file source mode).
    Raises:
        Neo4jServerError: Maven or javac failed.
    """
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    cp_file = cache / "cp.txt"
    classpath = cp_file.read_text().strip() if cp_file.exists() else ""
    if not classpath or not all(Path(p).exists() for p in classpath.split(os.pathsep)):
        shutil.copyfile(POM, cache / "pom.xml")
        tmp = cache / "cp.txt.tmp"
        _run(
            [mvn, "-B", "-q", "-f", str(cache / "pom.xml"), "dependency:build-classpath",
             f"-Dmdep.outputFile={tmp}"],
            "resolving the Neo4j jars with Maven", timeout_s,
        )
        os.replace(tmp, cp_file)
        classpath = cp_file.read_text().strip()
    javac = java.parent / "javac"
    if not javac.exists():
        return classpath, None
    classes = cache / "classes"
    if not (classes / "Launcher.class").exists():
        tmp_classes = cache / "classes.tmp"
        shutil.rmtree(tmp_classes, ignore_errors=True)
        _run([str(javac), "-d", str(tmp_classes), "-cp", classpath, str(LAUNCHER)], "compiling Launcher.java", 300)
        shutil.rmtree(classes, ignore_errors=True)
        os.replace(tmp_classes, classes)
    return classpath, classes


# ============================================================================ server files
def _paths(home: Path) -> dict[str, Path]:
    base = Path(home).resolve() / "neo4j"
    return {
        "base": base,
        "conf": base / "conf" / "neo4j.conf",
        "data": base / "data",
        "logs": base / "logs",
        "plugins": base / "plugins",
        "log": base / "logs" / "launcher.log",
        "pid": base / "neo4j.pid",
        "last_start": base / "last-start-seconds",
    }


def write_conf(home: Path, bolt_port: int, pagecache: str, http_port: int | None = None) -> Path:
    """Write ``<home>/neo4j/conf/neo4j.conf`` and return its path.

    ``http_port`` None disables the HTTP connector (and so Neo4j Browser); connectors listen on
    127.0.0.1 only, HTTPS is off.
    """
    p = _paths(home)
    p["conf"].parent.mkdir(parents=True, exist_ok=True)
    settings = {
        "server.directories.data": p["data"],
        "server.directories.logs": p["logs"],
        "server.directories.plugins": p["plugins"],
        "server.bolt.enabled": "true",
        "server.bolt.listen_address": f"127.0.0.1:{bolt_port}",
        "server.bolt.advertised_address": f"127.0.0.1:{bolt_port}",
        "server.bolt.tls_level": "DISABLED",
        "server.http.enabled": "true" if http_port else "false",
        **({"server.http.listen_address": f"127.0.0.1:{http_port}",
            "server.http.advertised_address": f"127.0.0.1:{http_port}"} if http_port else {}),
        "server.https.enabled": "false",
        "server.memory.pagecache.size": pagecache,
        "dbms.security.auth_enabled": "true",
        "dbms.security.procedures.unrestricted": "apoc.*,gds.*",
        "dbms.usage_report.enabled": "false",
        # keep the transaction logs of a laptop-sized store small
        "db.tx_log.rotation.size": "128M",
        "db.tx_log.rotation.retention_policy": "2 files",
    }
    text = "# written by graph/neo4j_server.py on every start; edits are overwritten\n"
    text += "".join(f"{k}={v}\n" for k, v in settings.items())
    p["conf"].write_text(text)
    return p["conf"]


def link_plugins(home: Path, classpath: str) -> int:
    """Link the APOC and GDS procedure jars into ``<home>/neo4j/plugins``.

    Neo4j registers procedures and functions only from jars in its plugin directory; the classes
    themselves load from the classpath. Only the jars that declare procedures are linked (scanning
    all ~110 GDS jars costs seconds at every start).
    """
    plugins = _paths(home)["plugins"]
    plugins.mkdir(parents=True, exist_ok=True)
    for old in plugins.iterdir():
        if old.is_symlink():
            old.unlink()
    n = 0
    for jar in classpath.split(os.pathsep):
        if PLUGIN_JAR.search(jar):
            (plugins / Path(jar).name).symlink_to(jar)
            n += 1
    return n


def _read_pidfile(home: Path) -> dict | None:
    path = _paths(home)["pid"]
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _is_our_launcher(pid: int, home: Path) -> bool:
    """True when ``pid`` is alive and is the launcher JVM of this home (guards against pid reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True  # no /proc (not Linux): trust the pid file
    base = str(_paths(home)["base"]).encode()
    return any(a.endswith(b"Launcher") or a.endswith(b"Launcher.java") for a in cmdline) and base in cmdline


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _bolt_ok(uri: str, password: str | None, user: str = "neo4j") -> bool:
    if password is None:
        return _port_open(int(uri.rsplit(":", 1)[1]))
    from neo4j import GraphDatabase
    from neo4j.exceptions import Neo4jError, DriverError

    try:
        with GraphDatabase.driver(uri, auth=(user, password), connection_timeout=5) as driver:
            driver.verify_connectivity()
        return True
    except (Neo4jError, DriverError, OSError):
        return False


def _log_tail(home: Path, n: int = 4000) -> str:
    try:
        data = _paths(home)["log"].read_bytes()
    except OSError:
        return "(no log)"
    return data[-n:].decode(errors="replace")


# ============================================================================ start / stop / status
def start(
    home: Path,
    password: str,
    bolt_port: int = 7687,
    heap: str = "2g",
    pagecache: str = "512m",
    timeout_s: float = 180,
    http_port: int | None | str = "auto",
    progress: bool = True,
) -> str:
    """Start the local Neo4j server in the background (or find it running) and wait for Bolt.

    Args:
        home: ``SOCIALREC_HOME``; the server lives in ``home/neo4j``.
        password: password of user ``neo4j`` (8+ characters); set on every start.
        bolt_port: Bolt port on 127.0.0.1.
        heap: JVM heap (``-Xms``/``-Xmx``), e.g. ``"2g"`` (the default: one atomic write-back of
            ciao's 105k item vectors needs ~0.7 GiB of transaction memory, past 1g's limit).
        pagecache: Neo4j page cache size, e.g. ``"512m"``.
        timeout_s: how long to wait for Bolt to answer (the jar download of a fresh machine has its
            own limit).
        http_port: port of the HTTP connector (Neo4j Browser at ``/browser/``) on 127.0.0.1;
            ``"auto"`` = ``bolt_port - 213`` (7474 for 7687) or a free port when that is taken;
            None = no HTTP connector.
        progress: show the wait as a progress bar on a terminal (ETA from the previous start of
            this home), or a log line every 15 s otherwise.
    Returns:
        The Bolt URI, ``bolt://127.0.0.1:<port>``.
    Raises:
        ValueError: bad password or sizes. Neo4jServerError: Java/Maven missing, the port is taken
        by another process, or the server died or did not answer in time (the log tail is in the
        message).
    """
    if not password or len(password) < MIN_PASSWORD:
        raise ValueError(f"the Neo4j password must have at least {MIN_PASSWORD} characters")
    for name, size in (("heap", heap), ("pagecache", pagecache)):
        if not re.fullmatch(r"\d+[kmgKMG]?", size):
            raise ValueError(f"bad {name} size {size!r}; expected e.g. 512m or 2g")
    home = Path(home)
    p = _paths(home)
    uri = f"bolt://127.0.0.1:{bolt_port}"

    info = status(home)
    if info["running"]:
        if info["uri"] != uri:
            raise Neo4jServerError(f"a server of {p['base']} is already running on {info['uri']}")
        if _wait_bolt(uri, password, time.monotonic() + 30):
            return uri
        raise Neo4jServerError(f"the running server (pid {info['pid']}) does not accept this password")
    if _port_open(bolt_port):
        raise Neo4jServerError(f"port {bolt_port} on 127.0.0.1 is taken by another process")

    if http_port == "auto":
        http_port = choose_http_port(bolt_port)
    elif http_port is not None and _port_open(int(http_port)):
        raise Neo4jServerError(f"HTTP port {http_port} on 127.0.0.1 is taken by another process")

    java = find_java()
    classpath, classes = ensure_classpath(java)
    for key in ("data", "logs", "plugins"):
        p[key].mkdir(parents=True, exist_ok=True)
    write_conf(home, bolt_port, pagecache, http_port)
    link_plugins(home, classpath)

    if classes is not None:
        cmd_cp, main = f"{classes}{os.pathsep}{classpath}", ["Launcher"]
    else:
        cmd_cp, main = classpath, [str(LAUNCHER)]
    cmd = [str(java), f"-Xms{heap}", f"-Xmx{heap}", *JVM_OPENS, "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError",
           "-Dfile.encoding=UTF-8", "-cp", cmd_cp, *main, str(p["base"])]
    env = dict(os.environ, SOCIALREC_NEO4J_PASSWORD=password)
    log_offset = p["log"].stat().st_size if p["log"].exists() else 0
    with open(p["log"], "ab") as log:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=p["base"], env=env,
            start_new_session=True,  # survives the caller; not killed by its Ctrl-C
        )
    record = {"pid": proc.pid, "uri": uri, "bolt_port": bolt_port, "http_port": http_port, "heap": heap,
              "pagecache": pagecache, "versions": versions(), "started_at": time.time()}
    p["pid"].write_text(json.dumps(record, indent=2))

    t0 = time.monotonic()
    deadline = t0 + timeout_s
    try:
        expected = float(p["last_start"].read_text())
    except (OSError, ValueError):
        expected = 60.0
    with _WaitProgress(f"starting Neo4j on {uri}", expected, enabled=progress) as bar:
        while time.monotonic() < deadline:
            bar.update()
            if proc.poll() is not None:
                p["pid"].unlink(missing_ok=True)
                raise Neo4jServerError(f"Neo4j exited with code {proc.returncode}; log tail:\n{_log_tail(home)}")
            if _log_has_ready(p["log"], log_offset):
                break
            time.sleep(0.25)
        else:
            stop(home)
            raise Neo4jServerError(f"Neo4j did not start within {timeout_s:.0f} s; log tail:\n{_log_tail(home)}")
        if not _wait_bolt(uri, password, deadline):
            stop(home)
            raise Neo4jServerError(f"Bolt on {uri} did not answer within {timeout_s:.0f} s; log tail:\n{_log_tail(home)}")
    try:
        p["last_start"].write_text(f"{time.monotonic() - t0:.1f}")
    except OSError:
        pass
    return uri


def choose_http_port(bolt_port: int) -> int:
    """The HTTP port for a Bolt port: ``bolt_port - 213`` when free (7687 -> 7474), else a free one."""
    preferred = bolt_port - HTTP_OFFSET
    if 1024 <= preferred and not _port_open(preferred):
        return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _WaitProgress:
    """Progress of a wait whose length is only estimated (seconds; ``expected`` from the last run).

    On a terminal: a tqdm bar of elapsed/expected seconds with its ETA. Otherwise (CI, cron, a
    pipe): one log line every ``every_s`` seconds. ``enabled=False`` shows nothing.
    """

    def __init__(self, what: str, expected_s: float, enabled: bool = True, every_s: float = 15.0):
        self.what, self.expected, self.every = what, max(float(expected_s), 1.0), every_s
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.t0 = time.monotonic()
        self.last_log = self.t0
        self.bar = None

    def __enter__(self) -> "_WaitProgress":
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=round(self.expected), desc=self.what, unit="s", leave=False,
                            bar_format="{desc}: {bar} {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]")
        return self

    def update(self) -> None:
        now = time.monotonic()
        if self.bar is not None:
            elapsed = now - self.t0
            if elapsed > self.bar.total:
                self.bar.total = round(elapsed) + 1
            self.bar.n = round(elapsed)
            self.bar.refresh()
        elif self.enabled and now - self.last_log >= self.every:
            self.last_log = now
            log.info("%s: %.0f s elapsed (usually ~%.0f s)", self.what, now - self.t0, self.expected)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
def admin_tool(home: Path, args: list[str], timeout_s: float = 3600, heap: str = "512m") -> str:
    """Run ``neo4j-admin ARGS`` (:func:`admin_command`) and return its stdout, e.g.
    ``["database", "import", "full", ...]``. The server must be stopped for the commands that
    write a database (import, load).

    Raises:
        Neo4jServerError: Java/Maven missing, the server was never started here (no conf), or the
        tool failed (its output tail is in the message).
    """
    cmd, env = admin_command(home, args, heap=heap)
    return _run_env(cmd, env, f"neo4j-admin {' '.join(args[:3])}", timeout_s)


def read_pidfile(home: Path) -> dict | None:
    """The running server's record (pid, uri, bolt_port, heap, pagecache, versions), or None."""
    return _read_pidfile(Path(home))


def _log_has_ready(log: Path, offset: int) -> bool:
    try:
        with open(log, "rb") as fh:
            fh.seek(offset)
            return READY_MARK in fh.read()
    except OSError:
        return False


def _wait_bolt(uri: str, password: str, deadline: float) -> bool:
    while True:
        if _bolt_ok(uri, password):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


def stop(home: Path, timeout_s: float = 120) -> bool:
    """Stop the server of ``home`` cleanly (SIGTERM, wait for the shutdown hook; SIGKILL after
    ``timeout_s``).

    Returns:
        True when a running server was stopped, False when none was running.
    """
    home = Path(home)
    p = _paths(home)
    info = _read_pidfile(home)
    if not info:
        return False
    pid = int(info["pid"])
    if not _is_our_launcher(pid, home):
        p["pid"].unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)
    p["pid"].unlink(missing_ok=True)
    return True


def _alive(pid: int) -> bool:
    try:
        # reap it if it is our own child (started by start() in this same process)
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def status(home: Path, password: str | None = None) -> dict:
    """Where the server of ``home`` stands.

    Returns:
        ``{"running", "pid", "uri", "bolt_port", "http_port", "browser_url", "bolt_ok", "versions",
        "home", "log"}``; ``bolt_ok`` is a real Bolt login when ``password`` is given, else only a
        TCP check of the port; ``browser_url`` is Neo4j Browser's address (None without HTTP).
    """
    home = Path(home)
    p = _paths(home)
    info = _read_pidfile(home) or {}
    pid = info.get("pid")
    running = bool(pid) and _is_our_launcher(int(pid), home) and _alive(int(pid))
    uri = info.get("uri") if running else None
    return {
        "running": running,
        "pid": int(pid) if running else None,
        "uri": uri,
        "bolt_port": info.get("bolt_port") if running else None,
        "http_port": info.get("http_port") if running else None,
        "browser_url": (f"http://127.0.0.1:{info['http_port']}/browser/"
                        if running and info.get("http_port") else None),
        "bolt_ok": bool(running and uri and _bolt_ok(uri, password)),
        "versions": versions(),
        "home": str(p["base"]),
        "log": str(p["log"]),
    }


# ============================================================================ cypher-shell, dump, load
def cypher_shell_classpath(cache: Path | None = None, mvn: str = "mvn", timeout_s: float = 600) -> str:
    """The classpath of the published cypher-shell (``graph/neo4j/cypher-shell.pom.xml``), resolved
    once with Maven into ``<cache root>/cypher-shell-<version>-<hash>/cp.txt``.

    Raises:
        Neo4jServerError: Maven failed.
    """
    if cache is None:
        digest = hashlib.sha256(CYPHER_SHELL_POM.read_bytes()).hexdigest()[:8]
        m = re.search(r"<cypher-shell\.version>([^<]+)<", CYPHER_SHELL_POM.read_text())
        cache = cache_dir().parent / f"cypher-shell-{m.group(1) if m else 'x'}-{digest}"
    cache.mkdir(parents=True, exist_ok=True)
    cp_file = cache / "cp.txt"
    classpath = cp_file.read_text().strip() if cp_file.exists() else ""
    if not classpath or not all(Path(x).exists() for x in classpath.split(os.pathsep)):
        shutil.copyfile(CYPHER_SHELL_POM, cache / "pom.xml")
        tmp = cache / "cp.txt.tmp"
        _run([mvn, "-B", "-q", "-f", str(cache / "pom.xml"), "dependency:build-classpath", f"-Dmdep.outputFile={tmp}"],
             "resolving cypher-shell with Maven", timeout_s)
        os.replace(tmp, cp_file)
        classpath = cp_file.read_text().strip()
    return classpath


def cypher_shell_command(uri: str, user: str = "neo4j", args: list[str] | tuple = ()) -> list[str]:
    """argv that runs cypher-shell against ``uri`` as ``user``; pass the password in the
    environment variable ``NEO4J_PASSWORD`` (cypher-shell reads it), never in ``args``.

    Example: ``cypher_shell_command(uri, args=["--format", "plain", "RETURN 1 AS x"])``.
    """
    java = find_java()
    return [str(java), "-XX:+UseSerialGC", "-Xss1m", "-cp", cypher_shell_classpath(), CYPHER_SHELL_MAIN,
            "-a", uri, "-u", user, *args]


def admin_command(home: Path, args: list[str], heap: str = "512m") -> tuple[list[str], dict]:
    """argv and environment that run ``neo4j-admin ARGS`` (Neo4j's ``org.neo4j.cli.AdminTool``)
    on the server files of ``home`` (its ``neo4j.conf`` gives the data directory)."""
    p = _paths(home)
    if not p["conf"].exists():
        raise Neo4jServerError(f"{p['conf']} does not exist: start the server of {home} once first")
    java = find_java()
    classpath, _ = ensure_classpath(java)
    env = dict(os.environ, NEO4J_HOME=str(p["base"]), NEO4J_CONF=str(p["conf"].parent))
    return [str(java), f"-Xmx{heap}", *JVM_OPENS, "-Dfile.encoding=UTF-8", "-cp", classpath, ADMIN_MAIN, *args], env


def dump(home: Path, to_dir: Path, database: str = "neo4j", timeout_s: float = 1800) -> Path:
    """``neo4j-admin database dump DATABASE --to-path TO_DIR`` (Community needs the server stopped).

    Returns:
        The dump file, ``TO_DIR/<database>.dump``.
    Raises:
        Neo4jServerError: the server of ``home`` is running, or the dump failed.
    """
    if status(home)["running"]:
        raise Neo4jServerError("stop the server first: Neo4j Community dumps only a stopped database")
    to_dir = Path(to_dir)
    to_dir.mkdir(parents=True, exist_ok=True)
    target = to_dir / f"{database}.dump"
    target.unlink(missing_ok=True)
    cmd, env = admin_command(home, ["database", "dump", database, f"--to-path={to_dir}", "--overwrite-destination=true"])
    _run_env(cmd, env, f"neo4j-admin database dump {database}", timeout_s)
    if not target.exists():
        raise Neo4jServerError(f"neo4j-admin wrote no {target}")
    return target


def load(home: Path, from_dir: Path, database: str = "neo4j", timeout_s: float = 1800) -> None:
    """``neo4j-admin database load DATABASE --from-path FROM_DIR --overwrite-destination=true``:
    replaces the database of ``home`` by the dump ``FROM_DIR/<database>.dump`` (server stopped).

    Raises:
        Neo4jServerError: the server is running, the dump is missing, or the load failed.
    """
    if status(home)["running"]:
        raise Neo4jServerError("stop the server first: a database is loaded only while the server is stopped")
    if not (Path(from_dir) / f"{database}.dump").exists():
        raise Neo4jServerError(f"no dump {Path(from_dir) / f'{database}.dump'}")
    cmd, env = admin_command(home, ["database", "load", database, f"--from-path={from_dir}",
                                    "--overwrite-destination=true"])
    _run_env(cmd, env, f"neo4j-admin database load {database}", timeout_s)


def _run_env(cmd: list[str], env: dict, what: str, timeout_s: float) -> str:
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise Neo4jServerError(f"{what}: timed out after {timeout_s:.0f} s") from exc
    if proc.returncode != 0:
        raise Neo4jServerError(f"{what} failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout


# ============================================================================ command line
def main(argv: list[str] | None = None) -> int:
    """``python -m graph.neo4j_server start|stop|status``; exit 0 ok, 2 bad input, 1 failure."""
    parser = argparse.ArgumentParser(prog="python -m graph.neo4j_server", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("start", "stop", "status", "shell", "dump", "load"))
    parser.add_argument("--home", default=os.environ.get("SOCIALREC_HOME", ".socialrec"),
                        help="SOCIALREC_HOME (default: $SOCIALREC_HOME or ./.socialrec)")
    parser.add_argument("--port", type=int, default=None, help="Bolt port (default: from SOCIALREC_NEO4J_URI or 7687)")
    parser.add_argument("--heap", default=os.environ.get("SOCIALREC_NEO4J_HEAP", "2g"))
    parser.add_argument("--pagecache", default=os.environ.get("SOCIALREC_NEO4J_PAGECACHE", "512m"))
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for Bolt")
    parser.add_argument("--http-port", default="auto",
                        help="HTTP port (Neo4j Browser); 'auto' = Bolt port - 213 or a free one; 'off' = none")
    parser.add_argument("--to", dest="to_dir", help="dump: folder for <database>.dump")
    parser.add_argument("--from", dest="from_dir", help="load: folder holding <database>.dump")
    parser.add_argument("--database", default="neo4j", help="dump/load: the database (default neo4j)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar / log lines while waiting")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    argv = list(sys.argv[1:] if argv is None else argv)
    shell_args: list[str] = []
    if "--" in argv:  # shell: everything after -- goes to cypher-shell
        cut = argv.index("--")
        argv, shell_args = argv[:cut], argv[cut + 1:]
    args = parser.parse_args(argv)
    args.shell_args = shell_args
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.shell_args and args.action != "shell":
        parser.error(f"unexpected arguments {args.shell_args}")

    port = args.port
    if port is None:
        m = re.search(r":(\d+)/?$", os.environ.get("SOCIALREC_NEO4J_URI", ""))
        port = int(m.group(1)) if m else 7687
    password = os.environ.get("SOCIALREC_NEO4J_PASSWORD")
    home = Path(args.home)
    try:
        if args.action == "start":
            if not password:
                print("set SOCIALREC_NEO4J_PASSWORD (8+ characters)", file=sys.stderr)
                return 2
            t0 = time.monotonic()
            http_port = None if args.http_port == "off" else ("auto" if args.http_port == "auto" else int(args.http_port))
            uri = start(home, password, bolt_port=port, heap=args.heap, pagecache=args.pagecache,
                        timeout_s=args.timeout, http_port=http_port, progress=not args.no_progress)
            out = {"uri": uri, "seconds": round(time.monotonic() - t0, 1), **status(home, password)}
        elif args.action == "stop":
            out = {"stopped": stop(home), "home": str(_paths(home)["base"])}
        elif args.action == "shell":
            if not password:
                print("set SOCIALREC_NEO4J_PASSWORD", file=sys.stderr)
                return 2
            uri = os.environ.get("SOCIALREC_NEO4J_URI") or f"bolt://127.0.0.1:{port}"
            cmd = cypher_shell_command(uri, os.environ.get("SOCIALREC_NEO4J_USER", "neo4j"), args.shell_args)
            env = dict(os.environ, NEO4J_PASSWORD=password)
            return subprocess.call(cmd, env=env)
        elif args.action == "dump":
            if not args.to_dir:
                print("dump needs --to DIR", file=sys.stderr)
                return 2
            out = {"dump": str(dump(home, Path(args.to_dir), args.database))}
        elif args.action == "load":
            if not args.from_dir:
                print("load needs --from DIR", file=sys.stderr)
                return 2
            load(home, Path(args.from_dir), args.database)
            out = {"loaded": args.database, "from": args.from_dir}
        else:
            out = status(home, password)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Neo4jServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(out))
    elif args.action == "start":
        print(out["uri"])
        print(f"Neo4j {out['versions']['neo4j']} up in {out['seconds']} s (pid {out['pid']}, log {out['log']})"
              + (f"; Neo4j Browser: {out['browser_url']}" if out.get("browser_url") else ""), file=sys.stderr)
    elif args.action == "stop":
        print("stopped" if out["stopped"] else "not running")
    elif args.action in ("dump", "load"):
        print(json.dumps(out))
    else:
        print("running " + str(out["uri"]) if out["running"] else "not running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
