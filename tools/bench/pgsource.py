#!/usr/bin/env python3
"""`masclet backup --pg` in its two dump shapes, beside pg_dump alone and pg_dump | restic.

    python3 tools/bench/pgsource.py [--animals N] [--nights K] [--work DIR] [--write-docs]

Reuses tools/bench/harness.py's pieces: a throwaway PostgreSQL 15 cluster (trust auth on
127.0.0.1, user postgres), the masclet_imperi load of N animals and its `scattered` nightly
change (about 1% of the rows), and the night's limit (the zstd -3 size of the rows changed
or added that night). Night 0 is the loaded database; nights 1..K each apply one change
first. Every night, one after another in the same minutes (each after a sync, their order
rotated from night to night so that none always runs first):

  - `pg_dump` alone into /dev/null (the reference time);
  - `masclet backup --pg --json` (the default shape, keyed) into repository K;
  - `masclet backup --pg --dump-shape pg-dump --json` into repository P;
  - `pg_dump | restic backup --stdin` into a restic repository.

Each records wall time, peak RSS (GNU time's %M of each process: masclet's figure is the
largest of masclet and the pg_dump, pg_dumpall it waits for; the pipeline's is the larger of
its two processes, restic's is given too) and growth (repository size after minus before).
After the last night, a restore of each shape, `masclet dump latest masclet_imperi.sql |
psql` into a fresh database, is timed beside `psql -f` of a plain pg_dump file into another
(each restored database's row counts checked against the source's).

With --write-docs the summary goes into docs/benchmarks.md between the pgsource markers.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import PG_BIN, ROOT, Postgres, du, limit_bytes, load, night, sh  # noqa: E402

MASCLET = ROOT / "target" / "release" / "masclet"
DB = "masclet_imperi"
BEGIN, END = "<!-- pgsource:begin -->", "<!-- pgsource:end -->"
HEADING = "## backup --pg: dump shapes, beside pg_dump and restic"
BEFORE = "## End to end: a 1 GB nightly dump"


def pipeline(cmds, env, out=subprocess.DEVNULL):
    """Run `cmds` as a pipeline (each one's stdout into the next one's stdin, the last one's
    into `out`), each under GNU time. Return (wall seconds, [peak RSS KiB per process],
    last process's stdout when out is PIPE)."""
    tfiles, procs, errs = [], [], []
    start = time.monotonic()
    prev = None
    for i, cmd in enumerate(cmds):
        fd, tfile = tempfile.mkstemp()
        os.close(fd)
        tfiles.append(tfile)
        err = tempfile.TemporaryFile()
        errs.append(err)
        last = i == len(cmds) - 1
        p = subprocess.Popen(["/usr/bin/time", "-f", "%e %U %S %M", "-o", tfile] + cmd, env=env,
                             stdin=prev.stdout if prev else subprocess.DEVNULL,
                             stdout=out if last else subprocess.PIPE, stderr=err)
        if prev:
            prev.stdout.close()
        procs.append(p)
        prev = p
    stdout, _ = procs[-1].communicate()
    for p in procs[:-1]:
        p.wait()
    wall = time.monotonic() - start
    for cmd, p, err in zip(cmds, procs, errs):
        err.seek(0)
        text = err.read().decode(errors="replace")
        err.close()
        if p.returncode != 0:
            sys.exit(f"{' '.join(cmd)} exited {p.returncode}: {text[-2000:]}")
    rss = [int(Path(t).read_text().split()[-1]) for t in tfiles]
    for t in tfiles:
        os.unlink(t)
    return wall, rss, stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--animals", type=int, default=3_300_000)
    ap.add_argument("--nights", type=int, default=6, help="changed nights after night 0")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--write-docs", action="store_true")
    a = ap.parse_args()
    if not MASCLET.exists():
        sys.exit(f"build masclet first: cargo build --release -p masclet-cli ({MASCLET} missing)")
    if not shutil.which("restic"):
        sys.exit("restic not installed (apt-get install restic)")
    work = a.work or Path(tempfile.mkdtemp(prefix="masclet-pgsource-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    pg = Postgres(work)
    url = f"postgresql://postgres@127.0.0.1:{pg.port}/{DB}"
    base = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    env = dict(base, MASCLET_PASSWORD="bench", RESTIC_PASSWORD="bench", DATABASE_URL=url,
               RESTIC_CACHE_DIR=str(work / "restic-cache"))
    repos = {"keyed": work / "repo-keyed", "pg-dump": work / "repo-pgdump", "restic": work / "repo-restic"}
    for r in repos.values():
        shutil.rmtree(r, ignore_errors=True)
    sh([str(MASCLET), "init"], env=dict(env, MASCLET_REPO=str(repos["keyed"])), stdout=subprocess.DEVNULL)
    sh([str(MASCLET), "init"], env=dict(env, MASCLET_REPO=str(repos["pg-dump"])), stdout=subprocess.DEVNULL)
    sh(["restic", "init"], env=dict(env, RESTIC_REPOSITORY=str(repos["restic"])), stdout=subprocess.DEVNULL)
    pg_dump = [str(PG_BIN / "pg_dump")] + pg.conn()
    rows = []
    try:
        print(f"loading {a.animals} animals ...", file=sys.stderr)
        load(pg, a.animals)
        print(f"loaded in {time.monotonic() - t0:.0f} s", file=sys.stderr)
        rng = random.Random(2026)

        def run(name, when):
            if name == "pg_dump":
                w, rss, _ = pipeline([pg_dump], env)
                return dict(wall=w, rss=rss[0])
            if name == "restic":
                size0 = du(repos["restic"])
                renv = dict(env, RESTIC_REPOSITORY=str(repos["restic"]))
                w, rss, _ = pipeline([pg_dump, ["restic", "backup", "--quiet", "--stdin", "--stdin-filename",
                                                f"{DB}.sql", "--time", when.replace("T", " ").rstrip("Z")]], renv)
                return dict(wall=w, rss=max(rss), rss_tool=rss[1], growth=du(repos["restic"]) - size0)
            size0 = du(repos[name])
            menv = dict(env, MASCLET_REPO=str(repos[name]))
            w, rss, out = pipeline([[str(MASCLET), "backup", "--pg", "--dump-shape", name, "--json", "--time", when]],
                                   menv, out=subprocess.PIPE)
            s = json.loads(out)
            return dict(wall=w, rss=rss[0], growth=du(repos[name]) - size0, added=s["bytes_added"],
                        read=s["bytes_read"], secs=s["duration_secs"])

        order = ["pg_dump", "keyed", "pg-dump", "restic"]
        for k in range(a.nights + 1):
            changed = night(pg, rng, "scattered", a.animals) if k else set()
            when = f"2026-11-{k + 1:02d}T03:00:00Z"
            row = dict(night=k)
            turn = order[k % 4:] + order[:k % 4]
            for name in turn:
                os.sync()
                row[name] = run(name, when)
            row["limit"] = limit_bytes(pg, changed) if k else None
            rows.append(row)
            print(f"night {k} ({' '.join(turn)}): pg_dump {row['pg_dump']['wall']:.2f} s; "
                  + "; ".join(f"{n} {row[n]['wall']:.2f} s +{row[n]['growth'] / 1e6:.2f} MB {row[n]['rss'] // 1024} MiB"
                              for n in ("keyed", "pg-dump", "restic"))
                  + (f"; limit {row['limit'] / 1e6:.3f} MB" if k else ""), file=sys.stderr)
        restores = restore_all(pg, env, repos, work)
        text = report(a, rows, restores, time.monotonic() - t0)
    finally:
        pg.stop()
    print(text)
    if a.write_docs:
        write_docs(text)


def counts(pg, db):
    return pg.query(f"\\c {db}\nSELECT (SELECT count(*) FROM animals) || ' ' || (SELECT count(*) FROM parts) "
                    "|| ' ' || (SELECT count(*) FROM users)")


def restore_all(pg, env, repos, work):
    """Time each shape's `masclet dump | psql` and `psql -f` of a plain pg_dump file, each
    into a fresh database; check the restored row counts."""
    plain = work / "plain.sql"
    pg.dump(plain)
    want = counts(pg, DB)
    out = {}
    psql = [str(PG_BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(pg.port),
            "-U", "postgres", "-d"]
    for name in ("psql -f", "keyed", "pg-dump"):
        fresh = "fresh_" + name.replace(" ", "").replace("-", "")
        pg.psql(["-d", "postgres", "-c", "SET client_min_messages = warning", "-c", f"DROP DATABASE IF EXISTS {fresh}"])
        pg.psql(["-d", "postgres", "-c", f"CREATE DATABASE {fresh}"])
        sh(["sync"])
        if name == "psql -f":
            w, rss, _ = pipeline([psql + [fresh, "-f", str(plain)]], env)
        else:
            menv = dict(env, MASCLET_REPO=str(repos[name]))
            w, rss, _ = pipeline([[str(MASCLET), "dump", "latest", f"{DB}.sql"], psql + [fresh]], menv)
        got = counts(pg, fresh)
        if got != want:
            sys.exit(f"restore {name}: row counts {got}, the source has {want}")
        out[name] = dict(wall=w, rss=rss[0])
        print(f"restore {name}: {w:.2f} s ({rss[0] // 1024} MiB)", file=sys.stderr)
        pg.psql(["-d", "postgres", "-c", f"DROP DATABASE {fresh}"])
    # The whole test restore: read and authenticate, restore into a temporary database,
    # the checks (counts, keys, indexes with amcheck, roles, grants), the drop.
    for name in ("keyed", "pg-dump"):
        menv = dict(env, MASCLET_REPO=str(repos[name]))
        sh(["sync"])
        w, rss, rep = pipeline([[str(MASCLET), "verify", "latest", "--json"]], menv, out=subprocess.PIPE)
        rep = json.loads(rep)
        if not rep["ok"]:
            sys.exit(f"verify {name} failed: {rep}")
        out["verify " + name] = dict(wall=w, rss=rss[0])
        print(f"verify {name}: {w:.2f} s ({rss[0] // 1024} MiB)", file=sys.stderr)
    out["dump_mb"] = plain.stat().st_size / 1e6
    plain.unlink()
    return out


def report(a, rows, restores, total_s):
    nightly = rows[1:]
    med = statistics.median
    mean = statistics.mean
    lines = [f"Run: {a.animals} animals, night 0 (the loaded database) and {a.nights} nights of the `scattered` change; "
             f"plain dump {restores['dump_mb']:.0f} MB; single runs, the four commands one after another each night "
             f"(order rotated night by night); {total_s / 60:.0f} min in all.", "",
             "| night | pg_dump alone | backup --pg keyed | backup --pg pg-dump | pg_dump \\| restic | growth keyed | growth pg-dump | growth restic | limit |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lim = "—" if r["limit"] is None else f"{r['limit'] / 1e6:.3f} MB"
        lines.append(f"| {r['night']} | {r['pg_dump']['wall']:.2f} s | {r['keyed']['wall']:.2f} s | {r['pg-dump']['wall']:.2f} s | "
                     f"{r['restic']['wall']:.2f} s | {r['keyed']['growth'] / 1e6:.2f} MB | {r['pg-dump']['growth'] / 1e6:.2f} MB | "
                     f"{r['restic']['growth'] / 1e6:.1f} MB | {lim} |")
    lines += ["", "Nights 1..K (medians, and means where named):", "",
              "| | nightly wall | / pg_dump alone (median; mean) | / pg_dump \\| restic (median) | growth per night (median; mean) | growth / limit (mean; median) | bytes_added (median) | peak RSS | restore into a fresh database | restore / psql -f |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name, label in (("keyed", "backup --pg (keyed)"), ("pg-dump", "backup --pg --dump-shape pg-dump")):
        ratio = [r[name]["wall"] / r["pg_dump"]["wall"] for r in nightly]
        vs_restic = [r[name]["wall"] / r["restic"]["wall"] for r in nightly]
        growth = [r[name]["growth"] for r in nightly]
        per_lim = [r[name]["growth"] / max(r["limit"], 1) for r in nightly]
        rss = max(r[name]["rss"] for r in rows)
        rs = restores[name]
        lines.append(f"| {label} | {med(r[name]['wall'] for r in nightly):.2f} s | {med(ratio):.2f}; {mean(ratio):.2f} | "
                     f"{med(vs_restic):.2f} | {med(growth) / 1e6:.2f} MB; {mean(growth) / 1e6:.2f} MB | "
                     f"{mean(per_lim):.2f}x; {med(per_lim):.2f}x | {med(r[name]['added'] for r in nightly) / 1e6:.2f} MB | "
                     f"{rss // 1024} MiB | {rs['wall']:.2f} s | {rs['wall'] / restores['psql -f']['wall']:.2f} |")
    rgrowth = [r["restic"]["growth"] for r in nightly]
    rlim = [r["restic"]["growth"] / max(r["limit"], 1) for r in nightly]
    lines.append(f"| pg_dump \\| restic backup --stdin | {med(r['restic']['wall'] for r in nightly):.2f} s | "
                 f"{med(r['restic']['wall'] / r['pg_dump']['wall'] for r in nightly):.2f}; "
                 f"{mean(r['restic']['wall'] / r['pg_dump']['wall'] for r in nightly):.2f} | 1 | "
                 f"{med(rgrowth) / 1e6:.1f} MB; {mean(rgrowth) / 1e6:.1f} MB | {mean(rlim):.0f}x; {med(rlim):.0f}x | — | "
                 f"{max(r['restic']['rss'] for r in rows) // 1024} MiB (restic {max(r['restic']['rss_tool'] for r in rows) // 1024}) | — | — |")
    lines.append(f"| pg_dump alone (/dev/null) | {med(r['pg_dump']['wall'] for r in nightly):.2f} s | 1 | — | — | — | — | "
                 f"{max(r['pg_dump']['rss'] for r in rows) // 1024} MiB | psql -f: {restores['psql -f']['wall']:.2f} s | 1 |")
    lines += ["", "| test restore (`masclet verify latest`) | wall | / psql -f of a plain dump | peak RSS |",
              "|---|---|---|---|"]
    for name in ("keyed", "pg-dump"):
        v = restores["verify " + name]
        lines.append(f"| {name} shape | {v['wall']:.2f} s | {v['wall'] / restores['psql -f']['wall']:.2f} | "
                     f"{v['rss'] // 1024} MiB |")
    lim = [r["limit"] for r in nightly]
    lines += ["", f"Limit (zstd -3 of the rows changed or added per night): median {med(lim) / 1e6:.3f} MB, "
              f"mean {mean(lim) / 1e6:.3f} MB. Growth is the repository directory's size after the night minus "
              "before; growth / limit is each night's ratio, then their mean and median. Peak RSS: GNU time's %M, "
              "the largest over all nights; masclet's includes the pg_dump and pg_dumpall it runs (the larger of "
              "them), the restic pipeline's is the larger of pg_dump and restic. Restores: `masclet dump latest "
              f"{DB}.sql | psql` of the last night's snapshot, and `psql -f` of a plain pg_dump file of the same data, "
              "each into a fresh database (row counts checked), single runs."]
    return "\n".join(lines)


def write_docs(text):
    doc = ROOT / "docs" / "benchmarks.md"
    body = doc.read_text()
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in body:
        pre, rest = body.split(BEGIN, 1)
        body = pre + block + rest.split(END, 1)[1]
    else:
        section = (f"{HEADING}\n\n`python3 tools/bench/pgsource.py --write-docs` (a real PostgreSQL 15 cluster; "
                   "`--animals N --nights K` for other sizes). Machine: 2 cores, 24 GiB RAM, shared with other "
                   "builds while this ran.\n\n" + block + "\n\n")
        if BEFORE in body:
            body = body.replace(BEFORE, section + BEFORE, 1)
        else:
            body = body.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    doc.write_text(body)


if __name__ == "__main__":
    main()
