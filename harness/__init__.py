"""The local test harness: a real control plane, PostgreSQL and a node runner, as host processes."""
