"""The source-code file-tree workload of tools/bench/harness.py.

A copy of real source code (the crates in cargo's registry, or any directory given with
--tree-src) of about --tree-mb MB; each night 1% of the files are edited in place (a line
changed, one inserted), 0.1% deleted and as many new files added (edited copies of others).
Every tool backs up the directory night by night, one after another; the same figures as
the database workload are recorded.
"""

import random
import shutil
import statistics
from pathlib import Path


def build(src: Path, dst: Path, mb: int) -> int:
    """Copy whole crates from `src` into `dst` until about `mb` MB; return the file count."""
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    total, files = 0, 0
    for crate in sorted(p for p in src.iterdir() if p.is_dir()):
        if total >= mb * 1_000_000:
            break
        # Plain copies (new mtimes, as a checkout gives): preserved mtimes would leave every
        # file's ctime past its mtime, which masclet reads every night (see `backup --help`).
        shutil.copytree(crate, dst / crate.name, symlinks=True, copy_function=shutil.copy)
        for f in (dst / crate.name).rglob("*"):
            if f.is_file() and not f.is_symlink():
                total += f.stat().st_size
                files += 1
    return files


def night(root: Path, rng: random.Random):
    """Edit 1% of the text files, delete 0.1%, add as many (edited copies)."""
    files = sorted(f for f in root.rglob("*") if f.is_file() and not f.is_symlink())
    text = [f for f in files if f.suffix in (".rs", ".toml", ".md", ".c", ".h", ".txt", ".json", ".yml")]
    for f in rng.sample(text, max(1, len(text) // 100)):
        lines = f.read_bytes().split(b"\n")
        k = rng.randrange(len(lines))
        lines[k] = lines[k] + b" // edited"
        lines.insert(rng.randrange(len(lines) + 1), b"// a new line " + str(rng.random()).encode())
        f.write_bytes(b"\n".join(lines))
    gone = rng.sample(files, max(1, len(files) // 1000))
    for f in gone:
        if f.exists():
            f.unlink()
    for i, f in enumerate(rng.sample(text, max(1, len(files) // 1000))):
        if f.exists():
            data = f.read_bytes()
            (f.parent / f"new_{rng.randrange(1 << 30)}_{i}{f.suffix}").write_bytes(data + b"\n// copied\n")


def run(a, make_tools, work: Path) -> str:
    """Run the workload with fresh repositories for every tool; return the markdown table."""
    src = Path(a.tree_src) if a.tree_src else next(Path.home().glob(".cargo/registry/src/*"), None)
    if src is None or not src.is_dir():
        return "File-tree workload skipped: no source tree (give --tree-src DIR)."
    root = work / "tree"
    nfiles = build(src, root, a.tree_mb)
    tools = make_tools("tree")
    rng = random.Random(2027)
    for k in range(a.nights):
        if k:
            night(root, rng)
        when = f"2026-11-{k + 1:02d}T03:00:00Z"
        for t in tools:
            t.rows.append(t.measure(t.backup_paths_cmd(root, when), a.runs, work, cwd=root.parent))
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and not f.is_symlink())
    lines = [f"Source tree: {nfiles} files, {size / 1e6:.0f} MB (crates from cargo's registry); each night 1% of the "
             f"files edited, 0.1% deleted, 0.1% added; {a.nights} nights, medians of {a.runs} runs.", "",
             "| tool | first backup | nightly backup (median) | growth per night (median) | peak RSS | repository after all nights |",
             "|---|---|---|---|---|---|"]
    nightly = range(1, len(tools[0].rows))
    for t in tools:
        med = lambda key: statistics.median(t.rows[i][key] for i in nightly) if len(t.rows) > 1 else 0
        lines.append(f"| {t.name.removesuffix('-tree')} | {t.rows[0]['wall']:.2f} s | {med('wall'):.2f} s | "
                     f"{med('growth') / 1e6:.2f} MB | {max(r['rss'] for r in t.rows) // 1024} MiB | {t.rows[-1]['repo'] / 1e6:.1f} MB |")
    m = next((t for t in tools if t.name == "masclet-tree"), None)
    peers = [t for t in tools if t is not m]
    if m and peers and len(m.rows) > 1:
        # Each figure against the peer that does best on it, whichever peer that is.
        figures = [("first backup", lambda x: x.rows[0]['wall']),
                   ("nightly backup", lambda x: statistics.median(x.rows[i]['wall'] for i in nightly)),
                   ("repository", lambda x: x.rows[-1]['repo'])]
        parts = []
        for label, fig in figures:
            best = min(peers, key=fig)
            parts.append(f"{label} {fig(m) / max(fig(best), 1e-9):.2f} ({best.name.removesuffix('-tree')})")
        lines += ["", "- masclet / best peer: " + ", ".join(parts)]
    return "\n".join(lines)
