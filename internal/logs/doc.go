// Package logs owns the log collector and the log store: it turns each line
// an agent writes to stdout/stderr into a Record, stores records per agent
// in size-capped, rotated segment files (JSON lines) under var/log/cortex,
// and serves them to readers (tail, since, follow, project-wide merge).
//
// # Lines to records
//
// ParseLine decides what a line means:
//
//   - A line that is a JSON object becomes Fields. "msg" (else "message")
//     becomes Message; "level" (else "lvl", "severity", "levelname") becomes
//     Level, normalised to debug|info|warn|error (warning→warn;
//     err/fatal/critical/panic/alert/emerg→error; trace→debug;
//     notice→info; numeric levels use the pino/bunyan scale:
//     ≤20 debug, ≤30 info, ≤40 warn, above error). The promoted keys are
//     removed from Fields; "time"/"ts"/"timestamp" stay in Fields, the
//     record's Time is always the collection time.
//   - Any other line is the Message as written. Its level is taken from a
//     leading level word, after up to two timestamp tokens and ANSI colour
//     codes are skipped: Python logging's "WARNING:name:msg", "[ERROR] ...",
//     "ERROR ..." (upper case), "error: ..." (any case, with a colon, as
//     winston prints), "level=warn" (logfmt), and "Traceback (most recent
//     call last):" as error. Without one, stdout lines are info and stderr
//     lines are warn (not error: Python logging writes INFO lines to
//     stderr); system lines are info.
//   - Strict mode (security.logging: strict): a non-JSON line is never
//     stored raw. It is marked Wrapped and its control characters, ANSI
//     escapes and bidi overrides are escaped as visible text (\x1b, \u202e).
//   - Invalid UTF-8 is replaced by U+FFFD, never dropped. A trailing "\r"
//     is removed. Empty lines are records too.
//
// Collect splits input on "\n" only. A line longer than Options.MaxLine is
// split into several records, all marked Truncated, cut on a UTF-8
// boundary; nothing is dropped. A final partial line at EOF (or when ctx
// ends) is emitted.
//
// # Storage
//
// Records live in <Dir>/<project>/<agent>/<first-seq>.jsonl, one JSON
// record per line, written by a single append path per agent that assigns
// Seq under a lock, so Seq is strictly increasing per agent across runs
// and daemon restarts. Each batch of lines read from an agent (one read(2)
// of its pipe) is written with one write(2) before the next read, so a
// kill -9 of the daemon loses nothing the collector had accepted; there is
// no fsync. A segment is rotated when the next line would take it past
// SegmentSize, and at most Segments files are kept per agent (oldest
// deleted). On first use of an agent the store repairs its newest segment
// (a torn last line left by a crash is truncated away) and continues Seq
// after the last valid record. Lines that do not decode are skipped by
// readers.
//
// # Readers
//
// Read merges the matching records of one agent or of all agents of a
// project: each agent in Seq order, agents interleaved by Time. Followers
// are woken by an in-memory broadcast (a non-blocking signal) and take new
// records from a small per-agent ring of recent records; one that fell
// behind the ring catches up from the segment files. The collector never
// waits for a follower. A follower more than the retained segments behind
// skips what rotation deleted.
//
// This package must not know about processes, pipes' origin, the API or
// the terminal beyond FormatText: it reads io.Readers and writes files
// under Options.Dir only.
package logs
