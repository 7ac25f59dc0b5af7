#!/usr/bin/env bash
# The #include graph by folder has no arrow pointing up or sideways, and every
# library .cpp has its header (tools/check_layering.py; docs/architecture.md).
set -euo pipefail
exec /usr/bin/python3 tools/check_layering.py .
