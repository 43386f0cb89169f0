import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.server.CommunityBootstrapper;

/**
 * A real Neo4j Community server (Bolt, and HTTP with Neo4j Browser when enabled), run from the Maven jars.
 *
 * <p>The server is Neo4j's own {@link CommunityBootstrapper} (what {@code neo4j console} runs), so
 * every connector of {@code neo4j.conf} works as in a tarball install: Bolt, the HTTP API and, with
 * the {@code org.neo4j.client:neo4j-browser} jar on the classpath, Neo4j Browser at {@code /browser/}.
 *
 * <p>Started by {@code graph/neo4j_server.py}: {@code java <jvm opts> -cp <classes>:<jars> Launcher HOME}.
 * HOME holds {@code conf/neo4j.conf} (written by the Python side: Bolt address, page cache,
 * auth, plugin directory, ...), {@code data/}, {@code logs/} and {@code plugins/}.
 * The password of user {@code neo4j} is read from the environment variable
 * {@code SOCIALREC_NEO4J_PASSWORD} (never from the command line, which {@code ps} shows) and set
 * on every start, so the configured password is always the one in force.
 *
 * <p>Prints {@code SOCIALREC-NEO4J READY} once the DBMS is up, and stops cleanly on SIGTERM/SIGINT
 * (a shutdown hook calls {@link DatabaseManagementService#shutdown()}).
 */
public final class Launcher {
    private Launcher() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: Launcher NEO4J_HOME");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        Path conf = home.resolve("conf").resolve("neo4j.conf");
        if (!Files.isRegularFile(conf)) {
            System.err.println("missing config file " + conf);
            System.exit(2);
        }
        String password = System.getenv("SOCIALREC_NEO4J_PASSWORD");
        if (password == null || password.length() < 8) {
            System.err.println("SOCIALREC_NEO4J_PASSWORD must be set (8 characters or more)");
            System.exit(2);
        }

        long t0 = System.nanoTime();
        CommunityBootstrapper server = new CommunityBootstrapper();
        int code = server.start(home, conf, Map.of(), false, false);
        if (code != 0) {
            System.err.println("SOCIALREC-NEO4J FAILED with code " + code);
            System.exit(code);
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("SOCIALREC-NEO4J STOPPING");
            try {
                server.stop();
            } finally {
                System.out.println("SOCIALREC-NEO4J STOPPED");
                System.out.flush();
                stopped.countDown();
            }
        }, "socialrec-neo4j-shutdown"));

        DatabaseManagementService service = server.getDatabaseManagementService();
        setPassword(service.database("system"), password);
        long ms = (System.nanoTime() - t0) / 1_000_000;
        System.out.println("SOCIALREC-NEO4J READY in " + ms + " ms");
        System.out.flush();
        stopped.await();
    }

    /** Make {@code password} the password of user neo4j, with no change required at first login. */
    private static void setPassword(GraphDatabaseService system, String password) {
        try {
            system.executeTransactionally(
                    "ALTER USER neo4j SET PLAINTEXT PASSWORD $password CHANGE NOT REQUIRED",
                    Map.of("password", password));
        } catch (RuntimeException e) {
            // Neo4j refuses to "change" a password to the one already set: nothing to do then.
            String msg = String.valueOf(e.getMessage()) + " " + String.valueOf(e.getCause());
            if (!msg.contains("cannot be the same")) {
                throw e;
            }
        }
    }
}
