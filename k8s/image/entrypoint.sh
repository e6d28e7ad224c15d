#!/bin/sh
# What the Bytewax Helm chart and waxctl run in the dataflow container
# (`sh ./entrypoint.sh` from the image's working directory).
#
# The chart passes the dataflow either as BYTEWAX_IMPORT_STR or as
# BYTEWAX_PYTHON_FILE_PATH (the file it copied from its ConfigMap into
# BYTEWAX_WORKDIR); with neither, the module installed in the image runs.
# Process id, peers, workers and recovery come from the chart's BYTEWAX_*
# environment, which `bytewax.run` reads itself.
set -eu

cd "${BYTEWAX_WORKDIR:-/app}"

if [ -n "${BYTEWAX_IMPORT_STR:-}" ]; then
    dataflow="$BYTEWAX_IMPORT_STR"
elif [ -n "${BYTEWAX_PYTHON_FILE_PATH:-}" ] && [ -f "$BYTEWAX_PYTHON_FILE_PATH" ]; then
    dataflow="$BYTEWAX_PYTHON_FILE_PATH"
else
    dataflow="dataflows.iot"
fi

if [ "${BYTEWAX_KEEP_CONTAINER_ALIVE:-false}" != "true" ]; then
    exec python -m bytewax.run "$dataflow"
fi

# Troubleshooting mode: keep the container up after the dataflow ends.
status=0
python -m bytewax.run "$dataflow" || status=$?
echo "dataflow exited with status $status; keeping the container alive" >&2
while :; do sleep 3600; done
