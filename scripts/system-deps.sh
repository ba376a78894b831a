#!/usr/bin/env bash
# Install the system packages videokr needs that pip cannot provide: FFmpeg's shared libraries, which
# torchcodec (the decoder behind datasets' Video feature) loads at run time.
set -euo pipefail
if command -v ffmpeg >/dev/null 2>&1 && ldconfig -p 2>/dev/null | grep -q libavcodec; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "videokr needs FFmpeg: run 'apt-get install -y ffmpeg' as root, then retry." >&2
        exit 1
    fi
    SUDO="sudo"
fi
echo "Installing FFmpeg (system package) ..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg >/dev/null
ffmpeg -version | head -n 1
