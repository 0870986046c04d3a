// The aggregator's PostgreSQL schema and statements (spec telemetry.md, "Aggregator"), and
// the diagnosis rules applied to a freshly recomputed window. Generated column lists are
// spelled out so the SQL reads as it runs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "store/migration.h"
#include "store/postgres/pg.h"

namespace gantry::telemetry::aggregator {

inline constexpr store::Migration kMigrations[] = {
    {1, "telemetry tables", R"sql(
-- Every accepted event once (the dedup key), with what the window statistics are computed
-- from, so a window can always be recomputed over all of its events.
CREATE TABLE events_seen (
  event_id UUID PRIMARY KEY,
  client_id TEXT NOT NULL,
  ts_ms BIGINT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  target TEXT NOT NULL,
  window_start_ts BIGINT NOT NULL,
  success BOOLEAN NOT NULL,
  error_stage TEXT,
  dns_ms DOUBLE PRECISION,
  tcp_ms DOUBLE PRECISION,
  tls_ms DOUBLE PRECISION,
  ttfb_ms DOUBLE PRECISION,
  throughput_kbps DOUBLE PRECISION
);
CREATE INDEX events_seen_window ON events_seen (client_id, target, window_start_ts);
CREATE INDEX events_seen_created ON events_seen (created_at);
-- Windows whose stored row is missing events (new or late ones), written with the events.
CREATE TABLE agg_dirty (
  client_id TEXT NOT NULL,
  target TEXT NOT NULL,
  window_start_ts BIGINT NOT NULL,
  PRIMARY KEY (client_id, target, window_start_ts)
);
CREATE TABLE agg_1m (
  client_id TEXT NOT NULL,
  target TEXT NOT NULL,
  window_start_ts BIGINT NOT NULL,
  count_total INTEGER NOT NULL,
  count_success INTEGER NOT NULL,
  count_error INTEGER NOT NULL,
  dns_errors INTEGER NOT NULL,
  tcp_errors INTEGER NOT NULL,
  tls_errors INTEGER NOT NULL,
  http_errors INTEGER NOT NULL,
  throughput_errors INTEGER NOT NULL,
  dns_p50 DOUBLE PRECISION,
  dns_p95 DOUBLE PRECISION,
  dns_p99 DOUBLE PRECISION,
  tcp_p50 DOUBLE PRECISION,
  tcp_p95 DOUBLE PRECISION,
  tcp_p99 DOUBLE PRECISION,
  tls_p50 DOUBLE PRECISION,
  tls_p95 DOUBLE PRECISION,
  tls_p99 DOUBLE PRECISION,
  ttfb_p50 DOUBLE PRECISION,
  ttfb_p95 DOUBLE PRECISION,
  ttfb_p99 DOUBLE PRECISION,
  throughput_p50 DOUBLE PRECISION,
  throughput_p95 DOUBLE PRECISION,
  throughput_p99 DOUBLE PRECISION,
  diagnosis_label TEXT,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (client_id, target, window_start_ts)
);
CREATE INDEX agg_1m_recent ON agg_1m (client_id, target, window_start_ts DESC);
CREATE INDEX agg_1m_labelled ON agg_1m (diagnosis_label) WHERE diagnosis_label IS NOT NULL;
CREATE TABLE alerts (
  id BIGSERIAL PRIMARY KEY,
  client_id TEXT NOT NULL,
  target TEXT NOT NULL,
  window_start_ts BIGINT NOT NULL,
  label TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (client_id, target, window_start_ts, label)
);
)sql"},
    {2, "when each dirty mark was first and last set", R"sql(
-- The flusher waits for a window to settle (no new events for flush_settle) before recomputing
-- it, but never longer than flush_max_wait from its first mark: while a backlog drains, a due
-- window is marked by nearly every batch, and recomputing it at each flush reread all of its
-- events again and again.
ALTER TABLE agg_dirty
  ADD COLUMN first_marked_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  ADD COLUMN marked_at TIMESTAMPTZ NOT NULL DEFAULT now();
)sql"},
    {3, "events_seen retention by a BRIN index", R"sql(
-- created_at only serves the retention delete, and rows arrive in created_at order, so a block
-- range index finds the old ones as well as a B-tree while costing nearly nothing per insert
-- (the B-tree was ~8% of a COPY into events_seen).
DROP INDEX events_seen_created;
CREATE INDEX events_seen_created ON events_seen USING brin (created_at);
)sql"},
    {4, "a batch marks its windows in one row", R"sql(
-- Each batch's transaction appends one row naming the windows its events fall in; the flusher
-- moves them into agg_dirty (kMoveMarks). One insert per batch and no key: lanes take no row
-- lock and never wait on each other or on a flush. Upserting ~1,000 marks per batch into
-- agg_dirty under a lock was a fifth of PostgreSQL's work per event.
CREATE TABLE agg_marks (
  clients TEXT[] NOT NULL,
  targets TEXT[] NOT NULL,
  windows BIGINT[] NOT NULL,
  marked_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
)sql"},
};

// A batch's events go straight into events_seen by COPY (kCopyEvents, under a savepoint). COPY
// has no ON CONFLICT, so a batch holding an event already stored (a redelivery after a crash)
// fails with a unique violation; that batch, rolled back to the savepoint, goes through a
// staging table of the session instead (COPY into it, then one INSERT … SELECT that skips the
// duplicates). The direct path does about 40% less work in the server (ON CONFLICT's
// speculative insertion and the second copy of every row), and duplicates are rare.
inline constexpr const char* kCopyEvents =
    "COPY events_seen (event_id, client_id, target, ts_ms, window_start_ts, success, error_stage, dns_ms, tcp_ms, "
    "tls_ms, ttfb_ms, throughput_kbps) FROM STDIN";

// The staging table is emptied at each commit and created once per session: a new session
// (after a reconnect) creates it again.
inline constexpr const char* kCreateStaging = R"sql(
CREATE TEMP TABLE IF NOT EXISTS events_staging (
  event_id UUID, client_id TEXT, target TEXT, ts_ms BIGINT, window_start_ts BIGINT, success BOOLEAN,
  error_stage TEXT, dns_ms DOUBLE PRECISION, tcp_ms DOUBLE PRECISION, tls_ms DOUBLE PRECISION,
  ttfb_ms DOUBLE PRECISION, throughput_kbps DOUBLE PRECISION
) ON COMMIT DELETE ROWS
)sql";
inline constexpr const char* kCopyStaging =
    "COPY events_staging (event_id, client_id, target, ts_ms, window_start_ts, success, error_stage, dns_ms, tcp_ms, "
    "tls_ms, ttfb_ms, throughput_kbps) FROM STDIN";

// Inserts the staged events not seen before and returns the distinct windows they fall in
// (empty when all were duplicates): client, target, window, how many of the batch were new
// (on every row), how many of them fall in this window.
inline constexpr const char* kInsertEvents = R"sql(
WITH ins AS (
  INSERT INTO events_seen (event_id, client_id, target, ts_ms, window_start_ts, success, error_stage,
                           dns_ms, tcp_ms, tls_ms, ttfb_ms, throughput_kbps)
  SELECT * FROM events_staging
  ON CONFLICT (event_id) DO NOTHING
  RETURNING client_id, target, window_start_ts
)
SELECT client_id, target, window_start_ts, (SELECT count(*) FROM ins), count(*) FROM ins GROUP BY 1, 2, 3
)sql";

// $1..$3: arrays of client_id, target, window_start_ts. Marks those windows dirty, in the same
// transaction as their events: the flusher moves the row into agg_dirty only once it is
// committed, so a mark never precedes its events.
inline constexpr const char* kMarkWindows =
    "INSERT INTO agg_marks (clients, targets, windows) VALUES ($1::text[], $2::text[], $3::bigint[])";

// Moves the committed batch marks into agg_dirty (a window's first mark is kept, its latest
// one updated: the flusher waits for a window to settle) and returns how many windows were
// marked. A batch committing meanwhile is not in this statement's snapshot, so the DELETE leaves
// its row for the next move. Windows are upserted in key order, and the caller holds a
// transaction advisory lock: moves by several aggregators take turns instead of deadlocking.
// Upserting a window that a flush holds waits for that flush to commit, which deletes the old
// mark; the new one is inserted after, for the events the flush did not see.
inline constexpr const char* kMoveMarks = R"sql(
WITH batch AS (
  DELETE FROM agg_marks RETURNING clients, targets, windows, marked_at
), win AS (
  SELECT m.c, m.t, m.w, min(b.marked_at) AS first_marked_at, max(b.marked_at) AS marked_at
  FROM batch b, unnest(b.clients, b.targets, b.windows) AS m(c, t, w)
  GROUP BY 1, 2, 3
), up AS (
  INSERT INTO agg_dirty (client_id, target, window_start_ts, first_marked_at, marked_at)
  SELECT c, t, w, first_marked_at, marked_at FROM win ORDER BY 1, 2, 3
  ON CONFLICT (client_id, target, window_start_ts)
    DO UPDATE SET marked_at = greatest(agg_dirty.marked_at, EXCLUDED.marked_at)
  RETURNING 1
)
SELECT count(*) FROM up
)sql";

// The key the lanes of earlier versions took to upsert their marks into agg_dirty: while old
// and new aggregators share a database, their upserts and these moves take turns too.
inline constexpr int64_t kMoveMarksLock = 7411020431;

// $1: newest window_start_ts that is due; $2: most windows; $3: settle time and $4: longest
// wait, in ms; $5: every dirty window at once (shutdown). Recomputes the rows of due windows
// that have settled (no events for $3) or waited $4 since their first mark, from all their
// events, and clears their dirty marks; returns the windows recomputed.
inline constexpr const char* kFlushWindows = R"sql(
WITH due AS (
  SELECT client_id, target, window_start_ts FROM agg_dirty
  WHERE window_start_ts <= $1::bigint
    AND ($5::bool OR marked_at <= now() - $3::bigint * interval '1 millisecond'
                  OR first_marked_at <= now() - $4::bigint * interval '1 millisecond')
  ORDER BY window_start_ts
  LIMIT $2::int
  FOR UPDATE SKIP LOCKED
), stats AS (
  -- Per window by its index (events_seen_window), whatever the planner's statistics say: a
  -- table filling fast is often unanalysed, and a plan scanning all of events_seen per flush
  -- made each flush cost as much as the whole table.
  SELECT d.client_id, d.target, d.window_start_ts, s.*
  FROM due d CROSS JOIN LATERAL (
    SELECT
      count(*) AS count_total,
      count(*) FILTER (WHERE e.success) AS count_success,
      count(*) FILTER (WHERE NOT e.success) AS count_error,
      count(*) FILTER (WHERE e.error_stage = 'DNS') AS dns_errors,
      count(*) FILTER (WHERE e.error_stage = 'TCP') AS tcp_errors,
      count(*) FILTER (WHERE e.error_stage = 'TLS') AS tls_errors,
      count(*) FILTER (WHERE e.error_stage = 'HTTP') AS http_errors,
      count(*) FILTER (WHERE e.error_stage = 'throughput') AS throughput_errors,
      percentile_cont(0.5) WITHIN GROUP (ORDER BY e.dns_ms) FILTER (WHERE e.success) AS dns_p50,
      percentile_cont(0.95) WITHIN GROUP (ORDER BY e.dns_ms) FILTER (WHERE e.success) AS dns_p95,
      percentile_cont(0.99) WITHIN GROUP (ORDER BY e.dns_ms) FILTER (WHERE e.success) AS dns_p99,
      percentile_cont(0.5) WITHIN GROUP (ORDER BY e.tcp_ms) FILTER (WHERE e.success) AS tcp_p50,
      percentile_cont(0.95) WITHIN GROUP (ORDER BY e.tcp_ms) FILTER (WHERE e.success) AS tcp_p95,
      percentile_cont(0.99) WITHIN GROUP (ORDER BY e.tcp_ms) FILTER (WHERE e.success) AS tcp_p99,
      percentile_cont(0.5) WITHIN GROUP (ORDER BY e.tls_ms) FILTER (WHERE e.success) AS tls_p50,
      percentile_cont(0.95) WITHIN GROUP (ORDER BY e.tls_ms) FILTER (WHERE e.success) AS tls_p95,
      percentile_cont(0.99) WITHIN GROUP (ORDER BY e.tls_ms) FILTER (WHERE e.success) AS tls_p99,
      percentile_cont(0.5) WITHIN GROUP (ORDER BY e.ttfb_ms) FILTER (WHERE e.success) AS ttfb_p50,
      percentile_cont(0.95) WITHIN GROUP (ORDER BY e.ttfb_ms) FILTER (WHERE e.success) AS ttfb_p95,
      percentile_cont(0.99) WITHIN GROUP (ORDER BY e.ttfb_ms) FILTER (WHERE e.success) AS ttfb_p99,
      percentile_cont(0.5) WITHIN GROUP (ORDER BY e.throughput_kbps) FILTER (WHERE e.success) AS throughput_p50,
      percentile_cont(0.95) WITHIN GROUP (ORDER BY e.throughput_kbps) FILTER (WHERE e.success) AS throughput_p95,
      percentile_cont(0.99) WITHIN GROUP (ORDER BY e.throughput_kbps) FILTER (WHERE e.success) AS throughput_p99
    FROM events_seen e
    WHERE e.client_id = d.client_id AND e.target = d.target AND e.window_start_ts = d.window_start_ts
  ) s
  WHERE s.count_total > 0
), up AS (
  INSERT INTO agg_1m (client_id, target, window_start_ts, count_total, count_success, count_error, dns_errors, tcp_errors, tls_errors, http_errors, throughput_errors, dns_p50, dns_p95, dns_p99, tcp_p50, tcp_p95, tcp_p99, tls_p50, tls_p95, tls_p99, ttfb_p50, ttfb_p95, ttfb_p99, throughput_p50, throughput_p95, throughput_p99, updated_at)
  SELECT client_id, target, window_start_ts, count_total, count_success, count_error, dns_errors, tcp_errors, tls_errors, http_errors, throughput_errors, dns_p50, dns_p95, dns_p99, tcp_p50, tcp_p95, tcp_p99, tls_p50, tls_p95, tls_p99, ttfb_p50, ttfb_p95, ttfb_p99, throughput_p50, throughput_p95, throughput_p99, now() FROM stats
  ON CONFLICT (client_id, target, window_start_ts) DO UPDATE SET count_total = EXCLUDED.count_total, count_success = EXCLUDED.count_success, count_error = EXCLUDED.count_error, dns_errors = EXCLUDED.dns_errors, tcp_errors = EXCLUDED.tcp_errors, tls_errors = EXCLUDED.tls_errors, http_errors = EXCLUDED.http_errors, throughput_errors = EXCLUDED.throughput_errors, dns_p50 = EXCLUDED.dns_p50, dns_p95 = EXCLUDED.dns_p95, dns_p99 = EXCLUDED.dns_p99, tcp_p50 = EXCLUDED.tcp_p50, tcp_p95 = EXCLUDED.tcp_p95, tcp_p99 = EXCLUDED.tcp_p99, tls_p50 = EXCLUDED.tls_p50, tls_p95 = EXCLUDED.tls_p95, tls_p99 = EXCLUDED.tls_p99, ttfb_p50 = EXCLUDED.ttfb_p50, ttfb_p95 = EXCLUDED.ttfb_p95, ttfb_p99 = EXCLUDED.ttfb_p99, throughput_p50 = EXCLUDED.throughput_p50, throughput_p95 = EXCLUDED.throughput_p95, throughput_p99 = EXCLUDED.throughput_p99, updated_at = now()
), del AS (
  DELETE FROM agg_dirty a USING due d
  WHERE a.client_id = d.client_id AND a.target = d.target AND a.window_start_ts = d.window_start_ts
)
SELECT client_id, target, window_start_ts FROM due
)sql";

// The window itself and the latest 10 earlier windows with at least $4 (min_success) successes.
inline constexpr const char* kBaseline = R"sql(
(SELECT window_start_ts, count_success, dns_p95, tcp_p95, tls_p95, ttfb_p95, throughput_p50 FROM agg_1m
 WHERE client_id = $1 AND target = $2 AND window_start_ts = $3::bigint)
UNION ALL
(SELECT window_start_ts, count_success, dns_p95, tcp_p95, tls_p95, ttfb_p95, throughput_p50 FROM agg_1m
 WHERE client_id = $1 AND target = $2 AND window_start_ts < $3::bigint AND count_success >= $4::bigint
 ORDER BY window_start_ts DESC LIMIT 10)
)sql";

// Sets (or clears) a window's label; a new label also raises an alert, once.
inline constexpr const char* kSetLabel = R"sql(
WITH up AS (
  UPDATE agg_1m SET diagnosis_label = $4 WHERE client_id = $1 AND target = $2 AND window_start_ts = $3::bigint
)
INSERT INTO alerts (client_id, target, window_start_ts, label)
SELECT $1, $2, $3::bigint, $4 WHERE $4 IS NOT NULL
ON CONFLICT DO NOTHING
)sql";

struct WindowStats {
  int64_t window = 0;
  int64_t count_success = 0;
  double dns_p95 = 0, tcp_p95 = 0, tls_p95 = 0, ttfb_p95 = 0, throughput_p50 = 0;  // unmeasured = 0
};

// The spec's rules and their defaults.
struct Thresholds {
  int64_t min_success = 5;     // in the window, and in each baseline window
  int64_t min_baseline = 3;    // baseline windows needed
  double dns_share = 0.60;     // dns_p95 / total
  double dns_rise = 0.50;      // (dns_p95 - mean) / mean
  double hs_sigmas = 2.0;      // handshake above baseline + this many sigma
  double hs_rise = 1.0;        // or this relative rise
  double ttfb_sigmas = 2.0;
  double throughput_drop = 0.30;
  // Our addition: a rise smaller than this many ms never labels a window (dns, handshake,
  // server rules). On a quiet path the baseline's sigma is near zero and sub-millisecond noise
  // would otherwise read as "2 sigma above"; 0 restores the spec's rules exactly.
  double min_change_ms = 1.0;
};

// The thresholds as settings (diagnosis_*), shared by the aggregator and the diagnoser.
void bind(core::config::Schema& s, Thresholds* t);

// dns-bound, handshake-bound, server-bound, throughput-bound (first match), or nothing.
// `baseline` holds the earlier windows (count_success >= min_success), newest first.
std::optional<std::string> diagnose(const WindowStats& cur, const std::vector<WindowStats>& baseline,
                                    const Thresholds& t = {});

// Reads a window and its baseline from agg_1m, applies diagnose() and stores the label (and an
// alert for a new label). Returns the label, or nullopt when none applies (or no such row).
core::Result<std::optional<std::string>> relabel(store::postgres::Connection& db, const std::string& client,
                                                 const std::string& target, int64_t window, const Thresholds& t = {});

}  // namespace gantry::telemetry::aggregator
