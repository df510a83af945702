// Package bench holds the benchmarks that need a whole daemon: cold start
// of an agent beside a plain interpreter start, and the daemon's memory
// per idle agent. Run them with `make bench` (or go test -bench . ./bench).
// They report their figures with b.ReportMetric; nothing here is a pass/fail
// timing test.
package bench
