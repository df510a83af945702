// Package audit owns the daemon's tamper-evident audit log under
// var/lib/cortex/audit: every API request (the API's pipeline appends it
// before answering) and every lifecycle event the daemon causes (a
// Recorder taps the event stream; denials an agent can cause at will are
// summarised per window).
//
// The log is a Merkle tree (RFC 6962, SHA-256) over its entries, kept as
// a compact range (github.com/transparency-dev/merkle) so appends cost
// O(log n) hashes. Entries are JSON lines in segment files
// (segment-000001.jsonl, ...) in a versioned canonical encoding (see
// Entry); each line records the tree head after it, so a verifier names
// the first entry that was changed. Signed checkpoints (C2SP
// tlog-checkpoint in an ed25519 signed note, golang.org/x/mod/sumdb/note)
// are entries too: one every few seconds while entries arrive, at every
// rotation, at Close and on request. Each segment begins with the
// tree's compact range and a signed checkpoint of it, so rotation never
// breaks verification and each file continues the last.
//
// What it detects: any changed byte of any file (every file is compared
// with its canonical re-encoding), a removed, reordered or inserted
// entry, a removed segment, a replaced key; and, against a checkpoint
// kept elsewhere (cortex audit checkpoint), the removal of the newest
// entries, which no hash chain alone can show. Someone who can write the
// directory can still rewrite it whole with a new key: keep the
// verifier key with the kept checkpoints.
//
// Why not transparency-dev's tessera POSIX backend: it is built to serve
// a public log as static tiles, integrates entries asynchronously in
// batches, and its module brings cloud SDKs and OpenTelemetry; this log
// needs a synchronous durable append per request and reads by identity
// and project. It uses tessera's own building blocks (compact ranges,
// RFC 6962 hashing, C2SP checkpoints and signed notes) instead.
//
// The package must not import the daemon or the API: it is storage.
package audit
