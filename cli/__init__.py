"""The `iot-monitoring` command line: stack, validate, generate, udf, watch."""
