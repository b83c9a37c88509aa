#!/bin/bash -eu
# SPDX-License-Identifier: Apache-2.0
# ClusterFuzzLite's build step ($SRC/build.sh in the builder image): the
# in-repository build, scripts/oss-fuzz/build.sh (--help documents it), as
# OSS-Fuzz's projects/vufuzz/build.sh runs it.
cd "$SRC/vufuzz"
bash scripts/oss-fuzz/build.sh
