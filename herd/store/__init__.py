"""SQLite storage owned by single writer tasks (sqlite-utils, WAL): the latency store."""
