#!/usr/bin/python3
"""Which oneDNN kernels a run used, and whether they were AMX kernels.

Usage: /usr/bin/python3 scripts/onednn_kernels.py [--label L] [--top N] -- CMD [ARGS...]
       /usr/bin/python3 scripts/onednn_kernels.py [--label L] [--top N] --log FILE

Runs CMD with ONEDNN_VERBOSE=1 (or reads FILE, a saved log of such a run)
and sums oneDNN's exec lines (one per primitive call: primitive kind,
implementation, propagation kind, ..., time in ms last) by primitive,
implementation and propagation kind. Our engine (Debian's oneDNN 2.6.3) and
torch 1.13's bundled oneDNN print the same lines, so the same command gives
both sides of issue 14's kernel comparison, e.g.

  scripts/onednn_kernels.py --label resdet -- go test ./detection -run '^$' \\
      -bench '^BenchmarkDetectD2C4BF16$' -benchtime 1x
  scripts/onednn_kernels.py --label torch -- /usr/bin/python3 \\
      detection/testdata/bench_d2_c4.py --bf16 --channels-last

Prints the last lines of CMD's own output, the library's info lines
(version, ISA, threads), a table of the kernels by time, and a last line
counting the convolution calls that ran an AMX kernel (an implementation name containing "amx", e.g.
brgconv:avx512_core_amx_bf16) and their share of the convolution time.
`make bench-bf16` runs it on both sides before issue 14's benchmarks.
Exits with CMD's status if CMD fails, and with 1 if the log has no exec
line (oneDNN not used, or verbose output not on stdout).
"""
import argparse
import collections
import os
import subprocess
import sys

PREFIXES = ("onednn_verbose,", "dnnl_verbose,")  # oneDNN >= 2.5, and older


def parse(lines):
    """Returns (info lines, {(primitive, impl, prop): [calls, ms]}) from
    verbose output lines."""
    info, kernels = [], collections.defaultdict(lambda: [0, 0.0])
    for line in lines:
        line = line.strip()
        if not line.startswith(PREFIXES):
            continue
        f = line.split(",")
        if len(f) >= 3 and f[1] == "info" and not f[2].startswith("prim_template"):
            info.append(",".join(f[2:]))
        if len(f) < 7 or f[1] != "exec":
            continue
        try:
            ms = float(f[-1])
        except ValueError:
            continue  # a truncated line
        k = kernels[(f[3], f[4], f[5])]
        k[0] += 1
        k[1] += ms
    return info, kernels


def report(label, info, kernels, top, out=sys.stdout):
    total = sum(ms for _, ms in kernels.values())
    print("== %s" % label, file=out)
    for line in info:
        print("   %s" % line, file=out)
    print("%-14s %-34s %-18s %6s %10s %6s" % ("primitive", "implementation", "prop kind", "calls", "ms", "share"),
          file=out)
    rows = sorted(kernels.items(), key=lambda kv: -kv[1][1])
    for (prim, impl, prop), (calls, ms) in rows[:top]:
        print("%-14s %-34s %-18s %6d %10.1f %5.1f%%" % (prim, impl, prop, calls, ms, 100 * ms / total if total else 0),
              file=out)
    if len(rows) > top:
        rest = rows[top:]
        print("%-14s %-34s %-18s %6d %10.1f" % ("(%d more)" % len(rest), "", "", sum(c for _, (c, _) in rest),
                                                sum(ms for _, (_, ms) in rest)), file=out)
    conv = [(impl, c, ms) for (prim, impl, _), (c, ms) in kernels.items() if prim == "convolution"]
    calls, ms = sum(c for _, c, _ in conv), sum(m for _, _, m in conv)
    amx_calls = sum(c for impl, c, _ in conv if "amx" in impl)
    amx_ms = sum(m for impl, _, m in conv if "amx" in impl)
    print("AMX: %d of %d convolution calls ran an AMX kernel (%.1f%% of %.1f ms of convolutions; %.1f ms in all "
          "oneDNN calls)" % (amx_calls, calls, 100 * amx_ms / ms if ms else 0, ms, total), file=out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--label", default=None, help="the report's title (default: the command or the log)")
    ap.add_argument("--top", type=int, default=15, help="kernels listed (by time)")
    ap.add_argument("--log", help="a saved ONEDNN_VERBOSE=1 log instead of a command")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if bool(a.log) == bool(cmd):
        ap.error("give either --log FILE or -- CMD [ARGS...]")
    if a.log:
        with open(a.log) as f:
            lines = f.readlines()
        label = a.label or a.log
    else:
        env = dict(os.environ, ONEDNN_VERBOSE="1", DNNL_VERBOSE="1")
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
        lines = p.stdout.splitlines()
        if p.returncode != 0:
            sys.stdout.write("\n".join(l for l in lines if not l.startswith(PREFIXES)) + "\n")
            print("onednn_kernels: %s exited with status %d" % (" ".join(cmd), p.returncode), file=sys.stderr)
            sys.exit(p.returncode)
        label = a.label or " ".join(cmd)
        rest = [l for l in lines if not l.startswith(PREFIXES)]
        if rest:  # the command's own output (a benchmark's result line), last lines
            sys.stdout.write("".join("   | %s\n" % l for l in rest[-12:]))
    info, kernels = parse(lines)
    if not kernels:
        print("onednn_kernels: %s: no oneDNN exec lines (%s)" % (label, "log" if a.log else "command output"),
              file=sys.stderr)
        sys.exit(1)
    report(label, info, kernels, a.top)


if __name__ == "__main__":
    main()
