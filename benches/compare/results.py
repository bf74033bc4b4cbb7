#!/usr/bin/env python3
"""Parsing and reporting for benches/compare/run.

    results.py record SCENARIO TARGET ROUND CPU_TICKS PGBENCH_OUTPUT   one TSV row on stdout
    results.py table RESULTS_TSV IDLE_TSV CLK_TCK                      the final tables

A row is: scenario, target, round, cpu_ticks ("user/system" ticks, "-" without a proxy), status (ok: pgbench
finished with every client; partial: some clients aborted; failed: no result at all), tps,
transactions processed, failed transactions, aborted clients, first error message.
IDLE_TSV rows are: target, then idle_clients.py's key=value line.
"""

import re
import statistics
import sys

FIELDS = ["scenario", "target", "round", "ticks", "status", "tps", "tx", "failed", "aborted", "error"]


def first_error(text):
    """The most telling error line of a pgbench run, shortened."""
    for line in text.splitlines():
        if "error" not in line.lower() and "FATAL" not in line:
            continue
        if "Run was aborted" in line:
            continue
        match = re.search(r"(ERROR|FATAL):\s+(.*)", line)
        message = (match.group(1) + ": " + match.group(2)) if match else line.replace("pgbench: error: ", "")
        return " ".join(message.split())[:90]
    return ""


def record(scenario, target, rnd, ticks, path):
    with open(path, errors="replace") as f:
        text = f.read()

    def number(pattern, cast=int):
        match = re.search(pattern, text, re.MULTILINE)
        return cast(match.group(1)) if match else None

    tps = number(r"^tps = ([0-9.]+)", float)
    tx = number(r"^number of transactions actually processed: (\d+)")
    failed = number(r"^number of failed transactions: (\d+)") or 0
    aborted = len(re.findall(r"client \d+ (?:script \d+ )?aborted", text))
    if tps is None or tx is None:
        status, tps, tx = "failed", "", 0
    else:
        status = "partial" if aborted else "ok"
    row = [scenario, target, rnd, ticks, status, tps, tx, failed, aborted, first_error(text)]
    print("\t".join(str(v).replace("\t", " ") for v in row))


def read_rows(path):
    rows = []
    with open(path) as f:
        for line in f:
            values = line.rstrip("\n").split("\t")
            if len(values) == len(FIELDS):
                rows.append(dict(zip(FIELDS, values)))
    return rows


def render(header, lines):
    widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header))]
    out = [" | ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    out.append("-+-".join("-" * w for w in widths))
    out += [" | ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in lines]
    return "\n".join(out)


def paired_ratio(runs, reference):
    """Median, lowest and highest of a target's tps over the reference's in the same round
    ("-" when no round has both)."""
    by_round = {r["round"]: float(r["tps"]) for r in reference if r["tps"] and r["status"] == "ok"}
    ratios = sorted(float(r["tps"]) / by_round[r["round"]]
                    for r in runs if r["tps"] and r["round"] in by_round and by_round[r["round"]] > 0)
    if not ratios:
        return "-"
    return f"{statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})"


def throughput_table(rows, clk_tck):
    groups = {}
    for row in rows:
        groups.setdefault((row["scenario"], row["target"]), []).append(row)
    lines = []
    for (scenario, target), runs in groups.items():
        tps = [float(r["tps"]) for r in runs if r["tps"]]
        tx = sum(int(r["tx"]) for r in runs)
        cpu = "-"
        if all(r["ticks"] != "-" for r in runs) and tx > 0:
            user, system = (sum(int(r["ticks"].split("/")[i]) for r in runs) for i in (0, 1))

            def per_1000_tx(ticks):
                return ticks / clk_tck * 1000 / tx * 1000

            cpu = f"{per_1000_tx(user + system):.1f} ({per_1000_tx(user):.1f} + {per_1000_tx(system):.1f})"
        errors = [r["error"] for r in runs if r["error"]]
        lines.append([
            scenario,
            target,
            f"{statistics.median(tps):.0f}" if tps else "-",
            paired_ratio(runs, groups.get((scenario, "pgbouncer"), [])) if target != "pgbouncer" else "",
            f"{sum(r['status'] == 'ok' for r in runs)}/{len(runs)}",
            sum(int(r["failed"]) for r in runs),
            sum(int(r["aborted"]) for r in runs),
            cpu,
            errors[0] if errors else "",
        ])
    header = ["scenario", "target", "tps (median)", "vs PgBouncer", "rounds ok", "failed tx",
              "aborted clients", "proxy CPU ms/1000 tx (user + sys)", "first error"]
    return render(header, lines)


def idle_table(path):
    lines = []
    with open(path) as f:
        for line in f:
            target, _, rest = line.rstrip("\n").partition("\t")
            kv = dict(re.findall(r"(\w+)=('[^']*'|\"[^\"]*\"|\S+)", rest))
            lines.append([
                target,
                f"{kv.get('ready', '?')}/{kv.get('clients', '?')}",
                kv.get("rss_before_kb", "?"),
                kv.get("rss_after_kb", "?"),
                kv.get("kb_per_client", "?"),
                kv.get("first_error", rest if not kv else "").strip("'\"")[:90],
            ])
    header = ["target", "idle clients ready", "RSS before KB", "RSS after KB", "KB per client", "first error"]
    return render(header, lines)


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "record":
        record(*args)
    elif command == "table":
        results, idle, clk_tck = args[0], args[1], int(args[2])
        print(throughput_table(read_rows(results), clk_tck))
        print()
        print(idle_table(idle))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
