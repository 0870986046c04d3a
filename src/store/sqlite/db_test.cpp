#include "store/sqlite/db.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <filesystem>

namespace gantry::store::sqlite {
namespace {

using core::Code;

constexpr std::array<Migration, 2> kMigrations{{
    {1, "agents", "CREATE TABLE agents (agent_id TEXT PRIMARY KEY, status TEXT NOT NULL, last_heartbeat INTEGER)"},
    {2, "configurations", "CREATE TABLE configurations (id INTEGER PRIMARY KEY AUTOINCREMENT, etag TEXT NOT NULL UNIQUE, "
                          "config_data TEXT NOT NULL)"},
}};

struct DbTest : ::testing::Test {
  std::string dir = ::testing::TempDir() + "/gantry_sqlite_" + std::to_string(::getpid()) + "_" +
                    ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::string path = dir + "/sub/data.db";  // the directory is created on open
  void TearDown() override { std::filesystem::remove_all(dir); }
  std::unique_ptr<Db> open() {
    auto db = Db::open(path);
    EXPECT_TRUE(db.is_ok()) << db.status().to_string();
    return std::move(*db);
  }
};

TEST_F(DbTest, MigratesOnceAndPersists) {
  {
    auto db = open();
    ASSERT_TRUE(db->migrate(kMigrations).is_ok());
    EXPECT_EQ(*db->schema_version(), 2);
    auto ins = db->prepare("INSERT INTO agents(agent_id, status) VALUES (?, ?)");
    ASSERT_TRUE(ins.is_ok());
    ASSERT_TRUE(ins->bind(1, "a1").bind(2, "online").run().is_ok());
    EXPECT_EQ(ins->changes(), 1);
    ASSERT_TRUE(ins->bind(1, "a2").bind(2, "stale").run().is_ok());  // reused after run()
  }
  auto db = open();
  ASSERT_TRUE(db->migrate(kMigrations).is_ok());  // nothing to do the second time
  auto q = db->prepare("SELECT agent_id, status, last_heartbeat FROM agents ORDER BY agent_id");
  ASSERT_TRUE(q.is_ok());
  ASSERT_TRUE(*q->step());
  EXPECT_EQ(q->text(0), "a1");
  EXPECT_TRUE(q->is_null(2));
  ASSERT_TRUE(*q->step());
  EXPECT_EQ(q->text(1), "stale");
  EXPECT_FALSE(*q->step());
  auto mode = db->prepare("PRAGMA journal_mode");
  ASSERT_TRUE(*mode->step());
  EXPECT_EQ(mode->text(0), "wal");
}

TEST_F(DbTest, ConstraintViolationIsAlreadyExistsAndChangesNothing) {
  auto db = open();
  ASSERT_TRUE(db->migrate(kMigrations).is_ok());
  auto ins = db->prepare("INSERT INTO configurations(etag, config_data) VALUES (?, ?)");
  ASSERT_TRUE(ins->bind(1, "e1").bind(2, "{}").run().is_ok());
  Status dup = ins->bind(1, "e1").bind(2, "{\"url\":\"x\"}").run();
  EXPECT_EQ(dup.code(), Code::kAlreadyExists);
  EXPECT_NE(dup.to_string().find("UNIQUE constraint failed"), std::string::npos) << dup.to_string();
  auto n = db->prepare("SELECT count(*) FROM configurations");
  ASSERT_TRUE(*n->step());
  EXPECT_EQ(n->int64(0), 1);
}

// Every constraint failure used to read as kAlreadyExists (a 409 for a missing value).
TEST_F(DbTest, OnlyDuplicateKeysAreAlreadyExists) {
  auto db = open();
  ASSERT_TRUE(db->migrate(kMigrations).is_ok());
  ASSERT_TRUE(db->exec("CREATE TABLE checked (n INTEGER CHECK (n > 0))").is_ok());
  auto pk = db->prepare("INSERT INTO agents(agent_id, status) VALUES (?, ?)");
  ASSERT_TRUE(pk->bind(1, "a1").bind(2, "online").run().is_ok());
  EXPECT_EQ(pk->bind(1, "a1").bind(2, "online").run().code(), Code::kAlreadyExists);
  Status missing = pk->bind(1, "a2").bind(2, std::nullopt).run();
  EXPECT_EQ(missing.code(), Code::kInvalidArgument) << missing.to_string();
  EXPECT_NE(missing.to_string().find("NOT NULL constraint failed"), std::string::npos) << missing.to_string();
  EXPECT_EQ(db->exec("INSERT INTO checked VALUES (-1)").code(), Code::kInvalidArgument);
}

// changes() used to be the connection's latest statement's count, not this statement's.
TEST_F(DbTest, ChangesAreTheStatementsOwn) {
  auto db = open();
  ASSERT_TRUE(db->migrate(kMigrations).is_ok());
  ASSERT_TRUE(db->exec("INSERT INTO agents(agent_id, status) VALUES ('a','x'),('b','x'),('c','y')").is_ok());
  auto upd = db->prepare("UPDATE agents SET status = 'z' WHERE status = 'x'");
  ASSERT_TRUE(upd->run().is_ok());
  auto del = db->prepare("DELETE FROM agents WHERE agent_id = 'c'");
  ASSERT_TRUE(del->run().is_ok());
  EXPECT_EQ(upd->changes(), 2);
  EXPECT_EQ(del->changes(), 1);
}

TEST_F(DbTest, TransactionRollsBackOnFailure) {
  auto db = open();
  ASSERT_TRUE(db->migrate(kMigrations).is_ok());
  Status s = db->transaction([&]() -> Status {
    GANTRY_RETURN_IF_ERROR(db->exec("INSERT INTO agents VALUES ('x', 'online', 1)"));
    return core::invalid_argument("changed my mind");
  });
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  auto n = db->prepare("SELECT count(*) FROM agents");
  ASSERT_TRUE(*n->step());
  EXPECT_EQ(n->int64(0), 0);
  EXPECT_TRUE(db->transaction([&] { return db->exec("INSERT INTO agents VALUES ('y', 'online', 2)"); }).is_ok());
  n->reset();
  ASSERT_TRUE(*n->step());
  EXPECT_EQ(n->int64(0), 1);
}

TEST_F(DbTest, FailedMigrationLeavesVersionAndSchemaUnchanged) {
  auto db = open();
  ASSERT_TRUE(db->migrate(std::span(kMigrations).first(1)).is_ok());
  constexpr std::array<Migration, 2> broken{{kMigrations[0], {2, "broken", "CREATE TABLE t2 (a INT); CREATE TABLE t2 (b INT);"}}};
  Status s = db->migrate(broken);
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.to_string().find("sqlite.migrate 2"), std::string::npos) << s.to_string();
  EXPECT_EQ(*db->schema_version(), 1);
  auto t = db->prepare("SELECT count(*) FROM sqlite_master WHERE name = 't2'");
  ASSERT_TRUE(*t->step());
  EXPECT_EQ(t->int64(0), 0);  // the first statement of the failed migration was rolled back too
}

TEST_F(DbTest, ChangedMigrationIsReported) {
  auto db = open();
  ASSERT_TRUE(db->migrate(kMigrations).is_ok());
  constexpr std::array<Migration, 1> renamed{{{1, "agents table", "SELECT 1"}}};
  Status s = db->migrate(renamed);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_NE(s.to_string().find("was applied as 'agents'"), std::string::npos);
}

TEST_F(DbTest, BadSqlNamesTheStatement) {
  auto db = open();
  auto st = db->prepare("SELEC nonsense");
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.status().to_string().find("[SELEC nonsense]"), std::string::npos) << st.status().to_string();
}

TEST_F(DbTest, UnopenablePathIsAClearError) {
  auto db = Db::open("/dev/null/x/data.db");
  ASSERT_FALSE(db.is_ok());
  EXPECT_EQ(db.status().code(), Code::kFailedPrecondition);
}

}  // namespace
}  // namespace gantry::store::sqlite
