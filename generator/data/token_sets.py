"""Token datasets of the note families: works of :mod:`generator.data.sources` -> one ``.npz``, any tokenizer.

Why one builder for both families: iterating sources and seeds under deadlines, collecting captions and
paraphrases, the progress bar, worker processes and the file layout have nothing to do with how a family
spells music; the symbolic family (:mod:`generator.data.symbolic_tokens`) and the groove family
(:mod:`generator.data.groove_tokens`) differ only in the function that turns a work's MIDI into tokens.

Why a cached file: arranging a work (mma run, music21 parse) costs 0.1-1 s, while a training step needs a
batch every ~100 ms, so works are tokenised once into one flat int16 array with offsets and caption indices,
then cropped at random. The ``.npz`` holds only arrays and strings (loaded with ``allow_pickle=False``).

Layout: ``tokens`` int16 [N] (every work as its tokenizer writes it), ``offsets`` int64 [W+1],
``caption_ids`` int32 [W, 1 + P] (index into ``texts``; column 0 is the canonical caption, the rest
paraphrases), ``texts`` str [C], ``work_ids`` str [W], ``collections`` str [W], and ``metas`` str [W]: one
JSON object per work with the plain-data fields of its meta (genre, family, bpm, key, mode, instruments,
groove, collection, drums, time signature...), so benches can compare what a model plays with what a caption
asked for. Files written before ``metas`` existed load with empty dicts.

Parallel building: ``workers > 1`` arranges and tokenises works in that many processes (spawned, so no
JAX or thread state is inherited). Results are taken in the shuffled order of the refs, so with ``limit``
the same works come out whatever the number of workers; with ``seconds``, more workers just get further.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import json
import logging
import multiprocessing
import random
import signal
import time
from typing import Callable, Sequence

import mido
import numpy as np

log = logging.getLogger(__name__)
PARAPHRASES = 2
Tokenizer = Callable[[mido.MidiFile], "np.ndarray | list[int]"]


def build(path, split: str, sources: Sequence[str], tokenize: Tokenizer, seeds: Sequence[int] = (0,),
          limit: int | None = None, seconds: float | None = None, max_tokens_per_work: int = 20_000,
          work_seconds: float = 15.0, progress: bool = True, workers: int = 1, min_tokens: int = 32,
          desc: str = "tokenise"):
    """Tokenise the works of ``split`` from ``sources`` with ``tokenize`` (MIDI -> token ids; a module-level
    function when ``workers > 1``, so that it pickles), one pass per seed and source (one arrangement each),
    until ``limit`` works per source and seed or ``seconds`` of wall time for the whole build (each pass gets
    an equal share of what is left); writes ``path``.

    Works the tokenizer refuses (it raises, e.g. ValueError for a metre it cannot represent), that take
    over ``work_seconds`` to arrange, fail to load or have fewer than ``min_tokens`` tokens are skipped
    and counted in the log."""
    from tqdm import tqdm

    from generator.data import sources as data_sources

    out = _Collected()
    t0 = time.monotonic()
    end = None if seconds is None else t0 + seconds
    passes = len(sources) * len(seeds)
    bar = tqdm(desc=f"{desc} {split}", unit="work", disable=not progress)
    pool = _Inline() if workers <= 1 else concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        for k, (seed, source) in enumerate((seed, source) for seed in seeds for source in sources):
            # each pass gets an equal share of the time left, so a quick pass leaves more to the others
            stop = None if end is None else time.monotonic() + (end - time.monotonic()) / (passes - k)
            try:
                refs = data_sources.work_refs(split, [source])
            except Exception as err:  # noqa: BLE001 - one broken source must not lose the others
                log.warning("source %s unavailable: %s: %s", source, type(err).__name__, err)
                continue
            random.Random(seed).shuffle(refs)
            job = (seed, tokenize, work_seconds, max_tokens_per_work, min_tokens)
            done = 0
            with contextlib.closing(_ordered(pool, refs, job, max(1, 2 * workers), stop)) as results:
                for status, ref_id, payload in results:
                    if limit is not None and done >= limit:
                        break
                    if out.add(status, ref_id, payload):
                        done += 1
                        bar.update(1)
                        bar.set_postfix(tokens=out.n_tokens, source=source, skipped=sum(out.skipped.values()))
                        if limit is not None and done >= limit:
                            break
    finally:
        bar.close()
        pool.shutdown(cancel_futures=True)
    if not out.seqs:
        raise RuntimeError(f"no works found for split {split!r} in sources {list(sources)}")
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in out.seqs])]).astype(np.int64)
    np.savez(path, tokens=np.concatenate(out.seqs), offsets=offsets, caption_ids=np.asarray(out.rows, np.int32),
             texts=np.asarray(list(out.texts), dtype=str), work_ids=np.asarray(out.work_ids, dtype=str),
             collections=np.asarray(out.collections, dtype=str), metas=np.asarray(out.metas, dtype=str))
    log.info("wrote %s: %d works, %d tokens in %.0f s; skipped %s", path, len(out.seqs), offsets[-1],
             time.monotonic() - t0, dict(out.skipped) or "none")
    return path


class _Collected:
    """What a build has gathered so far: token arrays, caption rows over shared texts, ids, metas, skips."""

    def __init__(self):
        self.texts: dict[str, int] = {}
        self.rows, self.seqs, self.work_ids, self.collections, self.metas = [], [], [], [], []
        self.skipped: collections.Counter = collections.Counter()
        self.n_tokens = 0

    def add(self, status: str, ref_id: str, payload) -> bool:
        """Take one result of :func:`_tokenise`; True when it was a work (not a skip)."""
        if status != "ok":
            self.skipped[status] += 1
            if status in ("error", "timeout", "tokenizer"):  # a refused metre is expected: INFO
                log.log(logging.INFO if status == "tokenizer" else logging.WARNING, "skipping %s: %s", ref_id,
                        payload)
            return False
        caps = [payload["caption"], *payload["paraphrases"][:PARAPHRASES]]
        caps += [payload["caption"]] * (1 + PARAPHRASES - len(caps))
        self.rows.append([self.texts.setdefault(c, len(self.texts)) for c in caps])
        self.seqs.append(payload["ids"])
        self.work_ids.append(ref_id)
        self.collections.append(payload["collection"])
        self.metas.append(payload["meta"])
        self.n_tokens += len(payload["ids"])
        return True


def _ordered(pool, refs, job, inflight: int, stop: float | None):
    """Results of :func:`_tokenise` over ``refs`` in their order, at most ``inflight`` submitted ahead; no
    new ref is submitted after ``stop`` (monotonic time). The caller stops reading at its limit; works
    still in flight then are waited for and dropped, so a pass never overlaps the next."""
    it = iter(refs)
    pending: collections.deque = collections.deque()
    try:
        while True:
            while len(pending) < inflight and (stop is None or time.monotonic() < stop):
                ref = next(it, None)
                if ref is None:
                    break
                pending.append(pool.submit(_tokenise, ref, *job))
            if not pending:
                return
            yield pending.popleft().result()
    finally:
        for f in pending:
            f.cancel()
        concurrent.futures.wait(pending)


def _tokenise(ref, seed: int, tokenize: Tokenizer, work_seconds: float, max_tokens: int, min_tokens: int):
    """Arrange and tokenise one work (in a worker process when building in parallel): ``("ok", id, payload)``
    or ``(reason, id, message)``; never raises, so one bad work cannot stop a build."""
    from generator.data import sources as data_sources

    try:  # some encodings take minutes to parse: give each work a deadline
        with _deadline(work_seconds):
            work = data_sources.load_work(ref, seed)
            if work is None:
                return "empty", ref.id, ""
            try:
                ids = np.asarray(tokenize(work.midi))[:max_tokens]
            except Exception as err:  # noqa: BLE001 - a work the vocabulary cannot spell
                return "tokenizer", ref.id, f"{type(err).__name__}: {err}"
    except TimeoutError:
        return "timeout", ref.id, f"took over {work_seconds:.0f} s"
    except Exception as err:  # noqa: BLE001
        return "error", ref.id, f"{type(err).__name__}: {err}"
    if len(ids) < min_tokens:
        return "short", ref.id, f"{len(ids)} tokens"
    payload = {"ids": ids.astype(np.int16), "caption": work.caption, "paraphrases": list(work.paraphrases),
               "collection": work.collection, "meta": json.dumps(work_meta(work), sort_keys=True)}
    return "ok", work.id, payload


def work_meta(work) -> dict:
    """The plain-data fields of a work's meta (what JSON can hold: strings, numbers, booleans, lists and dicts
    of them; dict keys become strings), plus its split, variant (seed) and first time signature."""
    out = {}
    for key, value in work.meta.items():
        ok, plain = _plain(value)
        if ok:
            out[str(key)] = plain
    out.setdefault("time_signature", time_signature(work.midi))
    out["split"], out["variant"] = work.split, work.variant
    return out


def _plain(value) -> tuple[bool, object]:
    if value is None or isinstance(value, (str, bool, int, float)):
        return True, value
    if isinstance(value, np.generic):
        return True, value.item()
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if isinstance(value, dict):
        items = {str(k): _plain(v) for k, v in value.items()}
        return all(ok for ok, _ in items.values()), {k: v for k, (_, v) in items.items()}
    return False, None


def time_signature(midi: mido.MidiFile) -> str:
    """The first time signature of a MIDI file as ``"n/d"`` (``"4/4"`` when it states none, as MIDI says)."""
    for track in midi.tracks:
        for msg in track:
            if msg.type == "time_signature":
                return f"{msg.numerator}/{msg.denominator}"
    return "4/4"


class _Inline:
    """The executor interface run in this process: one code path for one worker and many."""

    @staticmethod
    def submit(fn, *args) -> concurrent.futures.Future:
        f: concurrent.futures.Future = concurrent.futures.Future()
        f.set_result(fn(*args))
        return f

    def shutdown(self, cancel_futures: bool = False) -> None:
        pass


@contextlib.contextmanager
def _deadline(seconds: float):
    """Raise TimeoutError in the main thread after ``seconds`` (SIGALRM; main thread only)."""
    def fire(signum, frame):
        raise TimeoutError

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class TokenSet:
    """A loaded dataset file (either family's: the layout is the same)."""

    def __init__(self, path):
        with np.load(path, allow_pickle=False) as z:
            self.tokens = z["tokens"].astype(np.int32)
            self.offsets = z["offsets"]
            self.caption_ids = z["caption_ids"]
            self.texts = [str(t) for t in z["texts"]]
            self.work_ids = [str(t) for t in z["work_ids"]]
            self.collections = [str(t) for t in z["collections"]]
            self.metas = [json.loads(str(m)) for m in z["metas"]] if "metas" in z.files else [{} for _ in
                                                                                              self.work_ids]

    def __len__(self) -> int:
        return len(self.work_ids)

    def work(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i]:self.offsets[i + 1]]
