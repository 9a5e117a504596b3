"""Hyperscan as the multi-pattern gate, when installed (``pip install devsecmw[hyperscan]``).

RE2 builds its set automaton lazily: on text it has not seen (every new request) nearly
each byte needs a new DFA state, 150-500 ns a byte for the packaged rules, against ~8 ns
once warm. Hyperscan compiles its automata ahead of time: the same scans cost one linear
pass (``benchmarks/matchers.py``). It only gates: a set scan says which prefilters *may*
occur, and the engine confirms every candidate with the exact RE2 pattern. So each
Hyperscan pattern must match wherever RE2's does (a superset), which holds by construction:

- ``HS_FLAG_PREFILTER``: Hyperscan may widen a pattern, never narrow it;
- :func:`hs_pattern` rewrites what the two engines read differently: ``\\S`` and a negated
  class holding ``\\s`` (Hyperscan's ``\\s`` also holds ``\\v``, RE2's does not), an end
  anchor followed by more pattern (refused by Hyperscan: dropped, a zero-width assertion
  less is a superset); a pattern it cannot vouch for (``\\v``, ``\\p``, ``(?U)``) stays on RE2;
- only valid UTF-8 is scanned by Hyperscan (its UTF-8 mode is undefined on anything else:
  the engine encodes lone surrogates with ``surrogatepass``); other data goes to RE2.
  (Case folding is Unicode in both: ``(?i)k`` matches the Kelvin sign in each.)

Compilation takes seconds (one database for all the distinct prefilters of a rule set:
~5 s CPU for the packaged rules), so it never runs on the request path: a background thread
compiles while RE2 answers, and the database is serialized to a cache directory keyed by
the patterns, flags and library versions, so a restart or another worker loads it in
milliseconds. The compiling process holds a POSIX lock on the key: workers started
together (or forked by a server that preloads the app) wait for it and load the file
instead of compiling the same database each.

Options (:class:`~devsecmw.config.Config`, so also ``DEVSECMW_HYPERSCAN`` / ``DEVSECMW_CACHE_DIR``
and every other source): ``hyperscan=False`` keeps every scan on RE2; ``cache_dir`` (``""``:
``$XDG_CACHE_HOME/devsecmw``, else ``~/.cache/devsecmw``; ``"off"``: no file). They reach this
module as arguments (:func:`accelerate`), never through the environment: the plan keys its
process-wide compiled rule sets by rules *and* these two values (``plan.phases_for``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import platform
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .._safety import report
from .matcher import Encoded, MultiMatcher, compile_set, walk_pattern

logger = logging.getLogger("devsecmw")

#: Found without importing it: the import costs ~1.5 MiB of RSS and ~6 ms, paid only by a
#: process that turns it on (:func:`enabled`), never by one that keeps every scan on RE2.
HAVE_HYPERSCAN = importlib.util.find_spec("hyperscan") is not None
_hs: Any = None
FLAGS = 0


def _load() -> bool:
    """Import hyperscan once (a broken install counts as absent)."""
    global _hs, FLAGS, HAVE_HYPERSCAN
    if _hs is None and HAVE_HYPERSCAN:
        try:
            import hyperscan
        except ImportError:  # pragma: no cover - found but unloadable (missing libhs)
            HAVE_HYPERSCAN = False
            return False
        FLAGS = hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_UTF8
        FLAGS |= hyperscan.HS_FLAG_ALLOWEMPTY
        _hs = hyperscan  # last: a thread that sees it also sees FLAGS
    return _hs is not None


def _require() -> None:
    if not _load():
        raise RuntimeError("hyperscan is not installed (devsecmw[hyperscan])")


try:  # pragma: no cover
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, each process compiles
    fcntl = None  # type: ignore[assignment]

#: Texts longer than this are scanned by RE2. On hostile text Hyperscan's prefilter database
#: runs at ~55 ns a byte (the referee's 64 KiB adversarial body: 3.6 ms a scan), where RE2's
#: sets, once they have seen such text, run at ~9; benign texts are short (on the varied
#: corpus mix 1% of the scanned bytes are in texts longer than 4 KiB), and a long text is
#: scanned in chunks with a budget check between them (``scan.scan_in_chunks``).
LONG_TEXT = 4096
#: Bumped when :func:`hs_pattern` changes: part of the cache key.
FORMAT = 1
_SPACE = "\\t\\n\\f\\r "
#: Escapes whose meaning differs between the engines in ways not rewritten here.
_UNSURE = frozenset({"V", "h", "H", "p", "P", "R", "X", "C", "Q", "E", "K", "N"})


def enabled(option: bool = True) -> bool:
    """Hyperscan is used: the ``hyperscan`` option is on and the package loads (imported only then)."""
    return option and _load()


def hs_pattern(pattern: str) -> str | None:
    """``pattern`` for Hyperscan, matching wherever RE2 matches it; ``None``: keep it on RE2."""
    if "(?U" in pattern or "(?<" in pattern or "(?P<" in pattern:
        return None
    pieces = list(walk_pattern(pattern))
    out: list[str] = []
    negated = False
    for n, piece in enumerate(pieces):
        text, kind = piece.text, piece.kind
        if kind == "class":
            negated = text == "[^"
        if kind == "escape" and text[1] in _UNSURE:
            return None
        if kind == "escape" and text == "\\S":
            # Hyperscan's \S lacks \v, RE2's has it.
            out.append("\\S\\x0b" if piece.in_class else "[\\S\\x0b]")
        elif kind == "escape" and text == "\\v":
            out.append("\\x0b")  # RE2's vertical tab; Hyperscan's \v is a class of vertical spaces
        elif kind == "escape" and text == "\\s" and piece.in_class and negated:
            out.append(_SPACE)  # [^\s] in RE2 admits \v
        elif not piece.in_class and text in ("$", "\\z") and n < len(pieces) - 1:
            out.append("(?:)")  # "Embedded end anchors not supported": dropped (a superset)
        else:
            out.append(text)
    return "".join(out)


def cache_dir(option: str = "") -> Path | None:
    """The directory of the ``cache_dir`` option (``""``: the user's cache; ``off``: none)."""
    raw = option.strip()
    if raw.lower() in ("off", "none"):
        return None
    if raw:
        return Path(raw).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "devsecmw"


def _version() -> str:
    _load()
    # A serialized database is specific to the library and the CPU family (Hyperscan refuses
    # a foreign one on load, and the engine then compiles again).
    return f"{getattr(_hs, '__version__', '?')}/{platform.machine()}"


#: Databases kept in the cache directory (one per rule set: a deployment has a handful; each
#: file is ~6 MiB for the packaged rules). The least recently written go first.
CACHE_FILES = 8


def _prune(directory: Path) -> None:
    try:
        files = sorted(directory.glob("hs-*.db"), key=lambda f: f.stat().st_mtime, reverse=True)
        for old in files[CACHE_FILES:]:
            old.unlink(missing_ok=True)
            old.with_suffix(".lock").unlink(missing_ok=True)
    except OSError:  # another process pruned the same file: nothing lost
        pass


def _trim() -> None:
    """Give the compiler's freed memory back to the system: Hyperscan's compiler peaks at
    ~45 MiB for the packaged rules, which glibc keeps in the heap (measured: +45 MiB RSS
    after the build, +10 after the trim). Only where glibc is the allocator."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl, Windows): nothing to do
        pass


def _hit(ident: int, start: int, end: int, flags: int, found: list[int]) -> None:
    found.append(ident)


class Database:
    """One Hyperscan database for all the patterns of a rule set, built in the background.

    ``ids``: pattern -> its id in the database (patterns Hyperscan refused, or that
    :func:`hs_pattern` keeps on RE2, have none). ``source``: ``compiled``, ``cache`` or
    ``""`` while not ready (or when the build failed: RE2 then answers, as before)."""

    #: Builds done in this process, by source (``compiled``/``cache``/``failed``): tests and
    #: the start-up benchmark read it.
    counts: dict[str, int] = {"compiled": 0, "cache": 0, "failed": 0, "scan_errors": 0}
    #: (process id, source) of each build: a forked worker tells its own from its parent's.
    builds: list[tuple[int, str]] = []
    _pending: list[Database] = []

    def __init__(self, patterns: Iterable[str], directory: Path | None = None) -> None:
        self.patterns = sorted(set(patterns))
        #: Where the database file is kept (None: nowhere), from the ``cache_dir`` option.
        self.directory = directory
        self.ids: dict[str, int] = {}
        self.source = ""
        self.ready = threading.Event()
        self._db: Any = None
        self._local = threading.local()
        self._sets: list[HsSet] = []
        digest = hashlib.sha256(f"{FORMAT}\0{FLAGS}\0{_version()}".encode())
        for p in self.patterns:
            digest.update(p.encode("utf-8", "surrogatepass") + b"\0")
        self.key = digest.hexdigest()[:32]

    # -- building (background thread) -------------------------------------------------
    def start(self) -> None:
        Database._pending.append(self)
        threading.Thread(target=self._build, name="devsecmw-hyperscan", daemon=True).start()

    def _build(self) -> None:
        try:
            db, ids, source = self._load_or_compile()
        except Exception as exc:  # the build fails open: RE2 keeps answering
            Database.counts["failed"] += 1
            Database.builds.append((os.getpid(), "failed"))
            logger.warning("devsecmw: Hyperscan database not built (%s); the RE2 sets answer", exc)
            return
        if source == "compiled":
            _trim()
        self._attach(db, ids, source)

    def _load_or_compile(self) -> tuple[Any, dict[str, int], str]:
        _require()
        directory = self.directory
        if directory is None:
            return (*self._compile(), "compiled")
        path = directory / f"hs-{self.key}.db"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            lock = open(directory / f"hs-{self.key}.lock", "a+b")  # noqa: SIM115 - closed below
        except OSError as exc:  # a read-only home in a container: compile, keep nothing
            logger.info("devsecmw: Hyperscan cache directory unusable (%s); compiling", exc)
            return (*self._compile(), "compiled")
        with lock:
            # POSIX record lock (not inherited by a forked child): one process compiles.
            if fcntl is not None:
                fcntl.lockf(lock, fcntl.LOCK_EX)
            try:
                loaded = self._load(path)
                if loaded is not None:
                    return (*loaded, "cache")
                db, ids = self._compile()
                self._save(path, db, ids)
                return db, ids, "compiled"
            finally:
                if fcntl is not None:
                    fcntl.lockf(lock, fcntl.LOCK_UN)

    def _load(self, path: Path) -> tuple[Any, dict[str, int]] | None:
        _require()
        try:
            raw = path.read_bytes()
        except OSError:
            return None
        header, _, blob = raw.partition(b"\n")
        try:
            ids = {self.patterns[int(i)]: n for n, i in enumerate(header.split(b","))} if header else {}
            return _hs.loadb(blob, _hs.HS_MODE_BLOCK), ids
        except Exception:  # a corrupt or foreign file: compile again (and overwrite it)
            return None

    def _save(self, path: Path, db: Any, ids: dict[str, int]) -> None:
        _require()
        index = {p: i for i, p in enumerate(self.patterns)}
        order = sorted(ids, key=ids.__getitem__)
        header = ",".join(str(index[p]) for p in order).encode()
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".hs-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(header + b"\n" + _hs.dumpb(db))
            os.replace(tmp, path)  # readers see the old file or the whole new one
        except OSError as exc:
            logger.info("devsecmw: Hyperscan cache not written (%s)", exc)
            return
        _prune(path.parent)

    def _compile(self) -> tuple[Any, dict[str, int]]:
        _require()
        rewritten = {p: hs_pattern(p) for p in self.patterns}
        usable = [p for p in self.patterns if rewritten[p] is not None]
        try:
            return self._compile_some(usable, rewritten), {p: i for i, p in enumerate(usable)}
        except _hs.error:
            pass
        # Some pattern is refused: find which, one by one (only custom rules get here).
        kept = []
        for p in usable:
            try:
                self._compile_some([p], rewritten)
                kept.append(p)
            except _hs.error as exc:
                logger.info("devsecmw: prefilter kept on RE2 (Hyperscan: %s): %.80r", exc, p)
        return self._compile_some(kept, rewritten), {p: i for i, p in enumerate(kept)}

    @staticmethod
    def _compile_some(patterns: Sequence[str], rewritten: dict[str, str | None]) -> Any:
        _require()
        db = _hs.Database(mode=_hs.HS_MODE_BLOCK)
        if patterns:
            exprs = [(rewritten[p] or "").encode("utf-8", "surrogatepass") for p in patterns]
            n = len(exprs)
            db.compile(expressions=exprs, ids=list(range(n)), elements=n, flags=[FLAGS] * n)
        return db

    def _attach(self, db: Any, ids: dict[str, int], source: str) -> None:
        self._db = db if ids else None
        self.ids = ids
        for s in self._sets:
            s.attach(self)
        self.source = source
        Database.counts[source] += 1
        Database.builds.append((os.getpid(), source))
        if self in Database._pending:
            Database._pending.remove(self)
        self.ready.set()

    # -- scanning ---------------------------------------------------------------------
    def scan(self, data: bytes) -> list[int]:
        """Ids of the patterns that may occur in ``data`` (valid UTF-8)."""
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:  # one scratch per thread: Hyperscan's scratch is not shared
            scratch = self._local.scratch = _hs.Scratch(self._db)
        found: list[int] = []
        self._db.scan(data, match_event_handler=_hit, context=found, scratch=scratch)
        return found

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the build (tests, benchmarks, a server that wants it before serving)."""
        return self.ready.wait(timeout)


def _after_fork_in_child() -> None:
    # A build thread does not survive fork: the child restarts it. It waits on the
    # parent's lock (the parent's thread goes on) and then loads the file it wrote.
    pending, Database._pending = Database._pending, []
    for db in pending:
        if not db.ready.is_set():
            db._local = threading.local()
            db.start()


if hasattr(os, "register_at_fork"):  # pragma: no branch
    os.register_at_fork(after_in_child=_after_fork_in_child)


class HsSet:
    """A set of patterns answered by Hyperscan once its database is ready, by RE2 before,
    and by RE2 for data Hyperscan must not see (invalid UTF-8), long texts (see
    :data:`LONG_TEXT`) and patterns it refused."""

    __slots__ = ("_db", "_local", "_patterns", "_re2", "_residual", "_residual_idx")

    def __init__(self, patterns: Sequence[str], re2: MultiMatcher) -> None:
        self._patterns = list(patterns)
        self._re2 = re2
        self._db: Database | None = None
        self._local: dict[int, list[int]] = {}
        self._residual: MultiMatcher | None = None
        self._residual_idx: list[int] = []

    def attach(self, db: Database) -> None:
        """Called by the build thread: the mapping first, the switch last (a request thread
        reads ``_db`` once per scan, and sees either the old state or the whole new one)."""
        local: dict[int, list[int]] = {}  # rules may share a prefilter: one id, several indexes
        for i, p in enumerate(self._patterns):
            if p in db.ids:
                local.setdefault(db.ids[p], []).append(i)
        rest = [i for i, p in enumerate(self._patterns) if p not in db.ids]
        self._local = local
        self._residual_idx = rest
        self._residual = compile_set([self._patterns[i] for i in rest]) if rest else None
        if db._db is not None:
            self._db = db

    def match(self, data: Encoded) -> list[int]:
        db = self._db
        if db is None or type(data) is not bytes or len(data) > LONG_TEXT or not _valid_utf8(data):
            return self._re2.match(data)
        try:
            ids = db.scan(data)
        except Exception as exc:  # fail open to the exact same answer from RE2
            Database.counts["scan_errors"] += 1
            report("hyperscan scan", exc)
            return self._re2.match(data)
        local = self._local
        found = [j for i in ids if i in local for j in local[i]]
        if self._residual is not None:
            idx = self._residual_idx
            found.extend(idx[i] for i in self._residual.match(data))
        found.sort()
        return found


def _valid_utf8(data: bytes) -> bool:
    if data.isascii():
        return True
    try:
        data.decode("utf-8")  # strict: surrogates written with surrogatepass are refused
    except UnicodeDecodeError:
        return False
    return True


def accelerate(
    sets: Sequence[tuple[Sequence[str], MultiMatcher]],
    hyperscan: bool = True,
    directory: str = "",
) -> tuple[list[MultiMatcher], Database | None]:
    """Each ``(patterns, re2 set)`` as a matcher answered by Hyperscan when it is ready (one
    database for all, built in the background, cached in :func:`cache_dir` of ``directory``);
    the RE2 sets as they are when Hyperscan is not installed or ``hyperscan`` is false."""
    if not sets or not enabled(hyperscan):
        return [m for _, m in sets], None
    db = Database((p for patterns, _ in sets for p in patterns), cache_dir(directory))
    out: list[MultiMatcher] = []
    for patterns, re2 in sets:
        hs_set = HsSet(patterns, re2)
        db._sets.append(hs_set)
        out.append(hs_set)
    db.start()
    return out, db


__all__ = ["FLAGS", "HAVE_HYPERSCAN", "Database", "HsSet", "accelerate", "cache_dir", "enabled", "hs_pattern"]
