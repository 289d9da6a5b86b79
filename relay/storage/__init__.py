"""Storage: the SQLite store (one group-committing writer, pooled readers), the audit log and retention."""
