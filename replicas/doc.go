// Package replicas holds tests only: several tongban gateway replicas, each
// a process of its own, behind a round-robin balancer, sharing one
// PostgreSQL database, with both simulated districts. They check what the
// replicas promise together — one leader signing the log at a time and a
// new one when it dies, a gapless log, deliveries exactly once, nonces and
// idempotency shared — and measure accepted exchanges per second with one,
// two and three replicas.
//
// The replicas are this package's test binary started again with
// TONGBAN_REPLICA_CONFIG set: it then does what `tongban serve --config`
// does (load the config, gateway.NewServer, listen, Run) and runs no tests,
// so a replica can be killed with SIGKILL like a crashed server.
//
// PostgreSQL is TONGBAN_TEST_POSTGRES (default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable); each test runs
// in a fresh schema. Without a reachable server the tests are skipped,
// unless TONGBAN_REQUIRE_POSTGRES=1.
package replicas
