//! The Prometheus textfile (METRICS_FILE) for node_exporter's textfile collector.
