"""Generate the Pure Data patch (``pd_patches/jamgen.pd``) from the registry.

Called by :mod:`bridge.surfaces_gen` (which writes and ``--check``s it with the other surfaces).
Pd vanilla 0.53 objects only, so ``puredata-core`` from Debian opens it with no externals:

- **Sending**: every control's widget (a slider and a number box for a float, a number box for
  an integer, a toggle for an on/off, a bang for a trigger, a list box for text) feeds an
  ``[oscformat jamgen <tail>]`` (``-f i`` for integers), and all of them one
  ``[list prepend send]`` -> ``[list trim]`` -> ``[netsend -u -b]`` connected to the daemon. A
  list box gives a list of atoms; a ``[pd join]`` subpatch per text control turns it into the one
  string the daemon takes ("dub techno chords", "C E G").
- **Remote control inside Pd**: each widget also listens on ``[r jamgen-<tail>]`` (``/`` -> ``-``:
  ``jamgen-bpm``, ``jamgen-prompt-3-text``), so any message box (``; jamgen-bpm 120``) or a
  ``pd -send`` steers it as if the widget had been moved.
- **Feedback**: on load it listens with ``[netreceive -u -b]`` and sends ``/jamgen/subscribe
  <port>``; ``[oscparse]`` -> ``[route ...]`` -> ``[set $1(`` updates the same widgets (so they follow
  other controllers without echoing) and symbol boxes show transport, sync status
  (``/jamgen/sync``), harmony, prompt texts and what is sounding. Every feedback message also
  leaves the patch's outlet as a list (``bpm 120``, ``transport playing``) for a parent patch.
- **Ports**: used as an abstraction, ``[jamgen 9000 9002]`` takes the daemon's port and the
  feedback port; opened on its own (arguments 0) it uses :data:`SEND_PORT` and
  :data:`FEEDBACK_PORT`.

Pure functions; the text is deterministic (object order and coordinates come from the registry).
"""

from __future__ import annotations

from bridge.controls import BOOL, FLOAT, INT, NUM_PROMPTS, REGISTRY, STRING, TRIGGER
from bridge.osc_routes import PREFIX, SOUNDING_PREFIX, TRANSPORT_ADDRESS, control_address, prompt_address

SEND_PORT, FEEDBACK_PORT = 9000, 9002  # 9001 is the Max patch's, so both can be open at once
# feedback only: the clock's state ("jack rolling 120.0 BPM 4/4 bar 5"), sent by bridge/sync.py to
# subscribers (tests/test_registry_surfaces.py checks that the two agree)
SYNC_ADDRESS = f"{PREFIX}/sync"
STATUS = [(TRANSPORT_ADDRESS, "transport"), (SYNC_ADDRESS, "sync"),
          (f"{SOUNDING_PREFIX}/prompts", "sounding prompts")]
_IEM_COLOURS = "#fcfcfc #000000 #000000"
STATUS_Y = 600  # the "connected" toggle and the subscribe/state buttons
PLUMBING_Y = 680  # everything below is plumbing, out of the window unless one scrolls
NET_Y = PLUMBING_Y + 520  # netsend, netreceive, the feedback routes


def tail(address: str) -> list[str]:
    """``/jamgen/prompt/3/text`` -> ``['prompt', '3', 'text']`` (the atoms after ``jamgen``)."""
    return address.split("/")[2:]


def receive_name(name: str) -> str:
    """The ``[r ...]`` name that steers control ``name`` inside Pd (``jamgen-prompt-3-text``)."""
    return "jamgen-" + "-".join(tail(control_address(name)))


def _esc(text: str) -> str:
    """Pd's file escapes for comment and message text."""
    return text.replace("\\", "").replace("$", "\\$").replace(",", " \\,").replace(";", " \\;")


def _route_atoms(atoms: list[str]) -> str:
    """Symbol route arguments; a digit (``0`` of ``/jamgen/prompt/0``) is escaped so that it stays a
    symbol, which is what ``[oscparse]`` makes of it."""
    return " ".join(f"\\{a}" if a[:1].isdigit() else a for a in atoms)


class Canvas:
    """One Pd canvas: objects in creation order (their index is what ``#X connect`` names)."""

    def __init__(self, header: str) -> None:
        self.header = header
        self.items: list[str] = []
        self.conns: list[tuple[int, int, int, int]] = []

    def _add(self, line: str) -> int:
        self.items.append(line)
        return len(self.items) - 1

    def obj(self, x: int, y: int, text: str) -> int:
        return self._add(f"#X obj {x} {y} {text};")

    def msg(self, x: int, y: int, text: str) -> int:
        return self._add(f"#X msg {x} {y} {text};")

    def comment(self, x: int, y: int, text: str, width: int = 0) -> int:
        return self._add(f"#X text {x} {y} {_esc(text)}" + (f", f {width};" if width else ";"))

    def atom(self, kind: str, x: int, y: int, width: int, lo: float = 0, hi: float = 0) -> int:
        """``floatatom`` / ``symbolatom`` / ``listbox`` with no label or send/receive names."""
        return self._add(f"#X {kind} {x} {y} {width} {lo:g} {hi:g} 0 - - - 0;")

    def hsl(self, x: int, y: int, lo: float, hi: float) -> int:
        return self.obj(x, y, f"hsl 128 15 {lo:g} {hi:g} 0 0 empty empty empty -2 -8 0 10 {_IEM_COLOURS} 0 1")

    def tgl(self, x: int, y: int) -> int:
        return self.obj(x, y, f"tgl 15 0 empty empty empty 17 7 0 10 {_IEM_COLOURS} 0 1")

    def bng(self, x: int, y: int) -> int:
        return self.obj(x, y, f"bng 15 250 50 0 empty empty empty 17 7 0 10 {_IEM_COLOURS}")

    def sub(self, x: int, y: int, name: str, canvas: "Canvas") -> int:
        self.items.append(canvas)  # type: ignore[arg-type]
        self.items.append(f"#X restore {x} {y} pd {name};")
        return len(self.items) - 1

    def connect(self, src: int, outlet: int, dst: int, inlet: int = 0) -> None:
        self.conns.append((src, outlet, dst, inlet))

    def lines(self) -> list[str]:
        """The canvas as ``.pd`` lines; a subpatch's ``#N canvas`` ... ``#X restore`` is one object,
        so connections are renumbered past the nested canvases' entries."""
        out, numbers, n = [self.header], [], -1
        for item in self.items:
            if isinstance(item, Canvas):
                out += item.lines()
                numbers.append(None)
                continue
            n += 1
            numbers.append(n)
            out.append(item)
        out += [f"#X connect {numbers[a]} {o} {numbers[b]} {i};" for a, o, b, i in self.conns]
        return out


def join_canvas() -> Canvas:
    """``[pd join]``: a list of atoms in (a list box's output), one symbol of them with spaces out;
    an empty list gives the empty symbol (which clears the control)."""
    c = Canvas("#N canvas 0 0 520 420 join 0;")
    inlet = c.obj(10, 10, "inlet")
    as_list = c.obj(10, 35, "list")
    order = c.obj(10, 60, "t b b l b")
    items = c.obj(200, 110, "list store")
    loop = c.obj(10, 110, "until")
    count = c.obj(10, 135, "f")
    step = c.obj(50, 135, "+ 1")
    get = c.msg(10, 160, "get \\$1 1")
    kind = c.obj(10, 210, "route float symbol")
    number = c.obj(10, 235, "makefilename %g")
    chars = c.obj(10, 260, "list fromsymbol")
    space = c.obj(10, 285, "list prepend 32")
    append = c.obj(10, 310, "list prepend append")
    trim = c.obj(10, 335, "list trim")
    acc = c.obj(200, 335, "list store")
    clear = c.obj(330, 85, "list")
    zero = c.msg(380, 110, "0")
    split = c.obj(200, 360, "list split 1")
    to_symbol = c.obj(200, 385, "list tosymbol")
    empty = c.msg(330, 385, "symbol")
    outlet = c.obj(200, 410, "outlet")
    for a, o, b, i in [(inlet, 0, as_list, 0), (as_list, 0, order, 0),
                       (order, 3, clear, 0), (order, 3, zero, 0), (clear, 0, acc, 1), (zero, 0, count, 1),
                       (order, 2, items, 1), (order, 1, loop, 0), (order, 0, acc, 0),
                       (loop, 0, count, 0), (count, 0, step, 0), (step, 0, count, 1), (count, 0, get, 0),
                       (get, 0, items, 0), (items, 1, loop, 1), (items, 0, kind, 0),
                       (kind, 0, number, 0), (kind, 1, chars, 0), (number, 0, chars, 0),
                       (chars, 0, space, 0), (space, 0, append, 0), (append, 0, trim, 0), (trim, 0, acc, 0),
                       (acc, 0, split, 0), (split, 1, to_symbol, 0), (split, 2, empty, 0),
                       (to_symbol, 0, outlet, 0), (empty, 0, outlet, 0)]:
        c.connect(a, o, b, i)
    return c


def _ports(c: Canvas, send: int, recv: int, subscribe: int) -> None:
    """On load: listen on the feedback port, connect to the daemon, subscribe."""
    y = NET_Y
    load = c.obj(10, y, "loadbang")
    first = c.obj(10, y + 25, "t b b b")
    fb_arg, fb_sel = c.obj(250, y + 50, "f \\$2"), c.obj(250, y + 75, "sel 0")
    fb_default = c.msg(250, y + 100, str(FEEDBACK_PORT))
    fb = c.obj(250, y + 125, "t f f")
    listen = c.msg(250, y + 150, "listen \\$1")
    tx_arg, tx_sel = c.obj(10, y + 50, "f \\$1"), c.obj(10, y + 75, "sel 0")
    tx_default = c.msg(10, y + 100, str(SEND_PORT))
    connect = c.msg(10, y + 125, "connect 127.0.0.1 \\$1")
    port = c.obj(400, y + 150, "f")
    again = c.bng(400, STATUS_Y)
    c.comment(420, STATUS_Y, "subscribe again")
    for a, o, b, i in [(load, 0, first, 0), (first, 2, fb_arg, 0), (fb_arg, 0, fb_sel, 0),
                       (fb_sel, 0, fb_default, 0), (fb_sel, 1, fb, 0), (fb_default, 0, fb, 0),
                       (fb, 1, listen, 0), (fb, 0, port, 1), (listen, 0, recv, 0),
                       (first, 1, tx_arg, 0), (tx_arg, 0, tx_sel, 0), (tx_sel, 0, tx_default, 0),
                       (tx_sel, 1, connect, 0), (tx_default, 0, connect, 0), (connect, 0, send, 0),
                       (first, 0, port, 0), (again, 0, port, 0), (port, 0, subscribe, 0)]:
        c.connect(a, o, b, i)


def build_pd() -> Canvas:
    """The whole patch: widgets above :data:`PLUMBING_Y`, the objects that do the work below."""
    c = Canvas("#N canvas 20 40 1250 760 10;")
    c.comment(10, 5, "jamgen: steer the daemon over OSC. Generated by python -m bridge.surfaces_gen from the "
                     "control registry. Do not edit. As an abstraction: [jamgen <daemon port> <feedback port>]. "
                     "Every control also listens on [r jamgen-<address tail>] (e.g. jamgen-bpm).", 200)
    pack = c.obj(620, NET_Y, "list prepend send")
    trim = c.obj(620, NET_Y + 25, "list trim")
    send = c.obj(620, NET_Y + 50, "netsend -u -b")
    c.connect(pack, 0, trim)
    c.connect(trim, 0, send)
    connected = c.tgl(10, STATUS_Y)
    c.comment(30, STATUS_Y, "connected")
    c.connect(send, 0, connected)
    feedback: dict[str, list[int]] = {}  # address -> widgets that show it ("set $1")

    def sender(name: str, x: int, y: int, source: int) -> None:
        flag = "-f i " if REGISTRY[name].type == INT else ""
        fmt = c.obj(x, y, f"oscformat {flag}jamgen {' '.join(tail(control_address(name)))}")
        c.connect(source, 0, fmt)
        c.connect(fmt, 0, pack)

    def remote(name: str, x: int, y: int, widget: int, through_list: bool = False) -> None:
        r = c.obj(x, y, f"r {receive_name(name)}")
        if through_list:  # "; jamgen-harmony C E G" arrives as a message whose selector is C
            lst = c.obj(x, y + 25, "list")
            c.connect(r, 0, lst)
            r = lst
        c.connect(r, 0, widget)

    # prompt slots, one column each: text (list box -> join), the daemon's text, weight, clear
    for i in range(NUM_PROMPTS):
        x, py = 10 + i * 150, PLUMBING_Y
        text, weight = f"prompts[{i}].text", f"prompts[{i}].weight"
        lo, hi = REGISTRY[weight].minimum, REGISTRY[weight].maximum
        c.comment(x, 45, f"prompt {i}")
        box = c.atom("listbox", x, 65, 18)
        remote(text, x, py, box, through_list=True)
        join = c.sub(x, py + 50, "join", join_canvas())
        c.connect(box, 0, join)
        sender(text, x, py + 75 + (i % 2) * 25, join)
        shown = c.atom("symbolatom", x, 90, 18)
        feedback.setdefault(control_address(text), []).append(shown)
        slider = c.hsl(x, 120, lo, hi)
        number = c.atom("floatatom", x, 140, 6, lo, hi)
        remote(weight, x + 70, py + 50, slider)
        for k, widget in enumerate((slider, number)):
            sender(weight, x, py + 125 + (i % 2) * 50 + k * 25, widget)
            feedback.setdefault(control_address(weight), []).append(widget)
        clear = c.bng(x + 60, 140)
        c.comment(x + 80, 140, "clear")
        fmt = c.obj(x, py + 225 + (i % 2) * 25, f"oscformat jamgen {' '.join(tail(prompt_address(i, 'clear')))}")
        c.connect(clear, 0, fmt)
        c.connect(fmt, 0, pack)

    # the other controls, one row each; their plumbing in rows of eight below the prompts'
    others = [n for n in REGISTRY if not n.startswith("prompts[")]
    for j, name in enumerate(others):
        ctl = REGISTRY[name]
        y = 175 + j * 22
        px, py = 10 + (j % 8) * 150, PLUMBING_Y + 290 + (j // 8) * 110
        rng = f" {ctl.minimum:g}..{ctl.maximum:g}{(' ' + ctl.unit) if ctl.unit else ''}" \
            if ctl.type in (FLOAT, INT) else ""
        c.comment(300, y, f"{name}{rng}: {ctl.doc}", 110)
        address = control_address(name)
        if ctl.type == FLOAT:
            slider = c.hsl(10, y, ctl.minimum, ctl.maximum)
            number = c.atom("floatatom", 150, y, 8, ctl.minimum, ctl.maximum)
            remote(name, px, py, slider)
            for k, widget in enumerate((slider, number)):
                sender(name, px, py + 25 + k * 25, widget)
                feedback.setdefault(address, []).append(widget)
        elif ctl.type in (INT, BOOL):
            widget = c.atom("floatatom", 150, y, 11, ctl.minimum, ctl.maximum) if ctl.type == INT \
                else c.tgl(150, y)
            remote(name, px, py, widget)
            sender(name, px, py + 25, widget)
            feedback.setdefault(address, []).append(widget)
        elif ctl.type == TRIGGER:
            button = c.bng(150, y)
            remote(name, px, py, button)
            sender(name, px, py + 25, button)
        elif ctl.type == STRING:
            box = c.atom("listbox", 10, y, 40)
            remote(name, px, py, box, through_list=True)
            join = c.sub(px, py + 50, "join", join_canvas())
            c.connect(box, 0, join)
            sender(name, px, py + 75, join)
            shown = c.atom("symbolatom", 1000, y, 35)
            feedback.setdefault(address, []).append(shown)

    # status: transport, sync, what is sounding
    for k, (address, title) in enumerate(STATUS):
        y = 175 + (len(others) + 1 + k) * 22
        c.comment(10, y, title)
        feedback.setdefault(address, []).append(c.atom("symbolatom", 150, y, 80))
    y = 175 + (len(others) + 1 + len(STATUS)) * 22
    c.comment(10, y, "sounding frame")
    feedback.setdefault(f"{SOUNDING_PREFIX}/frame", []).append(c.atom("floatatom", 150, y, 12))

    # feedback: netreceive -> oscparse -> one route per address level -> "set $1" into the widgets;
    # every message also leaves the outlet ("bpm 120")
    ry = NET_Y + 200
    recv = c.obj(10, ry, "netreceive -u -b")
    parse = c.obj(10, ry + 25, "oscparse")
    ptrim = c.obj(10, ry + 50, "list trim")
    top = c.obj(10, ry + 75, "route jamgen")
    out = c.obj(620, ry + 75, "list")
    outlet = c.obj(620, ry + 100, "outlet")
    for a, b in [(recv, parse), (parse, ptrim), (ptrim, top), (top, out), (out, outlet)]:
        c.connect(a, 0, b)
    tree: dict = {}
    for address in feedback:
        node = tree
        for atom in tail(address):
            node = node.setdefault(atom, {})
    setters: dict[str, int] = {}

    def route(node: dict, source: int, prefix: str, depth: int, x: int) -> int:
        keys = sorted(node)
        r = c.obj(x, ry + 100 + depth * 25, "route " + _route_atoms(keys))
        c.connect(source, 0, r)
        for k, key in enumerate(keys):
            if node[key]:
                x = route(node[key], r, f"{prefix}/{key}", depth + 1, x)
            else:
                as_list = c.obj(x, ry + 200 + (k % 2) * 50, "list")
                setter = c.msg(x, ry + 225 + (k % 2) * 50, "set \\$1")
                c.connect(r, k, as_list)
                c.connect(as_list, 0, setter)
                setters[f"{prefix}/{key}"] = setter
                x += 60
        return x

    route(tree, top, PREFIX, 0, 10)
    for address, widgets in feedback.items():
        for widget in widgets:
            c.connect(setters[address], 0, widget)

    subscribe = c.obj(400, NET_Y + 175, "oscformat -f i jamgen subscribe")
    state = c.obj(620, NET_Y + 175, "oscformat jamgen state")
    ask = c.bng(200, STATUS_Y)
    c.comment(220, STATUS_Y, "ask for the state")
    c.connect(ask, 0, state)
    for fmt in (subscribe, state):
        c.connect(fmt, 0, pack)
    _ports(c, send, recv, subscribe)
    return c


def pd_text() -> str:
    return "\n".join(build_pd().lines()) + "\n"


def pd_addresses(text: str) -> set[str]:
    """The addresses a patch's ``[oscformat]`` objects send (what the tests hold against the daemon's)."""
    out = set()
    for line in text.splitlines():
        atoms = line.rstrip(";").split()
        if len(atoms) > 4 and atoms[:2] == ["#X", "obj"] and atoms[4] == "oscformat":
            rest = atoms[7:] if atoms[5] == "-f" else atoms[5:]
            out.add("/" + "/".join(rest))
    return out
