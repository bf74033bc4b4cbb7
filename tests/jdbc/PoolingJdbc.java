// Run by tests/pooling.rs: the PostgreSQL JDBC driver (Debian's libpostgresql-jdbc-java)
// through a transaction-mode rolegate port given as args[0], over a pool of two server
// connections. Any failed check throws (non-zero exit).

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Types;
import java.util.ArrayList;
import java.util.List;

public class PoolingJdbc {
    static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/postgres?user=postgres";
        sharedStatements(url);
        try (Connection c = DriverManager.getConnection(url + "&prepareThreshold=1")) {
            transactions(c);
        }
        try (Connection c = DriverManager.getConnection(url)) {
            queryTimeout(c);
        }
        System.out.println("ok");
    }

    /// Three connections over two servers, each running its own PreparedStatement: from the
    /// fifth run the driver uses a named server statement (prepareThreshold 5), prepared on
    /// whichever server the connection had then and run later on whichever it has now.
    static void sharedStatements(String url) throws SQLException {
        List<Connection> conns = new ArrayList<>();
        List<PreparedStatement> stmts = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            Connection c = DriverManager.getConnection(url);
            conns.add(c);
            stmts.add(c.prepareStatement("SELECT ?::int * 2, ?::text"));
        }
        for (int round = 0; round < 20; round++) {
            for (int i = 0; i < stmts.size(); i++) {
                PreparedStatement ps = stmts.get(i);
                int n = round * 10 + i;
                ps.setInt(1, n);
                ps.setString(2, "c" + i);
                try (ResultSet rs = ps.executeQuery()) {
                    check(rs.next(), "round " + round + ": no row");
                    check(rs.getInt(1) == n * 2, "round " + round + ": " + rs.getInt(1) + " for " + n);
                    check(rs.getString(2).equals("c" + i), "round " + round + ": " + rs.getString(2));
                    check(!rs.next(), "round " + round + ": a second row");
                }
            }
        }
        for (Connection c : conns) {
            c.close();
        }
    }

    /// Batches, commit and rollback, an error inside a transaction, a cursor read in pieces
    /// and parameter metadata, with every statement server-prepared (prepareThreshold 1).
    static void transactions(Connection c) throws SQLException {
        try (Statement s = c.createStatement()) {
            s.execute("CREATE TABLE jdbc_items (id int PRIMARY KEY, name text)");
        }
        c.setAutoCommit(false);
        try (PreparedStatement ins = c.prepareStatement("INSERT INTO jdbc_items VALUES (?, ?)")) {
            for (int i = 1; i <= 100; i++) {
                ins.setInt(1, i);
                ins.setString(2, "item " + i);
                ins.addBatch();
            }
            check(ins.executeBatch().length == 100, "batch of 100");
        }
        c.commit();
        try (PreparedStatement ins = c.prepareStatement("INSERT INTO jdbc_items VALUES (?, ?)")) {
            ins.setInt(1, 1000);
            ins.setString(2, "rolled back");
            check(ins.executeUpdate() == 1, "insert");
        }
        c.rollback();
        try (Statement s = c.createStatement()) {
            s.executeQuery("SELECT 1 / 0");
            check(false, "division by zero must fail");
        } catch (SQLException e) {
            check("22012".equals(e.getSQLState()), "expected 22012, got " + e.getSQLState());
        }
        c.rollback();
        // setFetchSize inside a transaction: Execute with a row limit, PortalSuspended.
        try (PreparedStatement q = c.prepareStatement("SELECT id FROM jdbc_items ORDER BY id")) {
            q.setFetchSize(7);
            int rows = 0;
            long sum = 0;
            try (ResultSet rs = q.executeQuery()) {
                while (rs.next()) {
                    rows++;
                    sum += rs.getInt(1);
                }
            }
            check(rows == 100 && sum == 5050, "cursor read " + rows + " rows, sum " + sum);
        }
        c.commit();
        try (PreparedStatement q = c.prepareStatement("SELECT name FROM jdbc_items WHERE id = ?")) {
            check(q.getParameterMetaData().getParameterCount() == 1, "one parameter");
            check(q.getParameterMetaData().getParameterType(1) == Types.INTEGER, "an int4 parameter");
            q.setInt(1, 42);
            try (ResultSet rs = q.executeQuery()) {
                check(rs.next() && rs.getString(1).equals("item 42"), "item 42");
            }
        }
        c.commit();
        c.setAutoCommit(true);
    }

    /// setQueryTimeout: the driver sends a CancelRequest with the key rolegate gave it.
    static void queryTimeout(Connection c) throws SQLException {
        long start = System.nanoTime();
        try (Statement s = c.createStatement()) {
            s.setQueryTimeout(1);
            s.execute("SELECT pg_sleep(20)");
            check(false, "pg_sleep(20) must be cancelled");
        } catch (SQLException e) {
            check("57014".equals(e.getSQLState()), "expected 57014, got " + e.getSQLState() + ": " + e);
        }
        long ms = (System.nanoTime() - start) / 1_000_000;
        check(ms < 10_000, "cancelled after " + ms + " ms");
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT 1")) {
            check(rs.next() && rs.getInt(1) == 1, "the connection works after the cancel");
        }
    }
}
