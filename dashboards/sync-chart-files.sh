#!/usr/bin/env bash
# Copies the canonical alert rules and dashboard into the Helm chart (chart/files/), which can
# only package files inside itself. tests/chart/test_sync.py fails when the copies drift.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
for f in svcprobe-rules.yaml svcprobe-dashboard.json; do
    cp "$here/$f" "$here/../chart/files/$f"
done
echo "copied rules and dashboard into chart/files/"
