"""The package's native parts, built from `native/` (Rust, PyO3) by `pip install`.

`iot_native._native` holds the Kafka partition reader (`PartitionReader`,
`MessageBatch`) and the JSON decoder's Arrow path (`JsonColumnDecoder`). It
is optional: without cargo the package installs without it, and its users
fall back to confluent-kafka and msgspec.
"""
