// The Orchestrator's tables (spec orchestrator.md), applied by `gantry migrate orchestrator` and
// by `gantry orchestrator` at start (concurrent migrators apply each version once).
//
// cptm8domain is the scanners' table, column for column. The trigger notifies kNotifyChannel on
// every insert, update and delete with a JSON payload:
//   {"id":"<uuid>","op":"INSERT"|"UPDATE"|"DELETE","enabled":true|false,"ts":<µs since epoch>,
//    "schema":"<the table's schema>"}
// `enabled` is the row's value after the change (false for a delete), so a listener keeps its
// cache without reading the row back; `ts` is the trigger's clock_timestamp(), from which the
// notify-to-confirm latency is measured. The channel is the original guide's `domain_updated`;
// channels are per database, so `schema` lets deployments in several schemas of one database
// (POSTGRESQL_SCHEMA) ignore each other's changes.
#pragma once

#include <array>

#include <string>

#include "store/migration.h"
#include "store/postgres/pg.h"

namespace gantry::orchestrator {

inline constexpr const char* kNotifyChannel = "domain_updated";
// The Orchestrator's applied versions, apart from other systems' in the same database.
inline constexpr const char* kVersionTable = "orchestrator_schema_migrations";

inline constexpr std::array<store::Migration, 2> kMigrations{{
    {1, "cptm8domain",
     R"sql(
CREATE TABLE IF NOT EXISTS cptm8domain (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name varchar(200) NOT NULL UNIQUE,
  companyname varchar(50),
  enabled boolean NOT NULL DEFAULT true
);
)sql"},
    {2, "cptm8domain NOTIFY trigger",
     R"sql(
CREATE OR REPLACE FUNCTION gantry_notify_domain_change() RETURNS trigger AS $$
DECLARE
  r record;
BEGIN
  IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
  PERFORM pg_notify('domain_updated', json_build_object(
    'id', r.id,
    'op', TG_OP,
    'enabled', CASE WHEN TG_OP = 'DELETE' THEN false ELSE r.enabled END,
    'ts', (extract(epoch FROM clock_timestamp()) * 1000000)::bigint,
    'schema', TG_TABLE_SCHEMA)::text);
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS cptm8domain_notify ON cptm8domain;
CREATE TRIGGER cptm8domain_notify AFTER INSERT OR UPDATE OR DELETE ON cptm8domain
  FOR EACH ROW EXECUTE FUNCTION gantry_notify_domain_change();
)sql"},
}};

// Creates `schema` when missing (POSTGRESQL_SCHEMA; the connection's search_path names it),
// then applies kMigrations in it. `schema` must already be validated (letters, digits, '_').
core::Status apply_schema(store::postgres::Connection& c, const std::string& schema);

}  // namespace gantry::orchestrator
