#!/usr/bin/env python3
"""masclet beside restic, rustic and borg on nightly pg_dumps of a real masclet_imperi database.

    python3 tools/bench/harness.py [--animals N] [--nights K] [--runs R] [--shape scattered|recent]
                                   [--dump pg_dump|stable] [--tree-mb MB] [--tree-src DIR]
                                   [--work DIR] [--keep-dumps] [--write-docs]

Starts a throwaway PostgreSQL 15 cluster on a free loopback port (as the postgres user when
run as root), loads animals/parts/users, and then night by night changes about 1% of the
dump (updates mostly on recent animals with a tenth anywhere for `scattered`, all on recent
ones for `recent`; deletes of old animals cascading to their parts; new animals), takes a
plain pg_dump, and backs it up with every tool, one after another. Per night and tool it
records wall and CPU seconds, peak RSS and repository bytes; then restore of the last night
(which must give back that night's dump byte for byte),
forget 4 of the snapshots + prune, a cold nightly backup (page cache dropped, as root), the
"limit": the zstd -3 size of the rows that changed or were added that night, and `zstd -3
-T2`'s time on the first dump (masclet's level for whole chunks). Then the source-tree workload (tools/bench/filetree.py; 0
MB skips it) with fresh repositories. Wall times are medians of R runs of each backup, restore
and forget + prune (each backup and forget into a copy of the repository as it was before;
every timed run starts after a sync).

With --dump stable every tool backs up, instead of pg_dump's output, the same schema with
each table's rows copied in primary-key order (the experiment of a dump whose row order is
stable from night to night; see docs/benchmarks.md for what it gave).

Peers come from Debian's packages (apt-get install restic borgbackup, as root) and, for
rustic, from crates.io (cargo install rustic-rs --locked); a peer not installed is skipped.
The summary compares masclet with each peer and with the best peer on each figure. With
--write-docs the table and an SVG chart of repository size over the nights go into
docs/benchmarks.md (between harness markers) and docs/repo-growth.svg.
"""

import argparse
import filecmp
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import filetree  # noqa: E402

PG_BIN = Path("/usr/lib/postgresql/15/bin")
# The zstd level masclet's new repositories compress whole chunks at (the reference for
# first-backup throughput).
ZSTD_LEVEL = 3
ROOT = Path(__file__).resolve().parents[2]


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def as_postgres(cmd):
    return (["runuser", "-u", "postgres", "--"] + cmd) if os.geteuid() == 0 else cmd


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """A throwaway cluster in a temp dir, stopped on exit."""

    def __init__(self, work: Path):
        self.dir = work / "pg"
        self.port = free_port()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            os.chmod(work, 0o755)
        sh(as_postgres([str(PG_BIN / "initdb"), "-D", str(self.dir), "-A", "trust", "-U", "postgres"]), stdout=subprocess.DEVNULL)
        sh(as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.dir), "-w", "-l", str(self.dir / "log"),
                        "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start"]),
           stdout=subprocess.DEVNULL)
        self.psql(["-d", "postgres", "-c", "CREATE DATABASE masclet_imperi"])

    def conn(self, db="masclet_imperi"):
        return ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", db]

    def psql(self, args, **kw):
        db = "masclet_imperi"
        if args[:1] == ["-d"]:
            db, args = args[1], args[2:]
        return sh([str(PG_BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"] + self.conn(db) + args, **kw)

    # Statements go in on stdin: a night's id lists outgrow one command-line argument
    # (128 KiB) at full size.
    def sql(self, text):
        self.psql(["-f", "-"], input=text, text=True, stdout=subprocess.DEVNULL)

    def query(self, text):
        out = self.psql(["-At", "-f", "-"], input=text, stdout=subprocess.PIPE, text=True).stdout
        return out.strip()

    def dump(self, path: Path, stable=False):
        """pg_dump's plain output, or (stable) its schema around each table's rows in primary
        key order. The benchmark database is idle while dumping, so the stable form needs no
        shared snapshot here."""
        start = time.monotonic()
        with open(path, "wb") as f:
            if not stable:
                sh([str(PG_BIN / "pg_dump")] + self.conn(), stdout=f)
            else:
                pgd = [str(PG_BIN / "pg_dump")] + self.conn()
                sh(pgd + ["--section=pre-data"], stdout=f)
                for t in ("users", "animals", "parts"):
                    cols = self.query(f"SELECT string_agg(attname, ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'public.{t}'::regclass AND attnum > 0 AND NOT attisdropped")
                    f.write(f"COPY public.{t} ({cols}) FROM stdin;\n".encode()); f.flush()
                    self.psql(["-c", f"COPY (SELECT * FROM public.{t} ORDER BY id) TO STDOUT"], stdout=f)
                    f.write(b"\\.\n\n"); f.flush()
                sh(pgd + ["--section=post-data"], stdout=f)
        return time.monotonic() - start

    def stop(self):
        subprocess.run(as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.dir), "-m", "immediate", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


SCHEMA = """
CREATE TABLE users (id serial PRIMARY KEY, username text NOT NULL, email text, role text, is_active boolean);
CREATE TABLE animals (id serial PRIMARY KEY, nom varchar(100), genere char(1), estat varchar(3), alletant int,
  mare_id int, quadra int, cod varchar(20), num_serie varchar(20), dob date, explotacio varchar(40), updated_at timestamp);
CREATE TABLE parts (id serial PRIMARY KEY, animal_id int REFERENCES animals(id) ON DELETE CASCADE, part date,
  genere_fill char(1), estat_fill varchar(3), numero_part int, observacions text);
CREATE INDEX parts_animal ON parts(animal_id);
INSERT INTO users (username, email, role, is_active)
  SELECT 'user' || g, 'user' || g || '@masclet.example', 'gerente', true FROM generate_series(1, 20) g;
"""

ANIMAL_ROWS = """
INSERT INTO animals (nom, genere, estat, alletant, mare_id, quadra, cod, num_serie, dob, explotacio, updated_at)
SELECT (ARRAY['Blanca','Estrella','Mora','Rosa','Negra','Bruna','Linda','Perla'])[1 + (g % 8)] || ' ' || (g % 97),
       CASE WHEN g % 5 = 0 THEN 'M' ELSE 'F' END, (ARRAY['OK','DEF','VEN'])[1 + (g % 3)], g % 3,
       CASE WHEN g > 10 THEN 1 + (g * 7919) % (g - 1) ELSE NULL END, 1 + (g * 31) % 400,
       'ES' || lpad(((g * 104729) % 99999999)::text, 8, '0'), 'ES' || lpad((g * 7919)::text, 12, '0'),
       date '2005-01-01' + ((g * 37) % 7300)::int, 'Masclet Imperi ' || (g % 7), timestamp '2026-01-01 07:45'
FROM generate_series({lo}::bigint, {hi}::bigint) g;
INSERT INTO parts (animal_id, part, genere_fill, estat_fill, numero_part, observacions)
SELECT a.id, date '2010-01-01' + (a.id * k * 13) % 5000, CASE WHEN (a.id + k) % 2 = 0 THEN 'M' ELSE 'F' END,
       (ARRAY['OK','DEF','VEN'])[1 + ((a.id + k) % 3)], k, 'Part registrat a la quadra ' || a.quadra
FROM animals a, generate_series(1, 2) k WHERE a.genere = 'F' AND a.id BETWEEN {lo} AND {hi} AND (a.id + k) % 3 <> 0;
"""


def load(pg: Postgres, animals: int):
    pg.sql(SCHEMA)
    step = 500_000
    for lo in range(1, animals + 1, step):
        pg.sql(ANIMAL_ROWS.format(lo=lo, hi=min(animals, lo + step - 1)))
    # Flush the load's dirty buffers now: a checkpoint spread over the first measurements
    # would steal disk and CPU from whichever tool runs first (masclet).
    pg.sql("VACUUM ANALYZE")
    pg.sql("CHECKPOINT")


def night(pg: Postgres, rng: random.Random, shape: str, n: int):
    """Change ~1% of the dump; return the ids of animals whose rows changed or were added."""
    hi = int(pg.query("SELECT max(id) FROM animals"))
    lo = int(pg.query("SELECT min(id) FROM animals"))
    updates = max(1, int(n * 0.008))
    recent = updates if shape == "recent" else int(updates * 0.9)
    ids = {rng.randint(hi - (hi - lo) // 10, hi) for _ in range(recent)}
    ids |= {rng.randint(lo, hi) for _ in range(updates - recent)}
    id_list = ",".join(map(str, ids))
    pg.sql(f"UPDATE animals SET estat = (ARRAY['OK','DEF','VEN'])[1 + (id + {rng.randint(0, 9)}) % 3], "
           f"quadra = 1 + (quadra + 7) % 400, updated_at = now() WHERE id IN ({id_list})")
    pg.sql(f"UPDATE parts SET estat_fill = 'OK' WHERE animal_id IN ({id_list}) AND numero_part = 1")
    deletes = max(1, updates // 10)
    old = ",".join(str(rng.randint(lo, lo + (hi - lo) // 5)) for _ in range(deletes))
    pg.sql(f"DELETE FROM animals WHERE id IN ({old})")
    pg.sql(ANIMAL_ROWS.format(lo=hi + 1, hi=hi + 2 * deletes))
    new_ids = set(range(hi + 1, hi + 2 * deletes + 1))
    pg.sql("CHECKPOINT")
    return ids | new_ids


def limit_bytes(pg: Postgres, ids) -> int:
    """zstd -3 size of the changed and new rows (animals and their parts): the information
    a night really adds."""
    id_list = ",".join(map(str, ids)) or "0"
    rows = pg.psql(["-At", "-f", "-"], input=f"COPY (SELECT a.*, p.* FROM animals a LEFT JOIN parts p ON p.animal_id = a.id "
                                         f"WHERE a.id IN ({id_list})) TO STDOUT;".encode(), stdout=subprocess.PIPE).stdout
    out = subprocess.run(["zstd", "-3", "-c"], input=rows, stdout=subprocess.PIPE, check=True).stdout
    return len(out)


def timed(cmd, env, stdin=None, cwd=None):
    """Run `cmd`; return (wall, cpu, peak RSS KiB)."""
    fd, tfile = tempfile.mkstemp()
    os.close(fd)
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as inp:
        subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", tfile] + cmd, env=env, stdin=inp, cwd=cwd,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall, user, system, rss = Path(tfile).read_text().split()[-4:]
    os.unlink(tfile)
    return float(wall), float(user) + float(system), int(rss)


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class Tool:
    def __init__(self, name, work: Path, env):
        self.name, self.repo = name, work / f"repo-{name}"
        # Caches and borg's security records live beside the repository, so that putting a
        # copy of the repository back (for the next run of the same night) puts them back too.
        self.state = work / f"state-{name}"
        self.env = dict(env, BORG_BASE_DIR=str(self.state), RESTIC_CACHE_DIR=str(self.state / "cache"),
                        RUSTIC_CACHE_DIR=str(self.state / "cache"))
        self.rows = []

    def fresh(self):
        shutil.rmtree(self.repo, ignore_errors=True)
        shutil.rmtree(self.state, ignore_errors=True)
        self.state.mkdir(parents=True)
        self.init()

    def save(self, to: Path):
        shutil.rmtree(to, ignore_errors=True)
        shutil.copytree(self.repo, to / "repo")
        shutil.copytree(self.state, to / "state")

    def put_back(self, frm: Path):
        for mine, theirs in ((self.repo, frm / "repo"), (self.state, frm / "state")):
            shutil.rmtree(mine)
            shutil.copytree(theirs, mine)

    def measure(self, cmd, runs, work: Path, stdin=None, cwd=None):
        """Run `cmd` (a night's backup, forget + prune) `runs` times, each into a copy of the
        repository as it was before; return medians of wall and CPU, the peak RSS, and
        repository size and growth."""
        before = work / f"before-{self.name}"
        self.save(before)
        size0 = du(self.repo)
        samples = []
        for r in range(runs):
            if r:
                self.put_back(before)
            # Nobody's write-back (the copy just made, an earlier tool's run) in the timing.
            os.sync()
            samples.append(timed(cmd, self.env, stdin=stdin, cwd=cwd))
        shutil.rmtree(before)
        repo = du(self.repo)
        return dict(wall=statistics.median(s[0] for s in samples), cpu=statistics.median(s[1] for s in samples),
                    rss=max(s[2] for s in samples), repo=repo, growth=repo - size0)


class Masclet(Tool):
    bin = ROOT / "target" / "release" / "masclet"

    def init(self):
        sh([str(self.bin), "init"], env=self.env, stdout=subprocess.DEVNULL)

    def backup_cmd(self, dump, when):
        return [str(self.bin), "backup", "--quiet", "--time", when, "--stdin", "--stdin-name", "masclet_imperi.sql"]

    def restore_cmd(self, target):
        return [str(self.bin), "restore", "--quiet", "latest", "--target", str(target)]

    def backup_paths_cmd(self, root, when):
        return [str(self.bin), "backup", "--quiet", "--time", when, str(root)]

    def forget_cmd(self):
        return [str(self.bin), "forget", "--quiet", "--keep-last", "4", "--keep-daily", "0", "--keep-weekly", "0",
                "--keep-monthly", "0", "--keep-yearly", "0", "--prune"]


class Restic(Tool):
    def init(self):
        sh(["restic", "init"], env=self.env, stdout=subprocess.DEVNULL)

    def backup_cmd(self, dump, when):
        return ["restic", "backup", "--quiet", "--stdin", "--stdin-filename", "masclet_imperi.sql",
                "--time", when.replace("T", " ").rstrip("Z")]

    def restore_cmd(self, target):
        return ["restic", "restore", "--quiet", "latest", "--target", str(target)]

    def backup_paths_cmd(self, root, when):
        return ["restic", "backup", "--quiet", "--time", when.replace("T", " ").rstrip("Z"), str(root)]

    def forget_cmd(self):
        return ["restic", "forget", "--quiet", "--keep-last", "4", "--prune"]


class Rustic(Tool):
    """rustic reads and writes restic's repository format; its own CLI, same stages. Prune
    deletes at once (rustic otherwise keeps packs marked for deletion for a day), so the
    repository size after forget + prune compares with the others'."""

    def init(self):
        sh(["rustic", "--no-progress", "init"], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @staticmethod
    def time(when):
        return when.replace("T", " ").rstrip("Z") + "+0000"

    def backup_cmd(self, dump, when):
        # --force (no parent): with a parent snapshot, rustic 0.11.4 takes stdin for unchanged
        # and records the parent's content instead of the new dump (the restore of the last
        # night gave the first night's dump).
        return ["rustic", "--no-progress", "backup", "--force", "--stdin-filename", "masclet_imperi.sql",
                "--time", self.time(when), "-"]

    def restore_cmd(self, target):
        return ["rustic", "--no-progress", "restore", "latest", str(target)]

    def backup_paths_cmd(self, root, when):
        return ["rustic", "--no-progress", "backup", "--time", self.time(when), str(root)]

    def forget_cmd(self):
        return ["rustic", "--no-progress", "forget", "--keep-last", "4", "--prune", "--instant-delete"]


class Borg(Tool):
    def init(self):
        sh(["borg", "init", "--encryption", "repokey-blake2", str(self.repo)], env=self.env, stdout=subprocess.DEVNULL)

    def backup_cmd(self, dump, when):
        return ["borg", "create", "--compression", "zstd,3", "--stdin-name", "masclet_imperi.sql",
                "--timestamp", when.rstrip("Z"), f"{self.repo}::n-{when}", "-"]

    def restore_cmd(self, target):
        return ["sh", "-c", f'cd "{target}" && borg extract "{self.repo}::$(borg list --last 1 --short "{self.repo}")"']

    def forget_cmd(self):
        return ["sh", "-c", f'borg prune --keep-last 4 "{self.repo}" && borg compact "{self.repo}"']

    def backup_paths_cmd(self, root, when):
        return ["borg", "create", "--compression", "zstd,3", "--timestamp", when.rstrip("Z"), f"{self.repo}::n-{when}", str(root)]


INSTALL = {"restic": "apt-get install restic", "rustic": "cargo install rustic-rs --locked",
           "borg": "apt-get install borgbackup"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--animals", type=int, default=3_300_000)
    ap.add_argument("--nights", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--shape", choices=["scattered", "recent"], default="scattered")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--dump", choices=["pg_dump", "stable"], default="pg_dump")
    ap.add_argument("--tools", default="masclet,restic,rustic,borg")
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--keep-dumps", action="store_true", help="keep each night's dump as WORK/dump-N.sql")
    ap.add_argument("--tree-mb", type=int, default=100, help="size of the source-tree workload (0 skips it)")
    ap.add_argument("--tree-src", default=None, help="where the source tree is copied from (default: cargo's registry)")
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="masclet-harness-"))
    work.mkdir(parents=True, exist_ok=True)
    sh(["cargo", "build", "--release", "--quiet", "-p", "masclet-cli"], cwd=ROOT)
    env = dict(os.environ, MASCLET_PASSWORD="bench", RESTIC_PASSWORD="bench", RUSTIC_PASSWORD="bench", BORG_PASSPHRASE="bench",
               BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes", BORG_RELOCATED_REPO_ACCESS_IS_OK="yes")
    def make_tools(suffix=""):
        tools = []
        for name in a.tools.split(","):
            cls = {"masclet": Masclet, "restic": Restic, "rustic": Rustic, "borg": Borg}[name]
            if name != "masclet" and not shutil.which(name):
                print(f"{name} not installed ({INSTALL[name]}); skipped", file=sys.stderr)
                continue
            full = f"{name}-{suffix}" if suffix else name
            repo = str(work / f"repo-{full}")
            t = cls(full, work, dict(env, MASCLET_REPO=repo, RESTIC_REPOSITORY=repo, RUSTIC_REPOSITORY=repo))
            t.fresh()
            tools.append(t)
        return tools

    tools = make_tools()
    pg = Postgres(work)
    try:
        print(f"loading {a.animals} animals ...", file=sys.stderr)
        load(pg, a.animals)
        rng = random.Random(2026)
        dump = work / "dump.sql"
        limits = []
        for k in range(a.nights):
            changed = night(pg, rng, a.shape, a.animals) if k else set()
            pg_s = pg.dump(dump, stable=a.dump == "stable")
            limits.append(limit_bytes(pg, changed) if k else None)
            if a.keep_dumps:
                shutil.copyfile(dump, work / f"dump-{k}.sql")
            if k == 0:
                shutil.copyfile(dump, work / "dump-first.sql")
            when = f"2026-11-{k + 1:02d}T03:00:00Z"
            for t in tools:
                row = t.measure(t.backup_cmd(dump, when), a.runs, work, stdin=dump)
                t.rows.append(dict(row, night=k, dump=dump.stat().st_size, pg_dump=pg_s))
                print(f"night {k} {t.name:8} {row['wall']:6.2f} s  +{row['growth'] / 1e6:8.1f} MB  "
                      f"{row['rss'] // 1024} MiB", file=sys.stderr)
                if t.name == "masclet":
                    parts = {d.name: du(d) for d in t.repo.iterdir() if d.is_dir()}
                    print("   " + " ".join(f"{k}={v / 1e6:.2f}MB" for k, v in sorted(parts.items())), file=sys.stderr)
        finals = {}
        for t in tools:
            # Restore and forget + prune: medians of the same number of runs as the backups,
            # each after a sync (forget each time on a copy of the repository as it was).
            target = work / f"restore-{t.name}"
            restores = []
            for _ in range(a.runs):
                shutil.rmtree(target, ignore_errors=True)
                target.mkdir()
                os.sync()
                restores.append(timed(t.restore_cmd(target), t.env))
            # A restore that does not give back the last night's dump measured nothing.
            got = next(target.rglob("masclet_imperi.sql"), None)
            if got is None or not filecmp.cmp(got, dump, shallow=False):
                sys.exit(f"{t.name}: the restore of the last snapshot is not the last night's dump")
            shutil.rmtree(target)
            rw, rrss = statistics.median(x[0] for x in restores), max(x[2] for x in restores)
            forget = t.measure(t.forget_cmd(), a.runs, work)
            fw, frss = forget["wall"], forget["rss"]
            # Cold start: the last night's backup again (nothing new) with the page cache
            # dropped, so the repository's metadata comes from disk.
            cw = None
            if drop_caches():
                cw, _, _ = timed(t.backup_cmd(dump, "2026-12-01T03:00:00Z"), t.env, stdin=dump)
            print(f"{t.name}: restore {rw:.2f} s {rrss // 1024} MiB, forget + prune {fw:.2f} s {frss // 1024} MiB",
                  file=sys.stderr)
            finals[t.name] = dict(restore=rw, forget=fw, cold=cw, after=du(t.repo), rss=max(rrss, frss))
        zstd_s = min(timed(["sh", "-c", f'zstd -{ZSTD_LEVEL} -T2 -q -c "{work / "dump-first.sql"}" > /dev/null'], env)[0]
                     for _ in range(3))
        tree_text = filetree.run(a, make_tools, work) if a.tree_mb else ""
        report(a, tools, limits, finals, work, zstd_s, tree_text)
    finally:
        pg.stop()


def drop_caches() -> bool:
    """Drop the page cache (root only); False where that is not allowed."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def report(a, tools, limits, finals, work, zstd_s, tree_text):
    n = len(tools[0].rows)
    nightly = range(1, n)
    lines = [f"Run: {a.animals} animals, {a.nights} nights, shape `{a.shape}`, medians of {a.runs} runs; "
             f"dump {tools[0].rows[-1]['dump'] / 1e6:.0f} MB, pg_dump {statistics.median(r['pg_dump'] for r in tools[0].rows):.1f} s.",
             "",
             "| tool | first backup | nightly backup (median) | CPU per night | growth per night (median) | restore | forget 4 + prune | cold nightly | peak RSS | repository after all nights |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lim = statistics.median(x for x in limits if x is not None) if n > 1 else 0
    peak = lambda t: max(max(r['rss'] for r in t.rows), finals[t.name]['rss'])
    for t in tools:
        rows = t.rows
        f = finals[t.name]
        med = lambda key: statistics.median(rows[i][key] for i in nightly) if n > 1 else 0
        lines.append(f"| {t.name} | {rows[0]['wall']:.2f} s | {med('wall'):.2f} s | {med('cpu'):.2f} s | "
                     f"{med('growth') / 1e6:.1f} MB | {f['restore']:.2f} s | {f['forget']:.2f} s | "
                     f"{'n/a' if f['cold'] is None else format(f['cold'], '.2f') + ' s'} | "
                     f"{peak(t) // 1024} MiB | {rows[-1]['repo'] / 1e6:.1f} MB |")
    first_mb = tools[0].rows[0]["dump"] / 1e6
    lines += ["", f"Limit (zstd -3 of the rows changed or added per night, median): {lim / 1e6:.2f} MB. "
              f"`zstd -{ZSTD_LEVEL} -T2` (masclet's level for whole chunks) of the first night's dump: {zstd_s:.2f} s ({first_mb / zstd_s:.0f} MB/s). "
              "Cold nightly: the last dump backed up once more with the page cache dropped.", ""]
    m = next((t for t in tools if t.name == "masclet"), None)
    if m and n > 1:
        g = lambda x: statistics.median(x.rows[i]['growth'] for i in nightly)
        w = lambda x: statistics.median(x.rows[i]['wall'] for i in nightly)
        for t in tools:
            if t is m:
                continue
            lines.append(f"- masclet / {t.name}: growth {g(m) / max(g(t), 1):.3f}, nightly wall {w(m) / w(t):.2f}, "
                         f"first backup {m.rows[0]['wall'] / t.rows[0]['wall']:.2f}, restore {finals['masclet']['restore'] / finals[t.name]['restore']:.2f}, "
                         f"forget+prune {finals['masclet']['forget'] / finals[t.name]['forget']:.2f}")
        peers = [t for t in tools if t is not m]
        if peers:
            # Each figure against the peer that does best on it (the fastest, leanest or
            # smallest), whichever peer that is.
            figures = [("nightly wall", w, 2), ("first backup", lambda x: x.rows[0]['wall'], 2),
                       ("restore", lambda x: finals[x.name]['restore'], 2), ("forget+prune", lambda x: finals[x.name]['forget'], 2),
                       ("growth", g, 3), ("peak RSS", peak, 2), ("repository", lambda x: x.rows[-1]['repo'], 3)]
            parts = []
            for label, fig, digits in figures:
                best = min(peers, key=fig)
                parts.append(f"{label} {fig(m) / max(fig(best), 1e-9):.{digits}f} ({best.name})")
            lines.append("- masclet / best peer: " + ", ".join(parts))
        lines.append(f"- masclet growth / limit: {statistics.median(m.rows[i]['growth'] for i in nightly) / max(lim, 1):.1f}")
        lines.append(f"- masclet first backup throughput / zstd -{ZSTD_LEVEL} -T2: {zstd_s / m.rows[0]['wall']:.2f}")
    if tree_text:
        lines += ["", tree_text]
    text = "\n".join(lines)
    print(text)
    if a.write_docs:
        svg = chart(tools)
        (ROOT / "docs" / "repo-growth.svg").write_text(svg)
        doc = ROOT / "docs" / "benchmarks.md"
        body = doc.read_text()
        block = f"<!-- harness:begin -->\n{text}\n\n![repository size over nights](repo-growth.svg)\n<!-- harness:end -->"
        if "<!-- harness:begin -->" in body:
            pre, rest = body.split("<!-- harness:begin -->", 1)
            post = rest.split("<!-- harness:end -->", 1)[1]
            body = pre + block + post
        else:
            body = body.replace("## End to end: a 1 GB nightly dump", "## PostgreSQL nightly dumps beside restic, rustic and borg\n\n"
                                "`python3 tools/bench/harness.py --write-docs` (a real PostgreSQL 15 cluster, `pg_dump` every night).\n\n"
                                + block + "\n\n## End to end: a 1 GB nightly dump", 1)
        doc.write_text(body)


def chart(tools):
    w, h, pad = 640, 320, 50
    top = max(r["repo"] for t in tools for r in t.rows) or 1
    n = max(len(t.rows) for t in tools)
    colors = {"masclet": "#1b7f3b", "restic": "#1f5fbf", "rustic": "#7a3fb0", "borg": "#b5412b"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{pad}" y="20">repository size (MB) after each night</text>',
           f'<line x1="{pad}" y1="{h - pad}" x2="{w - 20}" y2="{h - pad}" stroke="black"/>',
           f'<line x1="{pad}" y1="{h - pad}" x2="{pad}" y2="30" stroke="black"/>',
           f'<text x="{pad - 45}" y="38">{top / 1e6:.0f}</text>', f'<text x="{pad - 15}" y="{h - pad}">0</text>']
    for i, t in enumerate(tools):
        pts = " ".join(f"{pad + (w - pad - 30) * k / max(n - 1, 1):.1f},{h - pad - (h - pad - 40) * r['repo'] / top:.1f}"
                       for k, r in enumerate(t.rows))
        c = colors.get(t.name, "gray")
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{pts}"/>')
        out.append(f'<text x="{w - 120}" y="{50 + 16 * i}" fill="{c}">{t.name}</text>')
    out.append(f'<text x="{w // 2 - 20}" y="{h - 15}">night</text></svg>')
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
