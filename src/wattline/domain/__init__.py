"""Pure energy rules: no I/O, no database, nothing of Wattline outside domain/.

``readings`` (the batch every source hands over), ``metrics`` (metric types, units),
``timeutil`` (instants, local calendar days), ``wallclock`` (the local wall clock's
5-minute / 15-minute / hour grid), ``ledger`` (energy deltas from readings),
``buckets`` (ledger entries -> buckets of every period), ``quality`` (flags, methods,
confidence), ``validate`` (quarantine reasons), ``health`` (green / yellow / red from
data age), ``cost`` (the rate of an instant, intervals priced at rate changes).
"""
