// Graphile Worker (LISTEN/NOTIFY job queue on PostgreSQL), the peer of `bench/run orchestrator`:
// add_job -> task started, one job at a time (each started before the next is added), like
// the orchestrator's insert -> kick delivered. Prints p50 and p99 in ms as JSON.
//   node latency.js CONNECTION_STRING N
const { run, makeWorkerUtils } = require("graphile-worker");

async function main() {
  const connectionString = process.argv[2];
  const n = parseInt(process.argv[3] || "1000", 10);
  let started = null;
  const runner = await run({
    connectionString,
    concurrency: 1,
    noHandleSignals: true,
    pollInterval: 60000, // LISTEN/NOTIFY only, as the orchestrator: the poll is a safety net
    logger: new (require("graphile-worker").Logger)(() => () => {}),
    taskList: {
      kick: async () => {
        if (started) started(process.hrtime.bigint());
      },
    },
  });
  const utils = await makeWorkerUtils({ connectionString });
  const lat = [];
  for (let i = 0; i < n + 20; i++) {
    const done = new Promise((resolve) => (started = resolve));
    const t0 = process.hrtime.bigint();
    await utils.addJob("kick", { i });
    const t1 = await done;
    if (i >= 20) lat.push(Number(t1 - t0) / 1e6); // the first 20 warm up
  }
  lat.sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
  console.log(JSON.stringify({ p50_ms: +q(0.5).toFixed(3), p99_ms: +q(0.99).toFixed(3), jobs: lat.length }));
  await utils.release();
  await runner.stop();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
