"""The seed document's MonitoringStream Avro schema, written out as the seed
shows it, independently of the package's own copy, for tests to check against."""

SEED_SCHEMA = {
    "namespace": "com.tanzu.streaming.runtime.iot.log",
    "type": "record",
    "name": "MonitoringStream",
    "fields": [
        {"name": "error_code", "type": "string"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "type", "type": "string"},
        {"name": "application", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "description", "type": "string"},
    ],
}
