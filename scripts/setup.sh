#!/usr/bin/env bash
# Installs the Debian 12 packages metareward needs. Idempotent: skips apt entirely
# when every package is already present. Run as root (or with sudo available).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libopenblas0-openmp
  libboost-dev libboost-program-options-dev
  libtomlplusplus-dev libspdlog-dev libfmt-dev catch2 nlohmann-json3-dev
  libpcre2-dev libcpp-httplib-dev libssl-dev libgloo-dev
  chromium
  clang libfuzzer-14-dev llvm
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "[setup] all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "[setup] installing: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "[setup] need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

# libtorch links the generic libblas.so.3; make sure OpenBLAS (OpenMP build) provides it,
# it is ~25x faster than the reference BLAS for the GEMMs libtorch runs on CPU.
if command -v update-alternatives >/dev/null; then
  for alt in libblas.so.3-x86_64-linux-gnu liblapack.so.3-x86_64-linux-gnu; do
    cand=$(update-alternatives --list "$alt" 2>/dev/null | grep openblas-openmp | head -n1 || true)
    [ -n "$cand" ] && $SUDO update-alternatives --set "$alt" "$cand" >/dev/null || true
  done
fi
echo "[setup] done"
