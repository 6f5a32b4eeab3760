#!/usr/bin/env python3
"""The whole nightly job, `masclet run -t daily`, beside the restic script an operator would write.

    python3 tools/bench/nightly.py [--animals N] [--nights K] [--work DIR] [--export]
                                   [--gc-interval DAYS] [--write-docs]

Reuses tools/bench/harness.py (the throwaway PostgreSQL 15 cluster, the masclet_imperi load
of N animals, its `scattered` nightly change of about 1% of the rows) and pgsource.py (GNU
time around each process of a pipeline, the row counts). Night 0 is the loaded database;
nights 1..K each apply one change first. Then, one after the other (each after a sync, the
first of them alternating night by night):

  - masclet: `masclet run -t daily --json` from a .env-style file (DATABASE_URL,
    BACKUP_ROOT, LOG_DIR, METRICS_FILE, MIN_FREE_SPACE=1G, the default retention 7/4/12/5,
    GC_INTERVAL_DAYS, EXPORT_MIRROR): precheck, backup, verify (every chunk of the new
    snapshot read back, then a test restore into a temporary database checked against the
    recorded row counts), retention, gc, export when asked, the records.
  - restic: `pg_dump | restic backup --stdin --tag daily`; the test restore `restic dump
    latest | psql` into a fresh database, count(*) of the three tables against the source's,
    drop it; `restic check --read-data-subset=n/7` (n the night's place in the week: restic
    cannot read one snapshot's data back, so the closest check of stored data that stays a
    fixed share of the repository is its documented rotation, every pack read once a week;
    the test restore has already read and authenticated every blob of the new snapshot);
    `restic forget --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --keep-yearly 5`, with
    `--prune` on the nights masclet's gc runs.

`masclet run` stamps its snapshot with the clock, and retention keeps one snapshot a day:
every night's run on the same real day would forget the night before. So masclet runs
under libfaketime (apt-get install faketime) at the night's 03:00, and restic gets the same
time with --time. Outside the script's total, `restic check --read-data` (the whole
repository) is timed too, to show what a full data check costs as history grows.

With --write-docs the summary goes into docs/benchmarks.md between the nightly markers.
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
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import PG_BIN, ROOT, Postgres, du, load, night, sh  # noqa: E402
from pgsource import DB, MASCLET, counts, pipeline  # noqa: E402

# The multithreaded variant: masclet's backup and verify run worker threads.
FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
KEEP = ["--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "12", "--keep-yearly", "5"]
M_STEPS = ["precheck", "backup", "verify", "retention", "gc"]
R_STEPS = ["backup", "test restore", "check", "forget"]
BEGIN, END = "<!-- nightly:begin -->", "<!-- nightly:end -->"
HEADING = "## The nightly job (`masclet run`) beside a restic nightly script"
AFTER = "## backup --pg: dump shapes, beside pg_dump and restic"


def masclet_night(env, repo, when):
    # The fake clock starts at the night's 03:00 and runs at the real rate; monotonic time
    # stays real so that the step durations masclet records are real seconds.
    menv = dict(env, LD_PRELOAD=str(FAKETIME), FAKETIME=f"@{when}", FAKETIME_DONT_FAKE_MONOTONIC="1")
    size0 = du(repo)
    w, rss, out = pipeline([[str(MASCLET), "run", "-t", "daily", "--json", "-q", "--pg-bin", str(PG_BIN)]],
                           menv, out=subprocess.PIPE)
    rec = json.loads(out)
    if rec["exit_code"] != 0:
        sys.exit(f"masclet run: {json.dumps(rec, indent=1)}")
    steps = {s["name"]: s["duration_secs"] for s in rec["steps"]}
    gc = next((s for s in rec["steps"] if s["name"] == "gc"), None)
    return dict(wall=w, rss=rss[0], steps=steps, growth=du(repo) - size0, added=rec["metrics"]["bytes_added"],
                read=rec["metrics"]["bytes_read"], gc_ran=bool(gc and gc["outcome"] != "skipped"))


def restic_night(pg, env, k, when, prune):
    steps, rss = {}, []
    size0 = du(Path(env["RESTIC_REPOSITORY"]))
    start = time.monotonic()
    pg_dump = [str(PG_BIN / "pg_dump")] + pg.conn()
    w, r, _ = pipeline([pg_dump, ["restic", "backup", "--quiet", "--stdin", "--stdin-filename", f"{DB}.sql",
                                  "--tag", "daily", "--time", when]], env)
    steps["backup"], rss = w, rss + [r[1]]
    # The test restore, as a script would do it: a fresh database, the dump piped in, the
    # tables counted against the source, the database dropped.
    t = time.monotonic()
    fresh = "restic_restore_test"
    pg.psql(["-d", "postgres", "-c", "SET client_min_messages = warning", "-c", f"DROP DATABASE IF EXISTS {fresh}"])
    pg.psql(["-d", "postgres", "-c", f"CREATE DATABASE {fresh}"])
    psql = [str(PG_BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"] + pg.conn(fresh)
    _, r, _ = pipeline([["restic", "dump", "--quiet", "latest", f"{DB}.sql"], psql], env)
    rss.append(r[0])
    got, want = counts(pg, fresh), counts(pg, DB)
    if got != want:
        sys.exit(f"restic test restore: row counts {got}, the source has {want}")
    pg.psql(["-d", "postgres", "-c", f"DROP DATABASE {fresh}"])
    steps["test restore"] = time.monotonic() - t
    w, r, _ = pipeline([["restic", "check", "--quiet", f"--read-data-subset={k % 7 + 1}/7"]], env)
    steps["check"], rss = w, rss + [r[0]]
    w, r, _ = pipeline([["restic", "forget", "--quiet"] + KEEP + (["--prune"] if prune else [])], env)
    steps["forget"], rss = w, rss + [r[0]]
    wall = time.monotonic() - start
    return dict(wall=wall, rss=max(rss), steps=steps, growth=du(Path(env["RESTIC_REPOSITORY"])) - size0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--animals", type=int, default=1_000_000)
    ap.add_argument("--nights", type=int, default=5, help="changed nights after night 0")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--export", action="store_true", help="EXPORT_MIRROR=true (restic has no counterpart)")
    ap.add_argument("--gc-interval", type=int, default=0,
                    help="GC_INTERVAL_DAYS; restic prunes on the same nights (0: every night)")
    ap.add_argument("--write-docs", action="store_true")
    a = ap.parse_args()
    for need, how in ((MASCLET, "cargo build --release -p masclet-cli"), (FAKETIME, "apt-get install faketime")):
        if not need.exists():
            sys.exit(f"{need} missing: {how}")
    if not shutil.which("restic"):
        sys.exit("restic not installed (apt-get install restic)")
    work = a.work or Path(tempfile.mkdtemp(prefix="masclet-nightly-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    pg = Postgres(work)
    root, mrepo, rrepo = work / "backups", work / "backups" / "store", work / "repo-restic"
    for d in (root, rrepo, work / "logs"):
        shutil.rmtree(d, ignore_errors=True)
    root.mkdir()
    # The passphrase in a file, as in production; restic reads its own from the environment.
    pw = work / "passphrase"
    pw.write_text("bench nightly passphrase\n")
    pw.chmod(0o600)
    cfg = work / "masclet.env"
    cfg.write_text("\n".join([
        f"DATABASE_URL=postgresql://postgres@127.0.0.1:{pg.port}/{DB}", f"BACKUP_ROOT={root}",
        f"MASCLET_PASSWORD_FILE={pw}", f"LOG_DIR={work / 'logs'}", f"METRICS_FILE={work / 'masclet.prom'}",
        "MIN_FREE_SPACE=1G", f"GC_INTERVAL_DAYS={a.gc_interval}",
        f"EXPORT_MIRROR={'true' if a.export else 'false'}"]) + "\n")
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("PG", "MASCLET_", "RESTIC_")) and k != "DATABASE_URL"}
    menv = dict(base, MASCLET_CONFIG=str(cfg))
    renv = dict(base, RESTIC_PASSWORD="bench nightly passphrase", RESTIC_REPOSITORY=str(rrepo),
                RESTIC_CACHE_DIR=str(work / "restic-cache"))
    sh([str(MASCLET), "init"], env=menv, stdout=subprocess.DEVNULL)
    sh(["restic", "init"], env=renv, stdout=subprocess.DEVNULL)
    rows = []
    try:
        print(f"loading {a.animals} animals ...", file=sys.stderr)
        load(pg, a.animals)
        print(f"loaded in {time.monotonic() - t0:.0f} s", file=sys.stderr)
        rng = random.Random(2026)
        for k in range(a.nights + 1):
            if k:
                night(pg, rng, "scattered", a.animals)
            when = f"2026-11-{k + 1:02d} 03:00:00"
            row = dict(night=k)
            turn = ["masclet", "restic"] if k % 2 == 0 else ["restic", "masclet"]
            for name in turn:
                os.sync()
                if name == "masclet":
                    row["m"] = masclet_night(menv, mrepo, when)
                else:
                    # masclet's gc is due on the first night and every GC_INTERVAL_DAYS after.
                    prune = a.gc_interval == 0 or k % a.gc_interval == 0
                    row["r"] = restic_night(pg, renv, k, when, prune)
            os.sync()
            row["full_check"], _, _ = pipeline([["restic", "check", "--quiet", "--read-data"]], renv)
            rows.append(row)
            m, r = row["m"], row["r"]
            print(f"night {k} ({' first, '.join(turn)} second): masclet {m['wall']:.1f} s "
                  + " ".join(f"{s} {v:.1f}" for s, v in m["steps"].items())
                  + f" +{m['growth'] / 1e6:.2f} MB {m['rss'] // 1024} MiB; restic {r['wall']:.1f} s "
                  + " ".join(f"{s} {v:.1f}" for s, v in r["steps"].items())
                  + f" +{r['growth'] / 1e6:.2f} MB {r['rss'] // 1024} MiB; full check {row['full_check']:.1f} s",
                  file=sys.stderr)
        dump_mb = len(subprocess.run([str(PG_BIN / "pg_dump")] + pg.conn(), stdout=subprocess.PIPE,
                                     check=True).stdout) / 1e6
        text = report(a, rows, dump_mb, du(mrepo), du(rrepo), time.monotonic() - t0)
    finally:
        pg.stop()
    print(text)
    if a.write_docs:
        write_docs(text)


def report(a, rows, dump_mb, mfinal, rfinal, total_s):
    med = statistics.median
    nightly = rows[1:]
    gc = "every night" if a.gc_interval == 0 else f"every {a.gc_interval} days"

    names = M_STEPS + (["export"] if a.export else [])

    def rest(m):
        return m["wall"] - sum(m["steps"].get(s, 0.0) for s in names)

    def line(label, m, r, msteps, rsteps, mg, rg, full, other):
        return (f"| {label} | {m:.1f} s | {r:.1f} s | {m / r:.2f} | "
                + " / ".join(f"{msteps.get(s, 0.0):.1f}" for s in names) + f" / {other:.1f} | "
                + " / ".join(f"{rsteps[s]:.1f}" for s in R_STEPS)
                + f" | {mg / 1e6:.2f} MB | {rg / 1e6:.2f} MB | {mg / max(rg, 1):.3f} | {full:.1f} s |")

    lines = [f"Run: {a.animals} animals (plain dump {dump_mb:.0f} MB after the last night), night 0 (the loaded "
             f"database) and {a.nights} nights of the `scattered` change; gc and prune {gc}; export "
             f"{'on' if a.export else 'off'}; single runs, one tool after the other each night (the first "
             f"alternating); {total_s / 60:.0f} min in all.", "",
             "| night | masclet run | restic script | masclet / restic | masclet: " + " / ".join(names) + " / rest (s) | restic: backup / test restore / check 1/7 / forget (s) | growth masclet "
             "| growth restic | growth masclet / restic | `restic check --read-data` (not in the script) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        m, r = row["m"], row["r"]
        lines.append(line(str(row["night"]), m["wall"], r["wall"], m["steps"], r["steps"], m["growth"],
                          r["growth"], row["full_check"], rest(m)))
    lines.append(line(f"**median 1..{a.nights}**", med(x["m"]["wall"] for x in nightly),
                      med(x["r"]["wall"] for x in nightly),
                      {s: med(x["m"]["steps"].get(s, 0.0) for x in nightly) for s in names},
                      {s: med(x["r"]["steps"][s] for x in nightly) for s in R_STEPS},
                      med(x["m"]["growth"] for x in nightly), med(x["r"]["growth"] for x in nightly),
                      med(x["full_check"] for x in nightly), med(rest(x["m"]) for x in nightly)))
    ratios = [x["m"]["wall"] / x["r"]["wall"] for x in nightly]
    mwall, rwall = med(x["m"]["wall"] for x in nightly), med(x["r"]["wall"] for x in nightly)
    share = lambda tool, step, wall: med(x[tool]["steps"].get(step, 0.0) for x in nightly) / wall  # noqa: E731
    lines[:0] = [f"Machine: {os.cpu_count()} cores (`nproc`), {date.today().isoformat()}; the repositories, the "
                 "cluster and the temporary databases on one local disk. Each side's steps are those listed in "
                 "tools/bench/nightly.py's header: masclet's verify is the read-back of the new snapshot's chunks "
                 "plus its test restore with its checks; restic's script is backup, test restore (`restic dump "
                 "latest | psql` into a fresh database, three counts, drop), `check --read-data-subset=n/7` and "
                 "`forget` (+ `--prune` when masclet's gc runs).", ""]
    lines += ["", f"Median of the nightly ratios masclet / restic (nights 1..{a.nights}): {med(ratios):.2f}. "
              f"Repositories after night {a.nights}: masclet {mfinal / 1e6:.1f} MB, restic {rfinal / 1e6:.1f} MB. "
              f"Peak RSS (GNU time's %M, largest over the nights): masclet run {max(x['m']['rss'] for x in rows) // 1024} "
              f"MiB (its pg_dump and psql children included), the largest restic process "
              f"{max(x['r']['rss'] for x in rows) // 1024} MiB. masclet's bytes read per night (median) "
              f"{med(x['m']['read'] for x in nightly) / 1e6:.0f} MB, bytes added {med(x['m']['added'] for x in nightly) / 1e6:.2f} MB. "
              "\"rest\" is masclet's wall time outside its recorded steps (process start, opening the repository, "
              "writing the records). Growth: the repository directory's size after the night minus before.", "",
              f"Where the median night goes: masclet's verify {share('m', 'verify', mwall):.0%} of its run, backup "
              f"{share('m', 'backup', mwall):.0%}, gc {share('m', 'gc', mwall):.0%}; restic's test restore "
              f"{share('r', 'test restore', rwall):.0%} of its script, backup {share('r', 'backup', rwall):.0%}, "
              f"check {share('r', 'check', rwall):.0%}, forget {share('r', 'forget', rwall):.0%}. A full "
              f"`restic check --read-data` took {rows[0]['full_check']:.1f} s after night 0 and "
              f"{rows[-1]['full_check']:.1f} s after night {a.nights}: it reads the whole repository, which grows by "
              "restic's nightly growth above."]
    return "\n".join(lines)


def write_docs(text):
    doc = ROOT / "docs" / "benchmarks.md"
    body = doc.read_text()
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in body:
        pre, rest = body.split(BEGIN, 1)
        body = pre + block + rest.split(END, 1)[1]
        doc.write_text(body)
        return
    section = (f"{HEADING}\n\n`python3 tools/bench/nightly.py --write-docs` (a real PostgreSQL 15 cluster; "
               "`--animals N --nights K`, `--gc-interval DAYS`, `--export` for other runs). What each side does is "
               "described in the script's header; the remarks below the table are from the run it shows.\n\n"
               + block + "\n\n")
    # Right after the pgsource section: before the next second-level heading.
    at = body.index(AFTER)
    nxt = body.find("\n## ", at + len(AFTER))
    body = body + "\n" + section if nxt < 0 else body[:nxt + 1] + section + body[nxt + 1:]
    doc.write_text(body)


if __name__ == "__main__":
    main()
