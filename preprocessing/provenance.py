"""Where each raw file came from, and whether it is still the file that came: `PROVENANCE.tsv`.

No publisher of the six public datasets prints checksums, so the first run records them: per raw
file its name, size in bytes, modification time (st_mtime_ns), SHA-256, source (the URL,
`kaggle:<owner>/<slug>`, or "placed by hand" with the page to get it from) and the UTC date it was
recorded, one tab-separated line each, in `{raw_dir}/PROVENANCE.tsv`. The download records what it
fetched (after its checks); a file placed by hand is recorded by the first preprocessing run that
read it successfully (so a broken file can be fixed without a false alarm). Every later download
or preprocessing run checks the recorded files and stops with one line when one changed (another
release, a truncated copy, an edit): a file of another size at once; a file whose size and
modification time are both as recorded is taken as unchanged without reading it (hashing Rees46's
13 GB takes a while); any other is hashed again, and if its SHA-256 is still the recorded one (a
copy, a `touch`) it is accepted and its new modification time recorded. `rehash=True`
(`--verify-raw`) hashes every file whatever its time. Accepting a new file is deliberate: delete
its line (or the whole file).
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from gru4rec.fileio import atomic_output

from .errors import PreprocessingError

FILE_NAME = "PROVENANCE.tsv"
COLUMNS = ("name", "size", "mtime_ns", "sha256", "source", "recorded")
CHUNK = 1 << 22


class ProvenanceError(PreprocessingError):
    """A raw file differs from the one recorded in PROVENANCE.tsv, or that file is unreadable."""


@dataclass(frozen=True)
class Entry:
    name: str
    size: int
    mtime_ns: int  # the file's st_mtime_ns when its SHA-256 was last found to be the recorded one
    sha256: str
    source: str
    recorded: str  # UTC date, YYYY-MM-DD


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def today() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


def load(raw: Path) -> dict[str, Entry]:
    """The recorded entries by file name ({} when nothing was recorded yet)."""
    path = Path(raw) / FILE_NAME
    if not path.is_file():
        return {}
    entries = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ProvenanceError(f"{path}: cannot read the provenance record ({e})") from None
    if not lines or lines[0].split("\t") != list(COLUMNS):
        raise ProvenanceError(
            f"{path}: not a provenance record (expected the header {' / '.join(COLUMNS)}, tab-separated); "
            "delete it to record the raw files again"
        )
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(COLUMNS) or not (fields[1].isdigit() and fields[2].isdigit()) or len(fields[3]) != 64:
            raise ProvenanceError(
                f"{path}: line {number} is not '{', '.join(COLUMNS)}' separated by tabs; "
                "fix or delete that line to record the file again"
            )
        entries[fields[0]] = Entry(fields[0], int(fields[1]), int(fields[2]), fields[3], fields[4], fields[5])
    return entries


def save(raw: Path, entries: dict[str, Entry]) -> None:
    """Write the record whole (gru4rec.fileio.atomic_output: never half a record; an ordinary
    file, 0666 less the umask). A directory that cannot be written: a ProvenanceError."""
    raw = Path(raw)
    lines = ["\t".join(COLUMNS)] + [
        "\t".join(str(v).replace("\t", " ") for v in asdict(e).values()) for e in entries.values()
    ]
    try:
        with atomic_output(raw / FILE_NAME) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    except OSError as e:
        raise ProvenanceError(f"{raw / FILE_NAME}: cannot write the provenance record ({e.strerror or e})") from None


def verify(path: Path, entry: Entry, rehash: bool = False) -> Entry:
    """The entry of the file at `path` (with its current modification time) when it is the
    recorded one; one line, and a way out, when it is not. Hashed only when its modification time
    differs from the recorded one, or with rehash."""
    record = path.parent / FILE_NAME
    where = f"recorded {entry.recorded} from {entry.source}"
    fix = f"restore that file, or delete its line in {record} to accept this one"
    st = path.stat()
    if st.st_size != entry.size:
        raise ProvenanceError(
            f"{path}: changed since it was recorded: {st.st_size:,} bytes, expected {entry.size:,} ({where}); {fix}"
        )
    if st.st_mtime_ns == entry.mtime_ns and not rehash:
        return entry
    digest = sha256_of(path)
    if digest != entry.sha256:
        raise ProvenanceError(
            f"{path}: changed since it was recorded: SHA-256 {digest[:16]}..., expected "
            f"{entry.sha256[:16]}... ({where}); {fix}"
        )
    return replace(entry, mtime_ns=st.st_mtime_ns)


def entries_for(
    raw, names, sources: dict | None = None, default_source: str = "placed by hand", rehash: bool = False
) -> list[Entry]:
    """The entries of the present, non-empty files of `names`, in that order: a recorded file is
    verified against its record (a ProvenanceError when it changed; see verify()), an unrecorded one
    is hashed (a new entry, not saved: see record()). sources: file name -> where it came from (a
    URL, kaggle:<slug>). Missing and empty files are left out: the download or the reader names them."""
    raw = Path(raw)
    recorded = load(raw)
    out = []
    for name in names:
        path = raw / name
        if not path.is_file() or path.stat().st_size == 0:
            continue
        if name in recorded:
            out.append(verify(path, recorded[name], rehash))
        else:
            source = (sources or {}).get(name, default_source)
            st = path.stat()  # before hashing: a file changed meanwhile is hashed again next time
            out.append(Entry(name, st.st_size, st.st_mtime_ns, sha256_of(path), source, today()))
    return out


def record(raw, entries) -> None:
    """Add the entries not recorded yet to PROVENANCE.tsv, and the new modification time of a
    recorded file found unchanged by its hash (nothing else of a recorded entry is ever
    overwritten). Writes nothing when nothing is new."""
    raw = Path(raw)
    recorded = load(raw)
    changed = {}
    for e in entries:
        old = recorded.get(e.name)
        if old is None:
            changed[e.name] = e
        elif (old.size, old.sha256) == (e.size, e.sha256) and old.mtime_ns != e.mtime_ns:
            changed[e.name] = replace(old, mtime_ns=e.mtime_ns)
    if changed:
        save(raw, {**recorded, **changed})


def record_or_warn(raw, entries) -> None:
    """record(), where a record that cannot be written (a read-only raw directory) is a warning on
    stderr: what was verified or produced stands, the files are hashed again next time."""
    try:
        record(raw, entries)
    except ProvenanceError as e:
        print(f"WARNING: raw files not recorded: {e}", file=sys.stderr, flush=True)
