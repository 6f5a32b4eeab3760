//! The operation log (LOG_DIR/backup.log).
