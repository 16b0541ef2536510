// Embedded Neo4j Community server with a Bolt connector, for local development and tests.
// Started by scripts/services/neo4j.sh in Java source-file mode (no build step):
//
//   java -cp '.services/neo4j/lib/*' scripts/services/neo4j/Neo4jLauncher.java HOME_DIR BOLT_PORT
//
// The password of user `neo4j` comes from the environment variable QMTL_NEO4J_PASSWORD and is
// applied on every start (idempotently), so the Python `neo4j` driver can connect to
// bolt://127.0.0.1:BOLT_PORT with basic auth as with any server. Databases live under
// HOME_DIR/data and Neo4j's own debug log under HOME_DIR/logs; the user log goes to stdout.
// After Bolt is up and the password is in place it prints one line starting with
// "QMTL neo4j ready", then runs until SIGTERM/SIGINT, which shuts the DBMS down cleanly.

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.io.ByteUnit;
import org.neo4j.logging.Level;
import org.neo4j.logging.log4j.Log4jLogProvider;

public final class Neo4jLauncher {
    private static final String HOST = "127.0.0.1";
    private static final String USER = "neo4j";
    private static final int MIN_PASSWORD_LENGTH = 8; // Neo4j 5 default for dbms.security.auth_minimum_password_length

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            fail("usage: Neo4jLauncher HOME_DIR BOLT_PORT (password in env QMTL_NEO4J_PASSWORD)");
        }
        Path home = Path.of(args[0]).toAbsolutePath().normalize();
        int port = parsePort(args[1]);
        String password = System.getenv("QMTL_NEO4J_PASSWORD");
        if (password == null || password.length() < MIN_PASSWORD_LENGTH) {
            fail("QMTL_NEO4J_PASSWORD must be set to at least " + MIN_PASSWORD_LENGTH + " characters");
        }
        long pageCacheMb = parsePositive("QMTL_NEO4J_PAGECACHE_MB",
                System.getenv().getOrDefault("QMTL_NEO4J_PAGECACHE_MB", "256"));
        Files.createDirectories(home);

        long started = System.nanoTime();
        Log4jLogProvider userLog = new Log4jLogProvider(System.out, Level.INFO);
        DatabaseManagementService dbms;
        try {
            dbms = buildDbms(home, port, pageCacheMb, userLog);
        } catch (RuntimeException e) {
            e.printStackTrace();
            System.err.println("QMTL neo4j error: the DBMS did not start: " + e.getMessage());
            System.exit(1);
            return;
        }

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("QMTL neo4j shutting down");
            System.out.flush();
            try {
                dbms.shutdown();
                System.out.println("QMTL neo4j stopped cleanly");
            } catch (Throwable t) {
                System.out.println("QMTL neo4j shutdown failed: " + t);
            } finally {
                userLog.close();
                System.out.flush();
                stopped.countDown();
            }
        }, "qmtl-neo4j-shutdown"));

        String version;
        try {
            GraphDatabaseService system = dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME);
            setPassword(system, password);
            // Also fails start-up (before the readiness line) when the default database is not usable.
            version = dbms.database(GraphDatabaseSettings.DEFAULT_DATABASE_NAME).executeTransactionally(
                    "CALL dbms.components() YIELD name, versions, edition "
                            + "WHERE name = 'Neo4j Kernel' RETURN versions[0] + ' ' + edition AS v",
                    Map.of(), result -> result.hasNext() ? String.valueOf(result.next().get("v")) : "unknown");
        } catch (RuntimeException e) {
            e.printStackTrace();
            System.err.println("QMTL neo4j error: start-up failed: " + e.getMessage());
            System.exit(1); // runs the shutdown hook, which closes the DBMS
            return;
        }

        System.out.printf("QMTL neo4j ready bolt://%s:%d version %s (home %s, started in %.1fs)%n",
                HOST, port, version, home, (System.nanoTime() - started) / 1e9);
        System.out.flush();
        stopped.await(); // the shutdown hook releases this; the JVM then exits
    }

    private static DatabaseManagementService buildDbms(
            Path home, int port, long pageCacheMb, Log4jLogProvider userLog) {
        return new DatabaseManagementServiceBuilder(home)
                .setUserLogProvider(userLog)
                .setConfig(Map.of(
                        BoltConnector.enabled, true,
                        BoltConnector.listen_address, new SocketAddress(HOST, port),
                        BoltConnector.advertised_address, new SocketAddress(HOST, port),
                        HttpConnector.enabled, false,
                        HttpsConnector.enabled, false,
                        GraphDatabaseSettings.auth_enabled, true,
                        GraphDatabaseSettings.pagecache_memory, ByteUnit.mebiBytes(pageCacheMb),
                        GraphDatabaseSettings.udc_enabled, false,
                        // A development store: keep transaction logs small instead of 2 days' worth.
                        GraphDatabaseSettings.keep_logical_logs, "100M size",
                        GraphDatabaseSettings.preallocate_logical_logs, false))
                // Netty's graceful shutdown otherwise idles 5s per event loop (10s per stop).
                .setConfig(GraphDatabaseInternalSettings.netty_server_shutdown_quiet_period, 1)
                .build();
    }

    /**
     * Sets the password of user neo4j on the system database and clears "change required".
     * Neo4j refuses to set a password equal to the current one, which is exactly the
     * already-configured case, so that answer counts as success: this runs on every start.
     */
    private static void setPassword(GraphDatabaseService system, String password) {
        try {
            system.executeTransactionally(
                    "ALTER USER " + USER + " SET PASSWORD $pw CHANGE NOT REQUIRED", Map.of("pw", password));
            System.out.println("QMTL neo4j password of user '" + USER + "' set");
        } catch (RuntimeException e) {
            if (!messages(e).contains("Old password and new password cannot be the same")) {
                throw e;
            }
            // Same password as before: make sure it is not left as "change required".
            system.executeTransactionally("ALTER USER " + USER + " SET PASSWORD CHANGE NOT REQUIRED");
            System.out.println("QMTL neo4j password of user '" + USER + "' already set");
        }
    }

    private static String messages(Throwable t) {
        StringBuilder all = new StringBuilder();
        for (Throwable c = t; c != null; c = c.getCause()) {
            all.append(c.getMessage()).append('\n');
        }
        return all.toString();
    }

    private static int parsePort(String text) {
        try {
            int port = Integer.parseInt(text);
            if (port > 0 && port < 65536) {
                return port;
            }
        } catch (NumberFormatException ignored) {
            // reported below
        }
        fail("invalid Bolt port: " + text);
        return -1;
    }

    private static long parsePositive(String name, String text) {
        try {
            long value = Long.parseLong(text.trim());
            if (value > 0) {
                return value;
            }
        } catch (NumberFormatException ignored) {
            // reported below
        }
        fail(name + " must be a positive number, got '" + text + "'");
        return -1;
    }

    private static void fail(String message) {
        System.err.println("QMTL neo4j error: " + message);
        System.exit(2);
    }
}
