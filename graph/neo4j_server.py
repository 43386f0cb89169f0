"""A real local Neo4j server for socialrec: Neo4j Community 5.26 LTS + APOC core + open GDS.

No Docker and no tarball: the jars come from Maven Central (``graph/neo4j/pom.xml``), resolved
once with ``mvn dependency:build-classpath`` into a cache, and ``graph/neo4j/Launcher.java`` runs
the DBMS with its Bolt connector in a background JVM::

    python -m graph.neo4j_server start     # prints the Bolt URI once it answers
    python -m graph.neo4j_server status --json
    python -m graph.neo4j_server stop

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


class Neo4jServerError(RuntimeError):
    """The server could not be prepared, started or stopped; the message says why."""


# ============================================================================ versions and cache
def versions() -> dict[str, str]:
    """The pinned versions of ``graph/neo4j/pom.xml``: ``{"neo4j", "apoc", "gds"}``."""
    text = POM.read_text()
    out = {}
    for key in ("neo4j", "apoc", "gds"):
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
    }


def write_conf(home: Path, bolt_port: int, pagecache: str) -> Path:
    """Write ``<home>/neo4j/conf/neo4j.conf`` and return its path."""
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

    java = find_java()
    classpath, classes = ensure_classpath(java)
    for key in ("data", "logs", "plugins"):
        p[key].mkdir(parents=True, exist_ok=True)
    write_conf(home, bolt_port, pagecache)
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
    record = {"pid": proc.pid, "uri": uri, "bolt_port": bolt_port, "heap": heap, "pagecache": pagecache,
              "versions": versions(), "started_at": time.time()}
    p["pid"].write_text(json.dumps(record, indent=2))

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
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
    return uri


def admin_tool(home: Path, args: list[str], timeout_s: float = 3600, heap: str = "512m") -> str:
    """Run ``neo4j-admin ARGS`` (``org.neo4j.cli.AdminTool`` from the server's own jars) against the
    server files of ``home`` (its ``conf/neo4j.conf`` and data directory), e.g.
    ``["database", "import", "full", ...]``. The server must be stopped for the commands that
    write a database (import, load).

    Returns:
        The tool's stdout.
    Raises:
        Neo4jServerError: Java/Maven missing, the server was never started here (no conf), or the
        tool failed (its output tail is in the message).
    """
    p = _paths(home)
    if not p["conf"].exists():
        raise Neo4jServerError(f"{p['conf']} does not exist: start the server of {home} once first")
    java = find_java()
    classpath, _ = ensure_classpath(java)
    cmd = [str(java), f"-Xmx{heap}", *JVM_OPENS, "-Dfile.encoding=UTF-8", "-cp", classpath, "org.neo4j.cli.AdminTool", *args]
    env = dict(os.environ, NEO4J_HOME=str(p["base"]), NEO4J_CONF=str(p["conf"].parent))
    try:
        proc = subprocess.run(cmd, cwd=p["base"], env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise Neo4jServerError(f"neo4j-admin {' '.join(args[:3])}: timed out after {timeout_s:.0f} s") from exc
    if proc.returncode != 0:
        raise Neo4jServerError(f"neo4j-admin {' '.join(args[:3])} failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout


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
        ``{"running", "pid", "uri", "bolt_port", "bolt_ok", "versions", "home", "log"}``; ``bolt_ok``
        is a real Bolt login when ``password`` is given, else only a TCP check of the port.
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
        "bolt_ok": bool(running and uri and _bolt_ok(uri, password)),
        "versions": versions(),
        "home": str(p["base"]),
        "log": str(p["log"]),
    }


# ============================================================================ command line
def main(argv: list[str] | None = None) -> int:
    """``python -m graph.neo4j_server start|stop|status``; exit 0 ok, 2 bad input, 1 failure."""
    parser = argparse.ArgumentParser(prog="python -m graph.neo4j_server", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--home", default=os.environ.get("SOCIALREC_HOME", ".socialrec"),
                        help="SOCIALREC_HOME (default: $SOCIALREC_HOME or ./.socialrec)")
    parser.add_argument("--port", type=int, default=None, help="Bolt port (default: from SOCIALREC_NEO4J_URI or 7687)")
    parser.add_argument("--heap", default=os.environ.get("SOCIALREC_NEO4J_HEAP", "2g"))
    parser.add_argument("--pagecache", default=os.environ.get("SOCIALREC_NEO4J_PAGECACHE", "512m"))
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for Bolt")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args(argv)

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
            uri = start(home, password, bolt_port=port, heap=args.heap, pagecache=args.pagecache,
                        timeout_s=args.timeout)
            out = {"uri": uri, "seconds": round(time.monotonic() - t0, 1), **status(home, password)}
        elif args.action == "stop":
            out = {"stopped": stop(home), "home": str(_paths(home)["base"])}
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
        print(f"Neo4j {out['versions']['neo4j']} up in {out['seconds']} s (pid {out['pid']}, log {out['log']})",
              file=sys.stderr)
    elif args.action == "stop":
        print("stopped" if out["stopped"] else "not running")
    else:
        print("running " + str(out["uri"]) if out["running"] else "not running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
