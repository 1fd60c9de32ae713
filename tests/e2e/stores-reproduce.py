#!/usr/bin/env python3
"""The stores of an interval's trace, then its ad-bits events (the accessed
and dirty bits the MMU sets in page tables, which no instruction writes),
applied to checkpoint K's RAM, must give checkpoint K+1's exactly: every
store at its physical address.

usage: stores-reproduce.py RAM_K RAM_K+1 RECORDS.jsonl LABEL
RECORDS.jsonl: the interval's stores, then its ad-bits events, as
`simuboost trace show --json` or `trace grep --json` prints them."""
import json
import sys

ram = bytearray(open(sys.argv[1], "rb").read())
want = open(sys.argv[2], "rb").read()
stores = ad = 0
for line in open(sys.argv[3]):
    r = json.loads(line)
    if r["kind"] == "store":
        pa, n = int(r["paddr"], 16), r["size"]
        ram[pa:pa + n] = int(r["value"], 16).to_bytes(8, "little")[:n]
        stores += 1
    elif r["kind"] == "ad-bits":
        pa = int(r["a"], 16)
        assert ram[pa:pa + 8] in (int(r["b"], 16).to_bytes(8, "little"),
                                  int(r["c"], 16).to_bytes(8, "little")), r
        ram[pa:pa + 8] = int(r["c"], 16).to_bytes(8, "little")
        ad += 1
for page in range(0, len(ram), 4096):
    if ram[page:page + 4096] == want[page:page + 4096]:
        continue
    for w in range(page, page + 4096, 8):
        assert ram[w:w + 8] == want[w:w + 8], "word 0x%x: 0x%s, recorded 0x%s" % (
            w, ram[w:w + 8][::-1].hex(), want[w:w + 8][::-1].hex())
print("%s: %d stores and %d page-table A/D updates reproduce the next checkpoint" %
      (sys.argv[4], stores, ad))
