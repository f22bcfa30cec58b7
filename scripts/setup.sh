#!/usr/bin/env bash
# One step from a fresh Debian machine to a built moec: dependencies, then
# the build.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/install-deps.sh"
"$here/build.sh"
