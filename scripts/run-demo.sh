#!/usr/bin/env bash
# Starts the daemon on the default model. Without a running JACK server it starts a private
# `jackd` with the dummy driver (no sound card needed) and records what jamgen plays to
# jamgen-demo.wav; with a server (your sound card), jamgen plays into it and connects to the
# system outputs. Extra arguments go to `jamgen run` (e.g. --prompt "bossa nova guitar").
set -euo pipefail
cd "$(dirname "$0")/.."
export JACK_NO_START_SERVER=1 JAX_PLATFORMS=${JAX_PLATFORMS:-cpu}
args=(--record jamgen-demo.wav)
if ! jack_lsp >/dev/null 2>&1; then
  export JACK_DEFAULT_SERVER=jamgen-demo
  jackd -n jamgen-demo -r -d dummy -r 48000 -p 1024 >/dev/null 2>&1 &
  JACKD=$!
  trap 'kill $JACKD 2>/dev/null || true' EXIT
  for _ in $(seq 50); do jack_lsp >/dev/null 2>&1 && break; sleep 0.1; done
  echo "started a dummy JACK server 'jamgen-demo' (no sound card); recording to jamgen-demo.wav"
else
  args+=(--connect system)
fi
[ $# -gt 0 ] || set -- --prompt "upbeat funk groove with bass and drums" --duration 30
.venv/bin/jamgen run "${args[@]}" "$@"
