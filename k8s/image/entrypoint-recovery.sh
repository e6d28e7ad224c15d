#!/bin/sh
# Create the Bytewax recovery partitions once, before the first run.
#
# Environment: BYTEWAX_RECOVERY_DIRECTORY (must exist), BYTEWAX_RECOVERY_PARTS
# (the partition count, fixed for the life of the dataflow) and, on a volume
# of its own per pod, BYTEWAX_POD_NAME (`<statefulset>-<ordinal>`).
#
# Nothing is created if the directory already holds a partition: a restart
# must resume from what is there, never start afresh.
#
# A volume of its own per pod (BYTEWAX_POD_NAME set): the pod keeps only the
# partition whose index is its ordinal, so every partition exists exactly once
# in the cluster; pods with an ordinal >= the partition count hold none. Were
# every pod to hold the full set, a rescale could elect an empty copy as the
# partition's primary and silently lose that partition's state.
#
# One volume shared by all pods (no BYTEWAX_POD_NAME, the Helm chart's
# layout): the full set is created, once.
set -eu

dir="${BYTEWAX_RECOVERY_DIRECTORY:?BYTEWAX_RECOVERY_DIRECTORY is not set}"
parts="${BYTEWAX_RECOVERY_PARTS:?BYTEWAX_RECOVERY_PARTS is not set}"

for existing in "$dir"/part-*.sqlite3; do
    if [ -e "$existing" ]; then
        echo "recovery partitions present in $dir; resuming from them"
        exit 0
    fi
done

ordinal=""
if [ -n "${BYTEWAX_POD_NAME:-}" ]; then
    ordinal="${BYTEWAX_POD_NAME##*-}"
    case "$ordinal" in
        ''|*[!0-9]*) echo "cannot read a pod ordinal from BYTEWAX_POD_NAME=$BYTEWAX_POD_NAME" >&2; exit 2 ;;
    esac
    if [ "$ordinal" -ge "$parts" ]; then
        echo "pod ordinal $ordinal >= $parts partitions: this pod holds no recovery partition"
        exit 0
    fi
fi

# Build in a scratch directory on the same volume and move into place, so an
# interrupted init leaves no half-made partition behind.
scratch="$dir/.init-partitions"
rm -rf "$scratch"
mkdir "$scratch"
python -m bytewax.recovery "$scratch" "$parts"

if [ -n "$ordinal" ]; then
    mv "$scratch/part-$ordinal.sqlite3" "$dir/"
    echo "created recovery partition $ordinal of $parts in $dir"
else
    mv "$scratch"/part-*.sqlite3 "$dir/"
    echo "created $parts recovery partitions in $dir"
fi
rm -rf "$scratch"
