#!/bin/bash -eu
# SPDX-License-Identifier: Apache-2.0
# ClusterFuzzLite's build step ($SRC/build.sh in the builder image): the
# project's OSS-Fuzz build, scripts/oss-fuzz/build.sh (--help documents it).
set -euo pipefail
if [ -n "${SRC:-}" ] && [ -f "$SRC/vufuzz/scripts/oss-fuzz/build.sh" ]; then
  exec bash "$SRC/vufuzz/scripts/oss-fuzz/build.sh" "$@"
fi
exec bash "$(dirname "$0")/../scripts/oss-fuzz/build.sh" "$@"
