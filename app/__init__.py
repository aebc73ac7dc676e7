"""Vigil: real-time DevSecOps telemetry processing on Faust and Apache Kafka."""
