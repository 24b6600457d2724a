#!/usr/bin/env bash
# Installs what bench/side_by_side.sh's eager reference needs: a Python 3 with torch (Debian's
# python3-torch, CPU) and numpy. Never a build or test dependency of metareward.
#
#   sudo bench/setup_bench.sh        # or as root
#
# Prints the interpreter to use (PYTHON=...) on success. Does nothing when some python3 on the
# PATH, or /usr/bin/python3, already imports torch. If an apt install is already running (e.g. one
# started in the background with its log in /tmp/pytorch_install.log) it waits for that instead of
# starting a second apt.
set -euo pipefail

find_python() {
  local p
  for p in ${PYTHON:-} python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c "import torch" >/dev/null 2>&1; then
      command -v "$p"
      return 0
    fi
  done
  return 1
}

apt_busy() {
  # Another apt/dpkg holds the lock, or an install is still writing its log.
  pgrep -x apt-get >/dev/null 2>&1 || pgrep -x apt >/dev/null 2>&1 || pgrep -x dpkg >/dev/null 2>&1
}

if py=$(find_python); then
  echo "setup_bench: torch already importable with $py ($("$py" -c 'import torch; print(torch.__version__)'))"
  echo "PYTHON=$py"
  exit 0
fi

if apt_busy; then
  echo "setup_bench: an apt/dpkg process is running (log: /tmp/pytorch_install.log if that is the one); waiting for it"
  while apt_busy; do sleep 5; done
  if py=$(find_python); then
    echo "setup_bench: torch importable with $py after the running install"
    echo "PYTHON=$py"
    exit 0
  fi
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup_bench: error: no python3 with torch found, and installing python3-torch needs root." >&2
  echo "  run: sudo $0   (or: sudo apt-get install -y python3-torch python3-numpy)" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup_bench: error: no apt-get here; install PyTorch for python3 by other means (CPU build is enough)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "setup_bench: apt-get install python3-torch python3-numpy (log: /tmp/setup_bench_apt.log)"
apt-get update >>/tmp/setup_bench_apt.log 2>&1 || true
apt-get install -y --no-install-recommends python3-torch python3-numpy >>/tmp/setup_bench_apt.log 2>&1 || {
  echo "setup_bench: error: apt-get install failed; see /tmp/setup_bench_apt.log" >&2
  exit 1
}
if ! py=$(find_python); then
  echo "setup_bench: error: python3-torch installed but no interpreter imports torch (/usr/bin/python3 -c 'import torch')" >&2
  exit 1
fi
# Debian's torch calls the libblas.so.3 alternative; the reference BLAS there would make the eager
# side ~10x slower than it should be. Say which one is selected.
if command -v update-alternatives >/dev/null 2>&1; then
  blas=$(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | awk '/^Value:/{print $2}')
  case "$blas" in
    *openblas*|*blis*|*mkl*) echo "setup_bench: BLAS $blas" ;;
    "") ;;
    *) echo "setup_bench: warning: libblas.so.3 is $blas (reference BLAS?); apt-get install libopenblas0-openmp for a fair eager baseline" >&2 ;;
  esac
fi
echo "PYTHON=$py"
