"""The ``jamgen`` command line: ``run`` (the daemon), ``render`` (offline WAV), ``serve`` (remote generation),
``controls``.

Every error the user can cause ends as one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time

import bridge.checks  # noqa: F401  (so --set harmony=... is checked before a model loads)
from bridge.controls import REGISTRY, TRIGGER, ControlError, ControlStore
from generator.core.contract import LATENCY_SETTINGS

EPILOG = """\
controls (for --set NAME=VALUE, OSC /jamgen/..., and mapping-file targets):
{controls}

environment:
  JACK_DEFAULT_SERVER   JACK server name when --jack-server is not given
  NSM_URL               run under a Non/New Session Manager (set by it; plain `jamgen` then means `jamgen run`)
  JAX_PLATFORMS         e.g. cpu; JAX_COMPILATION_CACHE_DIR caches compiled models between runs
"""


def _controls_help() -> str:
    lines = []
    for c in REGISTRY.values():
        if c.name.startswith("prompts[") and not c.name.startswith("prompts[0]"):
            continue
        name = c.name.replace("prompts[0]", "prompts[0..7]")
        if c.type == TRIGGER:
            rng = "trigger"
        elif c.type == "string":
            rng = f"text <= {int(c.maximum)} chars"
        else:
            rng = f"{c.type} {c.minimum:g}..{c.maximum:g}{' ' + c.unit if c.unit else ''}, default {c.default}"
        lines.append(f"  {name:<22}{rng}{' (at reset)' if c.applies == 'reset' else ''}: {c.doc}")
    return "\n".join(lines)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (``jamgen: error: ...``) with exit status 2."""

    def error(self, message: str):  # noqa: D102
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def prompt_arg(text: str) -> tuple[str, float]:
    """``"bossa nova:0.7"`` -> ``("bossa nova", 0.7)``; a missing weight means 1.0."""
    head, sep, tail = text.rpartition(":")
    if sep:
        try:
            weight = float(tail)
        except ValueError:
            return text, 1.0
        if not 0.0 <= weight <= 1.0:
            raise argparse.ArgumentTypeError(f"prompt weight must be in 0..1, got {weight:g}")
        return head.strip(), weight
    return text, 1.0


def setting_arg(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--set needs NAME=VALUE, got {text!r}")
    name = name.strip()
    if name not in REGISTRY or REGISTRY[name].type == TRIGGER:
        from bridge.controls import suggest

        raise argparse.ArgumentTypeError(f"unknown control {name!r}{suggest(name)}")
    return name, value


def osc_listen_arg(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    try:
        return (host if sep else "127.0.0.1"), int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT or PORT, got {text!r}") from None


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="model (default: symbolic; also tiny, magenta:mrt2_small...: see jamgen models), "
                        "a checkpoint directory, or python:module:factory")
    p.add_argument("--prompt", action="append", type=prompt_arg, default=[], metavar="TEXT[:WEIGHT]",
                   help="style prompt for the next free slot (repeatable, up to 8)")
    p.add_argument("--set", action="append", type=setting_arg, default=[], metavar="NAME=VALUE",
                   dest="settings", help="initial value of any control, e.g. --set temperature=0.9")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="jamgen",
        description="Headless real-time music generator that plays into JACK, steered by OSC and MIDI.",
        epilog=EPILOG.format(controls=_controls_help()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)

    run = sub.add_parser("run", help="run the daemon: generate continuously into JACK",
                         description="Run the daemon: generate music continuously into JACK ports "
                         "<client>:out_L/out_R, steered live over OSC and MIDI.")
    _add_model_args(run)
    run.add_argument("--mapping", metavar="FILE", help="YAML mapping file (prompts, OSC/MIDI settings, mappings)")
    run.add_argument("--osc-port", type=int, default=None, metavar="PORT",
                     help="UDP port for OSC (default 9000, or the mapping file's osc.listen; 0 = any free port)")
    run.add_argument("--osc-host", default=None, metavar="ADDR",
                     help="listen address (default 127.0.0.1; other interfaces must be asked for: 0.0.0.0)")
    run.add_argument("--osc-allow", action="append", metavar="ADDR[/NET]",
                     help="only accept OSC from these addresses or networks (repeatable)")
    run.add_argument("--no-osc", action="store_true", help="do not listen for OSC")
    run.add_argument("--jack-server", metavar="NAME", default=os.environ.get("JACK_DEFAULT_SERVER"),
                     help="JACK server name (default: $JACK_DEFAULT_SERVER or the default server)")
    run.add_argument("--client-name", default="jamgen", help="JACK client name (default jamgen)")
    run.add_argument("--connect", metavar="PATTERN",
                     help="connect outputs to 'system' (physical outputs) or ports matching PATTERN")
    run.add_argument("--record", metavar="FILE.wav", help="also write what is played to a WAV file")
    run.add_argument("--duration", type=float, metavar="SECONDS", help="stop after SECONDS of audio")
    run.add_argument("--block-log", metavar="FILE.jsonl",
                     help="write one JSON line per generated block (time, frame, controls)")
    run.add_argument("--latency", choices=LATENCY_SETTINGS, default="low",
                     help="the model's latency setting: low (default: small blocks and pre-buffer, a control "
                          "is heard soonest) or safe (more headroom for a loaded machine)")
    run.add_argument("--block-frames", type=int, default=None, metavar="N",
                     help="frames (40 ms each) per generated block (default: the latency setting's)")
    run.add_argument("--prebuffer", type=float, default=None, metavar="SECONDS",
                     help="audio kept buffered ahead of playback at least; it grows after a near underrun "
                          "and shrinks back (default: the latency setting's)")
    run.add_argument("--prebuffer-adapt", default="", metavar="POLICY",
                     help="how the pre-buffer adapts, e.g. grow=1.25,calm=10 (keys grow, shrink, calm, margin; "
                          "default grow=1.5,shrink=0.9,calm=30,margin=0.125; grow=1 keeps it fixed)")
    run.add_argument("--status-interval", type=float, default=30.0, metavar="SECONDS",
                     help="log a status line this often (default 30)")
    run.add_argument("--sync", choices=("internal", "jack", "midi", "link"), default=None,
                     help="the clock jamgen plays on: internal (default: its own bpm), jack (the JACK transport's "
                          "tempo, metre and bar; plays only while it rolls), midi (MIDI clock, start/stop/continue "
                          "and song position on <client>:midi_in) or link (Ableton Link: pip install "
                          "'jamgen[link]'); default: the mapping file's sync:, else internal")
    run.add_argument("--timebase-master", action="store_true",
                     help="be the JACK timebase master: publish the bpm control (120 when 0) as BBT in 4/4")

    render = sub.add_parser("render", help="generate offline into a WAV file (no JACK)",
                            description="Generate with the same generator offline into a WAV file.")
    _add_model_args(render)
    render.add_argument("--duration", type=float, default=10.0, metavar="SECONDS", help="default 10")
    render.add_argument("--block-frames", type=int, default=5, metavar="N")
    render.add_argument("-o", "--output", default="jamgen.wav", metavar="FILE.wav")
    render.add_argument("--midi", metavar="FILE.mid",
                        help="also write the generated notes (generators that make notes, e.g. symbolic)")

    serve = sub.add_parser("serve", help="serve generators to remote daemons over WebSocket (docs/remote.md)",
                           description="Serve generators over WebSocket, one stream per session, to daemons "
                           "running --model remote:ws://HOST:PORT/NAME. The shared secret comes from --token-file "
                           "or $JAMGEN_REMOTE_TOKEN, never the command line.")
    serve.add_argument("--model", required=True, metavar="NAME", help="the default model (any jamgen model spec)")
    serve.add_argument("--models", default="", metavar="NAME,...", help="more models clients may pick by name")
    serve.add_argument("--host", default="127.0.0.1",
                       help="listen address (default 127.0.0.1; any other needs a token)")
    serve.add_argument("--port", type=int, default=8765, help="TCP port (default 8765; 0 = any free port)")
    serve.add_argument("--token-file", metavar="FILE", help="file holding the shared secret clients must present")
    serve.add_argument("--max-sessions", type=int, default=16, metavar="N", help="live sessions at most (default 16)")
    serve.add_argument("--tls-cert", metavar="FILE.pem", help="serve wss:// directly with this certificate chain")
    serve.add_argument("--tls-key", metavar="FILE.pem", help="the certificate's private key")
    scale = serve.add_argument_group("scale-out on Ray Serve (pip install -e '.[ray]'; docs/remote.md)")
    scale.add_argument("--ray", action="store_true",
                       help="deploy on Ray Serve (a local cluster, or $RAY_ADDRESS), sessions pinned to a replica")
    scale.add_argument("--replicas", type=int, default=2, metavar="N", help="replicas at start (default 2)")
    scale.add_argument("--max-replicas", type=int, metavar="N",
                       help="autoscale on live sessions up to N replicas (default: a fixed --replicas)")
    scale.add_argument("--sessions-per-replica", type=int, default=4, metavar="N",
                       help="the autoscaler's target of live sessions per replica (default 4)")
    scale.add_argument("--replica-cpus", type=float, default=1.0, metavar="C", help="CPUs reserved per replica (1)")
    scale.add_argument("--replica-gpus", type=float, default=0.0, metavar="G",
                       help="GPUs per replica; a fraction (0.25) shares one GPU between replicas (default 0)")
    scale.add_argument("--drain-seconds", type=float, default=10.0, metavar="S",
                       help="how long a replica Serve stops keeps its sessions before its process ends (default 10)")

    sub.add_parser("controls", help="list every control with its range and default")
    sub.add_parser("models", help="list the models jamgen can load, what is installed and what is missing")
    sub.add_parser("dataset", add_help=False,
                   help="build/prepare/show the training data (python -m generator.data --help)")
    sub.add_parser("train", add_help=False,
                   help="train a model: train codec|style|lm|symbolic|heads (python -m generator.train --help)")

    mappings = sub.add_parser("mappings", help="mapping file tools (check)",
                              description="Mapping file tools.")
    msub = mappings.add_subparsers(dest="mappings_command", metavar="ACTION", parser_class=OneLineParser)
    check = msub.add_parser("check", help="validate mapping files without starting anything",
                            description="Validate YAML mapping files; every error is printed as "
                            "file:line: message; the exit status is 1 if any file is broken.")
    check.add_argument("files", nargs="+", metavar="FILE")

    learn = sub.add_parser("learn", help="MIDI learn: map the next control moved to TARGET",
                           description="Wait for the next MIDI control moved (on JACK MIDI) and write "
                           "its mapping to TARGET into the mapping file, keeping its comments and order.")
    learn.add_argument("target", metavar="TARGET", help="control name, e.g. guidance or 'prompts[2].weight'")
    learn.add_argument("--mapping", metavar="FILE", default="mappings/learned.yaml",
                       help="mapping file to write (created if missing; default mappings/learned.yaml)")
    learn.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="default 30")
    learn.add_argument("--jack-server", metavar="NAME", default=os.environ.get("JACK_DEFAULT_SERVER"))
    learn.add_argument("--input", action="append", metavar="PATTERN",
                       help="MIDI ports to listen to (fnmatch; default: the file's midi.inputs, or all)")
    return parser


def _settings(args) -> dict:
    return dict(args.settings)


def _check_common(parser: argparse.ArgumentParser, args) -> None:
    if len(args.prompt) > 8:
        parser.error("at most 8 --prompt slots")
    if args.block_frames is not None and not 1 <= args.block_frames <= 100:
        parser.error("--block-frames must be in 1..100")
    # Validate --set values now, so a typo fails before a model is loaded.
    try:
        ControlStore(_settings(args))
    except ControlError as err:
        parser.error(str(err))


def cmd_run(parser, args) -> int:
    from bridge.daemon import Daemon, DaemonOptions, StartupError

    _check_common(parser, args)
    if args.prebuffer is not None and not 0 < args.prebuffer <= 10:
        parser.error("--prebuffer must be in (0, 10] seconds")
    from bridge.prebuffer import parse_policy

    try:
        parse_policy(args.prebuffer_adapt)
    except ValueError as err:
        parser.error(f"--prebuffer-adapt: {err}")
    if args.sync == "link":  # the GPL extra: refused at once, before a model loads
        from bridge.sync import SyncError, check_available

        try:
            check_available(args.sync)
        except SyncError as err:
            logging.getLogger("jamgen").error("%s", err)
            return 1
    if args.duration is not None and args.duration <= 0:
        parser.error("--duration must be positive")
    if args.osc_port is not None and not 0 <= args.osc_port < 65536:
        parser.error("--osc-port must be in 0..65535")
    # Every DaemonOptions field is a `run` flag of the same name, except the three renamed below.
    same = {f.name: getattr(args, f.name) for f in dataclasses.fields(DaemonOptions) if hasattr(args, f.name)}
    options = DaemonOptions(**{**same, "model": args.model or DaemonOptions.model,
                               "prompts": args.prompt, "settings": _settings(args)})
    daemon = Daemon(options)
    daemon.install_signal_handlers()
    try:
        return daemon.run()
    except StartupError as err:
        for line in str(err).splitlines():  # a mapping file may have several errors, one line each
            logging.getLogger("jamgen").error("%s", line)
        return 1


def cmd_render(parser, args) -> int:
    import numpy as np
    import soundfile
    from tqdm import tqdm

    import generator as generators
    from bridge.session import Session, generation_controls
    from generator.core.contract import FRAME_RATE, FRAME_SAMPLES, SAMPLE_RATE, check_audio

    _check_common(parser, args)
    if not 0 < args.duration <= 3600:
        parser.error("--duration must be in (0, 3600] seconds")
    session = Session(args.model or generators.DEFAULT_MODEL, args.prompt, _settings(args))
    session.set_start_values()
    try:
        gen = session.load_model(warm_up=False)
    except generators.ModelLoadError as err:
        logging.getLogger("jamgen").error("%s", err)
        return 1
    if args.midi and not gen.makes_notes:
        logging.getLogger("jamgen").error("model %r makes audio only: --midi needs a generator "
                                          "that makes notes (e.g. --model symbolic)", args.model)
        return 1
    midi_events: list[tuple[int, bytes]] = []
    snap = session.store.snapshot()
    state = gen.init_state(int(snap.values["seed"]))
    controls = generation_controls(snap)
    total_frames = int(round(args.duration * FRAME_RATE))
    try:
        out = soundfile.SoundFile(args.output, "w", samplerate=SAMPLE_RATE, channels=2, subtype="FLOAT")
    except Exception as err:  # noqa: BLE001 - soundfile's error type varies by version
        logging.getLogger("jamgen").error("cannot write %s: %s", args.output, err)
        return 1
    t0 = time.perf_counter()
    with out, tqdm(total=total_frames, unit="frame", desc="render", disable=None) as bar:
        done = 0
        while done < total_frames:
            n = min(args.block_frames, total_frames - done)
            audio, state = gen.generate(state, controls, n)
            audio = check_audio(audio, n)
            out.write(np.clip(audio * snap.gain(), -1.0, 1.0))
            if args.midi:
                start = done * FRAME_SAMPLES
                midi_events += [(start + offset, data) for offset, data in gen.drain_midi()]
            done += n
            bar.update(n)
    if args.midi:
        from generator.core.midi_file import write_midi

        gen.init_state(0)  # closes every note still sounding, so the file has no hanging notes
        end = total_frames * FRAME_SAMPLES
        midi_events += [(end, data) for _offset, data in gen.drain_midi()]
        write_midi(midi_events, args.midi)
        logging.getLogger("jamgen").info("wrote %d MIDI messages to %s", len(midi_events), args.midi)
    elapsed = time.perf_counter() - t0
    logging.getLogger("jamgen").info("wrote %s: %.1f s of audio in %.1f s (%.2fx real time)",
                                     args.output, total_frames / FRAME_RATE, elapsed,
                                     total_frames / FRAME_RATE / max(elapsed, 1e-9))
    return 0


def cmd_serve(parser, args) -> int:
    import generator as generators
    from bridge.serve import ServeOptions, serve
    from bridge.serve_ray import RayOptions, serve_ray

    if args.max_sessions < 1:
        parser.error("--max-sessions must be at least 1")
    options = ServeOptions(model=args.model, models=tuple(m.strip() for m in args.models.split(",") if m.strip()),
                           host=args.host, port=args.port, token_file=args.token_file,
                           max_sessions=args.max_sessions, tls_cert=args.tls_cert, tls_key=args.tls_key)
    ray_flags = ("replicas", "max_replicas", "sessions_per_replica", "replica_cpus", "replica_gpus", "drain_seconds")
    try:
        if args.ray:
            return serve_ray(options, RayOptions(**{k: getattr(args, k) for k in ray_flags}))
        changed = [k for k in ray_flags if getattr(args, k) != getattr(RayOptions(), k)]
        if changed:
            parser.error(f"--{changed[0].replace('_', '-')} goes with --ray")
        return serve(options)
    except (ValueError, generators.ModelLoadError) as err:
        logging.getLogger("jamgen").error("%s", err)
        return 1


def cmd_controls(parser, args) -> int:
    print(_controls_help())
    return 0


def cmd_mappings(parser, args) -> int:
    from bridge.mappings import check_files

    if args.mappings_command != "check":
        parser.error("mappings needs an action: check FILE...")
    return check_files(args.files)


def cmd_learn(parser, args) -> int:
    from bridge.learn import cli_learn

    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    return cli_learn(args.target, args.mapping, args.timeout, args.jack_server, args.input)


def cmd_models(parser, args) -> int:
    from generator.models import format_models, list_models

    print(format_models(list_models()))
    return 0


COMMANDS = {"run": cmd_run, "render": cmd_render, "serve": cmd_serve, "controls": cmd_controls,
            "models": cmd_models, "mappings": cmd_mappings, "learn": cmd_learn}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["dataset"]:  # its own argparse lives with the data pipeline
        from generator.data.__main__ import main as dataset_main

        return dataset_main(argv[1:]) or 0
    if argv[:1] == ["train"]:  # each trainer has its own argparse (generator/train/)
        from generator.train.__main__ import main as train_main

        return train_main(argv[1:]) or 0
    if not argv and os.environ.get("NSM_URL"):  # a session manager launches plain `jamgen` (bridge.nsm)
        argv = ["run"]
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="jamgen: %(levelname)s: %(message)s", stream=sys.stderr)
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # "no TPU" is not news
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](parser, args) or 0
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `jamgen models | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
