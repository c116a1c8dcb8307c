#!/usr/bin/env python3
"""Generates tests/data/money_cases.tsv, run once and committed.

Each line: denomination count rate subtotal_round2 subtotal_2f
  - denomination, rate: repr() of the input floats; count: an integer
  - subtotal_round2: repr(round(denomination * count * rate, 2)), as json.dumps prints it
  - subtotal_2f: f"{denomination * count * rate:.2f}", the seed's log line
"""
import random

rng = random.Random(20261126)
cases = []

# edge cases: ties that binary cannot hold exactly, classic traps
for x in [2.675, 1.005, 0.1 * 3, 0.125, 0.375, 2.5, 0.015, 0.045, 1.115, 1e15, 1e15 + 0.125,
          1e16, 1e20, 1e300, 1.7976931348623157e308, 5e-324, 1e-300, 1e-7, 0.005, 0.0049999,
          123456.785, 99999999.995, 0.0, 3775.0, 4530.0, 377.5, 0.3, 2.67, 1e-5, 0.0001,
          12345678901234.565, 999999999999999.9]:
    cases.append((x, 1, 1.0))
# the seed's example and friends
cases += [(10.0, 5, 75.5), (20.0, 3, 75.5), (0.1, 3, 1.0), (1.1, 3, 3.3), (0.01, 1, 0.5)]
# every cent of a few rates
for cents in range(0, 300):
    cases.append((cents / 100, 1, 1.0))
    cases.append((cents / 100, 7, 0.015))
# random
while len(cases) < 1200:
    kind = rng.random()
    if kind < 0.4:
        d = rng.choice([1, 2, 5, 10, 50, 100, 200, 500, 1000, 2000, 5000]) * 1.0
        c = rng.randint(0, 10000)
        r = round(rng.uniform(0.001, 200), rng.randint(1, 6))
    elif kind < 0.7:
        d = round(rng.uniform(0, 1e6), rng.randint(0, 4))
        c = rng.randint(0, 1000)
        r = rng.uniform(1e-4, 1e4)
    elif kind < 0.9:
        d = rng.uniform(0, 1e-3)
        c = rng.randint(0, 100)
        r = rng.uniform(0, 10)
    else:
        d = 10 ** rng.uniform(-10, 14)
        c = rng.randint(0, 10 ** rng.randint(0, 6))
        r = 10 ** rng.uniform(-6, 4)
    cases.append((d, c, r))

with open("money_cases.tsv", "w") as f:
    for d, c, r in cases:
        s = d * c * r
        f.write(f"{d!r}\t{c}\t{r!r}\t{round(s, 2)!r}\t{s:.2f}\n")
print(len(cases), "cases")
